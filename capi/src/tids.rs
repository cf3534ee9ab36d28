//! The registry of open transactions: a slab of tid slots indexed by the id a tid record
//! carries, each slot checked by a generation and the tid's uname.
//!
//! Every transaction call passes here, so the common path takes no global lock, allocates
//! nothing, and, for the thread that began the transaction, makes no locked instruction at all
//! (biased locking, `bias`); a call from another thread takes the slot's lock word with a
//! compare-and-swap.
//!
//! A tid record's `tid` field holds `generation << INDEX_BITS | index` as a number (never
//! dereferenced). A slot's state word holds its generation and two flags:
//!
//! | state | meaning |
//! | --- | --- |
//! | `gen` | free (in a free list, or never handed out) |
//! | `gen \| BUSY` | being begun or ended by one call: not open, but that call uses the instance |
//! | `gen \| OPEN` | open (a call may hold it: see the lock word) |
//!
//! A slot's lock word holds the generation of its transaction and two flags: `LOCKED` (a call
//! from the slow path holds it) and `REVOKED` (the bias is gone: every call takes the lock word).
//! A call holds an open transaction either on the fast path (its thread owns the slot, its
//! call record names the tid, and it saw the lock word unlocked and unrevoked after a light
//! fence) or on the slow path (it set `LOCKED`, and, unless `REVOKED` was set, ran a heavy
//! fence and waited until the owner's record no longer names the tid, then set `REVOKED`).
//! Only the holder touches the transaction, and only a holder or the beginner writes the state
//! word.
//!
//! Ending a transaction moves its slot to the next generation, so a stale, ended or copied tid
//! of an earlier transaction in the slot no longer matches. Slots live in chunks that are
//! allocated once and never freed (they are at most as many as transactions were open at once),
//! so a slot reference is `'static` and an index from a forged record is looked up without
//! following anything the caller wrote.
//!
//! Free slots are kept per thread (the one freed last in a const thread-local, which the next
//! begin takes back; a short list; the rest in a global one), so begin and end usually touch no
//! shared free list.

