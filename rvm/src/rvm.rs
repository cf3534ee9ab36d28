//! The `Rvm` instance: one log, the segments it maps, the commit queue, and truncation.
//!
//! Lock order (outer first): `segments` → `status` → `regions` → `pos`; `queue` is never held
//! while taking another lock except `pos` for a moment. Log writes happen outside every lock:
//! one committer at a time becomes the flush leader (`Queue::flushing`), takes the whole queue,
//! writes it as one batch and syncs once for everybody (group commit).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::device::{Access, Device, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{
    encode_pad, seal_record, stamp_time, Counters, SegmentEntry, Status, PATH_HINT_BYTES_MAX,
    RECORD_AREA_MAX_BYTES, RECORD_AREA_MIN_BYTES, RECORD_AREA_OFFSET, RECORD_MIN_SIZE, SECTOR_SIZE,
    SEGMENTS_PER_LOG_MAX, STATUS_FLAG_CLEAN, STATUS_SLOT_SIZE,
};
use crate::format::segment::SegmentHeader;
use crate::format::{align_up, Uuid};
use crate::log::{LogReader, ScanEnd};
use crate::mapping;
use crate::segment::{
    read_header_from, MapOptions, MappedRegion, Placement, Segment, SegmentShared,
};
use crate::truncate::Applier;
use crate::tx::{BeginMode, Transaction};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Bounds of the pause a flush leader may take to let its group finish queueing.
const GATHER_WAIT_US_MIN: u64 = 50;
const GATHER_WAIT_US_MAX: u64 = 1000;

/// Room kept after every record when planning a flush, so the sector pad that ends the
/// flush always fits (a pad is at least [`RECORD_MIN_SIZE`] and at most a sector more).
const PAD_RESERVE_BYTES: u64 = SECTOR_SIZE + RECORD_MIN_SIZE;

/// Options for [`Rvm::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Log use (percent) at which background truncation starts; 0 disables the background
    /// thread (truncation then happens only when space runs out or when asked).
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
        }
    }
}

impl Options {
    pub fn truncate_threshold(mut self, percent: u8) -> Self {
        self.truncate_threshold_percent = percent;
        self
    }
    pub fn no_flush_queue_bytes_max(mut self, bytes: usize) -> Self {
        self.no_flush_queue_bytes_max = bytes;
        self
    }
    pub fn recover_prefix(mut self, yes: bool) -> Self {
        self.recover_prefix = yes;
        self
    }
    pub fn segment_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.segment_paths.push(path.into());
        self
    }
    pub fn segment_device(mut self, device: DeviceRef) -> Self {
        self.segment_devices.push(device);
        self
    }
    pub fn background_recovery(mut self, yes: bool) -> Self {
        self.background_recovery = yes;
        self
    }
}

/// Counters of this instance, plus the log's lifetime totals.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    pub flush_commits: u64,
    pub no_flush_commits: u64,
    pub restore_transactions: u64,
    pub no_restore_transactions: u64,
    pub aborts: u64,
    /// Log syncs (each covers every commit queued before it: group commit).
    pub flushes: u64,
    pub records_written: u64,
    pub bytes_logged: u64,
    pub wraps: u64,
    pub truncations: u64,
    pub background_truncations: u64,
    /// Times a commit had to wait for log space.
    pub space_waits: u64,
    pub ranges_coalesced: u64,
    pub bytes_saved_by_coalescing: u64,
    pub flush_time_us: u64,
    pub truncation_time_us: u64,
    pub last_truncation_us: u64,
    pub recovered_records: u64,
    pub recovery_time_us: u64,
    /// Totals over the life of the log (persisted in its status).
    pub lifetime: Counters,
}

/// A snapshot of the log's state.
#[derive(Debug, Clone)]
pub struct LogState {
    pub log_path: String,
    pub log_uuid: Uuid,
    pub area_offset: u64,
    pub area_size: u64,
    pub head_offset: u64,
    pub head_lsn: u64,
    pub tail_offset: u64,
    pub next_lsn: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub used_percent: f64,
    pub active_transactions: usize,
    pub queued_no_flush_commits: usize,
    pub queued_bytes: usize,
    pub generation: u64,
    /// The largest transaction record this log accepts.
    pub record_bytes_max: u64,
    pub segments: Vec<SegmentEntry>,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) restore_transactions: AtomicU64,
    pub(crate) no_restore_transactions: AtomicU64,
    pub(crate) aborts: AtomicU64,
    flushes: AtomicU64,
    records_written: AtomicU64,
    bytes_logged: AtomicU64,
    wraps: AtomicU64,
    truncations: AtomicU64,
    background_truncations: AtomicU64,
    space_waits: AtomicU64,
    flush_time_us: AtomicU64,
    truncation_time_us: AtomicU64,
    last_truncation_us: AtomicU64,
    recovered_records: AtomicU64,
    recovery_time_us: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Commits waiting to be written.
pub(crate) struct Queue {
    /// Unsealed transaction records, back to back.
    pub(crate) buf: Vec<u8>,
    /// (start, length) of each record in `buf`.
    pub(crate) records: Vec<(usize, usize)>,
    /// Sequence number of the last commit queued.
    pub(crate) queued_seq: u64,
    /// Every commit up to this sequence number is durable.
    durable_seq: u64,
    flushing: bool,
    spare: Vec<u8>,
    /// Commit counters, kept here because every commit holds this lock anyway.
    pub(crate) counts: CommitCounts,
    /// Committers inside `flush_until` now (the leader included).
    flush_waiters: usize,
    /// Recent peak of committers served by one log sync (decays by one per sync).
    peak_waiters: usize,
    /// A would-be leader is briefly waiting for the rest of its group (see `flush_until`).
    gathering: bool,
    /// Duration of the last log write + sync, to size that wait.
    last_sync_us: u64,
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
}

