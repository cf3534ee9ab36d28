//! The heap handle: the locking rule, malloc, free, prealloc, intention lists, statistics.
//!
//! # The locking rule (spec K11)
//!
//! A transaction that changes the heap *owns* it until that transaction commits or aborts:
//! the first heap call made with a transaction takes the heap's lock and attaches the lock to
//! the transaction ([`Transaction::attach`]), which releases it only after the commit has
//! captured the new values or the abort has put the old ones back. Other threads' heap calls
//! wait meanwhile, so no transaction ever allocates from, or frees into, heap state that an
//! abort could still take back. The wait is bounded by the instance's `Options::lock_timeout`
//! (default 10 s): a transaction leaked with `mem::forget` owns the heap forever, and the
//! other threads then get [`crate::Error::LockTimeout`] (wrapped in [`Error::Rvm`]) instead of
//! hanging; a heap whose segment is unmapped, or whose instance is closed, answers
//! `NotMapped`. A heap call from the owning thread with a *different* open transaction would
//! wait for itself forever, so it is refused with [`Error::Busy`].
//! Read-only calls ([`Heap::check`], [`Heap::statistics`], [`Heap::maxblock`]) also wait for
//! other threads' heap transactions, and see the calling thread's own uncommitted changes.
//!
//! Heap changes are refused in [`BeginMode::NoRestore`] transactions: without saved old values
//! an abort would leave half-logged metadata behind in memory.
//!
//! Because of this rule, freeing directly in the caller's transaction is safe here, unlike in
//! Coda; intention lists ([`Heap::fake_free`], [`Heap::do_free`]) are still provided for code
//! that wants to free only once its main transaction has committed.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLockReadGuard, Weak};
use std::thread::ThreadId;

use crate::format::heap::{
    counter, foot_word, head_word, header_length, list_offset, BlockState, HeapCounters,
    HeapGeometry, HeapHeader, COUNTERS_OFFSET, COUNTERS_WORDS, FREE_BLOCK_MIN_BYTES,
    FREE_NEXT_OFFSET, FREE_PREV_OFFSET, GENERATION_OFFSET, TAG_SIZE, USER_DATA_OFFSET,
};
use crate::rds::check::{self, BlockInfo, CheckReport, HeapImageInfo, ListInfo};
use crate::rds::reader::{corrupt, read_header, FreeBlock, Reader};
use crate::rds::view::View;
use crate::rds::Error;
use crate::segment::Segment;
use crate::tx::{BeginMode, Transaction};

/// A recoverable heap in the first region of a mapped heap segment. Cheap to clone; every
/// clone (and every [`Heap::load`] of the same mapped segment) shares one lock. `Send + Sync`.
///
/// A transaction that changes the heap owns it until it ends or aborts: other threads' heap
/// calls, the read-only ones included, wait meanwhile, at most the instance's
/// `Options::lock_timeout` (then [`crate::Error::LockTimeout`], inside [`Error::Rvm`]). A heap
/// change from the owner's thread in another transaction would wait for itself, so it is
/// refused with [`Error::Busy`]. Heap changes need a [`BeginMode::Restore`] transaction.
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
/// let mut tx = rvm.begin(BeginMode::Restore)?; // heap changes need a restore transaction
/// let a = heap.malloc(&mut tx, 100)?;
/// tx.fill(a, 100, 0xab)?; // the block's contents are whatever it held: initialise them
/// tx.end(CommitMode::Flush)?;
/// assert!(heap.usable_size(a)? >= 100);
/// assert_eq!(rvm.read::<u8>(a + 99)?, 0xab);
///
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// let b = heap.malloc(&mut tx, 1000)?;
/// tx.abort()?; // the allocation is undone with the rest of the transaction
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
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Clone, Copy)]
struct Owner {
    transaction: u64,
    thread: ThreadId,
}

/// Volatile state, protected by `Shared::state`.
struct State {
    owner: Option<Owner>,
    /// `geometry` and `nonempty` describe memory as of `expected_generation`. Cleared when a
    /// transaction ends with the heap's generation not where the heap left it (an abort put
    /// old values back) and after any failed call; rebuilt lazily from the header's list heads,
    /// which costs O(nlists), whatever the heap's size.
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
    /// Threads waiting in `released.wait` for the owner to finish: the owner's release
    /// wakes them only if there are any (a wake-up is a system call).
    waiters: usize,
    /// The transaction whose `set_range`s cover the counters in `counters_declared` (0:
    /// none). Later calls in the same transaction store into those without declaring them
    /// again: a range's old value is saved once, and commit captures whatever it holds then.
    counters_declared_in: u64,
    /// Bit `i` set: counter word `i` (see [`counter`]) is declared in `counters_declared_in`.
    counters_declared: u16,
}

/// Counter words `first..=last` as a set (bit `i`: word `i`, see [`counter`]).
const fn counter_span(first: usize, last: usize) -> u16 {
    ((1u32 << (last + 1)) - (1u32 << first)) as u16
}
// The counter words each kind of call may change. A call declares its set before it reads
// anything: one `set_range` from its first to its last word not yet declared in the
// transaction, or none when the transaction has declared them all already. The order of the
// words (see `counter`) keeps the malloc and free sets contiguous.
const MALLOC_COUNTERS: u16 = counter_span(counter::SPLITS, counter::ALLOCATED_BYTES);
const FREE_COUNTERS: u16 = counter_span(counter::GENERATION, counter::COALESCE_COUNT);
const PREALLOC_COUNTERS: u16 = (1 << counter::GENERATION) | (1 << counter::PREALLOC_COUNT);
const ALL_COUNTERS: u16 = counter_span(0, COUNTERS_WORDS - 1);
const _: () = assert!(
    counter::SPLITS < counter::LARGE_HITS
        && counter::LARGE_HITS < counter::EXACT_HITS
        && counter::EXACT_HITS < counter::MALLOC_COUNT
        && counter::MALLOC_COUNT < counter::GENERATION
        && counter::GENERATION < counter::FREE_BYTES
        && counter::FREE_BYTES < counter::ALLOCATED_BYTES
        && counter::ALLOCATED_BYTES < counter::FREE_COUNT
        && counter::FREE_COUNT < counter::COALESCE_COUNT
);