use std::cell::{RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::timeval;
use rvm::{BeginMode, Transaction};

use crate::bias::{self, Caller};
use crate::codes::{rvm_code, RVM_EINTERNAL, RVM_ENO_MEMORY, RVM_ETID};
use crate::state::{self, lock};
use crate::types::{RvmReturn, RvmTid, RVM_TID_ID};

/// Bits of a tid id that give the slot index: at most 16 M transactions open at once.
const INDEX_BITS: u32 = 24;
const SLOTS_MAX: usize = 1 << INDEX_BITS;
/// Generations wrap after 2^40 transactions in one slot; the uname is checked as well.
const GENERATION_MASK: u64 = (1 << 40) - 1;

const OPEN: u64 = 1;
const BUSY: u64 = 2;
const FLAG_BITS: u32 = 2;
/// Lock word flags (the generation above them, as in the state word).
const LOCKED: u64 = 1;
const REVOKED: u64 = 2;
const LOCK_FLAGS: u64 = LOCKED | REVOKED;

/// Slots in the first chunk; chunk `c` holds `FIRST_CHUNK_SLOTS << c`.
const FIRST_CHUNK_SLOTS: usize = 64;
const FIRST_CHUNK_BITS: u32 = FIRST_CHUNK_SLOTS.trailing_zeros();
/// Enough chunks for `SLOTS_MAX` slots: 64 * (2^19 - 1) >= 2^24.
const CHUNKS_MAX: usize = 19;
const _: () = assert!(FIRST_CHUNK_SLOTS * ((1 << CHUNKS_MAX) - 1) >= SLOTS_MAX);

/// Free slots a thread keeps for its next transactions before giving some back.
const LOCAL_FREE_MAX: usize = 32;

/// One transaction's place. Aligned to a cache line: slots of different threads' transactions
/// do not share one.
#[repr(align(64))]
struct Slot {
    state: AtomicU64,
    /// `generation << FLAG_BITS | LOCKED? | REVOKED?`, written at begin before `OPEN` is
    /// published; then changed only by slow-path calls (see the module documentation).
    lock: AtomicU64,
    /// The call record of the thread that owns the transaction's bias (null: none), written
    /// at begin before `OPEN` is published.
    owner: AtomicPtr<Caller>,
    uname_sec: AtomicI64,
    uname_usec: AtomicI64,
    /// The transaction, begun here (`Rvm::begin_in`, or `Transaction::restart` of the one the
    /// slot kept) and ended here (`end_in_place`), never moved. Initialized while the state
    /// has `OPEN` (written before `OPEN` is published), and while `initialized` is set. Touched
    /// only by the call that begins the slot or holds it (see the module documentation), and
    /// by `drop_kept`.
    tx: UnsafeCell<MaybeUninit<Transaction<'static>>>,
    /// `tx` is initialized: a transaction of the running instance, open while the state has
    /// `OPEN`, finished otherwise. A slot keeps its finished transaction while it is free, and
    /// the next begin in the slot restarts it (`Transaction::restart`: its buffers stay)
    /// instead of dropping it and beginning a new one. Read and written only by the call that
    /// may touch `tx` (see there), and by `drop_kept` when no call runs.
    initialized: AtomicBool,
}

// SAFETY: `tx` is only accessed by the one call that holds the slot: the beginner (which took
// it from a free list), a fast-path call of the owner's thread, or a slow-path call holding
// the lock word after the owner's fast-path call ended; the module documentation shows these
// exclude each other and are ordered by release/acquire pairs (and, between the fast and slow
// paths, the heavy fence). `Transaction` is `Send`.
unsafe impl Sync for Slot {}

impl Slot {
    fn new() -> Self {
        Slot {
            state: AtomicU64::new(1 << FLAG_BITS),
            lock: AtomicU64::new(0),
            owner: AtomicPtr::new(std::ptr::null_mut()),
            uname_sec: AtomicI64::new(0),
            uname_usec: AtomicI64::new(0),
            tx: UnsafeCell::new(MaybeUninit::uninit()),
            initialized: AtomicBool::new(false),
        }
    }

    /// The uname stored at the last begin (`tv_sec`, `tv_usec`).
    #[inline]
    fn uname(&self) -> (i64, i64) {
        (
            self.uname_sec.load(Ordering::Relaxed),
            self.uname_usec.load(Ordering::Relaxed),
        )
    }
}

static CHUNKS: [AtomicPtr<Slot>; CHUNKS_MAX] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS_MAX];
/// Slots handed out so far (each index below this has its chunk allocated).
static SLOTS_USED: AtomicUsize = AtomicUsize::new(0);
/// Serializes chunk allocation and holds free slots given back by threads.
static GLOBAL_FREE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The chunk and position of a slot index.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let shifted = index + FIRST_CHUNK_SLOTS;
    let chunk = (usize::BITS - 1 - shifted.leading_zeros() - FIRST_CHUNK_BITS) as usize;
    (chunk, shifted - (FIRST_CHUNK_SLOTS << chunk))
}

/// The slot at `index`, if its chunk exists.
#[inline]
fn slot(index: usize) -> Option<&'static Slot> {
    if index >= SLOTS_MAX {
        return None;
    }
    let (chunk, position) = locate(index);
    let base = CHUNKS[chunk].load(Ordering::Acquire);
    if base.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer is a leaked, fully initialized array of
    // `FIRST_CHUNK_SLOTS << chunk` slots (published with release after initialization and
    // never freed), and `position` is below that length by `locate`.
    Some(unsafe { &*base.add(position) })
}

/// A slot index for a new transaction: the one this thread freed last, another one it freed,
/// one another thread gave back, or a new one.
#[inline]
fn allocate() -> Result<usize, RvmReturn> {
    if let Ok(Some(index)) = LAST_FREED.try_with(|last| {
        let v = last.get();
        (v < SLOTS_MAX as u64).then(|| {
            last.set(LAST_NONE);
            v as usize
        })
    }) {
        return Ok(index);
    }
    allocate_slow()
}

