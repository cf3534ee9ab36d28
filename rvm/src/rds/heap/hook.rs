//! The heap's hook on the transactions that allocate or free in it (see the module
//! documentation of `heap.rs`): registering it, the frees made at commit, and the abort that
//! frees a transaction's allocations again.

use std::sync::Arc;

use crate::instance::Rvm;
use crate::tx::{Queued, Transaction, TxHook};

use super::{Heap, State};

impl Heap {
    /// Attach the heap's hook to `tx`, whose books were just opened (by its first malloc or
    /// free here: `Pending::allocated` or `Pending::freed` said so).
    pub(super) fn add_hook(&self, st: &mut State, tx: &mut Transaction<'_>) {
        let id = tx.id();
        let hook = match st.spare_hooks.pop() {
            Some(mut hook) => {
                hook.heap = Some(self.clone());
                hook.transaction = id;
                hook
            }
            None => Box::new(HeapHook {
                heap: Some(self.clone()),
                transaction: id,
            }),
        };
        tx.add_hook(hook);
    }

    /// `transaction` aborted: forget its frees, and free its allocations still pending for
    /// it in a transaction of the heap's own. If that fails (the instance failed, or damage),
    /// the blocks stay allocated (leaked): the heap stays consistent either way.
    pub(super) fn aborted(&self, st: &mut State, rvm: &Rvm, transaction: u64) -> Option<Queued> {
        let free_again = st.pending.aborted(transaction);
        if free_again.is_empty() {
            return None;
        }
        let freed = self.internal(st, rvm, |c| {
            for a in &free_again {
                // A block that is no longer allocated (the heap was initialised again) is
                // not this transaction's any more.
                if c.r.allocated_block(*a).is_ok() {
                    c.free(*a)?;
                }
            }
            Ok(())
        });
        freed.ok().map(|((), queued)| queued)
    }
}

/// The heap's hook on a transaction that allocated or freed here (see the module
/// documentation): performs its frees at commit and frees its allocations after an abort.
/// Once done, its box is kept in the heap's state for the next transaction's hook.
pub(super) struct HeapHook {
    /// The heap (`None` while the box is kept spare, so the state holds no reference to
    /// itself).
    heap: Option<Heap>,
    transaction: u64,
}

/// Spare hook boxes kept at most.
const SPARE_HOOKS_MAX: usize = 64;

impl HeapHook {
    /// Keep this hook's box for the next transaction (its heap taken already).
    #[inline]
    fn recycle(self: Box<Self>, st: &mut State) {
        if st.spare_hooks.len() < SPARE_HOOKS_MAX {
            st.spare_hooks.push(self);
        }
    }
}

impl TxHook for HeapHook {
    fn order(&self) -> usize {
        self.heap
            .as_ref()
            .map_or(0, |h| Arc::as_ptr(&h.shared) as usize)
    }

    fn commit(
        mut self: Box<Self>,
        tx: &mut Transaction<'_>,
        queue: &mut dyn FnMut(&mut Transaction<'_>) -> crate::Result<Queued>,
    ) -> crate::Result<Queued> {
        let Some(heap) = self.heap.take() else {
            return queue(tx);
        };
        let heap = &heap;
        let rvm = tx.rvm();
        let mut st = heap.lock_state();
        let mut frees = std::mem::take(&mut st.frees);
        st.pending.frees_of(self.transaction, &mut frees);
        if !frees.is_empty() {
            // A lone free checked at the call, with no heap call since, is made by that check's
            // plan once every word the check read is found unchanged (`Ctx::free_planned`).
            let checked = st.checked_free.take().filter(|_| frees.len() == 1);
            // Old values are saved even in no-restore mode (`write_op`): a record refused
            // after this must put the heap back, under the lock, before anybody else sees it.
            let freed = heap.write_op(&mut st, tx, |c| {
                for a in &frees {
                    c.free_planned(*a, checked.as_ref())?;
                }
                Ok(())
            });
            if let Err(e) = freed {
                tx.fail();
                let compensation = heap.aborted(&mut st, rvm, self.transaction);
                st.frees = frees;
                self.recycle(&mut st);
                drop(st);
                wait_quietly(compensation, rvm);
                return Err(e.into());
            }
        }
        // The lock is held until the record is queued: the frees are logged in their place.
        let queued = queue(tx);
        let mut compensation = None;
        match &queued {
            Ok(_) => st.pending.committed(self.transaction, &frees),
            Err(_) => {
                // Refused, and rolled back: the frees done above were put back.
                if !frees.is_empty() {
                    st.valid = false;
                }
                compensation = heap.aborted(&mut st, rvm, self.transaction);
            }
        }
        st.frees = frees;
        self.recycle(&mut st);
        drop(st);
        wait_quietly(compensation, rvm);
        queued
    }

    fn abort(mut self: Box<Self>, rvm: &Rvm) {
        let Some(heap) = self.heap.take() else {
            return;
        };
        let mut st = heap.lock_state();
        let compensation = heap.aborted(&mut st, rvm, self.transaction);
        self.recycle(&mut st);
        drop(st);
        wait_quietly(compensation, rvm);
    }
}

/// Wait for an abort's freeing commit if it must be flushed. An abort reports nothing: if the
/// flush fails the instance is failed, and the blocks are at worst leaked.
fn wait_quietly(queued: Option<Queued>, rvm: &Rvm) {
    if let Some(q) = queued {
        let _ = q.wait(rvm);
    }
}
