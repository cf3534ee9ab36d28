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

use super::{queue_encoded, CommitMode, Queued, RegionPin};
use crate::error::{Error, Result};
use crate::format::log::{transaction_record_size, RangeHeader};
use crate::instance::Rvm;
use crate::racy;
use crate::sync::lock;

/// Queue a no-restore transaction record of `ranges` (`[start, end)`, each inside `pin`'s
/// region and not empty; merged or not, in any order) with their bytes as memory holds them
/// now.
/// Nothing is queued for no ranges. The caller waits for the flush with [`Queued::wait`]
/// once it has released its locks.
///
/// # Errors
/// [`Error::NotMapped`] for a range outside the pinned region; [`Error::TooBig`] for a
/// record larger than the log allows; [`Error::Failed`] when the instance is unusable.
/// Nothing is queued then, and the refusal is counted as an abort (not as a transaction
/// begun).
#[inline]
pub(crate) fn queue_own_record(
    rvm: &Rvm,
    pin: &RegionPin<'_>,
    ranges: &[(usize, usize)],
    mode: CommitMode,
) -> Result<Queued> {
    let inner = &rvm.inner;
    let region = pin.region();
    let refuse = |e: Error| {
        // Counted as an own record refused, under the queue lock like a committed one (rare):
        // an abort and a no-restore transaction in the statistics, and never begun, so
        // `query` leaves it out of the active count as it is (no subtraction needed).
        let c = &mut lock(&inner.queue).counts;
        c.own_refused += 1;
        c.no_restore_transactions += 1;
        Err(e)
    };
    // Each range checked and sized in one walk (`transaction_record_size` of their lengths).
    let mut size = transaction_record_size([]);
    for &(start, end) in ranges {
        if start < region.start || end > region.end || end <= start {
            return refuse(Error::NotMapped {
                address: start as u64,
                length: end.saturating_sub(start) as u64,
            });
        }
        size = size.saturating_add(RangeHeader::encoded_size((end - start) as u64));
    }
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
        segment: region.slot,
        offset: region.segment_offset + (address - region.start) as u64,
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
        // A commit without a begin: `query` subtracts it from the commits.
        c.own_records += 1;
    }))
}
