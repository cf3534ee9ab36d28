//! RDS: the recoverable dynamic storage heap.
//!
//! A heap segment has two regions: the **heap** at `start_address` and the **static** region
//! right after it. The heap region starts with a header (magic, version, geometry, counters,
//! `nlists` free-list heads) followed by blocks of whole chunks, each with a boundary tag
//! (guard, state, size) at both ends; see `FORMAT.md` ("RDS heap") and
//! [`crate::format::heap`].
//!
//! Allocation is quick fit: list *i* holds free blocks of exactly *i* chunks and the last list
//! every larger block. A free merges the block at once with a free neighbour on either side.
//! Several open transactions may allocate and free at once: every heap call is a short
//! critical section, an allocation is committed at once in a transaction of the heap's own
//! (and freed again if the caller aborts), and a free is made inside the caller's record at
//! its commit. An abort therefore never puts heap metadata back over other transactions'
//! changes, and the heap checks clean after a crash at any point (a block allocated by a
//! transaction that never committed may be leaked). See [`Heap`] for the rule.
//!
//! ```no_run
//! use rvm::rds::{self, Heap, HeapLayout, PersistentPtr};
//! use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
//! # fn main() -> Result<(), rds::Error> {
//! # let rvm = Rvm::open("/srv/log", Options::default())?;
//! let layout = HeapLayout {
//!     start_address: 0x2000_0000_0000,
//!     heap_length: 64 << 20,
//!     static_length: 1 << 20,
//!     nlists: 80,
//!     chunk_size: 64,
//! };
//! // SAFETY (both blocks): /srv/data is this program's own file; nothing shortens it while
//! // it is mapped.
//! unsafe {
//!     rds::create_heap_segment(&rvm, "/srv/data".as_ref(), layout.segment_length_min(),
//!         &layout, Default::default())
//! }?;
//! let segment = unsafe { rvm.map("/srv/data", MapOptions::default()) }?;
//! let heap = Heap::load(&segment)?;
//! let root = heap.static_root::<PersistentPtr<u64>>()?;
//! let mut tx = rvm.begin(BeginMode::Restore)?;
//! let counter = heap.alloc(&mut tx, &1u64)?;
//! root.set(&mut tx, &counter)?;
//! tx.end(CommitMode::Flush)?;
//! # Ok(())
//! # }
//! ```

mod alloc;
mod check;
mod data_lock;
mod heap;
mod pending;
mod reader;
mod root;
mod view;
mod write_log;

use std::path::Path;

use crate::device::DeviceRef;
use crate::format::segment::{SegmentHeader, REGION_ALIGN};
use crate::segment::{self, CreateOptions, RegionSpec};
use crate::{BeginMode, CommitMode, MapOptions, Rvm, Segment};

pub use crate::error::heap::Error;
pub use crate::format::heap::{
    BlockState, HeapCounters, HeapGeometry, BLOCK_OVERHEAD_BYTES, CHUNK_SIZE_MAX, CHUNK_SIZE_MIN,
    HEAP_LENGTH_MAX, NLISTS_MAX,
};
pub use check::{
    blocks_image, check_device, check_image, fragmentation, inspect_device, inspect_image,
    BlockInfo, CheckReport, HeapImageInfo, ListInfo, Problem, ProblemKind, PROBLEMS_REPORTED_MAX,
};
pub use heap::{Heap, HeapStatistics, IntentionList};
pub use root::{PersistentPtr, Root};

/// Regions must end at or below this address (the segment header's rule, see
/// [`crate::format::segment::ADDRESS_END_MAX`]), so a layout that could never be mapped is
/// refused up front.
pub use crate::format::segment::ADDRESS_END_MAX;
/// Largest static region accepted (1 TiB), to catch mistyped values.
pub const STATIC_LENGTH_MAX: u64 = 1 << 40;

/// The default heap address: 32 TiB (`0x2000_0000_0000`). On x86-64 and arm64 Linux it is
/// clear of the common mappings: executables and `brk` (near `0x5555_...` for PIE, low
/// addresses otherwise), shared libraries, stacks and `mmap` (just below 128 TiB, growing
/// down), and the sanitizers' shadow memory (below 16 TiB for AddressSanitizer).
pub const DEFAULT_START_ADDRESS: u64 = 0x2000_0000_0000;

/// Where a heap segment's regions go and how its heap is shaped (what `rdsinit` asks for).
///
/// The default: a 256 MiB heap at [`DEFAULT_START_ADDRESS`], a 64 KiB static region, 80
/// free lists, 64-byte chunks (segment files are sparse: an empty heap uses a few pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapLayout {
    /// Address of the heap region; the static region follows it.
    pub start_address: u64,
    /// Length of the heap region in bytes (a multiple of the page size).
    pub heap_length: u64,
    /// Length of the static region in bytes (a multiple of the page size).
    pub static_length: u64,
    /// Free lists: list i < nlists holds blocks of exactly i chunks, list nlists the rest.
    pub nlists: u64,
    /// Allocation granularity in bytes (a multiple of 8 between `CHUNK_SIZE_MIN` and
    /// `CHUNK_SIZE_MAX` of `rvm::format::heap`).
    pub chunk_size: u64,
}

