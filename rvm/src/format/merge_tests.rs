use super::*;
use crate::format::record::{ranges, unsealed_parts, RECORD_HEADER_SIZE, RECORD_MIN_SIZE};

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Base address of segment `s` in these tests (address = base + offset).
fn base(segment: u32) -> u64 {
    0x1000_0000 * (u64::from(segment) + 1)
}

/// An unsealed record of `ranges`, range `i`'s bytes all `i + 1` (mod 251, never 0).
fn record(flags: u16, ranges: &[RangeHeader]) -> Vec<u8> {
    let mut buf = Vec::new();
    TransactionEncoder::record_with(&mut buf, flags, ranges.iter().copied(), |i, d| {
        d.fill((i % 251) as u8 + 1)
    });
    buf
}

/// The ranges of an unsealed record, with their data.
fn decoded(rec: &[u8]) -> (u16, Vec<(RangeHeader, Vec<u8>)>) {
    let (flags, count, body) = unsealed_parts(rec).expect("an unsealed transaction record");
    let ranges = ranges(body, count)
        .map(|r| {
            let r = r.expect("ranges decode");
            (r.header, r.data.to_vec())
        })
        .collect();
    (flags, ranges)
}

/// Merge `rec`, which must merge: its ranges after the merge, and what the merge saved.
fn merged(rec: &[u8]) -> (Vec<(RangeHeader, Vec<u8>)>, MergeSaving) {
    let mut out = Vec::new();
    let saving = merge_ranges(rec, &mut out, &mut MergeScratch::default()).expect("merges");
    (decoded(&out).1, saving)
}

/// Replay ranges in order onto two 8 KiB segment images.
fn replay(ranges: &[(RangeHeader, Vec<u8>)]) -> [Vec<u8>; 2] {
    let mut images = [vec![0u8; 8192], vec![0u8; 8192]];
    for (h, data) in ranges {
        let o = h.offset as usize;
        images[h.segment as usize][o..o + data.len()].copy_from_slice(data);
    }
    images
}

fn range(segment: u32, offset: u64, length: u64) -> RangeHeader {
    RangeHeader {
        segment,
        offset,
        length,
        address: base(segment) + offset,
    }
}

#[test]
fn a_merged_record_replays_to_the_same_bytes_with_each_byte_once() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut scratch = MergeScratch::default();
    let mut merged_some = 0;
    for round in 0..500 {
        // Ranges of 1-40 bytes at byte offsets of a narrow window of two segments, so that
        // they overlap, touch and repeat in every way (some across offset 4096, where regions
        // may meet).
        let window = 16 + rng.below(400);
        let from = if round % 2 == 0 { 0 } else { 4096 - window / 2 };
        let n = 1 + rng.below(60) as usize;
        let ranges: Vec<RangeHeader> = (0..n)
            .map(|_| {
                let segment = rng.below(2) as u32;
                range(segment, from + rng.below(window), 1 + rng.below(40))
            })
            .collect();
        let rec = record(0x5, &ranges);
        let mut out = vec![0xee; 3];
        let Some(saving) = merge_ranges(&rec, &mut out, &mut scratch) else {
            assert_eq!(
                out, [0xee; 3],
                "round {round}: nothing appended when not merged"
            );
            continue;
        };
        merged_some += 1;
        assert_eq!(&out[..3], &[0xee; 3], "appended after what was there");
        let merged = &out[3..];
        let (flags, after) = decoded(merged);
        let (_, before) = decoded(&rec);
        assert_eq!(flags, 0x5, "round {round}: flags kept");
        assert_eq!(
            replay(&after),
            replay(&before),
            "round {round}: the same bytes"
        );
        assert_eq!(saving.bytes, (rec.len() - merged.len()) as u64);
        assert_eq!(saving.ranges, (before.len() - after.len()) as u64);
        assert!(merged.len() < rec.len());
        // Each byte once: in order of segment and offset, apart, and touching only where the
        // addresses do not continue.
        for w in after.windows(2) {
            let (a, b) = (&w[0].0, &w[1].0);
            assert!(
                (a.segment, a.offset + a.length) <= (b.segment, b.offset),
                "round {round}: {a:?} then {b:?}"
            );
            if a.segment == b.segment && a.offset + a.length == b.offset {
                assert!(
                    a.address + a.length != b.address || b.offset % REGION_ALIGN == 0,
                    "round {round}: {a:?} and {b:?} not joined"
                );
            }
        }
        for (h, _) in &after {
            assert_eq!(h.address, base(h.segment) + h.offset);
        }
    }
    assert!(
        merged_some > 400,
        "only {merged_some} of 500 records merged"
    );
}

#[test]
fn the_last_write_of_a_byte_wins() {
    // Three commits' ranges: 8 bytes at 0 (value 1), 8 at 4 (value 2), 4 at 2 (value 3).
    let rec = record(0, &[range(0, 0, 8), range(0, 4, 8), range(0, 2, 4)]);
    let (after, saving) = merged(&rec);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, range(0, 0, 12));
    assert_eq!(after[0].1, [1, 1, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2]);
    assert_eq!(saving.ranges, 2);
}

