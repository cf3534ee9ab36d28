//! The library's one error type. Every variant that concerns a file names it; corruption
//! carries the offset. [`Error::code_name`] gives the classic RVM code where one exists.

use std::io;

use crate::format::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. (`cause` is part of the message, so it is not also reported as
    /// the error's `source()`: error-chain printers would show it twice.)
    #[error("{path}: {op}: {cause}")]
    Io {
        path: String,
        op: &'static str,
        cause: io::Error,
    },

    /// The file is locked by another process, or (`by_this_process`) by another open handle
    /// of this process, such as a second [`crate::Rvm`] on the same log.
    #[error(
        "{path}: in use by {} (it is locked)",
        if *by_this_process { "this process (another open handle of it)" } else { "another process" }
    )]
    InUse { path: String, by_this_process: bool },

    /// The log's status slots are both unreadable, or the log is otherwise not a log.
    #[error("{path}: not a valid rvm log: {reason}")]
    BadLog { path: String, reason: String },

    /// The log was written by a different format version.
    #[error("{path}: {reason}")]
    LogVersion { path: String, reason: String },

    /// A damaged record followed by valid records with higher LSNs: committed data would be
    /// lost by treating the damage as the end of the log. (`Options::recover_prefix` keeps the
    /// records before the damage; a tool names its own flag for that.)
    #[error(
        "{path}: log corrupted at offset {offset} (expected LSN {lsn}: {detail}); valid records \
         follow up to LSN {later_lsn} at offset {later_offset}, so this is not a torn tail. \
         Refusing to drop committed transactions (keeping only the records before the damage \
         must be asked for)"
    )]
    LogCorrupt {
        path: String,
        offset: u64,
        lsn: u64,
        detail: String,
        later_lsn: u64,
        later_offset: u64,
    },

    /// A record inside the live part of the log is damaged (found while truncating).
    #[error("{path}: damaged record at offset {offset}: {detail}")]
    DamagedRecord {
        path: String,
        offset: u64,
        detail: String,
    },

    /// A segment header is missing or damaged.
    #[error("{path}: bad segment header: {reason}")]
    BadSegment { path: String, reason: String },

    /// The segment was written by a different format version.
    #[error("{path}: {reason}")]
    SegmentVersion { path: String, reason: String },

    /// The log names a segment that cannot be found: no file among the paths and devices
    /// supplied, nor at the path hint, holds it. (A tool tells the user how to supply the path.)
    #[error(
        "log {log}: segment {uuid} (last seen at {path_hint:?}) has committed records to apply \
         but was not found"
    )]
    SegmentNotFound {
        log: String,
        uuid: Uuid,
        path_hint: String,
    },

    /// The log names a segment with records to apply, and a file where it was looked for (its
    /// path hint, or a path the caller supplied) cannot be used: its header is damaged, or it
    /// cannot be opened or read. `cause` says what is wrong (a `BadSegment`, `SegmentVersion`
    /// or `Io` error naming `path`).
    #[error(
        "log {log}: segment {uuid} has committed records to apply, but its file cannot be \
         used: {cause}"
    )]
    SegmentUnusable {
        log: String,
        uuid: Uuid,
        path_hint: String,
        path: String,
        cause: Box<Error>,
    },

    /// The file at a path is a segment, but not the one the log means.
    #[error("{path}: segment UUID is {found}, expected {expected}")]
    WrongSegment {
        path: String,
        expected: Uuid,
        found: Uuid,
    },

    /// A log range lies outside every region of its segment.
    #[error(
        "{log}: record at offset {record_offset} writes {length} bytes at segment offset \
         {segment_offset} of {segment}, outside every region of that segment"
    )]
    RangeOutsideSegment {
        log: String,
        record_offset: u64,
        segment: String,
        segment_offset: u64,
        length: u64,
    },

    /// An address range is not inside one mapped region.
    #[error("address range {address:#x}..{end:#x} is not inside one mapped region", end = address.saturating_add(*length))]
    NotMapped { address: u64, length: u64 },

    /// A region's fixed address is already occupied in this process.
    #[error(
        "{path}: cannot map region at {start:#x}..{end:#x}: the range is in use by {occupant}"
    )]
    AddressInUse {
        path: String,
        start: u64,
        end: u64,
        occupant: String,
    },

    /// The segment handle belongs to another [`crate::Rvm`] instance: only the instance that
    /// mapped a segment may unmap it.
    #[error("{path}: the segment is mapped by another Rvm instance ({owner}), not by {this}")]
    ForeignSegment {
        path: String,
        owner: String,
        this: String,
    },

    /// A wait for a lock held by another transaction (a range lock, the heap, ...) lasted
    /// longer than the instance's `lock_timeout`: the holder may have been leaked with
    /// `mem::forget`, or be stuck.
    #[error("{what}: still held by transaction {holder} after waiting {waited_ms} ms")]
    LockTimeout {
        what: String,
        holder: u64,
        waited_ms: u64,
    },

    /// Waiting for the lock would deadlock: its holder is (directly or through others)
    /// waiting for a lock this transaction holds. The requesting transaction should abort.
    #[error(
        "range {address:#x}..{end:#x}: transaction {requester} would deadlock waiting for \
         transaction {holder}, which waits for it",
        end = address.saturating_add(*length)
    )]
    Deadlock {
        address: u64,
        length: u64,
        holder: u64,
        requester: u64,
    },

    /// The segment is already mapped by this log.
    #[error("{path}: segment is already mapped")]
    AlreadyMapped { path: String },

    /// The log cannot name more segments.
    #[error("{log}: the log already names {max} segments")]
    TooManySegments { log: String, max: usize },

    /// A transaction is larger than the log can ever hold.
    #[error(
        "transaction needs {size} bytes of log but this log holds at most {max} per transaction"
    )]
    TooBig { size: u64, max: u64 },

    /// The operation needs every transaction on the region (or the instance) to be finished.
    #[error("{what}: {count} transaction(s) still active")]
    Uncommitted { what: String, count: usize },

    /// A parameter was out of range; the message names it and the rule.
    #[error("invalid {parameter}: {rule}")]
    InvalidArgument {
        parameter: &'static str,
        rule: String,
    },

    /// An earlier I/O failure left the instance unable to guarantee durability; reopen the log.
    #[error(
        "{path}: the log is unusable after an earlier failure ({cause}); reopen it to recover"
    )]
    Failed { path: String, cause: String },

    /// A heap, typed-data or store error ([`crate::rds::Error`]), carried whole: converting
    /// back with `From` gives the same value, and the RDS error's own RVM errors convert to
    /// themselves, so either error type can be used with `?` everywhere.
    #[error(transparent)]
    Heap(Box<crate::rds::Error>),
}