/// Log positions.
struct Pos {
    head_offset: u64,
    head_lsn: u64,
    tail_offset: u64,
    next_lsn: u64,
    /// Records below this LSN were already replayed into the segments by recovery.
    applied_lsn: u64,
    /// Segments recovery wrote to that still need a sync before the head may move.
    pending_sync: BTreeSet<u32>,
    /// The status write that starts this run's generation has happened.
    generation_started: bool,
    truncation_requested: bool,
    truncating: bool,
    shutdown: bool,
}

impl Pos {
    fn is_empty(&self) -> bool {
        self.head_lsn == self.next_lsn
    }
}

/// A segment the log knows about (an entry of its segment table).
pub(crate) struct Slot {
    pub(crate) entry: SegmentEntry,
    pub(crate) device: Option<DeviceRef>,
    pub(crate) header: Option<SegmentHeader>,
    pub(crate) mapped: Option<Segment>,
    /// Unmapped after changes: truncate before mapping again so the mapping sees them.
    remap_needs_truncate: bool,
}

impl Slot {
    fn free(&self) -> bool {
        self.entry.uuid == Uuid::NIL
    }
}

/// A mapped region, as `set_range` looks it up.
#[derive(Clone)]
pub(crate) struct RegionRef {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) slot: u32,
    pub(crate) segment_offset: u64,
    /// Transactions holding ranges in this region; unmapping requires zero.
    pub(crate) pins: Arc<AtomicUsize>,
}

pub(crate) struct Inner {
    pub(crate) log: DeviceRef,
    pub(crate) log_name: String,
    seed: u32,
    area_start: u64,
    area_end: u64,
    pub(crate) record_bytes_max: u64,
    options: Options,
    pub(crate) queue: Mutex<Queue>,
    queue_cond: Condvar,
    pos: Mutex<Pos>,
    pos_cond: Condvar,
    truncate_lock: Mutex<()>,
    status: Mutex<Status>,
    lifetime_base: Counters,
    pub(crate) segments: RwLock<Vec<Slot>>,
    pub(crate) regions: RwLock<Vec<RegionRef>>,
    failed: Mutex<Option<String>>,
    /// Set (once) with `failed`: lets the commit path check without taking a lock.
    has_failed: std::sync::atomic::AtomicBool,
    pub(crate) stats: Stats,
    pub(crate) active: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A recoverable-memory instance: one log, its segments and their transactions.
///
/// `Rvm` is `Send + Sync`; share it between threads by reference (or in an `Arc`).
/// Dropping it flushes queued commits, marks the log cleanly closed and unmaps its segments;
/// [`Rvm::close`] does the same and reports errors.
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
    /// Create a new log file (mode 0600) with a record area of `area_bytes` (rounded down to
    /// a sector). Refuses an existing file.
    pub fn create_log(path: impl AsRef<Path>, area_bytes: u64) -> Result<()> {
        let path = path.as_ref();
        let name = path.display().to_string();
        check_area(area_bytes)?;
        let dev = FileDevice::create_new(path).map_err(|e| Error::io(&name, "create", e))?;
        Self::init_log_on(&dev, area_bytes)
    }

    /// Write a fresh, empty log onto a device (an existing file or a block device), discarding
    /// what it held. The caller decides whether that is safe (see `LogReader::scan`).
    pub fn init_log_on(device: &dyn Device, area_bytes: u64) -> Result<()> {
        let name = device.name().to_string();
        let area = area_bytes / SECTOR_SIZE * SECTOR_SIZE;
        check_area(area)?;
        let total = RECORD_AREA_OFFSET + area;
        if device.is_block_device() {
            let have = device.len().map_err(|e| Error::io(&name, "size", e))?;
            if have < total {
                return Err(Error::InvalidArgument {
                    parameter: "log size",
                    rule: format!("{name} holds {have} bytes, the log needs {total}"),
                });
            }
        } else {
            device
                .set_len(0)
                .map_err(|e| Error::io(&name, "truncate", e))?;
            device
                .set_len(total)
                .map_err(|e| Error::io(&name, "set length", e))?;
        }
        let uuid = Uuid::random().map_err(|e| Error::io(&name, "uuid", e))?;
        let status = Status::new_log(uuid, area, now_ms());
        // Both slots: slot 1 holds sequence 1 (current); slot 0 an older copy of the same.
        let mut older = status.clone();
        older.sequence = 0;
        device
            .write_at(&older.encode(), 0)
            .map_err(|e| Error::io(&name, "write status", e))?;
        device
            .write_at(&status.encode(), STATUS_SLOT_SIZE)
            .map_err(|e| Error::io(&name, "write status", e))?;
        device.sync().map_err(|e| Error::io(&name, "fsync", e))
    }

    /// Open a log file, lock it, and recover it (see [`Rvm::open_device`]).
    pub fn open(log: impl AsRef<Path>, options: Options) -> Result<Rvm> {
        let path = log.as_ref();
        let name = path.display().to_string();
        let dev =
            FileDevice::open(path, Access::ReadWrite).map_err(|e| Error::io(&name, "open", e))?;
        Self::open_device(Arc::new(dev), options)
    }

