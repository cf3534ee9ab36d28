//! The `Rvm` instance: one log, the segments it maps, the commit queue, and truncation.
//!
//! The rooms follow the life of a transaction, top-down:
//!
//! * [`open`]: create a log, open it, and recover it (replay every committed record);
//! * [`segments`]: mapping and unmapping; [`plain_file`]: mapping a headerless file
//!   (`Rvm::map_file`) and finding it again at recovery; [`table`]: the log's segment table
//!   (claiming, refreshing and reclaiming entries);
//! * `crate::tx`: transactions (`set_range`, `end`, `abort`) capture records into the queue;
//! * [`commit`]: the commit queue and group commit (who leads a flush, who waits);
//! * [`flush`]: planning where queued records go in the log, sealing and writing them;
//! * [`status`]: the log positions and the status writes that persist them;
//! * [`truncation`]: when truncation runs and how it moves the head (`crate::apply` writes
//!   the records into the segments);
//! * [`stats`]: counters and the `query` snapshot.
//!
//! Lock order (outer first): `segments` → `status` → `regions` → `pos`; `queue` is never held
//! while taking another lock except `pos` for a moment. The range-lock table
//! (`crate::range_lock`, isolation only) is taken by `set_range` with no instance lock held,
//! and by reads under a segment's `mapped` guard; every wait on it is bounded. Log writes
//! happen outside every lock: one committer at a time becomes the flush leader
//! (`Queue::flushing`), takes the whole queue, writes it as one batch and syncs once for
//! everybody (group commit).

mod commit;
mod flush;
mod open;
mod options;
mod plain_file;
mod segments;
mod stats;
mod status;
mod table;
mod truncation;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::device::DeviceRef;
use crate::error::{Error, Result};
use crate::format::log::{Counters, CrcSeed, Status, STATUS_FLAG_CLEAN};
use crate::range_lock::RangeLocks;
use crate::segment::Segment;
use crate::sync::lock;

use crate::sync::read_lock;
pub(crate) use commit::{CommitCounts, Queue};
pub use options::Options;
pub use plain_file::{FileMapMode, FileMapOptions};
pub(crate) use segments::PinWord;
use segments::{RegionRef, Slot};
use stats::Stats;
pub use stats::{LogState, Statistics};
use status::Pos;

pub(crate) use crate::clock::{now_ms, now_us};

pub(crate) struct Inner {
    pub(crate) log: DeviceRef,
    pub(crate) log_name: String,
    seed: u32,
    /// The same seed as a ready hasher, for sealing records.
    crc: CrcSeed,
    area_start: u64,
    area_end: u64,
    pub(crate) record_bytes_max: u64,
    options: Options,
    /// The background-truncation threshold now (starts as `options`'; see
    /// [`Rvm::set_truncate_threshold`]).
    truncate_threshold_percent: AtomicU8,
    pub(crate) queue: Mutex<Queue>,
    queue_cond: Condvar,
    pos: Mutex<Pos>,
    pos_cond: Condvar,
    /// Held by the one truncation that runs at a time; it keeps the applier's buffers from
    /// one truncation to the next (see `Applier::reusing`).
    truncate_lock: Mutex<Option<crate::apply::ApplyBuffers>>,
    status: Mutex<Status>,
    lifetime_base: Counters,
    pub(crate) segments: RwLock<Vec<Slot>>,
    pub(crate) regions: RwLock<Vec<RegionRef>>,
    failed: Mutex<Option<String>>,
    /// Set (once) with `failed`: lets the commit path check without taking a lock.
    has_failed: AtomicBool,
    pub(crate) stats: Stats,
    /// Transactions begun. Those still active are this minus the commits (counted under the
    /// queue lock) and the aborts: a commit then touches no counter of its own. A library's
    /// own records are never counted here (`CommitCounts::own_records`, `own_refused`).
    pub(crate) begun: AtomicU64,
    /// Process-unique id of this instance (segments it maps carry it).
    pub(crate) id: u64,
    /// The range-lock table, when the instance runs with isolation.
    pub(crate) locks: Option<Arc<RangeLocks>>,
}

/// Source of [`Inner::id`].
pub(crate) static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);

