//! Options for opening a log.

use std::path::PathBuf;
use std::time::Duration;

use crate::device::DeviceRef;

/// Options for [`Rvm::open`](crate::Rvm::open).
#[derive(Debug, Clone)]
pub struct Options {
    /// Log use (percent) that background truncation keeps the log under: it starts when the
    /// use comes within how far the log rose while the last background truncation ran (at
    /// most half the threshold; [`LogState::truncation_lead_bytes`](crate::LogState)) of it,
    /// and a quarter of the threshold ahead of it before any has ended. 0 disables the
    /// background thread (truncation then happens only when space runs out or when asked).
    ///
    /// The threshold trades what a crash leaves to replay against throughput: a lower one
    /// truncates more often, and each truncation rewrites the segment pages its records touch
    /// (on two cores it also takes one from the committing threads). A server that prefers
    /// throughput sets a higher one (BENCHMARKS.md, "Issue 10: where every target stands").
    pub truncate_threshold_percent: u8,
    /// Queued no_flush commits are flushed when they hold more than this many bytes.
    pub no_flush_queue_bytes_max: usize,
    /// On mid-log corruption, recover only the records before the damage instead of failing.
    pub recover_prefix: bool,
    /// Segment files to look in (by UUID) when the log's path hints are stale.
    pub segment_paths: Vec<PathBuf>,
    /// Segment devices to look in (tests, fuzzing).
    pub segment_devices: Vec<DeviceRef>,
    /// When true (the default), `open` returns once the log has been replayed into the
    /// segments' page cache; syncing them and freeing the log continues in the background.
    /// When false, `open` returns only after the recovered state is durable.
    pub background_recovery: bool,
    /// Isolation (off by default): when true, every range a transaction declares with
    /// `set_range` is locked until the transaction ends or aborts. Overlapping transactions
    /// then run one after the other, an aborted transaction's bytes never become durable
    /// through another transaction, and [`crate::Rvm::read`] / [`crate::Segment::read`] never
    /// return a value a transaction is half-way through writing. See the README, "Semantics".
    pub isolation: bool,
    /// The longest any call waits for a lock another transaction holds (a range lock under
    /// isolation, an RDS heap owned by another thread's transaction) before it fails with
    /// [`crate::Error::LockTimeout`]. A transaction leaked with `mem::forget` holds its locks
    /// forever; this bound turns that into an error instead of a hang. Default 10 s.
    pub lock_timeout: Duration,
    /// Log consecutive commits queued before a flush as one record (the classic library's
    /// `RVM_COALESCE_TRANS`; on by default). Each commit after the first then costs its ranges
    /// only, not a record's 80 bytes of header and trailer, in the log, in its CRC, and in
    /// every truncation and recovery that reads it; and where the commits of a record rewrote
    /// the same bytes (a heap's counters), the record holds them once, with their last value
    /// ([`Statistics::ranges_merged_across_commits`](crate::Statistics)). A crash keeps a
    /// record whole or not at all, so it keeps all of such a group or none of it: what
    /// survives is still every commit up to some point in commit order, and every commit
    /// acknowledged as durable (a flush commit, or any commit before a completed
    /// [`crate::Rvm::flush`]). Off, each commit is a record of its own, so a torn last flush
    /// can keep part of its commits. Changed later with
    /// [`crate::Rvm::set_coalesce_transactions`].
    pub coalesce_transactions: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            truncate_threshold_percent: 50,
            no_flush_queue_bytes_max: 8 << 20,
            recover_prefix: false,
            segment_paths: Vec::new(),
            segment_devices: Vec::new(),
            background_recovery: true,
            isolation: false,
            lock_timeout: Duration::from_secs(10),
            coalesce_transactions: true,
        }
    }
}

impl Options {
    /// Sets [`Options::truncate_threshold_percent`] (0 disables background truncation).
    pub fn truncate_threshold(mut self, percent: u8) -> Self {
        self.truncate_threshold_percent = percent;
        self
    }

    /// Sets [`Options::no_flush_queue_bytes_max`].
    pub fn no_flush_queue_bytes_max(mut self, bytes: usize) -> Self {
        self.no_flush_queue_bytes_max = bytes;
        self
    }

    /// Sets [`Options::recover_prefix`]: on mid-log corruption, recover the records before it.
    pub fn recover_prefix(mut self, yes: bool) -> Self {
        self.recover_prefix = yes;
        self
    }

    /// Adds a file to [`Options::segment_paths`], where recovery looks for segments by UUID.
    pub fn segment_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.segment_paths.push(path.into());
        self
    }

    /// Adds a device to [`Options::segment_devices`], where recovery looks for segments by UUID.
    pub fn segment_device(mut self, device: DeviceRef) -> Self {
        self.segment_devices.push(device);
        self
    }

    /// Sets [`Options::background_recovery`].
    pub fn background_recovery(mut self, yes: bool) -> Self {
        self.background_recovery = yes;
        self
    }
    /// Turn isolation (range locks held until end or abort) on or off.
    pub fn isolation(mut self, yes: bool) -> Self {
        self.isolation = yes;
        self
    }
    /// Set the longest wait for a lock another transaction holds.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
    /// Sets [`Options::coalesce_transactions`].
    pub fn coalesce_transactions(mut self, yes: bool) -> Self {
        self.coalesce_transactions = yes;
        self
    }
}