    /// Open a log on a device and recover it: every committed transaction in the log is
    /// replayed into its segment before this returns, and nothing uncommitted is.
    pub fn open_device(log: DeviceRef, options: Options) -> Result<Rvm> {
        let started = Instant::now();
        let reader = LogReader::from_device(log.clone())?;
        let status = reader.status().clone();
        let name = log.name().to_string();
        let scan = reader.scan()?;
        if let ScanEnd::Corrupt {
            offset,
            lsn,
            detail,
            later_lsn,
            later_offset,
        } = &scan.end
        {
            if !options.recover_prefix {
                return Err(Error::LogCorrupt {
                    path: name,
                    offset: *offset,
                    lsn: *lsn,
                    detail: detail.clone(),
                    later_lsn: *later_lsn,
                    later_offset: *later_offset,
                });
            }
        }
        let mut slots: Vec<Slot> = status
            .segments
            .iter()
            .map(|e| Slot {
                entry: e.clone(),
                device: None,
                header: None,
                mapped: None,
                remap_needs_truncate: false,
            })
            .collect();
        let mut touched = BTreeSet::new();
        if !scan.segments_used.is_empty() {
            // Resolve every segment the live records name before writing anything.
            for index in &scan.segments_used {
                let slot = slots.get_mut(*index as usize).filter(|s| !s.free()).ok_or_else(|| Error::DamagedRecord {
                    path: name.clone(),
                    offset: status.head_offset,
                    detail: format!("a record names segment {index}, which the log's segment table does not hold"),
                })?;
                let (device, header) = find_segment(&name, &slot.entry, &options)?;
                slot.device = Some(device);
                slot.header = Some(header);
            }
            let mut applier = Applier::new(&name);
            reader.walk_scanned(
                status.head_offset,
                status.head_lsn,
                scan.next_lsn,
                |offset, header, body| {
                    applier.add_body(offset, header, body, &|i| slot_target(&slots, i))
                },
            )?;
            touched = applier.finish(&|i| slot_target(&slots, i))?;
        }
        let record_bytes_max = status.area_size - 2 * PAD_RESERVE_BYTES;
        let inner = Arc::new(Inner {
            seed: reader.seed(),
            area_start: status.area_offset,
            area_end: status.area_end(),
            record_bytes_max,
            queue: Mutex::new(Queue {
                buf: Vec::new(),
                records: Vec::new(),
                queued_seq: 0,
                durable_seq: 0,
                flushing: false,
                spare: Vec::new(),
                counts: CommitCounts::default(),
                flush_waiters: 0,
                peak_waiters: 0,
                gathering: false,
                last_sync_us: 0,
            }),
            queue_cond: Condvar::new(),
            pos: Mutex::new(Pos {
                head_offset: reader.normalize(status.head_offset),
                head_lsn: status.head_lsn,
                tail_offset: reader.normalize(scan.tail_offset),
                next_lsn: scan.next_lsn,
                applied_lsn: scan.next_lsn,
                pending_sync: touched,
                generation_started: false,
                truncation_requested: false,
                truncating: false,
                shutdown: false,
            }),
            pos_cond: Condvar::new(),
            truncate_lock: Mutex::new(()),
            lifetime_base: status.counters,
            status: Mutex::new(status),
            segments: RwLock::new(slots),
            regions: RwLock::new(Vec::new()),
            failed: Mutex::new(None),
            has_failed: std::sync::atomic::AtomicBool::new(false),
            stats: Stats::default(),
            active: AtomicUsize::new(0),
            log,
            log_name: name,
            options,
        });
        add(&inner.stats.recovered_records, scan.records.len() as u64);
        let mut rvm = Rvm {
            inner,
            truncator: None,
        };
        if rvm.inner.options.truncate_threshold_percent > 0 {
            let worker = rvm.inner.clone();
            let handle = std::thread::Builder::new()
                .name("rvm-truncate".into())
                .spawn(move || worker.truncation_thread())
                .map_err(|e| Error::io(&rvm.inner.log_name, "spawn truncation thread", e))?;
            rvm.truncator = Some(handle);
        }
        let needs_finish = {
            let p = lock(&rvm.inner.pos);
            !p.is_empty() || !p.pending_sync.is_empty()
        };
        if needs_finish {
            add(
                &rvm.inner.stats.recovery_time_us,
                started.elapsed().as_micros() as u64,
            );
            if rvm.inner.options.background_recovery && rvm.truncator.is_some() {
                rvm.inner.request_truncation();
            } else {
                rvm.inner.truncate_now(false)?;
            }
        }
        Ok(rvm)
    }

    /// Map a segment file: each region at the address in its header (or anywhere, per
    /// `options`). Nothing is read up front; pages fault in when touched.
    pub fn map(&self, path: impl AsRef<Path>, options: MapOptions) -> Result<Segment> {
        let path = path.as_ref();
        let name = path.display().to_string();
        // The unlocked probe only learns the UUID, to reuse a device recovery already holds
        // (a second open would find our own lock). `map_segment` reads the header again from
        // the locked device it maps, which is the copy that counts.
        let probe =
            FileDevice::open(path, Access::ReadOnly).map_err(|e| Error::io(&name, "open", e))?;
        let header = read_header_from(&probe)?;
        drop(probe);
        let existing = {
            let slots = self
                .inner
                .segments
                .read()
                .unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .find(|s| s.entry.uuid == header.uuid)
                .and_then(|s| s.device.clone())
        };
        let device: DeviceRef = match existing {
            Some(d) => d,
            None => Arc::new(
                FileDevice::open(path, Access::ReadWrite)
                    .map_err(|e| Error::io(&name, "open", e))?,
            ),
        };
        let hint = std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or(name);
        self.inner.map_segment(device, hint, options)
    }