/// A recoverable-memory instance: one log, its segments and their transactions.
///
/// `Rvm` is `Send + Sync`; share it between threads by reference (or in an `Arc`).
/// Dropping it flushes queued commits, marks the log cleanly closed and unmaps its segments;
/// [`Rvm::close`] does the same and reports errors.
///
/// # Which calls wait
///
/// - A [`CommitMode::Flush`](crate::CommitMode::Flush) commit ([`Transaction::end`](crate::Transaction::end)) and
///   [`Rvm::flush`] wait until the log is synced. Group commit: the first committer that
///   finds no flush running writes and syncs every queued commit at once; committers arriving
///   meanwhile wait for that sync or the next one. A `NoFlush` commit waits only when its
///   queue holds more than [`Options::no_flush_queue_bytes_max`] bytes.
/// - A flush that finds the log full truncates first (applies the log to the segments), and
///   [`Rvm::truncate`] waits for a truncation already running before it runs its own;
///   [`Rvm::wait_for_truncation`] waits for background truncation and recovery to finish.
/// - With [`Options::isolation`], [`Transaction::set_range`](crate::Transaction::set_range) (and the calls that write)
///   waits while another transaction holds any of the bytes, and the reads ([`Rvm::read`],
///   [`Segment::read`](crate::Segment::read)) wait while another thread's transaction does.
/// - The calls of an RDS heap ([`rds::Heap`](crate::rds::Heap)) wait only for another heap
///   call in progress, never for another transaction. The typed layer
///   ([`crate::typed`]) takes a heap's data lock for a changing transaction until it ends:
///   other threads' typed changes and reads wait for it.
/// - Lock waits end after [`Options::lock_timeout`] (default 10 s) with
///   [`Error::LockTimeout`].
/// - [`Rvm::open`] replays the log before it returns; [`Rvm::close`] flushes queued commits
///   and waits for the background truncation thread to stop.
///
/// # Example
///
/// Create a log and a segment with one region at a fixed address, commit a value, and find
/// it again after reopening:
///
/// ```
/// use rvm::segment::{self, CreateOptions, RegionSpec};
/// use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
/// # fn main() -> rvm::Result<()> {
/// let dir = std::env::temp_dir().join(format!("rvm-doc-rvm-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir).unwrap();
/// let (log, data) = (dir.join("log"), dir.join("data"));
/// Rvm::create_log(&log, 1 << 20)?; // a 1 MiB record area
/// let region = RegionSpec { length: 64 << 10, address: 0x2100_0000_0000 };
/// let header = segment::layout(4096 + region.length, &[region])?; // header, then the region
/// drop(segment::create(&data, &header, CreateOptions::default())?); // the handle holds a lock
///
/// let rvm = Rvm::open(&log, Options::default())?;
/// // SAFETY: the data file is in this example's own temporary directory; nothing shortens it.
/// let seg = unsafe { rvm.map(&data, MapOptions::default()) }?;
/// let base = seg.regions()[0].address;
/// assert_eq!(base, 0x2100_0000_0000);
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// tx.write(base, &42u64)?;
/// tx.end(CommitMode::Flush)?; // durable when this returns
/// rvm.close()?; // unmaps `seg`: its reads now fail with `Error::NotMapped`
/// assert!(seg.read::<u64>(base).is_err());
///
/// let rvm = Rvm::open(&log, Options::default())?;
/// // SAFETY: as above.
/// let seg = unsafe { rvm.map(&data, MapOptions::default()) }?;
/// assert_eq!(seg.read::<u64>(base)?, 42);
/// rvm.close()?;
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub struct Rvm {
    pub(crate) inner: Arc<Inner>,
    truncator: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Rvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rvm")
            .field("log", &self.inner.log_name)
            .finish()
    }
}

impl Rvm {
    /// Flush queued commits, mark the log cleanly closed, unmap every segment, and release
    /// the file locks of the log and of the segments' devices.
    ///
    /// Every handle derived from the instance becomes stale: [`Segment`]s, RDS heaps, roots
    /// and pointers then answer [`Error::NotMapped`]. A segment is unmapped even if a
    /// transaction leaked with `mem::forget` still declares a range in it (no transaction
    /// can be alive otherwise: each borrows the instance). The files can be opened again at
    /// once, by this process or another, even while stale handles are alive.
    ///
    /// Waits for the flush of queued commits (a log sync), for the background truncation
    /// thread to finish what it is doing and stop, and, if recovery's writes to the segments
    /// are not yet durable, for a truncation.
    ///
    /// # Errors
    /// The flush, truncation or status write failed (an I/O error naming the file), or an
    /// earlier failure left the instance unusable ([`Error::Failed`]). The segments are
    /// unmapped and the locks released even then; what was committed with flush is durable,
    /// and reopening the log recovers the rest that reached it.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let flushed = self.inner.flush_all();
        {
            let mut p = lock(&self.inner.pos);
            p.shutdown = true;
        }
        self.inner.pos_cond.notify_all();
        if let Some(h) = self.truncator.take() {
            let _ = h.join();
        }
        let result = flushed.and_then(|_| {
            self.inner.check_failed()?;
            let pending = !lock(&self.inner.pos).pending_sync.is_empty();
            if pending {
                self.inner.truncate_now(false)?;
            }
            if self.inner.clean_status_is_current() {
                // Opened and closed without a change: the log stays byte for byte.
                return Ok(());
            }
            self.inner.write_status(|s, p| {
                s.flags |= STATUS_FLAG_CLEAN;
                s.tail_offset = p.tail_offset;
                s.tail_lsn = p.next_lsn;
            })
        });
        let segments: Vec<Segment> = {
            let slots = read_lock(&self.inner.segments);
            slots
                .iter()
                .flat_map(|s| s.mapped.iter().cloned())
                .collect()
        };
        for s in segments {
            self.inner.unmap_segment_at_close(&s);
        }
        {
            let slots = read_lock(&self.inner.segments);
            for d in slots.iter().filter_map(|s| s.device.as_ref()) {
                d.unlock();
            }
        }
        self.inner.log.unlock();
        result
    }
}

impl Drop for Rvm {
    fn drop(&mut self) {
        if self.truncator.is_some() || !lock(&self.inner.pos).shutdown {
            let _ = self.shutdown();
        }
    }
}

impl Inner {
    /// `Err(Error::Failed)` once a failure left the instance unusable. Inlined: the commit
    /// path pays one load.
    #[inline]
    pub(crate) fn check_failed(&self) -> Result<()> {
        if !self.has_failed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.failed_error()
    }

    #[cold]
    #[inline(never)]
    fn failed_error(&self) -> Result<()> {
        match &*lock(&self.failed) {
            Some(cause) => Err(Error::Failed {
                path: self.log_name.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn fail(&self, e: &Error) {
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e.to_string());
            self.has_failed.store(true, Ordering::Release);
        }
    }

    fn log_io(&self, op: &'static str) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::io(&self.log_name, op, e)
    }
}
