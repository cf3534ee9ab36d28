//! The heap handle: the locking rule, malloc, free, prealloc, intention lists, statistics.
//!
//! # The locking rule: a heap call never waits for another transaction
//!
//! Several transactions, of one thread or many, may allocate and free at the same time. Every
//! heap call is a short critical section under the heap's lock: it may wait for another heap
//! *call* in progress to return, never for another *transaction* to end (a C program whose
//! threads are coroutines on one kernel thread could never see that end), and it never
//! answers "busy". Read-only calls ([`Heap::check`], [`Heap::statistics`], ...) take the same
//! lock, so they see a consistent heap: every block allocated, by committed or open
//! transactions, and no block freed by an open one.
//!
//! Because other transactions change the heap while a transaction is open, an abort must
//! never put heap metadata back (the classic library does, and corrupts its heap when another
//! transaction allocated in between: spec K11). So heap metadata never goes through the
//! caller's undo:
//!
//! * **malloc** (and [`Heap::prealloc`], [`Heap::clear_statistics`], [`Heap::init`]) changes
//!   the heap in a transaction of its own on the same instance, committed no_flush *before
//!   the heap's lock is released*, so the log holds the heap's changes in the order they
//!   were made. (Except for `init`, that transaction is a record queued straight from the
//!   call's write log, `write_log.rs`, without a [`Transaction`]: see `tx/own_record.rs`.
//!   The call writes memory at once, keeps each word's old value in its log, and puts them
//!   back itself if it fails.) The block is recorded as pending for the caller's transaction, which
//!   carries a hook ([`crate::tx::TxHook`]): if it aborts, the block is freed again by a
//!   fresh heap call (its own no_flush commit); if it commits, the entry is dropped. Its
//!   record follows the allocation's in the log, so a flush commit makes the allocation
//!   durable too. A crash before the caller commits *leaks* the block (allocated,
//!   unreachable), as in the classic library; the same is true of an abort whose freeing
//!   commit had not reached the disk. `rds_interleaving.rs` counts such blocks.
//! * **free** checks the block now (allocated, not being freed by any open transaction, its
//!   neighbours intact) and records it as pending-free for the transaction. The free itself
//!   happens *inside the transaction's own record*: at commit, before the record is built,
//!   the hook takes the heap's lock, frees the blocks and declares the words written with
//!   `set_range` on the transaction (saving old values even in no-restore mode, so a record
//!   refused after that puts them back), and keeps the lock until the record is queued. A
//!   lone free whose check at the call still holds (no heap call has changed the heap
//!   since: same generation) is made by that check's plan, once the words the free reads or
//!   decides by are found unchanged since (any change is damage: the commit is refused);
//!   other frees are checked again in full. A free
//!   is therefore atomic with the transaction that made it; an abort just forgets it.
//!   Intention lists ([`Heap::fake_free`], [`Heap::do_free`]) use the same path.
//! * Across transactions (the `pending` module keeps the books): a transaction that frees a
//!   block another open transaction allocated does not free it at its own commit (the
//!   allocator has written into the block, and its abort would roll those bytes back over
//!   the free block's list links); it hands the free over to the allocator, whose commit
//!   makes it in its own record, and whose abort frees the block anyway. An allocator that
//!   aborts first frees the block and cancels the other's pending free, so that commit
//!   cannot free a block someone may have allocated again.
//!
//! Nothing in the heap depends on the caller's undo any more, so heap calls accept
//! [`BeginMode::NoRestore`] transactions too (an abort still frees their allocations).
//!
//! A transaction leaked with `mem::forget` never commits or aborts: its allocations stay
//! allocated (leaked) and its frees never happen; other transactions are not held up.
//!
//! The typed layer ([`crate::typed`], [`Heap::set`], [`Heap::get`], [`Heap::free_ptr`]) keeps
//! a stricter rule of its own on top, the *data lock* (see `data_lock.rs`): a transaction that
//! changes typed data holds it until it ends, because a container's invariants span several
//! blocks. `malloc`, `free` and the C interface never take it.

use std::sync::{Arc, Mutex, MutexGuard, RwLockReadGuard, Weak};

use crate::format::heap::{
    foot_word, head_word, header_length, list_offset, BlockState, HeapCounters, HeapGeometry,
    HeapHeader, COUNTERS_OFFSET, COUNTERS_WORDS, GENERATION_OFFSET, TAG_SIZE,
};
use crate::instance::Rvm;
use crate::rds::alloc::{Ctx, FreePlan, LargeIndex};
use crate::rds::data_lock::DataLock;
use crate::rds::pending::Pending;
use crate::rds::reader::{corrupt, read_header, Reader};
use crate::rds::view::View;
use crate::rds::write_log::WriteLog;
use crate::rds::Error;
use crate::segment::Segment;
use crate::sync::lock;
use crate::sync::read_lock;
use crate::tx::{
    queue_own_record, BeginMode, CommitMode, Queued, RegionHandle, RegionPin, Transaction,
};

