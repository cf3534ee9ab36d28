//! Read-only checks of LOG and DATA, done before anything is written: that they are different
//! files (and that LOG is not where DATA is built), that the log exists (or may be created), that neither is locked by another process,
//! and that overwriting DATA does not throw away committed transactions still in the log.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rvm::device::{Access, Device, FileDevice};
use rvm::format::log::{
    SegmentEntry, SegmentKind, KIND_PAD, RECORD_AREA_MAX_BYTES, RECORD_AREA_MIN_BYTES,
    RECORD_AREA_OFFSET, SECTOR_SIZE,
};
use rvm::log::{LogReader, ScanEnd};
use rvm::segment;
use rvm::Uuid;

use crate::number::hex_dec;

/// What will happen to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPlan {
    /// Use the existing log as it is.
    Use,
    /// Create a new log file with a record area of this size.
    Create { area_bytes: u64 },
    /// Write a fresh, empty log over the existing one (`--log-size --force`).
    Reinit { area_bytes: u64 },
}

impl LogPlan {
    pub fn name(&self) -> &'static str {
        match self {
            LogPlan::Use => "used",
            LogPlan::Create { .. } => "created",
            LogPlan::Reinit { .. } => "reinitialized",
        }
    }
}

/// Unapplied records of one segment named by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSegment {
    pub uuid: Uuid,
    pub path_hint: String,
    pub records: usize,
    /// The log's entry when it names a plain file (`Rvm::map_file`), not a segment.
    pub plain_file: Option<SegmentEntry>,
}

#[derive(Debug, Clone)]
pub struct LogState {
    pub path: PathBuf,
    pub exists: bool,
    /// File size: current (existing log) or the size it will have.
    pub size_bytes: u64,
    pub plan: LogPlan,
    /// Transaction records not yet applied to their segments, by segment.
    pub pending: Vec<PendingSegment>,
}

impl LogState {
    pub fn unapplied_records(&self) -> usize {
        self.pending.iter().map(|p| p.records).sum()
    }
}

#[derive(Debug, Clone)]
pub struct DataState {
    pub path: PathBuf,
    pub exists: bool,
    pub block_device: bool,
    /// File length or block-device size (0 when missing).
    pub size_bytes: u64,
    /// The UUID of the segment DATA holds now, if it holds one.
    pub segment_uuid: Option<Uuid>,
    /// Records in LOG for that segment (overwriting it loses them unless recovery applies
    /// them first, which rdsinit does with `--force`).
    pub unapplied_records: usize,
}

#[derive(Debug, Clone)]
pub struct FileChecks {
    pub log: LogState,
    pub data: DataState,
    pub warnings: Vec<String>,
}

/// Where a regular DATA file is built before it is renamed over DATA (pass DATA with its
/// symbolic links resolved): `DATA.rdsinit-tmp`, beside it.
pub fn temporary_path(data: &Path) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_os_string();
    name.push(".rdsinit-tmp");
    data.with_file_name(name)
}

/// The file size of a log whose record area is `area_bytes` (rounded down to a sector, as
/// the library does), status slots included.
pub fn log_file_bytes(area_bytes: u64) -> u64 {
    RECORD_AREA_OFFSET.saturating_add(area_bytes / SECTOR_SIZE * SECTOR_SIZE)
}