#[cold]
#[inline(never)]
fn allocate_slow() -> Result<usize, RvmReturn> {
    // Arm this thread's list (and its destructor, which also gives back `LAST_FREED`) before
    // `release` may keep a slot in `LAST_FREED`.
    let local = LOCAL_FREE.try_with(|free| free.borrow_mut().0.pop());
    if local.is_ok() {
        let _ = LAST_FREED.try_with(|last| {
            if last.get() == LAST_UNARMED {
                last.set(LAST_NONE);
            }
        });
    }
    if let Ok(Some(index)) = local {
        return Ok(index as usize);
    }
    let mut global = lock(&GLOBAL_FREE);
    if let Some(index) = global.pop() {
        return Ok(index as usize);
    }
    let index = SLOTS_USED.load(Ordering::Relaxed);
    if index >= SLOTS_MAX {
        return Err(RVM_ENO_MEMORY);
    }
    let (chunk, _) = locate(index);
    if CHUNKS[chunk].load(Ordering::Acquire).is_null() {
        let slots: Box<[Slot]> = (0..FIRST_CHUNK_SLOTS << chunk)
            .map(|_| Slot::new())
            .collect();
        CHUNKS[chunk].store(Box::leak(slots).as_mut_ptr(), Ordering::Release);
    }
    // Only changed with GLOBAL_FREE held.
    SLOTS_USED.store(index + 1, Ordering::Relaxed);
    Ok(index)
}

/// Free slot indexes of this thread; given back to the global list when the thread exits.
struct LocalFree(Vec<u32>);

impl Drop for LocalFree {
    fn drop(&mut self) {
        let mut global = lock(&GLOBAL_FREE);
        global.append(&mut self.0);
        // `LAST_FREED` has no destructor, so it is still there: its slot goes back too, and
        // later releases of this thread go to the global list.
        let _ = LAST_FREED.try_with(|last| {
            let v = last.replace(LAST_UNARMED);
            if v < SLOTS_MAX as u64 {
                global.push(v as u32);
            }
        });
    }
}

/// `LAST_FREED`: no slot kept, and `LOCAL_FREE` (whose destructor gives a kept slot back) is
/// not armed or already gone: `release` must not keep one.
const LAST_UNARMED: u64 = u64::MAX;
/// `LAST_FREED`: no slot kept; `LOCAL_FREE` is armed.
const LAST_NONE: u64 = u64::MAX - 1;

thread_local! {
    static LOCAL_FREE: RefCell<LocalFree> = const { RefCell::new(LocalFree(Vec::new())) };
    /// The slot this thread freed last (its next begin takes it back), or `LAST_NONE` /
    /// `LAST_UNARMED`. A const thread-local without a destructor: reading it is one load, and
    /// it outlives `LOCAL_FREE`'s destructor, which empties it.
    static LAST_FREED: std::cell::Cell<u64> = const { std::cell::Cell::new(LAST_UNARMED) };
}

#[inline]
fn release(index: usize) {
    let kept = LAST_FREED.try_with(|last| {
        if last.get() == LAST_NONE {
            last.set(index as u64);
            true
        } else {
            false
        }
    });
    if kept != Ok(true) {
        release_slow(index);
    }
}

#[cold]
#[inline(never)]
fn release_slow(index: usize) {
    let index = index as u32;
    let kept = LOCAL_FREE.try_with(|free| {
        let mut free = free.borrow_mut();
        if free.0.len() >= LOCAL_FREE_MAX {
            let half = free.0.len() / 2;
            lock(&GLOBAL_FREE).extend(free.0.drain(..half));
        }
        free.0.push(index);
    });
    if kept.is_err() {
        // The thread is exiting: its list is gone.
        lock(&GLOBAL_FREE).push(index);
    }
}

fn tid_value(index: usize, generation: u64) -> u64 {
    generation << INDEX_BITS | index as u64
}