/// Attached to the owning transaction; releases the heap when the transaction is over.
struct HeapGuard {
    shared: Arc<Shared>,
}

impl Drop for HeapGuard {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        st.owner = None;
        st.counters_declared_in = 0;
        st.counters_declared = 0;
        let mapped = shared.mapped_flag();
        let current = *mapped && {
            // SAFETY: the region stays mapped while the mapped flag is held.
            let view = unsafe { View::of_mapped(shared.base, shared.length) };
            view.word(shared.base + GENERATION_OFFSET) == Some(st.expected_generation)
        };
        if !current {
            st.valid = false;
        }
        let waiters = st.waiters > 0;
        drop(mapped);
        drop(st);
        if waiters {
            shared.released.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn mapped_flag(&self) -> RwLockReadGuard<'_, bool> {
        self.segment
            .inner
            .mapped
            .read()
            .unwrap_or_else(|e| e.into_inner())
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
            owner: None,
            valid: false,
            geometry: None,
            nonempty: Vec::new(),
            large: LargeIndex::default(),
            expected_generation: 0,
            header_words: [0; HEADER_BYTES],
            waiters: 0,
            counters_declared_in: 0,
            counters_declared: 0,
        }),
        released: Condvar::new(),
    });
    registry.push(Arc::downgrade(&shared));
    shared
}

/// Addresses to free once the transaction that stopped using them has committed
/// (Coda's `intentionList_t`). See [`Heap::fake_free`].
#[derive(Debug, Default, Clone)]
pub struct IntentionList {
    addresses: Vec<usize>,
    members: HashSet<usize>,
}

impl IntentionList {
    /// An empty list.
    pub fn new() -> IntentionList {
        IntentionList::default()
    }

    /// Number of recorded addresses.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// The recorded addresses, in the order they were recorded.
    pub fn addresses(&self) -> &[usize] {
        &self.addresses
    }
    /// Forget every recorded address (what Coda does on abort).
    pub fn clear(&mut self) {
        self.addresses.clear();
        self.members.clear();
    }
}

/// Counters and list shape of a heap (see [`Heap::statistics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapStatistics {
    /// Length of the heap region in bytes.
    pub heap_length: u64,
    /// Allocation granularity in bytes.
    pub chunk_size: u64,
    /// Number of exact-size free lists (the last holds every larger block).
    pub nlists: u64,
    /// Bytes available to blocks (whole chunks after the header).
    pub capacity_bytes: u64,
    /// Bytes in free blocks (tags included).
    pub free_bytes: u64,
    /// Bytes in allocated blocks (tags included).
    pub allocated_bytes: u64,
    /// Successful `malloc` calls.
    pub malloc_count: u64,
    /// Successful `free` calls.
    pub free_count: u64,
    /// Blocks created by `prealloc`.
    pub prealloc_count: u64,
    /// Merges of a freed block with a free neighbour.
    pub coalesce_count: u64,
    /// Allocations served by the head of their exact-size list.
    pub exact_hits: u64,
    /// Allocations served from the list of large blocks.
    pub large_hits: u64,
    /// Allocations served by splitting a block of a larger exact-size list.
    pub splits: u64,
    /// One entry per list (list 1 first): blocks and bytes on it.
    pub lists: Vec<ListInfo>,
    /// Number of free blocks.
    pub free_blocks: u64,
    /// The largest free block in bytes (tags included).
    pub largest_free_block: u64,
    /// The largest allocation that would succeed now ([`Heap::maxblock`]).
    pub largest_allocation: u64,
    /// External fragmentation: 1 - largest free block / free bytes (0 when nothing is free).
    pub fragmentation: f64,
    /// Set when damage stopped the list walk early; the figures above are then partial.
    pub damage: Option<String>,
}

/// A volatile index of the large list: (chunks, address) of each of its blocks. Built on
/// first use by walking the list (O(length of the large list), whatever the heap's size),
/// kept up to date by every change to the list, and dropped with the rest of the volatile
/// state when an abort may have changed the list behind it.
#[derive(Default)]
struct LargeIndex {
    built: bool,
    blocks: BTreeSet<(u64, u64)>,
}

/// One heap call's view of the heap: validated reads plus writes through the transaction.
struct Ctx<'s> {
    r: Reader<'static>,
    nonempty: &'s mut Vec<u64>,
    large: &'s mut LargeIndex,
    counters: HeapCounters,
}

