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
///
/// The reverse maps hold the entries of every transaction whose books are in
/// `by_transaction`, and those of the `hot` one only once it has been *indexed*: while the
/// hot books are short ([`HOT_UNINDEXED_MAX`] entries at most), its blocks are found by
/// scanning them instead, so a transaction that uses the heap alone, a few calls at a time,
/// costs no map insertion or removal at all. Every lookup ([`Pending::freer_of`],
/// `allocator_of`) asks both.
#[derive(Default)]
pub(super) struct Pending {
    /// Block (data address) -> the open transaction that allocated it (see above for the
    /// hot transaction's).
    allocated_by: Map<u64>,
    /// Block (data address) -> the open transaction that freed it (see above).
    freed_by: Map<u64>,
    /// Open transaction -> what it asked of the heap. A transaction has an entry from its
    /// first malloc or free until it commits or aborts (and for ever if it is leaked): here,
    /// or in `hot_books`.
    by_transaction: Map<Requests>,
    /// The open transaction whose books are kept out of `by_transaction`, in `hot_books`: a
    /// transaction that opens its books when this is free gets it, so while transactions
    /// use the heap one at a time, none of them costs a lookup in the map.
    hot: Option<u64>,
    /// The hot transaction's books (empty while `hot` is `None`; kept, with their
    /// allocations, from one hot transaction to the next).
    hot_books: Requests,
    /// True when the hot books' blocks are in the reverse maps too (they grew past
    /// [`HOT_UNINDEXED_MAX`]); false while they are found by scanning the books. Reset when
    /// a transaction opens the hot books.
    hot_indexed: bool,
    /// Emptied entries of ended transactions, reused so a transaction's books allocate
    /// nothing in the common case.
    spare: Vec<Requests>,
}

/// Spare entries kept at most (a heap with more transactions open at once allocates).
const SPARE_MAX: usize = 64;