    /// Map a segment held on a device.
    pub fn map_device(&self, device: DeviceRef, options: MapOptions) -> Result<Segment> {
        let hint = device.name().to_string();
        self.inner.map_segment(device, hint, options)
    }

    /// Unmap a segment. Refused while a transaction holds a range in it. Its committed changes
    /// stay in the log; mapping it again shows them.
    pub fn unmap(&self, segment: &Segment) -> Result<()> {
        self.inner.unmap_segment(segment)
    }

    /// The mapped segments.
    pub fn segments(&self) -> Vec<Segment> {
        let slots = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner());
        slots.iter().filter_map(|s| s.mapped.clone()).collect()
    }

    /// Begin a transaction.
    pub fn begin(&self, mode: BeginMode) -> Result<Transaction<'_>> {
        self.inner.check_failed()?;
        Ok(Transaction::new(self, mode))
    }

    /// Write every queued no_flush commit to the log and sync it.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }

    /// Flush, then apply the whole log to the segments, sync them, and free the log.
    pub fn truncate(&self) -> Result<()> {
        self.inner.flush_all()?;
        self.inner.truncate_now(false)
    }

    /// Wait until no truncation is requested or running (after `open`, until recovery is
    /// durable).
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

    /// Copy mapped memory at `address` into `buf` (the address may be in any mapped segment).
    pub fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<()> {
        let seg = self
            .segment_at(address, buf.len())
            .ok_or(Error::NotMapped {
                address: address as u64,
                length: buf.len() as u64,
            })?;
        seg.read_bytes(address, buf)
    }

    /// Read a plain value at `address`.
    pub fn read<T: bytemuck::Pod>(&self, address: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_bytes(address, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// The mapped segment holding `[address, address+len)`.
    pub fn segment_at(&self, address: usize, len: usize) -> Option<Segment> {
        let slots = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|s| s.mapped.as_ref())
            .find(|s| s.region_of(address, len).is_some())
            .cloned()
    }

    pub fn statistics(&self) -> Statistics {
        self.inner.statistics()
    }

    pub fn query(&self) -> LogState {
        self.inner.query()
    }

    /// Flush queued commits, mark the log cleanly closed, and unmap every segment.
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
            let slots = self
                .inner
                .segments
                .read()
                .unwrap_or_else(|e| e.into_inner());
            slots.iter().filter_map(|s| s.mapped.clone()).collect()
        };
        for s in segments {
            let _ = self.inner.unmap_segment(&s);
        }
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

fn check_area(area: u64) -> Result<()> {
    if !(RECORD_AREA_MIN_BYTES..=RECORD_AREA_MAX_BYTES).contains(&area) {
        return Err(Error::InvalidArgument {
            parameter: "log size",
            rule: format!(
                "the record area must be between {RECORD_AREA_MIN_BYTES} and {RECORD_AREA_MAX_BYTES} bytes, got {area}"
            ),
        });
    }
    Ok(())
}

fn slot_target(slots: &[Slot], index: u32) -> Option<(DeviceRef, SegmentHeader)> {
    let s = slots.get(index as usize)?;
    Some((s.device.clone()?, s.header.clone()?))
}

/// Find the segment a log entry names: explicit devices and paths first (by UUID), then the
/// path hint. Opens it read-write with a lock.
fn find_segment(
    log: &str,
    entry: &SegmentEntry,
    options: &Options,
) -> Result<(DeviceRef, SegmentHeader)> {
    for dev in &options.segment_devices {
        if let Ok(h) = read_header_from(&**dev) {
            if h.uuid == entry.uuid {
                return Ok((dev.clone(), h));
            }
        }
    }
    let mut wrong = None;
    let hint = (!entry.path_hint.is_empty()).then(|| PathBuf::from(&entry.path_hint));
    for path in options.segment_paths.iter().chain(hint.iter()) {
        let name = path.display().to_string();
        let Ok(probe) = FileDevice::open(path, Access::ReadOnly) else {
            continue;
        };
        match read_header_from(&probe) {
            Ok(h) if h.uuid == entry.uuid => {
                drop(probe);
                let dev = FileDevice::open(path, Access::ReadWrite)
                    .map_err(|e| Error::io(&name, "open", e))?;
                return Ok((Arc::new(dev), h));
            }
            Ok(h) => {
                wrong = Some(Error::WrongSegment {
                    path: name,
                    expected: entry.uuid,
                    found: h.uuid,
                })
            }
            Err(_) => {}
        }
    }
    Err(wrong.unwrap_or_else(|| Error::SegmentNotFound {
        log: log.to_string(),
        uuid: entry.uuid,
        path_hint: entry.path_hint.clone(),
    }))
}

/// Append a whole pad record (header, zero body, trailer) of `length` bytes to `buf`.
fn append_pad(
    buf: &mut Vec<u8>,
    length: u64,
    lsn: u64,
    generation: u64,
    batch_first_lsn: u64,
    seed: u32,
) {
    let (h, t) = encode_pad(length, lsn, generation, batch_first_lsn, seed);
    buf.extend_from_slice(&h);
    buf.resize(buf.len() + (length as usize - h.len() - t.len()), 0);
    buf.extend_from_slice(&t);
}

/// One item of a planned flush.
enum Item {
    Record { index: usize, offset: u64, lsn: u64 },
    Pad { offset: u64, length: u64, lsn: u64 },
}

