//! Unit tests of the log format (`format::log`): status slots, the version rule, records.
use super::*;

#[test]
fn range_from_and_range_with_lay_out_the_same_bytes() {
    for length in [0u64, 1, 7, 8, 13, 64] {
        let range = RangeHeader {
            segment: 3,
            offset: 4096 + length,
            length,
            address: 0x7000_0000,
        };
        let data: Vec<u8> = (0..length as u8).map(|b| b ^ 0x5a).collect();
        let (mut from, mut with) = (vec![0xee; 5], vec![0xee; 5]);
        TransactionEncoder::range_from(&mut from, &range, &data);
        TransactionEncoder::range_with(&mut with, &range, |b| b.extend_from_slice(&data));
        assert_eq!(from, with, "length {length}");
        assert_eq!(
            from.len() - 5,
            RANGE_HEADER_SIZE + align_up(length, RECORD_ALIGN) as usize
        );
    }
}

fn sample_status() -> Status {
    let mut s = Status::new_log(Uuid([7; 16]), 1 << 20, 1234);
    s.segments.push(SegmentEntry {
        kind: SegmentKind::Segment,
        uuid: Uuid([9; 16]),
        length_bytes: 1 << 30,
        path_hint: "/srv/data".into(),
    });
    s.counters.flushes = 42;
    s
}

#[test]
fn status_round_trips_and_is_sector_sized() {
    let s = sample_status();
    let buf = s.encode();
    assert_eq!(buf.len() as u64 % SECTOR_SIZE, 0);
    assert_eq!(Status::decode(&buf).unwrap(), s);
}

fn plain_file_entry() -> SegmentEntry {
    SegmentEntry {
        kind: SegmentKind::PlainFile,
        uuid: FileIdentity {
            device: 0x803,
            inode: 1234,
        }
        .to_uuid(),
        length_bytes: 10_000,
        path_hint: "/srv/plain".into(),
    }
}

#[test]
fn a_status_without_plain_files_is_version_1_with_a_zero_kind_word() {
    let s = sample_status();
    let buf = s.encode();
    assert_eq!(s.version(), LOG_FORMAT_VERSION);
    assert_eq!(get_u32(&buf, ST_VERSION), 1);
    // The entry's word at 28 was reserved (zero) in version 1 and still is for a segment.
    assert_eq!(get_u32(&buf, ST_SEGMENTS + 28), 0);
    assert_eq!(Status::decode_up_to(&buf, 1).unwrap(), s);
}

#[test]
fn a_plain_file_entry_round_trips_in_a_version_2_status() {
    let mut s = sample_status();
    s.segments.push(plain_file_entry());
    let buf = s.encode();
    assert_eq!(s.version(), LOG_FORMAT_VERSION_PLAIN_FILES);
    assert_eq!(get_u32(&buf, ST_VERSION), 2);
    let second = ST_SEGMENTS + SEG_ENTRY_FIXED + align_up(9, 8) as usize;
    assert_eq!(get_u32(&buf, second + 28), 1, "kind word of the plain file");
    let d = Status::decode(&buf).unwrap();
    assert_eq!(d, s);
    assert_eq!(
        d.segments[1].file_identity(),
        Some(FileIdentity {
            device: 0x803,
            inode: 1234
        })
    );
    // Freeing the plain file's entry writes version 1 again.
    s.segments.pop();
    assert_eq!(get_u32(&s.encode(), ST_VERSION), 1);
}

#[test]
fn a_version_1_reader_refuses_a_status_with_a_plain_file() {
    let mut s = sample_status();
    s.segments.push(plain_file_entry());
    let err = Status::decode_up_to(&s.encode(), LOG_FORMAT_VERSION).unwrap_err();
    assert_eq!(err.field, "version");
    assert!(err.detail.contains("version 2"), "{err}");
}

/// Patch a field and re-seal the slot's CRC, so only the patched rule can refuse it.
fn patched(buf: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut b = buf.to_vec();
    put_u32(&mut b, at, value);
    let len = get_u32(&b, ST_ENCODED_LEN) as usize;
    put_u32(&mut b, ST_CRC, 0);
    let crc = crc32fast::hash(&b[..len]);
    put_u32(&mut b, ST_CRC, crc);
    b
}

