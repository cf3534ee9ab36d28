//! Fixed-length persistent arrays with checked indexing.

use std::marker::PhantomData;
use std::ops::Range;

use bytemuck::{Pod, Zeroable};

use crate::rds::Error;
use crate::tx::Transaction;
use crate::typed::{element_size, read_into, span, Alloc, FieldPtr};

/// `len` values of type `T` in a row, starting `offset` bytes into the heap block whose data
/// starts at `block`: a persistent `[T]`. Every index is checked against `len`, and every
/// access against the block's size, so a stale or damaged slice gives an error, never a wild
/// access. Plain data (`Pod`), so it can be stored in the heap.
///
/// ```
/// use rvm::store::{Store, StoreOptions};
/// use rvm::typed::PSlice;
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-slice-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// let mut tx = store.begin()?;
/// let squares = PSlice::from_slice(&mut tx, &store, &[0u32, 1, 4, 9])?;
/// squares.set(&mut tx, &store, 2, &40)?;
/// assert!(squares.set(&mut tx, &store, 4, &16).is_err()); // out of bounds
/// tx.end(rvm::CommitMode::Flush)?;
/// assert_eq!(squares.get(&store, 2)?, 40);
/// assert_eq!(squares.to_vec(&store)?, [0, 1, 40, 9]);
/// assert_eq!(squares.slice(1..3)?.to_vec(&store)?, [1, 40]);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[repr(C)]
pub struct PSlice<T> {
    block: u64,
    offset: u64,
    len: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for PSlice<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for PSlice<T> {}
impl<T> PartialEq for PSlice<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.block, self.offset, self.len) == (other.block, other.offset, other.len)
    }
}
impl<T> Eq for PSlice<T> {}
impl<T> std::fmt::Debug for PSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PSlice({:#x}+{}, len {})",
            self.block, self.offset, self.len
        )
    }
}
// SAFETY: three u64 fields in a repr(C) struct (PhantomData is zero-sized): no padding, every
// bit pattern valid (accesses are checked at run time).
unsafe impl<T: 'static> Zeroable for PSlice<T> {}
// SAFETY: as above; `fn() -> T` makes the type Copy + 'static whatever T is.
unsafe impl<T: 'static> Pod for PSlice<T> {}

impl<T> PSlice<T> {
    /// The slice of `len` values at `offset` in the block at `block`. Any values are
    /// accepted; every access checks them.
    pub const fn from_raw_parts(block: u64, offset: u64, len: u64) -> Self {
        PSlice {
            block,
            offset,
            len,
            _type: PhantomData,
        }
    }

