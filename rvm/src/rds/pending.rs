//! The heap's record of what open transactions have asked of it: blocks a transaction
//! allocated (already allocated in the heap, to be freed again if it aborts) and blocks it
//! freed (still allocated, to be freed inside its commit). Volatile: a crash forgets it, which
//! is right, since neither kind of entry is part of a committed transaction yet.
//!
//! The rules it keeps (see `heap.rs` for why):
//! * a block is pending-free for at most one transaction at a time;
//! * at commit, a transaction frees its pending-free blocks that are still its own, and drops
//!   the entries of its allocations (they are committed);
//! * a block that another transaction U allocated and has not committed yet is not freed by
//!   the commit that freed it: U has written into it, and if U then aborted, its rollback
//!   would put old bytes back over the free block's list links. The free is *handed over*
//!   to U instead: U frees the block inside its own commit, and if U aborts, its abort frees
//!   the block as it frees all of U's allocations. (A crash before U commits leaks the
//!   block, like any allocation of a transaction that never committed.)
//! * at abort, a transaction's pending frees are dropped, and its allocations that are still
//!   pending for it are freed again; another transaction's pending free of such a block is
//!   cancelled, so that transaction's commit cannot free a block someone may reuse.
//!
//! Every method runs under the heap's lock.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the books' keys (block addresses, transaction ids) with one multiply. SipHash, the
/// default, costs more here than the rest of the bookkeeping; the keys are the heap's own
/// addresses and the library's own counters, nothing an attacker chooses.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, key: u64) {
        // Fibonacci hashing, with the high half folded into the low bits the table indexes
        // by (addresses are multiples of 8, so their own low bits are always zero).
        let h = (self.0 ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Data addresses pending per open transaction, and the reverse maps.
#[derive(Default)]
pub(super) struct Pending {
    /// Block (data address) -> the open transaction that allocated it.
    allocated_by: Map<u64>,
    /// Block (data address) -> the open transaction that freed it.
    freed_by: Map<u64>,
    /// Open transaction -> what it asked of the heap. A transaction has an entry from its
    /// first malloc or free until it commits or aborts (and for ever if it is leaked): here,
    /// or in `hot`.
    by_transaction: Map<Requests>,
    /// The books of one open transaction kept out of `by_transaction`: a transaction that
    /// opens its books when this is free gets it, so while transactions use the heap one at
    /// a time, none of them costs a lookup in the map.
    hot: Option<(u64, Requests)>,
    /// Emptied entries of ended transactions, reused so a transaction's books allocate
    /// nothing in the common case.
    spare: Vec<Requests>,
}

/// Spare entries kept at most (a heap with more transactions open at once allocates).
const SPARE_MAX: usize = 64;

#[derive(Default)]
struct Requests {
    allocated: Vec<u64>,
    freed: Vec<u64>,
}

impl Pending {
    /// True when `transaction` has asked something of the heap (so it carries the heap's
    /// hook already).
    #[cfg(test)]
    pub(super) fn knows(&self, transaction: u64) -> bool {
        self.books(transaction).is_some()
    }

    /// The books of `transaction`, if it has any.
    fn books(&self, transaction: u64) -> Option<&Requests> {
        match &self.hot {
            Some((t, r)) if *t == transaction => Some(r),
            _ => self.by_transaction.get(&transaction),
        }
    }

    /// Take the books of `transaction` out (it has ended).
    fn take_books(&mut self, transaction: u64) -> Option<Requests> {
        if matches!(&self.hot, Some((t, _)) if *t == transaction) {
            return self.hot.take().map(|(_, r)| r);
        }
        self.by_transaction.remove(&transaction)
    }

    /// Start tracking `transaction` (its first heap call); false if it is tracked already.
    pub(super) fn open(&mut self, transaction: u64) -> bool {
        self.requests(transaction).1
    }

    /// The books of `transaction`, opened if need be (then with `true`).
    fn requests(&mut self, transaction: u64) -> (&mut Requests, bool) {
        let in_hot = matches!(&self.hot, Some((t, _)) if *t == transaction);
        let opens_hot = self.hot.is_none()
            && (self.by_transaction.is_empty() || !self.by_transaction.contains_key(&transaction));
        if !in_hot && !opens_hot {
            return match self.by_transaction.entry(transaction) {
                Entry::Occupied(e) => (e.into_mut(), false),
                Entry::Vacant(v) => (v.insert(self.spare.pop().unwrap_or_default()), true),
            };
        }
        let spare = &mut self.spare;
        let (_, books) = self
            .hot
            .get_or_insert_with(|| (transaction, spare.pop().unwrap_or_default()));
        (books, opens_hot)
    }

    /// Keep the emptied books of an ended transaction for the next one.
    fn recycle(&mut self, mut r: Requests) {
        if self.spare.len() < SPARE_MAX {
            r.allocated.clear();
            r.freed.clear();
            self.spare.push(r);
        }
    }

    /// `transaction` allocated the block at `address`. True if this opened its books (its
    /// first heap call).
    pub(super) fn allocated(&mut self, transaction: u64, address: u64) -> bool {
        self.allocated_by.insert(address, transaction);
        let (r, opened) = self.requests(transaction);
        r.allocated.push(address);
        opened
    }

    /// The open transaction that will free `address` at its commit, if any.
    pub(super) fn freer_of(&self, address: u64) -> Option<u64> {
        self.freed_by.get(&address).copied()
    }

    /// `transaction` frees `address` at its commit. The caller checked [`Pending::freer_of`].
    /// True if this opened its books (its first heap call).
    pub(super) fn freed(&mut self, transaction: u64, address: u64) -> bool {
        self.freed_by.insert(address, transaction);
        let (r, opened) = self.requests(transaction);
        r.freed.push(address);
        opened
    }

    /// The blocks `transaction` frees at its commit, in the order it freed them, into `out`
    /// (emptied first): those still its own (an aborted allocator may have cancelled some)
    /// and not allocated by another open transaction (those are handed over at
    /// [`Pending::committed`]). Nothing changes until then.
    pub(super) fn frees_of(&self, transaction: u64, out: &mut Vec<u64>) {
        out.clear();
        if let Some(r) = self.books(transaction) {
            out.extend(r.freed.iter().copied().filter(|a| {
                self.freed_by.get(a) == Some(&transaction)
                    && self.allocated_by.get(a).is_none_or(|by| *by == transaction)
            }));
        }
    }

    /// `transaction`'s record is queued, holding the frees of `freed` (from
    /// [`Pending::frees_of`]): forget everything about it, and hand its other frees (of
    /// blocks open transactions allocated) over to their allocators.
    pub(super) fn committed(&mut self, transaction: u64, freed: &[u64]) {
        for a in freed {
            self.freed_by.remove(a);
            self.allocated_by.remove(a);
        }
        let Some(r) = self.take_books(transaction) else {
            return;
        };
        for a in &r.allocated {
            if let Entry::Occupied(e) = self.allocated_by.entry(*a) {
                if *e.get() == transaction {
                    e.remove();
                }
            }
        }
        // `freed` is a subsequence of `r.freed` (see `frees_of`): as long, it is all of them,
        // and none is left to hand over.
        let handed = if freed.len() == r.freed.len() {
            &[][..]
        } else {
            &r.freed[..]
        };
        for a in handed {
            if self.freed_by.get(a) != Some(&transaction) {
                continue;
            }
            match self.allocated_by.get(a).copied() {
                Some(allocator) if allocator != transaction => {
                    self.freed_by.insert(*a, allocator);
                    self.requests(allocator).0.freed.push(*a);
                }
                _ => {
                    self.freed_by.remove(a);
                }
            }
        }
        self.recycle(r);
    }

    /// `transaction` aborted: drop its pending frees, and return its allocations still
    /// pending for it (the blocks to free again), cancelling any other transaction's pending
    /// free of them.
    pub(super) fn aborted(&mut self, transaction: u64) -> Vec<u64> {
        let mut free_again = Vec::new();
        let Some(r) = self.take_books(transaction) else {
            return free_again;
        };
        for a in &r.freed {
            if self.freed_by.get(a) == Some(&transaction) {
                self.freed_by.remove(a);
            }
        }
        for a in &r.allocated {
            if self.allocated_by.get(a) == Some(&transaction) {
                self.allocated_by.remove(a);
                self.freed_by.remove(a);
                free_again.push(*a);
            }
        }
        self.recycle(r);
        free_again
    }

    /// The heap was initialised again: every block is gone, so is every pending request.
    pub(super) fn clear(&mut self) {
        self.allocated_by.clear();
        self.freed_by.clear();
        let hot = self.hot.as_mut().map(|(_, r)| r);
        for r in self.by_transaction.values_mut().chain(hot) {
            r.allocated.clear();
            r.freed.clear();
        }
    }

    /// Blocks allocated by transactions still open (for statistics and tests).
    pub(super) fn allocations_open(&self) -> usize {
        self.allocated_by.len()
    }

    /// Blocks that open transactions free at their commit.
    pub(super) fn frees_open(&self) -> usize {
        self.freed_by.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frees_of(p: &Pending, transaction: u64) -> Vec<u64> {
        let mut out = vec![0xdead];
        p.frees_of(transaction, &mut out);
        out
    }

    #[test]
    fn commit_keeps_allocations_and_frees_its_blocks() {
        let mut p = Pending::default();
        p.allocated(1, 0x100);
        p.freed(1, 0x200);
        assert_eq!(frees_of(&p, 1), vec![0x200]);
        p.committed(1, &frees_of(&p, 1));
        assert!(!p.knows(1));
        assert_eq!((p.allocations_open(), p.frees_open()), (0, 0));
    }

    #[test]
    fn abort_frees_its_allocations_and_cancels_others_frees_of_them() {
        let mut p = Pending::default();
        p.allocated(1, 0x100);
        p.allocated(1, 0x180);
        p.freed(2, 0x100);
        p.freed(1, 0x300);
        assert_eq!(p.aborted(1), vec![0x100, 0x180]);
        assert_eq!(p.freer_of(0x100), None, "transaction 2's free is cancelled");
        assert_eq!(
            p.freer_of(0x300),
            None,
            "the aborted transaction's free is dropped"
        );
        assert!(frees_of(&p, 2).is_empty());
    }

    /// Freeing another open transaction's allocation at commit would let that transaction's
    /// abort roll its writes back over the free block (found by `rds_interleaving.rs`): the
    /// free is handed over to the allocator, which makes it at its commit or abort.
    #[test]
    fn a_commit_hands_its_free_of_another_open_transactions_allocation_to_it() {
        let mut p = Pending::default();
        p.allocated(1, 0x100);
        p.freed(2, 0x100);
        assert!(
            frees_of(&p, 2).is_empty(),
            "not freed by transaction 2's commit"
        );
        p.committed(2, &frees_of(&p, 2));
        assert_eq!(p.freer_of(0x100), Some(1));
        let mut q = Pending::default();
        q.allocated(1, 0x100);
        q.freed(2, 0x100);
        q.committed(2, &frees_of(&q, 2));
        assert_eq!(
            frees_of(&p, 1),
            vec![0x100],
            "freed in the allocator's commit"
        );
        assert_eq!(q.aborted(1), vec![0x100], "or by its abort");
        assert_eq!((q.allocations_open(), q.frees_open()), (0, 0));
    }

    /// The first transaction's books are kept out of the map (`hot`); a second one open at
    /// the same time goes into the map, and stays found there after the first has ended.
    #[test]
    fn books_kept_apart_from_the_map_and_in_it_are_both_found() {
        let mut p = Pending::default();
        assert!(p.allocated(1, 0x100), "opens transaction 1's books");
        assert!(p.freed(2, 0x200), "opens transaction 2's books");
        assert!(!p.freed(2, 0x280));
        p.committed(1, &frees_of(&p, 1));
        assert!(!p.knows(1));
        assert!(
            !p.allocated(2, 0x300),
            "still transaction 2's books, not new ones"
        );
        assert!(p.allocated(3, 0x400), "opens transaction 3's books");
        assert_eq!(frees_of(&p, 2), vec![0x200, 0x280]);
        p.committed(2, &frees_of(&p, 2));
        assert!(!p.knows(2));
        assert_eq!(p.aborted(3), vec![0x400]);
        assert_eq!((p.allocations_open(), p.frees_open()), (0, 0));
    }

    /// A commit that frees its own block and another open transaction's allocation frees
    /// the first and hands the second over.
    #[test]
    fn a_commit_freeing_its_own_block_and_anothers_hands_only_the_others_over() {
        let mut p = Pending::default();
        p.allocated(1, 0x100);
        p.freed(2, 0x200);
        p.freed(2, 0x100);
        let freed = frees_of(&p, 2);
        assert_eq!(freed, vec![0x200]);
        p.committed(2, &freed);
        assert_eq!(p.freer_of(0x200), None);
        assert_eq!(p.freer_of(0x100), Some(1));
        assert_eq!(frees_of(&p, 1), vec![0x100]);
    }

    #[test]
    fn clearing_forgets_every_block_but_not_the_transactions() {
        let mut p = Pending::default();
        p.allocated(1, 0x100);
        p.freed(1, 0x200);
        p.clear();
        assert!(p.knows(1));
        assert!(frees_of(&p, 1).is_empty());
        assert_eq!(p.aborted(1), Vec::<u64>::new());
    }
}
