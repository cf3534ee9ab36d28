//! The allocator proper: quick fit over exact-size lists and a large list, splitting, immediate
//! coalescing, and the volatile index (non-empty lists, the large list by size) that makes a
//! fit cheap. [`Ctx`] is one heap call's view: validated reads through a [`Reader`], and
//! writes straight to the pinned heap region, each recorded (address, old and new value) in a
//! write log that the caller (`heap.rs`) declares to the transaction once the call has
//! succeeded, as few merged ranges, or puts back if it fails. The caller holds the heap's lock.

use std::collections::BTreeSet;

use crate::format::heap::{
    foot_word, head_word, tag_word_chunks, BlockState, HeapCounters, HeapGeometry,
    FREE_BLOCK_MIN_BYTES, FREE_NEXT_OFFSET, FREE_PREV_OFFSET, TAG_SIZE, USER_DATA_OFFSET,
};
use crate::rds::reader::{corrupt, FreeBlock, Reader};
use crate::rds::write_log::WriteLog;
use crate::rds::Error;

/// A volatile index of the large list: (chunks, address) of each of its blocks. Built on
/// first use by walking the list (O(length of the large list), whatever the heap's size),
/// kept up to date by every change to the list, and dropped with the rest of the volatile
/// state when an abort may have changed the list behind it.
#[derive(Default)]
pub(super) struct LargeIndex {
    pub(super) built: bool,
    pub(super) blocks: BTreeSet<(u64, u64)>,
}

/// One heap call's view of the heap: validated reads, and writes recorded in `writes`.
pub(super) struct Ctx<'s> {
    pub(super) r: Reader<'static>,
    pub(super) nonempty: &'s mut Vec<u64>,
    pub(super) large: &'s mut LargeIndex,
    /// The call's write log; empty when the call starts.
    pub(super) log: &'s mut WriteLog,
    pub(super) counters: HeapCounters,
}

/// What freeing one block will do, worked out (and every tag and link it touches checked)
/// before anything is written: see [`Ctx::plan_free`].
#[derive(Clone, Copy, Debug)]
pub(super) struct FreePlan {
    block: u64,
    chunks: u64,
    left: Option<FreeBlock>,
    right: Option<FreeBlock>,
    /// The word before the block (the left neighbour's foot tag; 0 for the first block).
    /// Its length says where an allocated left neighbour's head is, which the plan checked.
    before: u64,
    /// The word after the block (the right neighbour's head tag; 0 for the last block).
    /// Its length says where an allocated right neighbour's foot is, which the plan checked.
    after: u64,
    /// The first block of the list the freed block goes on (0: empty).
    dest_head: u64,
}

#[cold]
#[inline(never)]
fn changed_since_checked(at: u64, was: u64, now: Option<u64>, freed: u64) -> Error {
    let Some(now) = now else {
        return corrupt(at, "pointer leads outside the heap region");
    };
    corrupt(
        at,
        format!(
            "heap word changed from {was:#x} to {now:#x} since the free of {freed:#x} was \
             checked, and not by a heap call: damage written through a transaction"
        ),
    )
}

/// The error of a neighbour whose length, as the tag at `foot_at` gives it, runs before the
/// first block (out of line: `Ctx::plan_free` inlines).
#[cold]
#[inline(never)]
fn runs_before_the_first_block(foot_at: u64, state: BlockState) -> Error {
    let what = match state {
        BlockState::Free => "free",
        BlockState::Allocated => "allocated",
    };
    corrupt(foot_at, format!("{what} block runs before the first block"))
}

/// The error of a heap write outside the heap region (out of line: `Ctx::put` inlines).
#[cold]
#[inline(never)]
fn write_outside(at: u64) -> Error {
    corrupt(at, "a heap write would fall outside the heap region")
}

