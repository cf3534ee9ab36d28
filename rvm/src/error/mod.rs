//! The library's one error type. Every variant that concerns a file names it; corruption
//! carries the offset. [`Error::code_name`] gives the classic RVM code where one exists.

use std::io;

use crate::format::Uuid;

pub(crate) mod heap;

/// The library's result type: `Result<T, rvm::Error>` unless another error type is named.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library returns; see each variant for when it happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. (`cause` is part of the message, so it is not also reported as
    /// the error's `source()`: error-chain printers would show it twice.)
    #[error("{path}: {op}: {cause}")]
    Io {
        /// The file or device the call was made on.
        path: String,
        /// The operation that failed (`open`, `read`, `write`, `fsync`, ...).
        op: &'static str,
        /// The operating system's error.
        cause: io::Error,
    },

    /// The file is locked by another process, or (`by_this_process`) by another open handle
    /// of this process, such as a second [`crate::Rvm`] on the same log.
    #[error(
        "{path}: in use by {} (it is locked)",
        if *by_this_process { "this process (another open handle of it)" } else { "another process" }
    )]
    InUse {
        /// The locked file.
        path: String,
        /// True when the lock is held by this process (another handle), false when by another
        /// process.
        by_this_process: bool,
    },

    /// The log's status slots are both unreadable, or the log is otherwise not a log.
    #[error("{path}: not a valid rvm log: {reason}")]
    BadLog {
        /// The log file or device.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The log was written by a different format version.
    #[error("{path}: {reason}")]
    LogVersion {
        /// The log file or device.
        path: String,
        /// The version found and the version this library writes.
        reason: String,
    },

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
        /// The log file or device.
        path: String,
        /// Byte offset in the log of the damaged record.
        offset: u64,
        /// The LSN the damaged record should have had.
        lsn: u64,
        /// What is wrong with the record (bad CRC, bad header, ...).
        detail: String,
        /// The highest LSN of the valid records found after the damage.
        later_lsn: u64,
        /// Byte offset in the log of the record with `later_lsn`.
        later_offset: u64,
    },

    /// A record inside the live part of the log is damaged (found while truncating).
    #[error("{path}: damaged record at offset {offset}: {detail}")]
    DamagedRecord {
        /// The log file or device.
        path: String,
        /// Byte offset in the log of the damaged record.
        offset: u64,
        /// What is wrong with the record.
        detail: String,
    },

    /// A segment header is missing or damaged.
    #[error("{path}: bad segment header: {reason}")]
    BadSegment {
        /// The segment file or device.
        path: String,
        /// What is wrong with the header.
        reason: String,
    },

    /// The segment was written by a different format version.
    #[error("{path}: {reason}")]
    SegmentVersion {
        /// The segment file or device.
        path: String,
        /// The version found and the version this library writes.
        reason: String,
    },

    /// The log names a segment that cannot be found: no file among the paths and devices
    /// supplied, nor at the path hint, holds it. (A tool tells the user how to supply the path.)
    #[error(
        "log {log}: segment {uuid} (last seen at {path_hint:?}) has committed records to apply \
         but was not found"
    )]
    SegmentNotFound {
        /// The log that names the segment.
        log: String,
        /// The segment's UUID, as recorded in the log's segment table.
        uuid: Uuid,
        /// The path the segment had when it was last mapped (recorded in the log).
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
        /// The log that names the segment.
        log: String,
        /// The segment's UUID, as recorded in the log's segment table.
        uuid: Uuid,
        /// The path the segment had when it was last mapped (recorded in the log).
        path_hint: String,
        /// The file that was tried and cannot be used.
        path: String,
        /// Why the file cannot be used.
        cause: Box<Error>,
    },

    /// The log names a plain file (mapped with `Rvm::map_file`) with records to apply, and
    /// the file at its recorded path cannot take them: it does not exist, or it is not the
    /// file that was mapped (another device or inode: replaced), or its length changed.
    /// `detail` says which, with the recorded and the current values.
    #[error("log {log}: plain file {path} has committed records to apply, but {detail}")]
    PlainFileMismatch {
        /// The log that names the file.
        log: String,
        /// The file's canonical path, as the log records it.
        path: String,
        /// What differs (or that the file is missing).
        detail: String,
    },

    /// The file at a path is a segment, but not the one the log means.
    #[error("{path}: segment UUID is {found}, expected {expected}")]
    WrongSegment {
        /// The segment file or device.
        path: String,
        /// The UUID the log records for the segment.
        expected: Uuid,
        /// The UUID in the file's header.
        found: Uuid,
    },

    /// A log range lies outside every region of its segment.
    #[error(
        "{log}: record at offset {record_offset} writes {length} bytes at segment offset \
         {segment_offset} of {segment}, outside every region of that segment"
    )]
    RangeOutsideSegment {
        /// The log file or device.
        log: String,
        /// Byte offset in the log of the record holding the range.
        record_offset: u64,
        /// The segment file or device.
        segment: String,
        /// Byte offset of the range in the segment file.
        segment_offset: u64,
        /// Length of the range in bytes.
        length: u64,
    },

    /// An address range is not inside one mapped region.
    #[error("address range {address:#x}..{end:#x} is not inside one mapped region", end = address.saturating_add(*length))]
    NotMapped {
        /// First address of the range.
        address: u64,
        /// Length of the range in bytes.
        length: u64,
    },

    /// A region's fixed address is already occupied in this process.
    #[error(
        "{path}: cannot map region at {start:#x}..{end:#x}: the range is in use by {occupant}"
    )]
    AddressInUse {
        /// The segment file or device being mapped.
        path: String,
        /// First address of the region.
        start: u64,
        /// One past the region's last address.
        end: u64,
        /// What occupies the range (a line of `/proc/self/maps`, or "an existing mapping").
        occupant: String,
    },

    /// The segment handle belongs to another [`crate::Rvm`] instance: only the instance that
    /// mapped a segment may unmap it.
    #[error("{path}: the segment is mapped by another Rvm instance ({owner}), not by {this}")]
    ForeignSegment {
        /// The segment file or device.
        path: String,
        /// Name (log path) of the instance that mapped the segment.
        owner: String,
        /// Name (log path) of the instance the call was made on.
        this: String,
    },

    /// A wait for a lock held by another transaction (a range lock, the heap, ...) lasted
    /// longer than the instance's `lock_timeout`: the holder may have been leaked with
    /// `mem::forget`, or be stuck.
    #[error("{what}: still held by transaction {holder} after waiting {waited_ms} ms")]
    LockTimeout {
        /// What was waited for (a range, "heap at 0x...").
        what: String,
        /// Id of the transaction that holds the lock.
        holder: u64,
        /// How long the caller waited, in milliseconds.
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
        /// First address of the contended range.
        address: u64,
        /// Length of the contended range in bytes.
        length: u64,
        /// Id of the transaction that holds the range.
        holder: u64,
        /// Id of the transaction that asked for it.
        requester: u64,
    },

    /// The segment is already mapped by this log (or, for a plain file, the range asked for
    /// overlaps a range of it mapped now; `path` then says which bytes).
    #[error("{path}: segment is already mapped")]
    AlreadyMapped {
        /// The segment file or device.
        path: String,
    },

    /// The log cannot name more segments.
    #[error("{log}: the log already names {max} segments")]
    TooManySegments {
        /// The log file or device.
        log: String,
        /// How many segments the log's segment table holds.
        max: usize,
    },

    /// A transaction is larger than the log can ever hold.
    #[error(
        "transaction needs {size} bytes of log but this log holds at most {max} per transaction"
    )]
    TooBig {
        /// Bytes of log the transaction's record needs.
        size: u64,
        /// The largest record this log can hold, in bytes.
        max: u64,
    },

    /// The operation needs every transaction on the region (or the instance) to be finished.
    #[error("{what}: {count} transaction(s) still active")]
    Uncommitted {
        /// The refused operation (e.g. `unmap PATH`).
        what: String,
        /// How many transactions are still active.
        count: usize,
    },

    /// A transaction was used after it ended or aborted (see
    /// [`crate::Transaction::end_in_place`]).
    #[error("the transaction has already ended or aborted")]
    TransactionEnded,

    /// [`crate::Transaction::restart`] on a transaction that has not ended or aborted.
    #[error("the transaction is still open")]
    TransactionOpen,

    /// A parameter was out of range; the message names it and the rule.
    #[error("invalid {parameter}: {rule}")]
    InvalidArgument {
        /// The parameter's name.
        parameter: &'static str,
        /// The rule it broke.
        rule: String,
    },

    /// An earlier I/O failure left the instance unable to guarantee durability; reopen the log.
    #[error(
        "{path}: the log is unusable after an earlier failure ({cause}); reopen it to recover"
    )]
    Failed {
        /// The log file or device.
        path: String,
        /// The earlier failure.
        cause: String,
    },

    /// A heap, typed-data or store error ([`crate::rds::Error`]), carried whole: converting
    /// back with `From` gives the same value, and the RDS error's own RVM errors convert to
    /// themselves, so either error type can be used with `?` everywhere.
    #[error(transparent)]
    Heap(Box<heap::Error>),
}

impl From<heap::Error> for Error {
    fn from(e: heap::Error) -> Error {
        match e {
            heap::Error::Rvm(e) => e,
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
            Error::SegmentNotFound { .. } | Error::PlainFileMismatch { .. } => "RVM_EIO",
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
            Error::TransactionEnded => "RVM_ETID",
            Error::TransactionOpen => "RVM_ETID",
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
        let heap = heap::Error::NoRoom {
            requested: 10,
            largest_free: 5,
        };
        let text = heap.to_string();
        let e = Error::from(heap);
        assert_eq!((e.to_string(), e.code_name()), (text.clone(), "ENO_ROOM"));
        let back = heap::Error::from(e);
        assert!(matches!(
            back,
            heap::Error::NoRoom {
                requested: 10,
                largest_free: 5
            }
        ));
        let rvm = Error::TooBig { size: 3, max: 2 };
        let wrapped = heap::Error::from(rvm);
        assert!(matches!(
            wrapped,
            heap::Error::Rvm(Error::TooBig { size: 3, max: 2 })
        ));
        assert!(matches!(
            Error::from(wrapped),
            Error::TooBig { size: 3, max: 2 }
        ));
    }
}