/// The slot index and generation a tid record names (any value: it is only looked up).
#[inline]
fn decode(t: &TidKey) -> (usize, u64) {
    let value = t.id;
    (
        (value & (SLOTS_MAX as u64 - 1)) as usize,
        value >> INDEX_BITS,
    )
}

/// The wall-clock time, in microseconds, when the instance was opened: unames count from it.
static UNAME_BASE_US: AtomicI64 = AtomicI64::new(0);

/// Record when the instance was opened (before its first transaction can begin).
pub fn set_uname_base_now() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    UNAME_BASE_US.store(now, Ordering::Relaxed);
}

/// The uname of the transaction the instance began as its `number`th: the time the instance
/// was opened plus `number` microseconds. So unames are unique and strictly increasing in the
/// order transactions begin, on any thread, as the classic library's are (spec C.8), at no
/// cost: the library counts begins anyway. (Unlike the classic counter they are not moved
/// forward to the wall clock at commits: they run behind it while the program is idle.)
#[inline]
fn uname_of(number: u64) -> timeval {
    let us = UNAME_BASE_US
        .load(Ordering::Relaxed)
        .saturating_add(number.min(i64::MAX as u64) as i64);
    timeval {
        tv_sec: us / 1_000_000,
        tv_usec: us % 1_000_000,
    }
}

/// Begin a transaction in `mode` on the running instance, in a free slot, and register it.
/// Returns the id and uname to store in the caller's record.
///
/// The slot is marked busy before the instance is looked at, so `rvm_terminate` either sees
/// this call (and waits for it) or this call sees it terminating (and waits for its decision).
///
/// Inlined into `rvm_begin_transaction`: the id and uname stay in registers and are stored
/// into the caller's record field by field (returned through memory, they were stored as two
/// words and loaded back as one, which stalls on store-to-load forwarding).
#[inline(always)]
pub fn begin(mode: BeginMode) -> Result<(u64, timeval), RvmReturn> {
    // This thread's call record: the transaction's bias goes to it (none without fences).
    let me = bias::register();
    let index = allocate()?;
    let Some(slot) = slot(index) else {
        return Err(RVM_ETID); // unreachable: allocated slots have their chunk
    };
    // Free slots are changed only by the call that took them from a free list.
    let free = slot.state.load(Ordering::Relaxed);
    let released = |code| {
        slot.state.store(free, Ordering::Release);
        release(index);
        Err(code)
    };
    // Busy before `instance_for_begin` reads the terminating flag; `exclusive` sets that flag,
    // then (with a heavy fence where fences exist) looks for busy slots. With fences a light
    // fence suffices here, otherwise a read-modify-write (a full barrier).
    let mark = || {
        if me.is_some() {
            slot.state.store(free | BUSY, Ordering::Relaxed);
            bias::light_fence();
        } else {
            slot.state.swap(free | BUSY, Ordering::SeqCst);
        }
    };
    let unmark = || slot.state.store(free, Ordering::SeqCst);
    mark();
    let rvm = match state::instance_for_begin(mark, unmark) {
        Ok(rvm) => rvm,
        Err(code) => return released(code),
    };
    // SAFETY: this call took the slot from a free list, and only a holder of an OPEN slot
    // touches `tx`, so nothing else touches it until the store below publishes OPEN (release:
    // the transaction is written before); a free slot's `tx` holds a finished transaction if
    // `initialized` is set (restarted, never overwritten), and none otherwise (never begun,
    // dropped by a panicking `Ending`, or by `drop_kept`), so `begin_in` overwrites nothing.
    let place = unsafe { &mut *slot.tx.get() };
    let begun = if slot.initialized.load(Ordering::Relaxed) {
        // SAFETY: `initialized` on a free slot means `place` holds a finished transaction of
        // the running instance (`rvm`: `drop_kept` drops every one before the instance goes),
        // and this call owns it as above.
        let tx = unsafe { place.assume_init_mut() };
        tx.restart(mode).map(|()| tx.number())
    } else {
        rvm.begin_in(mode, place).map(|tx| {
            slot.initialized.store(true, Ordering::Relaxed);
            tx.number()
        })
    };
    let uname = match begun {
        Ok(number) => uname_of(number),
        Err(e) => return released(rvm_code(&e)),
    };
    slot.uname_sec.store(uname.tv_sec, Ordering::Relaxed);
    slot.uname_usec.store(uname.tv_usec, Ordering::Relaxed);
    // The bias goes to this thread; without a record the transaction starts revoked. (A call
    // still holding this slot's lock word for an ended generation only ever writes it back
    // with a compare-and-swap, which then fails.)
    let owner = me.map_or(std::ptr::null_mut(), |c| c as *const Caller as *mut Caller);
    slot.owner.store(owner, Ordering::Relaxed);
    let generation = free & !(OPEN | BUSY);
    let revoked = if me.is_some() { 0 } else { REVOKED };
    slot.lock.store(generation | revoked, Ordering::Relaxed);
    slot.state.store(free | OPEN, Ordering::Release);
    Ok((tid_value(index, free >> FLAG_BITS), uname))
}