mod block_read;
mod hook;
mod intentions;
mod reads;

pub use intentions::IntentionList;
pub use reads::HeapStatistics;

/// A recoverable heap in the first region of a mapped heap segment. Cheap to clone; every
/// clone (and every [`Heap::load`] of the same mapped segment) shares one lock. `Send + Sync`.
///
/// Any number of open transactions, of any threads, may allocate and free at once: a heap
/// call waits only for another heap call in progress, never for a transaction to end (see the
/// module documentation for how aborts stay safe). An allocation is visible to everybody at
/// once and freed again if its transaction aborts; a free takes effect when its transaction
/// commits, inside that transaction's record.
///
/// Create a heap segment with [`create_heap_segment`](crate::rds::create_heap_segment) (or
/// the `rdsinit` tool), map it, and load its heap:
///
/// ```
/// use rvm::rds::{self, Heap, HeapLayout};
/// use rvm::segment::CreateOptions;
/// use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
/// # fn main() -> Result<(), rvm::rds::Error> {
/// let dir = std::env::temp_dir().join(format!("rvm-doc-heap-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir).unwrap();
/// let (log, data) = (dir.join("log"), dir.join("data"));
/// Rvm::create_log(&log, 1 << 20)?;
/// let rvm = Rvm::open(&log, Options::default())?;
/// let layout = HeapLayout {
///     start_address: 0x2200_0000_0000, // the heap region; the static region follows it
///     heap_length: 1 << 20,
///     static_length: 4096,
///     ..HeapLayout::default()
/// };
/// // SAFETY: the data file is in this example's own temporary directory; nothing shortens it.
/// unsafe {
///     let length = layout.segment_length_min();
///     rds::create_heap_segment(&rvm, &data, length, &layout, CreateOptions::default())
/// }?;
/// // SAFETY: as above.
/// let seg = unsafe { rvm.map(&data, MapOptions::default()) }?;
/// let heap = Heap::load(&seg)?;
///
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// let a = heap.malloc(&mut tx, 100)?;
/// tx.fill(a, 100, 0xab)?; // the block's contents are whatever it held: initialise them
/// tx.end(CommitMode::Flush)?;
/// assert!(heap.usable_size(a)? >= 100);
/// assert_eq!(rvm.read::<u8>(a + 99)?, 0xab);
///
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// let b = heap.malloc(&mut tx, 1000)?;
/// tx.abort()?; // the block is freed again
/// assert!(heap.usable_size(b).is_err());
///
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// heap.free(&mut tx, a)?;
/// tx.end(CommitMode::Flush)?;
/// assert_eq!(heap.statistics().allocated_bytes, 0);
/// assert!(heap.check().is_ok());
/// # drop(heap);
/// # rvm.close()?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Heap {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heap")
            .field("address", &format_args!("{:#x}", self.shared.base))
            .field("length", &self.shared.length)
            .finish()
    }
}

pub(crate) struct Shared {
    segment: Segment,
    /// Address and length of the heap region.
    base: u64,
    length: u64,
    static_address: usize,
    static_length: usize,
    /// The heap's lock: held for the length of one heap call (or one commit's frees).
    state: Mutex<State>,
    /// The typed layer's per-transaction lock (see `data_lock.rs`).
    data: Arc<DataLock>,
    /// Validated headers for block checks without the lock (see `heap/block_read.rs`).
    layouts: block_read::Layouts,
}