impl Ctx<'_> {
    fn geometry(&self) -> HeapGeometry {
        self.r.geometry
    }

    /// Write up to five consecutive words at `at` through the transaction (one range).
    fn put(&self, tx: &mut Transaction<'_>, at: u64, words: &[u64]) -> Result<(), Error> {
        let mut buf = [0u8; 40];
        let n = words.len().min(5);
        for (i, w) in words.iter().take(n).enumerate() {
            buf[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        tx.modify_bytes(at as usize, &buf[..8 * n])?;
        Ok(())
    }

    fn set_nonempty(&mut self, list: u64, nonempty: bool) {
        let (word, bit) = ((list / 64) as usize, list % 64);
        if let Some(w) = self.nonempty.get_mut(word) {
            if nonempty {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }

    /// The smallest non-empty exact-size list above `chunks` (exact lists are 1..nlists-1).
    fn first_nonempty_above(&self, chunks: u64) -> Option<u64> {
        let limit = self.geometry().nlists;
        let mut i = chunks + 1;
        while i < limit {
            let word = *self.nonempty.get((i / 64) as usize)?;
            let bits = word >> (i % 64);
            if bits != 0 {
                let found = i + bits.trailing_zeros() as u64;
                return (found < limit).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    fn highest_nonempty_exact(&self) -> Option<u64> {
        (1..self.geometry().nlists).rev().find(|l| {
            self.nonempty
                .get((l / 64) as usize)
                .is_some_and(|w| w >> (l % 64) & 1 == 1)
        })
    }

    fn index_large(&mut self, list: u64, chunks: u64, block: u64, present: bool) {
        if list == self.geometry().nlists && self.large.built {
            if present {
                self.large.blocks.insert((chunks, block));
            } else {
                self.large.blocks.remove(&(chunks, block));
            }
        }
    }

    /// Build the large-list index if it is not built.
    fn large_index(&mut self) -> Result<&BTreeSet<(u64, u64)>, Error> {
        if !self.large.built {
            let blocks = &mut self.large.blocks;
            blocks.clear();
            self.r.walk_list(self.r.geometry.nlists, |b| {
                blocks.insert((b.chunks, b.address));
                true
            })?;
            self.large.built = true;
        }
        Ok(&self.large.blocks)
    }

    /// The best fit for `chunks` in the large list (the smallest block at least that big),
    /// checked with its links.
    fn search_large(&mut self, chunks: u64) -> Result<Option<FreeBlock>, Error> {
        let nlists = self.geometry().nlists;
        let Some(&(size, address)) = self.large_index()?.range((chunks, 0)..).next() else {
            return Ok(None);
        };
        let b = self.r.free_block(address, nlists)?;
        if b.chunks != size {
            return Err(corrupt(
                address,
                "the block's size changed behind the heap's index",
            ));
        }
        self.r.check_links(&b, nlists)?;
        Ok(Some(b))
    }

    /// The largest free block in chunks (0 if none).
    fn largest_free_chunks(&mut self) -> Result<u64, Error> {
        if let Some(&(chunks, _)) = self.large_index()?.last() {
            return Ok(chunks);
        }
        Ok(self.highest_nonempty_exact().unwrap_or(0))
    }

    fn unlink(&mut self, tx: &mut Transaction<'_>, block: u64, list: u64) -> Result<(), Error> {
        if list == self.geometry().nlists {
            let (_, chunks) = self.r.head(block)?;
            self.index_large(list, chunks, block, false);
        }
        let prev = self.r.word(block + FREE_PREV_OFFSET)?;
        let next = self.r.word(block + FREE_NEXT_OFFSET)?;
        if prev == 0 {
            self.put(tx, self.r.list_address(list), &[next])?;
            if next == 0 {
                self.set_nonempty(list, false);
            }
        } else {
            self.put(tx, prev + FREE_NEXT_OFFSET, &[next])?;
        }
        if next != 0 {
            self.put(tx, next + FREE_PREV_OFFSET, &[prev])?;
        }
        Ok(())
    }

    /// Make `block` a free block of `chunks` chunks (head tag and links) at the head of
    /// `list`. Its foot tag is the caller's.
    fn push(
        &mut self,
        tx: &mut Transaction<'_>,
        block: u64,
        chunks: u64,
        list: u64,
    ) -> Result<(), Error> {
        self.push_with(tx, block, chunks, list, None, false)
    }

    /// [`Ctx::push`], also writing `foot_before` (the foot tag of the block that ends where
    /// `block` starts) in the same range, and with `own_foot` the block's free foot tag: in
    /// the same range too when the block is four words long (one 32-byte chunk).
    fn push_with(
        &mut self,
        tx: &mut Transaction<'_>,
        block: u64,
        chunks: u64,
        list: u64,
        foot_before: Option<u64>,
        own_foot: bool,
    ) -> Result<(), Error> {
        let old = self.r.list_head(list)?;
        let bytes = chunks * self.geometry().chunk_size;
        let foot = own_foot.then(|| foot_word(BlockState::Free, chunks));
        let mut words = [0u64; 5];
        let mut n = 0;
        let mut at = block;
        if let Some(f) = foot_before {
            words[0] = f;
            n = 1;
            at = block - TAG_SIZE;
        }
        words[n..n + 3].copy_from_slice(&[head_word(BlockState::Free, chunks), 0, old]);
        n += 3;
        let foot_apart = match foot {
            Some(f) if bytes == FREE_BLOCK_MIN_BYTES => {
                words[n] = f;
                n += 1;
                None
            }
            other => other,
        };
        self.put(tx, at, &words[..n])?;
        if let Some(f) = foot_apart {
            self.put(tx, block + bytes - TAG_SIZE, &[f])?;
        }
        if old != 0 {
            self.put(tx, old + FREE_PREV_OFFSET, &[block])?;
        }
        self.put(tx, self.r.list_address(list), &[block])?;
        self.set_nonempty(list, true);
        self.index_large(list, chunks, block, true);
        Ok(())
    }

    /// Put free block `new` (of `chunks` chunks) where `old` is on `list`.
    fn replace(
        &mut self,
        tx: &mut Transaction<'_>,
        old: u64,
        new: u64,
        chunks: u64,
        list: u64,
    ) -> Result<(), Error> {
        if list == self.geometry().nlists {
            let (_, old_chunks) = self.r.head(old)?;
            self.index_large(list, old_chunks, old, false);
            self.index_large(list, chunks, new, true);
        }
        let prev = self.r.word(old + FREE_PREV_OFFSET)?;
        let next = self.r.word(old + FREE_NEXT_OFFSET)?;
        self.put(tx, new, &[head_word(BlockState::Free, chunks), prev, next])?;
        if prev == 0 {
            self.put(tx, self.r.list_address(list), &[new])?;
        } else {
            self.put(tx, prev + FREE_NEXT_OFFSET, &[new])?;
        }
        if next != 0 {
            self.put(tx, next + FREE_PREV_OFFSET, &[new])?;
        }
        Ok(())
    }

    /// Write the allocated head and foot tags of `block` (`chunks` chunks), with
    /// `foot_before` (the foot tag of the block that ends where `block` starts) in the head's
    /// range. A block of four words (one 32-byte chunk) is one range, its two middle words
    /// rewritten unchanged; a longer one is two.
    fn put_allocated_tags(
        &mut self,
        tx: &mut Transaction<'_>,
        block: u64,
        chunks: u64,
        foot_before: Option<u64>,
    ) -> Result<(), Error> {
        let bytes = chunks * self.geometry().chunk_size;
        let head = head_word(BlockState::Allocated, chunks);
        let foot = foot_word(BlockState::Allocated, chunks);
        let mut words = [0u64; 5];
        let mut n = 0;
        let mut at = block;
        if let Some(f) = foot_before {
            words[0] = f;
            n = 1;
            at = block - TAG_SIZE;
        }
        words[n] = head;
        n += 1;
        if bytes == FREE_BLOCK_MIN_BYTES {
            words[n] = self.r.word(block + TAG_SIZE)?;
            words[n + 1] = self.r.word(block + 2 * TAG_SIZE)?;
            words[n + 2] = foot;
            return self.put(tx, at, &words[..n + 3]);
        }
        self.put(tx, at, &words[..n])?;
        self.put(tx, block + bytes - TAG_SIZE, &[foot])
    }

    /// Mark free block `block` (already off its list) allocated: head and foot tags.
    fn mark_allocated(
        &mut self,
        tx: &mut Transaction<'_>,
        block: u64,
        chunks: u64,
    ) -> Result<(), Error> {
        self.put_allocated_tags(tx, block, chunks, None)
    }

    /// Shrink free block `b` (on `list`) to its first `rest` chunks, moving it to the list it
    /// then belongs on. Its new foot is written by the caller. The target list's head must have
    /// been checked.
    fn shrink(
        &mut self,
        tx: &mut Transaction<'_>,
        b: &FreeBlock,
        list: u64,
        rest: u64,
    ) -> Result<(), Error> {
        let rest_list = self.geometry().list_for(rest);
        if rest_list == list {
            self.index_large(list, b.chunks, b.address, false);
            self.index_large(list, rest, b.address, true);
            self.put(tx, b.address, &[head_word(BlockState::Free, rest)])
        } else {
            self.unlink(tx, b.address, list)?;
            self.push(tx, b.address, rest, rest_list)
        }
    }

    /// Take `chunks` chunks from free block `b` on `list` and mark them allocated: the whole
    /// block on an exact fit, else its high end, so the low remainder keeps its head and often
    /// its place on the list. Returns the allocated block's address.
    fn take(
        &mut self,
        tx: &mut Transaction<'_>,
        b: &FreeBlock,
        list: u64,
        chunks: u64,
    ) -> Result<u64, Error> {
        let g = self.geometry();
        if b.chunks == chunks {
            self.unlink(tx, b.address, list)?;
            self.mark_allocated(tx, b.address, chunks)?;
            return Ok(b.address);
        }
        let rest = b.chunks - chunks;
        if g.list_for(rest) != list {
            self.r.head_for_push(g.list_for(rest))?;
        }
        let carved = b.address + rest * g.chunk_size;
        self.shrink(tx, b, list, rest)?;
        // The remainder's foot and the new block's head are adjacent: one range; the old
        // block's foot becomes the new block's (allocated, its length).
        self.put_allocated_tags(tx, carved, chunks, Some(foot_word(BlockState::Free, rest)))?;
        Ok(carved)
    }

    fn no_room(&mut self, requested: u64) -> Error {
        let largest = self.largest_free_chunks().unwrap_or(0);
        Error::NoRoom {
            requested,
            largest_free: self.geometry().usable_bytes(largest),
        }
    }

    /// The head of the smallest non-empty exact-size list above `chunks`, with its list.
    fn smallest_exact_above(&self, chunks: u64) -> Result<Option<(FreeBlock, u64)>, Error> {
        let mut from = chunks;
        while let Some(list) = self.first_nonempty_above(from) {
            match self.r.checked_head(list)? {
                Some(b) => return Ok(Some((b, list))),
                // The index said non-empty; trust memory, not the index.
                None => from = list,
            }
        }
        Ok(None)
    }

    /// The best free block of at least `chunks` chunks, with its list: every exact-size list
    /// holds smaller blocks than the large list, so the smallest non-empty exact list that
    /// fits comes first, then the best fit in the large list.
    fn best_block(&mut self, chunks: u64) -> Result<Option<(FreeBlock, u64)>, Error> {
        let g = self.geometry();
        if chunks < g.nlists {
            if let Some(found) = self.smallest_exact_above(chunks - 1)? {
                return Ok(Some(found));
            }
        }
        Ok(self.search_large(chunks)?.map(|b| (b, g.nlists)))
    }

    fn malloc(&mut self, tx: &mut Transaction<'_>, size: u64) -> Result<u64, Error> {
        let g = self.geometry();
        let Some(chunks) = g.chunks_for(size).filter(|c| *c <= g.chunk_count) else {
            return Err(self.no_room(size));
        };
        let exact = if chunks < g.nlists {
            self.r.checked_head(chunks)?
        } else {
            None
        };
        let block = match exact {
            Some(b) => {
                self.unlink(tx, b.address, chunks)?;
                self.mark_allocated(tx, b.address, chunks)?;
                self.counters.exact_hits += 1;
                b.address
            }
            None => {
                let Some((b, list)) = self.best_block(chunks)? else {
                    return Err(self.no_room(size));
                };
                if list == g.nlists {
                    self.counters.large_hits += 1;
                } else {
                    self.counters.splits += 1;
                }
                self.take(tx, &b, list, chunks)?
            }
        };
        let bytes = chunks * g.chunk_size;
        let c = &mut self.counters;
        c.malloc_count += 1;
        c.free_bytes = c.free_bytes.saturating_sub(bytes);
        c.allocated_bytes = c.allocated_bytes.saturating_add(bytes);
        Ok(block + USER_DATA_OFFSET)
    }

    fn prealloc(&mut self, tx: &mut Transaction<'_>, size: u64, count: u64) -> Result<(), Error> {
        let g = self.geometry();
        let chunks = g
            .chunks_for(size)
            .filter(|c| *c < g.nlists)
            .ok_or_else(|| Error::InvalidArgument {
                parameter: "size",
                rule: if g.nlists == 1 {
                    "prealloc fills the exact-size lists, and this heap has none (nlists is 1)"
                        .to_string()
                } else {
                    format!(
                        "prealloc fills the exact-size lists (blocks of 1 to {} chunks of {} \
                         bytes); {size} bytes needs a larger block",
                        g.nlists - 1,
                        g.chunk_size
                    )
                },
            })?;
        for _ in 0..count {
            self.r.head_for_push(chunks)?;
            let Some((b, list)) = self.best_block(chunks + 1)? else {
                return Err(self.no_room(size));
            };
            let rest = b.chunks - chunks;
            if g.list_for(rest) != list {
                self.r.head_for_push(g.list_for(rest))?;
            }
            let carved = b.address + rest * g.chunk_size;
            self.shrink(tx, &b, list, rest)?;
            // The remainder's foot and the new block's head and links: one range (with the
            // new block's foot too when the block is four words).
            self.push_with(
                tx,
                carved,
                chunks,
                chunks,
                Some(foot_word(BlockState::Free, rest)),
                true,
            )?;
        }
        self.counters.prealloc_count += 1;
        Ok(())
    }

    fn free(&mut self, tx: &mut Transaction<'_>, address: u64) -> Result<(), Error> {
        let g = self.geometry();
        let ch = g.chunk_size;
        let b = self.r.allocated_block(address)?;
        let n = b.chunks;
        let after = b.address + n * ch;
        // Check both neighbours and every list this free will touch before writing anything,
        // so a refused free leaves the heap as it was.
        let left = if b.address > self.r.start {
            // The foot before the block gives the left neighbour's state and length; only a
            // free one is followed, to its head, which must agree.
            let foot_at = b.address - TAG_SIZE;
            let (state, l_chunks) = self.r.foot(foot_at)?;
            if state == BlockState::Free {
                let l_address = l_chunks
                    .checked_mul(ch)
                    .and_then(|bytes| b.address.checked_sub(bytes))
                    .filter(|a| *a >= self.r.start)
                    .ok_or_else(|| corrupt(foot_at, "free block runs before the first block"))?;
                let list = g.list_for(l_chunks);
                let l = self.r.linked_block(l_address, list)?;
                if l.chunks != l_chunks {
                    return Err(corrupt(
                        l_address,
                        "head and foot disagree on the block size",
                    ));
                }
                self.r.check_links(&l, list)?;
                Some(l)
            } else {
                None
            }
        } else {
            None
        };
        let right = if after < self.r.end {
            let (state, chunks) = self.r.head(after)?;
            if state == BlockState::Free {
                let list = g.list_for(chunks);
                let r = self.r.free_block(after, list)?;
                self.r.check_links(&r, list)?;
                Some(r)
            } else {
                None
            }
        } else {
            None
        };
        let total = n + left.map_or(0, |l| l.chunks) + right.map_or(0, |r| r.chunks);
        let dest = g.list_for(total);
        self.r.head_for_push(dest)?;
        let free_foot = |chunks| [foot_word(BlockState::Free, chunks)];
        match (left, right) {
            // The block keeps its length; its foot says free now.
            (None, None) => self.push_with(tx, b.address, n, dest, None, true)?,
            (Some(l), None) => {
                self.grow_left(tx, &l, total, dest)?;
                self.put(tx, after - TAG_SIZE, &free_foot(total))?;
            }
            (None, Some(r)) => {
                let r_list = g.list_for(r.chunks);
                if r_list == dest {
                    self.replace(tx, r.address, b.address, total, dest)?;
                } else {
                    self.unlink(tx, r.address, r_list)?;
                    self.push(tx, b.address, total, dest)?;
                }
                self.put(tx, r.address + r.chunks * ch - TAG_SIZE, &free_foot(total))?;
            }
            (Some(l), Some(r)) => {
                self.unlink(tx, r.address, g.list_for(r.chunks))?;
                self.grow_left(tx, &l, total, dest)?;
                self.put(tx, r.address + r.chunks * ch - TAG_SIZE, &free_foot(total))?;
            }
        }
        if left.is_some() {
            // The freed block's head is now inside its left neighbour. Mark it free anyway,
            // so freeing this address again is reported as a double free.
            self.put(tx, b.address, &[head_word(BlockState::Free, n)])?;
        }
        let bytes = n * ch;
        let c = &mut self.counters;
        c.free_count += 1;
        c.coalesce_count += u64::from(left.is_some()) + u64::from(right.is_some());
        c.free_bytes = c.free_bytes.saturating_add(bytes);
        c.allocated_bytes = c.allocated_bytes.saturating_sub(bytes);
        Ok(())
    }

    /// Grow free block `l` to `total` chunks, moving it to list `dest` if its list changes.
    fn grow_left(
        &mut self,
        tx: &mut Transaction<'_>,
        l: &FreeBlock,
        total: u64,
        dest: u64,
    ) -> Result<(), Error> {
        let l_list = self.geometry().list_for(l.chunks);
        if l_list == dest {
            self.index_large(dest, l.chunks, l.address, false);
            self.index_large(dest, total, l.address, true);
            self.put(tx, l.address, &[head_word(BlockState::Free, total)])
        } else {
            self.unlink(tx, l.address, l_list)?;
            self.push(tx, l.address, total, dest)
        }
    }
}

impl Heap {
    /// Initialise (zap) a heap in the first region of `segment`, inside `tx`: header, empty
    /// lists and one free block covering every whole chunk. The segment must be a heap
    /// segment (two regions, static right after heap) mapped at its recorded addresses.
    /// Whatever the region held before is discarded (the static region is not touched).
    ///
    /// # Errors
    /// [`Error::BadSegment`] for a segment not laid out as a heap segment;
    /// [`Error::BadLayout`] for bad `nlists` or `chunk_size`; [`Error::InvalidArgument`] for
    /// a no-restore transaction; the heap errors of [`Heap::malloc`] about waiting for the
    /// heap ([`Error::Busy`], a lock timeout).
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
        let mut st = heap.enter_write(tx)?;
        let base = plan.base;
        let header_bytes = header_length(nlists);
        tx.set_range(base as usize, header_bytes as usize)?;
        st.counters_declared_in = tx.id();
        st.counters_declared = ALL_COUNTERS;
        st.valid = false;
        // SAFETY: the set_range above pinned the region until the transaction ends.
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
        tx.modify_bytes(start as usize, &block_head)?;
        let end = base + geometry.blocks_end();
        tx.modify_bytes(
            (end - TAG_SIZE) as usize,
            &foot_word(BlockState::Free, chunks).to_le_bytes(),
        )?;
        st.geometry = Some(geometry);
        st.expected_generation = header.counters.generation;
        drop(st);
        Ok(heap)
    }

    /// Adopt the heap in a mapped heap segment: checks the segment's layout and the heap
    /// header (magic, version, geometry). Nothing else is read, so loading costs the same for
    /// any heap size; the volatile index of non-empty lists is built at the first call.
    ///
    /// Waits, like the read-only calls, while another thread's transaction owns the heap.
    ///
    /// # Errors
    /// [`Error::BadSegment`] for a segment not laid out as a heap segment; [`Error::NoHeap`],
    /// [`Error::VersionSkew`] or [`Error::Corrupt`] for a region without a usable heap header;
    /// `NotMapped` or a lock timeout (in [`Error::Rvm`]).
    pub fn load(segment: &Segment) -> Result<Heap, Error> {
        let plan = check_segment(segment)?;
        let heap = Heap {
            shared: shared_for(segment, &plan),
        };
        let _st = heap.enter_read()?;
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

    /// Allocate `size` bytes in `tx`; returns the address of the data (8-byte aligned; its
    /// contents are whatever the block held). Quick fit: the head of the list of blocks of
    /// exactly the needed number of chunks; else (best fit) the head of the smallest larger
    /// non-empty exact-size list, else the best fit among the first blocks of the large list.
    /// A larger block is split and the high end handed out, so the remainder keeps its head.
    ///
    /// The first heap change in `tx` makes `tx` the heap's owner until it ends or aborts; if
    /// another thread's transaction owns the heap, this waits for it to end.
    ///
    /// # Errors
    /// [`Error::NoRoom`] when no free block is large enough; [`Error::InvalidArgument`] for a
    /// no-restore transaction; [`Error::Busy`] when another open transaction of this thread
    /// owns the heap; [`Error::Rvm`] holding [`LockTimeout`](crate::Error::LockTimeout) after
    /// waiting `Options::lock_timeout` for another thread's transaction, or `NotMapped` once
    /// the segment is unmapped; [`Error::Corrupt`] for damaged heap metadata. Abort `tx` after
    /// an error other than `NoRoom`.
    pub fn malloc(&self, tx: &mut Transaction<'_>, size: usize) -> Result<usize, Error> {
        self.write_op(tx, MALLOC_COUNTERS, |c, tx| c.malloc(tx, size as u64))
            .map(|a| a as usize)
    }

    /// Free the block whose data starts at `address`, in `tx`, merging it at once with a
    /// free neighbour on either side. Waits for the heap like [`Heap::malloc`].
    ///
    /// # Errors
    /// [`Error::DoubleFree`] for a block already free; [`Error::NotFromHeap`] for an address
    /// `malloc` did not return; otherwise as for [`Heap::malloc`].
    pub fn free(&self, tx: &mut Transaction<'_>, address: usize) -> Result<(), Error> {
        self.write_op(tx, FREE_COUNTERS, |c, tx| c.free(tx, address as u64))
    }

    /// Carve `count` free blocks sized for allocations of `size` bytes and put them on their
    /// exact-size list, so later allocations of that size are list hits. `size` must fit an
    /// exact-size list (fewer than `nlists` chunks). On [`Error::NoRoom`] the blocks carved
    /// so far stay carved in `tx`. Waits for the heap like [`Heap::malloc`].
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
        self.write_op(tx, PREALLOC_COUNTERS, |c, tx| {
            c.prealloc(tx, size as u64, count as u64)
        })
    }

    /// Check that `address` could be freed now and record it in `intentions` instead of
    /// freeing it; [`Heap::do_free`] frees the recorded blocks later. Recording the same
    /// address twice is a double free. Waits like the read-only calls while another thread's
    /// transaction owns the heap.
    ///
    /// # Errors
    /// [`Error::DoubleFree`] for an address already recorded or already free;
    /// [`Error::NotFromHeap`] for an address `malloc` did not return; [`Error::Corrupt`];
    /// `NotMapped` or a lock timeout (in [`Error::Rvm`]).
    pub fn fake_free(&self, intentions: &mut IntentionList, address: usize) -> Result<(), Error> {
        if intentions.members.contains(&address) {
            return Err(Error::DoubleFree {
                address: address as u64,
            });
        }
        self.read_op(|r| r.allocated_block(address as u64).map(|_| ()))?;
        intentions.members.insert(address);
        intentions.addresses.push(address);
        Ok(())
    }

    /// Free every block recorded in `intentions`, in `tx`. Coda runs this in its own
    /// transaction after the one that recorded the frees has committed. Every address is
    /// checked to still be an allocated block before the first is freed, so a stale or
    /// doubled intention frees nothing. Damage found while freeing can still stop it part way
    /// (the heap stays consistent, some blocks freed): abort the transaction then. Waits for
    /// the heap like [`Heap::malloc`].
    ///
    /// # Errors
    /// As for [`Heap::free`], for the first address that cannot be freed.
    pub fn do_free(
        &self,
        tx: &mut Transaction<'_>,
        intentions: IntentionList,
    ) -> Result<(), Error> {
        self.write_op(tx, FREE_COUNTERS, |c, tx| {
            for a in &intentions.addresses {
                c.r.allocated_block(*a as u64)?;
            }
            for a in &intentions.addresses {
                c.free(tx, *a as u64)?;
            }
            Ok(())
        })
    }

    /// The largest allocation that would succeed now, in bytes (0 if none, or if the heap is
    /// damaged or unmapped).
    pub fn maxblock(&self) -> usize {
        self.read_indexed(|c| {
            let largest = c.largest_free_chunks()?;
            Ok(c.geometry().usable_bytes(largest) as usize)
        })
        .unwrap_or(0)
    }

    /// Counters from the header plus the shape of the free lists (walked, O(free blocks)).
    pub fn statistics(&self) -> HeapStatistics {
        let result = self.read_indexed(|c| {
            let g = c.geometry();
            let counters = c.counters;
            let mut s = HeapStatistics {
                heap_length: g.heap_length,
                chunk_size: g.chunk_size,
                nlists: g.nlists,
                capacity_bytes: g.chunk_count * g.chunk_size,
                free_bytes: counters.free_bytes,
                allocated_bytes: counters.allocated_bytes,
                malloc_count: counters.malloc_count,
                free_count: counters.free_count,
                prealloc_count: counters.prealloc_count,
                coalesce_count: counters.coalesce_count,
                exact_hits: counters.exact_hits,
                large_hits: counters.large_hits,
                splits: counters.splits,
                ..HeapStatistics::default()
            };
            let mut largest = 0;
            for list in 1..=g.nlists {
                let mut info = ListInfo {
                    list,
                    blocks: 0,
                    bytes: 0,
                };
                let walked = c.r.walk_list(list, |b| {
                    info.blocks += 1;
                    info.bytes += b.chunks * g.chunk_size;
                    largest = largest.max(b.chunks);
                    true
                });
                s.free_blocks += info.blocks;
                s.lists.push(info);
                if let Err(e) = walked {
                    s.damage.get_or_insert(e.to_string());
                }
            }
            s.largest_free_block = largest * g.chunk_size;
            s.largest_allocation = g.usable_bytes(largest);
            s.fragmentation = check::fragmentation(s.largest_free_block, s.free_bytes);
            Ok(s)
        });
        result.unwrap_or_else(|e| HeapStatistics {
            damage: Some(e.to_string()),
            ..HeapStatistics::default()
        })
    }

    /// Zero the event counters (malloc, free, prealloc, coalesce, hits, splits) in `tx`. The
    /// byte accounting (free and allocated bytes) is state, not statistics, and is kept.
    ///
    /// # Errors
    /// As for [`Heap::malloc`] (it waits for the heap the same way).
    pub fn clear_statistics(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        self.write_op(tx, ALL_COUNTERS, |c, _| {
            let k = &mut c.counters;
            *k = HeapCounters {
                generation: k.generation,
                free_bytes: k.free_bytes,
                allocated_bytes: k.allocated_bytes,
                ..HeapCounters::default()
            };
            Ok(())
        })
    }

    /// Full consistency check: every block's tags, every list's links and membership, and the
    /// byte accounting. Each problem is reported with its address.
    pub fn check(&self) -> CheckReport {
        let st = match self.enter_read() {
            Ok(st) => st,
            Err(e) => return CheckReport::unreadable(self.shared.base, e.to_string()),
        };
        let mapped = match self.mapped() {
            Ok(m) => m,
            Err(e) => return CheckReport::unreadable(self.shared.base, e.to_string()),
        };
        // SAFETY: the region stays mapped while `mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let report = check::check_view(view);
        drop(mapped);
        drop(st);
        report
    }

    /// Header, counters, per-list histogram and largest free block (a full walk, like
    /// [`inspect_image`](crate::rds::inspect_image) on the mapped region).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged header; `NotMapped` or a lock timeout (in
    /// [`Error::Rvm`]).
    pub fn inspect(&self) -> Result<HeapImageInfo, Error> {
        let _st = self.enter_read()?;
        let _mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `_mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        check::inspect_view(view)
    }

    /// Every block in address order (a full walk; stops with an error at damage).
    ///
    /// # Errors
    /// [`Error::Corrupt`] at the first damaged block; `NotMapped` or a lock timeout (in
    /// [`Error::Rvm`]).
    pub fn blocks(&self) -> Result<Vec<BlockInfo>, Error> {
        let _st = self.enter_read()?;
        let _mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `_mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        check::blocks_view(view)
    }

    /// Bytes the caller may use in the allocated block whose data starts at `address`.
    ///
    /// # Errors
    /// [`Error::NotFromHeap`] or [`Error::DoubleFree`] unless `address` is the data of an
    /// allocated block; `NotMapped` or a lock timeout (in [`Error::Rvm`]).
    pub fn usable_size(&self, address: usize) -> Result<usize, Error> {
        self.read_op(|r| {
            let b = r.allocated_block(address as u64)?;
            Ok(r.geometry.usable_bytes(b.chunks) as usize)
        })
    }

    /// Make `tx` the owner of this heap without changing anything (waits like any changing
    /// call). Callers that use several heaps take them in one fixed order with this, so two
    /// transactions never wait for each other's heaps.
    pub(crate) fn own(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        self.enter_write(tx).map(drop)
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

    fn enter_write(&self, tx: &mut Transaction<'_>) -> Result<MutexGuard<'_, State>, Error> {
        if tx.mode() != BeginMode::Restore {
            return Err(Error::InvalidArgument {
                parameter: "transaction",
                rule: "heap changes need a restore-mode transaction, so that an abort puts the \
                       heap back exactly"
                    .into(),
            });
        }
        let started = std::time::Instant::now();
        let mut st = lock(&self.shared.state);
        loop {
            match st.owner {
                Some(o) if o.transaction == tx.id() => return Ok(st),
                None => {
                    st.owner = Some(Owner {
                        transaction: tx.id(),
                        thread: std::thread::current().id(),
                    });
                    tx.attach(Box::new(HeapGuard {
                        shared: self.shared.clone(),
                    }));
                    return Ok(st);
                }
                Some(o) if o.thread == std::thread::current().id() => {
                    return Err(Error::Busy {
                        holder: o.transaction,
                        requester: tx.id(),
                    })
                }
                Some(o) => st = self.wait_for_release(st, o, started)?,
            }
        }
    }

    /// Wait until the owning transaction releases the heap (or a spurious wake-up). The whole
    /// wait since `started` is bounded by the instance's `lock_timeout`: a transaction leaked
    /// with `mem::forget` owns the heap forever, and waiting for it must end in an error. A
    /// heap whose segment was unmapped (or whose instance was closed) answers `NotMapped`.
    fn wait_for_release<'g>(
        &'g self,
        mut st: MutexGuard<'g, State>,
        owner: Owner,
        started: std::time::Instant,
    ) -> Result<MutexGuard<'g, State>, Error> {
        /// Waits are cut into slices this long, to notice an unmap or close.
        const SLICE: std::time::Duration = std::time::Duration::from_millis(50);
        drop(self.mapped()?);
        let limit = self.shared.segment.inner.lock_timeout;
        let waited = started.elapsed();
        if waited >= limit {
            return Err(Error::Rvm(crate::Error::LockTimeout {
                what: format!("heap at {:#x}", self.shared.base),
                holder: owner.transaction,
                waited_ms: waited.as_millis() as u64,
            }));
        }
        st.waiters += 1;
        let (mut st, _) = self
            .shared
            .released
            .wait_timeout(st, (limit - waited).min(SLICE))
            .unwrap_or_else(|e| e.into_inner());
        st.waiters -= 1;
        Ok(st)
    }

    /// Lock for reading: waits while another thread's transaction owns the heap (bounded, see
    /// `wait_for_release`).
    fn enter_read(&self) -> Result<MutexGuard<'_, State>, Error> {
        let started = std::time::Instant::now();
        let mut st = lock(&self.shared.state);
        loop {
            match st.owner {
                Some(o) if o.thread != std::thread::current().id() => {
                    st = self.wait_for_release(st, o, started)?
                }
                _ => return Ok(st),
            }
        }
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
    /// be stale. The region must be pinned or its mapped flag held.
    fn refresh(&self, st: &mut State, view: View<'static>) -> Result<Reader<'static>, Error> {
        let base = self.shared.base;
        let generation = view.word(base + GENERATION_OFFSET);
        let header_words = read_header_words(&view, base);
        if let Some(g) = st.geometry.filter(|_| st.valid) {
            if generation == Some(st.expected_generation) && header_words == Some(st.header_words) {
                return Ok(Reader::new(view, g));
            }
        }
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
        st.header_words = header_words.unwrap_or([0; HEADER_BYTES]);
        st.valid = true;
        Ok(reader)
    }

    /// Declare (`set_range`) the counter words in `words` (bit `i`: word `i`) that this
    /// transaction has not declared yet: one range from the first missing word to the last.
    fn declare_counters(
        &self,
        st: &mut State,
        tx: &mut Transaction<'_>,
        words: u16,
    ) -> Result<(), Error> {
        let missing = words & !st.counters_declared;
        if missing == 0 {
            return Ok(());
        }
        let first = missing.trailing_zeros() as usize;
        let last = 15 - missing.leading_zeros() as usize;
        let at = self.shared.base + COUNTERS_OFFSET + 8 * first as u64;
        tx.set_range(at as usize, 8 * (last + 1 - first))?;
        st.counters_declared |= counter_span(first, last);
        Ok(())
    }

    /// Run a changing call: own the heap for `tx`, declare the counter words in `counters`
    /// (the ones the call may change) and the generation, validate, run `op`, store the
    /// counters that changed with a new generation. Any error clears the volatile index.
    fn write_op<'t, R>(
        &self,
        tx: &mut Transaction<'t>,
        counters: u16,
        op: impl FnOnce(&mut Ctx<'_>, &mut Transaction<'t>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut st = self.enter_write(tx)?;
        if st.counters_declared_in != tx.id() {
            st.counters_declared_in = tx.id();
            st.counters_declared = 0;
        }
        // Before anything is read: in a restore transaction the old values must be saved
        // before they change, and the first range of the transaction pins the heap region.
        self.declare_counters(&mut st, tx, counters | 1 << counter::GENERATION)?;
        // SAFETY: the set_range on the counters (now or earlier in this transaction) pinned
        // the heap region: it stays mapped until the transaction ends, after this call.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let st = &mut *st;
        let result = (|| {
            let reader = self.refresh(st, view)?;
            let old = reader.counter_words()?;
            let mut ctx = Ctx {
                r: reader,
                nonempty: &mut st.nonempty,
                large: &mut st.large,
                counters: HeapCounters::from_words(&old),
            };
            let value = op(&mut ctx, tx)?;
            let mut counters = ctx.counters;
            counters.generation = counters.generation.wrapping_add(1);
            let new = counters.to_words();
            let mut changed = 0u16;
            for (i, (n, o)) in new.iter().zip(&old).enumerate() {
                if n != o {
                    changed |= 1 << i;
                }
            }
            // Every call declared what it may change above; this only declares a counter a
            // call changed without saying so, so that nothing is ever stored undeclared.
            debug_assert_eq!(changed & !st.counters_declared, 0, "undeclared counters");
            self.declare_counters(st, tx, changed)?;
            let counters_at = self.shared.base + COUNTERS_OFFSET;
            for (i, word) in new.iter().enumerate() {
                if changed & 1 << i != 0 {
                    // SAFETY: declared with set_range in this transaction (above, or by an
                    // earlier call in it).
                    unsafe { store(counters_at + 8 * i as u64, &word.to_le_bytes()) };
                }
            }
            st.expected_generation = counters.generation;
            Ok(value)
        })();
        if result.is_err() {
            st.valid = false;
        }
        result
    }

    /// Run a read-only call that needs only validated reads.
    fn read_op<R>(
        &self,
        op: impl FnOnce(&Reader<'static>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut st = self.enter_read()?;
        let mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let reader = self.refresh(&mut st, view)?;
        let result = op(&reader);
        drop(mapped);
        result
    }

    /// Run a read-only call that also needs the index and the counters.
    fn read_indexed<R>(
        &self,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut st = self.enter_read()?;
        let mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let st = &mut *st;
        let reader = self.refresh(st, view)?;
        let counters = reader.counters()?;
        let mut ctx = Ctx {
            r: reader,
            nonempty: &mut st.nonempty,
            large: &mut st.large,
            counters,
        };
        let result = op(&mut ctx);
        drop(mapped);
        result
    }
}

/// Bytes of the header before the counters' reserved word: magic, version and geometry.
const HEADER_BYTES: usize = COUNTERS_OFFSET as usize - 8;
type HeaderWords = [u8; HEADER_BYTES];

#[inline]
fn read_header_words(view: &View<'_>, base: u64) -> Option<HeaderWords> {
    let mut bytes = [0u8; HEADER_BYTES];
    view.read(base, &mut bytes)?;
    Some(bytes)
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
