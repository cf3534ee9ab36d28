//! Counters of an instance and the `query` snapshot of its log.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{lock, Inner, Rvm};
use crate::format::log::{Counters, SegmentEntry};
use crate::format::Uuid;

/// Counters of this instance since it was opened, plus the log's lifetime totals
/// ([`Rvm::statistics`]).
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    /// Transactions committed with `CommitMode::Flush`.
    pub flush_commits: u64,
    /// Transactions committed with `CommitMode::NoFlush`.
    pub no_flush_commits: u64,
    /// Transactions begun in `BeginMode::Restore`.
    pub restore_transactions: u64,
    /// Transactions begun in `BeginMode::NoRestore`.
    pub no_restore_transactions: u64,
    /// Transactions aborted (explicitly or by drop).
    pub aborts: u64,
    /// Log syncs (each covers every commit queued before it: group commit).
    pub flushes: u64,
    /// Transaction records written to the log.
    pub records_written: u64,
    /// Bytes of transaction records written to the log.
    pub bytes_logged: u64,
    /// Times the log's writing position wrapped to the start of the record area.
    pub wraps: u64,
    /// Truncations completed (records applied to the segments and log space freed).
    pub truncations: u64,
    /// Truncations run by the background thread (included in `truncations`).
    pub background_truncations: u64,
    /// Times a commit had to wait for log space.
    pub space_waits: u64,
    /// Ranges merged into an overlapping or adjacent range at commit.
    pub ranges_coalesced: u64,
    /// Log bytes saved by coalescing ranges.
    pub bytes_saved_by_coalescing: u64,
    /// Commits logged in the record of an earlier commit, each saving a record's header and
    /// trailer ([`Options::coalesce_transactions`](crate::Options::coalesce_transactions)).
    pub transactions_coalesced: u64,
    /// Ranges fewer in the log because the ranges of commits that share a record were merged
    /// there: each byte logged once, with its last value
    /// ([`Options::coalesce_transactions`](crate::Options::coalesce_transactions)).
    pub ranges_merged_across_commits: u64,
    /// Log bytes saved by that merging.
    pub bytes_saved_across_commits: u64,
    /// Time spent writing and syncing the log (and merging the records of several commits
    /// first), in microseconds.
    pub flush_time_us: u64,
    /// Time spent truncating, in microseconds.
    pub truncation_time_us: u64,
    /// Duration of the last truncation, in microseconds.
    pub last_truncation_us: u64,
    /// Records replayed by recovery when this instance opened the log.
    pub recovered_records: u64,
    /// Time recovery took before `open` returned, in microseconds.
    pub recovery_time_us: u64,
    /// The most log bytes in use (head to tail) right after any flush of this instance: how
    /// far truncation let the log fill.
    pub log_used_peak_bytes: u64,
    /// Totals over the life of the log (persisted in its status).
    pub lifetime: Counters,
}

/// A snapshot of the log's state.
#[derive(Debug, Clone)]
pub struct LogState {
    /// The log's file or device name.
    pub log_path: String,
    /// The log's identity (seeds every record CRC).
    pub log_uuid: Uuid,
    /// File offset of the record area.
    pub area_offset: u64,
    /// Size of the record area in bytes.
    pub area_size: u64,
    /// File offset of the oldest record not yet truncated.
    pub head_offset: u64,
    /// LSN of the oldest record not yet truncated.
    pub head_lsn: u64,
    /// File offset where the next flush writes.
    pub tail_offset: u64,
    /// LSN the next record gets.
    pub next_lsn: u64,
    /// Bytes of the record area holding records not yet truncated.
    pub used_bytes: u64,
    /// Bytes of the record area free for new records.
    pub free_bytes: u64,
    /// `used_bytes` as a percentage of the record area.
    pub used_percent: f64,
    /// Transactions begun and not yet ended or aborted.
    pub active_transactions: usize,
    /// no_flush commits queued in memory, not yet written to the log.
    pub queued_no_flush_commits: usize,
    /// Bytes of those queued commits.
    pub queued_bytes: usize,
    /// The log's generation (bumped by each run that writes records).
    pub generation: u64,
    /// The largest transaction record this log accepts.
    pub record_bytes_max: u64,
    /// The log's segment table (used entries only).
    pub segments: Vec<SegmentEntry>,
    /// How many bytes below the threshold background truncation starts now: how far the log
    /// rose above the use at which the last background truncation was asked for, until it ended,
    /// plus half as much again (a quarter of the threshold until one has ended), so that a
    /// steady producer does not fill the log past the threshold meanwhile. It never exceeds
    /// half the threshold, and shrinks by a quarter per truncation when the rise does
    /// ([`Rvm::set_truncate_threshold`]).
    pub truncation_lead_bytes: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) restore_transactions: AtomicU64,
    pub(crate) no_restore_transactions: AtomicU64,
    pub(crate) aborts: AtomicU64,
    pub(super) flushes: AtomicU64,
    pub(super) records_written: AtomicU64,
    pub(super) bytes_logged: AtomicU64,
    pub(super) wraps: AtomicU64,
    pub(super) truncations: AtomicU64,
    pub(super) background_truncations: AtomicU64,
    pub(super) space_waits: AtomicU64,
    pub(super) flush_time_us: AtomicU64,
    pub(super) truncation_time_us: AtomicU64,
    pub(super) last_truncation_us: AtomicU64,
    pub(super) recovered_records: AtomicU64,
    pub(super) recovery_time_us: AtomicU64,
    pub(super) log_used_peak_bytes: AtomicU64,
    pub(super) ranges_merged: AtomicU64,
    pub(super) bytes_saved_by_merging: AtomicU64,
}

pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Rvm {
    /// This instance's counters, and the log's lifetime totals.
    pub fn statistics(&self) -> Statistics {
        self.inner.statistics()
    }

    /// A snapshot of the log's positions, use and segment table.
    pub fn query(&self) -> LogState {
        self.inner.query()
    }

    /// The log-use high-water mark so far ([`Statistics::log_used_peak_bytes`]), after which
    /// the mark starts again from the log's use now: a monitor that takes it at intervals
    /// gets the peak of each interval.
    pub fn take_log_used_peak(&self) -> u64 {
        let p = lock(&self.inner.pos);
        let used = self.inner.used_bytes(&p);
        self.inner
            .stats
            .log_used_peak_bytes
            .swap(used, Ordering::Relaxed)
    }
}

impl Inner {
    pub(super) fn lifetime_counters(&self) -> Counters {
        let b = self.lifetime_base;
        let c = lock(&self.queue).counts;
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            flush_commits: b.flush_commits + c.flush_commits,
            no_flush_commits: b.no_flush_commits + c.no_flush_commits,
            aborts: b.aborts + g(&s.aborts) + c.own_refused,
            flushes: b.flushes + g(&s.flushes),
            records_written: b.records_written + g(&s.records_written),
            bytes_logged: b.bytes_logged + g(&s.bytes_logged),
            truncations: b.truncations + g(&s.truncations),
            recoveries: b.recoveries + u64::from(g(&s.recovered_records) > 0),
            wraps: b.wraps + g(&s.wraps),
            ranges_coalesced: b.ranges_coalesced + c.ranges_coalesced,
            bytes_saved_by_coalescing: b.bytes_saved_by_coalescing + c.bytes_saved_by_coalescing,
        }
    }

    pub(super) fn statistics(&self) -> Statistics {
        let c = lock(&self.queue).counts;
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Statistics {
            flush_commits: c.flush_commits,
            no_flush_commits: c.no_flush_commits,
            restore_transactions: c.restore_transactions + g(&s.restore_transactions),
            no_restore_transactions: c.no_restore_transactions + g(&s.no_restore_transactions),
            aborts: g(&s.aborts) + c.own_refused,
            flushes: g(&s.flushes),
            records_written: g(&s.records_written),
            bytes_logged: g(&s.bytes_logged),
            wraps: g(&s.wraps),
            truncations: g(&s.truncations),
            background_truncations: g(&s.background_truncations),
            space_waits: g(&s.space_waits),
            ranges_coalesced: c.ranges_coalesced,
            bytes_saved_by_coalescing: c.bytes_saved_by_coalescing,
            transactions_coalesced: c.transactions_coalesced,
            ranges_merged_across_commits: g(&s.ranges_merged),
            bytes_saved_across_commits: g(&s.bytes_saved_by_merging),
            flush_time_us: g(&s.flush_time_us),
            truncation_time_us: g(&s.truncation_time_us),
            last_truncation_us: g(&s.last_truncation_us),
            recovered_records: g(&s.recovered_records),
            recovery_time_us: g(&s.recovery_time_us),
            log_used_peak_bytes: g(&s.log_used_peak_bytes),
            lifetime: self.lifetime_counters(),
        }
    }

    pub(super) fn query(&self) -> LogState {
        let (queued, queued_bytes, committed) = {
            let q = lock(&self.queue);
            let c = q.counts;
            (
                q.queued_commits,
                q.buf.len(),
                // Records queued without a transaction were never begun. (Refused ones are
                // not in `begun` nor in `stats.aborts`: nothing to subtract for them.)
                (c.flush_commits + c.no_flush_commits).saturating_sub(c.own_records),
            )
        };
        // Read after the commits and aborts: every transaction counted there has its begin
        // counted here (its begin happened before its end, which this thread has seen).
        let ended = committed + self.stats.aborts.load(Ordering::Acquire);
        let active = self.begun.load(Ordering::Acquire).saturating_sub(ended);
        let status = lock(&self.status).clone();
        let p = lock(&self.pos);
        let area = self.area_end - self.area_start;
        let used = self.used_bytes(&p);
        LogState {
            log_path: self.log_name.clone(),
            log_uuid: status.log_uuid,
            area_offset: self.area_start,
            area_size: area,
            head_offset: p.head_offset,
            head_lsn: p.head_lsn,
            tail_offset: p.tail_offset,
            next_lsn: p.next_lsn,
            used_bytes: used,
            free_bytes: area - used,
            used_percent: used as f64 * 100.0 / area as f64,
            active_transactions: active as usize,
            queued_no_flush_commits: queued,
            queued_bytes,
            generation: status.generation,
            record_bytes_max: self.record_bytes_max,
            segments: status
                .segments
                .iter()
                .filter(|s| s.uuid != Uuid::NIL)
                .cloned()
                .collect(),
            truncation_lead_bytes: self.truncation_lead(&p),
        }
    }
}