    /// The empty slice (names no block).
    pub const fn empty() -> Self {
        Self::from_raw_parts(0, 0, 0)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the slice has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the block's data.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The first element's offset in the block.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl<T: Pod> PSlice<T> {
    /// Allocate a block for `len` zeroed values, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`], or a zero-sized `T`, or a size that overflows.
    pub fn alloc(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        len: usize,
    ) -> Result<Self, Error> {
        a.lock(tx)?;
        let bytes = bytes_for::<T>(len)?;
        let block = a.alloc_bytes(tx, bytes.max(1))?;
        tx.fill(block, bytes, 0)?;
        Ok(Self::from_raw_parts(block as u64, 0, len as u64))
    }

    /// Allocate a block holding a copy of `values`, in `tx`.
    ///
    /// # Errors
    /// As [`PSlice::alloc`].
    pub fn from_slice(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        values: &[T],
    ) -> Result<Self, Error> {
        a.lock(tx)?;
        let bytes = bytes_for::<T>(values.len())?;
        let block = a.alloc_bytes(tx, bytes.max(1))?;
        tx.modify_bytes(block, bytemuck::cast_slice(values))?;
        Ok(Self::from_raw_parts(block as u64, 0, values.len() as u64))
    }

    fn check_index(&self, i: usize) -> Result<(), Error> {
        if (i as u64) < self.len {
            Ok(())
        } else {
            Err(Error::OutOfBounds {
                what: "the slice".into(),
                index: i as u64,
                len: self.len,
            })
        }
    }

    /// A pointer to element `i`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `i >= len`.
    pub fn at(&self, i: usize) -> Result<FieldPtr<T>, Error> {
        self.check_index(i)?;
        let size = element_size::<T>("element type")?;
        Ok(FieldPtr::new(self.block, self.offset + i as u64 * size))
    }

    /// A copy of element `i`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `i >= len`, or the slice does not lie in an allocated block.
    pub fn get(&self, a: &(impl Alloc + ?Sized), i: usize) -> Result<T, Error> {
        self.at(i)?.read(a)
    }

    /// Store `value` as element `i`, in `tx`.
    ///
    /// # Errors
    /// As [`PSlice::get`].
    pub fn set(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        i: usize,
        value: &T,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        self.at(i)?.write(tx, a, value)
    }

    /// The elements in `range`, as a slice of the same block.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the range is decreasing or ends past `len`.
    pub fn slice(&self, range: Range<usize>) -> Result<Self, Error> {
        if range.start > range.end || range.end as u64 > self.len {
            return Err(Error::OutOfBounds {
                what: format!("the slice (range {}..{})", range.start, range.end),
                index: range.end as u64,
                len: self.len,
            });
        }
        let size = element_size::<T>("element type")?;
        Ok(Self::from_raw_parts(
            self.block,
            self.offset + range.start as u64 * size,
            (range.end - range.start) as u64,
        ))
    }

    /// Copies of every element, with one bounds check and one copy.
    ///
    /// # Errors
    /// The slice does not lie in an allocated block.
    pub fn to_vec(&self, a: &(impl Alloc + ?Sized)) -> Result<Vec<T>, Error> {
        if self.len == 0 {
            return Ok(Vec::new());
        }
        bytes_for::<T>(self.len as usize)?;
        let mut out = vec![T::zeroed(); self.len as usize];
        read_into(
            a,
            self.block,
            self.offset,
            bytemuck::cast_slice_mut(&mut out),
        )?;
        Ok(out)
    }

    /// Overwrite the elements with `values` (which must have the same length), in `tx`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a length mismatch, or as [`PSlice::to_vec`].
    pub fn copy_from_slice(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        values: &[T],
    ) -> Result<(), Error> {
        a.lock(tx)?;
        if values.len() as u64 != self.len {
            return Err(Error::InvalidArgument {
                parameter: "values",
                rule: format!("{} values for a slice of {}", values.len(), self.len),
            });
        }
        if values.is_empty() {
            return Ok(());
        }
        let at = span(
            a,
            self.block,
            self.offset,
            bytes_for::<T>(values.len())? as u64,
        )?;
        tx.modify_bytes(at, bytemuck::cast_slice(values))?;
        Ok(())
    }

    /// The elements one by one, each a copy read when the iterator reaches it.
    pub fn iter<'a, A: Alloc + ?Sized>(&self, a: &'a A) -> SliceIter<'a, T, A> {
        SliceIter {
            slice: *self,
            next: 0,
            a,
        }
    }

    /// Free the block the slice lives in (the whole block, in `tx`).
    ///
    /// # Errors
    /// The block is not allocated.
    pub fn free(self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        a.free_bytes(tx, self.block as usize)
    }
}

/// Iterator over a [`PSlice`]'s elements (copies); see [`PSlice::iter`].
pub struct SliceIter<'a, T, A: ?Sized> {
    slice: PSlice<T>,
    next: usize,
    a: &'a A,
}

impl<T: Pod, A: Alloc + ?Sized> Iterator for SliceIter<'_, T, A> {
    type Item = Result<T, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.slice.len() {
            return None;
        }
        let item = self.slice.get(self.a, self.next);
        // Stop after an error: the rest would fail the same way.
        self.next = if item.is_ok() {
            self.next + 1
        } else {
            usize::MAX
        };
        Some(item)
    }
}

/// Bytes for `len` values of `T`, refusing zero-sized types and overflow.
pub(crate) fn bytes_for<T>(len: usize) -> Result<usize, Error> {
    let size = element_size::<T>("element type")?;
    (len as u64)
        .checked_mul(size)
        .filter(|b| *b <= isize::MAX as u64)
        .map(|b| b as usize)
        .ok_or_else(|| Error::InvalidArgument {
            parameter: "length",
            rule: format!("{len} elements of {size} bytes overflow"),
        })
}
