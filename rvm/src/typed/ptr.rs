//! Typed pointers to a value inside a heap block, and the `field!` macro that makes them.

use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

use crate::rds::{Error, PersistentPtr};
use crate::tx::Transaction;
use crate::typed::{read_at, write_at, Alloc, PSlice};

/// A typed pointer to a `T` at `offset` bytes into the heap block whose data starts at
/// `block`: a struct's field, an array element, or any value in the middle of a block.
///
/// Keeping the block's address (not only the value's) lets every access check, in constant
/// time, that the value lies inside an allocated block. Plain data (`Pod`), so it can itself
/// be stored in the heap. Made by [`field!`](crate::field), [`FieldPtr::index`],
/// [`PSlice::at`] or from a [`PersistentPtr`].
///
/// ```
/// use rvm::field;
/// use rvm::rds::PersistentPtr;
/// use rvm::store::{Store, StoreOptions};
///
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Account {
///     id: u64,
///     balance: i64,
///     history: [i64; 4],
/// }
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-field-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// let mut tx = store.begin()?;
/// let account = PersistentPtr::alloc(&mut tx, &store, &Account { id: 7, balance: 100, history: [0; 4] })?;
/// // One field, typed: a FieldPtr<i64> into the middle of the block.
/// let balance = field!(account, Account, balance);
/// balance.write(&mut tx, &store, &250)?;
/// // An element of an array field, with a checked index.
/// field!(account, Account, history).index(3)?.write(&mut tx, &store, &-5)?;
/// assert!(field!(account, Account, history).index(4).is_err());
/// tx.end(rvm::CommitMode::Flush)?;
/// assert_eq!(balance.read(&store)?, 250);
/// assert_eq!(account.read(&store)?.history, [0, 0, 0, -5]);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[repr(C)]
pub struct FieldPtr<T> {
    block: u64,
    offset: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for FieldPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for FieldPtr<T> {}
impl<T> PartialEq for FieldPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.block, self.offset) == (other.block, other.offset)
    }
}
impl<T> Eq for FieldPtr<T> {}
impl<T> std::fmt::Debug for FieldPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldPtr({:#x}+{})", self.block, self.offset)
    }
}
// SAFETY: two u64 fields in a repr(C) struct (PhantomData is zero-sized): no padding, and
// every bit pattern is a valid value (accesses check the address at run time).
unsafe impl<T: 'static> Zeroable for FieldPtr<T> {}
// SAFETY: as above; `fn() -> T` makes the type Copy + 'static whatever T is.
unsafe impl<T: 'static> Pod for FieldPtr<T> {}

/// Something that names a `T` inside a heap block: a [`PersistentPtr`] (offset 0) or a
/// [`FieldPtr`]. Used by [`field!`](crate::field).
pub trait Place<T>: Copy {
    /// The address of the block's data.
    fn block(&self) -> u64;
    /// The value's offset in the block.
    fn offset(&self) -> u64;
}

impl<T> Place<T> for PersistentPtr<T> {
    fn block(&self) -> u64 {
        self.address() as u64
    }
    fn offset(&self) -> u64 {
        0
    }
}

impl<T> Place<T> for FieldPtr<T> {
    fn block(&self) -> u64 {
        self.block
    }
    fn offset(&self) -> u64 {
        self.offset
    }
}

impl<T> From<PersistentPtr<T>> for FieldPtr<T> {
    fn from(p: PersistentPtr<T>) -> Self {
        FieldPtr::new(p.address() as u64, 0)
    }
}

/// Used by [`field!`](crate::field): the field at `offset` of the `S` that `place` names.
/// `_check` (a closure `|s: &S| &s.field`, never called) makes the compiler check that the
/// field belongs to `S` and has type `F`.
#[doc(hidden)]
pub fn __field_ptr<S, F, P: Place<S>>(
    place: P,
    offset: usize,
    _check: fn(&S) -> &F,
) -> FieldPtr<F> {
    FieldPtr::new(place.block(), place.offset().saturating_add(offset as u64))
}