impl Default for HeapLayout {
    fn default() -> Self {
        HeapLayout {
            start_address: DEFAULT_START_ADDRESS,
            heap_length: 256 << 20,
            static_length: 64 << 10,
            nlists: 80,
            chunk_size: 64,
        }
    }
}

impl HeapLayout {
    /// Check every parameter; the error names the parameter and the rule it broke.
    pub fn validate(&self) -> Result<(), Error> {
        self.geometry().map(|_| ())
    }

    /// The heap's geometry (header size, block area), after validating.
    pub fn geometry(&self) -> Result<HeapGeometry, Error> {
        let bad = |parameter: &'static str, rule: String| Err(Error::BadLayout { parameter, rule });
        if self.start_address == 0 || !self.start_address.is_multiple_of(REGION_ALIGN) {
            return bad(
                "start_address",
                format!(
                    "{:#x} must be a non-zero multiple of {REGION_ALIGN} (regions are mapped \
                     on {REGION_ALIGN}-byte boundaries)",
                    self.start_address
                ),
            );
        }
        if self.heap_length == 0 || !self.heap_length.is_multiple_of(REGION_ALIGN) {
            return bad(
                "heap_length",
                format!(
                    "{} must be a non-zero multiple of {REGION_ALIGN} (segment regions are \
                     {REGION_ALIGN}-byte aligned)",
                    self.heap_length
                ),
            );
        }
        if self.static_length == 0
            || !self.static_length.is_multiple_of(REGION_ALIGN)
            || self.static_length > STATIC_LENGTH_MAX
        {
            return bad(
                "static_length",
                format!(
                    "{} must be a non-zero multiple of {REGION_ALIGN}, at most {STATIC_LENGTH_MAX}",
                    self.static_length
                ),
            );
        }
        let end = self
            .start_address
            .checked_add(self.heap_length)
            .and_then(|e| e.checked_add(self.static_length));
        if end.is_none_or(|e| e > ADDRESS_END_MAX) {
            return bad(
                "start_address",
                format!(
                    "heap and static regions from {:#x} ({} + {} bytes) would end past \
                     {ADDRESS_END_MAX:#x}, the end of user address space",
                    self.start_address, self.heap_length, self.static_length
                ),
            );
        }
        HeapGeometry::new(self.heap_length, self.chunk_size, self.nlists).map_err(|e| {
            Error::BadLayout {
                parameter: e.field,
                rule: e.detail,
            }
        })
    }

    /// Address of the static region.
    pub fn static_address(&self) -> u64 {
        self.start_address.saturating_add(self.heap_length)
    }

    /// The smallest data segment that holds this layout: the segment header, then both
    /// regions.
    pub fn segment_length_min(&self) -> u64 {
        crate::format::segment::SEGMENT_HEADER_SIZE
            .saturating_add(self.heap_length)
            .saturating_add(self.static_length)
    }

    fn regions(&self) -> [RegionSpec; 2] {
        [
            RegionSpec {
                length: self.heap_length,
                address: self.start_address,
            },
            RegionSpec {
                length: self.static_length,
                address: self.static_address(),
            },
        ]
    }

    fn segment_header(&self, data_length: u64) -> Result<SegmentHeader, Error> {
        self.validate()?;
        if data_length < self.segment_length_min() {
            return Err(Error::BadLayout {
                parameter: "data_length",
                rule: format!(
                    "{data_length} bytes cannot hold the segment header ({}) + heap ({}) + \
                     static region ({}) = {} bytes",
                    crate::format::segment::SEGMENT_HEADER_SIZE,
                    self.heap_length,
                    self.static_length,
                    self.segment_length_min()
                ),
            });
        }
        Ok(segment::layout(data_length, &self.regions())?)
    }
}

/// Create a heap segment file (Coda's `rds_zap_heap`): write the segment header with the
/// heap region at `start_address` and the static region right after it, map it, initialise
/// the heap in a restore transaction committed with flush, truncate the log so the segment
/// file holds the heap, and unmap it.
///
/// # Safety
///
/// The new file is mapped while the heap is initialised (as by [`Rvm::map`]): nobody may
/// shorten it until this call returns, or touching a page past its end kills the process with
/// SIGBUS. A file this call has just created, in a directory others do not write, meets this.
pub unsafe fn create_heap_segment(
    rvm: &Rvm,
    data: &Path,
    data_length: u64,
    layout: &HeapLayout,
    options: CreateOptions,
) -> Result<SegmentHeader, Error> {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        create_heap_segment_mapped(
            rvm,
            data,
            data_length,
            layout,
            options,
            MapOptions::default(),
        )
    }
}

