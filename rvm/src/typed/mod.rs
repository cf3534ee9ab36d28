//! Typed persistent data in the RDS heap, with no `unsafe` in user code beyond opening the
//! store (its mapped files must not be shortened by anything else; see `Store::open_or_create`).
//!
//! * [`PersistentPtr`] (a block) and [`FieldPtr`] (a value inside a block, made by the
//!   [`field!`](crate::field) macro) read and write one typed value; every access checks
//!   that the value lies inside an allocated block.
//! * [`PSlice`]: a fixed-length array in a block, with checked indexing.
//! * [`PVec`] (a growable vector), [`PBytes`] (a byte string) and [`PHashMap`] (a hash map
//!   with get, insert, remove, len and iteration): containers whose every change is made
//!   inside the caller's transaction, so an abort (or a crash before commit) undoes it.
//!
//! Every handle is a small `Pod` value (an address, or an address and a length), so handles
//! can themselves be stored in the heap: a map of vectors is a `PHashMap<K, PVec<T>>`.
//! Values are [`Pod`]: plain bytes with no pointers into volatile memory, no padding.
//!
//! Operations take the place the data lives in as an [`Alloc`]: a [`Heap`] or a
//! [`Store`](crate::store::Store) (which spreads allocations over every heap segment it has).
//! Changes take a `&mut Transaction` (restore mode); reads take none and return **copies**:
//! mapped memory that another thread may write is never turned into a Rust reference.
//! Every changing call first takes the heap's *data lock* for its transaction
//! ([`Alloc::lock`]), held until the transaction ends, so two transactions' container changes
//! never interleave. This is stricter than the heap's own rule (a plain `malloc` or `free`
//! never waits for another transaction) on purpose: a container's invariants span several
//! blocks, and another transaction must neither change them half way nor read them half made.
//! Reads outside a transaction wait while another thread's transaction holds the data lock,
//! so they never see a half-made change (they do see the calling thread's own uncommitted
//! changes); several such reads are not a snapshot, though: to read a consistent view while
//! other threads change the data, read inside a transaction after [`Alloc::lock`].
//!
//! ```
//! use rvm::store::{Store, StoreOptions};
//! use rvm::typed::{PHashMap, PVec};
//! use rvm::rds::PersistentPtr;
//! # fn main() -> Result<(), rvm::rds::Error> {
//! # let dir = std::env::temp_dir().join(format!("rvm-doc-typed-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
//! let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
//! // The root names a map from user id to the list of that user's scores.
//! let root = store.root::<PHashMap<u64, PVec<u32>>>()?;
//! let mut tx = store.begin()?;
//! let scores = PHashMap::new(&mut tx, &store)?;
//! root.set(&mut tx, &scores)?;
//! let list = PVec::new(&mut tx, &store)?;
//! list.push(&mut tx, &store, &17)?;
//! scores.insert(&mut tx, &store, &42, &list)?;
//! tx.end(rvm::CommitMode::Flush)?;
//!
//! let scores = root.get()?;
//! let list = scores.get(&store, &42)?.expect("user 42 has a list");
//! assert_eq!(list.to_vec(&store)?, [17]);
//! # drop(store);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod bytes;
mod map;
mod ptr;
mod slice;
mod vec;

use crate::rds::{Error, Heap};
use crate::tx::Transaction;

pub use crate::rds::PersistentPtr;
pub use bytemuck::{Pod, Zeroable};
pub use bytes::PBytes;
pub use map::{MapIter, MapKey, PHashMap};
pub use ptr::{FieldPtr, Place};
pub use slice::{PSlice, SliceIter};
pub use vec::PVec;

#[doc(hidden)]
pub use ptr::__field_ptr;

