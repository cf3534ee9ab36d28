//! A growable persistent vector.

use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

use crate::rds::Error;
use crate::tx::Transaction;
use crate::typed::slice::bytes_for;
use crate::typed::{read_at, span, write_at, Alloc, PSlice, SliceIter};

/// The header block of a vector: its length, capacity and the data block (0: none yet).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Header {
    len: u64,
    cap: u64,
    data: u64,
}
const HEADER_BYTES: usize = std::mem::size_of::<Header>();

/// A growable vector of `T` in the heap: a persistent `Vec<T>`.
///
/// The handle is the address of a small header block (length, capacity, data block), so it
/// stays the same while the vector grows, and it is `Pod`: store it in a root, a struct or
/// another container. Every change happens in the caller's transaction: an abort, or a crash
/// before commit, undoes it. Reads return copies.
///
/// ```
/// use rvm::store::{Store, StoreOptions};
/// use rvm::typed::PVec;
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-vec-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// let events = store.root::<PVec<u64>>()?;
/// let mut tx = store.begin()?;
/// let v = PVec::new(&mut tx, &store)?;
/// events.set(&mut tx, &v)?;
/// for i in 0..100 {
///     v.push(&mut tx, &store, &i)?;
/// }
/// tx.end(rvm::CommitMode::Flush)?;
///
/// let mut tx = store.begin()?;
/// v.push(&mut tx, &store, &1000)?;
/// tx.abort()?; // undone
/// let v = events.get()?;
/// assert_eq!(v.len(&store)?, 100);
/// assert_eq!(v.get(&store, 99)?, 99);
/// assert!(v.get(&store, 100).is_err());
/// assert_eq!(v.iter(&store)?.map(|x| x.unwrap()).sum::<u64>(), 4950);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[repr(transparent)]
pub struct PVec<T> {
    header: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for PVec<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for PVec<T> {}
impl<T> PartialEq for PVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
    }
}
impl<T> Eq for PVec<T> {}
impl<T> std::fmt::Debug for PVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PVec({:#x})", self.header)
    }
}
// SAFETY: a transparent wrapper of one u64: no padding, every bit pattern valid (the address
// is checked at every access; 0 is the null handle).
unsafe impl<T: 'static> Zeroable for PVec<T> {}
// SAFETY: as above; `fn() -> T` makes the type Copy + 'static whatever T is.
unsafe impl<T: 'static> Pod for PVec<T> {}

impl<T> PVec<T> {
    /// The null handle (names no vector; every access is an error). A zeroed root holds it.
    pub const fn null() -> Self {
        PVec {
            header: 0,
            _type: PhantomData,
        }
    }

    /// Whether this is the null handle.
    pub fn is_null(&self) -> bool {
        self.header == 0
    }

    /// The address of the vector's header block.
    pub fn address(&self) -> usize {
        self.header as usize
    }
}

