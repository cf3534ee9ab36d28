//! A persistent byte string.

use bytemuck::{Pod, Zeroable};

use crate::rds::Error;
use crate::tx::Transaction;
use crate::typed::{Alloc, PVec};

/// A growable byte string in the heap: a persistent `Vec<u8>` with string-like helpers.
/// The handle is `Pod` and stays the same while the string grows.
///
/// ```
/// use rvm::store::{Store, StoreOptions};
/// use rvm::typed::PBytes;
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-bytes-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// let mut tx = store.begin()?;
/// let s = PBytes::from_slice(&mut tx, &store, b"hello")?;
/// s.extend_from_slice(&mut tx, &store, b", world")?;
/// tx.end(rvm::CommitMode::Flush)?;
/// assert_eq!(s.to_vec(&store)?, b"hello, world");
/// assert_eq!(s.to_string_lossy(&store)?, "hello, world");
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
#[repr(transparent)]
pub struct PBytes(PVec<u8>);

impl PBytes {
    /// The null handle (names no string). A zeroed root holds it.
    pub const fn null() -> Self {
        PBytes(PVec::null())
    }

    /// Whether this is the null handle.
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }

    /// The address of the string's header block.
    pub fn address(&self) -> usize {
        self.0.address()
    }

    /// A new, empty string, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn new(tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<Self, Error> {
        a.lock(tx)?;
        Ok(PBytes(PVec::new(tx, a)?))
    }

    /// A new string holding a copy of `bytes`, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn from_slice(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        bytes: &[u8],
    ) -> Result<Self, Error> {
        a.lock(tx)?;
        Ok(PBytes(PVec::from_slice(tx, a, bytes)?))
    }

    /// Length in bytes.
    ///
    /// # Errors
    /// The handle does not name a string.
    pub fn len(&self, a: &(impl Alloc + ?Sized)) -> Result<usize, Error> {
        self.0.len(a)
    }

    /// Whether the string is empty.
    ///
    /// # Errors
    /// As [`PBytes::len`].
    pub fn is_empty(&self, a: &(impl Alloc + ?Sized)) -> Result<bool, Error> {
        self.0.is_empty(a)
    }

    /// A copy of the bytes.
    ///
    /// # Errors
    /// As [`PBytes::len`].
    pub fn to_vec(&self, a: &(impl Alloc + ?Sized)) -> Result<Vec<u8>, Error> {
        self.0.to_vec(a)
    }

    /// A copy of the bytes as text (invalid UTF-8 replaced by U+FFFD).
    ///
    /// # Errors
    /// As [`PBytes::len`].
    pub fn to_string_lossy(&self, a: &(impl Alloc + ?Sized)) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(&self.to_vec(a)?).into_owned())
    }

    /// Append `bytes`, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn extend_from_slice(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        bytes: &[u8],
    ) -> Result<(), Error> {
        a.lock(tx)?;
        self.0.extend_from_slice(tx, a, bytes)
    }

    /// Replace the contents with `bytes`, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn set(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        bytes: &[u8],
    ) -> Result<(), Error> {
        a.lock(tx)?;
        self.0.clear(tx, a)?;
        self.0.extend_from_slice(tx, a, bytes)
    }

    /// The byte vector underneath (for element access and [`PVec::truncate`]).
    pub fn as_vec(&self) -> PVec<u8> {
        self.0
    }

    /// Free the string's blocks, in `tx`.
    ///
    /// # Errors
    /// The handle does not name a string.
    pub fn free(self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        self.0.free(tx, a)
    }
}