/// Volatile state, protected by `Shared::state`.
struct State {
    /// `geometry` and `nonempty` describe memory as of `expected_generation`. Cleared after
    /// any failed call (whose transaction put old values back) and when a refused commit
    /// puts back the frees done in it; rebuilt lazily from the header's list heads, which
    /// costs O(nlists), whatever the heap's size.
    valid: bool,
    geometry: Option<HeapGeometry>,
    /// Bit `i` set when list `i` is non-empty.
    nonempty: Vec<u64>,
    /// The blocks of the large list by size, so a fit is found without walking the list.
    large: LargeIndex,
    expected_generation: u64,
    /// The header's fixed words (magic .. chunk count) when it was last validated; compared
    /// at every call, so a header changed behind the heap's back is validated again.
    header_words: HeaderWords,
    /// What open transactions have allocated and will free.
    pending: Pending,
    /// The write log of the call in progress (kept to reuse its allocations).
    log: WriteLog,
    /// Boxes of finished transactions' hooks, for the next ones (see `hook.rs`). Boxed on
    /// purpose: the allocations are what is reused (each becomes a `Box<dyn TxHook>`).
    #[allow(clippy::vec_box)]
    spare_hooks: Vec<Box<hook::HeapHook>>,
    /// The frees of the commit in progress (kept to reuse its allocation).
    frees: Vec<u64>,
    /// The plan of the last free checked at the call, with the heap's generation then. A
    /// commit whose one free is that block, with the heap still at that generation (no heap
    /// call has changed it since), frees it by this plan instead of checking it all again,
    /// once the words it follows are found unchanged (`Ctx::recheck`).
    checked_free: Option<(FreePlan, u64)>,
    /// The heap region as the last record of the heap's own pinned it (unpinned now), to pin
    /// it again without the region table (see `internal`).
    own_region: Option<RegionHandle>,
}

impl Shared {
    fn mapped_flag(&self) -> RwLockReadGuard<'_, bool> {
        read_lock(&self.segment.inner.mapped)
    }
}

/// Heaps loaded in this process, so that two loads of one mapped segment share a lock.
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

struct Plan {
    base: u64,
    length: u64,
    static_address: usize,
    static_length: usize,
}

fn check_segment(segment: &Segment) -> Result<Plan, Error> {
    let bad = |reason: String| Error::BadSegment {
        path: segment.path().to_string(),
        reason,
    };
    let regions = &segment.header().regions;
    if regions.len() != 2 {
        return Err(bad(format!(
            "it has {} regions; a heap segment has two (the heap, then the static region)",
            regions.len()
        )));
    }
    let (heap, statics) = (regions[0], regions[1]);
    if heap.address == 0 {
        return Err(bad("the heap region has no fixed address".into()));
    }
    if statics.address != heap.end_address() {
        return Err(bad(format!(
            "the static region is at {:#x}, not right after the heap (at {:#x})",
            statics.address,
            heap.end_address()
        )));
    }
    let mapped = segment.regions();
    if mapped.len() != 2
        || mapped[0].address as u64 != heap.address
        || mapped[1].address as u64 != statics.address
    {
        return Err(bad(format!(
            "the heap is mapped at {:#x} but the pointers inside it need {:#x}: map the \
             segment at its recorded addresses (MapOptions::default())",
            mapped.first().map_or(0, |m| m.address),
            heap.address
        )));
    }
    Ok(Plan {
        base: heap.address,
        length: heap.length,
        static_address: statics.address as usize,
        static_length: statics.length as usize,
    })
}

fn shared_for(segment: &Segment, plan: &Plan) -> Arc<Shared> {
    let mut registry = lock(&REGISTRY);
    registry.retain(|w| w.strong_count() > 0);
    for w in registry.iter() {
        if let Some(s) = w.upgrade() {
            if Arc::ptr_eq(&s.segment.inner, &segment.inner) {
                return s;
            }
        }
    }
    let shared = Arc::new(Shared {
        segment: segment.clone(),
        base: plan.base,
        length: plan.length,
        static_address: plan.static_address,
        static_length: plan.static_length,
        state: Mutex::new(State {
            valid: false,
            geometry: None,
            nonempty: Vec::new(),
            large: LargeIndex::default(),
            expected_generation: 0,
            header_words: [0; HEADER_WORDS],
            pending: Pending::default(),
            log: WriteLog::default(),
            spare_hooks: Vec::new(),
            frees: Vec::new(),
            checked_free: None,
            own_region: None,
        }),
        data: Arc::new(DataLock::new(segment.clone(), plan.base, plan.length)),
        layouts: Default::default(),
    });
    registry.push(Arc::downgrade(&shared));
    shared
}

