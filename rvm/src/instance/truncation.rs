//! When truncation runs (threshold, request, out of space, background thread) and how it
//! moves the head once the records are in the segments.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::flush::Item;
use super::segments::slot_target;
use super::stats::add;
use super::status::Pos;
use super::{lock, now_ms, Inner, Rvm};
use crate::apply::Applier;
use crate::device::DeviceRef;
use crate::error::{Error, Result};
use crate::format::log::{live_bytes, RecordHeader};
use crate::format::segment::SegmentHeader;
use crate::log::LogReader;
use crate::sync::read_lock;

/// A segment and its header, as a truncation resolves a log's segment index.
type Target = Option<(DeviceRef, SegmentHeader)>;

/// A background truncation that has applied every record that was durable when it started
/// goes on with the records made durable since, before it writes the segments, while the log
/// is at most this full: every truncation of small ranges scattered over a large segment
/// rewrites most of its pages whatever the log bytes it applies, so one that applies more of
/// them rewrites the segment fewer times per log byte. Past this use the head should move
/// soon (a producer would run out of log).
const EXTEND_USE_PERCENT_MAX: u64 = 75;

/// A background truncation may move the head after each `1 / TRUNCATION_STAGES` of the record
/// area it applies.
const TRUNCATION_STAGES: u64 = 8;
/// ... but only where the segment pages the stage rewrites are at most this many times the
/// log bytes it applied. Small ranges scattered over a large segment touch most of its pages
/// in every stage, and each stage would rewrite and sync them all again (measured: 8 stages
/// cost the no_flush sustained rate 0.6x); such a stage goes on into the next. At 2 (it was
/// 4), 64-byte ranges scattered over a 64 MiB segment end a stage after about 32 MB of log
/// instead of 16 MB: with `EXTEND_USE_PERCENT_MAX` a truncation of them applies 20-27 MB per
/// rewrite of the segment instead of 15-17 MB.
const STAGE_REWRITE_PER_LOG_BYTE: u64 = 2;

impl Rvm {
    /// Change the log use (percent, 1..=100) that background truncation keeps the log under
    /// (it starts that far ahead: [`Options::truncate_threshold_percent`](crate::Options)); 0
    /// stops starting it (truncation then happens only when space runs out or when asked). Takes
    /// effect at the next flush. An instance opened with a threshold of 0 has no truncation
    /// thread, so it can only be given 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a percentage over 100, or a non-zero one on an instance
    /// opened with a threshold of 0.
    pub fn set_truncate_threshold(&self, percent: u8) -> Result<()> {
        if percent > 100 || (percent > 0 && self.truncator.is_none()) {
            return Err(Error::InvalidArgument {
                parameter: "truncate threshold",
                rule: format!(
                    "{percent} must be 0..=100, and non-zero only if the log was opened with a \
                     non-zero threshold"
                ),
            });
        }
        self.inner
            .truncate_threshold_percent
            .store(percent, Ordering::Relaxed);
        Ok(())
    }

    /// The background-truncation threshold now (see [`Rvm::set_truncate_threshold`]).
    pub fn truncate_threshold(&self) -> u8 {
        self.inner
            .truncate_threshold_percent
            .load(Ordering::Relaxed)
    }

    /// Flush, then apply the whole log to the segments, sync them, and free the log.
    ///
    /// Waits for the flush (a log sync), for a truncation already running (background or in
    /// another thread) to finish, and then for its own writes and syncs.
    ///
    /// # Errors
    /// An I/O error naming the log or a segment; [`Error::DamagedRecord`] for a damaged record
    /// in the live log; [`Error::Failed`] when an earlier failure left the instance unusable.
    /// After an I/O failure the instance is unusable: reopen the log to recover.
    pub fn truncate(&self) -> Result<()> {
        self.inner.flush_all()?;
        self.inner.truncate_now(false)
    }