impl Inner {
    pub(crate) fn check_failed(&self) -> Result<()> {
        if !self.has_failed.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*lock(&self.failed) {
            Some(cause) => Err(Error::Failed {
                path: self.log_name.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&self, e: &Error) {
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e.to_string());
            self.has_failed.store(true, Ordering::Release);
        }
    }

    fn log_io(&self, op: &'static str) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::io(&self.log_name, op, e)
    }

    /// Write a new status slot built from the last one, the positions, and `change`.
    fn write_status(&self, change: impl FnOnce(&mut Status, &Pos)) -> Result<()> {
        self.write_status_then(change, |_| {})
    }

    /// Write a status, then apply `then` to the in-memory positions *before releasing the
    /// status lock*. A status write copies the head from `pos`; if the head moved in a
    /// separate step after the write, a status written in between by another thread would
    /// record the old head, and once the space behind the new head was reused, recovery
    /// from that status would stop at the first reused record and lose everything after
    /// it. (Found by the crash-model test.)
    fn write_status_then(
        &self,
        change: impl FnOnce(&mut Status, &Pos),
        then: impl FnOnce(&mut Pos),
    ) -> Result<()> {
        let mut last = lock(&self.status);
        let mut next = last.clone();
        {
            let p = lock(&self.pos);
            next.head_offset = p.head_offset;
            next.head_lsn = p.head_lsn;
            next.tail_offset = p.tail_offset;
            next.tail_lsn = p.next_lsn;
            next.flags &= !STATUS_FLAG_CLEAN;
            change(&mut next, &p);
        }
        next.sequence = last.sequence + 1;
        next.written_unix_ms = now_ms();
        next.counters = self.lifetime_counters();
        let bytes = next.encode();
        let at = next.slot() * STATUS_SLOT_SIZE;
        self.log
            .write_at(&bytes, at)
            .map_err(self.log_io("write status"))?;
        self.log.sync().map_err(self.log_io("fsync status"))?;
        *last = next;
        then(&mut lock(&self.pos));
        Ok(())
    }

    /// Whether the last status written already says what closing would write (the clean
    /// flag, the positions, the lifetime counters), so closing need not write it again.
    fn clean_status_is_current(&self) -> bool {
        let counters = self.lifetime_counters();
        let s = lock(&self.status);
        let p = lock(&self.pos);
        s.flags & STATUS_FLAG_CLEAN != 0
            && (s.head_offset, s.head_lsn) == (p.head_offset, p.head_lsn)
            && (s.tail_offset, s.tail_lsn) == (p.tail_offset, p.next_lsn)
            && s.counters == counters
    }

    fn lifetime_counters(&self) -> Counters {
        let b = self.lifetime_base;
        let c = lock(&self.queue).counts;
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            flush_commits: b.flush_commits + c.flush_commits,
            no_flush_commits: b.no_flush_commits + c.no_flush_commits,
            aborts: b.aborts + g(&s.aborts),
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

    fn statistics(&self) -> Statistics {
        let c = lock(&self.queue).counts;
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Statistics {
            flush_commits: c.flush_commits,
            no_flush_commits: c.no_flush_commits,
            restore_transactions: c.restore_transactions + g(&s.restore_transactions),
            no_restore_transactions: c.no_restore_transactions + g(&s.no_restore_transactions),
            aborts: g(&s.aborts),
            flushes: g(&s.flushes),
            records_written: g(&s.records_written),
            bytes_logged: g(&s.bytes_logged),
            wraps: g(&s.wraps),
            truncations: g(&s.truncations),
            background_truncations: g(&s.background_truncations),
            space_waits: g(&s.space_waits),
            ranges_coalesced: c.ranges_coalesced,
            bytes_saved_by_coalescing: c.bytes_saved_by_coalescing,
            flush_time_us: g(&s.flush_time_us),
            truncation_time_us: g(&s.truncation_time_us),
            last_truncation_us: g(&s.last_truncation_us),
            recovered_records: g(&s.recovered_records),
            recovery_time_us: g(&s.recovery_time_us),
            lifetime: self.lifetime_counters(),
        }
    }

    fn used_bytes(&self, p: &Pos) -> u64 {
        if p.is_empty() {
            0
        } else if p.tail_offset > p.head_offset {
            p.tail_offset - p.head_offset
        } else {
            (self.area_end - p.head_offset) + (p.tail_offset - self.area_start)
        }
    }

    fn query(&self) -> LogState {
        let (queued, queued_bytes) = {
            let q = lock(&self.queue);
            (q.records.len(), q.buf.len())
        };
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
            active_transactions: self.active.load(Ordering::Relaxed),
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
        }
    }

    fn map_segment(
        &self,
        device: DeviceRef,
        path_hint: String,
        options: MapOptions,
    ) -> Result<Segment> {
        self.check_failed()?;
        let header = read_header_from(&*device)?;
        let needs_truncate = {
            let slots = self.segments.read().unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .any(|s| s.entry.uuid == header.uuid && s.remap_needs_truncate)
        };
        if needs_truncate {
            self.flush_all()?;
            self.truncate_now(false)?;
        }
        let mut slots = self.segments.write().unwrap_or_else(|e| e.into_inner());
        let index = match slots.iter().position(|s| s.entry.uuid == header.uuid) {
            Some(i) => {
                if slots[i].mapped.is_some() {
                    return Err(Error::AlreadyMapped {
                        path: device.name().to_string(),
                    });
                }
                i
            }
            None => {
                let hint = if path_hint.len() <= PATH_HINT_BYTES_MAX {
                    path_hint
                } else {
                    String::new()
                };
                let entry = SegmentEntry {
                    uuid: header.uuid,
                    length_bytes: header.length_bytes,
                    path_hint: hint,
                };
                let new = Slot {
                    entry: entry.clone(),
                    device: None,
                    header: None,
                    mapped: None,
                    remap_needs_truncate: false,
                };
                let i = match slots.iter().position(|s| s.free()) {
                    Some(i) => {
                        slots[i] = new;
                        i
                    }
                    None if slots.len() < SEGMENTS_PER_LOG_MAX => {
                        slots.push(new);
                        slots.len() - 1
                    }
                    None => {
                        return Err(Error::TooManySegments {
                            log: self.log_name.clone(),
                            max: SEGMENTS_PER_LOG_MAX,
                        })
                    }
                };
                // The table is durable before any record can name the new index.
                let table: Vec<SegmentEntry> = slots.iter().map(|s| s.entry.clone()).collect();
                if let Err(e) = self.write_status(|s, _| s.segments = table) {
                    slots[i].entry.uuid = Uuid::NIL;
                    return Err(e);
                }
                i
            }
        };
        let mut mapped: Vec<MappedRegion> = Vec::new();
        for (ri, r) in header.regions.iter().enumerate() {
            let want = match options.placement {
                Placement::Fixed => Some(r.address as usize),
                Placement::Anywhere => None,
            };
            match mapping::map_region(&*device, r.offset, r.length as usize, want) {
                Ok(address) => mapped.push(MappedRegion {
                    index: ri,
                    address,
                    length: r.length as usize,
                    segment_offset: r.offset,
                }),
                Err(e) => {
                    for m in &mapped {
                        mapping::unmap_region(m.address, m.length);
                    }
                    return Err(e);
                }
            }
        }
        let segment = Segment {
            inner: Arc::new(SegmentShared {
                header: header.clone(),
                device: device.clone(),
                regions: mapped.clone(),
                log_index: index as u32,
                mapped: RwLock::new(true),
            }),
        };
        let slot = &mut slots[index];
        slot.device = Some(device);
        slot.header = Some(header);
        slot.mapped = Some(segment.clone());
        slot.remap_needs_truncate = false;
        let mut regions = self.regions.write().unwrap_or_else(|e| e.into_inner());
        for m in &mapped {
            regions.push(RegionRef {
                start: m.address,
                end: m.address + m.length,
                slot: index as u32,
                segment_offset: m.segment_offset,
                pins: Arc::new(AtomicUsize::new(0)),
            });
        }
        regions.sort_by_key(|r| r.start);
        Ok(segment)
    }

    fn unmap_segment(&self, segment: &Segment) -> Result<()> {
        let index = segment.inner.log_index;
        let mut slots = self.segments.write().unwrap_or_else(|e| e.into_inner());
        let mut regions = self.regions.write().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<&RegionRef> = regions.iter().filter(|r| r.slot == index).collect();
        let pinned: usize = mine.iter().map(|r| r.pins.load(Ordering::Acquire)).sum();
        if pinned > 0 {
            return Err(Error::Uncommitted {
                what: format!("unmap {}", segment.path()),
                count: pinned,
            });
        }
        let mut flag = segment
            .inner
            .mapped
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !*flag {
            return Ok(());
        }
        regions.retain(|r| r.slot != index);
        for m in segment.regions() {
            mapping::unmap_region(m.address, m.length);
        }
        *flag = false;
        if let Some(slot) = slots.get_mut(index as usize) {
            slot.mapped = None;
            slot.remap_needs_truncate = true;
        }
        Ok(())
    }

    /// Queue-side of a commit: called with the queue locked by the transaction after it has
    /// appended its record. Returns the commit's sequence number.
    pub(crate) fn queued(&self, q: &mut Queue, start: usize) -> u64 {
        let len = q.buf.len() - start;
        q.records.push((start, len));
        q.queued_seq += 1;
        q.queued_seq
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
    fn flush_until_locked<'q>(&'q self, mut q: MutexGuard<'q, Queue>, seq: u64) -> Result<()> {
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
            let records = std::mem::take(&mut q.records);
            let upto = q.queued_seq;
            drop(q);
            let started = Instant::now();
            let result = self.write_batches(&mut buf, &records);
            let took_us = started.elapsed().as_micros() as u64;
            add(&self.stats.flush_time_us, took_us);
            q = lock(&self.queue);
            q.flushing = false;
            q.last_sync_us = took_us;
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
            self.queue_cond.notify_all();
        }
    }

