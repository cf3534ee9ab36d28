//! Checked reads of one block without the heap's lock: the path of every typed read (a map
//! lookup is three of them) and of [`Heap::usable_size`].
//!
//! A block check needs the heap's geometry, which the heap's lock guards (`State`). Here the
//! geometry comes from a *published layout* instead: the header words that `refresh`
//! validated, with the geometry it derived from them. A check compares the header's words in
//! memory with the published ones (one hot cache line) and, when they agree, checks the block's
//! tags and copies from it under the segment's mapped flag alone. Nothing about the check is
//! trusted less than under the lock: every word read is bounds-checked against the heap region
//! (`View`) and copied with race-defined accesses; the head and foot tags must both say
//! "allocated" with the same size.
//!
//! What the lock added is a moment at which no other heap call runs. Without it a check may
//! meet a block that another thread's heap call is changing (its free at commit, a malloc
//! splitting the free block a forged pointer lies in). Any check that fails is therefore made
//! again the old way, under the heap's lock, which gives the authoritative answer (a freed
//! block is refused, damage is reported); a check that passes saw both tags of one allocated
//! block, which is what it would have seen under the lock just before or after that call. The
//! copy itself was never under the heap's lock (it may wait for a range lock, and a heap call
//! never waits), so it races with the same calls as before.
//!
//! Without a lock between the tag loads and the copy, the processor can fetch the block's
//! lines at once instead of one after another; and a read takes one lock (the mapped flag's
//! read side) instead of three.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::format::heap::{HeapGeometry, TAG_SIZE};
use crate::rds::reader::{corrupt, BlockArea};
use crate::rds::view::View;
use crate::rds::Error;

use super::{read_header_words, HeaderWords, Heap};

/// Layouts a heap keeps published. A heap's header changes only when it is initialised
/// again (or damaged); a header that changes more often than this is checked under the lock.
const LAYOUTS_MAX: usize = 4;

/// A header as `refresh` validated it: its fixed words and the geometry they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// The header's words before the counters (magic, version, geometry), as
    /// `State::header_words` holds them.
    words: HeaderWords,
    geometry: HeapGeometry,
    area: BlockArea,
}

/// The layouts published for lock-free checks: set once each (under the heap's lock), never
/// changed or freed while the heap lives, so a reader can use one without a lock.
#[derive(Default)]
pub(super) struct Layouts {
    slots: [OnceLock<Layout>; LAYOUTS_MAX],
    /// 1 + the index of the current layout; 0 before the first is published.
    current: AtomicUsize,
}

impl Layouts {
    /// The current layout, if one was published.
    #[inline]
    fn current(&self) -> Option<&Layout> {
        match self.current.load(Ordering::Acquire) {
            0 => None,
            i => self.slots.get(i - 1)?.get(),
        }
    }

    /// Make `layout` the current one (called with the heap's lock held, so one publisher at
    /// a time). When every slot holds another layout, nothing is published: checks then
    /// take the lock.
    fn publish(&self, layout: Layout) {
        if self.current() == Some(&layout) {
            return;
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let stored = *slot.get_or_init(|| layout);
            if stored == layout {
                self.current.store(i + 1, Ordering::Release);
                return;
            }
        }
    }
}

impl Heap {
    /// Check that `address` is the data of an allocated block and copy
    /// `min(buf.len(), usable - offset)` bytes from `offset` in it into the front of `buf`
    /// (none when `offset` is past the usable bytes); returns the block's usable bytes. What
    /// the rest of `buf` holds is unspecified, and so is all of it after an error.
    ///
    /// Isolation is kept: the copy waits for other threads' range locks like
    /// [`Segment::read_bytes`](crate::segment::Segment::read_bytes).
    ///
    /// # Errors
    /// As [`Heap::usable_size`].
    pub(crate) fn read_block(
        &self,
        address: usize,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        {
            let mapped = self.mapped()?;
            // SAFETY: the region stays mapped while `mapped` is held, and the view is used
            // only in this block.
            let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
            prefetch_block(address, offset, buf.len());
            if let Some(usable) = self.unlocked_block(&view, address as u64) {
                self.copy_from_block(&view, address as u64, usable, offset, buf)?;
                drop(mapped);
                return Ok(usable as usize);
            }
            // The mapped flag is released before the heap's lock is taken (the lock order:
            // heap lock, then the mapped flag).
        }
        let usable = self.locked_block(address as u64)?;
        let mapped = self.mapped()?;
        // SAFETY: as above.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        self.copy_from_block(&view, address as u64, usable, offset, buf)?;
        drop(mapped);
        Ok(usable as usize)
    }