impl<T: Pod> PVec<T> {
    /// A new, empty vector (allocates its header block) in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`], or `T` is zero-sized.
    pub fn new(tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<Self, Error> {
        a.lock(tx)?;
        bytes_for::<T>(0)?;
        let header = a.alloc_bytes(tx, HEADER_BYTES)?;
        tx.write(header, &Header::zeroed())?;
        Ok(PVec {
            header: header as u64,
            _type: PhantomData,
        })
    }

    /// A new vector holding a copy of `values`, in `tx`.
    ///
    /// # Errors
    /// As [`PVec::new`].
    pub fn from_slice(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        values: &[T],
    ) -> Result<Self, Error> {
        a.lock(tx)?;
        let v = Self::new(tx, a)?;
        v.extend_from_slice(tx, a, values)?;
        Ok(v)
    }

    fn header(&self, a: &(impl Alloc + ?Sized)) -> Result<Header, Error> {
        let h: Header = read_at(a, self.header, 0)?;
        if h.len > h.cap {
            return Err(Error::Corrupt {
                address: self.header,
                detail: format!("vector length {} exceeds its capacity {}", h.len, h.cap),
            });
        }
        Ok(h)
    }

    /// Number of elements.
    ///
    /// # Errors
    /// The handle does not name a vector's header block.
    pub fn len(&self, a: &(impl Alloc + ?Sized)) -> Result<usize, Error> {
        Ok(self.header(a)?.len as usize)
    }

    /// Whether the vector is empty.
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn is_empty(&self, a: &(impl Alloc + ?Sized)) -> Result<bool, Error> {
        Ok(self.len(a)? == 0)
    }

    /// The current elements as a [`PSlice`] (valid until the vector next grows, shrinks or
    /// is freed; accesses stay checked either way).
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn as_slice(&self, a: &(impl Alloc + ?Sized)) -> Result<PSlice<T>, Error> {
        let h = self.header(a)?;
        Ok(PSlice::from_raw_parts(h.data, 0, h.len))
    }

    /// A copy of element `i`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `i >= len`.
    pub fn get(&self, a: &(impl Alloc + ?Sized), i: usize) -> Result<T, Error> {
        self.as_slice(a)?.get(a, i)
    }

    /// Store `value` as element `i`, in `tx`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `i >= len`.
    pub fn set(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        i: usize,
        value: &T,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        self.as_slice(a)?.set(tx, a, i, value)
    }

    /// Copies of every element.
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn to_vec(&self, a: &(impl Alloc + ?Sized)) -> Result<Vec<T>, Error> {
        self.as_slice(a)?.to_vec(a)
    }

    /// The elements one by one (copies), as they are when the iterator reaches them.
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn iter<'a, A: Alloc + ?Sized>(&self, a: &'a A) -> Result<SliceIter<'a, T, A>, Error> {
        Ok(self.as_slice(a)?.iter(a))
    }

    /// Make room for at least `additional` more elements (doubling, so pushes cost amortized
    /// constant time), in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`]; the vector is unchanged.
    pub fn reserve(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        additional: usize,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        let h = self.header(a)?;
        self.reserve_with(tx, a, h, additional).map(|_| ())
    }

    fn reserve_with(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        mut h: Header,
        additional: usize,
    ) -> Result<Header, Error> {
        let need = h
            .len
            .checked_add(additional as u64)
            .ok_or_else(|| Error::InvalidArgument {
                parameter: "additional",
                rule: "the length would overflow".into(),
            })?;
        if need <= h.cap {
            return Ok(h);
        }
        let cap = need.max(h.cap.saturating_mul(2)).max(4);
        let bytes = bytes_for::<T>(cap as usize)?;
        let data = a.alloc_bytes(tx, bytes)?;
        if h.len > 0 {
            let old = PSlice::<T>::from_raw_parts(h.data, 0, h.len).to_vec(a)?;
            tx.modify_bytes(data, bytemuck::cast_slice(&old))?;
        }
        if h.data != 0 {
            a.free_bytes(tx, h.data as usize)?;
        }
        h.cap = cap;
        h.data = data as u64;
        write_at(tx, a, self.header, 0, &h)?;
        Ok(h)
    }

    /// Append `value`, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when the vector must grow and no heap has room.
    pub fn push(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        value: &T,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        self.extend_from_slice(tx, a, std::slice::from_ref(value))
    }

    /// Append a copy of `values`, in `tx`.
    ///
    /// # Errors
    /// As [`PVec::push`].
    pub fn extend_from_slice(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        values: &[T],
    ) -> Result<(), Error> {
        a.lock(tx)?;
        if values.is_empty() {
            return Ok(());
        }
        let h = self.header(a)?;
        let mut h = self.reserve_with(tx, a, h, values.len())?;
        let size = bytes_for::<T>(1)? as u64;
        let at = span(
            a,
            h.data,
            h.len * size,
            bytes_for::<T>(values.len())? as u64,
        )?;
        tx.modify_bytes(at, bytemuck::cast_slice(values))?;
        h.len += values.len() as u64;
        write_at(tx, a, self.header, 0, &h.len)
    }

    /// Remove and return the last element, in `tx` (`None` if empty). The capacity stays.
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn pop(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
    ) -> Result<Option<T>, Error> {
        a.lock(tx)?;
        let h = self.header(a)?;
        if h.len == 0 {
            return Ok(None);
        }
        let last = PSlice::<T>::from_raw_parts(h.data, 0, h.len).get(a, h.len as usize - 1)?;
        write_at(tx, a, self.header, 0, &(h.len - 1))?;
        Ok(Some(last))
    }

    /// Shorten the vector to `len` elements (no effect if it is not longer), in `tx`.
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn truncate(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        len: usize,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        let h = self.header(a)?;
        if (len as u64) < h.len {
            write_at(tx, a, self.header, 0, &(len as u64))?;
        }
        Ok(())
    }

    /// Remove every element, in `tx` (the capacity stays).
    ///
    /// # Errors
    /// As [`PVec::len`].
    pub fn clear(&self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        self.truncate(tx, a, 0)
    }

    /// Free the vector's blocks, in `tx`. The elements themselves are not visited: free
    /// nested containers first.
    ///
    /// # Errors
    /// The handle does not name a vector.
    pub fn free(self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        let h = self.header(a)?;
        if h.data != 0 {
            a.free_bytes(tx, h.data as usize)?;
        }
        a.free_bytes(tx, self.header as usize)
    }
}