/// Check LOG and DATA. Every problem is a refusal message naming the file and the rule.
pub fn check_files(
    log: &Path,
    data: &Path,
    log_size: Option<u64>,
    force: bool,
) -> Result<FileChecks, String> {
    let mut warnings = Vec::new();
    if let Some(size) = log_size {
        if !(RECORD_AREA_MIN_BYTES..=RECORD_AREA_MAX_BYTES).contains(&size) {
            return Err(format!(
                "invalid log size (--log-size): the record area {} must be between {} and {}",
                hex_dec(size),
                hex_dec(RECORD_AREA_MIN_BYTES),
                hex_dec(RECORD_AREA_MAX_BYTES)
            ));
        }
    }
    let log_meta = metadata_if_exists(log).map_err(|e| format!("LOG {}: {e}", log.display()))?;
    let data_meta =
        metadata_if_exists(data).map_err(|e| format!("DATA {}: {e}", data.display()))?;
    for (what, path, meta) in [("LOG", log, &log_meta), ("DATA", data, &data_meta)] {
        match meta {
            Some(m) if m.is_dir() => {
                return Err(format!("{what} {} is a directory", path.display()))
            }
            Some(m) if !m.is_file() && !m.file_type().is_block_device() => {
                return Err(format!(
                    "{what} {} is neither a regular file nor a block device",
                    path.display()
                ))
            }
            Some(_) => {}
            None => {
                let parent = parent_dir(path);
                if !parent.is_dir() {
                    return Err(format!(
                        "{what} {}: the directory {} does not exist",
                        path.display(),
                        parent.display()
                    ));
                }
            }
        }
    }
    if same_file(log, log_meta.as_ref(), data, data_meta.as_ref()) {
        return Err(format!(
            "LOG {} and DATA {} are the same file: the log and the data segment must be \
             different files",
            log.display(),
            data.display()
        ));
    }

    if data_meta.as_ref().is_none_or(|m| m.is_file()) {
        let build = temporary_path(&fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf()));
        let build_meta = metadata_if_exists(&build).ok().flatten();
        if same_file(log, log_meta.as_ref(), &build, build_meta.as_ref()) {
            return Err(format!(
                "LOG {} is where DATA {} would be built ({}) before it replaces DATA: rename \
                 the log",
                log.display(),
                data.display(),
                build.display()
            ));
        }
    }

    let log_state = check_log(log, log_meta.as_ref(), log_size, force, &mut warnings)?;
    let data_state = check_data(data, data_meta.as_ref(), &log_state, force, &mut warnings)?;
    check_other_segments(&log_state, &data_state)?;
    Ok(FileChecks {
        log: log_state,
        data: data_state,
        warnings,
    })
}

