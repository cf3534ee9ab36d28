//! Records a library queues without a [`Transaction`]: the RDS heap's own changes.
//!
//! A heap call changes a few words under the heap's lock and must commit them no_flush
//! before the lock is released (see `rds/heap.rs`). It knows its ranges exactly (sorted,
//! merged) and keeps the old values itself, so a whole [`Transaction`] (begin, a `set_range`
//! per range, coalescing, release) is more than it needs: it pins the region
//! ([`RegionPin`]), writes, and queues one record of its ranges
//! ([`queue_own_record`]). The record is a no-restore transaction record, counted as one, like
//! the heap transaction it replaces. Range locks (isolation) are not taken: the heap's lock
//! already orders every change to heap metadata.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{queue_encoded, CommitMode, Queued};
use crate::error::{Error, Result};
use crate::format::log::{transaction_record_size, RangeHeader};
use crate::instance::{PinWord, Rvm};
use crate::racy;

/// A mapped region pinned (kept mapped) without a transaction, until dropped or given back
/// as a [`RegionHandle`].
pub(crate) struct RegionPin {
    start: usize,
    end: usize,
    slot: u32,
    segment_offset: u64,
    /// `Inner::id` of the instance whose region table holds the region.
    instance: u64,
    /// The region's pin word, pinned once by this value (`None` once given back).
    pins: Option<Arc<PinWord>>,
}

/// What a [`RegionPin`] knew of its region, kept (unpinned) to pin the same region again
/// without the region table: [`RegionPin::again`]. Holding it keeps nothing mapped; a pin
/// through it fails once the region is unmapped (its pin word is retired for good).
pub(crate) struct RegionHandle {
    start: usize,
    end: usize,
    slot: u32,
    segment_offset: u64,
    instance: u64,
    pins: Arc<PinWord>,
}

impl RegionPin {
    /// Pin the mapped region holding `[address, address+length)`.
    ///
    /// # Errors
    /// [`Error::NotMapped`] unless the bytes lie inside one mapped region.
    pub(crate) fn new(rvm: &Rvm, address: usize, length: usize) -> Result<RegionPin> {
        let region = rvm.inner.pin_region(address, length)?;
        Ok(RegionPin {
            start: region.start,
            end: region.end,
            slot: region.slot,
            segment_offset: region.segment_offset,
            instance: rvm.inner.id,
            pins: Some(region.pin),
        })
    }

    /// [`RegionPin::new`], through `handle` when it describes a region of `rvm` holding the
    /// bytes that is still mapped (one atomic read-modify-write, no region table), as a
    /// transaction pins its thread's recent region.
    ///
    /// # Errors
    /// As for [`RegionPin::new`].
    pub(crate) fn again(
        handle: Option<RegionHandle>,
        rvm: &Rvm,
        address: usize,
        length: usize,
    ) -> Result<RegionPin> {
        if let Some(h) = handle {
            let covers =
                address >= h.start && address.checked_add(length).is_some_and(|e| e <= h.end);
            // A pin that succeeds proves the region is still mapped (an unmap retires the pin
            // word before it unmaps), so the description is still true.
            if h.instance == rvm.inner.id && covers && h.pins.try_pin() {
                return Ok(RegionPin {
                    start: h.start,
                    end: h.end,
                    slot: h.slot,
                    segment_offset: h.segment_offset,
                    instance: h.instance,
                    pins: Some(h.pins),
                });
            }
        }
        RegionPin::new(rvm, address, length)
    }

    /// Unpin, keeping the description for [`RegionPin::again`].
    pub(crate) fn into_handle(mut self) -> Option<RegionHandle> {
        let pins = self.pins.take()?;
        pins.unpin();
        Some(RegionHandle {
            start: self.start,
            end: self.end,
            slot: self.slot,
            segment_offset: self.segment_offset,
            instance: self.instance,
            pins,
        })
    }
}

impl Drop for RegionPin {
    fn drop(&mut self) {
        if let Some(pins) = &self.pins {
            pins.unpin();
        }
    }
}

/// Queue a no-restore transaction record of `ranges` (`[start, end)`, each inside `pin`'s
/// region and not empty; merged or not, in any order) with their bytes as memory holds them
/// now.
/// Nothing is queued for no ranges. The caller waits for the flush with [`Queued::wait`]
/// once it has released its locks.
///
/// # Errors
/// [`Error::NotMapped`] for a range outside the pinned region; [`Error::TooBig`] for a
/// record larger than the log allows; [`Error::Failed`] when the instance is unusable.
/// Nothing is queued then, and the refusal is counted as an abort.
pub(crate) fn queue_own_record(
    rvm: &Rvm,
    pin: &RegionPin,
    ranges: &[(usize, usize)],
    mode: CommitMode,
) -> Result<Queued> {
    let inner = &rvm.inner;
    let refuse = |e: Error| {
        // Counted as a transaction begun and aborted (`query` derives the active count from
        // begun, committed and aborted; refusals are rare).
        inner.begun.fetch_add(1, Ordering::Relaxed);
        inner.stats.aborts.fetch_add(1, Ordering::Release);
        inner
            .stats
            .no_restore_transactions
            .fetch_add(1, Ordering::Relaxed);
        Err(e)
    };
    if let Some(&(start, end)) = ranges
        .iter()
        .find(|(s, e)| *s < pin.start || *e > pin.end || e <= s)
    {
        return refuse(Error::NotMapped {
            address: start as u64,
            length: end.saturating_sub(start) as u64,
        });
    }
    let size = transaction_record_size(ranges.iter().map(|(s, e)| (e - s) as u64));
    if !ranges.is_empty() && size > inner.record_bytes_max {
        return refuse(Error::TooBig {
            size,
            max: inner.record_bytes_max,
        });
    }
    if let Err(e) = inner.check_failed() {
        return refuse(e);
    }
    let headers = ranges.iter().map(|&(address, end)| RangeHeader {
        segment: pin.slot,
        offset: pin.segment_offset + (address - pin.start) as u64,
        length: (end - address) as u64,
        address: address as u64,
    });
    let fill = |i: usize, dst: &mut [u8]| {
        let (address, end) = ranges[i];
        let n = dst.len().min(end - address);
        // SAFETY: `[address, address + n)` lies inside the pinned region (checked above),
        // which stays mapped while `pin` lives, for the whole copy; other threads may write
        // it, so it is copied, not borrowed.
        unsafe { racy::load(address as *const u8, &mut dst[..n]) }
    };
    Ok(queue_encoded(inner, mode, 0, size, headers, fill, |c| {
        c.no_restore_transactions += 1;
        // A commit without a begin: `query` leaves it out of the active count.
        c.own_records += 1;
    }))
}