#[test]
fn ranges_whose_addresses_do_not_continue_stay_apart_where_they_only_touch() {
    // The same segment bytes mapped at another address by a later commit: touching ranges
    // keep their own addresses; overlapping ones merge (the address is informational).
    let mut moved = range(0, 8, 8);
    moved.address += 0x10_0000;
    let rec = record(0, &[range(0, 0, 8), moved, range(0, 0, 8)]);
    let (after, _) = merged(&rec);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].0, range(0, 0, 8));
    assert_eq!(after[0].1, [3; 8]);
    assert_eq!(after[1].0, moved);
}

#[test]
fn ranges_that_touch_where_regions_may_meet_stay_apart() {
    // 8 bytes each side of 4096 (addresses continuing): two regions may meet there, and a
    // replayed range must lie in one. Overlapping ranges there still merge on either side.
    let rec = record(
        0,
        &[
            range(0, 4088, 8),
            range(0, 4096, 8),
            range(0, 4088, 4),
            range(0, 4100, 8),
        ],
    );
    let (after, _) = merged(&rec);
    let headers: Vec<RangeHeader> = after.iter().map(|(h, _)| *h).collect();
    assert_eq!(headers, [range(0, 4088, 8), range(0, 4096, 12)]);
    assert_eq!(after[0].1, [3, 3, 3, 3, 1, 1, 1, 1]);
    assert_eq!(after[1].1, [2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4]);
}

#[test]
fn a_record_with_nothing_to_merge_or_that_does_not_decode_is_left_alone() {
    let mut scratch = MergeScratch::default();
    let mut out = Vec::new();
    let apart = record(0, &[range(0, 0, 8), range(0, 16, 8), range(1, 8, 8)]);
    assert_eq!(merge_ranges(&apart, &mut out, &mut scratch), None);
    let mut broken = record(0, &[range(0, 0, 8), range(0, 0, 8)]);
    // A range length past the record.
    broken[RECORD_HEADER_SIZE + 16] = 0xff;
    assert_eq!(merge_ranges(&broken, &mut out, &mut scratch), None);
    assert_eq!(merge_ranges(&apart[..20], &mut out, &mut scratch), None);
    assert_eq!(
        merge_ranges(&vec![0; RECORD_MIN_SIZE as usize], &mut out, &mut scratch),
        None
    );
    assert!(out.is_empty());
}

#[test]
fn a_record_is_worth_merging_when_one_range_in_eight_repeats() {
    let mut scratch = MergeScratch::default();
    // 16 ranges at distinct places: nothing repeats.
    let apart: Vec<RangeHeader> = (0..16).map(|i| range(0, 64 * i, 8)).collect();
    assert!(!worth_merging(&record(0, &apart), &mut scratch));
    // Each pair of commits rewrites one counter: 8 of 24 ranges repeat.
    let mut counted = Vec::new();
    for i in 0..12 {
        counted.push(range(0, 0, 8));
        counted.push(range(0, 64 + 64 * i, 8));
    }
    assert!(worth_merging(&record(0, &counted), &mut scratch));
    // Two repeats of 32 ranges: under one in eight.
    let mut few = apart.clone();
    few.extend((16..30).map(|i| range(1, 64 * i, 8)));
    few.push(range(0, 0, 8));
    few.push(range(0, 64, 8));
    assert!(!worth_merging(&record(0, &few), &mut scratch));
    // Only the first 512 ranges are looked at: repeats after them do not count.
    let mut late: Vec<RangeHeader> = (0..512).map(|i| range(0, 16 * i, 8)).collect();
    late.extend((0..512).map(|_| range(0, 0, 8)));
    assert!(!worth_merging(&record(0, &late), &mut scratch));
    assert!(!worth_merging(&[0u8; 200], &mut scratch));
    // One offset in 16 segments: a place is segment and offset, so nothing repeats.
    let segments: Vec<RangeHeader> = (0..16).map(|i| range(i, 4096, 8)).collect();
    assert!(!worth_merging(&record(0, &segments), &mut scratch));
    // Each look starts afresh: the places of the record looked at before are not repeats.
    assert!(!worth_merging(&record(0, &apart), &mut scratch));
    assert!(!worth_merging(&record(0, &apart), &mut scratch));
}

#[test]
fn ranges_of_high_segments_and_far_offsets_merge_too() {
    // Past what one packed sort key holds (segment 16 and up, offsets from 2^40): the wider
    // sort gives the same merge.
    let far = 1u64 << 41;
    let at = |segment: u32, offset: u64, length: u64| RangeHeader {
        segment,
        offset,
        length,
        address: offset,
    };
    let rec = record(
        0,
        &[
            at(20, far + 8, 8),
            at(3, 16, 8),
            at(20, far, 12),
            at(3, 16, 8),
        ],
    );
    let (after, saving) = merged(&rec);
    let headers: Vec<RangeHeader> = after.iter().map(|(h, _)| *h).collect();
    assert_eq!(headers, [at(3, 16, 8), at(20, far, 16)]);
    assert_eq!(after[0].1, [4; 8]);
    assert_eq!(after[1].1, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1]);
    assert_eq!(saving.ranges, 2);
}

#[test]
fn a_range_rewritten_whole_later_gives_way_whatever_came_between() {
    // 8 at 0 (value 1), 8 at 4 (2), 8 at 0 again (3), 2 at 6 (4).
    let rec = record(
        0,
        &[
            range(0, 0, 8),
            range(0, 4, 8),
            range(0, 0, 8),
            range(0, 6, 2),
        ],
    );
    let (after, _) = merged(&rec);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, [3, 3, 3, 3, 3, 3, 4, 4, 2, 2, 2, 2]);
}