/// [`create_heap_segment`], with the new file mapped as `map` says while the heap is
/// initialised (a store in copy mode never maps its files).
///
/// # Safety
/// As for [`create_heap_segment`], unless `map` is in copy mode ([`MapOptions::copy`]): then
/// the file is never mapped, and nothing done to it can fault.
pub(crate) unsafe fn create_heap_segment_mapped(
    rvm: &Rvm,
    data: &Path,
    data_length: u64,
    layout: &HeapLayout,
    options: CreateOptions,
    map: MapOptions,
) -> Result<SegmentHeader, Error> {
    let header = layout.segment_header(data_length)?;
    // A refusal must come before an existing file is overwritten.
    rvm.inner.check_room_for_new_segment()?;
    // The device `create` returns holds the file's lock; mapping opens its own.
    drop(segment::create(data, &header, options)?);
    // SAFETY: forwarded from this function's contract.
    let seg = unsafe { rvm.map(data, map) }?;
    init_and_release(rvm, &seg, layout)?;
    Ok(header)
}

/// [`create_heap_segment`] on a device (an in-memory or crash device in tests).
///
/// # Safety
///
/// As for [`Rvm::map_device`]: if the device lends a mappable descriptor, the file it names
/// must not be shortened until this call returns. Devices without one (memory and crash
/// devices) meet this trivially.
pub unsafe fn create_heap_segment_on(
    rvm: &Rvm,
    device: DeviceRef,
    data_length: u64,
    layout: &HeapLayout,
) -> Result<SegmentHeader, Error> {
    let header = layout.segment_header(data_length)?;
    rvm.inner.check_room_for_new_segment()?;
    segment::write_header(&*device, &header)?;
    // SAFETY: forwarded from this function's contract.
    let seg = unsafe { rvm.map_device(device, MapOptions::default()) }?;
    init_and_release(rvm, &seg, layout)?;
    Ok(header)
}

fn init_and_release(rvm: &Rvm, seg: &Segment, layout: &HeapLayout) -> Result<(), Error> {
    let result = (|| -> Result<(), Error> {
        let mut tx = rvm.begin(BeginMode::Restore)?;
        let heap = Heap::init(&mut tx, seg, layout.nlists, layout.chunk_size)?;
        tx.end(CommitMode::Flush)?;
        drop(heap);
        rvm.truncate()?;
        Ok(())
    })();
    let unmapped = rvm.unmap(seg);
    result?;
    unmapped?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic() -> HeapLayout {
        HeapLayout {
            start_address: 0x5000_0000,
            heap_length: 1 << 20,
            static_length: 1 << 16,
            nlists: 80,
            chunk_size: 64,
        }
    }

    #[test]
    fn the_default_layout_is_valid_and_its_addresses_are_free() {
        let layout = HeapLayout::default();
        layout.validate().unwrap();
        assert_eq!(layout.start_address, DEFAULT_START_ADDRESS);
        let end = layout.static_address() + layout.static_length;
        assert_eq!(crate::range_is_occupied(layout.start_address, end), None);
    }

    #[test]
    fn layout_errors_name_the_parameter() {
        classic().validate().unwrap();
        let cases: [(&str, HeapLayout); 7] = [
            (
                "start_address",
                HeapLayout {
                    start_address: 0x5000_0001,
                    ..classic()
                },
            ),
            (
                "start_address",
                HeapLayout {
                    start_address: ADDRESS_END_MAX - 4096,
                    ..classic()
                },
            ),
            (
                "heap_length",
                HeapLayout {
                    heap_length: 5000,
                    ..classic()
                },
            ),
            (
                "static_length",
                HeapLayout {
                    static_length: 0,
                    ..classic()
                },
            ),
            (
                "chunk_size",
                HeapLayout {
                    chunk_size: 24,
                    ..classic()
                },
            ),
            (
                "chunk_size",
                HeapLayout {
                    chunk_size: 44,
                    ..classic()
                },
            ),
            (
                "nlists",
                HeapLayout {
                    nlists: NLISTS_MAX + 1,
                    ..classic()
                },
            ),
        ];
        for (parameter, layout) in cases {
            match layout.validate() {
                Err(Error::BadLayout { parameter: p, .. }) => assert_eq!(p, parameter),
                other => panic!("{layout:?}: {other:?}"),
            }
        }
        let chunk_32 = HeapLayout {
            chunk_size: 32,
            ..classic()
        };
        chunk_32.validate().unwrap();
        let chunk_40 = HeapLayout {
            chunk_size: 40,
            heap_length: 8192,
            ..classic()
        };
        chunk_40.validate().unwrap();
    }
}
