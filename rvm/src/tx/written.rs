//! Ranges a library declares on a transaction *after* writing them, with their old values
//! given (`Transaction::declare_written`): the RDS heap's frees at commit, whose write log
//! knows every word's value from before the write.

use super::{Range, Transaction};
use crate::error::{Error, Result};

impl Transaction<'_> {
    /// Declare `runs` (`[start, end)`, each inside one mapped region, which must be pinned
    /// already: [`Transaction::pin`]), which the caller has *already written*, with their old
    /// values given: `writes` holds every write the caller made in them, in the order made,
    /// each as (address, how many consecutive 8-byte words it wrote from there), and `olds`
    /// the values before the write of those words, write after write, so that every byte of
    /// the runs is in some write. Each write is saved as an
    /// undo entry of its own whatever the mode, so a refused record (or
    /// [`Transaction::fail`]) puts them back last write first, which leaves every word with
    /// the value it had before its first write. For a hook's changes at commit (the RDS
    /// heap's frees): its write log knows every old value, so nothing is put back and read
    /// from memory again, and the runs cost one call.
    ///
    /// # Errors
    /// As for [`Transaction::set_range`], and [`Error::NotMapped`] for a write that could
    /// touch unpinned memory when restored: outside the span from the lowest run to the
    /// highest when that span lies in one pinned region (the common case, checked once),
    /// otherwise outside every run. Nothing is declared then (the caller puts its bytes back
    /// itself). A write between runs of one region is not refused: restoring it is safe, and
    /// a caller's writes lie in its runs by construction (the RDS write log builds its runs
    /// from its writes).
    pub(crate) fn declare_written(
        &mut self,
        runs: &[(usize, usize)],
        writes: &[(usize, usize)],
        olds: &[u64],
    ) -> Result<()> {
        self.check_open()?;
        // The common case: every run is non-empty and the span from the lowest to the
        // highest byte lies in the region of the last range (the heap region, pinned), and
        // there are no range locks to take: the runs need one region check between them.
        let (mut low, mut high, mut non_empty) = (usize::MAX, 0, true);
        for &(start, end) in runs {
            non_empty &= end > start;
            low = low.min(start);
            high = high.max(end);
        }
        let region = self.bufs.last_region.filter(|r| {
            non_empty && high > low && self.rvm.inner.locks.is_none() && r.covers(low, high - low)
        });
        let declared = self.bufs.ranges.len();
        match region {
            Some(region) => self
                .bufs
                .ranges
                .extend(runs.iter().map(|&(start, end)| Range {
                    address: start,
                    length: end - start,
                    region_start: region.start,
                    slot: region.slot,
                    segment_offset: region.segment_offset + (start - region.start) as u64,
                })),
            // Runs in several regions, or range locks to take (isolation): run by run.
            None => {
                for &(start, end) in runs {
                    let length = end.saturating_sub(start);
                    if length == 0 {
                        continue;
                    }
                    match self.region_locked(start, length) {
                        Ok(region) => self.push_range(start, length, region),
                        Err(e) => {
                            self.bufs.ranges.truncate(declared);
                            return Err(e);
                        }
                    }
                }
            }
        }
        let bufs = &mut **self.bufs;
        // Restoring a write stores its words: each must lie in a run, so in a pinned region.
        // In the common case that is the span: one test per write, without a branch; the walk
        // that finds the misfit for the error is made only when there is one.
        let span = high.saturating_sub(low);
        let fits_span = |address: usize, length: usize| {
            let offset = address.wrapping_sub(low);
            (offset <= span) & (length <= span - offset.min(span))
        };
        let misfit = |&&(address, words): &&(usize, usize)| {
            let Some(length) = words.checked_mul(8) else {
                return true;
            };
            match region {
                Some(_) => !fits_span(address, length),
                None => !bufs.ranges[declared..].iter().any(|r| {
                    address >= r.address
                        && address
                            .checked_add(length)
                            .is_some_and(|e| e <= r.address + r.length)
                }),
            }
        };
        // (A write of more words than the span holds is refused: `8 * words` stays small.)
        let all_fit = region.is_some()
            && writes.iter().fold(true, |fit, &(address, words)| {
                fit & (words <= span / 8) & fits_span(address, 8 * words)
            });
        let outside = if all_fit {
            None
        } else {
            writes.iter().find(misfit)
        };
        if let Some(&(address, words)) = outside {
            bufs.ranges.truncate(declared);
            return Err(Error::NotMapped {
                address: address as u64,
                length: words.saturating_mul(8) as u64,
            });
        }
        let at = bufs.undo.len();
        bufs.undo_index.reserve(writes.len());
        let mut offset = at;
        for &(address, words) in writes {
            bufs.undo_index.push((address, 8 * words, offset));
            offset += 8 * words;
        }
        // Every entry's bytes exist (`offset` is past the last one's), holding the old
        // values `olds` gives them (zeros past its end, if it is short).
        bufs.undo.resize(offset, 0);
        for (bytes, old) in bufs.undo[at..].chunks_exact_mut(8).zip(olds) {
            bytes.copy_from_slice(&old.to_le_bytes());
        }
        Ok(())
    }
}
