//! Intention lists (Coda's `intentionList_t`): frees recorded now and made later, by
//! [`Heap::do_free`], through the same path as [`Heap::free`].

use std::collections::HashSet;

use crate::rds::Error;
use crate::tx::Transaction;

use super::Heap;

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

impl Heap {
    /// Check that `address` could be freed now and record it in `intentions` instead of
    /// freeing it; [`Heap::do_free`] frees the recorded blocks later. Recording the same
    /// address twice is a double free.
    ///
    /// # Errors
    /// [`Error::DoubleFree`] for an address already recorded or already free;
    /// [`Error::FreePending`] for a block an open transaction frees;
    /// [`Error::NotFromHeap`] for an address `malloc` did not return; [`Error::Corrupt`];
    /// `NotMapped` (in [`Error::Rvm`]).
    pub fn fake_free(&self, intentions: &mut IntentionList, address: usize) -> Result<(), Error> {
        if intentions.members.contains(&address) {
            return Err(Error::DoubleFree {
                address: address as u64,
            });
        }
        let mut st = self.lock_state();
        if let Some(transaction) = st.pending.freer_of(address as u64) {
            return Err(Error::FreePending {
                address: address as u64,
                transaction,
            });
        }
        self.read_op_locked(&mut st, |r| r.allocated_block(address as u64).map(|_| ()))?;
        drop(st);
        intentions.members.insert(address);
        intentions.addresses.push(address);
        Ok(())
    }

    /// Free every block recorded in `intentions` when `tx` commits, like [`Heap::free`].
    /// Coda runs this in its own transaction after the one that recorded the frees has
    /// committed. Every address is checked before any is recorded, so a stale or doubled
    /// intention frees nothing.
    ///
    /// # Errors
    /// As for [`Heap::free`], for the first address that cannot be freed.
    pub fn do_free(
        &self,
        tx: &mut Transaction<'_>,
        intentions: IntentionList,
    ) -> Result<(), Error> {
        let mut st = self.lock_state();
        // No address is recorded twice ([`Heap::fake_free`] refuses that, and only it adds).
        for a in &intentions.addresses {
            self.check_free(&mut st, tx.id(), *a as u64)?;
        }
        for a in &intentions.addresses {
            if st.pending.freed(tx.id(), *a as u64) {
                self.add_hook(&mut st, tx);
            }
        }
        Ok(())
    }
}