/// How a call holds its transaction.
#[derive(Clone, Copy)]
enum Hold {
    /// The owner's fast path: its call record names the tid until the call ends.
    Fast(&'static Caller),
    /// The slow path: the slot's lock word is `LOCKED` (and `REVOKED`) until the call ends.
    Slow,
}

/// A locked open transaction: the caller has it to itself until this is dropped.
pub struct Held {
    slot: &'static Slot,
    index: usize,
    open: u64,
    hold: Hold,
}

impl Held {
    /// The transaction.
    #[inline]
    pub fn tx(&mut self) -> &mut Transaction<'static> {
        // SAFETY: this `Held` holds the slot (fast or slow path, see the module
        // documentation), so no other call touches `tx`; an OPEN slot always holds an
        // initialized transaction (written before OPEN was published, dropped only after OPEN
        // is cleared, both by a holder).
        unsafe { (*self.slot.tx.get()).assume_init_mut() }
    }

    /// End the registration: the tid (and every copy of it) is no longer valid. `finish`
    /// commits or aborts the transaction where it lies (`end_in_place`, `abort_in_place`);
    /// the slot keeps it, finished, for its next begin (on a panic in `finish` an open one is
    /// dropped, which aborts it), and counts as a running call until it is free.
    #[inline]
    pub fn finish<R>(self, finish: impl FnOnce(&mut Transaction<'static>) -> R) -> R {
        let ending = Ending {
            slot: self.slot,
            index: self.index,
            free: ((self.open >> FLAG_BITS).wrapping_add(1) & GENERATION_MASK).max(1) << FLAG_BITS,
            generation: self.open & !OPEN,
            hold: self.hold,
        };
        std::mem::forget(self);
        // Not open any more, still busy: copies of the tid fail from here, and
        // `rvm_terminate` waits for `finish`, which uses the instance.
        ending
            .slot
            .state
            .store(ending.free | BUSY, Ordering::Release);
        // SAFETY: as in `tx`: this call holds the slot, and the slot was OPEN, so the
        // transaction is initialized; `ending` drops it once, after this use.
        finish(unsafe { (*ending.slot.tx.get()).assume_init_mut() })
        // `ending` drops here: the transaction, then the slot goes free.
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        match self.hold {
            Hold::Fast(me) => me.busy.store(0, Ordering::Release),
            Hold::Slow => self
                .slot
                .lock
                .store(self.open & !OPEN | REVOKED, Ordering::Release),
        }
    }
}

/// A slot between the end of its registration and its reuse. Owns the slot's transaction
/// until it frees the slot: a finished one stays there for the slot's next begin; one left
/// open (a panic in `finish`) is dropped, which aborts it.
struct Ending {
    slot: &'static Slot,
    index: usize,
    free: u64,
    /// The ended transaction's generation (as in the lock word).
    generation: u64,
    hold: Hold,
}

impl Drop for Ending {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: created by `Held::finish` from an OPEN slot it holds, so the transaction is
        // initialized and no one else touches it. A finished one stays in the slot for its
        // next begin (`initialized` stays set); one `finish` left open (a panic) is dropped
        // here, exactly once, which aborts it.
        let tx = unsafe { (*self.slot.tx.get()).assume_init_mut() };
        if !tx.is_finished() {
            self.slot.initialized.store(false, Ordering::Relaxed);
            // SAFETY: as above; `initialized` is cleared, so nothing uses it again.
            unsafe { (*self.slot.tx.get()).assume_init_drop() };
        }
        if let Hold::Slow = self.hold {
            // Unlocked (still revoked) before the slot can be reused: calls waiting on the
            // lock word then find the state not open.
            self.slot
                .lock
                .store(self.generation | REVOKED, Ordering::Release);
        }
        self.slot.state.store(self.free, Ordering::Release);
        release(self.index);
        if let Hold::Fast(me) = self.hold {
            // Last: `rvm_terminate` waits for this call until here.
            me.busy.store(0, Ordering::Release);
        }
    }
}

