//! The commit queue and group commit.

use std::sync::MutexGuard;
use std::time::Instant;

use super::stats::add;
use super::{lock, Inner, Rvm};
use crate::error::Result;
use crate::format::merge::{merge_ranges, worth_merging, MergeScratch};

/// Bounds of the pause a flush leader may take to let its group finish queueing.
pub(super) const GATHER_WAIT_US_MIN: u64 = 50;
pub(super) const GATHER_WAIT_US_MAX: u64 = 1000;

/// Commits waiting to be written.
pub(crate) struct Queue {
    /// Unsealed transaction records, back to back.
    pub(crate) buf: Vec<u8>,
    /// (start, length) of each record in `buf`.
    pub(crate) records: Vec<(usize, usize)>,
    /// The flush leader's buffers for merging (taken while it writes; made at the first
    /// flush, then reused).
    pub(super) merging: Option<Merging>,
    /// Commits queued in `buf` (more than `records` when records carry several).
    pub(crate) queued_commits: usize,
    /// The last record in `buf` takes the next commit's ranges too (it was queued with
    /// [`Options::coalesce_transactions`](crate::Options::coalesce_transactions) on).
    pub(crate) group_open: bool,
    /// Whether commits join the open record ([`Rvm::set_coalesce_transactions`]).
    pub(crate) coalesce: bool,
    /// The most bytes one record of several commits grows to (see [`group_bytes_max`]).
    pub(crate) group_bytes_max: usize,
    /// Sequence number of the last commit queued.
    pub(crate) queued_seq: u64,
    /// Every commit up to this sequence number is durable.
    pub(super) durable_seq: u64,
    pub(super) flushing: bool,
    pub(super) spare: Vec<u8>,
    /// Commit counters, kept here because every commit holds this lock anyway.
    pub(crate) counts: CommitCounts,
    /// Committers inside `flush_until` now (the leader included).
    pub(super) flush_waiters: usize,
    /// Recent peak of committers served by one log sync (decays by one per sync).
    pub(super) peak_waiters: usize,
    /// A would-be leader is briefly waiting for the rest of its group (see `flush_until`).
    pub(super) gathering: bool,
    /// Duration of the last log write + sync, to size that wait.
    pub(super) last_sync_us: u64,
}

impl Queue {
    /// Count one more commit queued (in a record of its own or in the open group's); returns
    /// its sequence number.
    #[inline]
    pub(crate) fn count_commit(&mut self) -> u64 {
        self.queued_commits += 1;
        self.queued_seq += 1;
        self.queued_seq
    }
}

/// Buffers the flush leader reuses to merge queued records ([`Inner::merge_queued`]).
#[derive(Default)]
pub(crate) struct Merging {
    scratch: MergeScratch,
    out: Vec<u8>,
}

/// Per-commit counters (see `Queue::counts`).
#[derive(Default, Clone, Copy)]
pub(crate) struct CommitCounts {
    pub(crate) flush_commits: u64,
    pub(crate) no_flush_commits: u64,
    pub(crate) restore_transactions: u64,
    pub(crate) no_restore_transactions: u64,
    pub(crate) ranges_coalesced: u64,
    pub(crate) bytes_saved_by_coalescing: u64,
    /// Commits whose ranges joined the record of an earlier commit.
    pub(crate) transactions_coalesced: u64,
    /// Records queued without a transaction (`tx::queue_own_record`), counted in the commit
    /// counts above but never begun (`query` subtracts them from the commits).
    pub(crate) own_records: u64,
    /// Records of that kind refused (`tx::queue_own_record`): aborts in the statistics, kept
    /// here rather than in `Stats::aborts`, which counts only transactions begun.
    pub(crate) own_refused: u64,
}

/// The largest record that several commits may share: 1 MiB, and at most 1/64 of the record
/// area (a record never straddles the area's end, so a large one can leave that much unused
/// at a wrap) and the largest record the log takes.
pub(super) fn group_bytes_max(area_bytes: u64, record_bytes_max: u64) -> usize {
    (1u64 << 20).min(area_bytes / 64).min(record_bytes_max) as usize
}

impl Rvm {
    /// Turn [`Options::coalesce_transactions`](crate::Options::coalesce_transactions) on or
    /// off for the commits queued from now on.
    pub fn set_coalesce_transactions(&self, yes: bool) {
        let mut q = lock(&self.inner.queue);
        q.coalesce = yes;
        if !yes {
            q.group_open = false;
        }
    }

    /// Write every queued no_flush commit to the log and sync it. Waits for the sync; if
    /// another thread is flushing, waits for its sync and then leads or joins the next one
    /// (group commit). If the log is full, truncates first.
    ///
    /// # Errors
    /// An I/O error naming the log (the instance is then unusable and later calls return
    /// [`Error::Failed`](crate::Error::Failed): reopen the log to recover), or `Error::Failed`
    /// itself.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }
}

impl Inner {
    /// Queue-side of a commit: called with the queue locked by the transaction after it has
    /// appended its record. Returns the commit's sequence number.
    pub(crate) fn queued(&self, q: &mut Queue, start: usize) -> u64 {
        let len = q.buf.len() - start;
        q.records.push((start, len));
        q.count_commit()
    }