/// Where persistent containers allocate and read: a [`Heap`], or a
/// [`Store`](crate::store::Store) with one or more heaps.
///
/// Every method is checked: an address that is not the start of an allocated block is an
/// error, never a wild read or write.
pub trait Alloc {
    /// Take the heap(s)' data lock for `tx` until it ends: other transactions' container
    /// changes, and typed reads outside transactions, wait until then (at most the
    /// instance's `lock_timeout`). Every changing container call does this first, so
    /// container changes of two transactions never interleave, and reads made in `tx` after
    /// it see no other transaction's container changes (a consistent view). Plain
    /// [`Heap::malloc`] and [`Heap::free`] never take it.
    ///
    /// # Errors
    /// [`Error::Busy`] if this thread holds the data lock in another open transaction;
    /// [`Error::InvalidArgument`] for a no-restore transaction; a lock timeout (in
    /// [`Error::Rvm`]).
    fn lock(&self, tx: &mut Transaction<'_>) -> Result<(), Error>;

    /// Allocate a block of at least `size` bytes in `tx`; returns the address of its data
    /// (8-byte aligned, contents unspecified).
    ///
    /// # Errors
    /// [`Error::NoRoom`] when no heap has a large enough free block.
    fn alloc_bytes(&self, tx: &mut Transaction<'_>, size: usize) -> Result<usize, Error>;

    /// Free the block whose data starts at `address`, in `tx`.
    ///
    /// # Errors
    /// The address was not allocated here ([`Error::NotFromHeap`]), or is already free.
    fn free_bytes(&self, tx: &mut Transaction<'_>, address: usize) -> Result<(), Error>;

    /// The usable bytes of the allocated block whose data starts at `address`.
    ///
    /// # Errors
    /// The address is not the start of an allocated block.
    fn block_len(&self, address: usize) -> Result<usize, Error>;

    /// Copy `buf.len()` bytes of mapped memory at `address` (no check that they are
    /// allocated: callers check with [`Alloc::block_len`] first).
    ///
    /// # Errors
    /// The range is not mapped.
    fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<(), Error>;

    /// Check that `block` is the start of an allocated block and copy
    /// `min(buf.len(), usable - offset)` bytes from `offset` in it into the front of `buf`
    /// (none when `offset` is at or past the block's usable bytes); returns the block's usable
    /// bytes. The rest of `buf`, and all of it after an error, hold unspecified bytes.
    ///
    /// The provided version is [`Alloc::block_len`] then [`Alloc::read_bytes`]; `Heap` and
    /// `Store` check and copy in one step.
    ///
    /// # Errors
    /// As [`Alloc::block_len`] and [`Alloc::read_bytes`].
    fn read_block(&self, block: usize, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        let usable = self.block_len(block)?;
        let n = usable.saturating_sub(offset).min(buf.len());
        if n > 0 {
            let Some(at) = block.checked_add(offset) else {
                return Err(Error::OutOfBounds {
                    what: format!("the block at {block:#x} (bytes)"),
                    index: offset as u64,
                    len: usable as u64,
                });
            };
            self.read_bytes(at, &mut buf[..n])?;
        }
        Ok(usable)
    }
}

impl Alloc for Heap {
    fn lock(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        self.own(tx)
    }
    fn alloc_bytes(&self, tx: &mut Transaction<'_>, size: usize) -> Result<usize, Error> {
        self.malloc(tx, size)
    }
    fn free_bytes(&self, tx: &mut Transaction<'_>, address: usize) -> Result<(), Error> {
        self.free(tx, address)
    }
    fn block_len(&self, address: usize) -> Result<usize, Error> {
        self.data_usable_size(address)
    }
    fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<(), Error> {
        Ok(self.segment().read_bytes(address, buf)?)
    }
    fn read_block(&self, block: usize, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        self.data_read_block(block, offset, buf)
    }
}

/// Check that `len` bytes at `offset` lie inside the allocated block at `block`; returns
/// their address.
pub(crate) fn span(
    a: &(impl Alloc + ?Sized),
    block: u64,
    offset: u64,
    len: u64,
) -> Result<usize, Error> {
    let usable = a.block_len(block as usize)? as u64;
    within(block, offset, len, usable)?;
    Ok((block + offset) as usize)
}

/// Check that `len` bytes at `offset` lie inside the `usable` bytes of the block at `block`.
pub(crate) fn within(block: u64, offset: u64, len: u64, usable: u64) -> Result<(), Error> {
    match offset.checked_add(len) {
        Some(end) if end <= usable => Ok(()),
        _ => Err(Error::OutOfBounds {
            what: format!("the block at {block:#x} (bytes)"),
            index: offset.saturating_add(len),
            len: usable,
        }),
    }
}

/// Fill `buf` from `offset` in the block at `block`, which must hold all of it (checked and
/// copied in one [`Alloc::read_block`]).
pub(crate) fn read_into(
    a: &(impl Alloc + ?Sized),
    block: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), Error> {
    let len = buf.len() as u64;
    let usable = a.read_block(block as usize, offset as usize, buf)? as u64;
    within(block, offset, len, usable)
}

/// A copy of the `T` at `offset` in the block at `block` (checked).
pub(crate) fn read_at<T: Pod>(
    a: &(impl Alloc + ?Sized),
    block: u64,
    offset: u64,
) -> Result<T, Error> {
    let mut value = T::zeroed();
    read_into(a, block, offset, bytemuck::bytes_of_mut(&mut value))?;
    Ok(value)
}

/// Store `value` at `offset` in the block at `block`, in `tx` (checked).
pub(crate) fn write_at<T: Pod>(
    tx: &mut Transaction<'_>,
    a: &(impl Alloc + ?Sized),
    block: u64,
    offset: u64,
    value: &T,
) -> Result<(), Error> {
    let at = span(a, block, offset, std::mem::size_of::<T>() as u64)?;
    tx.write(at, value)?;
    Ok(())
}

/// Refuse zero-sized element types (they would make lengths meaningless).
pub(crate) fn element_size<T>(what: &'static str) -> Result<u64, Error> {
    match std::mem::size_of::<T>() {
        0 => Err(Error::InvalidArgument {
            parameter: what,
            rule: format!(
                "{} is zero-sized; a persistent container needs elements of at least one byte",
                std::any::type_name::<T>()
            ),
        }),
        n => Ok(n as u64),
    }
}
