//! The data lock of a heap: a per-transaction lock for the *contents* of blocks, taken by
//! the typed layer ([`crate::typed`] containers, [`crate::store::Store`]) and by
//! [`Heap::set`](crate::rds::Heap::set) / [`Heap::free_ptr`](crate::rds::Heap::free_ptr),
//! never by `malloc`, `free` or the C interface.
//!
//! Why the typed layer keeps a lock held for a whole transaction when the allocator does not:
//! a container's invariants span several blocks (a vector's header and its element array, a
//! map's buckets and chains), so another transaction must neither change them half way nor
//! read them half made; and a block written through a pointer must not be freed by another
//! transaction before the write commits or aborts (an abort would put its old bytes back over
//! the free block's list links). A transaction that takes the lock holds it until it has
//! committed or aborted ([`Transaction::attach`]); another thread's transaction waits, at
//! most the instance's `lock_timeout` ([`crate::Error::LockTimeout`]); another transaction of
//! the same thread would wait for itself, so it gets [`Error::Busy`] at once. Reads through
//! the typed layer outside a transaction wait the same way, so they never see another
//! transaction's half-made change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::rds::Error;
use crate::segment::Segment;
use crate::sync::lock;
use crate::tx::{BeginMode, Transaction};

/// One heap's data lock (shared by every handle of the heap).
pub(super) struct DataLock {
    /// The heap's segment: its `lock_timeout`, and whether it is still mapped.
    segment: Segment,
    /// The heap region, for messages.
    base: u64,
    length: u64,
    state: Mutex<Holder>,
    released: Condvar,
    /// Whether `state.owner` is set (stored under the `state` mutex): lets a read that finds
    /// the lock free go on without taking the mutex. Such a read is ordered as if it had taken
    /// the mutex just before the next owner did, which the mutex alone allows as well.
    held: AtomicBool,
}

#[derive(Default)]
struct Holder {
    owner: Option<Owner>,
    /// Threads waiting in `released.wait`: a release wakes them only if there are any.
    waiters: usize,
}

#[derive(Clone, Copy)]
struct Owner {
    transaction: u64,
    thread: ThreadId,
}

/// Attached to the owning transaction: releases the lock once it has ended or aborted.
struct Guard {
    lock: Arc<DataLock>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut h = lock(&self.lock.state);
        h.owner = None;
        self.lock.held.store(false, Ordering::Release);
        let waiters = h.waiters > 0;
        drop(h);
        if waiters {
            self.lock.released.notify_all();
        }
    }
}

impl DataLock {
    pub(super) fn new(segment: Segment, base: u64, length: u64) -> DataLock {
        DataLock {
            segment,
            base,
            length,
            state: Mutex::new(Holder::default()),
            released: Condvar::new(),
            held: AtomicBool::new(false),
        }
    }

    /// Make `tx` the holder until it ends (no-op if it holds the lock already).
    pub(super) fn acquire(self: &Arc<Self>, tx: &mut Transaction<'_>) -> Result<(), Error> {
        if tx.mode() != BeginMode::Restore {
            return Err(Error::InvalidArgument {
                parameter: "transaction",
                rule: "changes to typed data need a restore-mode transaction, so that an \
                       abort puts every block back exactly"
                    .into(),
            });
        }
        let mut started = None;
        let mut h = lock(&self.state);
        loop {
            match h.owner {
                Some(o) if o.transaction == tx.id() => return Ok(()),
                None => {
                    h.owner = Some(Owner {
                        transaction: tx.id(),
                        thread: std::thread::current().id(),
                    });
                    self.held.store(true, Ordering::Release);
                    tx.attach(Box::new(Guard { lock: self.clone() }));
                    return Ok(());
                }
                Some(o) if o.thread == std::thread::current().id() => {
                    return Err(Error::Busy {
                        holder: o.transaction,
                        requester: tx.id(),
                    })
                }
                Some(o) => h = self.wait(h, o, &mut started)?,
            }
        }
    }

    /// Wait until no other thread's transaction holds the lock (a read outside a
    /// transaction; the calling thread's own transactions do not make it wait). Inlined: every
    /// typed read asks, and nearly always finds the lock free.
    #[inline]
    pub(super) fn wait_readable(&self) -> Result<(), Error> {
        if !self.held.load(Ordering::Acquire) {
            return Ok(());
        }
        self.wait_readable_held()
    }

    /// [`DataLock::wait_readable`] when the lock looked held.
    #[cold]
    #[inline(never)]
    fn wait_readable_held(&self) -> Result<(), Error> {
        let mut started = None;
        let mut h = lock(&self.state);
        loop {
            match h.owner {
                // The common case, nobody holds it, asks for neither the time nor the thread.
                None => return Ok(()),
                Some(o) if o.thread != std::thread::current().id() => {
                    h = self.wait(h, o, &mut started)?
                }
                Some(_) => return Ok(()),
            }
        }
    }

    /// Wait for a release (or a spurious wake-up). The whole wait since `started` (set at the
    /// first wait of a call: a call that never waits never reads the clock) is bounded
    /// by the instance's `lock_timeout`: a transaction leaked with `mem::forget` holds the
    /// lock for ever, and waiting for it must end in an error. A heap whose segment was
    /// unmapped (or whose instance was closed) answers `NotMapped`.
    fn wait<'g>(
        &'g self,
        mut h: MutexGuard<'g, Holder>,
        owner: Owner,
        started: &mut Option<Instant>,
    ) -> Result<MutexGuard<'g, Holder>, Error> {
        /// Waits are cut into slices this long, to notice an unmap or close.
        const SLICE: Duration = Duration::from_millis(50);
        if !self.segment.is_mapped() {
            return Err(Error::Rvm(crate::Error::NotMapped {
                address: self.base,
                length: self.length,
            }));
        }
        let limit = self.segment.inner.lock_timeout;
        let waited = started.get_or_insert_with(Instant::now).elapsed();
        if waited >= limit {
            return Err(Error::Rvm(crate::Error::LockTimeout {
                what: format!("data of the heap at {:#x}", self.base),
                holder: owner.transaction,
                waited_ms: waited.as_millis() as u64,
            }));
        }
        h.waiters += 1;
        let (mut h, _) = self
            .released
            .wait_timeout(h, (limit - waited).min(SLICE))
            .unwrap_or_else(|e| e.into_inner());
        h.waiters -= 1;
        Ok(h)
    }
}