fn check_log(
    path: &Path,
    meta: Option<&fs::Metadata>,
    log_size: Option<u64>,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<LogState, String> {
    let name = path.display();
    let Some(meta) = meta else {
        return match log_size {
            Some(size) => Ok(LogState {
                path: path.to_path_buf(),
                exists: false,
                size_bytes: log_file_bytes(size),
                plan: LogPlan::Create { area_bytes: size },
                pending: Vec::new(),
            }),
            None => Err(format!(
                "LOG {name} does not exist: create it with `rvmutl init_log` or pass \
                 --log-size SIZE to create it here"
            )),
        };
    };
    if log_size.is_some() && !force {
        return Err(format!(
            "LOG {name} already exists and --log-size creates a new log: pass --force as well \
             to re-initialize it (refused while it holds unapplied records), or leave out \
             --log-size to use it as it is"
        ));
    }
    let current_size = if meta.file_type().is_block_device() {
        0
    } else {
        meta.len()
    };
    let pending = match LogReader::open(path) {
        Ok(reader) => pending_records(&reader).map_err(|e| format!("LOG {name}: {e}"))?,
        Err(e) => {
            if log_size.is_none() {
                return Err(format!(
                    "LOG {name} is not a usable rvm log ({e}): create one with `rvmutl \
                     init_log`, or pass --log-size SIZE --force to re-initialize it"
                ));
            }
            if segment::read_header(path).is_ok() {
                return Err(format!(
                    "LOG {name} holds an rvm data segment, not a log: refusing to overwrite it"
                ));
            }
            warnings.push(format!(
                "LOG {name} is not a valid rvm log ({e}); it will be re-initialized"
            ));
            Vec::new()
        }
    };
    let records: usize = pending.iter().map(|p| p.records).sum();
    let plan = match log_size {
        Some(size) => {
            if records > 0 {
                return Err(format!(
                    "LOG {name} still holds {records} unapplied record(s) (for {}): \
                     re-initializing it would lose committed transactions, even with --force; \
                     open the log once (e.g. `rvmutl recover`) to apply them first",
                    describe_pending(&pending)
                ));
            }
            LogPlan::Reinit { area_bytes: size }
        }
        None => LogPlan::Use,
    };
    check_writable("LOG", path)?;
    Ok(LogState {
        path: path.to_path_buf(),
        exists: true,
        size_bytes: match plan {
            LogPlan::Reinit { area_bytes } => log_file_bytes(area_bytes),
            _ => current_size,
        },
        plan,
        pending,
    })
}

fn check_data(
    path: &Path,
    meta: Option<&fs::Metadata>,
    log: &LogState,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<DataState, String> {
    let name = path.display();
    let Some(meta) = meta else {
        return Ok(DataState {
            path: path.to_path_buf(),
            exists: false,
            block_device: false,
            size_bytes: 0,
            segment_uuid: None,
            unapplied_records: 0,
        });
    };
    check_writable("DATA", path)?;
    let block_device = meta.file_type().is_block_device();
    let size_bytes = if block_device {
        FileDevice::open(path, Access::ReadOnly)
            .and_then(|d| d.len())
            .map_err(|e| format!("DATA {name}: {e}"))?
    } else {
        meta.len()
    };
    let segment_uuid = segment::read_header(path).ok().map(|h| h.uuid);
    let unapplied_records = segment_uuid
        .and_then(|uuid| log.pending.iter().find(|p| p.uuid == uuid))
        .map_or(0, |p| p.records);
    if unapplied_records > 0 {
        let uuid = segment_uuid.map(|u| u.to_string()).unwrap_or_default();
        if !force {
            return Err(format!(
                "DATA {name} holds segment {uuid}, which has {unapplied_records} unapplied \
                 record(s) in LOG {}: overwriting it would discard committed transactions; \
                 pass --force to overwrite it anyway",
                log.path.display()
            ));
        }
        warnings.push(format!(
            "DATA {name} holds segment {uuid} with {unapplied_records} unapplied record(s) in \
             the log; --force: they are applied, then the segment is overwritten"
        ));
    }
    if size_bytes > 0 {
        let what = match segment_uuid {
            Some(uuid) => format!("an rvm segment ({uuid})"),
            None => format!("{size_bytes} bytes"),
        };
        warnings.push(format!(
            "DATA {name} exists and holds {what}: it will be overwritten"
        ));
    }
    Ok(DataState {
        path: path.to_path_buf(),
        exists: true,
        block_device,
        size_bytes,
        segment_uuid,
        unapplied_records,
    })
}

/// Opening the log applies its unapplied records to their segments first: every segment other
/// than DATA that has some must be where the log last saw it.
fn check_other_segments(log: &LogState, data: &DataState) -> Result<(), String> {
    for pending in &log.pending {
        if Some(pending.uuid) == data.segment_uuid {
            continue;
        }
        if let Some(entry) = &pending.plain_file {
            // A plain file: the library checks it as its recovery will.
            let log_name = log.path.display().to_string();
            let data_canonical = fs::canonicalize(&data.path).ok();
            if data_canonical.is_some_and(|d| d == Path::new(&entry.path_hint)) {
                return Err(format!(
                    "LOG {log_name} holds {} unapplied record(s) for the plain file DATA {}: \
                     replacing it would lose them (rdsinit opens the log, and opening it \
                     applies them to that file first)",
                    pending.records, entry.path_hint
                ));
            }
            match segment::open_plain_file(&log_name, entry, Access::ReadOnly) {
                Ok(_) => continue,
                Err(e) => {
                    return Err(format!(
                        "{e}: rdsinit opens the log, and opening it applies those records \
                         first; put the file back as it was before running rdsinit"
                    ))
                }
            }
        }
        let what = if pending.path_hint.is_empty() {
            "which the log has no path for".to_string()
        } else {
            match segment::read_header(Path::new(&pending.path_hint)) {
                Ok(h) if h.uuid == pending.uuid => continue,
                Ok(h) => format!("but that file now holds segment {}", h.uuid),
                Err(rvm::Error::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
                    "which is not there".to_string()
                }
                Err(e) => format!("which cannot be used: {e}"),
            }
        };
        return Err(format!(
            "LOG {} holds {} unapplied record(s) for segment {} (last seen at {:?}), {what}: \
             rdsinit opens the log, and opening it applies those records first; put the \
             segment back (or apply the log with `rvmutl recover`, naming its file with \
             --segment FILE) before running rdsinit",
            log.path.display(),
            pending.records,
            pending.uuid,
            pending.path_hint
        ));
    }
    Ok(())
}

/// The transaction records of the log that have not been applied, counted by segment.
fn pending_records(reader: &LogReader) -> Result<Vec<PendingSegment>, String> {
    let scan = reader.scan().map_err(|e| e.to_string())?;
    if let ScanEnd::Corrupt { offset, detail, .. } = &scan.end {
        return Err(format!(
            "the log is damaged at offset {offset} ({detail}) with committed records after \
             the damage; repair it with rvmutl before using it"
        ));
    }
    let transactions = scan.records.iter().filter(|r| r.kind != KIND_PAD).count();
    if transactions == 0 {
        return Ok(Vec::new());
    }
    let status = reader.status();
    let until = scan
        .records
        .last()
        .map_or(status.head_lsn, |r| r.lsn.saturating_add(1));
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    reader
        .walk(status.head_offset, status.head_lsn, until, |record| {
            let mut seen = Vec::new();
            for range in record.ranges() {
                let range = range.map_err(|e| rvm::Error::DamagedRecord {
                    path: reader.name().to_string(),
                    offset: record.offset,
                    detail: e.to_string(),
                })?;
                if !seen.contains(&range.header.segment) {
                    seen.push(range.header.segment);
                }
            }
            for s in seen {
                *counts.entry(s).or_default() += 1;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(counts
        .into_iter()
        .map(|(index, records)| {
            let entry = status.segments.get(index as usize);
            PendingSegment {
                uuid: entry.map(|e| e.uuid).unwrap_or_default(),
                path_hint: entry.map(|e| e.path_hint.clone()).unwrap_or_default(),
                records,
                plain_file: entry.filter(|e| e.kind == SegmentKind::PlainFile).cloned(),
            }
        })
        .collect())
}

fn describe_pending(pending: &[PendingSegment]) -> String {
    pending
        .iter()
        .map(|p| {
            if p.plain_file.is_some() {
                format!("plain file {}", p.path_hint)
            } else if p.path_hint.is_empty() {
                format!("segment {}", p.uuid)
            } else {
                format!("segment {} at {}", p.uuid, p.path_hint)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open read-write and release at once: finds a missing permission or another process's lock
/// before anything is written. Changes nothing.
fn check_writable(what: &str, path: &Path) -> Result<(), String> {
    match FileDevice::open(path, Access::ReadWrite) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(format!(
            "{what} {} is in use by another process (it is locked)",
            path.display()
        )),
        Err(e) => Err(format!(
            "{what} {}: cannot open it for writing: {e}",
            path.display()
        )),
    }
}

fn metadata_if_exists(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An absolute form of a path that need not exist: its directory canonicalized, plus its name.
fn normalized(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let dir = fs::canonicalize(parent_dir(path)).unwrap_or_else(|_| parent_dir(path));
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Whether two paths name the same file: the same inode, the same block device, or (when one
/// does not exist yet) the same normalized path.
pub fn same_file(
    a: &Path,
    a_meta: Option<&fs::Metadata>,
    b: &Path,
    b_meta: Option<&fs::Metadata>,
) -> bool {
    match (a_meta, b_meta) {
        (Some(x), Some(y)) => {
            (x.dev() == y.dev() && x.ino() == y.ino())
                || (x.file_type().is_block_device()
                    && y.file_type().is_block_device()
                    && x.rdev() == y.rdev())
        }
        _ => normalized(a) == normalized(b),
    }
}
