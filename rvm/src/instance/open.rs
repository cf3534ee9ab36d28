//! Creating a log, opening it, and recovering it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use super::commit::{CommitCounts, Queue};
use super::flush::{zero_chunk_bytes, PAD_RESERVE_BYTES};
use super::plain_file::find_plain_file;
use super::segments::{slot_target, Slot};
use super::stats::{add, Stats};
use super::status::Pos;
use super::{lock, now_ms, Inner, Options, Rvm};
use crate::apply::Applier;
use crate::device::{Access, Device, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{
    live_bytes, CrcSeed, SegmentEntry, SegmentKind, Status, RECORD_AREA_MAX_BYTES,
    RECORD_AREA_MIN_BYTES, RECORD_AREA_OFFSET, SECTOR_SIZE, STATUS_SLOT_SIZE,
};
use crate::format::segment::SegmentHeader;
use crate::format::Uuid;
use crate::log::{LogReader, ScanEnd};
use crate::segment::read_header_from;

impl Rvm {
    /// Create a new log file (mode 0600) with a record area of `area_bytes` (rounded down to
    /// a sector), its blocks allocated (see [`Rvm::init_log_on`]). Refuses an existing file;
    /// on failure (a full disk: `ENOSPC` naming the file) removes the file it made.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a record area too small or too large; [`Error::Io`]
    /// naming the file when it exists already (`AlreadyExists`) or cannot be created, sized,
    /// written or synced.
    pub fn create_log(path: impl AsRef<Path>, area_bytes: u64) -> Result<()> {
        let path = path.as_ref();
        let name = path.display().to_string();
        check_area(area_bytes)?;
        let dev = FileDevice::create_new(path).map_err(|e| Error::io(&name, "create", e))?;
        let result = Self::init_log_on(&dev, area_bytes);
        if result.is_err() {
            // Leave nothing behind: the file was made here and holds no log yet.
            drop(dev);
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Write a fresh, empty log onto a device (an existing file or a block device), discarding
    /// what it held. The caller decides whether that is safe (see `LogReader::scan`). On a
    /// regular file the whole record area is reserved ([`Device::reserve`]), so the log never
    /// asks the file system for space again, and its first chunk is written with zeros
    /// ([`Device::preallocate`]); the flush writer zero-fills the rest ahead of its tail
    /// during the first pass ([`Status::zeroed_through`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a record area too small or too large, or a block device
    /// too small for it; [`Error::Io`] naming the device when it cannot be sized, written or
    /// synced.
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
        // Blocks reserved for the whole record area, so a full disk is found now rather than
        // by a commit; the first chunk (`zero_chunk_bytes`) written with zeros, and the rest
        // zero-filled by the flush writer ahead of its tail during the first pass (FORMAT.md,
        // "Assumptions about the underlying media"): flushes never pay for block allocation
        // in their fdatasync, and creating a large log stays fast.
        device
            .reserve(RECORD_AREA_OFFSET, area)
            .map_err(|e| Error::io(&name, "allocate", e))?;
        let zeroed = area.min(zero_chunk_bytes(area));
        device
            .preallocate(RECORD_AREA_OFFSET, zeroed)
            .map_err(|e| Error::io(&name, "allocate", e))?;
        let uuid = Uuid::random().map_err(|e| Error::io(&name, "uuid", e))?;
        let mut status = Status::new_log(uuid, area, now_ms());
        if !device.is_block_device() && zeroed < area {
            status.zeroed_through = RECORD_AREA_OFFSET + zeroed;
        }
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
    ///
    /// # Errors
    /// As for [`Rvm::open_device`]; also [`Error::Io`] when the file cannot be opened.
    pub fn open(log: impl AsRef<Path>, options: Options) -> Result<Rvm> {
        let path = log.as_ref();
        let name = path.display().to_string();
        let dev =
            FileDevice::open(path, Access::ReadWrite).map_err(|e| Error::io(&name, "open", e))?;
        Self::open_device(Arc::new(dev), options)
    }

    /// Open a log on a device and recover it: every committed transaction in the log is
    /// replayed into its segment before this returns, and nothing uncommitted is.
    ///
    /// Waits for the replay. With [`Options::background_recovery`] off, or without a
    /// truncation thread (a truncate threshold of 0), it also waits for the segments to be
    /// synced and the log freed; otherwise that continues in the background (see
    /// [`Rvm::wait_for_truncation`]).
    ///
    /// # Errors
    /// [`Error::InUse`] when another handle or process has the log (or a segment) open;
    /// [`Error::BadLog`] / [`Error::LogVersion`] for a file that is not a usable log;
    /// [`Error::LogCorrupt`] for damage followed by committed records (unless
    /// [`Options::recover_prefix`]); [`Error::SegmentNotFound`], [`Error::SegmentUnusable`],
    /// [`Error::WrongSegment`] or [`Error::RangeOutsideSegment`] when a segment with records
    /// to replay cannot be found or used; [`Error::PlainFileMismatch`] when a plain file
    /// ([`Rvm::map_file`]) with records to replay is missing, replaced or resized; [`Error::Io`] for a failed read, write or sync.
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
                mapped: Vec::new(),
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
                let (device, header) = match slot.entry.kind {
                    SegmentKind::Segment => find_segment(&name, &slot.entry, &options)?,
                    SegmentKind::PlainFile => find_plain_file(&name, &slot.entry)?,
                };
                slot.device = Some(device);
                slot.header = Some(header);
            }
            let (head, tail) = (
                reader.normalize(status.head_offset),
                reader.normalize(scan.tail_offset),
            );
            // Only a hint for the applier's buffers.
            let live = live_bytes(
                status.head_lsn == scan.next_lsn,
                head,
                tail,
                status.area_offset,
                status.area_end(),
            );
            let mut applier = Applier::new(&name, live);
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
            crc: CrcSeed::new(reader.seed()),
            area_start: status.area_offset,
            area_end: status.area_end(),
            record_bytes_max,
            queue: Mutex::new(Queue {
                buf: Vec::new(),
                records: Vec::new(),
                merging: None,
                queued_commits: 0,
                group_open: false,
                coalesce: options.coalesce_transactions,
                group_bytes_max: super::commit::group_bytes_max(status.area_size, record_bytes_max),
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
                zeroed_through: status.zeroed_through_offset(),
                truncation_lead: None,
                truncating_peak: 0,
                triggered_at: None,
            }),
            pos_cond: Condvar::new(),
            truncate_lock: Mutex::new(None),
            lifetime_base: status.counters,
            status: Mutex::new(status),
            segments: RwLock::new(slots),
            regions: RwLock::new(Vec::new()),
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
            stats: Stats::default(),
            begun: AtomicU64::new(0),
            id: super::NEXT_INSTANCE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            locks: options
                .isolation
                .then(|| Arc::new(crate::range_lock::RangeLocks::new(options.lock_timeout))),
            log,
            log_name: name,
            truncate_threshold_percent: AtomicU8::new(options.truncate_threshold_percent),
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
}

pub(super) fn check_area(area: u64) -> Result<()> {
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

/// Find the segment a log entry names: explicit devices and paths first (by UUID), then the
/// path hint. Opens it read-write with a lock.
///
/// When it is not found, the error says why: a file whose header is damaged (or that cannot be
/// opened or read) is reported with its decode error, ahead of a file holding another segment,
/// ahead of "not found" (a missing file at the hint).
pub(super) fn find_segment(
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
    let mut unusable = None;
    let hint = (!entry.path_hint.is_empty()).then(|| PathBuf::from(&entry.path_hint));
    for path in options.segment_paths.iter().chain(hint.iter()) {
        let name = path.display().to_string();
        let probe = match FileDevice::open(path, Access::ReadOnly) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                unusable.get_or_insert((name.clone(), Error::io(&name, "open", e)));
                continue;
            }
        };
        match read_header_from(&probe) {
            Ok(h) if h.uuid == entry.uuid => {
                drop(probe);
                let dev = FileDevice::open(path, Access::ReadWrite)
                    .map_err(|e| Error::io(&name, "open", e))?;
                return Ok((Arc::new(dev), h));
            }
            Ok(h) => {
                wrong.get_or_insert(Error::WrongSegment {
                    path: name,
                    expected: entry.uuid,
                    found: h.uuid,
                });
            }
            Err(e) => {
                unusable.get_or_insert((name, e));
            }
        }
    }
    if let Some((path, cause)) = unusable {
        return Err(Error::SegmentUnusable {
            log: log.to_string(),
            uuid: entry.uuid,
            path_hint: entry.path_hint.clone(),
            path,
            cause: Box::new(cause),
        });
    }
    Err(wrong.unwrap_or_else(|| Error::SegmentNotFound {
        log: log.to_string(),
        uuid: entry.uuid,
        path_hint: entry.path_hint.clone(),
    }))
}
