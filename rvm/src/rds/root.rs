//! A typed root in the static region and typed persistent pointers into the heap.
//!
//! A program keeps the root of its data structure in the static region (Coda keeps its
//! `camlib_recoverable_segment` there) and links heap blocks with [`PersistentPtr`]s. Both
//! stay valid across restarts because the regions are always mapped at the addresses recorded
//! in the segment header. The static region starts zero-filled, so a root whose value is
//! all zeros means "not initialised yet".

use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

use crate::rds::{Error, Heap};
use crate::segment::Segment;
use crate::tx::Transaction;

/// The absolute address of a `T` in the heap (0 is null). Plain data (`Pod`), so it can be
/// stored in the heap, in the static region, or inside other persistent values.
///
/// A linked list whose head pointer lives in the static region (a [`Root`]):
///
/// ```
/// use rvm::rds::PersistentPtr;
/// # #[allow(unused_imports)]
/// # use rvm::rds::{self, Heap, HeapLayout};
/// # use rvm::segment::CreateOptions;
/// # use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-ptr-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let (log, data) = (dir.join("log"), dir.join("data"));
/// # Rvm::create_log(&log, 1 << 20)?;
/// # let rvm = Rvm::open(&log, Options::default())?;
/// # let layout = HeapLayout {
/// #     start_address: 0x2300_0000_0000, // the heap region; the static region follows it
/// #     heap_length: 1 << 20,
/// #     static_length: 4096,
/// #     ..HeapLayout::default()
/// # };
/// # // SAFETY: the data file is in this example's own temporary directory; nothing shortens it.
/// # unsafe {
/// #     let length = layout.segment_length_min();
/// #     rds::create_heap_segment(&rvm, &data, length, &layout, CreateOptions::default())
/// # }?;
/// # // SAFETY: as above.
/// # let seg = unsafe { rvm.map(&data, MapOptions::default()) }?;
/// # let heap = Heap::load(&seg)?;
/// // `rvm` is an open `Rvm`, `heap` a heap loaded from a mapped heap segment.
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Node { value: u64, next: PersistentPtr<Node> }
///
/// let head = heap.static_root::<PersistentPtr<Node>>()?; // zero (null) in a new heap
/// assert!(head.get()?.is_null());
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// for value in [1, 2, 3] {
///     let node = heap.alloc(&mut tx, &Node { value, next: head.get()? })?;
///     head.set(&mut tx, &node)?;
/// }
/// tx.end(CommitMode::Flush)?;
///
/// let mut values = Vec::new();
/// let mut at = head.get()?;
/// while !at.is_null() {
///     let node = heap.get(at)?;
///     values.push(node.value);
///     at = node.next;
/// }
/// assert_eq!(values, [3, 2, 1]);
/// assert!(heap.get(PersistentPtr::<Node>::null()).is_err()); // checked, never a wild read
/// # drop(heap);
/// # rvm.close()?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[repr(transparent)]
pub struct PersistentPtr<T> {
    address: u64,
    _type: PhantomData<fn() -> T>,
}

// Manual impls: derives would require `T` itself to be Clone/Copy/Eq/...
impl<T> Clone for PersistentPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for PersistentPtr<T> {}
impl<T> PartialEq for PersistentPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
    }
}
impl<T> Eq for PersistentPtr<T> {}
impl<T> std::hash::Hash for PersistentPtr<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.address.hash(state)
    }
}
impl<T> Default for PersistentPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}
impl<T> std::fmt::Debug for PersistentPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersistentPtr({:#x})", self.address)
    }
}
// SAFETY: a transparent wrapper of one u64 (PhantomData is zero-sized): no padding, and every
// bit pattern (including all zeros, the null pointer) is a valid value.
unsafe impl<T: 'static> Zeroable for PersistentPtr<T> {}
// SAFETY: as above; `fn() -> T` makes the type Copy + 'static whatever T is.
unsafe impl<T: 'static> Pod for PersistentPtr<T> {}

impl<T> PersistentPtr<T> {
    /// The null pointer (address 0); every access through it is an error.
    pub const fn null() -> Self {
        PersistentPtr {
            address: 0,
            _type: PhantomData,
        }
    }
    /// A pointer to `address` (checked at every access, so any value is safe to make).
    pub const fn from_address(address: usize) -> Self {
        PersistentPtr {
            address: address as u64,
            _type: PhantomData,
        }
    }
    /// Whether this is the null pointer.
    pub fn is_null(&self) -> bool {
        self.address == 0
    }
    /// The address pointed to.
    pub fn address(&self) -> usize {
        self.address as usize
    }
    /// The same address, typed as a `U`.
    pub fn cast<U>(self) -> PersistentPtr<U> {
        PersistentPtr::from_address(self.address as usize)
    }
}