/// Lock the open transaction a tid record names (by id and uname), or `RVM_ETID`, for a call
/// that is not counted as running (`state::enter`): the held slot stands for the count. Waits
/// for a call in progress on the same tid, and for a terminate decision in progress.
#[inline(always)]
pub fn hold(t: &TidKey) -> Result<Held, RvmReturn> {
    loop {
        let held = hold_counted(t)?;
        // Either path made this call visible before this load (the fast path with a light
        // fence against `exclusive`'s heavy one, the slow path with a sequentially consistent
        // read-modify-write): either `exclusive` (which sets the flag, then looks for calls in
        // progress) sees this call, or this call sees the flag and steps back until the
        // decision, which an open tid makes a refusal.
        if !state::terminating() {
            return Ok(held);
        }
        drop(held);
        state::wait_while_terminating();
    }
}

/// `hold` for a call already counted as running by `state::enter` (`rvm_terminate` waits for
/// it; it must not wait for `rvm_terminate`).
#[inline(always)]
pub fn hold_counted(t: &TidKey) -> Result<Held, RvmReturn> {
    let (index, generation) = decode(t);
    let slot = slot(index).ok_or(RVM_ETID)?;
    let open = generation << FLAG_BITS | OPEN;
    let held = match bias::current().and_then(|me| hold_fast(slot, index, open, me)) {
        Some(held) => held,
        None => hold_slow(slot, index, open)?,
    };
    if slot.uname() != t.uname {
        return Err(RVM_ETID); // `held` unlocks
    }
    Ok(held)
}

/// The owner's fast path: no locked instruction. `None` when this thread does not own the
/// slot's bias now (not the owner, revoked, locked, not open, or a call of this thread is
/// already on the fast path): the caller takes the slow path.
#[inline(always)]
fn hold_fast(slot: &'static Slot, index: usize, open: u64, me: &'static Caller) -> Option<Held> {
    if me.busy.load(Ordering::Relaxed) != 0 {
        return None; // a nested call: its record names another tid
    }
    let tid = tid_value(index, open >> FLAG_BITS);
    me.busy.store(tid, Ordering::Relaxed);
    // Pairs with the heavy fence of a slow-path call or of `exclusive`: either they see the
    // store above, or the loads below see what they stored before their fence.
    bias::light_fence();
    let held = Held {
        slot,
        index,
        open,
        hold: Hold::Fast(me),
    };
    // Acquire: a slow-path call's changes (released with the lock word) are visible.
    if slot.lock.load(Ordering::Acquire) == open & !OPEN
        && slot.state.load(Ordering::Acquire) == open
        // Read after the state: the owner of this generation (written before it was
        // published). Only the owner's thread writes its record, so no other call of this
        // generation is on the fast path.
        && std::ptr::eq(slot.owner.load(Ordering::Relaxed), me)
    {
        return Some(held);
    }
    None // `held` clears the record
}

