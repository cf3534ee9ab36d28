//! Bounds-checked reads of a heap region by absolute address, over either a byte image (tools,
//! fuzzing) or the mapped region itself.
//!
//! Reads go through raw pointers rather than a `&[u8]` over mapped memory: other threads may
//! be writing their own allocated blocks while the heap reads its tags, and a shared reference
//! would claim the whole region is immutable.

use std::marker::PhantomData;

/// A read-only window on a heap region that starts at absolute address `address`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    base: *const u8,
    length: u64,
    address: u64,
    _image: PhantomData<&'a [u8]>,
}

impl<'a> View<'a> {
    /// A view of a byte image of the region, as if it were mapped at `address`.
    pub(crate) fn of_image(bytes: &'a [u8], address: u64) -> View<'a> {
        View {
            base: bytes.as_ptr(),
            length: bytes.len() as u64,
            address,
            _image: PhantomData,
        }
    }

    /// A view of mapped memory.
    ///
    /// # Safety
    /// `[address, address+length)` must stay mapped and readable for as long as the view (and
    /// any copy of it) is used: the caller holds the segment's mapped flag or has pinned the
    /// region with a `set_range` in an open transaction.
    pub(crate) unsafe fn of_mapped(address: u64, length: u64) -> View<'static> {
        View {
            base: address as usize as *const u8,
            length,
            address,
            _image: PhantomData,
        }
    }

    /// Absolute address of the region's first byte.
    pub(crate) fn address(&self) -> u64 {
        self.address
    }

    /// Length of the region (or of the image, if shorter).
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    /// The little-endian u64 at absolute address `at`, if all 8 bytes lie inside the region.
    #[inline]
    pub(crate) fn word(&self, at: u64) -> Option<u64> {
        let offset = at.checked_sub(self.address)?;
        if offset.checked_add(8)? > self.length {
            return None;
        }
        let mut bytes = [0u8; 8];
        // SAFETY: the 8 bytes lie inside the region, which is readable for the view's lifetime
        // (an image borrowed for 'a, or mapped memory per `of_mapped`'s contract); other
        // threads may write mapped memory, so it is copied with race-defined accesses.
        unsafe { crate::racy::load(self.base.add(offset as usize), &mut bytes) };
        Some(u64::from_le_bytes(bytes))
    }

    /// Copy `buf.len()` bytes from absolute address `at`, if they lie inside the region.
    #[inline]
    pub(crate) fn read(&self, at: u64, buf: &mut [u8]) -> Option<()> {
        let offset = at.checked_sub(self.address)?;
        if offset.checked_add(buf.len() as u64)? > self.length {
            return None;
        }
        // SAFETY: as in `word`.
        unsafe { crate::racy::load(self.base.add(offset as usize), buf) };
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked_by_absolute_address() {
        let mut image = vec![0u8; 64];
        image[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        let v = View::of_image(&image, 0x1000);
        assert_eq!(v.word(0x1008), Some(0x1122_3344_5566_7788));
        assert_eq!(v.word(0x1038), Some(0));
        assert_eq!(v.word(0x1039), None);
        assert_eq!(v.word(0xfff), None);
        assert_eq!(v.word(u64::MAX - 3), None);
        let mut buf = [0u8; 4];
        assert!(v.read(0x103c, &mut buf).is_some());
        assert!(v.read(0x103d, &mut buf).is_none());
    }
}