/// A typed pointer to one field of the struct a pointer names: `field!(ptr, Type, field)`
/// (also `field!(ptr, Type, a.b)` for a nested field). `ptr` is a
/// [`PersistentPtr<Type>`](crate::rds::PersistentPtr) or a [`FieldPtr<Type>`]; the result is
/// a [`FieldPtr`] of the field's type, checked at every access. No `unsafe` needed.
///
/// See [`FieldPtr`] for an example. The compiler checks the field's type and that it belongs
/// to the pointer's type; these do not compile:
///
/// ```compile_fail
/// # use rvm::{field, rds::PersistentPtr, typed::FieldPtr};
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Account { id: u64, balance: i64 }
/// let account = PersistentPtr::<Account>::null();
/// let wrong_type: FieldPtr<u32> = field!(account, Account, balance);
/// ```
///
/// ```compile_fail
/// # use rvm::{field, rds::PersistentPtr};
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Account { id: u64, balance: i64 }
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Other { id: u64, balance: i64 }
/// let other = PersistentPtr::<Other>::null();
/// let wrong_struct = field!(other, Account, balance);
/// ```
#[macro_export]
macro_rules! field {
    ($ptr:expr, $S:ty, $($field:tt).+) => {
        $crate::typed::__field_ptr::<$S, _, _>(
            $ptr,
            ::core::mem::offset_of!($S, $($field).+),
            |s: &$S| &s.$($field).+,
        )
    };
}

impl<T> FieldPtr<T> {
    /// A pointer to the `T` at `offset` in the block whose data starts at `block`. Any
    /// values are accepted; every access checks them.
    pub const fn new(block: u64, offset: u64) -> Self {
        FieldPtr {
            block,
            offset,
            _type: PhantomData,
        }
    }

    /// The address of the block's data.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The value's offset in the block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The value's absolute address.
    pub fn address(&self) -> usize {
        self.block.wrapping_add(self.offset) as usize
    }
}

impl<T: Pod> FieldPtr<T> {
    /// A copy of the value.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if the value does not lie inside the block, or an error if the
    /// block is not allocated.
    pub fn read(self, a: &(impl Alloc + ?Sized)) -> Result<T, Error> {
        read_at(a, self.block, self.offset)
    }

    /// Store `value` in `tx` (checked like [`FieldPtr::read`]).
    ///
    /// # Errors
    /// As [`FieldPtr::read`], or the transaction refused the range.
    pub fn write(
        self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        value: &T,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        write_at(tx, a, self.block, self.offset, value)
    }

    /// Read the value, let `change` modify it, store it in `tx`; returns the new value.
    ///
    /// # Errors
    /// As [`FieldPtr::write`].
    pub fn update(
        self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        change: impl FnOnce(&mut T),
    ) -> Result<T, Error> {
        a.lock(tx)?;
        let mut value = self.read(a)?;
        change(&mut value);
        self.write(tx, a, &value)?;
        Ok(value)
    }
}

impl<T: Pod, const N: usize> FieldPtr<[T; N]> {
    /// A pointer to element `i` of the array.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] if `i >= N`.
    pub fn index(self, i: usize) -> Result<FieldPtr<T>, Error> {
        self.as_slice().at(i)
    }

    /// The array as a [`PSlice`] of `N` elements.
    pub fn as_slice(self) -> PSlice<T> {
        PSlice::from_raw_parts(self.block, self.offset, N as u64)
    }
}

impl<T: Pod> PersistentPtr<T> {
    /// Allocate a block for a `T` in `tx` and store `value` in it.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when no heap has room.
    pub fn alloc(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        value: &T,
    ) -> Result<Self, Error> {
        a.lock(tx)?;
        let address = a.alloc_bytes(tx, std::mem::size_of::<T>().max(1))?;
        tx.write(address, value)?;
        Ok(PersistentPtr::from_address(address))
    }

    /// A copy of the value. The pointer must name an allocated block that holds a `T`.
    ///
    /// # Errors
    /// A null, dangling or foreign pointer, or a block too small for a `T`.
    pub fn read(self, a: &(impl Alloc + ?Sized)) -> Result<T, Error> {
        read_at(a, self.address() as u64, 0)
    }

    /// Store `value` in `tx` (checked like [`PersistentPtr::read`]).
    ///
    /// # Errors
    /// As [`PersistentPtr::read`].
    pub fn write(
        self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        value: &T,
    ) -> Result<(), Error> {
        a.lock(tx)?;
        write_at(tx, a, self.address() as u64, 0, value)
    }

    /// Read the value, let `change` modify it, store it in `tx`; returns the new value.
    ///
    /// # Errors
    /// As [`PersistentPtr::write`].
    pub fn update(
        self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        change: impl FnOnce(&mut T),
    ) -> Result<T, Error> {
        a.lock(tx)?;
        FieldPtr::from(self).update(tx, a, change)
    }

    /// Free the block, in `tx`.
    ///
    /// # Errors
    /// The pointer does not name an allocated block.
    pub fn free(self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        a.free_bytes(tx, self.address())
    }
}
