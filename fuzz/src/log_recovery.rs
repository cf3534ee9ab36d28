//! Recovery over arbitrary log bytes and status slots, into the fixture segment.
//!
//! The first input byte picks how the log is made:
//! - even: a real log (written by the library, crashed with records untruncated and a wrapped
//!   tail) with fuzzer-chosen patches: arbitrary bytes anywhere, status slots included, and a
//!   changed file length;
//! - odd: a log synthesized from the input with valid CRCs (so the fuzzer reaches past the
//!   checksums): fuzzer-chosen status fields, LSNs, generations, pads, range counts, and
//!   ranges naming any segment index, offset and length.
//!
//! Recovery must never panic or hang, must either succeed or return an error, and must never
//! change a segment byte outside the regions; in the synthesized case every changed byte must
//! also be covered by a range of a record.

use std::sync::{Arc, OnceLock};

use rvm::device::{DeviceRef, MemDevice};
use rvm::format::log::{
    crc_seed, encode_pad, seal_record, RangeHeader, SegmentEntry, SegmentKind, Status,
    TransactionEncoder, RECORD_AREA_OFFSET, RECORD_MIN_SIZE, STATUS_FLAG_CLEAN, STATUS_SLOT_SIZE,
};
use rvm::log::LogReader;
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

use crate::fixture::{
    assert_outside_regions_unchanged, in_region, segment_image, AREA_BYTES, LOG_UUID,
    SEGMENT_BYTES, SEGMENT_UUID,
};
use crate::input::Input;

/// Offset of the range count in a record header (see FORMAT.md): corrupted before sealing so
/// the header CRC still matches.
const RECORD_RANGE_COUNT_AT: usize = 48;
/// Limits that keep one execution fast.
const PATCHES_MAX: usize = 64;
const RECORDS_MAX: u8 = 24;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let recover_prefix = mode & 2 != 0;
    let mut expected = None;
    let (log_image, segment_before, covered) = if mode & 1 == 0 {
        let base = base();
        if input.is_empty() {
            // No patch: the crashed log is intact, so recovery must succeed and give exactly
            // the committed state.
            expected = Some(&base.committed);
        }
        (
            patched(base.log.clone(), &mut input),
            base.segment.clone(),
            None,
        )
    } else {
        let (log, covered) = synthesized(&mut input);
        (log, segment_image(), Some(covered))
    };
    let log: DeviceRef = Arc::new(MemDevice::new("log", log_image));
    let segment = Arc::new(MemDevice::new("segment", segment_before.clone()));
    // The inspector's view of the same bytes must not panic either.
    if let Ok(reader) = LogReader::from_device(log.clone()) {
        let _ = reader.scan();
    }
    let options = Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .recover_prefix(recover_prefix)
        .segment_device(segment.clone());
    let opened = Rvm::open_device(log, options);
    if std::env::var_os("RVM_FUZZ_DEBUG").is_some() {
        eprintln!("log_recovery: open: {:?}", opened.as_ref().map(|_| ()));
    }
    if expected.is_some() {
        if let Err(e) = &opened {
            panic!("recovery of an intact crashed log failed: {e}");
        }
    }
    if let Ok(rvm) = opened {
        let _ = rvm.close();
    }
    let after = segment.snapshot();
    if let Some(expected) = expected {
        assert!(
            after == *expected,
            "recovery of an intact crashed log did not give the committed state"
        );
    }
    assert_outside_regions_unchanged(&segment_before, &after);
    if let Some(covered) = covered {
        for (at, (old, new)) in segment_before.iter().zip(&after).enumerate() {
            if old != new {
                let at = at as u64;
                assert!(in_region(at));
                assert!(
                    covered.iter().any(|&(o, l)| at >= o && at - o < l),
                    "segment byte {at} changed but no record range covers it"
                );
            }
        }
    }
}

/// A crashed log, the segment as the crash left it, and the segment as recovery must leave it.
struct Base {
    log: Vec<u8>,
    segment: Vec<u8>,
    committed: Vec<u8>,
}