    /// Wait until no truncation is requested or running (after `open`, until recovery is
    /// durable).
    ///
    /// # Errors
    /// [`Error::Failed`] when a background truncation failed (the instance is then unusable;
    /// reopen the log to recover).
    pub fn wait_for_truncation(&self) -> Result<()> {
        let mut p = lock(&self.inner.pos);
        // Without a truncation thread, nothing is requested or running in the background.
        while self.truncator.is_some()
            && (p.truncation_requested || p.truncating || !p.pending_sync.is_empty())
        {
            p = self
                .inner
                .pos_cond
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(p);
        self.inner.check_failed()
    }
}

impl Inner {
    /// Whether a flush that leaves `used` bytes of the log in use should start a background
    /// truncation (and, while one runs, note the use for `note_overshoot`): when the use,
    /// plus how far the log is expected to rise while a truncation started now runs
    /// (`Pos::truncation_lead`, at most half the threshold), reaches the threshold. A
    /// truncation frees nothing until its first stage is applied and synced, and a fast
    /// producer can outpace its later stages for a while, so one started at the threshold
    /// itself lets the log rise past it; one started that much earlier keeps the use near
    /// the threshold.
    pub(super) fn past_trigger(&self, p: &mut Pos, used: u64) -> bool {
        if p.truncating {
            p.truncating_peak = p.truncating_peak.max(used);
            return false;
        }
        let threshold = self.truncate_threshold_percent.load(Ordering::Relaxed) as u64;
        threshold > 0
            && (used + self.truncation_lead(p)) * 100
                >= threshold * (self.area_end - self.area_start)
    }

    /// How far below the threshold background truncation starts now (`past_trigger`): the
    /// lead measured by the last background truncation, at most half the threshold. Before
    /// any has ended there is nothing measured, and a first truncation started at the
    /// threshold itself let the log rise well past it (to 52-61% of the log with a 50%
    /// threshold in the report's RDS runs), so the first one starts ahead by half the most a
    /// lead may be: a quarter of the threshold.
    pub(super) fn truncation_lead(&self, p: &Pos) -> u64 {
        let threshold = self.truncate_threshold_percent.load(Ordering::Relaxed) as u64;
        let most = threshold * (self.area_end - self.area_start) / 200;
        p.truncation_lead.map_or(most / 2, |lead| lead.min(most))
    }

    /// Called when a background truncation has ended that was asked for (or, if no flush
    /// asked, started) with `from` bytes in use: until it ended the log rose at most
    /// `Pos::truncating_peak - from` above that, counting the time the truncation thread took
    /// to start, and the next truncation starts ahead of the threshold by half as much again
    /// (`past_trigger`; the time a stage takes varies from one truncation to the next). A lead
    /// larger than that shrinks by a quarter per truncation, so one slow truncation is not
    /// forgotten at once and a producer that slows down lets the start move back.
    fn note_overshoot(&self, p: &mut Pos, from: u64) {
        let grown = p.truncating_peak.saturating_sub(from);
        let lead = grown.saturating_add(grown / 2);
        // The first measurement replaces the guess outright.
        p.truncation_lead = Some(
            p.truncation_lead
                .map_or(lead, |old| lead.max(old - old / 4)),
        );
    }

    pub(crate) fn request_truncation(&self) {
        let mut p = lock(&self.pos);
        p.truncation_requested = true;
        self.pos_cond.notify_all();
    }