#[test]
fn versions_and_kinds_that_disagree_are_refused() {
    // A version-1 slot with a plain-file kind would be misread by a version-1 reader.
    let mut s = sample_status();
    s.segments.push(plain_file_entry());
    let v1_with_plain = patched(&s.encode(), ST_VERSION, 1);
    assert_eq!(Status::decode(&v1_with_plain).unwrap_err().field, "version");
    // An unknown kind is refused by name, and a version-3 slot by its version.
    let only_segments = sample_status().encode();
    let unknown = patched(&only_segments, ST_SEGMENTS + 28, 7);
    let e = Status::decode(&patched(&unknown, ST_VERSION, 2)).unwrap_err();
    assert_eq!(e.field, "segment_table");
    assert!(e.detail.contains("kind 7"), "{e}");
    let v3 = patched(&only_segments, ST_VERSION, 3);
    assert_eq!(Status::decode(&v3).unwrap_err().field, "version");
    // A version-2 slot holding only segments is not what this library writes: refused.
    let v2 = patched(&only_segments, ST_VERSION, 2);
    assert_eq!(Status::decode(&v2).unwrap_err().field, "version");
}

#[test]
fn status_detects_every_single_byte_flip_in_encoded_part() {
    let s = sample_status();
    let buf = s.encode();
    let len = get_u32(&buf, ST_ENCODED_LEN) as usize;
    for i in 0..len {
        let mut b = buf.clone();
        b[i] ^= 0x40;
        assert!(
            Status::decode(&b).is_err(),
            "flip at byte {i} went unnoticed"
        );
    }
}

#[test]
fn unverified_decode_reads_a_damaged_slot() {
    let s = sample_status();
    let mut buf = s.encode();
    buf[ST_HEAD_OFFSET] ^= 0x40;
    assert!(Status::decode(&buf).is_err());
    let d = Status::decode_unverified(&buf).unwrap();
    assert_eq!(d.sequence, s.sequence);
    assert_eq!(d.head_offset, s.head_offset ^ 0x40);
    assert_eq!(d.segments, s.segments);
    assert!(Status::decode_unverified(&[0u8; 300]).is_none());
}

#[test]
fn status_rejects_head_outside_area() {
    let mut s = sample_status();
    s.head_offset = s.area_end() + 8;
    assert_eq!(
        Status::decode(&s.encode()).unwrap_err().field,
        "head_offset"
    );
}

fn sample_record(seed: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    let start = TransactionEncoder::begin(&mut buf, TX_FLAG_FLUSH, 99, 2);
    TransactionEncoder::range(
        &mut buf,
        &RangeHeader {
            segment: 0,
            offset: 4096,
            length: 5,
            address: 0x5000_0000,
        },
    )
    .copy_from_slice(b"hello");
    TransactionEncoder::range(
        &mut buf,
        &RangeHeader {
            segment: 1,
            offset: 8192,
            length: 8,
            address: 0,
        },
    )
    .copy_from_slice(b"12345678");
    let len = TransactionEncoder::finish(&mut buf, start);
    assert_eq!(len, transaction_record_size([5, 8]));
    seal_record(&mut buf[start..], 17, 3, 16, seed);
    buf
}

#[test]
fn transaction_record_round_trips() {
    let seed = crc_seed(&Uuid([1; 16]));
    let rec = sample_record(seed);
    let h = RecordHeader::decode(&rec, seed, rec.len() as u64).unwrap();
    assert_eq!(
        (h.lsn, h.generation, h.batch_first_lsn, h.range_count),
        (17, 3, 16, 2)
    );
    let body = &rec[body_span(h.length)];
    verify_record(
        &h,
        &rec,
        body,
        &rec[rec.len() - RECORD_TRAILER_SIZE..],
        seed,
    )
    .unwrap();
    let rs: Vec<_> = ranges(body, h.range_count)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rs[0].data, b"hello");
    assert_eq!(rs[1].header.offset, 8192);
}

#[test]
fn every_byte_of_a_record_is_covered() {
    let seed = crc_seed(&Uuid([1; 16]));
    let rec = sample_record(seed);
    for i in 0..rec.len() {
        let mut b = rec.clone();
        b[i] ^= 1;
        let ok = RecordHeader::decode(&b, seed, b.len() as u64).and_then(|h| {
            let body = &b[body_span(h.length)];
            verify_record(&h, &b, body, &b[b.len() - RECORD_TRAILER_SIZE..], seed)
        });
        assert!(ok.is_err(), "flip at byte {i} went unnoticed");
    }
}

#[test]
fn record_from_another_log_does_not_validate() {
    let rec = sample_record(crc_seed(&Uuid([1; 16])));
    let other = crc_seed(&Uuid([2; 16]));
    assert!(RecordHeader::decode(&rec, other, rec.len() as u64).is_err());
}

