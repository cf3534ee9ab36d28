//! The segment every target recovers into: two regions with gaps around them, so a write
//! outside the regions is visible.

use rvm::format::segment::{RegionEntry, SegmentHeader};
use rvm::format::Uuid;

pub const LOG_UUID: Uuid = Uuid([0x10; 16]);
pub const SEGMENT_UUID: Uuid = Uuid([0x5e; 16]);
/// The smallest record area a log may have: wraps and full logs come quickly.
pub const AREA_BYTES: u64 = 64 * 1024;
pub const SEGMENT_BYTES: u64 = 28 * 1024;
/// Every byte outside the regions holds this; recovery must never change one.
pub const OUTSIDE_BYTE: u8 = 0xee;

/// Header (0..4K), gap (4K..8K), region 0 (8K..16K), gap (16K..20K), region 1 (20K..24K),
/// gap (24K..28K).
pub fn segment_header() -> SegmentHeader {
    SegmentHeader {
        uuid: SEGMENT_UUID,
        length_bytes: SEGMENT_BYTES,
        created_unix_ms: 0,
        regions: vec![
            RegionEntry {
                offset: 8 * 1024,
                length: 8 * 1024,
                address: 0x1000_0000_0000,
            },
            RegionEntry {
                offset: 20 * 1024,
                length: 4 * 1024,
                address: 0x1000_0000_2000,
            },
        ],
    }
}

/// The segment's bytes: the header, zeroed regions, [`OUTSIDE_BYTE`] everywhere else.
pub fn segment_image() -> Vec<u8> {
    let header = segment_header();
    let mut image = vec![OUTSIDE_BYTE; SEGMENT_BYTES as usize];
    let encoded = header.encode();
    image[..encoded.len()].copy_from_slice(&encoded);
    for r in &header.regions {
        image[r.offset as usize..(r.offset + r.length) as usize].fill(0);
    }
    image
}

/// Whether file offset `at` lies in a region of the fixture segment.
pub fn in_region(at: u64) -> bool {
    segment_header()
        .regions
        .iter()
        .any(|r| at >= r.offset && at < r.offset + r.length)
}

/// Panics if a byte outside the regions differs, or the segment changed length.
pub fn assert_outside_regions_unchanged(before: &[u8], after: &[u8]) {
    assert_eq!(
        before.len(),
        after.len(),
        "the segment changed length: something wrote past its end"
    );
    let header = segment_header();
    let mut at = 0u64;
    let check = |from: u64, to: u64| {
        for i in from..to {
            let i = i as usize;
            assert_eq!(
                before[i], after[i],
                "byte {i} outside every region changed from {:#x} to {:#x}",
                before[i], after[i]
            );
        }
    };
    for r in &header.regions {
        check(at, r.offset);
        at = r.offset + r.length;
    }
    check(at, before.len() as u64);
}