impl From<crate::rds::Error> for Error {
    fn from(e: crate::rds::Error) -> Error {
        match e {
            crate::rds::Error::Rvm(e) => e,
            other => Error::Heap(Box::new(other)),
        }
    }
}

impl Error {
    /// The classic RVM return-code name closest to this error, for users who know them.
    pub fn code_name(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::InUse { .. } => "RVM_EIO",
            Error::BadLog { .. } | Error::LogCorrupt { .. } | Error::DamagedRecord { .. } => {
                "RVM_ELOG"
            }
            Error::LogVersion { .. } => "RVM_ELOG_VERSION_SKEW",
            Error::BadSegment { .. } | Error::WrongSegment { .. } => "RVM_ESEGMENT_HDR",
            Error::SegmentVersion { .. } => "RVM_EVERSION_SKEW",
            Error::SegmentNotFound { .. } => "RVM_EIO",
            Error::SegmentUnusable { cause, .. } => cause.code_name(),
            Error::RangeOutsideSegment { .. } => "RVM_EOFFSET",
            Error::NotMapped { .. } | Error::ForeignSegment { .. } => "RVM_ENOT_MAPPED",
            Error::LockTimeout { .. } | Error::Deadlock { .. } => "RVM_EUNCOMMIT",
            Error::AddressInUse { .. } => "RVM_EVM_OVERLAP",
            Error::AlreadyMapped { .. } => "RVM_EOVERLAP",
            Error::TooManySegments { .. } => "RVM_ENO_MEMORY",
            Error::TooBig { .. } => "RVM_ETOO_BIG",
            Error::Uncommitted { .. } => "RVM_EUNCOMMIT",
            Error::InvalidArgument { .. } => "RVM_EOPTIONS",
            Error::Failed { .. } => "RVM_EINTERNAL",
            Error::Heap(e) => e.code_name(),
        }
    }

    pub(crate) fn io(path: &str, op: &'static str, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::WouldBlock {
            return Error::InUse {
                path: path.to_string(),
                by_this_process: crate::device::held_by_this_process(&source),
            };
        }
        Error::Io {
            path: path.to_string(),
            op,
            cause: source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_offset() {
        let e = Error::LogCorrupt {
            path: "/srv/log".into(),
            offset: 70000,
            lsn: 12,
            detail: "crc".into(),
            later_lsn: 20,
            later_offset: 90000,
        };
        let text = e.to_string();
        assert!(text.contains("/srv/log") && text.contains("70000") && text.contains("LSN 20"));
        assert_eq!(e.code_name(), "RVM_ELOG");
        assert_eq!(
            Error::TooBig { size: 1, max: 0 }.code_name(),
            "RVM_ETOO_BIG"
        );
        let e = Error::io(
            "/x",
            "open",
            io::Error::new(io::ErrorKind::WouldBlock, "locked"),
        );
        assert!(matches!(e, Error::InUse { .. }));
    }

    #[test]
    fn rvm_and_rds_errors_convert_both_ways_without_loss() {
        let heap = crate::rds::Error::NoRoom {
            requested: 10,
            largest_free: 5,
        };
        let text = heap.to_string();
        let e = Error::from(heap);
        assert_eq!((e.to_string(), e.code_name()), (text.clone(), "ENO_ROOM"));
        let back = crate::rds::Error::from(e);
        assert!(matches!(
            back,
            crate::rds::Error::NoRoom {
                requested: 10,
                largest_free: 5
            }
        ));
        let rvm = Error::TooBig { size: 3, max: 2 };
        let wrapped = crate::rds::Error::from(rvm);
        assert!(matches!(
            wrapped,
            crate::rds::Error::Rvm(Error::TooBig { size: 3, max: 2 })
        ));
        assert!(matches!(
            Error::from(wrapped),
            Error::TooBig { size: 3, max: 2 }
        ));
    }
}
