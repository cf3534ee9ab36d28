//! Transactions: declare ranges, change memory, commit or abort.
//!
//! New values are captured at commit from the declared ranges (after coalescing overlapping
//! and adjacent ones) into the commit queue; they are never read from live memory later, so a
//! write made after commit by another transaction is never logged as part of this one
//! (spec K11). In restore mode the old values are saved at `set_range` and written back in
//! reverse order of declaration on abort, which is exact even for overlapping ranges.
//!
//! Other threads may write the same mapped bytes at any time (classic semantics), so every
//! access to them (saving old values, writing, capturing at commit, restoring) is a
//! race-defined copy through `crate::racy`, never a reference. With isolation
//! (`Options::isolation`) `set_range` also locks the bytes until end or abort
//! (`crate::range_lock`).
//!
//! Libraries built on transactions (the RDS heap) register a [`TxHook`] to act at the commit
//! (inside `end`, before the record is built, holding their own lock until the record is
//! queued) and after an abort (once the old values are back). A transaction without hooks
//! pays one test for them at `end` and one at drop.

use std::sync::atomic::Ordering;

use bytemuck::NoUninit;

use crate::error::{Error, Result};
use crate::format::log::{
    transaction_record_size, RangeHeader, TransactionEncoder, RECORD_MIN_SIZE, TX_FLAG_FLUSH,
    TX_FLAG_RESTORE,
};
use crate::instance::{CommitCounts, Inner, Queue, Rvm};
use crate::racy;
use crate::sync::lock;

mod own_record;
mod region;
#[cfg(test)]
mod survey_tests;
mod written;
pub(crate) use own_record::queue_own_record;
use region::Region;
pub(crate) use region::{RegionHandle, RegionPin};

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginMode {
    /// Old values are saved, so [`Transaction::abort`] restores memory exactly.
    Restore,
    /// No old values are saved: cheaper, but abort leaves memory as modified.
    NoRestore,
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Durable when `end` returns (the log is synced; concurrent flushes share one sync).
    Flush,
    /// Queued in memory; durable after the next flush. After a crash the log holds a prefix,
    /// in commit order, of the no_flush commits.
    NoFlush,
}

/// Work a library layered on transactions does when a transaction commits or aborts (the RDS
/// heap performs its pending frees at commit, and frees an aborted transaction's allocations).
///
/// At `end`, the hooks run nested in ascending [`TxHook::order`] (a fixed lock order, so two
/// committing transactions never wait for each other's hooks): each gets the transaction and a
/// `queue` continuation that runs the inner hooks and then builds and queues the record. A
/// hook may change memory through the transaction before it calls `queue`, and may hold a
/// lock of its own until `queue` returns, so its changes are logged in the order it made
/// them. If `queue` fails, the transaction has been rolled back; the hook then undoes its own
/// bookkeeping as for an abort. A hook that fails before calling `queue` must roll the
/// transaction back itself ([`Transaction::fail`]) and return the error; hooks it never
/// reached are then given [`TxHook::abort`].
///
/// After an abort (explicit, by drop, or a refused `end`), each hook's [`TxHook::abort`] runs
/// once the transaction's old values are back.
pub(crate) trait TxHook: Send {
    /// Lock-order key: hooks run nested from the smallest key outwards in.
    fn order(&self) -> usize;

    /// Commit: see the trait's documentation.
    fn commit(
        self: Box<Self>,
        tx: &mut Transaction<'_>,
        queue: &mut dyn FnMut(&mut Transaction<'_>) -> Result<Queued>,
    ) -> Result<Queued>;

    /// The transaction aborted (its old values are back).
    fn abort(self: Box<Self>, rvm: &Rvm);
}

/// A record queued by a commit: what remains is to wait for its flush, if it needs one.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Queued {
    seq: u64,
    flush: bool,
}