impl Ctx<'_> {
    pub(super) fn geometry(&self) -> HeapGeometry {
        self.r.geometry
    }

    /// Write consecutive words at `at`, recording them in the write log. The words must lie
    /// inside the heap region (checked: a damaged link never sends a write elsewhere).
    #[inline(always)]
    pub(super) fn put(&mut self, at: u64, words: &[u64]) -> Result<(), Error> {
        // The reader's view is the heap region: `heap_length` bytes from `base`.
        let inside = at.is_multiple_of(8)
            && at >= self.r.base
            && (at - self.r.base)
                .checked_add(8 * words.len() as u64)
                .is_some_and(|end| end <= self.r.geometry.heap_length);
        if !inside {
            return Err(write_outside(at));
        }
        // SAFETY: inside the heap region and aligned (checked above); the heap call's
        // transaction pins the region (`Heap::write_op`).
        unsafe { self.log.put(at, words) };
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
        let b = self.sized_and_linked(
            b,
            nlists,
            size,
            "the block's size changed behind the heap's index",
        )?;
        Ok(Some(b))
    }

    /// Free block `b` on list `list`, which must be `chunks` chunks long as the caller learnt
    /// elsewhere (`mismatch` says where), and whose neighbours on the list link back to it.
    fn sized_and_linked(
        &self,
        b: FreeBlock,
        list: u64,
        chunks: u64,
        mismatch: &'static str,
    ) -> Result<FreeBlock, Error> {
        if b.chunks != chunks {
            return Err(corrupt(b.address, mismatch));
        }
        self.r.check_links(&b, list)?;
        Ok(b)
    }

    /// The largest free block in chunks (0 if none).
    pub(super) fn largest_free_chunks(&mut self) -> Result<u64, Error> {
        if let Some(&(chunks, _)) = self.large_index()?.last() {
            return Ok(chunks);
        }
        Ok(self.highest_nonempty_exact().unwrap_or(0))
    }

    fn unlink(&mut self, block: u64, list: u64) -> Result<(), Error> {
        if list == self.geometry().nlists {
            let (_, chunks) = self.r.head(block)?;
            self.index_large(list, chunks, block, false);
        }
        let prev = self.r.word(block + FREE_PREV_OFFSET)?;
        let next = self.r.word(block + FREE_NEXT_OFFSET)?;
        self.relink(list, prev, next, next, prev)?;
        if prev == 0 && next == 0 {
            self.set_nonempty(list, false);
        }
        Ok(())
    }

    /// [`Ctx::unlink`] of free block `b`, read and checked in this call with nothing written
    /// since: its links and length are known, so they are not read again.
    fn unlink_block(&mut self, b: &FreeBlock, list: u64) -> Result<(), Error> {
        self.index_large(list, b.chunks, b.address, false);
        self.relink(list, b.prev, b.next, b.next, b.prev)?;
        if b.prev == 0 && b.next == 0 {
            self.set_nonempty(list, false);
        }
        Ok(())
    }

    /// Point the neighbours `prev` and `next` (0: none) of a block on `list` past it: the
    /// predecessor's next link (or the list head) becomes `prev_to`, the successor's prev
    /// link `next_to`.
    fn relink(
        &mut self,
        list: u64,
        prev: u64,
        next: u64,
        prev_to: u64,
        next_to: u64,
    ) -> Result<(), Error> {
        if prev == 0 {
            self.put(self.r.list_address(list), &[prev_to])?;
        } else {
            self.put(prev + FREE_NEXT_OFFSET, &[prev_to])?;
        }
        if next != 0 {
            self.put(next + FREE_PREV_OFFSET, &[next_to])?;
        }
        Ok(())
    }

    /// Make `block` a free block of `chunks` chunks (head tag and links) at the head of
    /// `list`. Its foot tag is the caller's.
    fn push(&mut self, block: u64, chunks: u64, list: u64) -> Result<(), Error> {
        self.push_with(block, chunks, list, None, false)
    }

    /// [`Ctx::push`], also writing `foot_before` (the foot tag of the block that ends where
    /// `block` starts) in the same range, and with `own_foot` the block's free foot tag: in
    /// the same range too when the block is four words long (one 32-byte chunk).
    fn push_with(
        &mut self,
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
        self.put(at, &words[..n])?;
        if let Some(f) = foot_apart {
            self.put(block + bytes - TAG_SIZE, &[f])?;
        }
        if old != 0 {
            self.put(old + FREE_PREV_OFFSET, &[block])?;
        }
        self.put(self.r.list_address(list), &[block])?;
        self.set_nonempty(list, true);
        self.index_large(list, chunks, block, true);
        Ok(())
    }

    /// Put free block `new` (of `chunks` chunks) where `old` is on `list`.
    fn replace(&mut self, old: u64, new: u64, chunks: u64, list: u64) -> Result<(), Error> {
        if list == self.geometry().nlists {
            let (_, old_chunks) = self.r.head(old)?;
            self.index_large(list, old_chunks, old, false);
            self.index_large(list, chunks, new, true);
        }
        let prev = self.r.word(old + FREE_PREV_OFFSET)?;
        let next = self.r.word(old + FREE_NEXT_OFFSET)?;
        self.put(new, &[head_word(BlockState::Free, chunks), prev, next])?;
        self.relink(list, prev, next, new, new)
    }

    /// Write the allocated head and foot tags of `block` (`chunks` chunks), with
    /// `foot_before` (the foot tag of the block that ends where `block` starts) in the head's
    /// range. A block of four words (one 32-byte chunk) is one range, its two middle words
    /// rewritten unchanged; a longer one is two.
    fn put_allocated_tags(
        &mut self,
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
            return self.put(at, &words[..n + 3]);
        }
        self.put(at, &words[..n])?;
        self.put(block + bytes - TAG_SIZE, &[foot])
    }

    /// Mark free block `block` (already off its list) allocated: head and foot tags.
    fn mark_allocated(&mut self, block: u64, chunks: u64) -> Result<(), Error> {
        self.put_allocated_tags(block, chunks, None)
    }

    /// Shrink free block `b` (on `list`) to its first `rest` chunks, moving it to the list it
    /// then belongs on. Its new foot is written by the caller. The target list's head must have
    /// been checked, and `b` read in this call with nothing written since.
    fn shrink(&mut self, b: &FreeBlock, list: u64, rest: u64) -> Result<(), Error> {
        let rest_list = self.geometry().list_for(rest);
        if rest_list == list {
            self.index_large(list, b.chunks, b.address, false);
            self.index_large(list, rest, b.address, true);
            self.put(b.address, &[head_word(BlockState::Free, rest)])
        } else {
            self.unlink_block(b, list)?;
            self.push(b.address, rest, rest_list)
        }
    }

    /// Take `chunks` chunks from free block `b` on `list` and mark them allocated: the whole
    /// block on an exact fit, else its high end, so the low remainder keeps its head and often
    /// its place on the list. Returns the allocated block's address. `b` must have been read
    /// in this call with nothing written since.
    fn take(&mut self, b: &FreeBlock, list: u64, chunks: u64) -> Result<u64, Error> {
        let g = self.geometry();
        if b.chunks == chunks {
            self.unlink_block(b, list)?;
            self.mark_allocated(b.address, chunks)?;
            return Ok(b.address);
        }
        let rest = b.chunks - chunks;
        if g.list_for(rest) != list {
            self.r.head_for_push(g.list_for(rest))?;
        }
        let carved = b.address + rest * g.chunk_size;
        self.shrink(b, list, rest)?;
        // The remainder's foot and the new block's head are adjacent: one range; the old
        // block's foot becomes the new block's (allocated, its length).
        self.put_allocated_tags(carved, chunks, Some(foot_word(BlockState::Free, rest)))?;
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

    pub(super) fn malloc(&mut self, size: u64) -> Result<u64, Error> {
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
                self.unlink_block(&b, chunks)?;
                self.mark_allocated(b.address, chunks)?;
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
                self.take(&b, list, chunks)?
            }
        };
        let bytes = chunks * g.chunk_size;
        let c = &mut self.counters;
        c.malloc_count += 1;
        c.free_bytes = c.free_bytes.saturating_sub(bytes);
        c.allocated_bytes = c.allocated_bytes.saturating_add(bytes);
        Ok(block + USER_DATA_OFFSET)
    }

    pub(super) fn prealloc(&mut self, size: u64, count: u64) -> Result<(), Error> {
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
            self.shrink(&b, list, rest)?;
            // The remainder's foot and the new block's head and links: one range (with the
            // new block's foot too when the block is four words).
            self.push_with(
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

    /// Check that the block whose data is at `address` can be freed now: it is allocated, its
    /// neighbours' tags agree (a free neighbour's head and foot, with its list links; an
    /// allocated neighbour's far tag with the near one, so damage that makes a free neighbour
    /// look allocated is refused, not left beside the freed block), and every list the free
    /// will touch is intact. Writes nothing.
    pub(super) fn plan_free(&mut self, address: u64) -> Result<FreePlan, Error> {
        let g = self.geometry();
        let ch = g.chunk_size;
        let b = self.r.allocated_block(address)?;
        let n = b.chunks;
        let after = b.address + n * ch;
        // The tags on either side, kept for `recheck` (0: none).
        let (mut before, mut after_word) = (0, 0);
        // Check both neighbours and every list this free will touch before writing anything,
        // so a refused free leaves the heap as it was.
        let left = if b.address > self.r.area.start {
            // The foot before the block gives the left neighbour's state and length, so where
            // its head is, which must agree: a free neighbour is followed there (and its
            // links checked), an allocated one's head only compared.
            let foot_at = b.address - TAG_SIZE;
            let (state, l_chunks) = self.r.foot(foot_at)?;
            before = foot_word(state, l_chunks);
            // Room before the block: it starts after the first block's start (above).
            let room = b.address - self.r.area.start;
            let l_address = match l_chunks.checked_mul(ch) {
                Some(bytes) if bytes <= room => b.address - bytes,
                _ => return Err(runs_before_the_first_block(foot_at, state)),
            };
            if state == BlockState::Free {
                let list = g.list_for(l_chunks);
                let l = self.r.linked_block(l_address, list)?;
                Some(self.sized_and_linked(
                    l,
                    list,
                    l_chunks,
                    "head and foot disagree on the block size",
                )?)
            } else {
                self.r.check_allocated_head(l_address, l_chunks, foot_at)?;
                None
            }
        } else {
            None
        };
        let right = if after < self.r.area.end {
            // Likewise the head after the block: a free neighbour is followed to its foot
            // (and its links checked), an allocated one's foot only compared.
            let (state, chunks) = self.r.head(after)?;
            after_word = head_word(state, chunks);
            if state == BlockState::Free {
                let list = g.list_for(chunks);
                let r = self.r.free_block(after, list)?;
                self.r.check_links(&r, list)?;
                Some(r)
            } else {
                self.r.check_allocated_foot(after, chunks)?;
                None
            }
        } else {
            None
        };
        let total = n + left.map_or(0, |l| l.chunks) + right.map_or(0, |r| r.chunks);
        let dest = g.list_for(total);
        let head = self.r.head_for_push(dest)?;
        Ok(FreePlan {
            block: b.address,
            chunks: n,
            left,
            right,
            before,
            after: after_word,
            dest_head: head.map_or(0, |h| h.address),
        })
    }

    /// Check that what `plan` (made by [`Ctx::plan_free`] for the block whose data is at
    /// `freed`, at this generation) relies on still holds: every word the free reads, follows
    /// or decides by holds the value the plan's checks saw. Those are the tags on either side
    /// of the block (they decided what merges), each neighbour's other tag (a free one's is
    /// followed to unlink it, with its list links; an allocated one's confirmed that the
    /// near tag was not damage), and the head of the list the block goes on (followed to link
    /// it in). The words the free only overwrites (the block's own tags, the links
    /// of the neighbours' list neighbours back to them) need no check. The heap's calls
    /// changed none of these (same generation), so a word that changed anyway is damage
    /// written through a transaction: refused, naming the word. Writes nothing.
    fn recheck(&self, plan: &FreePlan, freed: u64) -> Result<(), Error> {
        let g = self.geometry();
        let ch = g.chunk_size;
        let after = plan.block + plan.chunks * ch;
        if plan.block > self.r.area.start {
            self.expect(plan.block - TAG_SIZE, plan.before, freed)?;
            if plan.left.is_none() {
                // An allocated neighbour: its head, where `before` says (the plan checked it
                // lies in the block area).
                let l = tag_word_chunks(plan.before);
                let head = head_word(BlockState::Allocated, l);
                self.expect(plan.block - l * ch, head, freed)?;
            }
        }
        if after < self.r.area.end {
            self.expect(after, plan.after, freed)?;
            if plan.right.is_none() {
                // An allocated neighbour: its foot, where `after` says (likewise).
                let r = tag_word_chunks(plan.after);
                let foot = foot_word(BlockState::Allocated, r);
                self.expect(after + r * ch - TAG_SIZE, foot, freed)?;
            }
        }
        let mut total = plan.chunks;
        if let Some(l) = &plan.left {
            // Its foot is `before`.
            total += l.chunks;
            self.expect(l.address, head_word(BlockState::Free, l.chunks), freed)?;
            self.expect_links(l, freed)?;
        }
        if let Some(r) = &plan.right {
            // Its head is `after`.
            total += r.chunks;
            self.expect_links(r, freed)?;
            let foot_at = r.address + r.chunks * ch - TAG_SIZE;
            self.expect(foot_at, foot_word(BlockState::Free, r.chunks), freed)?;
        }
        let dest = g.list_for(total);
        self.expect(self.r.list_address(dest), plan.dest_head, freed)
    }

    /// Free block `b`'s prev and next links must still be those it had (see
    /// [`Ctx::recheck`]).
    #[inline(always)]
    fn expect_links(&self, b: &FreeBlock, freed: u64) -> Result<(), Error> {
        const _: () = assert!(FREE_NEXT_OFFSET == FREE_PREV_OFFSET + 8);
        match self.r.view.words::<2>(b.address + FREE_PREV_OFFSET) {
            Some([prev, next]) if prev == b.prev && next == b.next => Ok(()),
            _ => {
                self.expect(b.address + FREE_PREV_OFFSET, b.prev, freed)?;
                self.expect(b.address + FREE_NEXT_OFFSET, b.next, freed)
            }
        }
    }

    /// The word at `at` must still be `value` (see [`Ctx::recheck`]).
    #[inline(always)]
    fn expect(&self, at: u64, value: u64, freed: u64) -> Result<(), Error> {
        match self.r.view.word(at) {
            Some(now) if now == value => Ok(()),
            now => Err(changed_since_checked(at, value, now, freed)),
        }
    }

    /// Free the block whose data is at `address`, merging it at once with a free neighbour
    /// on either side. Every check comes before the first write.
    pub(super) fn free(&mut self, address: u64) -> Result<(), Error> {
        self.free_planned(address, None)
    }

    /// [`Ctx::free`], with `checked`: a plan [`Ctx::plan_free`] made for `address` when the
    /// heap's generation was the one given. It is used instead of checking again if the heap
    /// is still at that generation (no heap call has changed it since) and nothing has been
    /// written in this call yet, once [`Ctx::recheck`] finds that what it follows still
    /// holds (damage written through a transaction since refuses the free).
    pub(super) fn free_planned(
        &mut self,
        address: u64,
        checked: Option<&(FreePlan, u64)>,
    ) -> Result<(), Error> {
        let plan = match checked {
            Some((plan, generation))
                if plan.block + USER_DATA_OFFSET == address
                    && *generation == self.counters.generation
                    && self.log.is_empty() =>
            {
                self.recheck(plan, address)?;
                *plan
            }
            _ => self.plan_free(address)?,
        };
        let g = self.geometry();
        let ch = g.chunk_size;
        let FreePlan {
            block,
            chunks: n,
            left,
            right,
            ..
        } = plan;
        let after = block + n * ch;
        let total = n + left.map_or(0, |l| l.chunks) + right.map_or(0, |r| r.chunks);
        let dest = g.list_for(total);
        let free_foot = |chunks| [foot_word(BlockState::Free, chunks)];
        match (left, right) {
            // The block keeps its length; its foot says free now.
            (None, None) => self.push_with(block, n, dest, None, true)?,
            (Some(l), None) => {
                self.grow_left(&l, total, dest)?;
                self.put(after - TAG_SIZE, &free_foot(total))?;
            }
            (None, Some(r)) => {
                let r_list = g.list_for(r.chunks);
                if r_list == dest {
                    self.replace(r.address, block, total, dest)?;
                } else {
                    self.unlink(r.address, r_list)?;
                    self.push(block, total, dest)?;
                }
                self.put(r.address + r.chunks * ch - TAG_SIZE, &free_foot(total))?;
            }
            (Some(l), Some(r)) => {
                self.unlink(r.address, g.list_for(r.chunks))?;
                self.grow_left(&l, total, dest)?;
                self.put(r.address + r.chunks * ch - TAG_SIZE, &free_foot(total))?;
            }
        }
        if left.is_some() {
            // The freed block's head is now inside its left neighbour. Mark it free anyway,
            // so freeing this address again is reported as a double free.
            self.put(block, &[head_word(BlockState::Free, n)])?;
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
    fn grow_left(&mut self, l: &FreeBlock, total: u64, dest: u64) -> Result<(), Error> {
        let l_list = self.geometry().list_for(l.chunks);
        if l_list == dest {
            self.index_large(dest, l.chunks, l.address, false);
            self.index_large(dest, total, l.address, true);
            self.put(l.address, &[head_word(BlockState::Free, total)])
        } else {
            self.unlink(l.address, l_list)?;
            self.push(l.address, total, dest)
        }
    }
}