    /// Merge the ranges of every queued record where ranges repeat ([`worth_merging`],
    /// [`merge_ranges`]): each byte is then logged once, with its last value. The records
    /// stay back to back in `buf` (`records` is updated, and `buf` shortened by what the
    /// merges saved). Runs in the flush leader, off the commit path.
    pub(super) fn merge_queued(
        &self,
        buf: &mut Vec<u8>,
        records: &mut [(usize, usize)],
        m: &mut Merging,
    ) {
        let back_to_back = records.last().is_some_and(|&(s, l)| s + l == buf.len())
            && records.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0);
        if !back_to_back {
            // Not the queue's layout: leave it.
            return;
        }
        let (mut ranges, mut bytes) = (0u64, 0u64);
        let mut write = records.first().map_or(0, |r| r.0);
        for record in records.iter_mut() {
            let (s, l) = *record;
            m.out.clear();
            let rec = &buf[s..s + l];
            let saving = if worth_merging(rec, &mut m.scratch) {
                merge_ranges(rec, &mut m.out, &mut m.scratch)
            } else {
                None
            };
            // Records are back to back and a merged one is shorter, so `write` never passes
            // `s`: the bytes overwritten are this record's or ones already moved.
            let len = match saving {
                Some(saving) => {
                    buf[write..write + m.out.len()].copy_from_slice(&m.out);
                    ranges += saving.ranges;
                    bytes += saving.bytes;
                    m.out.len()
                }
                None => {
                    if write != s {
                        buf.copy_within(s..s + l, write);
                    }
                    l
                }
            };
            *record = (write, len);
            write += len;
        }
        buf.truncate(write);
        if ranges > 0 {
            add(&self.stats.ranges_merged, ranges);
            add(&self.stats.bytes_saved_by_merging, bytes);
        }
    }

    pub(crate) fn queue_over_limit(&self, q: &Queue) -> bool {
        q.buf.len()
            > self
                .options
                .no_flush_queue_bytes_max
                .min(((self.area_end - self.area_start) / 4) as usize)
    }

    /// Make every commit up to `seq` durable, leading a flush if nobody else is.
    pub(crate) fn flush_until(&self, seq: u64) -> Result<()> {
        let mut q = lock(&self.queue);
        if q.durable_seq >= seq {
            return Ok(());
        }
        q.flush_waiters += 1;
        if q.gathering && q.flush_waiters >= q.peak_waiters {
            // The group a waiting leader expects is complete: let it go now.
            self.queue_cond.notify_all();
        }
        self.flush_until_locked(q, seq)
    }

    /// Group commit. The first committer that finds no flush running leads: it takes the whole
    /// queue, writes it as one batch and syncs once for everybody queued. Committers that
    /// arrive meanwhile wait for the next leader. Without a pause, the threads released by
    /// one sync would still be between `begin` and `end` when the next leader takes the queue,
    /// and the committers would split into groups taking turns. So when fewer committers are
    /// waiting than recent syncs served (a peak that decays by one per sync), the would-be
    /// leader waits once, at most the last sync's duration (bounded by
    /// GATHER_WAIT_US_MIN..MAX), for the rest to queue. A lone committer never waits.
    pub(super) fn flush_until_locked<'q>(
        &'q self,
        mut q: MutexGuard<'q, Queue>,
        seq: u64,
    ) -> Result<()> {
        let mut gathered = false;
        loop {
            // Leave the count of waiters while still holding the lock, so a would-be leader
            // never counts a committer that is already done.
            if q.durable_seq >= seq {
                q.flush_waiters -= 1;
                return Ok(());
            }
            if let Err(e) = self.check_failed() {
                q.flush_waiters -= 1;
                return Err(e);
            }
            if q.flushing {
                q = self.queue_cond.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if !gathered && q.flush_waiters > 0 && q.flush_waiters < q.peak_waiters {
                gathered = true;
                q.gathering = true;
                let wait_us = q.last_sync_us.clamp(GATHER_WAIT_US_MIN, GATHER_WAIT_US_MAX);
                q = self
                    .queue_cond
                    .wait_timeout(q, std::time::Duration::from_micros(wait_us))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                q.gathering = false;
                continue;
            }
            q.flushing = true;
            q.peak_waiters = q.flush_waiters.max(q.peak_waiters.saturating_sub(1));
            let spare = std::mem::take(&mut q.spare);
            let mut buf = std::mem::replace(&mut q.buf, spare);
            let mut records = std::mem::take(&mut q.records);
            let mut merging = q.merging.take().unwrap_or_default();
            q.queued_commits = 0;
            q.group_open = false;
            let upto = q.queued_seq;
            drop(q);
            let started = Instant::now();
            self.merge_queued(&mut buf, &mut records, &mut merging);
            let result = self.write_batches(&mut buf, &records);
            let took_us = started.elapsed().as_micros() as u64;
            add(&self.stats.flush_time_us, took_us);
            q = lock(&self.queue);
            q.flushing = false;
            q.last_sync_us = took_us;
            q.merging = Some(merging);
            buf.clear();
            if q.spare.capacity() < buf.capacity() {
                q.spare = buf;
            }
            match result {
                Ok(()) => q.durable_seq = upto,
                Err(e) => {
                    self.fail(&e);
                    q.flush_waiters -= 1;
                    self.queue_cond.notify_all();
                    return Err(e);
                }
            }
            // Every thread waiting on `queue_cond` is counted in `flush_waiters`; a lone
            // committer (the leader alone) saves the futex wake-up system call.
            if q.flush_waiters > 1 {
                self.queue_cond.notify_all();
            }
        }
    }

    pub(crate) fn flush_all(&self) -> Result<()> {
        let seq = lock(&self.queue).queued_seq;
        self.flush_until(seq)
    }
}