impl Queued {
    /// Wait until the record is durable if its commit mode (or a full queue) asks for it.
    /// Call it with no lock held: it may lead a flush.
    #[inline]
    pub(crate) fn wait(self, rvm: &Rvm) -> Result<()> {
        if self.flush {
            rvm.inner.flush_until(self.seq)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Range {
    address: usize,
    length: usize,
    region_start: usize,
    slot: u32,
    segment_offset: u64,
}

/// A transaction on an [`Rvm`]. Dropping it without `end` aborts it.
///
/// Declare each range before changing it ([`Transaction::set_range`], or the writing calls
/// that declare for you: [`Transaction::write`], [`Transaction::modify_bytes`],
/// [`Transaction::fill`]); [`Transaction::end`] commits, [`Transaction::abort`] (or drop)
/// gives a restore-mode transaction's bytes their old values back. A caller that keeps the
/// transaction in a place of its own ends it there with [`Transaction::end_in_place`] or
/// [`Transaction::abort_in_place`] instead of moving it out.
///
/// ```
/// use rvm::{BeginMode, CommitMode};
/// # use rvm::segment::{self, CreateOptions, RegionSpec};
/// # use rvm::{MapOptions, Options, Rvm};
/// # fn main() -> rvm::Result<()> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-tx-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let (log, data) = (dir.join("log"), dir.join("data"));
/// # Rvm::create_log(&log, 1 << 20)?;
/// # let region = RegionSpec { length: 64 << 10, address: 0x2180_0000_0000 };
/// # let header = segment::layout(4096 + region.length, &[region])?;
/// # drop(segment::create(&data, &header, CreateOptions::default())?);
/// # let rvm = Rvm::open(&log, Options::default())?;
/// # // SAFETY: the data file is in this example's own temporary directory; nothing shortens it.
/// # let seg = unsafe { rvm.map(&data, MapOptions::default()) }?;
/// // `rvm` is an open `Rvm`, `seg` a segment mapped by it.
/// let base = seg.regions()[0].address;
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// tx.write(base, &7u64)?;
/// tx.write(base + 8, &[1u32, 2])?;
/// assert_eq!(tx.read::<[u32; 2]>(base + 8)?, [1, 2]);
/// tx.end(CommitMode::Flush)?;
///
/// let mut tx = rvm.begin(BeginMode::Restore)?;
/// tx.write(base, &1000u64)?;
/// tx.fill(base + 8, 8, 0xff)?;
/// assert_eq!(rvm.read::<u64>(base)?, 1000); // changed in place, visible at once
/// tx.abort()?; // old values restored
/// assert_eq!(rvm.read::<u64>(base)?, 7);
/// assert_eq!(rvm.read::<[u32; 2]>(base + 8)?, [1, 2]);
/// # rvm.close()?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub struct Transaction<'a> {
    rvm: &'a Rvm,
    mode: BeginMode,
    /// The declared ranges and the other growing state, reused from the thread's previous
    /// transaction (a box: beginning and ending move one pointer, not five vectors).
    bufs: std::mem::ManuallyDrop<Box<Spare>>,
    /// Guards released after the transaction ends or aborts (see [`Transaction::attach`]).
    attachments: Vec<Box<dyn Send + 'a>>,
    /// The first attachment (most transactions have at most one): no vector needed.
    attachment: Option<Box<dyn Send + 'a>>,
    /// Hooks run at commit and after abort (see [`TxHook`]); none for most transactions.
    /// The first is kept apart in `hook` (most transactions with hooks have one: no vector
    /// to allocate), the others here (`None` rather than an empty vector: dropping it then
    /// costs one test). `None` whenever `hook` is.
    more_hooks: Option<Vec<Box<dyn TxHook>>>,
    /// The first hook (see `more_hooks`).
    hook: Option<Box<dyn TxHook>>,
    id: std::cell::Cell<u64>,
    /// See [`Transaction::number`].
    number: u64,
    /// Isolation: this transaction holds range locks (released at end or abort).
    holds_locks: bool,
    finished: bool,
}

/// The vectors of a transaction, kept per thread for the next one when it finishes: a
/// commit then allocates nothing in the common case. Two sets are kept, because a heap call
/// runs a transaction of the heap's own while the caller's is open.
#[derive(Default)]
struct Spare {
    ranges: Vec<Range>,
    /// Restore mode: (address, length, offset in `undo`) per `set_range`, in order.
    undo_index: Vec<(usize, usize, usize)>,
    undo: Vec<u8>,
    /// The regions this transaction pinned from the region table (each once), released at
    /// end or abort.
    pins: Vec<RegionHandle>,
    /// The region the thread's previous transaction used last, pinned by this one only if
    /// `recent_pinned` (the common one-region transaction pins it in place, no move).
    recent: Option<RegionHandle>,
    recent_pinned: bool,
    /// The region of the last range declared (pinned by this transaction).
    last_region: Option<Region>,
}

thread_local! {
    /// The thread's two spare sets (`Cell`s: taking and returning one moves a pointer).
    static SPARE: [std::cell::Cell<Option<Box<Spare>>>; 2] =
        const { [std::cell::Cell::new(None), std::cell::Cell::new(None)] };
}

/// A spare set of the thread, or a new one.
#[inline]
fn take_spare() -> Box<Spare> {
    SPARE
        .try_with(|slots| slots[0].take().or_else(|| slots[1].take()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Give a finished transaction's set back to the thread (emptied; dropped if its undo buffer
/// grew past [`SPARE_UNDO_BYTES_MAX`]).
#[inline]
fn return_spare(mut spare: Box<Spare>) {
    if !spare.empty() {
        return;
    }
    let _ = SPARE.try_with(|slots| {
        let rest = slots[0].replace(Some(spare));
        if rest.is_some() {
            slots[1].set(rest);
        }
    });
}

impl Spare {
    /// Empty the set for the next transaction. Whether it is worth keeping: false once the
    /// undo buffer grew past [`SPARE_UNDO_BYTES_MAX`].
    fn empty(&mut self) -> bool {
        self.ranges.clear();
        self.undo_index.clear();
        self.undo.clear();
        self.pins.clear();
        self.undo.capacity() <= SPARE_UNDO_BYTES_MAX
    }
}

/// The declared bytes of `ranges`, the size of their record ([`transaction_record_size`])
/// and whether they are in order and apart already (sorted by region, then address, with a
/// gap between neighbours: coalescing then has nothing to merge), in one walk.
#[inline(always)]
fn survey(ranges: &[Range]) -> (usize, u64, bool) {
    let (mut bytes, mut size, mut apart) = (0usize, transaction_record_size([]), true);
    let mut prev: Option<&Range> = None;
    for r in ranges {
        bytes = bytes.saturating_add(r.length);
        size = size.saturating_add(RangeHeader::encoded_size(r.length as u64));
        if let Some(p) = prev {
            apart &= p.region_start < r.region_start
                || (p.region_start == r.region_start
                    && p.address.saturating_add(p.length) < r.address);
        }
        prev = Some(r);
    }
    (bytes, size, apart)
}

/// Queue one transaction record under the queue lock: count the commit (by `mode`, and
/// `count` the rest, under the lock the commit takes anyway: no extra atomics), and encode
/// the record of `headers` (`size` bytes, [`transaction_record_size`] of their lengths; the
/// data of range `i` copied by `fill`) with `flags` and, for a flush, `TX_FLAG_FLUSH`.
/// Nothing is encoded for no ranges. Shared by [`Transaction`]'s commit and the records a
/// library queues without one ([`queue_own_record`]).
#[inline(always)]
fn queue_encoded(
    inner: &Inner,
    mode: CommitMode,
    flags: u16,
    size: u64,
    headers: impl ExactSizeIterator<Item = RangeHeader>,
    fill: impl FnMut(usize, &mut [u8]),
    count: impl FnOnce(&mut CommitCounts),
) -> Queued {
    let mut q = lock(&inner.queue);
    let c = &mut q.counts;
    match mode {
        CommitMode::Flush => c.flush_commits += 1,
        CommitMode::NoFlush => c.no_flush_commits += 1,
    }
    count(c);
    let (seq, over_limit) = if headers.len() == 0 {
        (q.queued_seq, false)
    } else {
        let flags = if mode == CommitMode::Flush {
            flags | TX_FLAG_FLUSH
        } else {
            flags
        };
        let seq = queue_ranges(inner, &mut q, flags, size, headers, fill);
        (seq, inner.queue_over_limit(&q))
    };
    drop(q);
    Queued {
        seq,
        flush: mode == CommitMode::Flush || over_limit,
    }
}

/// Encode a commit's ranges into the queue: into the open record of earlier commits when
/// coalescing allows (see [`crate::Options::coalesce_transactions`]), else as a record of its
/// own. Returns the commit's sequence number.
#[inline(always)]
fn queue_ranges(
    inner: &Inner,
    q: &mut Queue,
    flags: u16,
    size: u64,
    headers: impl ExactSizeIterator<Item = RangeHeader>,
    fill: impl FnMut(usize, &mut [u8]),
) -> u64 {
    if q.group_open {
        if let Some(&(start, len)) = q.records.last() {
            let grown = len as u64 + size.saturating_sub(RECORD_MIN_SIZE);
            if grown <= q.group_bytes_max as u64
                && TransactionEncoder::extendable(&q.buf, start, headers.len())
            {
                TransactionEncoder::extend(&mut q.buf, start, flags, size, headers, fill);
                if let Some(last) = q.records.last_mut() {
                    last.1 = grown as usize;
                }
                q.counts.transactions_coalesced += 1;
                return q.count_commit();
            }
        }
    }
    let start = TransactionEncoder::record_sized(&mut q.buf, flags, size, headers, fill);
    q.group_open = q.coalesce;
    inner.queued(q, start)
}

/// Spare buffers larger than this are dropped rather than kept.
const SPARE_UNDO_BYTES_MAX: usize = 1 << 20;

static NEXT_TRANSACTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("mode", &self.mode)
            .field("ranges", &self.bufs.ranges.len())
            .finish()
    }
}

impl Rvm {
    /// Begin a transaction. Never waits: range locks (with isolation) and heap ownership are
    /// taken later, by the calls that need them.
    ///
    /// # Errors
    /// [`Error::Failed`] when an earlier I/O failure left the instance unusable.
    #[inline]
    pub fn begin(&self, mode: BeginMode) -> Result<Transaction<'_>> {
        self.inner.check_failed()?;
        Ok(Transaction::new(self, mode))
    }

    /// [`Rvm::begin`], writing the transaction into `place` instead of returning it: a caller
    /// that keeps transactions in places of its own (the C interface's tid registry) saves a
    /// move, and then ends it there ([`Transaction::end_in_place`]). `place` is overwritten
    /// without dropping what it held; the caller drops the transaction it wrote (dropping an
    /// open one aborts it, as for [`Rvm::begin`]). Returns the transaction written.
    ///
    /// # Errors
    /// As for [`Rvm::begin`]; `place` is not written then.
    #[inline]
    pub fn begin_in<'t, 'p>(
        &'t self,
        mode: BeginMode,
        place: &'p mut std::mem::MaybeUninit<Transaction<'t>>,
    ) -> Result<&'p mut Transaction<'t>> {
        self.inner.check_failed()?;
        Ok(place.write(Transaction::new(self, mode)))
    }
}

impl<'a> Transaction<'a> {
    /// (Inlined: `Rvm::begin_in` then writes the fields straight into the caller's place.)
    #[inline]
    pub(crate) fn new(rvm: &'a Rvm, mode: BeginMode) -> Self {
        let number = rvm.inner.begun.fetch_add(1, Ordering::Relaxed);
        Transaction {
            rvm,
            mode,
            number,
            bufs: std::mem::ManuallyDrop::new(take_spare()),
            attachments: Vec::new(),
            attachment: None,
            hook: None,
            more_hooks: None,
            id: std::cell::Cell::new(0),
            holds_locks: false,
            finished: false,
        }
    }

    /// Begin a new transaction in `mode` in this finished one's place (after
    /// [`Transaction::end_in_place`] or [`Transaction::abort_in_place`], or a refused commit),
    /// reusing its buffers: the same as dropping it and calling [`Rvm::begin_in`] on the same
    /// instance, without giving the buffers back and taking them again. A transaction still
    /// open gets [`Error::TransactionOpen`] and is left as it is.
    #[inline]
    pub fn restart(&mut self, mode: BeginMode) -> Result<()> {
        if !self.finished {
            return Err(Error::TransactionOpen);
        }
        self.rvm.inner.check_failed()?;
        if self.hook.is_some() {
            // Left by a refused commit: `drop` would run them now.
            self.run_abort_hooks();
        }
        let bufs = &mut **self.bufs;
        if !bufs.empty() {
            bufs.undo = Vec::new();
        }
        self.number = self.rvm.inner.begun.fetch_add(1, Ordering::Relaxed);
        self.mode = mode;
        self.id.set(0);
        self.holds_locks = false;
        self.finished = false;
        Ok(())
    }

    /// This transaction's place in the order its instance began transactions: 0 for the
    /// first. Unique within the instance, and larger for a transaction begun after this one
    /// on any thread (the count every `begin` already makes, so asking costs nothing).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// A process-unique id for this transaction (assigned when first asked for).
    pub fn id(&self) -> u64 {
        if self.id.get() == 0 {
            self.id
                .set(NEXT_TRANSACTION_ID.fetch_add(1, Ordering::Relaxed));
        }
        self.id.get()
    }

    /// The instance this transaction belongs to.
    pub fn rvm(&self) -> &'a Rvm {
        self.rvm
    }

    /// Keep `guard` alive until this transaction has committed (its values captured) or
    /// aborted (its old values restored), then drop it. Libraries built on transactions use
    /// this to hold a lock for exactly the transaction's lifetime, e.g. the RDS heap keeps
    /// other transactions out of the allocator until an allocating transaction ends.
    /// A transaction that has already ended or aborted drops `guard` at once.
    pub fn attach(&mut self, guard: Box<dyn Send + 'a>) {
        if self.finished {
            return; // `guard` drops here
        }
        if self.attachment.is_none() {
            self.attachment = Some(guard);
        } else {
            self.attachments.push(guard);
        }
    }

    /// The mode this transaction was begun in.
    pub fn mode(&self) -> BeginMode {
        self.mode
    }

    /// Run `hook` at this transaction's commit and after its abort (see [`TxHook`]).
    pub(crate) fn add_hook(&mut self, hook: Box<dyn TxHook>) {
        if self.hook.is_none() {
            self.hook = Some(hook);
        } else {
            self.more_hooks.get_or_insert_with(Vec::new).push(hook);
        }
    }

    /// Roll back and count an abort, for a hook that fails at commit before the record is
    /// queued. The transaction is finished afterwards.
    pub(crate) fn fail(&mut self) {
        if !self.finished {
            self.count_abort();
            self.rollback();
        }
    }

    /// Declare that `[address, address+length)` will be modified. It must lie inside one
    /// mapped region. In restore mode call it *before* changing the bytes.
    ///
    /// With isolation (`Options::isolation`) the bytes are locked for this transaction until
    /// it ends or aborts: if another transaction holds any of them this call waits for it, at
    /// most the instance's `lock_timeout` ([`Error::LockTimeout`]), and fails at once with
    /// [`Error::Deadlock`] if that transaction is itself waiting for this one (or belongs to
    /// the calling thread). After such an error the transaction should be aborted.
    ///
    /// # Errors
    /// [`Error::NotMapped`] unless the range lies inside one mapped region; with isolation,
    /// [`Error::LockTimeout`] or [`Error::Deadlock`] as above; [`Error::TransactionEnded`]
    /// after [`Transaction::end_in_place`] or [`Transaction::abort_in_place`]. A failed call
    /// declares nothing and changes no memory.
    pub fn set_range(&mut self, address: usize, length: usize) -> Result<()> {
        // A finished transaction pins nothing: it must not touch memory any more.
        self.check_open()?;
        if length == 0 {
            return Ok(());
        }
        let region = self.region_locked(address, length)?;
        if self.mode == BeginMode::Restore {
            let at = self.bufs.undo.len();
            // SAFETY: the range lies in a mapped region, which cannot be unmapped while this
            // transaction pins it; other threads may write it, so it is copied, not borrowed.
            unsafe { racy::extend_from(&mut self.bufs.undo, address as *const u8, length) };
            self.bufs.undo_index.push((address, length, at));
        }
        self.push_range(address, length, region);
        Ok(())
    }

    /// The pinned region holding `[address, address+length)` (`length` > 0), pinned now if
    /// need be; with isolation the bytes are locked for this transaction first (see
    /// [`Transaction::set_range`]).
    #[inline(always)]
    fn region_locked(&mut self, address: usize, length: usize) -> Result<Region> {
        // Fast path: the region of the previous range. This transaction pins it, so it
        // cannot be unmapped and the cached description stays true.
        let cached = self.bufs.last_region.filter(|r| r.covers(address, length));
        let region = match cached {
            Some(r) => r,
            None => self.find_and_pin(address, length)?,
        };
        if let Some(locks) = &self.rvm.inner.locks {
            // Isolation: the bytes are this transaction's until it ends or aborts, and their
            // old values are saved only once no other transaction can change them.
            locks.acquire(self.id(), address, address + length)?;
            self.holds_locks = true;
        }
        Ok(region)
    }

    /// Record a declared range (inside `region`) for the commit.
    #[inline(always)]
    fn push_range(&mut self, address: usize, length: usize, region: Region) {
        self.bufs.ranges.push(Range {
            address,
            length,
            region_start: region.start,
            slot: region.slot,
            segment_offset: region.segment_offset + (address - region.start) as u64,
        });
    }

    /// Pin the mapped region holding `[address, address+length)` until this transaction
    /// ends, without declaring a range (a library that declares its ranges after writing,
    /// like the RDS heap, pins first so the memory stays mapped meanwhile).
    ///
    /// # Errors
    /// [`Error::TransactionEnded`] on a finished transaction (a pin taken then would never be
    /// given back); [`Error::NotMapped`] unless the bytes lie inside one mapped region.
    pub(crate) fn pin(&mut self, address: usize, length: usize) -> Result<()> {
        self.check_open()?;
        let pinned = self
            .bufs
            .last_region
            .is_some_and(|r| r.covers(address, length));
        if !pinned {
            self.find_and_pin(address, length)?;
        }
        Ok(())
    }

    /// Find the region holding the range and pin it for this transaction: the thread's
    /// recent region if it holds the range and is still mapped, else a region this
    /// transaction pinned already, else a lookup in the region table (under its lock, out of
    /// line).
    #[inline(always)]
    fn find_and_pin(&mut self, address: usize, length: usize) -> Result<Region> {
        let instance = self.rvm.inner.id;
        let bufs = &mut **self.bufs;
        let mut found = None;
        if let Some(recent) = bufs
            .recent
            .as_ref()
            .filter(|r| r.holds(instance, address, length))
        {
            // A pin again that succeeds proves the region is still mapped as described
            // (`RegionHandle`). One that fails drops the description: the region is gone for
            // good.
            if bufs.recent_pinned || recent.try_pin_again() {
                bufs.recent_pinned = true;
                found = Some(recent.region);
            } else {
                bufs.recent = None;
            }
        }
        let found = match found {
            Some(r) => r,
            None => match bufs.pins.iter().find(|p| p.region.covers(address, length)) {
                Some(p) => p.region,
                None => self.pin_from_table(address, length)?,
            },
        };
        self.bufs.last_region = Some(found);
        Ok(found)
    }

    /// Pin a region this transaction has not pinned yet, found in the region table.
    #[cold]
    fn pin_from_table(&mut self, address: usize, length: usize) -> Result<Region> {
        let handle = RegionHandle::pin(&self.rvm.inner, address, length)?;
        let found = handle.region;
        self.bufs.pins.push(handle);
        Ok(found)
    }

    /// `set_range` followed by copying `bytes` to `address`.
    ///
    /// # Errors
    /// As for [`Transaction::set_range`]; nothing is written then.
    pub fn modify_bytes(&mut self, address: usize, bytes: &[u8]) -> Result<()> {
        self.set_range(address, bytes.len())?;
        // SAFETY: set_range checked that the range is mapped and pinned it; `bytes` is a Rust
        // slice, so it cannot lie in mapped memory (no reference to mapped memory exists).
        unsafe { racy::store(address as *mut u8, bytes) };
        Ok(())
    }

    /// Write a plain value at `address` (any alignment) inside this transaction.
    ///
    /// # Errors
    /// As for [`Transaction::set_range`]; nothing is written then.
    pub fn write<T: NoUninit>(&mut self, address: usize, value: &T) -> Result<()> {
        self.modify_bytes(address, bytemuck::bytes_of(value))
    }

    /// Fill `[address, address+length)` with `byte` inside this transaction.
    ///
    /// # Errors
    /// As for [`Transaction::set_range`]; nothing is written then.
    pub fn fill(&mut self, address: usize, length: usize, byte: u8) -> Result<()> {
        self.set_range(address, length)?;
        // SAFETY: set_range checked that the range is mapped and pinned it.
        unsafe { racy::fill(address as *mut u8, length, byte) };
        Ok(())
    }

    /// Read a plain value from mapped memory (as [`Rvm::read`]: this transaction's own
    /// changes are visible).
    ///
    /// # Errors
    /// As for [`Rvm::read_bytes`].
    pub fn read<T: bytemuck::Pod>(&self, address: usize) -> Result<T> {
        self.rvm.read(address)
    }

    /// Copy mapped memory into `buf` (as [`Rvm::read_bytes`]).
    ///
    /// # Errors
    /// As for [`Rvm::read_bytes`].
    pub fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<()> {
        self.rvm.read_bytes(address, buf)
    }

    /// Merge the declared ranges in place: overlapping or adjacent ranges of one region
    /// become one. (Undo entries keep the declaration order for abort.) For ranges that are
    /// not all in order and apart already ([`survey`] tells).
    fn coalesce(&mut self) {
        self.bufs
            .ranges
            .sort_unstable_by_key(|r| (r.region_start, r.address));
        let mut out = 0;
        for i in 0..self.bufs.ranges.len() {
            let r = self.bufs.ranges[i];
            if out > 0 {
                let last = &mut self.bufs.ranges[out - 1];
                if last.region_start == r.region_start && r.address <= last.address + last.length {
                    let end = (last.address + last.length).max(r.address + r.length);
                    last.length = end - last.address;
                    continue;
                }
            }
            self.bufs.ranges[out] = r;
            out += 1;
        }
        self.bufs.ranges.truncate(out);
    }

    /// Commit. With [`CommitMode::Flush`] the transaction is durable when this returns.
    /// A transaction too large for the log is refused with [`Error::TooBig`] before anything
    /// is written, and aborted (memory restored in restore mode).
    ///
    /// With `Flush` this waits until the log is synced: concurrent flush commits share one
    /// sync (group commit), and a flush that finds the log full truncates first. With
    /// `NoFlush` it returns once the new values are queued, unless the queue then holds more
    /// than [`Options::no_flush_queue_bytes_max`](crate::Options::no_flush_queue_bytes_max)
    /// bytes, when it flushes like `Flush`.
    ///
    /// If the transaction freed RDS heap blocks, they are freed now, inside this record (the
    /// heap's lock is held until the record is queued).
    ///
    /// # Errors
    /// [`Error::TooBig`] as above; [`Error::Failed`] when an earlier failure left the instance
    /// unusable (the transaction is aborted); [`Error::Heap`] when a block it freed cannot be
    /// freed now (heap damage found since; the transaction is aborted); an I/O error naming the log when the flush
    /// fails (the instance is then unusable: reopen the log, whose recovery decides whether
    /// this transaction committed).
    #[inline]
    pub fn end(mut self, mode: CommitMode) -> Result<()> {
        self.end_in_place(mode)
    }

    /// [`Transaction::end`] through `&mut self`, for a caller that keeps the transaction in a
    /// place of its own (the C interface keeps it in its tid registry) and would otherwise
    /// move it out to end it. Afterwards the transaction is finished, also when the commit is
    /// refused: every further call that would declare, write, end or abort returns
    /// [`Error::TransactionEnded`] and changes nothing, and dropping it neither aborts nor
    /// restores anything (it only gives its buffers back for the thread's next transaction).
    ///
    /// # Errors
    /// As for [`Transaction::end`]; [`Error::TransactionEnded`] if the transaction has already
    /// ended or aborted.
    pub fn end_in_place(&mut self, mode: CommitMode) -> Result<()> {
        self.check_open()?;
        if let Some(hook) = self.hook.take() {
            return self.end_with_hooks(hook, mode);
        }
        let queued = self.queue_record(mode)?;
        queued.wait(self.rvm)
    }

    /// Whether the transaction has ended or aborted (by [`Transaction::end_in_place`],
    /// [`Transaction::abort_in_place`], or a refused commit).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// `Err(Error::TransactionEnded)` once the transaction has ended or aborted.
    #[inline]
    fn check_open(&self) -> Result<()> {
        if self.finished {
            return Err(Error::TransactionEnded);
        }
        Ok(())
    }

    /// [`Transaction::end`] of a transaction with hooks (kept out of the common path).
    #[cold]
    #[inline(never)]
    fn end_with_hooks(&mut self, first: Box<dyn TxHook>, mode: CommitMode) -> Result<()> {
        let queued = match self.more_hooks.take() {
            None => first.commit(self, &mut |tx| tx.queue_record(mode))?,
            Some(mut hooks) => {
                hooks.push(first);
                // Popped from the end: the smallest key runs outermost.
                hooks.sort_by_key(|h| std::cmp::Reverse(h.order()));
                self.commit_with_hooks(hooks, mode)?
            }
        };
        queued.wait(self.rvm)
    }

    /// Commit without waiting for the flush: the caller waits with [`Queued::wait`] once it
    /// has released its locks (the RDS heap commits its own transactions this way, under the
    /// heap's lock, so their records are queued in the order the changes were made).
    pub(crate) fn end_queued(mut self, mode: CommitMode) -> Result<Queued> {
        debug_assert!(self.hook.is_none(), "end_queued skips hooks");
        self.queue_record(mode)
    }

    /// Run the last hook of `hooks` around the inner ones and the queueing of the record.
    fn commit_with_hooks(
        &mut self,
        mut hooks: Vec<Box<dyn TxHook>>,
        mode: CommitMode,
    ) -> Result<Queued> {
        let Some(hook) = hooks.pop() else {
            return self.queue_record(mode);
        };
        let mut rest = Some(hooks);
        let result = hook.commit(self, &mut |tx| {
            tx.commit_with_hooks(rest.take().unwrap_or_default(), mode)
        });
        if let Some(unreached) = rest {
            // The hook failed (and rolled the transaction back) before calling `queue`.
            for h in unreached {
                h.abort(self.rvm);
            }
        }
        result
    }

    /// Coalesce, check and queue the record; release the transaction. On a refusal the
    /// transaction is rolled back (hooks are the caller's). Inlined into `end`: the common
    /// path is then one call, as before hooks existed.
    #[inline(always)]
    fn queue_record(&mut self, mode: CommitMode) -> Result<Queued> {
        let rvm = self.rvm;
        let inner = &rvm.inner;
        // The bytes declared, the record's size and whether coalescing has anything to do,
        // in one walk; again after coalescing only if it merged something (the same ranges,
        // reordered at most, otherwise).
        let declared_count = self.bufs.ranges.len();
        let (declared, mut size, apart) = survey(&self.bufs.ranges);
        let mut merged = declared;
        if !apart {
            self.coalesce();
            if self.bufs.ranges.len() != declared_count {
                (merged, size, _) = survey(&self.bufs.ranges);
            }
        }
        if !self.bufs.ranges.is_empty() && size > inner.record_bytes_max {
            self.count_abort();
            self.rollback();
            return Err(Error::TooBig {
                size,
                max: inner.record_bytes_max,
            });
        }
        if let Err(e) = inner.check_failed() {
            self.count_abort();
            self.rollback();
            return Err(e);
        }
        let ranges = &self.bufs.ranges;
        let restore = self.mode == BeginMode::Restore;
        let headers = ranges.iter().map(|r| RangeHeader {
            segment: r.slot,
            offset: r.segment_offset,
            length: r.length as u64,
            address: r.address as u64,
        });
        let fill = |i: usize, dst: &mut [u8]| {
            let r = &ranges[i];
            let n = dst.len().min(r.length);
            // SAFETY: `[r.address, r.address + n)` lies in the range checked at set_range,
            // whose region is pinned until `release` below, so it is mapped for the whole
            // copy; other threads may write it, so it is copied, not borrowed.
            unsafe { racy::load(r.address as *const u8, &mut dst[..n]) }
        };
        let flags = if restore { TX_FLAG_RESTORE } else { 0 };
        let queued = queue_encoded(inner, mode, flags, size, headers, fill, |c| {
            if restore {
                c.restore_transactions += 1;
            } else {
                c.no_restore_transactions += 1;
            }
            c.ranges_coalesced += (declared_count - ranges.len()) as u64;
            c.bytes_saved_by_coalescing += declared.saturating_sub(merged) as u64;
        });
        self.release();
        Ok(queued)
    }

    /// Abort: in restore mode every declared byte gets its old value back. Then the RDS heaps
    /// this transaction allocated from free its blocks again (each a short heap call, which
    /// may wait for another heap call in progress); never waits for another transaction.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for a failure to report.
    pub fn abort(mut self) -> Result<()> {
        self.abort_in_place()
    }

    /// [`Transaction::abort`] through `&mut self` (see [`Transaction::end_in_place`]): the
    /// transaction is finished afterwards.
    ///
    /// # Errors
    /// [`Error::TransactionEnded`] if the transaction has already ended or aborted (nothing is
    /// restored then).
    pub fn abort_in_place(&mut self) -> Result<()> {
        self.check_open()?;
        self.count_abort();
        self.rollback();
        self.run_abort_hooks();
        Ok(())
    }

    /// After a rollback: give every hook its abort.
    fn run_abort_hooks(&mut self) {
        if let Some(hook) = self.hook.take() {
            hook.abort(self.rvm);
        }
        for hook in self.more_hooks.take().unwrap_or_default() {
            hook.abort(self.rvm);
        }
    }

    fn count_abort(&self) {
        let stats = &self.rvm.inner.stats;
        // Release: pairs with `query`'s count of active transactions.
        stats.aborts.fetch_add(1, Ordering::Release);
        match self.mode {
            BeginMode::Restore => stats.restore_transactions.fetch_add(1, Ordering::Relaxed),
            BeginMode::NoRestore => stats
                .no_restore_transactions
                .fetch_add(1, Ordering::Relaxed),
        };
    }

    fn rollback(&mut self) {
        for &(address, length, at) in self.bufs.undo_index.iter().rev() {
            // SAFETY: the range was mapped at set_range and stays pinned until release.
            unsafe { racy::store(address as *mut u8, &self.bufs.undo[at..at + length]) };
        }
        self.release();
    }

    fn release(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.holds_locks {
            if let Some(locks) = &self.rvm.inner.locks {
                locks.release(self.id());
            }
        }
        let bufs = &mut **self.bufs;
        bufs.last_region = None;
        if bufs.recent_pinned {
            bufs.recent_pinned = false;
            if let Some(recent) = &bufs.recent {
                // SAFETY: `recent_pinned` says this transaction pinned its recent region once
                // and has not given it back (cleared just above, under `finished`).
                unsafe { recent.unpin() };
            }
        }
        for p in &bufs.pins {
            // SAFETY: each handle in `pins` was pinned once by this transaction
            // (`find_and_pin`); `release` runs once (`finished`), and the list is cleared below.
            unsafe { p.unpin() };
        }
        // The last region pinned from the table becomes the thread's recent one.
        if let Some(last) = bufs.pins.pop() {
            bufs.recent = Some(last);
        }
        bufs.pins.clear();
        // Last: after values are captured or restored, release what callers attached.
        while let Some(guard) = self.attachments.pop() {
            drop(guard);
        }
        drop(self.attachment.take());
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.count_abort();
            self.rollback();
        }
        if self.hook.is_some() {
            // Aborted here, or refused at `end` (whose hooks were taken before).
            self.run_abort_hooks();
        }
        // SAFETY: `drop` runs once and nothing uses `bufs` after this line.
        let bufs = unsafe { std::mem::ManuallyDrop::take(&mut self.bufs) };
        return_spare(bufs);
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Rvm>();
}