/// A typed handle on a `T` at the start of the static region (see [`Heap::static_root`]).
/// The [`PersistentPtr`] example keeps a list's head in one.
pub struct Root<T> {
    segment: Segment,
    address: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Root<T> {
    fn clone(&self) -> Self {
        Root {
            segment: self.segment.clone(),
            address: self.address,
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Root<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Root({:#x})", self.address)
    }
}

impl<T> Root<T> {
    /// A root at `address` in `segment` (the caller checked that a `T` fits there).
    pub(crate) fn at(segment: Segment, address: usize) -> Root<T> {
        Root {
            segment,
            address,
            _type: PhantomData,
        }
    }
}

impl<T: Pod> Root<T> {
    /// The root's address in the static region.
    pub fn address(&self) -> usize {
        self.address
    }

    /// A copy of the root's current value.
    ///
    /// # Errors
    /// The segment is no longer mapped.
    pub fn get(&self) -> Result<T, Error> {
        Ok(self.segment.read::<T>(self.address)?)
    }

    /// Replace the root's value in `tx`.
    ///
    /// # Errors
    /// The transaction refused the range (segment unmapped, transaction failed).
    pub fn set(&self, tx: &mut Transaction<'_>, value: &T) -> Result<(), Error> {
        tx.write(self.address, value)?;
        Ok(())
    }

    /// Read the value, let `change` modify it, and write it back in `tx`; returns the new
    /// value.
    pub fn update(
        &self,
        tx: &mut Transaction<'_>,
        change: impl FnOnce(&mut T),
    ) -> Result<T, Error> {
        let mut value = self.get()?;
        change(&mut value);
        self.set(tx, &value)?;
        Ok(value)
    }
}

impl Heap {
    /// A typed root of type `T` at the start of the static region. `T` must fit in the
    /// static region.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a `T` does not fit in the static region.
    pub fn static_root<T: Pod>(&self) -> Result<Root<T>, Error> {
        let size = std::mem::size_of::<T>();
        if size > self.static_length() {
            return Err(Error::InvalidArgument {
                parameter: "root type",
                rule: format!(
                    "{} is {size} bytes, the static region holds {}",
                    std::any::type_name::<T>(),
                    self.static_length()
                ),
            });
        }
        Ok(Root {
            segment: self.segment().clone(),
            address: self.static_address(),
            _type: PhantomData,
        })
    }

    /// Allocate a block for a `T` in `tx` and store `value` in it.
    ///
    /// # Errors
    /// As for [`Heap::malloc`].
    pub fn alloc<T: Pod>(
        &self,
        tx: &mut Transaction<'_>,
        value: &T,
    ) -> Result<PersistentPtr<T>, Error> {
        let address = self.malloc(tx, std::mem::size_of::<T>())?;
        tx.write(address, value)?;
        Ok(PersistentPtr::from_address(address))
    }

    /// A copy of the `T` that `ptr` points to. The pointer must name an allocated block large
    /// enough for a `T`, so a dangling or foreign pointer is an error, not a wild read. Like
    /// the typed layer's reads, it waits while another thread's transaction holds the heap's
    /// data lock ([`Heap::set`]).
    ///
    /// # Errors
    /// As for [`Heap::usable_size`], and [`Error::InvalidArgument`] when the block is too
    /// small for a `T`; a lock timeout (in [`Error::Rvm`]).
    pub fn get<T: Pod>(&self, ptr: PersistentPtr<T>) -> Result<T, Error> {
        self.wait_for_data()?;
        self.check_allocated_range(ptr.address(), std::mem::size_of::<T>())?;
        Ok(self.segment().read::<T>(ptr.address())?)
    }

    /// Store `value` where `ptr` points, in `tx` (checked like [`Heap::get`]). The
    /// transaction takes the heap's data lock first (as the typed layer does, see
    /// [`crate::typed::Alloc::lock`]), so no other transaction can free the block through
    /// [`Heap::free_ptr`] or the typed layer before `tx` ends; a block another open
    /// transaction is freeing is refused.
    ///
    /// # Errors
    /// As for [`Heap::get`], as for [`Transaction::set_range`], [`Error::FreePending`], and
    /// the data lock's errors ([`Error::Busy`], a lock timeout).
    pub fn set<T: Pod>(
        &self,
        tx: &mut Transaction<'_>,
        ptr: PersistentPtr<T>,
        value: &T,
    ) -> Result<(), Error> {
        self.own(tx)?;
        self.check_allocated_range(ptr.address(), std::mem::size_of::<T>())?;
        self.check_not_freed_by_another(tx.id(), ptr.address())?;
        tx.write(ptr.address(), value)?;
        Ok(())
    }

    /// Free the block `ptr` points to when `tx` commits (as [`Heap::free`]), after taking
    /// the heap's data lock like [`Heap::set`], so a block another transaction is writing
    /// through a pointer is not freed under it.
    ///
    /// # Errors
    /// As for [`Heap::free`], and the data lock's errors ([`Error::Busy`], a lock timeout).
    pub fn free_ptr<T>(
        &self,
        tx: &mut Transaction<'_>,
        ptr: PersistentPtr<T>,
    ) -> Result<(), Error> {
        self.own(tx)?;
        self.free(tx, ptr.address())
    }
}
