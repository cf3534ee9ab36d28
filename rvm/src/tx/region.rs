//! Pinning mapped regions: the one description of a pinned region that a [`Transaction`]
//! and the records a library queues of its own ([`super::queue_own_record`]) share.
//!
//! A region is pinned through its pin word ([`PinWord`]) while memory in it is used: an
//! unmap retires the word before it unmaps and is refused while the word counts a pin, so a
//! pin keeps the region mapped until it is dropped. A [`RegionHandle`] is what a pin from the
//! region table learned (where the region lies, its segment slot and offset, the instance, and
//! the pin word itself); kept unpinned after use, it pins the same region again with one
//! atomic read-modify-write and no region-table lock ([`RegionHandle::try_pin_again`]). A
//! transaction keeps its thread's recent region that way (`Spare::recent`); the RDS heap keeps
//! the region of its own records that way (`rds::heap`, through [`RegionPin::again`]).
//!
//! [`Transaction`]: super::Transaction

use std::sync::Arc;

use crate::error::Result;
use crate::instance::{Inner, PinWord, Rvm};

/// Where a mapped region lies and where its bytes lie in its segment (or plain file).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    /// First address of the region.
    pub(crate) start: usize,
    /// One past its last address.
    pub(crate) end: usize,
    /// Its entry in the log's segment table.
    pub(crate) slot: u32,
    /// Offset of `start` in the segment.
    pub(crate) segment_offset: u64,
}

impl Region {
    /// Whether `[address, address+length)` lies inside this region.
    #[inline]
    pub(crate) fn covers(&self, address: usize, length: usize) -> bool {
        address >= self.start && address.checked_add(length).is_some_and(|e| e <= self.end)
    }
}

/// A region pinned once from the region table ([`RegionHandle::pin`]): its description, the
/// instance whose table holds it, and its pin word. The handle itself does not say whether it
/// pins now: its owner tracks that, and gives each pin back with [`RegionHandle::unpin`]
/// (a [`Transaction`](super::Transaction) at its end; a [`RegionPin`] when dropped).
///
/// Kept after the pin is given back, it pins the region again without the table
/// ([`RegionHandle::try_pin_again`]). That is sound however old the handle is: the `Arc`
/// keeps the pin word alive after the region is gone, an unmap retires the word before it
/// unmaps (a refused unmap un-retires it), and a pin and a retire are read-modify-writes of
/// that one word, so a pin that succeeds proves the region is still mapped, as this handle
/// describes it, and stays so until unpinned. Not `Clone`: each pin is given back once,
/// through the handle that took it.
pub(crate) struct RegionHandle {
    pub(crate) region: Region,
    /// `Inner::id` of the instance whose region table holds the region.
    instance: u64,
    pin: Arc<PinWord>,
}

impl RegionHandle {
    /// Find the mapped region holding `[address, address+length)` in `inner`'s region table
    /// and pin it; the caller owns the pin.
    ///
    /// # Errors
    /// [`Error::NotMapped`](crate::Error::NotMapped) unless the bytes lie inside one mapped
    /// region.
    pub(crate) fn pin(inner: &Inner, address: usize, length: usize) -> Result<RegionHandle> {
        let found = inner.pin_region(address, length)?;
        Ok(RegionHandle {
            region: Region {
                start: found.start,
                end: found.end,
                slot: found.slot,
                segment_offset: found.segment_offset,
            },
            instance: inner.id,
            pin: found.pin,
        })
    }

    /// Whether this handle describes a region of the instance `instance` holding
    /// `[address, address+length)` (true or not, the region may have been unmapped since).
    #[inline]
    pub(crate) fn holds(&self, instance: u64, address: usize, length: usize) -> bool {
        self.instance == instance && self.region.covers(address, length)
    }

    /// Pin the region again; false if it is unmapped or being unmapped (a refused unmap may
    /// let it pin again later; callers fall back to the region table). See the type's
    /// documentation for why a success is sound.
    #[inline]
    pub(crate) fn try_pin_again(&self) -> bool {
        self.pin.try_pin()
    }

    /// Give back one pin taken by [`RegionHandle::pin`] or [`RegionHandle::try_pin_again`].
    ///
    /// # Safety
    /// The caller gives back a pin it took through this handle and has not given back yet:
    /// one pin too many given back would let an unmap go ahead while another holder still
    /// reads or writes the region.
    #[inline]
    pub(crate) unsafe fn unpin(&self) {
        self.pin.unpin();
    }
}

/// A region pinned through a [`RegionHandle`] its caller keeps, until this is dropped.
/// (A library queueing records of its own pins this way, without a transaction.)
pub(crate) struct RegionPin<'h> {
    handle: &'h RegionHandle,
}

impl<'h> RegionPin<'h> {
    /// Pin the mapped region holding `[address, address+length)`: through `kept` when it
    /// describes such a region of `rvm` that is still mapped (one atomic read-modify-write, no
    /// region table, as a transaction pins its thread's recent region), else from the region
    /// table, whose handle then replaces `kept`. Once the pin is dropped, `kept` can serve the
    /// next call.
    ///
    /// # Errors
    /// [`Error::NotMapped`](crate::Error::NotMapped) unless the bytes lie inside one mapped
    /// region; `kept` is then `None`.
    #[inline]
    pub(crate) fn again(
        kept: &'h mut Option<RegionHandle>,
        rvm: &Rvm,
        address: usize,
        length: usize,
    ) -> Result<RegionPin<'h>> {
        let inner = &rvm.inner;
        let handle = match kept.take() {
            Some(h) if h.holds(inner.id, address, length) && h.try_pin_again() => h,
            _ => RegionHandle::pin(inner, address, length)?,
        };
        Ok(RegionPin {
            handle: kept.insert(handle),
        })
    }

    /// The pinned region.
    #[inline]
    pub(crate) fn region(&self) -> &Region {
        &self.handle.region
    }
}

impl Drop for RegionPin<'_> {
    fn drop(&mut self) {
        // SAFETY: `again` took exactly one pin through this handle, and a `RegionPin` is
        // dropped once.
        unsafe { self.handle.unpin() };
    }
}
