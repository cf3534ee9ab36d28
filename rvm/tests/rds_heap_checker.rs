//! The RDS heap's checker and inspector working without a mapping: on an image of the segment
//! and on a device, never panicking on damage, and reading from a file only the pages that
//! hold tags.

mod rds_support;
mod support;

use rds_support::{layout, Fixture};
use rvm::rds::{self, BlockState};
use rvm::{BeginMode, CommitMode};
use support::Dir;

#[test]
fn image_checker_and_inspector_read_the_segment_without_mapping() {
    let f = Fixture::new(layout(50, 128 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let blocks: Vec<usize> = (0..20)
        .map(|i| f.heap.malloc(&mut tx, 50 * i).unwrap())
        .collect();
    for a in blocks.iter().step_by(4) {
        f.heap.free(&mut tx, *a).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    f.rvm.truncate().unwrap();
    let image = f.data.live();
    let heap_offset = 4096;
    let region = &image[heap_offset..heap_offset + (128 << 10)];
    let address = f.heap.address() as u64;
    let report = rds::check_image(region, address);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report, f.heap.check());
    let info = rds::inspect_image(region, address).unwrap();
    assert_eq!(info.geometry.chunk_size, 64);
    assert_eq!(info.counters, {
        let s = f.heap.statistics();
        rvm::rds::HeapCounters {
            generation: info.counters.generation,
            free_bytes: s.free_bytes,
            allocated_bytes: s.allocated_bytes,
            malloc_count: s.malloc_count,
            free_count: s.free_count,
            prealloc_count: s.prealloc_count,
            coalesce_count: s.coalesce_count,
            exact_hits: s.exact_hits,
            large_hits: s.large_hits,
            splits: s.splits,
        }
    });
    let listed: u64 = info.lists.iter().map(|l| l.blocks).sum();
    assert_eq!(listed, info.check.free_blocks);
    let blocks = rds::blocks_image(region, address).unwrap();
    assert_eq!(blocks.len() as u64, report.blocks);
    assert_eq!(
        blocks
            .iter()
            .filter(|b| b.state == BlockState::Allocated)
            .count(),
        15
    );
    // The image checker and inspector never panic on damage, wherever it is.
    let mut damaged = region.to_vec();
    for i in (0..damaged.len()).step_by(997) {
        damaged[i] ^= 0x5a;
        let _ = rds::check_image(&damaged, address);
        let _ = rds::inspect_image(&damaged, address);
        let _ = rds::blocks_image(&damaged, address);
    }
    assert!(!rds::check_image(&damaged, address).is_ok());
    assert_eq!(rds::check_image(&region[..100], address).problems.len(), 1);
    assert!(rds::inspect_image(&[0u8; 4096], address).is_err());
    // The device-backed checker finds the same as the image checker, and never panics.
    let region_entry = rvm::format::segment::RegionEntry {
        offset: heap_offset as u64,
        length: 128 << 10,
        address,
    };
    let device = rvm::device::MemDevice::new("data", image.clone());
    assert_eq!(rds::check_device(&device, &region_entry), report);
    assert_eq!(rds::inspect_device(&device, &region_entry).unwrap(), info);
    let mut damaged_image = image.clone();
    for i in (heap_offset..heap_offset + (128 << 10)).step_by(997) {
        damaged_image[i] ^= 0x5a;
    }
    let device = rvm::device::MemDevice::new("data", damaged_image);
    assert_eq!(
        rds::check_device(&device, &region_entry),
        rds::check_image(&damaged, address)
    );
}

/// A device that counts the bytes read through it.
#[derive(Debug)]
struct CountingDevice {
    inner: rvm::device::FileDevice,
    bytes_read: std::sync::atomic::AtomicU64,
}

impl rvm::device::Device for CountingDevice {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.bytes_read
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("read-only"))
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("read-only"))
    }
}

/// Issue 12 item 8: `rvmutl heap` and `check` read the whole heap region into memory (1 GiB of
/// RSS for a 1 GiB sparse segment). The walk from a file reads only the pages holding tags.
#[test]
fn heap_walk_from_a_file_reads_far_less_than_the_region() {
    let dir = Dir::new("heap-walk");
    let log = dir.path("log");
    let data = dir.path("data");
    rvm::Rvm::create_log(&log, 1 << 20).unwrap();
    let rvm = rvm::Rvm::open(&log, rvm::Options::default()).unwrap();
    let layout = layout(58, 1 << 30, 80, 64);
    // SAFETY: the data file is created by this call in the test's own directory, and nothing
    // shortens it.
    let header = unsafe {
        rds::create_heap_segment(
            &rvm,
            &data,
            layout.segment_length_min(),
            &layout,
            rvm::segment::CreateOptions::default(),
        )
    }
    .unwrap();
    rvm.close().unwrap();
    let device = CountingDevice {
        inner: rvm::device::FileDevice::open(&data, rvm::device::Access::ReadOnly).unwrap(),
        bytes_read: Default::default(),
    };
    let info = rds::inspect_device(&device, &header.regions[0]).unwrap();
    let read = device.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(info.check.is_ok(), "{}", info.check);
    assert_eq!(info.check.free_blocks, 1);
    assert_eq!(info.check.free_bytes, info.counters.free_bytes);
    assert!(
        read <= 1 << 20,
        "read {read} bytes of a {} byte heap region",
        header.regions[0].length
    );
}
