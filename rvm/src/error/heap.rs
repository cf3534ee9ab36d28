//! The heap's error type (`rvm::rds::Error`), kept beside the library's own: each carries the
//! other whole. [`Error::code_name`] gives the classic RDS code (`ENO_ROOM`,
//! `EFREED_TWICE`, ...) for users who know them.

/// Why a heap operation was refused. A refused operation has changed nothing in the heap,
/// except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying RVM call failed.
    #[error(transparent)]
    Rvm(crate::error::Error),

    /// No free block is large enough.
    #[error(
        "no room: asked for {requested} bytes, the largest allocation that would succeed now \
         is {largest_free} bytes"
    )]
    NoRoom {
        /// Bytes asked for.
        requested: u64,
        /// The largest allocation that would succeed now.
        largest_free: u64,
    },

    /// The block at this address is already free.
    #[error("block at {address:#x} is already free (double free)")]
    DoubleFree {
        /// The block's address.
        address: u64,
    },

    /// Another open transaction frees this block at its commit already.
    #[error(
        "block at {address:#x} is being freed by transaction {transaction}, which is still open \
         (double free)"
    )]
    FreePending {
        /// The block's address.
        address: u64,
        /// Id of the transaction that frees it.
        transaction: u64,
    },

    /// The address is not one `malloc` returned from this heap.
    #[error("{address:#x} was not allocated from this heap: {reason}")]
    NotFromHeap {
        /// The address given.
        address: u64,
        /// Why it is not a block of this heap.
        reason: String,
    },

    /// A block tag, list link or header field is damaged; nothing was followed past it.
    #[error("heap corrupted at {address:#x}: {detail}")]
    Corrupt {
        /// Address of the damaged tag, link or field.
        address: u64,
        /// What is wrong there.
        detail: String,
    },

    /// The heap was written by another version of this library.
    #[error("heap at {address:#x} has format version {found}, this library reads {expected}")]
    VersionSkew {
        /// Address of the heap header.
        address: u64,
        /// The version in the header.
        found: u64,
        /// The version this library reads and writes.
        expected: u64,
    },

    /// The region holds no heap (never initialised, or not an RDS segment).
    #[error("no RDS heap at {address:#x}: {reason}")]
    NoHeap {
        /// Address of the region.
        address: u64,
        /// What is missing or wrong.
        reason: String,
    },

    /// The segment is not laid out as a heap segment (two regions, static right after heap,
    /// mapped at the recorded addresses).
    #[error("{path}: not usable as a heap segment: {reason}")]
    BadSegment {
        /// The segment file or device.
        path: String,
        /// What is wrong with its layout.
        reason: String,
    },

    /// A layout parameter is out of range; the message names it and the rule.
    #[error("invalid heap layout: {parameter}: {rule}")]
    BadLayout {
        /// The parameter, by its classic name.
        parameter: &'static str,
        /// The rule it breaks, with the value given.
        rule: String,
    },

    /// Another argument is out of range; the message names it and the rule.
    #[error("invalid {parameter}: {rule}")]
    InvalidArgument {
        /// The argument.
        parameter: &'static str,
        /// The rule it breaks, with the value given.
        rule: String,
    },

    /// An index past the end of a persistent array, vector or field.
    #[error("index {index} is out of bounds: {what} holds {len}")]
    OutOfBounds {
        /// What was indexed ("vector", "slice", "block at 0x...").
        what: String,
        /// The index (or, for a block, the end offset) asked for.
        index: u64,
        /// How many there are (or the block's usable bytes).
        len: u64,
    },

    /// The files of a [`crate::store::Store`] are not in a state it can open or create; the
    /// message names the file and what is wrong. Nothing was changed.
    #[error("{path}: {reason}")]
    Store {
        /// The file (or directory) concerned.
        path: String,
        /// What is wrong, and what to do about it.
        reason: String,
    },

    /// This thread holds the heap's data lock (the typed layer's per-transaction lock, see
    /// [`crate::typed::Alloc::lock`]) in another open transaction; waiting for it would never
    /// end. Finish that transaction first. Plain `malloc` and `free` never return this.
    #[error(
        "the heap's typed data is held by transaction {holder} of this thread; end or abort it \
         before changing typed data in transaction {requester}"
    )]
    Busy {
        /// Id of the transaction holding the heap.
        holder: u64,
        /// Id of the transaction that asked.
        requester: u64,
    },
}

impl From<crate::error::Error> for Error {
    /// An RVM error, wrapped; an RVM error that carries a heap error gives that error back.
    fn from(e: crate::error::Error) -> Error {
        match e {
            crate::error::Error::Heap(e) => *e,
            other => Error::Rvm(other),
        }
    }
}

impl Error {
    /// The classic RDS error name closest to this error (RVM errors keep their RVM name).
    pub fn code_name(&self) -> &'static str {
        match self {
            Error::Rvm(e) => e.code_name(),
            Error::NoRoom { .. } => "ENO_ROOM",
            Error::DoubleFree { .. } | Error::FreePending { .. } => "EFREED_TWICE",
            Error::NotFromHeap { .. } => "EBAD_ARGS",
            Error::Corrupt { .. } => "ECORRUPT",
            Error::VersionSkew { .. } => "EHEAP_VERSION_SKEW",
            Error::NoHeap { .. } => "EHEAP_INIT",
            Error::BadSegment { .. } => "EBAD_SEGMENT_HDR",
            Error::BadLayout { .. }
            | Error::InvalidArgument { .. }
            | Error::Busy { .. }
            | Error::OutOfBounds { .. }
            | Error::Store { .. } => "EBAD_ARGS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_sizes_and_addresses() {
        let e = Error::NoRoom {
            requested: 5000,
            largest_free: 4000,
        };
        assert!(e.to_string().contains("5000") && e.to_string().contains("4000"));
        assert_eq!(e.code_name(), "ENO_ROOM");
        let e = Error::DoubleFree { address: 0x1234 };
        assert!(e.to_string().contains("0x1234"));
        assert_eq!(e.code_name(), "EFREED_TWICE");
        let e = Error::from(crate::error::Error::TooBig { size: 1, max: 0 });
        assert_eq!(e.code_name(), "RVM_ETOO_BIG");
    }
}