    /// The lock-free check: the usable bytes of the allocated block at `address`, or `None`
    /// when the check cannot pass without the lock (no published layout, a header that
    /// differs from it, or a block the check refuses).
    #[inline]
    fn unlocked_block(&self, view: &View<'static>, address: u64) -> Option<u64> {
        let layout = self.shared.layouts.current()?;
        let words = read_header_words(view, self.shared.base)?;
        // Without a branch per word or a call to memcmp: the header is checked at every read.
        let differ = words
            .iter()
            .zip(&layout.words)
            .fold(0, |acc, (w, l)| acc | (w ^ l));
        if differ != 0 {
            return None;
        }
        let chunks = layout.area.allocated_chunks(view, address)?;
        Some(layout.geometry.usable_bytes(chunks))
    }

    /// The check under the heap's lock (validating the header again if it changed), which
    /// also publishes the layout it validated for the lock-free check.
    #[cold]
    #[inline(never)]
    fn locked_block(&self, address: u64) -> Result<u64, Error> {
        let mut st = self.lock_state();
        let usable = self.read_op_locked(&mut st, |r| {
            let b = r.allocated_block(address)?;
            Ok(r.geometry.usable_bytes(b.chunks))
        })?;
        // `read_op_locked` validated the header: `st` describes it now.
        if let Some(geometry) = st.geometry.filter(|_| st.valid) {
            self.shared.layouts.publish(Layout {
                words: st.header_words,
                geometry,
                area: BlockArea::new(self.shared.base, &geometry),
            });
        }
        Ok(usable)
    }

    /// Copy from `offset` in the block at `address` with `usable` usable bytes (checked) into
    /// `buf`, as [`Heap::read_block`] describes. The mapped flag must be held.
    #[inline]
    fn copy_from_block(
        &self,
        view: &View<'static>,
        address: u64,
        usable: u64,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        let n = usable.saturating_sub(offset as u64).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(());
        }
        // Cannot overflow: the block's `usable` bytes from `address` lie inside the region.
        let at = address + offset as u64;
        let out = &mut buf[..n];
        let copied = match &self.shared.segment.inner.locks {
            None => view.read(at, out),
            Some(locks) => locks.read(at as usize, at as usize + n, || view.read(at, out))?,
        };
        copied.ok_or_else(|| corrupt(at, "block data leads outside the heap region"))
    }
}

/// Ask the processor to fetch the cache lines a read of `len` bytes from `offset` in the
/// block at `address` will touch (head tag included, at most 4 lines) before the checks need
/// them, so the misses overlap instead of following each other: the foot tag's address is
/// known only once the head tag has arrived. A hint, never an access: an address that is not
/// mapped is ignored by the processor, and nothing is read.
#[inline]
fn prefetch_block(address: usize, offset: usize, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let first = address.wrapping_sub(TAG_SIZE as usize) & !(LINE - 1);
        let last = address
            .wrapping_add(offset)
            .wrapping_add(len)
            .wrapping_add(TAG_SIZE as usize);
        let mut line = first;
        for _ in 0..4 {
            if line >= last {
                break;
            }
            // SAFETY: a prefetch is a hint that never faults and reads nothing into the
            // program: any address may be given.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line = line.wrapping_add(LINE);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = (address, offset, len);
}