/// Blocks (allocated plus freed) the hot books hold before they are indexed in the reverse
/// maps: a lookup scans at most this many addresses.
const HOT_UNINDEXED_MAX: usize = 16;

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
        if self.hot == Some(transaction) {
            return Some(&self.hot_books);
        }
        self.by_transaction.get(&transaction)
    }

    /// The hot books while they are not indexed in the reverse maps (see [`Pending`]).
    fn hot_unindexed(&self) -> Option<(u64, &Requests)> {
        match self.hot {
            Some(t) if !self.hot_indexed => Some((t, &self.hot_books)),
            _ => None,
        }
    }

    /// True when `transaction` holds the hot books and they are not indexed.
    fn is_hot_unindexed(&self, transaction: u64) -> bool {
        !self.hot_indexed && self.hot == Some(transaction)
    }

    /// Take the books of `transaction` out (it has ended), with whether they were the hot
    /// books and whether those were not indexed in the reverse maps. Give them back with
    /// [`Pending::recycle`].
    fn take_books(&mut self, transaction: u64) -> Option<(Requests, bool, bool)> {
        if self.hot == Some(transaction) {
            self.hot = None;
            return Some((std::mem::take(&mut self.hot_books), true, !self.hot_indexed));
        }
        self.by_transaction
            .remove(&transaction)
            .map(|r| (r, false, false))
    }

    /// The books of `transaction`, opened if need be (then with `true`), and whether they
    /// are the hot books not indexed in the reverse maps (the caller then does not enter
    /// what it adds there).
    #[inline]
    fn requests(&mut self, transaction: u64) -> (&mut Requests, bool, bool) {
        if self.hot == Some(transaction) {
            return (&mut self.hot_books, false, !self.hot_indexed);
        }
        if self.hot.is_none() && self.by_transaction.is_empty() {
            // Alone with the heap (the common case, inlined): it opens the hot books,
            // empty while nobody holds them.
            self.hot = Some(transaction);
            self.hot_indexed = false;
            return (&mut self.hot_books, true, true);
        }
        self.requests_in_full(transaction)
    }

    /// [`Pending::requests`] beyond its common cases (out of line).
    #[inline(never)]
    fn requests_in_full(&mut self, transaction: u64) -> (&mut Requests, bool, bool) {
        let opens_hot = self.hot.is_none()
            && (self.by_transaction.is_empty() || !self.by_transaction.contains_key(&transaction));
        if opens_hot {
            // `hot_books` is empty while nobody holds it.
            self.hot = Some(transaction);
            self.hot_indexed = false;
            return (&mut self.hot_books, true, true);
        }
        match self.by_transaction.entry(transaction) {
            Entry::Occupied(e) => (e.into_mut(), false, false),
            Entry::Vacant(v) => (v.insert(self.spare.pop().unwrap_or_default()), true, false),
        }
    }

    /// Enter the hot books in the reverse maps once they have grown past
    /// [`HOT_UNINDEXED_MAX`], so lookups never scan long books.
    #[inline]
    fn index_hot_if_long(&mut self) {
        let r = &self.hot_books;
        if !self.hot_indexed && r.allocated.len() + r.freed.len() > HOT_UNINDEXED_MAX {
            self.index_hot();
        }
    }

    /// Enter the hot books in the reverse maps (see [`Pending::index_hot_if_long`]).
    #[cold]
    #[inline(never)]
    fn index_hot(&mut self) {
        let (Some(t), r) = (&self.hot, &self.hot_books) else {
            return;
        };
        for a in &r.allocated {
            self.allocated_by.insert(*a, *t);
        }
        for a in &r.freed {
            self.freed_by.insert(*a, *t);
        }
        self.hot_indexed = true;
    }

    /// Keep the emptied books of an ended transaction (from [`Pending::take_books`]) for the
    /// next one: the hot books go back in place.
    fn recycle(&mut self, mut r: Requests, was_hot: bool) {
        r.allocated.clear();
        r.freed.clear();
        if was_hot && self.hot.is_none() {
            self.hot_books = r;
        } else if self.spare.len() < SPARE_MAX {
            self.spare.push(r);
        }
    }

    /// `transaction` allocated the block at `address`. True if this opened its books (its
    /// first heap call).
    pub(super) fn allocated(&mut self, transaction: u64, address: u64) -> bool {
        let (r, opened, unindexed) = self.requests(transaction);
        r.allocated.push(address);
        if unindexed {
            self.index_hot_if_long();
        } else {
            self.allocated_by.insert(address, transaction);
        }
        opened
    }

    /// The open transaction that allocated `address`, if any.
    fn allocator_of(&self, address: u64) -> Option<u64> {
        if let Some((t, r)) = self.hot_unindexed() {
            if r.allocated.contains(&address) {
                return Some(t);
            }
        }
        if self.allocated_by.is_empty() {
            return None;
        }
        self.allocated_by.get(&address).copied()
    }

    /// The open transaction that will free `address` at its commit, if any.
    pub(super) fn freer_of(&self, address: u64) -> Option<u64> {
        if let Some((t, r)) = self.hot_unindexed() {
            if r.freed.contains(&address) {
                return Some(t);
            }
        }
        if self.freed_by.is_empty() {
            return None;
        }
        self.freed_by.get(&address).copied()
    }

    /// `transaction` frees `address` at its commit. The caller checked [`Pending::freer_of`].
    /// True if this opened its books (its first heap call).
    pub(super) fn freed(&mut self, transaction: u64, address: u64) -> bool {
        let (r, opened, unindexed) = self.requests(transaction);
        r.freed.push(address);
        if unindexed {
            self.index_hot_if_long();
        } else {
            self.freed_by.insert(address, transaction);
        }
        opened
    }

    /// Cancel `freer`'s pending free of `address`: out of the reverse map and out of its
    /// books, so that a later free of the same block by `freer` (once someone allocated it
    /// again) is made once, not twice.
    fn unfree(&mut self, freer: u64, address: u64) {
        if self.freed_by.get(&address) == Some(&freer) {
            self.freed_by.remove(&address);
        }
        let books = if self.hot == Some(freer) {
            Some(&mut self.hot_books)
        } else {
            self.by_transaction.get_mut(&freer)
        };
        if let Some(r) = books {
            r.freed.retain(|a| *a != address);
        }
    }

    /// The blocks `transaction` frees at its commit, in the order it freed them, into `out`
    /// (emptied first): those still its own (an aborted allocator may have cancelled some)
    /// and not allocated by another open transaction (those are handed over at
    /// [`Pending::committed`]). Nothing changes until then.
    #[inline]
    pub(super) fn frees_of(&self, transaction: u64, out: &mut Vec<u64>) {
        out.clear();
        // The common case, inlined: a lone transaction's books (only its own frees; a
        // cancelled one is removed from them) with no other open allocations to leave out.
        if self.is_hot_unindexed(transaction) && self.allocated_by.is_empty() {
            // One free or none without a `memcpy` call.
            match self.hot_books.freed[..] {
                [] => {}
                [a] => out.push(a),
                _ => out.extend_from_slice(&self.hot_books.freed),
            }
            return;
        }
        self.frees_of_in_full(transaction, out);
    }

    /// [`Pending::frees_of`] beyond its common case (out of line).
    #[inline(never)]
    fn frees_of_in_full(&self, transaction: u64, out: &mut Vec<u64>) {
        let Some(r) = self.books(transaction) else {
            return;
        };
        if self.is_hot_unindexed(transaction) {
            // Its books hold only its own frees (a cancelled one is removed from them); the
            // other open transactions' allocations are all in the map.
            out.extend(
                r.freed
                    .iter()
                    .copied()
                    .filter(|a| !self.allocated_by.contains_key(a)),
            );
            return;
        }
        out.extend(r.freed.iter().copied().filter(|a| {
            self.freer_of(*a) == Some(transaction)
                && self.allocator_of(*a).is_none_or(|by| by == transaction)
        }));
    }

    /// `transaction`'s record is queued, holding the frees of `freed` (from
    /// [`Pending::frees_of`]): forget everything about it, and hand its other frees (of
    /// blocks open transactions allocated) over to their allocators.
    #[inline]
    pub(super) fn committed(&mut self, transaction: u64, freed: &[u64]) {
        if self.is_hot_unindexed(transaction) && freed.len() == self.hot_books.freed.len() {
            // The common case (inlined): a transaction alone with the heap made all its
            // frees; none of its blocks is in the reverse maps.
            self.hot = None;
            self.hot_books.allocated.clear();
            self.hot_books.freed.clear();
            return;
        }
        self.committed_in_full(transaction, freed);
    }

    /// [`Pending::committed`] beyond its common case (out of line).
    #[inline(never)]
    fn committed_in_full(&mut self, transaction: u64, freed: &[u64]) {
        let Some((r, was_hot, unindexed)) = self.take_books(transaction) else {
            return;
        };
        if !unindexed {
            for a in freed {
                self.freed_by.remove(a);
                self.allocated_by.remove(a);
            }
            for a in &r.allocated {
                if let Entry::Occupied(e) = self.allocated_by.entry(*a) {
                    if *e.get() == transaction {
                        e.remove();
                    }
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
            // Still this transaction's free (the unindexed hot books hold only those)?
            if !unindexed && self.freed_by.get(a) != Some(&transaction) {
                continue;
            }
            // Its own books are out: an allocator found now is another transaction.
            match self.allocator_of(*a) {
                Some(allocator) if allocator != transaction => {
                    if !unindexed {
                        self.freed_by.remove(a);
                    }
                    let (books, _, allocator_unindexed) = self.requests(allocator);
                    books.freed.push(*a);
                    if allocator_unindexed {
                        self.index_hot_if_long();
                    } else {
                        self.freed_by.insert(*a, allocator);
                    }
                }
                _ => {
                    if !unindexed {
                        self.freed_by.remove(a);
                    }
                }
            }
        }
        self.recycle(r, was_hot);
    }

    /// `transaction` aborted: drop its pending frees, and return its allocations still
    /// pending for it (the blocks to free again), cancelling any other transaction's pending
    /// free of them.
    pub(super) fn aborted(&mut self, transaction: u64) -> Vec<u64> {
        let mut free_again = Vec::new();
        let Some((r, was_hot, unindexed)) = self.take_books(transaction) else {
            return free_again;
        };
        if !unindexed {
            for a in &r.freed {
                if self.freed_by.get(a) == Some(&transaction) {
                    self.freed_by.remove(a);
                }
            }
        }
        for a in &r.allocated {
            // The unindexed hot books hold only allocations still its own.
            if !unindexed {
                if self.allocated_by.get(a) != Some(&transaction) {
                    continue;
                }
                self.allocated_by.remove(a);
            }
            // Cancel another transaction's pending free of the block (its own are dropped).
            if let Some(freer) = self.freer_of(*a) {
                self.unfree(freer, *a);
            }
            free_again.push(*a);
        }
        self.recycle(r, was_hot);
        free_again
    }

    /// The heap was initialised again: every block is gone, so is every pending request.
    pub(super) fn clear(&mut self) {
        self.allocated_by.clear();
        self.freed_by.clear();
        for r in self
            .by_transaction
            .values_mut()
            .chain(std::iter::once(&mut self.hot_books))
        {
            r.allocated.clear();
            r.freed.clear();
        }
    }

    /// The unindexed hot books' allocations and frees (none when there are none or they are
    /// indexed).
    fn hot_unindexed_counts(&self) -> (usize, usize) {
        self.hot_unindexed()
            .map_or((0, 0), |(_, r)| (r.allocated.len(), r.freed.len()))
    }

    /// Blocks allocated by transactions still open (for statistics and tests).
    pub(super) fn allocations_open(&self) -> usize {
        self.allocated_by.len() + self.hot_unindexed_counts().0
    }

    /// Blocks that open transactions free at their commit.
    pub(super) fn frees_open(&self) -> usize {
        self.freed_by.len() + self.hot_unindexed_counts().1
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

    /// A transaction using the heap alone keeps its blocks out of the reverse maps (found by
    /// scanning its books) until its books grow long; they are found either way.
    #[test]
    fn a_lone_transactions_blocks_stay_out_of_the_maps_until_its_books_grow_long() {
        let mut p = Pending::default();
        assert!(p.allocated(1, 0x100));
        p.freed(1, 0x200);
        assert!(p.allocated_by.is_empty() && p.freed_by.is_empty());
        assert_eq!(p.freer_of(0x200), Some(1));
        assert_eq!((p.allocations_open(), p.frees_open()), (1, 1));
        for i in 0..HOT_UNINDEXED_MAX as u64 {
            p.allocated(1, 0x1000 + 0x40 * i);
        }
        assert_eq!(
            p.allocated_by.len(),
            HOT_UNINDEXED_MAX + 1,
            "indexed once long"
        );
        assert_eq!(p.freed_by.get(&0x200), Some(&1));
        assert_eq!(p.freer_of(0x200), Some(1));
        assert_eq!(
            (p.allocations_open(), p.frees_open()),
            (HOT_UNINDEXED_MAX + 1, 1)
        );
        p.committed(1, &frees_of(&p, 1));
        assert_eq!((p.allocations_open(), p.frees_open()), (0, 0));
        assert!(
            p.allocated(2, 0x100),
            "the next transaction opens the hot books"
        );
        assert!(p.allocated_by.is_empty(), "not indexed any more");
        assert_eq!(p.aborted(2), vec![0x100]);
    }

    /// An allocator that aborts cancels the free of its block by a transaction whose books
    /// are not in the maps (the free is removed from those books).
    #[test]
    fn an_abort_cancels_the_free_of_its_allocation_kept_in_unindexed_books() {
        let mut p = Pending::default();
        p.freed(1, 0x300); // transaction 1 holds the hot books
        p.allocated(2, 0x100);
        p.freed(1, 0x100);
        assert_eq!(p.freer_of(0x100), Some(1));
        assert_eq!(frees_of(&p, 1), vec![0x300], "not while 2 may abort");
        assert_eq!(p.aborted(2), vec![0x100]);
        assert_eq!(p.freer_of(0x100), None);
        assert_eq!(frees_of(&p, 1), vec![0x300]);
        p.committed(1, &frees_of(&p, 1));
        assert_eq!((p.allocations_open(), p.frees_open()), (0, 0));
    }

    /// A free cancelled by the allocator's abort stayed in the freer's books: once the block
    /// was allocated again and the same transaction freed it again, its commit listed it
    /// twice and failed on the second free. The cancelled free now leaves the books.
    #[test]
    fn a_free_cancelled_by_an_abort_and_made_again_is_made_once() {
        for freer_is_hot in [true, false] {
            let mut p = Pending::default();
            if !freer_is_hot {
                p.freed(9, 0x900); // transaction 9 holds the hot books
            }
            p.freed(3, 0x300);
            p.allocated(2, 0x100);
            p.freed(3, 0x100);
            assert_eq!(p.aborted(2), vec![0x100]);
            p.allocated(4, 0x100);
            p.committed(4, &frees_of(&p, 4));
            assert_eq!(p.freer_of(0x100), None);
            p.freed(3, 0x100);
            assert_eq!(frees_of(&p, 3), vec![0x300, 0x100]);
        }
    }

    /// The books as they were before the hot books were kept out of the maps: every entry in
    /// both reverse maps (and a cancelled free out of its transaction's books). The reference
    /// for the comparison below.
    #[derive(Default)]
    struct Model {
        allocated_by: HashMap<u64, u64>,
        freed_by: HashMap<u64, u64>,
        books: HashMap<u64, (Vec<u64>, Vec<u64>)>,
    }

    impl Model {
        fn frees_of(&self, t: u64) -> Vec<u64> {
            self.books.get(&t).map_or(Vec::new(), |(_, freed)| {
                freed
                    .iter()
                    .copied()
                    .filter(|a| {
                        self.freed_by.get(a) == Some(&t)
                            && self.allocated_by.get(a).is_none_or(|by| *by == t)
                    })
                    .collect()
            })
        }
        fn committed(&mut self, t: u64, freed: &[u64]) {
            for a in freed {
                self.freed_by.remove(a);
                self.allocated_by.remove(a);
            }
            let Some((allocated, frees)) = self.books.remove(&t) else {
                return;
            };
            for a in &allocated {
                if self.allocated_by.get(a) == Some(&t) {
                    self.allocated_by.remove(a);
                }
            }
            for a in &frees {
                if self.freed_by.get(a) != Some(&t) {
                    continue;
                }
                match self.allocated_by.get(a).copied() {
                    Some(u) if u != t => {
                        self.freed_by.insert(*a, u);
                        self.books.entry(u).or_default().1.push(*a);
                    }
                    _ => {
                        self.freed_by.remove(a);
                    }
                }
            }
        }
        fn aborted(&mut self, t: u64) -> Vec<u64> {
            let mut again = Vec::new();
            let Some((allocated, frees)) = self.books.remove(&t) else {
                return again;
            };
            for a in &frees {
                if self.freed_by.get(a) == Some(&t) {
                    self.freed_by.remove(a);
                }
            }
            for a in &allocated {
                if self.allocated_by.get(a) == Some(&t) {
                    self.allocated_by.remove(a);
                    if let Some(freer) = self.freed_by.remove(a) {
                        if let Some((_, f)) = self.books.get_mut(&freer) {
                            f.retain(|x| x != a);
                        }
                    }
                    again.push(*a);
                }
            }
            again
        }
    }

    /// Random mallocs, frees, commits and aborts of four transactions at once (a heap of a
    /// few blocks, so addresses are reused): the books answer every question as the model
    /// does, whether a transaction's blocks sit in the maps or in its unindexed books.
    #[test]
    fn books_answer_as_the_all_maps_model_under_random_interleavings() {
        for seed in 1..=20u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let (mut p, mut m) = (Pending::default(), Model::default());
            // Blocks allocated in the heap (by committed or open transactions).
            let mut heap: Vec<u64> = Vec::new();
            let pool: Vec<u64> = (0..48).map(|i| 0x1000 + 0x40 * i).collect();
            let mut ids = [1u64, 2, 3, 4];
            let mut fresh = 5;
            for _ in 0..4000 {
                let slot = next(4) as usize;
                let t = ids[slot];
                // Odd seeds end transactions often; even ones rarely, so books grow past
                // the unindexed limit.
                let action = next(100);
                let ends = if seed % 2 == 1 { 30 } else { 3 };
                let action = if action < ends {
                    7 + action % 3
                } else {
                    action % 7
                };
                match action {
                    0..=3 => {
                        let free: Vec<u64> =
                            pool.iter().copied().filter(|a| !heap.contains(a)).collect();
                        if let Some(&a) = free.get(next(free.len().max(1) as u64) as usize) {
                            heap.push(a);
                            p.allocated(t, a);
                            m.allocated_by.insert(a, t);
                            m.books.entry(t).or_default().0.push(a);
                        }
                    }
                    4..=6 => {
                        if heap.is_empty() {
                            continue;
                        }
                        let a = heap[next(heap.len() as u64) as usize];
                        assert_eq!(p.freer_of(a), m.freed_by.get(&a).copied());
                        if p.freer_of(a).is_none() {
                            p.freed(t, a);
                            m.freed_by.insert(a, t);
                            m.books.entry(t).or_default().1.push(a);
                        }
                    }
                    7 | 8 => {
                        let freed = frees_of(&p, t);
                        assert_eq!(freed, m.frees_of(t), "seed {seed}");
                        heap.retain(|a| !freed.contains(a));
                        p.committed(t, &freed);
                        m.committed(t, &freed);
                        ids[slot] = fresh;
                        fresh += 1;
                    }
                    _ => {
                        let again = p.aborted(t);
                        assert_eq!(again, m.aborted(t), "seed {seed}");
                        heap.retain(|a| !again.contains(a));
                        ids[slot] = fresh;
                        fresh += 1;
                    }
                }
                for a in &pool {
                    assert_eq!(p.freer_of(*a), m.freed_by.get(a).copied(), "seed {seed}");
                    assert_eq!(p.allocator_of(*a), m.allocated_by.get(a).copied());
                }
                assert_eq!(p.allocations_open(), m.allocated_by.len());
                assert_eq!(p.frees_open(), m.freed_by.len());
            }
        }
    }
}
