//! Bounds-checked reads of a heap region by absolute address, over a byte image (fuzzing), the
//! mapped region itself, or the region in a file read through a small page cache (tools).
//!
//! Reads go through raw pointers rather than a `&[u8]` over mapped memory: other threads may
//! be writing their own allocated blocks while the heap reads its tags, and a shared reference
//! would claim the whole region is immutable.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use crate::device::Device;

/// Bytes per page of a [`DeviceImage`]'s cache.
const PAGE_BYTES: u64 = 64 << 10;
/// Pages a [`DeviceImage`] keeps (direct-mapped by page number): 4 MiB, whatever the heap size.
const PAGES_CACHED: usize = 64;

/// A page of a [`DeviceImage`]: its number (from the region start) and its bytes.
type CachedPage = (u64, Box<[u8]>);

/// A heap region stored in a file (or any device), read a page at a time as a walk needs it.
///
/// Memory is bounded by the cache (`PAGES_CACHED` pages of `PAGE_BYTES`), so a checker
/// running over it costs the same memory for any heap size; a block walk reads only the pages
/// holding tags and links, so the interior of blocks, and the holes of a sparse file, are
/// never read. Bytes of the region past the end of the file read as zeros, like a hole.
pub(crate) struct DeviceImage<'d> {
    device: &'d dyn Device,
    /// File offset of the region's first byte.
    offset: u64,
    /// Bytes of the region that lie inside the file.
    readable: u64,
    pages: RefCell<Vec<Option<CachedPage>>>,
    /// The first read error, reported by the caller after the walk.
    error: RefCell<Option<std::io::Error>>,
    bytes_read: Cell<u64>,
}

impl<'d> DeviceImage<'d> {
    /// The region of `length` bytes at file offset `offset` of `device`.
    pub(crate) fn new(device: &'d dyn Device, offset: u64, length: u64) -> std::io::Result<Self> {
        let file_len = device.len()?;
        Ok(DeviceImage {
            device,
            offset,
            readable: file_len.saturating_sub(offset).min(length),
            pages: RefCell::new(vec![None; PAGES_CACHED]),
            error: RefCell::new(None),
            bytes_read: Cell::new(0),
        })
    }

    /// The first read that failed, if any (reads after it give `None` to the walk).
    pub(crate) fn take_error(&self) -> Option<std::io::Error> {
        self.error.borrow_mut().take()
    }

    /// Bytes read from the device so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// Copy `buf.len()` bytes from `offset` in the region (the caller checked the bounds).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let page = at / PAGE_BYTES;
            let within = (at % PAGE_BYTES) as usize;
            let n = (PAGE_BYTES as usize - within).min(buf.len() - done);
            let mut pages = self.pages.borrow_mut();
            let slot = &mut pages[(page % PAGES_CACHED as u64) as usize];
            let bytes = match slot {
                Some((p, bytes)) if *p == page => bytes,
                _ => {
                    let mut bytes = match slot.take() {
                        Some((_, b)) => b,
                        None => vec![0u8; PAGE_BYTES as usize].into_boxed_slice(),
                    };
                    bytes.fill(0);
                    let start = page * PAGE_BYTES;
                    let available = self.readable.saturating_sub(start).min(PAGE_BYTES) as usize;
                    if available > 0 {
                        if let Err(e) = self
                            .device
                            .read_at(&mut bytes[..available], self.offset + start)
                        {
                            self.error.borrow_mut().get_or_insert(e);
                            return None;
                        }
                        self.bytes_read
                            .set(self.bytes_read.get() + available as u64);
                    }
                    &mut slot.insert((page, bytes)).1
                }
            };
            buf[done..done + n].copy_from_slice(&bytes[within..within + n]);
            done += n;
        }
        Some(())
    }
}

#[derive(Clone, Copy)]
enum Source<'a> {
    /// An image in memory or mapped memory: `length` bytes at `base`.
    Memory(*const u8),
    /// A region in a file, through a page cache.
    Device(&'a DeviceImage<'a>),
}

/// A read-only window on a heap region that starts at absolute address `address`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    source: Source<'a>,
    length: u64,
    address: u64,
    _image: PhantomData<&'a [u8]>,
}