/// The slow path: take the lock word; unless the bias is already revoked, fence and wait for
/// the owner's fast-path call on this tid, then revoke.
#[cold]
#[inline(never)]
fn hold_slow(slot: &'static Slot, index: usize, open: u64) -> Result<Held, RvmReturn> {
    let generation = open & !OPEN;
    let not_open = || slot.state.load(Ordering::Acquire) != open;
    let mut spins = 0u32;
    let taken = loop {
        let now = slot.lock.load(Ordering::Relaxed);
        if now & !LOCK_FLAGS != generation || now & LOCKED != 0 {
            // Another generation's word (this tid ended, or is not visible yet), or another
            // call holds it: fail if the tid is not open, else wait.
            if not_open() {
                return Err(RVM_ETID);
            }
            backoff(&mut spins);
            continue;
        }
        if slot
            .lock
            .compare_exchange_weak(now, now | LOCKED, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            break now;
        }
    };
    // Give the word back on a refusal. A compare-and-swap: if the slot was ended and begun
    // again meanwhile, the word is the new transaction's and stays.
    let refuse = |code| {
        let _ =
            slot.lock
                .compare_exchange(taken | LOCKED, taken, Ordering::Release, Ordering::Relaxed);
        Err(code)
    };
    if taken & REVOKED == 0 {
        // The owner may be in a fast-path call on this tid: after the fence, either its record
        // names the tid (wait for it), or its next fast-path attempt sees `LOCKED`.
        if !bias::heavy_fence() {
            return refuse(RVM_EINTERNAL);
        }
        if not_open() {
            return refuse(RVM_ETID);
        }
        let owner = slot.owner.load(Ordering::Acquire);
        // SAFETY: a non-null owner is a call record, which is leaked and never freed.
        if let Some(owner) = unsafe { owner.as_ref() } {
            let tid = tid_value(index, open >> FLAG_BITS);
            while owner.busy.load(Ordering::Acquire) == tid {
                backoff(&mut spins);
            }
        }
    }
    if not_open() {
        return refuse(RVM_ETID);
    }
    // Held: the generation is open and no fast-path call can start on it any more.
    slot.lock
        .store(generation | LOCKED | REVOKED, Ordering::Relaxed);
    Ok(Held {
        slot,
        index,
        open,
        hold: Hold::Slow,
    })
}

/// Wait for another call: a call holds a slot for one library call (a flush commit's sync at
/// most), so spin briefly, then yield, then sleep rather than burn a core.
fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 1024 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