    pub(super) fn truncation_thread(&self) {
        loop {
            {
                let mut p = lock(&self.pos);
                while !p.truncation_requested && !p.shutdown {
                    p = self.pos_cond.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.shutdown {
                    return;
                }
            }
            if let Err(e) = self.truncate_now(true) {
                self.fail(&e);
                let mut p = lock(&self.pos);
                p.truncation_requested = false;
                self.pos_cond.notify_all();
            }
        }
    }

    /// If a truncation is running, wait until the log has room for a record of `need` bytes
    /// (the flush leader's next plan places it, sector pad and all): a stage of a background
    /// truncation may make it long before the truncation ends. Returns whether it did (before
    /// or when the truncation ended), so that the flush leader can go on writing at once
    /// instead of truncating what was made durable meanwhile: that is left to the running
    /// truncation (which goes on with it while the log is not too full) or the next one,
    /// which applies it with more (a truncation of small scattered ranges rewrites most of
    /// the segment's pages however little log it applies). `false` only once no truncation
    /// runs, so a caller that truncates then never truncates what a running one will apply.
    pub(super) fn wait_for_running_truncation(&self, need: u64) -> Result<bool> {
        let mut p = lock(&self.pos);
        if !p.truncating {
            return Ok(false);
        }
        let room = loop {
            // The same placement as the flush's plan: free bytes split by the wrap may not
            // hold the record, and the leader must not spin while a stage runs.
            let (items, _, _) = self.plan(&p, &[(0, need as usize)], 0);
            let room = items.iter().any(|i| matches!(i, Item::Record { .. }));
            if room || !p.truncating {
                break room;
            }
            p = self.pos_cond.wait(p).unwrap_or_else(|e| e.into_inner());
        };
        drop(p);
        self.check_failed()?;
        Ok(room)
    }

    /// Sync the segments of these log indices. A failure fails the instance: after a failed
    /// fdatasync the kernel may have marked the unwritten pages clean, so a retry could
    /// "succeed" without the data; only a reopen, which applies the log again, may truncate
    /// from here on.
    fn sync_segments(&self, touched: &BTreeSet<u32>) -> Result<()> {
        let devices: Vec<DeviceRef> = {
            let slots = read_lock(&self.segments);
            touched
                .iter()
                .filter_map(|i| slots.get(*i as usize).and_then(|s| s.device.clone()))
                .collect()
        };
        for d in devices {
            if let Err(e) = d.sync() {
                let e = Error::io(d.name(), "fsync", e);
                self.fail(&e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Where a background truncation that has applied the records before `end_offset`
    /// (LSN `end_lsn`) may go on to (the tail offset and next LSN now, and the log bytes in
    /// between), if records were made durable meanwhile, the log is at most
    /// `EXTEND_USE_PERCENT_MAX` full, and the segment table still resolves as `targets` did
    /// (the applier's resolved segments stay right).
    fn more_to_apply(
        &self,
        end_offset: u64,
        end_lsn: u64,
        targets: &[Target],
    ) -> Option<(u64, u64, u64)> {
        let (tail, next, used) = {
            let p = lock(&self.pos);
            (p.tail_offset, p.next_lsn, self.used_bytes(&p))
        };
        let more = live_bytes(
            next == end_lsn,
            end_offset,
            tail,
            self.area_start,
            self.area_end,
        );
        if next == end_lsn
            || used * 100 > EXTEND_USE_PERCENT_MAX * (self.area_end - self.area_start)
        {
            return None;
        }
        let slots = read_lock(&self.segments);
        let same = slots.len() == targets.len()
            && targets
                .iter()
                .enumerate()
                .all(|(i, t)| match (t, slot_target(&slots, i as u32)) {
                    (None, None) => true,
                    (Some((d, h)), Some((d2, h2))) => Arc::ptr_eq(d, &d2) && *h == h2,
                    _ => false,
                });
        same.then_some((tail, next, more))
    }

    /// Apply every durable record to the segments, sync them, then move the head past those
    /// records with a status write. One truncation at a time; commits continue meanwhile.
    ///
    /// A long background truncation moves the head in stages: after each eighth of the record
    /// area applied (if the stage rewrites at most `STAGE_REWRITE_PER_LOG_BYTE` bytes of
    /// segment pages per byte of log applied; else it goes on into the next eighth), the
    /// segments written since the last sync are synced (only those: a stage that wrote one
    /// segment does not sync the others again) and the head moved to the next record, so the
    /// space comes free while the rest is applied (a producer faster than truncation waits
    /// less: a flush leader waiting for room goes on then), and a crash in the middle replays
    /// only what was not staged yet.
    pub(crate) fn truncate_now(&self, background: bool) -> Result<()> {
        let mut spare = lock(&self.truncate_lock);
        self.check_failed()?;
        let started = Instant::now();
        // The segments written (by this truncation, or by recovery: `pending_sync`) and not
        // synced yet: each stage syncs these, and only these, before it moves the head.
        // `rise_from`: where the log's rise during this truncation is measured from
        // (`note_overshoot`): the use at the flush that asked for it, if one did, else now.
        let (
            head_offset,
            head_lsn,
            mut end_offset,
            mut end_lsn,
            applied_lsn,
            mut to_sync,
            live,
            triggered_at,
        ) = {
            let mut p = lock(&self.pos);
            p.truncation_requested = false;
            let triggered_at = p.triggered_at.take();
            if p.is_empty() && p.pending_sync.is_empty() {
                self.pos_cond.notify_all();
                return Ok(());
            }
            p.truncating = true;
            let live = self.used_bytes(&p);
            p.truncating_peak = live;
            (
                p.head_offset,
                p.head_lsn,
                p.tail_offset,
                p.next_lsn,
                p.applied_lsn,
                p.pending_sync.clone(),
                live,
                triggered_at,
            )
        };
        let rise_from = triggered_at.map_or(live, |t| t.min(live));
        let result = (|| -> Result<()> {
            // Records before `applied_lsn` are in the segments already (recovery applied
            // them): when that is all of them, the log need not be read at all.
            if head_lsn < end_lsn && applied_lsn < end_lsn {
                let status = lock(&self.status).clone();
                let reader = LogReader::with_status(self.log.clone(), status);
                let targets: Vec<Target> = {
                    let slots = read_lock(&self.segments);
                    (0..slots.len())
                        .map(|i| slot_target(&slots, i as u32))
                        .collect()
                };
                let target = |i: u32| targets.get(i as usize).cloned().flatten();
                // Stages only in the background: an explicit or out-of-space truncation has
                // its caller waiting for all of it, and would only pay more syncs.
                let applier = Applier::reusing(&self.log_name, live, spare.take());
                let (mut applier, stage_bytes) = if background {
                    // The writeback as it goes too: meanwhile commits sync the log (an
                    // explicit or out-of-space truncation has its caller waiting for the
                    // writes and the sync, and measured a little slower with it).
                    (
                        applier.count_stage_pages().with_writeback(),
                        (self.area_end - self.area_start) / TRUNCATION_STAGES,
                    )
                } else {
                    (applier, u64::MAX)
                };
                let mut staged = 0;
                let mut visit = |offset, header: &RecordHeader, body: &[u8]| -> Result<()> {
                    if staged >= stage_bytes
                        && applier.stage_page_bytes() <= STAGE_REWRITE_PER_LOG_BYTE * staged
                    {
                        // Every record before this one is applied: make it durable and move
                        // the head here, so its space is free while the rest is applied (and
                        // a crash from here on replays only the rest).
                        // The head moves past records applied in this stage and in earlier
                        // ones (synced then), and, in the first, records recovery applied
                        // (`pending_sync`): what this stage wrote is all that is not durable.
                        to_sync.extend(applier.write_out(&target)?);
                        self.sync_segments(&to_sync)?;
                        to_sync.clear();
                        self.write_status_then(
                            |s, _| {
                                s.head_offset = offset;
                                s.head_lsn = header.lsn;
                            },
                            |p| {
                                p.head_offset = offset;
                                p.head_lsn = header.lsn;
                            },
                        )?;
                        self.pos_cond.notify_all();
                        staged = 0;
                    }
                    staged += header.length;
                    if header.lsn >= applied_lsn {
                        applier.add_body(offset, header, body, &target)?;
                    }
                    Ok(())
                };
                let (mut from_offset, mut from_lsn) = (head_offset, head_lsn);
                // Log bytes walked so far (what was live at the start, then each extension).
                let mut walked = live;
                loop {
                    reader.walk_bodies(from_offset, from_lsn, end_lsn, &mut visit)?;
                    // A background truncation goes on with what was made durable meanwhile,
                    // up to about one record area in all (so that it ends, and a caller of
                    // `truncate` waiting for it does not wait on a steady producer).
                    let Some((tail, next, more)) = background
                        .then(|| self.more_to_apply(end_offset, end_lsn, &targets))
                        .flatten()
                        .filter(|&(_, _, more)| walked + more <= self.area_end - self.area_start)
                    else {
                        break;
                    };
                    walked += more;
                    (from_offset, from_lsn) = (end_offset, end_lsn);
                    (end_offset, end_lsn) = (tail, next);
                }
                let (written, buffers) = applier.finish_keeping(&target)?;
                to_sync.extend(written);
                *spare = buffers;
            }
            // What the last stage wrote (and `pending_sync`, if no stage synced it).
            self.sync_segments(&to_sync)?;
            let truncated_ms = now_ms();
            self.write_status_then(
                |s, _| {
                    s.head_offset = end_offset;
                    s.head_lsn = end_lsn;
                    s.last_truncation_unix_ms = truncated_ms;
                },
                |p| {
                    p.head_offset = end_offset;
                    p.head_lsn = end_lsn;
                },
            )?;
            Ok(())
        })();
        let mut p = lock(&self.pos);
        p.truncating = false;
        if result.is_ok() {
            // The head itself moved with the status write (`write_status_then`).
            p.pending_sync.clear();
            add(&self.stats.truncations, 1);
            if background {
                add(&self.stats.background_truncations, 1);
                self.note_overshoot(&mut p, rise_from);
            }
            let us = started.elapsed().as_micros() as u64;
            add(&self.stats.truncation_time_us, us);
            self.stats.last_truncation_us.store(us, Ordering::Relaxed);
        }
        self.pos_cond.notify_all();
        result
    }
}