impl<'a> View<'a> {
    /// A view of a byte image of the region, as if it were mapped at `address`.
    pub(crate) fn of_image(bytes: &'a [u8], address: u64) -> View<'a> {
        View {
            source: Source::Memory(bytes.as_ptr()),
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
            source: Source::Memory(address as usize as *const u8),
            length,
            address,
            _image: PhantomData,
        }
    }

    /// A view of a region stored in a file, read through `image`'s page cache.
    pub(crate) fn of_device(image: &'a DeviceImage<'a>, address: u64, length: u64) -> View<'a> {
        View {
            source: Source::Device(image),
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
        // One comparison: an `at` below the region wraps to an offset past any length, and
        // the 8 bytes fit when `offset <= length - 8`, i.e. `offset < length - 7` (nothing
        // fits in a region shorter than 8 bytes, where the saturated bound is 0).
        let offset = at.wrapping_sub(self.address);
        if offset >= self.length.saturating_sub(7) {
            return None;
        }
        match self.source {
            Source::Memory(base) => {
                // SAFETY: the 8 bytes lie inside the region, which is readable for the view's
                // lifetime (an image borrowed for 'a, or mapped memory per `of_mapped`'s
                // contract); other threads may write mapped memory, so it is read with a
                // race-defined access.
                let word = unsafe { crate::racy::load_u64_le(base.add(offset as usize)) };
                Some(word)
            }
            Source::Device(image) => {
                let mut bytes = [0u8; 8];
                image.read(offset, &mut bytes)?;
                Some(u64::from_le_bytes(bytes))
            }
        }
    }

    /// The `N` little-endian u64s from absolute address `at`, if they all lie inside the
    /// region (one bounds check; in memory, one aligned load per word).
    #[inline(always)]
    pub(crate) fn words<const N: usize>(&self, at: u64) -> Option<[u64; N]> {
        let offset = at.checked_sub(self.address)?;
        if offset.checked_add(8 * N as u64)? > self.length {
            return None;
        }
        match self.source {
            Source::Memory(base) => {
                // SAFETY: as in `word`: the `8 * N` bytes lie inside the region.
                let words = unsafe { crate::racy::load_u64s_le::<N>(base.add(offset as usize)) };
                Some(words)
            }
            Source::Device(image) => {
                let mut words = [0u64; N];
                for (i, w) in words.iter_mut().enumerate() {
                    let mut bytes = [0u8; 8];
                    image.read(offset + 8 * i as u64, &mut bytes)?;
                    *w = u64::from_le_bytes(bytes);
                }
                Some(words)
            }
        }
    }

    /// Copy `buf.len()` bytes from absolute address `at`, if they lie inside the region.
    #[inline]
    pub(crate) fn read(&self, at: u64, buf: &mut [u8]) -> Option<()> {
        let offset = at.checked_sub(self.address)?;
        if offset.checked_add(buf.len() as u64)? > self.length {
            return None;
        }
        match self.source {
            // SAFETY: as in `word`.
            Source::Memory(base) => unsafe { crate::racy::load(base.add(offset as usize), buf) },
            Source::Device(image) => image.read(offset, buf)?,
        }
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
        assert_eq!(v.word(0x1009), Some(0x0011_2233_4455_6677));
        assert_eq!(v.word(0x1039), None);
        assert_eq!(v.word(0xfff), None);
        assert_eq!(v.word(u64::MAX - 3), None);
        let mut buf = [0u8; 4];
        assert!(v.read(0x103c, &mut buf).is_some());
        assert!(v.read(0x103d, &mut buf).is_none());
        assert_eq!(v.words::<2>(0x1000), Some([0, 0x1122_3344_5566_7788]));
        assert_eq!(v.words::<2>(0x1030), Some([0, 0]));
        assert_eq!(v.words::<2>(0x1031), None);
        assert_eq!(v.words::<1>(0xff8), None);
        assert_eq!(v.words::<1>(0x1009), Some([0x0011_2233_4455_6677]));
    }

    /// The single comparison in `word` (a saturated bound) still refuses every word that
    /// does not fit whole, in regions shorter than a word too, and addresses below them.
    #[test]
    fn a_word_is_read_only_when_all_its_bytes_lie_in_the_region() {
        for len in 0..=9 {
            let image = vec![0xabu8; len];
            let v = View::of_image(&image, 0x1000);
            assert_eq!(v.word(0x1000).is_some(), len >= 8, "length {len}");
            assert_eq!(v.word(0x1001).is_some(), len >= 9, "length {len}");
            assert_eq!(v.word(0x1000 + len as u64), None);
            assert_eq!(v.word(0xfff), None);
            assert_eq!(v.word(0), None);
            assert_eq!(v.word(u64::MAX), None);
        }
    }
}