    pub(crate) fn flush_all(&self) -> Result<()> {
        let seq = lock(&self.queue).queued_seq;
        self.flush_until(seq)
    }

    /// Write queued records (unsealed, back to back in `buf`) to the log: as many per batch
    /// as fit, one write and one sync per batch, truncating when the log is full.
    fn write_batches(&self, buf: &mut Vec<u8>, records: &[(usize, usize)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.start_generation()?;
        let mut done = 0;
        while done < records.len() {
            let (items, tail, next_lsn) = {
                let p = lock(&self.pos);
                self.plan(&p, records, done)
            };
            let placed = items
                .iter()
                .filter(|i| matches!(i, Item::Record { .. }))
                .count();
            if placed == 0 {
                self.make_space(records[done].1 as u64)?;
                continue;
            }
            self.write_items(buf, records, &items)?;
            self.log.sync().map_err(self.log_io("fsync"))?;
            add(&self.stats.flushes, 1);
            {
                let mut p = lock(&self.pos);
                p.tail_offset = tail;
                p.next_lsn = next_lsn;
                let used = self.used_bytes(&p);
                let threshold = self.options.truncate_threshold_percent as u64;
                if threshold > 0
                    && used * 100 >= threshold * (self.area_end - self.area_start)
                    && !p.truncating
                {
                    p.truncation_requested = true;
                    self.pos_cond.notify_all();
                }
            }
            done += placed;
        }
        Ok(())
    }

    /// Before this run writes its first record, bump the generation, so records left over
    /// from a crashed run can never continue the chain.
    fn start_generation(&self) -> Result<()> {
        if lock(&self.pos).generation_started {
            return Ok(());
        }
        self.write_status_then(
            |s, p| {
                s.generation += 1;
                s.generation_start_lsn = p.next_lsn;
            },
            |p| p.generation_started = true,
        )
    }

    /// Place records `records[from..]` after the tail: returns the items (records and pads)
    /// that fit, the new tail, and the next LSN.
    fn plan(&self, p: &Pos, records: &[(usize, usize)], from: usize) -> (Vec<Item>, u64, u64) {
        let (start, end) = (self.area_start, self.area_end);
        let mut items = Vec::new();
        let mut at = p.tail_offset;
        let mut lsn = p.next_lsn;
        // While `limit == end` the area may still wrap once; after that the head bounds us.
        let mut limit = if p.is_empty() || p.tail_offset > p.head_offset {
            end
        } else {
            p.head_offset
        };
        if !p.is_empty() && p.tail_offset == p.head_offset {
            limit = at; // full
        }
        let wrap_limit = p.head_offset;
        for (index, &(_, len)) in records.iter().enumerate().skip(from) {
            let len = len as u64;
            if at + len + PAD_RESERVE_BYTES > limit {
                if limit == end
                    && end - at >= RECORD_MIN_SIZE
                    && start + len + PAD_RESERVE_BYTES <= wrap_limit
                {
                    items.push(Item::Pad {
                        offset: at,
                        length: end - at,
                        lsn,
                    });
                    lsn += 1;
                    at = start;
                    limit = wrap_limit;
                } else {
                    break;
                }
            }
            items.push(Item::Record {
                index,
                offset: at,
                lsn,
            });
            lsn += 1;
            at += len;
        }
        if items.is_empty() {
            return (items, p.tail_offset, p.next_lsn);
        }
        let gap = align_up(at, SECTOR_SIZE) - at;
        if gap > 0 {
            let pad = if gap >= RECORD_MIN_SIZE {
                gap
            } else {
                gap + SECTOR_SIZE
            };
            items.push(Item::Pad {
                offset: at,
                length: pad,
                lsn,
            });
            lsn += 1;
            at += pad;
        }
        let tail = if at >= end { start } else { at };
        (items, tail, lsn)
    }

    /// Seal and write planned items. The common case (no wrap inside the batch, records back
    /// to back in the queue buffer) is one write straight from the buffer; otherwise
    /// contiguous runs are gathered and written one by one.
    fn write_items(
        &self,
        buf: &mut Vec<u8>,
        records: &[(usize, usize)],
        items: &[Item],
    ) -> Result<()> {
        let batch_first_lsn = match &items[0] {
            Item::Record { lsn, .. } | Item::Pad { lsn, .. } => *lsn,
        };
        let generation = lock(&self.status).generation;
        let time_us = now_us();
        for item in items {
            if let Item::Record { index, lsn, .. } = *item {
                let (s, l) = records[index];
                let rec = &mut buf[s..s + l];
                stamp_time(rec, time_us);
                seal_record(rec, lsn, generation, batch_first_lsn, self.seed);
                add(&self.stats.records_written, 1);
                add(&self.stats.bytes_logged, l as u64);
            }
        }
        if let Some((file_offset, from)) = self.contiguous(records, items) {
            // Records are adjacent in the file and in `buf`; only a final pad may follow.
            let mut end = from;
            for item in items {
                match *item {
                    Item::Record { index, .. } => end = records[index].0 + records[index].1,
                    Item::Pad { length, lsn, .. } => {
                        buf.truncate(end);
                        append_pad(buf, length, lsn, generation, batch_first_lsn, self.seed);
                        end = buf.len();
                    }
                }
            }
            return self.write_log(&buf[from..end], file_offset);
        }
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        for item in items {
            let (Item::Record { offset, .. } | Item::Pad { offset, .. }) = *item;
            if !run.is_empty() && offset != run_start + run.len() as u64 {
                // Discontinuity (the area wrapped): write what is contiguous so far.
                self.write_log(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = offset;
            }
            match *item {
                Item::Record { index, .. } => {
                    let (s, l) = records[index];
                    run.extend_from_slice(&buf[s..s + l]);
                }
                Item::Pad {
                    offset,
                    length,
                    lsn,
                } => {
                    if offset + length >= self.area_end {
                        add(&self.stats.wraps, 1);
                    }
                    if length <= 2 * SECTOR_SIZE {
                        append_pad(
                            &mut run,
                            length,
                            lsn,
                            generation,
                            batch_first_lsn,
                            self.seed,
                        );
                    } else {
                        let (h, t) =
                            encode_pad(length, lsn, generation, batch_first_lsn, self.seed);
                        // A wrap pad: only its header and trailer are written.
                        if !run.is_empty() {
                            self.write_log(&run, run_start)?;
                            run.clear();
                        }
                        self.write_log(&h, offset)?;
                        self.write_log(&t, offset + length - t.len() as u64)?;
                    }
                }
            }
        }
        if !run.is_empty() {
            self.write_log(&run, run_start)?;
        }
        Ok(())
    }

    /// If the batch's records are back to back both in the file and in the queue buffer
    /// (records in order, only a final pad), the file offset and buffer offset of the first.
    fn contiguous(&self, records: &[(usize, usize)], items: &[Item]) -> Option<(u64, usize)> {
        let mut expect: Option<(u64, usize)> = None;
        let mut first = None;
        for (n, item) in items.iter().enumerate() {
            match *item {
                Item::Record { index, offset, .. } => {
                    let (s, l) = records[index];
                    if let Some((o, b)) = expect {
                        if o != offset || b != s {
                            return None;
                        }
                    } else {
                        first = Some((offset, s));
                    }
                    expect = Some((offset + l as u64, s + l));
                }
                Item::Pad { offset, length, .. } => {
                    let last = n + 1 == items.len();
                    if !last || length > 2 * SECTOR_SIZE || expect.map(|(o, _)| o) != Some(offset) {
                        return None;
                    }
                }
            }
        }
        // The pad is appended after the last record, so nothing may follow it in `buf`.
        let last_record_end = expect?.1;
        let after_last = records.iter().all(|(s, l)| s + l <= last_record_end);
        if after_last {
            first
        } else {
            None
        }
    }

    /// Write into the record area.
    ///
    /// Architecture Invariant: the log is only written inside its record area (a planning
    /// error becomes an error here, never a write elsewhere).
    fn write_log(&self, bytes: &[u8], offset: u64) -> Result<()> {
        if offset < self.area_start || offset + bytes.len() as u64 > self.area_end {
            return Err(Error::Failed {
                path: self.log_name.clone(),
                cause: format!(
                    "internal error: planned write {offset}+{} leaves the record area",
                    bytes.len()
                ),
            });
        }
        self.log
            .write_at(bytes, offset)
            .map_err(self.log_io("write"))
    }

    /// The flush leader found no room: truncate (waiting for a background truncation if one
    /// runs), and if the log is then empty, restart it at the beginning of the area.
    fn make_space(&self, need: u64) -> Result<()> {
        add(&self.stats.space_waits, 1);
        self.truncate_now(false)?;
        let (empty, at_start) = {
            let p = lock(&self.pos);
            (p.is_empty(), p.tail_offset == self.area_start)
        };
        if empty && !at_start {
            let start = self.area_start;
            self.write_status_then(
                |s, _| {
                    s.head_offset = start;
                    s.tail_offset = start;
                },
                |p| {
                    p.head_offset = start;
                    p.tail_offset = start;
                },
            )?;
        } else if empty && need + 2 * PAD_RESERVE_BYTES > self.area_end - self.area_start {
            return Err(Error::TooBig {
                size: need,
                max: self.record_bytes_max,
            });
        }
        Ok(())
    }

    pub(crate) fn request_truncation(&self) {
        let mut p = lock(&self.pos);
        p.truncation_requested = true;
        self.pos_cond.notify_all();
    }

    fn truncation_thread(&self) {
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

    /// Apply every durable record to the segments, sync them, then move the head past those
    /// records with a status write. One truncation at a time; commits continue meanwhile.
    pub(crate) fn truncate_now(&self, background: bool) -> Result<()> {
        let _one = lock(&self.truncate_lock);
        self.check_failed()?;
        let started = Instant::now();
        let (head_offset, head_lsn, tail_offset, next_lsn, applied_lsn, mut touched) = {
            let mut p = lock(&self.pos);
            p.truncation_requested = false;
            if p.is_empty() && p.pending_sync.is_empty() {
                self.pos_cond.notify_all();
                return Ok(());
            }
            p.truncating = true;
            (
                p.head_offset,
                p.head_lsn,
                p.tail_offset,
                p.next_lsn,
                p.applied_lsn,
                p.pending_sync.clone(),
            )
        };
        let result = (|| -> Result<()> {
            if head_lsn < next_lsn {
                let status = lock(&self.status).clone();
                let reader = LogReader::with_status(self.log.clone(), status);
                let targets: Vec<Option<(DeviceRef, SegmentHeader)>> = {
                    let slots = self.segments.read().unwrap_or_else(|e| e.into_inner());
                    (0..slots.len())
                        .map(|i| slot_target(&slots, i as u32))
                        .collect()
                };
                let target = |i: u32| targets.get(i as usize).cloned().flatten();
                let mut applier = Applier::new(&self.log_name);
                reader.walk_bodies(head_offset, head_lsn, next_lsn, |offset, header, body| {
                    if header.lsn >= applied_lsn {
                        applier.add_body(offset, header, body, &target)?;
                    }
                    Ok(())
                })?;
                touched.extend(applier.finish(&target)?);
            }
            let devices: Vec<DeviceRef> = {
                let slots = self.segments.read().unwrap_or_else(|e| e.into_inner());
                touched
                    .iter()
                    .filter_map(|i| slots.get(*i as usize).and_then(|s| s.device.clone()))
                    .collect()
            };
            for d in devices {
                d.sync().map_err(|e| Error::io(d.name(), "fsync", e))?;
            }
            let truncated_ms = now_ms();
            self.write_status_then(
                |s, _| {
                    s.head_offset = tail_offset;
                    s.head_lsn = next_lsn;
                    s.last_truncation_unix_ms = truncated_ms;
                },
                |p| {
                    p.head_offset = tail_offset;
                    p.head_lsn = next_lsn;
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
            }
            let us = started.elapsed().as_micros() as u64;
            add(&self.stats.truncation_time_us, us);
            self.stats.last_truncation_us.store(us, Ordering::Relaxed);
        }
        self.pos_cond.notify_all();
        result
    }
}
