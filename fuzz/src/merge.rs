//! Merging the ranges of a record of several commits (`rvm::format::merge`), compared with
//! replaying the record as it was.
//!
//! The fuzzer chooses up to 200 ranges (segment 0-2 or one past what a packed sort key holds,
//! offsets in a narrow window that may straddle 4096, where regions may meet, lengths 0-48)
//! with their bytes. The record is built as the queue builds one, merged, and both are
//! replayed onto segment images: the images must be equal, the merged ranges in order of
//! segment and offset and apart, none crossing a multiple of 4096 that the original ranges did
//! not cross, and a record that is not merged must have nothing appended.

use rvm::format::merge::{merge_ranges, worth_merging, MergeScratch};
use rvm::format::record::{
    ranges, RangeHeader, TransactionEncoder, RECORD_HEADER_SIZE, RECORD_TRAILER_SIZE,
};

use crate::input::Input;

const RANGES_MAX: usize = 200;
const WINDOW: u64 = 512;
/// Segment indices used: 0-2, and 20 (past 4 bits: the merge's wider sort).
const SEGMENTS: [u32; 4] = [0, 1, 2, 20];

/// The ranges of an unsealed record, with their bytes.
fn decode(rec: &[u8]) -> Vec<(RangeHeader, Vec<u8>)> {
    let count = u32::from_le_bytes(rec[48..52].try_into().expect("4 bytes"));
    ranges(
        &rec[RECORD_HEADER_SIZE..rec.len() - RECORD_TRAILER_SIZE],
        count,
    )
    .map(|r| {
        let r = r.expect("a record built here decodes");
        (r.header, r.data.to_vec())
    })
    .collect()
}

/// Replay ranges in order: (segment, offset) → byte, for the bytes written.
fn replay(ranges: &[(RangeHeader, Vec<u8>)]) -> std::collections::BTreeMap<(u32, u64), u8> {
    let mut image = std::collections::BTreeMap::new();
    for (h, data) in ranges {
        for (i, &b) in data.iter().enumerate() {
            image.insert((h.segment, h.offset + i as u64), b);
        }
    }
    image
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let far = input.u8() & 1 == 1;
    let base = if far { 1u64 << 41 } else { 4096 - WINDOW / 2 };
    let n = (input.u8() as usize % RANGES_MAX) + 1;
    let mut headers = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let segment = SEGMENTS[input.u8() as usize % SEGMENTS.len()];
        let offset = base + u64::from(input.u16()) % WINDOW;
        let length = u64::from(input.u8() % 49);
        // The address continues the offset except for a few ranges (another mapping).
        let moved = input.u8() < 16;
        let address =
            0x1000_0000 * (u64::from(segment) + 1) + offset + if moved { 1 << 30 } else { 0 };
        headers.push(RangeHeader {
            segment,
            offset,
            length,
            address,
        });
        values.push(input.u8());
    }
    let mut rec = Vec::new();
    TransactionEncoder::record_with(&mut rec, 0, headers.iter().copied(), |i, d| {
        for (k, b) in d.iter_mut().enumerate() {
            *b = values[i].wrapping_add(k as u8);
        }
    });
    let mut scratch = MergeScratch::default();
    let _ = worth_merging(&rec, &mut scratch);
    let mut out = vec![0xa5];
    let Some(saving) = merge_ranges(&rec, &mut out, &mut scratch) else {
        assert_eq!(out, [0xa5], "nothing appended when not merged");
        return;
    };
    let merged = &out[1..];
    let (before, after) = (decode(&rec), decode(merged));
    assert_eq!(replay(&before), replay(&after), "the same bytes");
    assert_eq!(saving.bytes, (rec.len() - merged.len()) as u64);
    assert_eq!(saving.ranges, (before.len() - after.len()) as u64);
    for w in after.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        assert!(
            (a.segment, a.offset + a.length) <= (b.segment, b.offset),
            "{a:?} {b:?}"
        );
    }
    // A merged range crosses a multiple of 4096 only where an original range crossed it.
    let crossed = |h: &RangeHeader| h.offset / 4096 != (h.offset + h.length.max(1) - 1) / 4096;
    for (h, _) in &after {
        if crossed(h) {
            let boundary = (h.offset / 4096 + 1) * 4096;
            assert!(
                before.iter().any(|(o, _)| o.segment == h.segment
                    && o.offset < boundary
                    && o.offset + o.length > boundary),
                "{h:?} crosses {boundary} where no range did"
            );
        }
    }
}
