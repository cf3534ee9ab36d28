//! A heap call's write log: the words it wrote to the heap region, with their old values, and
//! the runs of adjacent words they form. A changing heap call writes memory at once (so its
//! own later reads see its writes) and records each word here. Once the call has succeeded,
//! the runs are declared to the call's transaction with their old values from the log
//! ([`WriteLog::declare`]), or queued as a record of their own ([`WriteLog::runs`]); if it
//! fails, every word gets its old value back ([`WriteLog::put_back`]). Declaring after
//! writing keeps the ranges few (a run is often several writes), and neither the
//! transaction nor the heap's own record reads an old value from memory again.
//!
//! Every address here was checked by the caller ([`crate::rds::alloc`]'s `Ctx::put`) to lie
//! inside the heap region, 8-byte aligned, and the region is pinned by the call's
//! transaction for as long as the log is used.

use crate::rds::Error;
use crate::tx::Transaction;

/// The write log of the heap call in progress (kept in the heap's state to reuse its
/// allocations; empty between calls).
#[derive(Default, Debug)]
pub(super) struct WriteLog {
    /// The value before the write of every word written, in order.
    olds: Vec<u64>,
    /// Every write, in order: the address of its first word and how many consecutive words
    /// it wrote (their old values are the next ones in `olds`).
    writes: Vec<(usize, usize)>,
    /// `[start, end)` runs covering the words, sorted and apart (a write touching a run
    /// joins it, and runs it makes touch are merged).
    runs: Vec<(usize, usize)>,
}

impl WriteLog {
    /// Forget everything (a call starts with an empty log).
    pub(super) fn clear(&mut self) {
        self.olds.clear();
        self.writes.clear();
        self.runs.clear();
    }

    /// True when nothing has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Store `words` at `at` and record them.
    ///
    /// # Safety
    /// `[at, at + 8 * words.len())` must lie inside the heap region, which the call's
    /// transaction pins, and `at` must be 8-byte aligned.
    #[inline]
    pub(super) unsafe fn put(&mut self, at: u64, words: &[u64]) {
        self.olds.extend(words.iter().enumerate().map(|(i, &new)| {
            let at = (at + 8 * i as u64) as usize;
            // SAFETY: inside the pinned heap region and aligned (the contract); other threads
            // may read it, so it is accessed with race-defined accesses.
            let old = unsafe { crate::racy::load_u64(at as *const u8) };
            // SAFETY: as above.
            unsafe { crate::racy::store_u64(at as *mut u8, new) };
            old
        }));
        self.writes.push((at as usize, words.len()));
        let (at, end) = (at as usize, (at + 8 * words.len() as u64) as usize);
        let runs = &mut self.runs;
        let mut i = 0;
        while i < runs.len() && runs[i].1 < at {
            i += 1;
        }
        if i < runs.len() && runs[i].0 <= end {
            runs[i] = (runs[i].0.min(at), runs[i].1.max(end));
            while i + 1 < runs.len() && runs[i + 1].0 <= runs[i].1 {
                runs[i].1 = runs[i].1.max(runs[i + 1].1);
                runs.remove(i + 1);
            }
        } else {
            runs.insert(i, (at, end));
        }
    }

    /// The runs of written words, as `[start, end)`, sorted by address and apart.
    pub(super) fn runs(&self) -> &[(usize, usize)] {
        &self.runs
    }

    /// Give every written word its value from before the call (the first write of each word
    /// holds it; the log is undone last write first).
    ///
    /// # Safety
    /// The heap region the words were `put` into is still pinned (the pin `put` was called
    /// under, not yet released).
    pub(super) unsafe fn put_back(&self) {
        let mut end = self.olds.len();
        for &(at, n) in self.writes.iter().rev() {
            let first = end.saturating_sub(n);
            for (i, &old) in self.olds[first..end].iter().enumerate().rev() {
                // SAFETY: recorded by `put`, so inside the heap region, which is still pinned
                // (the caller's contract).
                unsafe { crate::racy::store_u64((at + 8 * i) as *mut u8, old) };
            }
            end = first;
        }
    }

    /// Declare every run to `tx`, in address order (memory holds the new values), with the
    /// old values the log holds ([`Transaction::declare_written`]: saved whatever `tx`'s
    /// mode, so a record refused after this puts them back). On an error every written word
    /// has its old value back.
    ///
    /// # Safety
    /// As for [`WriteLog::put_back`]: the heap region is still pinned.
    #[inline]
    pub(super) unsafe fn declare(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        // Sorted and merged: fewer ranges, and the commit's coalescing finds them in order.
        let declared = tx.declare_written(&self.runs, &self.writes, &self.olds);
        if let Err(e) = declared {
            // SAFETY: the region is still pinned (this function's contract).
            unsafe { self.put_back() };
            return Err(e.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes in any order give runs sorted by address, merged where they touch or overlap;
    /// putting back undoes every write.
    #[test]
    fn runs_written_in_any_order_come_out_sorted_and_merged() {
        let mut memory = [0u64; 16];
        let base = memory.as_mut_ptr() as u64;
        let mut log = WriteLog::default();
        // SAFETY: every word lies inside `memory`, which nothing else accesses meanwhile.
        unsafe {
            log.put(base + 8 * 10, &[1]);
            log.put(base + 8 * 2, &[2, 3]);
            log.put(base + 8 * 11, &[4]); // touches the run at word 10
            log.put(base + 8 * 4, &[5]); // touches the run at words 2..4
            log.put(base + 8 * 3, &[6]); // overlaps it
            log.put(base + 8 * 7, &[7]);
            log.put(base + 8 * 8, &[8]); // extends the last run
        }
        let b = base as usize;
        assert_eq!(
            log.runs(),
            &[(b + 16, b + 40), (b + 56, b + 72), (b + 80, b + 96)]
        );
        assert_eq!(memory[3], 6);
        assert_eq!(memory[10..12], [1, 4]);
        // SAFETY: the words lie in `memory`, alive and not borrowed here.
        unsafe { log.put_back() };
        assert_eq!(memory, [0; 16]);
    }
}