/// A log written by the library, as a crash leaves it: committed records (flush and no_flush)
/// not yet truncated, the live part wrapped around the end of the area. Built once.
fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let log = Arc::new(MemDevice::new("log", Vec::new()));
        Rvm::init_log_on(&*log, AREA_BYTES).expect("init log");
        let segment = Arc::new(MemDevice::new("segment", segment_image()));
        let rvm = Rvm::open_device(log.clone(), Options::default().truncate_threshold(0))
            .expect("open new log");
        // SAFETY: memory and crash devices lend no descriptor: the segment is read into anonymous
        // memory, which nothing can shorten.
        let mapped = unsafe { rvm.map_device(segment.clone(), MapOptions::anywhere()) }
            .expect("map fixture");
        let regions = mapped.regions().to_vec();
        for i in 0..60usize {
            let mut tx = rvm.begin(BeginMode::NoRestore).expect("begin");
            for k in 0..1 + i % 3 {
                let r = regions[(i + k) % regions.len()];
                let length = 8 + (i * 97 + k * 31) % 1500;
                let offset = (i * 389 + k * 1031) % (r.length - length);
                tx.fill(r.address + offset, length, i as u8 + 1)
                    .expect("fill");
            }
            let mode = if i % 5 == 4 {
                CommitMode::Flush
            } else {
                CommitMode::NoFlush
            };
            tx.end(mode).expect("commit");
            if i == 25 {
                rvm.truncate().expect("truncate");
            }
        }
        rvm.flush().expect("flush");
        let log_image = log.snapshot();
        let segment_image = segment.snapshot();
        // Every commit is flushed, so the committed state is what the regions hold now.
        let mut committed = segment_image.clone();
        for r in &regions {
            let at = r.segment_offset as usize;
            mapped
                .read_bytes(r.address, &mut committed[at..at + r.length])
                .expect("read region");
        }
        drop(mapped);
        drop(rvm);
        Base {
            log: log_image,
            segment: segment_image,
            committed,
        }
    })
}

fn patched(mut log: Vec<u8>, input: &mut Input<'_>) -> Vec<u8> {
    let original_len = log.len();
    for _ in 0..PATCHES_MAX {
        if input.is_empty() || log.is_empty() {
            break;
        }
        match input.u8() % 4 {
            0 | 1 => {
                let at = input.u32() as usize % log.len();
                let n = input.u8() as usize % 32 + 1;
                let bytes = input.bytes(n);
                let end = (at + bytes.len()).min(log.len());
                log[at..end].copy_from_slice(&bytes[..end - at]);
            }
            2 => {
                // A 64-bit field in a status slot or the first records.
                let at = (input.u16() as usize * 8) % log.len();
                let value = input.u64().to_le_bytes();
                let end = (at + 8).min(log.len());
                log[at..end].copy_from_slice(&value[..end - at]);
            }
            _ => {
                let len = input.u32() as usize % (2 * original_len);
                log.resize(len, 0);
            }
        }
    }
    log
}