impl Heap {
    /// Initialise (zap) a heap in the first region of `segment`: header, empty lists and one
    /// free block covering every whole chunk. The segment must be a heap segment (two
    /// regions, static right after heap) mapped at its recorded addresses. Whatever the
    /// region held before is discarded (the static region is not touched), and so is what
    /// open transactions had pending in it.
    ///
    /// Like every heap change, the zap is made in a transaction of the heap's own on `tx`'s
    /// instance, committed no_flush before this returns; `tx`'s record follows it in the log,
    /// so committing `tx` with flush makes the zap durable. Aborting `tx` does not undo it.
    ///
    /// # Errors
    /// [`Error::BadSegment`] for a segment not laid out as a heap segment;
    /// [`Error::BadLayout`] for bad `nlists` or `chunk_size`; `NotMapped` or an instance
    /// failure (in [`Error::Rvm`]).
    pub fn init(
        tx: &mut Transaction<'_>,
        segment: &Segment,
        nlists: u64,
        chunk_size: u64,
    ) -> Result<Heap, Error> {
        let plan = check_segment(segment)?;
        let geometry =
            HeapGeometry::new(plan.length, chunk_size, nlists).map_err(|e| Error::BadLayout {
                parameter: e.field,
                rule: e.detail,
            })?;
        let heap = Heap {
            shared: shared_for(segment, &plan),
        };
        let rvm = tx.rvm();
        let mut st = heap.lock_state();
        // The next call rebuilds the volatile index (geometry, generation) from the new header.
        st.valid = false;
        let mut zap = rvm.begin(BeginMode::Restore)?;
        let base = plan.base;
        let header_bytes = header_length(nlists);
        zap.set_range(base as usize, header_bytes as usize)?;
        // SAFETY: the set_range above pinned the region until `zap` ends.
        let view = unsafe { View::of_mapped(base, plan.length) };
        let old_generation = view.word(base + GENERATION_OFFSET).unwrap_or(0);
        let mut header = HeapHeader::new(geometry);
        header.counters.generation = old_generation.wrapping_add(1);
        header.counters.free_bytes = geometry.chunk_count * geometry.chunk_size;
        let mut bytes = vec![0u8; header_bytes as usize];
        bytes[..header.encode().len()].copy_from_slice(&header.encode());
        let start = base + geometry.blocks_offset;
        let first_list = list_offset(geometry.list_for(geometry.chunk_count)) as usize;
        bytes[first_list..first_list + 8].copy_from_slice(&start.to_le_bytes());
        // SAFETY: declared with set_range above: mapped, pinned, old value saved.
        unsafe { store(base, &bytes) };
        let chunks = geometry.chunk_count;
        let words = [head_word(BlockState::Free, chunks), 0, 0];
        let mut block_head = [0u8; 24];
        for (i, w) in words.iter().enumerate() {
            block_head[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        zap.modify_bytes(start as usize, &block_head)?;
        let end = base + geometry.blocks_end();
        zap.modify_bytes(
            (end - TAG_SIZE) as usize,
            &foot_word(BlockState::Free, chunks).to_le_bytes(),
        )?;
        let queued = zap.end_queued(CommitMode::NoFlush)?;
        st.pending.clear();
        drop(st);
        queued.wait(rvm)?;
        Ok(heap)
    }

    /// Adopt the heap in a mapped heap segment: checks the segment's layout and the heap
    /// header (magic, version, geometry). Nothing else is read, so loading costs the same for
    /// any heap size; the volatile index of non-empty lists is built at the first call.
    ///
    /// # Errors
    /// [`Error::BadSegment`] for a segment not laid out as a heap segment; [`Error::NoHeap`],
    /// [`Error::VersionSkew`] or [`Error::Corrupt`] for a region without a usable heap header;
    /// `NotMapped` (in [`Error::Rvm`]).
    pub fn load(segment: &Segment) -> Result<Heap, Error> {
        let plan = check_segment(segment)?;
        let heap = Heap {
            shared: shared_for(segment, &plan),
        };
        let _st = heap.lock_state();
        let _mapped = heap.mapped()?;
        // SAFETY: the region stays mapped while `_mapped` is held.
        let view = unsafe { View::of_mapped(plan.base, plan.length) };
        let header = read_header(&view)?;
        if header.geometry.heap_length != plan.length {
            return Err(corrupt(
                plan.base,
                format!(
                    "the header says the heap is {} bytes but its region is {} bytes",
                    header.geometry.heap_length, plan.length
                ),
            ));
        }
        drop(_mapped);
        drop(_st);
        Ok(heap)
    }

    /// Address of the heap region.
    pub fn address(&self) -> usize {
        self.shared.base as usize
    }
    /// Length of the heap region.
    pub fn length(&self) -> usize {
        self.shared.length as usize
    }
    /// Address of the static region (right after the heap).
    pub fn static_address(&self) -> usize {
        self.shared.static_address
    }
    /// Length of the static region in bytes.
    pub fn static_length(&self) -> usize {
        self.shared.static_length
    }
    /// The segment this heap lives in.
    pub fn segment(&self) -> &Segment {
        &self.shared.segment
    }

    /// Allocate `size` bytes for `tx`; returns the address of the data (8-byte aligned; its
    /// contents are whatever the block held). Quick fit: the head of the list of blocks of
    /// exactly the needed number of chunks; else (best fit) the head of the smallest larger
    /// non-empty exact-size list, else the best fit among the first blocks of the large list.
    /// A larger block is split and the high end handed out, so the remainder keeps its head.
    ///
    /// The block is allocated at once, in a transaction of the heap's own committed no_flush
    /// (queued before `tx`'s record, so `tx`'s flush commit makes it durable). If `tx` aborts,
    /// the block is freed again; if the process crashes before `tx` commits, the block stays
    /// allocated and unreachable (leaked), as in the classic library. Never waits for another
    /// transaction, only for another heap call in progress. `tx` may be of either mode.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when no free block is large enough; [`Error::Corrupt`] for damaged
    /// heap metadata; `NotMapped` once the segment is unmapped, or another error of the
    /// instance (in [`Error::Rvm`]). A refused call changes nothing.
    pub fn malloc(&self, tx: &mut Transaction<'_>, size: usize) -> Result<usize, Error> {
        let rvm = tx.rvm();
        let mut st = self.lock_state();
        let (address, queued) = self.internal(&mut st, rvm, |c| c.malloc(size as u64))?;
        if st.pending.allocated(tx.id(), address) {
            self.add_hook(&mut st, tx);
        }
        drop(st);
        queued.wait(rvm)?;
        Ok(address as usize)
    }

    /// Free the block whose data starts at `address` when `tx` commits: the block is checked
    /// now (an allocated block, its free neighbours and their lists intact, not being freed
    /// by another open transaction) and freed inside `tx`'s own record, merged at once with
    /// a free neighbour on either side. Until then it stays allocated; if `tx` aborts, it is
    /// not freed. (If another open transaction allocated the block, the free is handed over
    /// to it: made in its commit, or by its abort.) The commit checks again, before it
    /// writes anything: in full if a heap call has changed the heap since this call or the
    /// transaction frees several blocks; otherwise by reusing this call's plan, once every
    /// word the free reads or decides by (the tags on either side of the block, a free
    /// neighbour's other tag and list links, the head of the list the block goes on) is
    /// found holding the value this call saw. Damage found then (written since by something
    /// other than the heap, such as a wild write through the transaction) refuses the commit
    /// with [`crate::Error::Heap`] holding [`Error::Corrupt`] at the damaged word; the
    /// transaction is rolled back and nothing is freed. Damage written after a commit is
    /// found by the next heap call that meets it.
    ///
    /// # Errors
    /// [`Error::DoubleFree`] for a block already free, or already freed in `tx`;
    /// [`Error::FreePending`] for a block another open transaction frees;
    /// [`Error::NotFromHeap`] for an address `malloc` did not return; otherwise as for
    /// [`Heap::malloc`]. A refused call changes nothing.
    pub fn free(&self, tx: &mut Transaction<'_>, address: usize) -> Result<(), Error> {
        let mut st = self.lock_state();
        self.check_free(&mut st, tx.id(), address as u64)?;
        if st.pending.freed(tx.id(), address as u64) {
            self.add_hook(&mut st, tx);
        }
        Ok(())
    }

    /// Carve `count` free blocks sized for allocations of `size` bytes and put them on their
    /// exact-size list, so later allocations of that size are list hits. `size` must fit an
    /// exact-size list (fewer than `nlists` chunks). Like [`Heap::malloc`], done at once in a
    /// transaction of the heap's own; an abort of `tx` does not undo it (the blocks are free
    /// either way). All or nothing: on [`Error::NoRoom`] nothing is carved.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a `size` too large for an exact-size list; otherwise as
    /// for [`Heap::malloc`].
    pub fn prealloc(
        &self,
        tx: &mut Transaction<'_>,
        size: usize,
        count: usize,
    ) -> Result<(), Error> {
        let rvm = tx.rvm();
        let mut st = self.lock_state();
        let ((), queued) =
            self.internal(&mut st, rvm, |c| c.prealloc(size as u64, count as u64))?;
        drop(st);
        Ok(queued.wait(rvm)?)
    }

    /// Zero the event counters (malloc, free, prealloc, coalesce, hits, splits). The byte
    /// accounting (free and allocated bytes) is state, not statistics, and is kept. Done at
    /// once in a transaction of the heap's own on `tx`'s instance, like [`Heap::malloc`]; an
    /// abort of `tx` does not undo it.
    ///
    /// # Errors
    /// As for [`Heap::malloc`].
    pub fn clear_statistics(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        let rvm = tx.rvm();
        let mut st = self.lock_state();
        let ((), queued) = self.internal(&mut st, rvm, |c| {
            let k = &mut c.counters;
            *k = HeapCounters {
                generation: k.generation,
                free_bytes: k.free_bytes,
                allocated_bytes: k.allocated_bytes,
                ..HeapCounters::default()
            };
            Ok(())
        })?;
        drop(st);
        Ok(queued.wait(rvm)?)
    }

    /// Take the heap's data lock for `tx` until it ends (see `data_lock.rs`): the typed layer
    /// does this before every change. Callers that use several heaps take them in one fixed
    /// order with this, so two transactions never wait for each other's heaps.
    pub(crate) fn own(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        self.shared.data.acquire(tx)
    }

    /// Wait while another thread's transaction holds the data lock: the typed layer's reads
    /// outside a transaction do, so they never see a half-made change.
    pub(crate) fn wait_for_data(&self) -> Result<(), Error> {
        self.shared.data.wait_readable()
    }

    /// [`Heap::usable_size`] after [`Heap::wait_for_data`].
    pub(crate) fn data_usable_size(&self, address: usize) -> Result<usize, Error> {
        self.wait_for_data()?;
        self.usable_size(address)
    }

    /// `Heap::read_block` after [`Heap::wait_for_data`].
    pub(crate) fn data_read_block(
        &self,
        address: usize,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        self.wait_for_data()?;
        self.read_block(address, offset, buf)
    }

    /// Refuse a write by `transaction` into the block at `address` when another open
    /// transaction frees that block at its commit (an abort of the writer would then put old
    /// bytes back over the free block's list links).
    pub(crate) fn check_not_freed_by_another(
        &self,
        transaction: u64,
        address: usize,
    ) -> Result<(), Error> {
        match self.lock_state().pending.freer_of(address as u64) {
            Some(t) if t != transaction => Err(Error::FreePending {
                address: address as u64,
                transaction: t,
            }),
            _ => Ok(()),
        }
    }

    /// Check that `[address, address+length)` lies inside the data of one allocated block.
    pub(crate) fn check_allocated_range(&self, address: usize, length: usize) -> Result<(), Error> {
        let usable = self.usable_size(address)?;
        if length > usable {
            return Err(Error::InvalidArgument {
                parameter: "length",
                rule: format!(
                    "{length} bytes do not fit in the {usable} usable bytes of the block at \
                     {address:#x}"
                ),
            });
        }
        Ok(())
    }

    // ---- locking and the per-call context ----

    /// The heap's lock: held for one heap call, never across a transaction.
    fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Check that `transaction` may free the block whose data is at `address`: no open
    /// transaction frees it already, and the free could be made now (the block, its free
    /// neighbours and the lists they are on are intact), so damage is reported by the call
    /// that meets it. Writes nothing. The free itself checks again at commit: in full, or, if
    /// no heap call has changed the heap since, by comparing the words this plan relies on
    /// (see [`State::checked_free`]).
    fn check_free(&self, st: &mut State, transaction: u64, address: u64) -> Result<(), Error> {
        match st.pending.freer_of(address) {
            Some(t) if t == transaction => return Err(Error::DoubleFree { address }),
            Some(t) => {
                return Err(Error::FreePending {
                    address,
                    transaction: t,
                })
            }
            None => {}
        }
        let plan = self.locked_ctx(st, false, |c| c.plan_free(address))?;
        // The reader validated the index at this generation (`refresh`).
        st.checked_free = Some((plan, st.expected_generation));
        Ok(())
    }

    /// Run a changing call as a record of the heap's own on `rvm`, committed no_flush while
    /// the heap's lock is held, so the log has the heap's changes in the order they were
    /// made. Returns the call's value and the queued commit, to wait for once the lock is
    /// released (it flushes if the queue is full). A refused call puts back what it wrote,
    /// under the lock, and changes nothing.
    ///
    /// The record is a no-restore transaction record queued without a [`Transaction`]
    /// ([`queue_own_record`]): the call's write log holds its ranges and old values already.
    fn internal<R>(
        &self,
        st: &mut State,
        rvm: &Rvm,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<(R, Queued), Error> {
        // Before anything is read: the pin keeps the heap region mapped until it is given
        // back, after the record has copied the new values (through the region's
        // description kept from the last call when it is still mapped).
        let (base, length) = (self.shared.base as usize, self.shared.length as usize);
        let mut kept = st.own_region.take();
        let pin = match RegionPin::again(&mut kept, rvm, base, length) {
            Ok(pin) => pin,
            Err(e) => {
                st.valid = false;
                return Err(e.into());
            }
        };
        // SAFETY: the region is pinned (above) until after this call.
        let value = unsafe { self.change(st, op) }?;
        let queued = queue_own_record(rvm, &pin, st.log.runs(), CommitMode::NoFlush);
        if queued.is_err() {
            // SAFETY: `pin` still pins the heap region the call wrote under.
            unsafe { st.log.put_back() };
            st.valid = false;
        }
        st.log.clear();
        drop(pin);
        st.own_region = kept;
        Ok((value, queued?))
    }

    fn mapped(&self) -> Result<RwLockReadGuard<'_, bool>, Error> {
        let mapped = self.shared.mapped_flag();
        if !*mapped {
            return Err(Error::Rvm(crate::Error::NotMapped {
                address: self.shared.base,
                length: self.shared.length,
            }));
        }
        Ok(mapped)
    }

    /// A reader for the heap as memory holds it now, rebuilding the volatile index if it may
    /// be stale, and the counters' words. The region must be pinned or its mapped flag held.
    #[inline(always)]
    fn refresh(
        &self,
        st: &mut State,
        view: View<'static>,
    ) -> Result<(Reader<'static>, CounterWords), Error> {
        let base = self.shared.base;
        // The fixed header words, the generation and the counters in one read.
        let front = view.words::<FRONT_WORDS>(base);
        if let (true, Some(g), Some(front)) = (st.valid, st.geometry, front) {
            // Compared word by word into one difference (a slice comparison calls `bcmp`).
            let header_changed = front[..HEADER_WORDS]
                .iter()
                .zip(&st.header_words)
                .fold(0, |d, (a, b)| d | (a ^ b));
            if front[GENERATION_WORD] == st.expected_generation && header_changed == 0 {
                let counters = std::array::from_fn(|i| front[COUNTERS_WORD + i]);
                return Ok((Reader::new(view, g), counters));
            }
        }
        self.rebuild_index(st, view)
    }

    /// [`Heap::refresh`] when the volatile index may be stale: validate the header and
    /// rebuild the index from it (kept out of line, so the check above inlines into its
    /// callers).
    #[cold]
    #[inline(never)]
    fn rebuild_index(
        &self,
        st: &mut State,
        view: View<'static>,
    ) -> Result<(Reader<'static>, CounterWords), Error> {
        let base = self.shared.base;
        let header_words = read_header_words(&view, base);
        st.valid = false;
        let header = read_header(&view)?;
        let g = header.geometry;
        if g.heap_length != self.shared.length {
            return Err(corrupt(
                self.shared.base,
                format!(
                    "the header says the heap is {} bytes but its region is {} bytes",
                    g.heap_length, self.shared.length
                ),
            ));
        }
        let reader = Reader::new(view, g);
        st.large.built = false;
        st.large.blocks.clear();
        st.nonempty.clear();
        st.nonempty.resize((g.nlists as usize + 1).div_ceil(64), 0);
        for list in 1..=g.nlists {
            if reader.list_head(list)? != 0 {
                st.nonempty[(list / 64) as usize] |= 1 << (list % 64);
            }
        }
        st.geometry = Some(g);
        st.expected_generation = header.counters.generation;
        st.header_words = header_words.unwrap_or([0; HEADER_WORDS]);
        st.valid = true;
        let counters = reader.counter_words()?;
        Ok((reader, counters))
    }

    /// Run a changing call in `tx` under the heap's lock (the frees made at `tx`'s commit):
    /// pin the heap region for `tx`, run the call ([`Heap::change`]), then declare the
    /// written words to `tx` with their old values from the write log
    /// ([`WriteLog::declare`]: saved whatever `tx`'s mode, so a record refused after this
    /// puts them back). Any error puts every written word back and clears the volatile
    /// index; the caller then rolls `tx` back.
    fn write_op<R>(
        &self,
        st: &mut State,
        tx: &mut Transaction<'_>,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // Before anything is read: the pin keeps the heap region mapped until `tx` ends.
        if let Err(e) = tx.pin(self.shared.base as usize, self.shared.length as usize) {
            st.valid = false;
            return Err(e.into());
        }
        // SAFETY: the region is pinned by `tx` (above) until the transaction ends.
        let value = unsafe { self.change(st, op) }?;
        // SAFETY: `tx` pins the region (above) until the transaction ends.
        let declared = unsafe { st.log.declare(tx) };
        if declared.is_err() {
            st.valid = false;
        }
        st.log.clear();
        declared.map(|()| value)
    }

    /// Validate, run `op` (which writes memory at once, recording each word in the write
    /// log `st.log`), and store the counters that changed with a new generation. On success
    /// the log holds every word written, for the caller to log; on an error every written
    /// word has its old value back, the log is empty and the volatile index is cleared.
    ///
    /// # Safety
    /// The heap region must be pinned (kept mapped) until the caller is done with the log.
    unsafe fn change<R>(
        &self,
        st: &mut State,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let base = self.shared.base;
        // SAFETY: the region is pinned (the contract).
        let view = unsafe { View::of_mapped(base, self.shared.length) };
        st.log.clear();
        let result = (|| {
            let (reader, old) = self.refresh(st, view)?;
            let mut ctx = Ctx {
                r: reader,
                nonempty: &mut st.nonempty,
                large: &mut st.large,
                log: &mut st.log,
                counters: HeapCounters::from_words(&old),
            };
            let value = op(&mut ctx)?;
            let mut counters = ctx.counters;
            counters.generation = counters.generation.wrapping_add(1);
            let new = counters.to_words();
            // The changed counters as one run, from the first to the last (the generation
            // always changes): a malloc's and a free's each lie close together.
            let changed = |(n, o): (&u64, &u64)| n != o;
            let first = new.iter().zip(&old).position(changed);
            let last = new.iter().zip(&old).rposition(changed);
            if let (Some(first), Some(last)) = (first, last) {
                ctx.put(
                    base + COUNTERS_OFFSET + 8 * first as u64,
                    &new[first..=last],
                )?;
            }
            st.expected_generation = counters.generation;
            Ok(value)
        })();
        if result.is_err() {
            // SAFETY: the region is pinned until after this call (this function's contract).
            unsafe { st.log.put_back() };
            st.log.clear();
            st.valid = false;
        }
        result
    }

    /// Run a read-only call that needs only validated reads, with the heap's lock held.
    fn read_op_locked<R>(
        &self,
        st: &mut State,
        op: impl FnOnce(&Reader<'static>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.locked_ctx(st, false, |c| op(&c.r))
    }

    /// Run a read-only call that also needs the index and the counters.
    fn read_indexed<R>(
        &self,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut st = self.lock_state();
        self.locked_ctx(&mut st, true, op)
    }

    /// [`Heap::read_indexed`] with the heap's lock held; without `counters` the context's
    /// counters are left zero (for a check that reads none).
    fn locked_ctx<R>(
        &self,
        st: &mut State,
        counters: bool,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let (reader, words) = self.refresh(st, view)?;
        let counters = if counters {
            HeapCounters::from_words(&words)
        } else {
            HeapCounters::default()
        };
        let mut ctx = Ctx {
            r: reader,
            nonempty: &mut st.nonempty,
            large: &mut st.large,
            log: &mut st.log,
            counters,
        };
        let result = op(&mut ctx);
        drop(mapped);
        result
    }
}

/// Words of the header before the counters' reserved word: magic, version and geometry.
const HEADER_WORDS: usize = (COUNTERS_OFFSET as usize - 8) / 8;
const _: () = assert!((COUNTERS_OFFSET as usize - 8).is_multiple_of(8));
type HeaderWords = [u64; HEADER_WORDS];
/// The counters' words (see [`crate::format::heap::counter`] for their order).
type CounterWords = [u64; COUNTERS_WORDS];
/// Words from the start of the header to the end of the counters (fixed words, reserved
/// word, counters), read at once by `Heap::refresh`; where the counters and the generation
/// are among them.
const FRONT_WORDS: usize = COUNTERS_WORD + COUNTERS_WORDS;
const COUNTERS_WORD: usize = COUNTERS_OFFSET as usize / 8;
const GENERATION_WORD: usize = GENERATION_OFFSET as usize / 8;
const _: () = assert!(HEADER_WORDS < COUNTERS_WORD && GENERATION_WORD < FRONT_WORDS);

#[inline]
fn read_header_words(view: &View<'_>, base: u64) -> Option<HeaderWords> {
    view.words::<HEADER_WORDS>(base)
}

/// Copy `bytes` to mapped memory at `at`.
///
/// # Safety
/// `[at, at+bytes.len())` must have been declared with `set_range` in the transaction that is
/// making this change (so it is mapped, pinned, and its old value saved for abort).
unsafe fn store(at: u64, bytes: &[u8]) {
    // SAFETY: per the contract above the destination is mapped writable memory, and it cannot
    // overlap `bytes`, which the caller built on its own stack or heap; other threads may read
    // it, so it is written with race-defined accesses.
    unsafe { crate::racy::store(at as usize as *mut u8, bytes) }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Heap>();
}