#[test]
fn pad_round_trips() {
    let seed = crc_seed(&Uuid([1; 16]));
    let (h, t) = encode_pad(4096, 5, 1, 5, seed);
    let hd = RecordHeader::decode(&h, seed, 4096).unwrap();
    assert_eq!(hd.kind, KIND_PAD);
    verify_record(&hd, &h, &[], &t, seed).unwrap();
}

#[test]
fn malformed_range_body_is_an_error_not_a_panic() {
    let body = [0xffu8; 40];
    let items: Vec<_> = ranges(&body, 3).collect();
    assert!(items.last().unwrap().is_err());
}

/// A body of ranges laid out as a record holds them: each header, then its data padded to 8.
fn body_of(ranges: &[(u64, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(offset, data) in ranges {
        let h = RangeHeader {
            segment: 0,
            offset,
            length: data.len() as u64,
            address: 0x1000 + offset,
        };
        body.extend_from_slice(&h.to_bytes());
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(8), 0);
    }
    body
}

#[test]
fn the_range_walk_yields_each_range_and_names_what_is_wrong_with_a_bad_one() {
    let body = body_of(&[(8, b"abc"), (64, b""), (128, b"0123456789")]);
    let got: Vec<_> = ranges(&body, 3).collect::<Result<_, _>>().unwrap();
    let seen: Vec<(u64, &[u8], usize)> = got
        .iter()
        .map(|r| (r.header.offset, r.data, r.body_offset))
        .collect();
    let expected: [(u64, &[u8], usize); 3] =
        [(8, b"abc", 0), (64, b"", 40), (128, b"0123456789", 72)];
    assert_eq!(seen, expected);
    // Each failure ends the walk with one error naming its field, after the good ranges.
    let last_error = |body: &[u8], count: u32| -> (usize, &'static str) {
        let items: Vec<_> = ranges(body, count).collect();
        let oks = items.iter().take_while(|r| r.is_ok()).count();
        assert_eq!(oks + 1, items.len(), "one error, last");
        (oks, items.last().unwrap().as_ref().unwrap_err().field)
    };
    // Fewer ranges counted than the body holds: bytes are left.
    assert_eq!(last_error(&body, 2), (2, "body"));
    // More counted than it holds: the next header is cut short.
    assert_eq!(last_error(&body, 4), (3, "range"));
    // A range whose data runs past the body, by one byte and by far.
    assert_eq!(last_error(&body[..body.len() - 8], 3), (2, "range_length"));
    let mut huge = body.clone();
    huge[72 + 16..72 + 24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(last_error(&huge, 3), (2, "range_length"));
}

#[test]
fn one_pass_seal_gives_the_two_checksums_format_md_defines() {
    // FORMAT.md: the header CRC is CRC-32 (log seed) of header bytes 0..52; the record CRC
    // is CRC-32 (log seed) of every byte before the trailer's CRC field. Computed here the
    // long way, each from scratch, against what the one-pass seal stored.
    let seed = crc_seed(&Uuid([9; 16]));
    let rec = sample_record(seed);
    let from_scratch = |bytes: &[u8]| {
        let mut h = crc32fast::Hasher::new_with_initial(seed);
        h.update(bytes);
        h.finalize()
    };
    let stored = |at: usize| u32::from_le_bytes(rec[at..at + 4].try_into().unwrap());
    assert_eq!(stored(52), from_scratch(&rec[..52]));
    let crc_at = rec.len() - RECORD_TRAILER_SIZE + 16;
    assert_eq!(stored(crc_at), from_scratch(&rec[..crc_at]));
    // The ready hasher and the plain seed seal the same bytes.
    let mut again = rec.clone();
    seal_record_with(&mut again, 17, 3, 16, &CrcSeed::new(seed));
    assert_eq!(again, rec);
}

#[test]
fn one_pass_verify_notices_every_flipped_byte_and_agrees_with_verify_record() {
    let seed = crc_seed(&Uuid([4; 16]));
    let crc = CrcSeed::new(seed);
    let rec = sample_record(seed);
    let check = |b: &[u8]| {
        let (h, running) = RecordHeader::decode_checked(b, &crc, b.len() as u64)?;
        let span = body_span(h.length);
        running.verify(&h, b, &b[span.clone()], &b[span.end..])
    };
    check(&rec).unwrap();
    for i in 0..rec.len() {
        let mut b = rec.clone();
        b[i] ^= 0x10;
        let two_pass = RecordHeader::decode(&b, seed, b.len() as u64).and_then(|h| {
            let span = body_span(h.length);
            verify_record(&h, &b, &b[span.clone()], &b[span.end..], seed)
        });
        assert!(check(&b).is_err(), "flip at byte {i} went unnoticed");
        assert!(two_pass.is_err());
    }
    // Header, body and trailer in separate buffers (the split path) check the same way.
    let span = body_span(rec.len() as u64);
    let (h, running) = RecordHeader::decode_checked(&rec, &crc, rec.len() as u64).unwrap();
    let (head, body, trailer) = (
        rec[..RECORD_HEADER_SIZE].to_vec(),
        rec[span.clone()].to_vec(),
        rec[span.end..].to_vec(),
    );
    running.clone().verify(&h, &head, &body, &trailer).unwrap();
    let mut bad = body.clone();
    bad[0] ^= 1;
    assert!(running.verify(&h, &head, &bad, &trailer).is_err());
    // A pad: only header and trailer are covered.
    let (ph, pt) = encode_pad(4096, 5, 1, 5, seed);
    let (h, running) = RecordHeader::decode_checked(&ph, &crc, 4096).unwrap();
    running.verify(&h, &ph, &[], &pt).unwrap();
}

#[test]
fn record_with_lays_out_what_begin_range_and_finish_do() {
    let ranges = [
        RangeHeader {
            segment: 2,
            offset: 4096,
            length: 5,
            address: 0x7000,
        },
        RangeHeader {
            segment: 0,
            offset: 9000,
            length: 16,
            address: 0x9000,
        },
    ];
    let data = |i: usize, n: usize| -> Vec<u8> { (0..n).map(|b| (b * 7 + i) as u8).collect() };
    let mut steps = vec![0xee; 3];
    let start = TransactionEncoder::begin(&mut steps, 3, 0, 2);
    for (i, r) in ranges.iter().enumerate() {
        TransactionEncoder::range_from(&mut steps, r, &data(i, r.length as usize));
    }
    TransactionEncoder::finish(&mut steps, start);
    let mut one = vec![0xee; 3];
    let at = TransactionEncoder::record_with(&mut one, 3, ranges.iter().copied(), |i, dst| {
        dst.copy_from_slice(&data(i, dst.len()))
    });
    assert_eq!((at, one), (start, steps));
}

/// Extend the record at `start` with `ranges` (their data from `fill`) if it is extendable,
/// as the commit path does; false (and `buf` untouched) if not.
fn try_extend(
    buf: &mut Vec<u8>,
    start: usize,
    flags: u16,
    ranges: &[RangeHeader],
    fill: impl FnMut(usize, &mut [u8]),
) -> bool {
    if !TransactionEncoder::extendable(buf, start, ranges.len()) {
        return false;
    }
    let size = transaction_record_size(ranges.iter().map(|r| r.length));
    TransactionEncoder::extend(buf, start, flags, size, ranges.iter().copied(), fill);
    true
}

/// A record extended with more ranges is the record that lists all of them from the start
/// (flags merged): what a group of coalesced commits writes is an ordinary record.
#[test]
fn an_extended_record_is_the_record_of_all_the_ranges() {
    let range = |i: u64| RangeHeader {
        segment: (i % 3) as u32,
        offset: 4096 + 40 * i,
        length: 1 + (i * 13) % 70,
        address: 0x7000 + i,
    };
    let data = |i: usize, dst: &mut [u8]| {
        for (b, d) in dst.iter_mut().enumerate() {
            *d = (b * 7 + i) as u8 ^ 0xa5;
        }
    };
    let all: Vec<RangeHeader> = (0..9).map(range).collect();
    let mut whole = vec![0xee; 3];
    let start = TransactionEncoder::record_with(&mut whole, 3, all.iter().copied(), data);
    // The same ranges in three commits: 2, then 0 (a commit with nothing to log), then 7.
    let mut grown = vec![0xee; 3];
    let at = TransactionEncoder::record_with(&mut grown, 1, all[..2].iter().copied(), data);
    assert!(try_extend(&mut grown, at, 0, &[], data));
    assert!(try_extend(&mut grown, at, 2, &all[2..], |i, dst| data(
        i + 2,
        dst
    )));
    assert_eq!((at, &grown), (start, &whole));
    // It seals and decodes as one record of nine ranges.
    let seed = crc_seed(&Uuid([9; 16]));
    let rec = &mut grown[at..];
    seal_record(rec, 5, 1, 5, seed);
    let (h, _) = RecordHeader::decode_checked(rec, &CrcSeed::new(seed), rec.len() as u64).unwrap();
    assert_eq!((h.range_count, h.flags), (9, 3));
}

/// Only the last record of the buffer, whole, unsealed and within the decoder's range limit,
/// is extendable.
#[test]
fn only_the_last_unsealed_record_is_extendable() {
    let r = RangeHeader {
        segment: 0,
        offset: 4096,
        length: 8,
        address: 0,
    };
    let mut buf = Vec::new();
    let first = TransactionEncoder::record_with(&mut buf, 0, [r].into_iter(), |_, _| {});
    let second = TransactionEncoder::record_with(&mut buf, 0, [r].into_iter(), |_, _| {});
    let refused = |buf: &[u8], start: usize| !TransactionEncoder::extendable(buf, start, 1);
    assert!(refused(&buf, first), "not the last record");
    assert!(refused(&buf, second + 1), "not a record start");
    assert!(refused(&buf, buf.len() + 1), "past the end");
    let mut pad = Vec::new();
    let (ph, pt) = encode_pad(RECORD_MIN_SIZE, 1, 1, 1, 0);
    pad.extend_from_slice(&ph);
    pad.extend_from_slice(&pt);
    assert!(refused(&pad, 0), "a pad");
    // Past the decoder's range count limit, or sealed: refused too.
    let limit = RANGES_PER_RECORD_MAX as usize;
    assert!(TransactionEncoder::extendable(&buf, second, limit - 1));
    assert!(!TransactionEncoder::extendable(&buf, second, limit));
    let mut sealed = buf[second..].to_vec();
    seal_record(&mut sealed, 9, 1, 9, 7);
    assert!(refused(&sealed, 0), "a sealed record");
    let before = buf.len();
    assert!(try_extend(&mut buf, second, 0, &[r], |_, _| {}));
    assert_eq!(
        buf.len(),
        before + transaction_record_size([8]) as usize - RECORD_MIN_SIZE as usize
    );
}

/// Ranges whose second walk (the layout) yields longer ranges than the first (the size):
/// `record_with` must stop the layout, never write past the record or panic.
#[derive(Clone)]
struct GrowingRanges {
    walks: std::rc::Rc<std::cell::Cell<u32>>,
    left: usize,
}

impl Iterator for GrowingRanges {
    type Item = RangeHeader;
    fn next(&mut self) -> Option<RangeHeader> {
        if self.left == 0 {
            return None;
        }
        if self.left == 2 {
            self.walks.set(self.walks.get() + 1);
        }
        self.left -= 1;
        let length = if self.walks.get() > 1 {
            u64::MAX - 3
        } else {
            8
        };
        Some(RangeHeader {
            segment: 0,
            offset: 0,
            length,
            address: 0x1000,
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for GrowingRanges {}

#[test]
fn record_with_stops_the_layout_when_the_second_walk_yields_longer_ranges() {
    let ranges = GrowingRanges {
        walks: Default::default(),
        left: 2,
    };
    let mut buf = Vec::new();
    let mut filled = 0;
    let at = TransactionEncoder::record_with(&mut buf, 0, ranges, |_, dst| filled += dst.len());
    // Sized for two 8-byte ranges; the layout saw longer ones and wrote none of them.
    assert_eq!(buf.len() - at, transaction_record_size([8, 8]) as usize);
    assert_eq!(filled, 0);
}

#[test]
fn record_crc_verify_refuses_short_or_mismatched_pieces_without_panicking() {
    let seed = crc_seed(&Uuid([4; 16]));
    let rec = sample_record(seed);
    let (h, running) =
        RecordHeader::decode_checked(&rec, &CrcSeed::new(seed), rec.len() as u64).unwrap();
    let trailer = &rec[rec.len() - RECORD_TRAILER_SIZE..];
    assert!(running
        .clone()
        .verify(&h, &rec[..10], &[], trailer)
        .is_err());
    assert!(running
        .clone()
        .verify(&h, &rec, &[], &trailer[..8])
        .is_err());
    // A header whose length disagrees with the pieces given is an error, not a panic.
    let odd = RecordHeader { length: 10, ..h };
    assert!(running.verify(&odd, &rec[..60], &[], trailer).is_err());
}

#[test]
fn live_bytes_wraps_and_counts_a_full_log_as_the_whole_area() {
    let (start, end) = (4096, 4096 + 1000);
    assert_eq!(live_bytes(true, 4500, 4500, start, end), 0);
    assert_eq!(live_bytes(false, 4200, 4500, start, end), 300);
    // Wrapped: from the head to the area's end, then from its start to the tail.
    assert_eq!(live_bytes(false, 4900, 4200, start, end), 196 + 104);
    // Head and tail at one offset with records between them: the area is full.
    assert_eq!(live_bytes(false, 4500, 4500, start, end), 1000);
    // A damaged status may put positions outside the area: a figure, never a panic.
    assert_eq!(live_bytes(false, u64::MAX, 0, start, end), 0);
    assert_eq!(live_bytes(false, 9000, 10, start, end), 0);
}