fn each_used_slot(mut f: impl FnMut(usize, &'static Slot)) {
    let used = SLOTS_USED.load(Ordering::Acquire).min(SLOTS_MAX);
    for index in 0..used {
        if let Some(s) = slot(index) {
            f(index, s);
        }
    }
}

/// The open transactions: (id, uname) each, in id order. A transaction that begins or ends
/// while this runs may or may not be listed.
pub fn open_tids() -> Vec<(u64, (i64, i64))> {
    let mut v = Vec::new();
    each_used_slot(|index, s| {
        let state = s.state.load(Ordering::Acquire);
        if state & OPEN == 0 {
            return;
        }
        let uname = s.uname();
        // The uname belongs to this generation only if the state did not change meanwhile.
        if s.state.load(Ordering::Acquire) & !BUSY == state & !BUSY {
            v.push((tid_value(index, state >> FLAG_BITS), uname));
        }
    });
    v.sort_unstable();
    v
}

/// How many transactions are open now.
pub fn open_count() -> usize {
    let mut n = 0;
    each_used_slot(|_, s| {
        if s.state.load(Ordering::SeqCst) & OPEN != 0 {
            n += 1;
        }
    });
    n
}

/// Drop the finished transaction every free slot keeps (see `Slot::initialized`): by
/// `rvm_terminate`, while it has every other call held back, none running and no transaction
/// open, before the instance they belong to goes.
pub fn drop_kept() {
    each_used_slot(|_, s| {
        // Not open: a begin that marked its slot busy after the terminate flag was raised
        // steps back without touching `tx` (and finds RVM terminated), so a busy slot's
        // kept transaction goes too.
        if s.state.load(Ordering::Acquire) & OPEN == 0
            && s.initialized.swap(false, Ordering::Relaxed)
        {
            // SAFETY: the slot is not open and no call that could touch `tx` runs (the
            // caller's contract: every call that passed the terminate flag has finished, and
            // a begin held back by it never reaches `tx` again); `initialized` said it holds
            // a transaction, and is now clear, so it is dropped once.
            unsafe { (*s.tx.get()).assume_init_drop() };
        }
    });
}

/// Whether a call holds a tid slot now (it may be using the instance): a slot being begun or
/// ended, a lock word held, or a call on the fast path. Used by `rvm_terminate` after raising
/// its flag; runs the heavy fence first where fences exist (the fast paths use light ones).
pub fn any_busy() -> bool {
    if bias::fences_available() && !bias::heavy_fence() {
        return true; // cannot see fast-path calls: assume one
    }
    let mut busy = false;
    each_used_slot(|_, s| {
        if s.state.load(Ordering::SeqCst) & BUSY != 0 || s.lock.load(Ordering::SeqCst) & LOCKED != 0
        {
            busy = true;
        }
    });
    busy || bias::any_busy()
}

/// What a call needs of a tid record: the registry id and the uname.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TidKey {
    /// The registry id (the record's `tid` field, a number).
    pub id: u64,
    /// The uname (`tv_sec`, `tv_usec`).
    pub uname: (i64, i64),
}

/// Read the caller's tid record: `RVM_ETID` for NULL or a record without the tid id.
///
/// Field by field, each as wide as `write_tid` (or a C caller) wrote it, so each load is
/// served straight from the store that wrote it (one wide copy of the record would stall on
/// the narrower stores just made by the previous call).
///
/// # Safety
/// A non-null `tid` must point to readable memory of `rvm_tid_t`'s size.
#[inline]
pub unsafe fn read_tid(tid: *const RvmTid) -> Result<TidKey, RvmReturn> {
    if tid.is_null() {
        return Err(RVM_ETID);
    }
    // SAFETY: the caller guarantees a readable record; it may be unaligned, so each field is
    // read unaligned through a raw place (no reference to it is made).
    let (struct_id, id, sec, usec) = unsafe {
        (
            std::ptr::addr_of!((*tid).struct_id).read_unaligned(),
            std::ptr::addr_of!((*tid).tid).read_unaligned() as u64,
            std::ptr::addr_of!((*tid).uname.tv_sec).read_unaligned(),
            std::ptr::addr_of!((*tid).uname.tv_usec).read_unaligned(),
        )
    };
    if struct_id != RVM_TID_ID {
        return Err(RVM_ETID);
    }
    Ok(TidKey {
        id,
        uname: (sec, usec),
    })
}

/// Write a begun transaction's id and uname into the caller's record (and clear `reserved`),
/// leaving its other fields as they are.
///
/// # Safety
/// `tid` must point to writable memory of `rvm_tid_t`'s size (any alignment).
#[inline]
pub unsafe fn write_tid(tid: *mut RvmTid, id: u64, uname: timeval) {
    // SAFETY: the caller guarantees a writable record; fields are written unaligned through
    // raw places.
    unsafe {
        std::ptr::addr_of_mut!((*tid).uname.tv_sec).write_unaligned(uname.tv_sec);
        std::ptr::addr_of_mut!((*tid).uname.tv_usec).write_unaligned(uname.tv_usec);
        std::ptr::addr_of_mut!((*tid).tid).write_unaligned(id as *mut libc::c_void);
        std::ptr::addr_of_mut!((*tid).reserved).write_unaligned(0);
    }
}

#[cfg(test)]
mod tests;
