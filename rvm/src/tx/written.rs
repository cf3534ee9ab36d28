//! Ranges a library declares on a transaction *after* writing them, with their old values
//! given (`Transaction::declare_written`): the RDS heap's frees at commit, whose write log
//! knows every word's value from before the write.

use super::{Range, Transaction};
use crate::error::{Error, Result};

impl Transaction<'_> {
    /// Declare `runs` (`[start, end)`, each inside one mapped region, which must be pinned
    /// already: [`Transaction::pin`]), which the caller has *already written*, with their old
    /// values given: `writes` holds every 8-byte word the caller wrote in them, as (address,
    /// value before that write), in the order written, so that every byte of the runs is in
    /// some word. Each write is saved as an undo entry of its own whatever the mode, so a
    /// refused record (or [`Transaction::fail`]) puts them back last write first, which
    /// leaves every word with the value it had before its first write. For a hook's changes
    /// at commit (the RDS heap's frees): its write log knows every old value, so nothing is
    /// put back and read from memory again, and the runs cost one call.
    ///
    /// # Errors
    /// As for [`Transaction::set_range`], and [`Error::NotMapped`] for a write that could
    /// touch unpinned memory when restored: outside the span from the lowest run to the
    /// highest when that span lies in one pinned region (the common case, checked once),
    /// otherwise outside every run. Nothing is declared then (the caller puts its bytes back
    /// itself). A write between runs of one region is not refused: restoring it is safe, and
    /// a caller's writes lie in its runs by construction (the RDS write log builds its runs
    /// from its words).
    pub(crate) fn declare_written(
        &mut self,
        runs: &[(usize, usize)],
        writes: impl ExactSizeIterator<Item = (usize, u64)> + Clone,
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
        // Restoring a word writes it: each must lie in a run, so in a pinned region.
        // A write fits the span when its offset from `low` is at most `high - low - 8`.
        let last = (high - low).checked_sub(8);
        let misfit = |&(address, _): &(usize, u64)| match (region, last) {
            (Some(_), Some(last)) => address.wrapping_sub(low) > last,
            (Some(_), None) => true,
            (None, _) => !bufs.ranges[declared..].iter().any(|r| {
                address >= r.address
                    && address
                        .checked_add(8)
                        .is_some_and(|e| e <= r.address + r.length)
            }),
        };
        // In the common case one comparison per write, without a branch: the walk that
        // finds the misfit for the error is made only when there is one.
        let all_fit = match (region, last) {
            (Some(_), Some(last)) => writes.clone().fold(true, |fit, (address, _)| {
                fit & (address.wrapping_sub(low) <= last)
            }),
            _ => false,
        };
        let outside = if all_fit {
            None
        } else {
            writes.clone().find(misfit)
        };
        if let Some((address, _)) = outside {
            bufs.ranges.truncate(declared);
            return Err(Error::NotMapped {
                address: address as u64,
                length: 8,
            });
        }
        let (at, first) = (bufs.undo.len(), bufs.undo_index.len());
        bufs.undo_index.extend(
            writes
                .clone()
                .enumerate()
                .map(|(i, (address, _))| (address, 8, at + 8 * i)),
        );
        // Every entry's 8 bytes exist, whatever a second walk of `writes` yields.
        bufs.undo
            .resize(at + 8 * (bufs.undo_index.len() - first), 0);
        for (bytes, (_, old)) in bufs.undo[at..].chunks_exact_mut(8).zip(writes) {
            bytes.copy_from_slice(&old.to_le_bytes());
        }
        Ok(())
    }
}
