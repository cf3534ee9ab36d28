//! Unit tests of `survey` (the commit's one walk over its ranges): its bytes and size agree
//! with summing and `transaction_record_size`, and it says "apart" exactly when coalescing
//! would find nothing to merge or reorder.

use super::{survey, Range};
use crate::format::log::transaction_record_size;

fn range(region_start: usize, address: usize, length: usize) -> Range {
    Range {
        address,
        length,
        region_start,
        slot: 0,
        segment_offset: (address - region_start) as u64,
    }
}

fn expected(ranges: &[Range]) -> (usize, u64) {
    let bytes = ranges.iter().map(|r| r.length).sum();
    let size = transaction_record_size(ranges.iter().map(|r| r.length as u64));
    (bytes, size)
}

#[test]
fn survey_sums_sizes_and_tells_ranges_in_order_and_apart() {
    let cases: [(&[Range], bool); 7] = [
        (&[], true),
        (&[range(0x1000, 0x1008, 5)], true),
        // In order with a gap: nothing to merge.
        (&[range(0x1000, 0x1000, 8), range(0x1000, 0x1010, 24)], true),
        // Adjacent: coalescing merges them.
        (&[range(0x1000, 0x1000, 8), range(0x1000, 0x1008, 8)], false),
        // Overlapping, and out of order.
        (
            &[range(0x1000, 0x1000, 16), range(0x1000, 0x1008, 8)],
            false,
        ),
        (&[range(0x1000, 0x1040, 8), range(0x1000, 0x1000, 8)], false),
        // Ordered by region first: a lower address in a later region is in order.
        (
            &[range(0x1000, 0x1800, 8), range(0x2000, 0x0800 + 0x2000, 8)],
            true,
        ),
    ];
    for (i, (ranges, apart)) in cases.iter().enumerate() {
        let (bytes, size) = expected(ranges);
        assert_eq!(survey(ranges), (bytes, size, *apart), "case {i}");
    }
    // Regions out of order are not apart, whatever the addresses.
    let swapped = [range(0x2000, 0x2000, 8), range(0x1000, 0x1000, 8)];
    assert!(!survey(&swapped).2);
}