/// A log built from the input with valid checksums; returns it and the (offset, length) of
/// every range naming segment 0.
fn synthesized(input: &mut Input<'_>) -> (Vec<u8>, Vec<(u64, u64)>) {
    let start = RECORD_AREA_OFFSET;
    let end = start + AREA_BYTES;
    let seed = crc_seed(&LOG_UUID);
    let mut log = vec![0u8; end as usize];
    let mut status = Status::new_log(LOG_UUID, AREA_BYTES, 0);
    let flags = input.u8();
    // Flag 0x10: the table names a plain file (a version-2 status) at a path that does not
    // exist, so recovery must refuse records that name it, cleanly.
    status.segments = vec![if flags & 0x10 != 0 {
        SegmentEntry {
            kind: SegmentKind::PlainFile,
            uuid: SEGMENT_UUID,
            length_bytes: SEGMENT_BYTES,
            path_hint: "/nonexistent/rvm-fuzz-plain-file".into(),
        }
    } else {
        SegmentEntry {
            kind: SegmentKind::Segment,
            uuid: SEGMENT_UUID,
            length_bytes: SEGMENT_BYTES,
            path_hint: String::new(),
        }
    }];
    if flags & 1 == 0 {
        status.flags &= !STATUS_FLAG_CLEAN;
    }
    status.generation = 1 + (input.u8() % 3) as u64;
    status.head_offset = start + (input.u16() as u64 * 8) % AREA_BYTES;
    status.head_lsn = 1 + input.u8() as u64;
    status.generation_start_lsn = status.head_lsn.saturating_sub((input.u8() % 4) as u64);
    let mut covered = Vec::new();
    let mut at = status.head_offset;
    let mut lsn = status.head_lsn;
    let mut batch_first = lsn;
    for _ in 0..input.u8() % RECORDS_MAX {
        let kind = input.u8();
        if kind & 0x80 != 0 {
            lsn += (input.u8() % 3) as u64; // a gap in the chain
        }
        if kind & 0x40 != 0 {
            batch_first = lsn;
        }
        let generation = if kind & 0x20 != 0 {
            (status.generation + (input.u8() % 3) as u64).saturating_sub(1)
        } else {
            status.generation
        };
        let record = if kind.is_multiple_of(8) {
            let length = RECORD_MIN_SIZE + 8 * (input.u8() % 64) as u64;
            let (h, t) = encode_pad(length, lsn, generation, batch_first, seed);
            let mut r = vec![0u8; length as usize];
            r[..h.len()].copy_from_slice(&h);
            let tail = r.len() - t.len();
            r[tail..].copy_from_slice(&t);
            r
        } else {
            let count = input.u8() % 4;
            let mut r = Vec::new();
            let s = TransactionEncoder::begin(&mut r, 1, 0, count as u32);
            for i in 0..count {
                let select = input.u8();
                let segment = if select & 0x80 != 0 {
                    input.u8() as u32
                } else {
                    0
                };
                let (offset, length) = match select % 4 {
                    0 => (8192 + input.u16() as u64 % 8192, input.u8() as u64 * 4),
                    1 => (20480 + input.u16() as u64 % 4096, input.u8() as u64 * 4),
                    2 => (input.u64(), input.u16() as u64 % 512),
                    _ => (input.u16() as u64, input.u8() as u64),
                };
                let header = RangeHeader {
                    segment,
                    offset,
                    length,
                    address: 0,
                };
                TransactionEncoder::range(&mut r, &header).fill(0xa0 | i);
                if segment == 0 {
                    covered.push((offset, length));
                }
            }
            TransactionEncoder::finish(&mut r, s);
            if kind & 0x10 != 0 {
                let wrong = input.u32().to_le_bytes();
                r[RECORD_RANGE_COUNT_AT..RECORD_RANGE_COUNT_AT + 4].copy_from_slice(&wrong);
            }
            seal_record(&mut r, lsn, generation, batch_first, seed);
            r
        };
        let length = record.len() as u64;
        if at + length > end {
            // Wrap as the writer does: a pad to the end of the area, then the area start.
            if end - at < RECORD_MIN_SIZE {
                break;
            }
            let (h, t) = encode_pad(end - at, lsn, generation, batch_first, seed);
            log[at as usize..at as usize + h.len()].copy_from_slice(&h);
            log[(end as usize - t.len())..end as usize].copy_from_slice(&t);
            lsn += 1;
            at = start;
        }
        log[at as usize..(at + length) as usize].copy_from_slice(&record);
        at += length;
        if at >= end {
            at = start;
        }
        lsn += 1;
    }
    status.tail_offset = at;
    status.tail_lsn = lsn;
    if flags & 2 != 0 {
        status.tail_lsn += (input.u8() % 3) as u64;
        status.tail_offset = start + (input.u16() as u64 * 8) % AREA_BYTES;
    }
    status.sequence = 1 + input.u8() as u64;
    let current = status.encode();
    let slot = (status.slot() * STATUS_SLOT_SIZE) as usize;
    log[slot..slot + current.len()].copy_from_slice(&current);
    if flags & 4 != 0 {
        // An older, valid status in the other slot, with another head.
        let mut older = status.clone();
        older.sequence -= 1;
        older.head_offset = start + (input.u16() as u64 * 8) % AREA_BYTES;
        let bytes = older.encode();
        let slot = (older.slot() * STATUS_SLOT_SIZE) as usize;
        log[slot..slot + bytes.len()].copy_from_slice(&bytes);
    }
    if flags & 8 != 0 {
        let len = input.u32() as usize % log.len();
        log.truncate(len);
    }
    (log, covered)
}
