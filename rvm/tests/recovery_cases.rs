//! Recovery as a decision table: every way a log can look at open, and what recovery must do.
//! One test walks the whole table; each row builds a log with the library, damages it the way
//! the row describes, and checks both the scan's verdict and the recovered segment.

use std::sync::Arc;

use rvm::device::{CrashController, CrashDevice, Device, DeviceRef, MemDevice, Tear};
use rvm::format::log::{
    crc_seed, seal_record, RangeHeader, Status, TransactionEncoder, RECORD_HEADER_SIZE,
    STATUS_SLOT_SIZE,
};
use rvm::log::{LogReader, ScanEnd};
use rvm::segment;
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm};

mod support;

const REGION_BYTES: usize = 8 * 4096;

struct Setup {
    log: Arc<MemDevice>,
    data: Arc<MemDevice>,
}

fn setup(area: u64) -> Setup {
    let log = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&log, area).unwrap();
    let data = support::one_region_segment(REGION_BYTES as u64, 0x1000_0000_0000);
    Setup {
        log: Arc::new(log),
        data: Arc::new(data),
    }
}

fn options(s: &Setup) -> Options {
    Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .segment_device(s.data.clone())
}

fn open(s: &Setup) -> rvm::Result<(Rvm, usize)> {
    open_with(s, options(s))
}

fn open_with(s: &Setup, o: Options) -> rvm::Result<(Rvm, usize)> {
    let rvm = Rvm::open_device(s.log.clone(), o)?;
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let seg = unsafe { rvm.map_device(s.data.clone(), MapOptions::anywhere()) }?;
    let base = seg.regions()[0].address;
    Ok((rvm, base))
}

/// Commit `count` flush transactions, each filling 64 bytes at a distinct offset with its
/// number. Returns the expected region contents.
fn commit_flushes(rvm: &Rvm, base: usize, first: usize, count: usize, expect: &mut [u8]) {
    for i in first..first + count {
        let off = (i * 136) % (REGION_BYTES - 64);
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + off, 64, (i % 251) as u8 + 1).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        expect[off..off + 64].fill((i % 251) as u8 + 1);
    }
}

fn region(rvm: &Rvm, base: usize) -> Vec<u8> {
    let mut buf = vec![0u8; REGION_BYTES];
    rvm.read_bytes(base, &mut buf).unwrap();
    buf
}

/// A fresh log and segment, an open instance, and `flushes` flush commits made: returns them
/// with the expected region contents.
fn started(flushes: usize) -> (Setup, Rvm, usize, Vec<u8>) {
    let s = setup(64 * 1024);
    let (rvm, base) = open(&s).unwrap();
    let mut expect = vec![0u8; REGION_BYTES];
    commit_flushes(&rvm, base, 0, flushes, &mut expect);
    (s, rvm, base, expect)
}

/// "Crash": copy the devices' bytes as they are now and forget the instance (no close).
fn crash(s: &Setup, rvm: Rvm) -> Setup {
    let copy = Setup {
        log: Arc::new(MemDevice::new("log", s.log.snapshot())),
        data: Arc::new(MemDevice::new("data", s.data.snapshot())),
    };
    std::mem::forget(rvm);
    copy
}

fn scan(s: &Setup) -> rvm::log::Scan {
    LogReader::from_device(s.log.clone() as DeviceRef)
        .unwrap()
        .scan()
        .unwrap()
}

fn flip(dev: &MemDevice, offset: u64) {
    let mut b = [0u8; 1];
    dev.read_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    dev.write_at(&b, offset).unwrap();
}

type Row = (&'static str, fn());

#[test]
fn recovery_decision_table() {
    let table: &[Row] = &[
        ("empty log", empty_log),
        ("clean close, nothing to replay", clean_close),
        ("committed records, no close", committed_not_closed),
        ("torn tail: last flush damaged", torn_tail),
        (
            "mid-log corruption refused, prefix on request",
            mid_log_corruption,
        ),
        ("damage before a clean-close tail", damage_before_clean_tail),
        (
            "mid-log corruption before a wrap: the later flush is found after it",
            corruption_before_the_wrap,
        ),
        ("wrapped log, record placed after a wrap pad", wrapped_log),
        (
            "interrupted truncation, at every device operation",
            interrupted_truncation,
        ),
        ("stale status slot: the newer slot wins", stale_status_slot),
        ("torn status slot: the older slot is used", torn_status_slot),
        ("both status slots damaged", both_slots_damaged),
        (
            "leftover record of an earlier generation",
            leftover_generation,
        ),
        ("record from another log", record_from_another_log),
        ("range outside the segment", range_outside_segment),
        (
            "segment moved: found by UUID, never replayed into another",
            segment_by_uuid,
        ),
    ];
    for (name, row) in table {
        eprintln!("row: {name}");
        row();
    }
}

fn empty_log() {
    let s = setup(64 * 1024);
    let sc = scan(&s);
    assert!(sc.is_empty());
    assert_eq!(sc.end, ScanEnd::End);
    let (rvm, base) = open(&s).unwrap();
    assert_eq!(region(&rvm, base), vec![0u8; REGION_BYTES]);
}

fn clean_close() {
    let (s, rvm, _, expect) = started(5);
    rvm.close().unwrap();
    let status = LogReader::from_device(s.log.clone() as DeviceRef)
        .unwrap()
        .status()
        .clone();
    assert!(status.is_clean());
    assert_eq!(scan(&s).end, ScanEnd::End);
    let (rvm, base) = open(&s).unwrap();
    assert_eq!(region(&rvm, base), expect);
}

fn committed_not_closed() {
    let (s, rvm, _, expect) = started(20);
    let c = crash(&s, rvm);
    let sc = scan(&c);
    assert_eq!(sc.end, ScanEnd::End);
    assert!(sc.records.iter().filter(|r| r.range_count > 0).count() == 20);
    let (rvm, base) = open(&c).unwrap();
    assert_eq!(region(&rvm, base), expect);
    // Recovery emptied the log.
    assert_eq!(rvm.query().used_bytes, 0);
}

fn torn_tail() {
    let (s, rvm, base, mut expect) = started(3);
    let before_last = expect.clone();
    commit_flushes(&rvm, base, 3, 1, &mut expect);
    let c = crash(&s, rvm);
    let last = *scan(&c)
        .records
        .iter()
        .rfind(|r| r.range_count > 0)
        .unwrap();
    // Damage the body of the last transaction, as a torn write would.
    flip(&c.log, last.offset + RECORD_HEADER_SIZE as u64 + 40);
    let sc = scan(&c);
    assert!(
        matches!(sc.end, ScanEnd::TornTail { offset, .. } if offset == last.offset),
        "{:?}",
        sc.end
    );
    let (rvm, base) = open(&c).unwrap();
    assert_eq!(
        region(&rvm, base),
        before_last,
        "the torn transaction is dropped, the rest kept"
    );
}

fn mid_log_corruption() {
    let (s, rvm, base, mut expect) = started(2);
    let prefix = expect.clone();
    commit_flushes(&rvm, base, 2, 4, &mut expect);
    let c = crash(&s, rvm);
    let txs: Vec<_> = scan(&c)
        .records
        .into_iter()
        .filter(|r| r.range_count > 0)
        .collect();
    let bad = txs[2];
    flip(&c.log, bad.offset + RECORD_HEADER_SIZE as u64 + 40);
    let before = c.data.snapshot();
    let sc = scan(&c);
    match &sc.end {
        ScanEnd::Corrupt {
            offset, later_lsn, ..
        } => {
            assert_eq!(*offset, bad.offset);
            assert_eq!(*later_lsn, txs[3].lsn, "the first later flush is named");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let err = open(&c).unwrap_err();
    assert!(
        matches!(err, Error::LogCorrupt { offset, .. } if offset == bad.offset),
        "{err}"
    );
    assert!(err.to_string().contains(&bad.offset.to_string()));
    assert_eq!(
        c.data.snapshot(),
        before,
        "a refused recovery changes nothing"
    );
    let (rvm, base) = open_with(&c, options(&c).recover_prefix(true)).unwrap();
    assert_eq!(
        region(&rvm, base),
        prefix,
        "recover_prefix keeps exactly the records before the damage"
    );
}

fn damage_before_clean_tail() {
    let (s, rvm, _, _) = started(1);
    rvm.close().unwrap();
    // One batch only, so no later flush exists; the clean-close tail still proves damage.
    let rec = scan(&s).records[0];
    flip(&s.log, rec.offset + RECORD_HEADER_SIZE as u64 + 40);
    assert!(matches!(scan(&s).end, ScanEnd::Corrupt { .. }));
    assert!(matches!(open(&s).unwrap_err(), Error::LogCorrupt { .. }));
}

/// A fresh log whose live records straddle the wrap: truncated once with the tail in the
/// middle of the area (the head stays there), then flushes until the records run to the end
/// of the area and wrap to its start, and three more. Returns the instance (still open) with
/// the expected region contents.
fn wrapped() -> (Setup, Rvm, usize, Vec<u8>) {
    let s = setup(64 * 1024);
    let (rvm, base) = open(&s).unwrap();
    let mut expect = vec![0u8; REGION_BYTES];
    commit_flushes(&rvm, base, 0, 60, &mut expect);
    rvm.truncate().unwrap();
    let mut i = 60;
    while rvm.statistics().wraps < 1 {
        commit_flushes(&rvm, base, i, 1, &mut expect);
        i += 1;
        assert!(i < 10_000, "the log never wrapped");
    }
    commit_flushes(&rvm, base, i, 3, &mut expect);
    (s, rvm, base, expect)
}

fn corruption_before_the_wrap() {
    let (s, rvm, _, _) = wrapped();
    let c = crash(&s, rvm);
    // Every commit is a flush of its own; the one that wrapped starts with the pad that fills
    // the area's end. Damage the last transaction before the wrap and that pad's header: the
    // first later flush is then the one after the wrap's, between the area's start and the
    // head, so the search for it must wrap too.
    let all = scan(&c).records;
    let k = all
        .windows(2)
        .position(|w| w[1].offset < w[0].offset)
        .expect("records on both sides of the wrap")
        + 1;
    let pad = all[k - 1];
    assert!(pad.range_count == 0, "a pad fills the area's end");
    // Each flush is a transaction and the pad that ends its sector.
    let bad = *all[..k - 1]
        .iter()
        .rfind(|r| r.range_count > 0)
        .expect("a transaction before the wrap");
    let later = *all[k + 1..]
        .iter()
        .find(|r| r.range_count > 0)
        .expect("a flush after the wrap's");
    flip(&c.log, bad.offset + RECORD_HEADER_SIZE as u64 + 40);
    flip(&c.log, pad.offset + 8);
    match &scan(&c).end {
        ScanEnd::Corrupt {
            offset,
            later_lsn,
            later_offset,
            ..
        } => {
            assert_eq!(*offset, bad.offset);
            assert_eq!(
                *later_lsn, later.lsn,
                "the first flush after the wrap's is named"
            );
            assert_eq!(*later_offset, later.offset);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(open(&c).unwrap_err(), Error::LogCorrupt { .. }));
}

fn wrapped_log() {
    let (s, rvm, _, expect) = wrapped();
    let state = rvm.query();
    assert!(
        state.tail_offset < state.head_offset,
        "live records span the wrap: {state:?}"
    );
    let c = crash(&s, rvm);
    let sc = scan(&c);
    assert_eq!(sc.end, ScanEnd::End);
    assert!(
        sc.records.windows(2).any(|w| w[1].offset < w[0].offset),
        "scan walked across the wrap"
    );
    let (rvm, base) = open(&c).unwrap();
    assert_eq!(region(&rvm, base), expect);
}

fn interrupted_truncation() {
    // Crash at each device operation of a truncation in turn (segment writes, segment sync,
    // status write, status sync); recovery must always give the committed state.
    let mut reached_end = false;
    for crash_at in 0..64 {
        let ctl = CrashController::new(crash_at + 7);
        let base_setup = setup(64 * 1024);
        let log = Arc::new(CrashDevice::new(
            "log",
            ctl.clone(),
            base_setup.log.snapshot(),
        ));
        let data = Arc::new(CrashDevice::new(
            "data",
            ctl.clone(),
            base_setup.data.snapshot(),
        ));
        log.set_tear(Tear::RandomSectors);
        data.set_tear(Tear::RandomSectors);
        let o = || {
            Options::default()
                .truncate_threshold(0)
                .background_recovery(false)
                .segment_device(data.clone())
        };
        let rvm = Rvm::open_device(log.clone(), o()).unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }.unwrap();
        let base = seg.regions()[0].address;
        let mut expect = vec![0u8; REGION_BYTES];
        commit_flushes(&rvm, base, 0, 12, &mut expect);
        ctl.crash_after(crash_at);
        let truncated = rvm.truncate();
        if truncated.is_ok() && !ctl.has_crashed() {
            reached_end = true;
        }
        ctl.crash_now();
        drop(rvm);
        log.restart();
        data.restart();
        let rvm = Rvm::open_device(log.clone(), o()).unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }.unwrap();
        assert_eq!(
            region(&rvm, seg.regions()[0].address),
            expect,
            "crash at truncation step {crash_at}"
        );
    }
    assert!(reached_end, "the crash points covered the whole truncation");
}

fn stale_status_slot() {
    let (s, rvm, _, expect) = started(3);
    rvm.truncate().unwrap();
    rvm.close().unwrap();
    let reader = LogReader::from_device(s.log.clone() as DeviceRef).unwrap();
    let (a, b) = (
        reader.slot(0).clone().unwrap(),
        reader.slot(1).clone().unwrap(),
    );
    let newest = if a.sequence > b.sequence { 0 } else { 1 };
    assert_eq!(reader.current_slot(), newest);
    assert_ne!(a.sequence, b.sequence);
    let (rvm, base) = open(&s).unwrap();
    assert_eq!(region(&rvm, base), expect);
}

fn torn_status_slot() {
    let (s, rvm, _, expect) = started(6);
    rvm.truncate().unwrap();
    let c = crash(&s, rvm);
    let reader = LogReader::from_device(c.log.clone() as DeviceRef).unwrap();
    let current = reader.current_slot();
    let older_seq = reader.slot(1 - current).as_ref().unwrap().sequence;
    // Tear the newest slot (as if its write had been cut short).
    flip(&c.log, current as u64 * STATUS_SLOT_SIZE + 100);
    let reader = LogReader::from_device(c.log.clone() as DeviceRef).unwrap();
    assert_eq!(reader.current_slot(), 1 - current);
    assert!(reader.slot(current).is_err());
    assert_eq!(reader.status().sequence, older_seq);
    let (rvm, base) = open(&c).unwrap();
    assert_eq!(
        region(&rvm, base),
        expect,
        "replaying from the older head is idempotent"
    );
}

fn both_slots_damaged() {
    let s = setup(64 * 1024);
    flip(&s.log, 100);
    flip(&s.log, STATUS_SLOT_SIZE + 100);
    let err = Rvm::open_device(s.log.clone(), options(&s)).unwrap_err();
    assert!(matches!(err, Error::BadLog { .. }), "{err}");
    assert!(err.to_string().contains("status slot 0") && err.to_string().contains("status slot 1"));
}

/// Encode a one-range transaction record as a crashed earlier run might have left it.
fn craft_record(status: &Status, lsn: u64, generation: u64, offset: u64, fill: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    let start = TransactionEncoder::begin(&mut buf, 1, 0, 1);
    TransactionEncoder::range(
        &mut buf,
        &RangeHeader {
            segment: 0,
            offset,
            length: 16,
            address: 0,
        },
    )
    .fill(fill);
    TransactionEncoder::finish(&mut buf, start);
    seal_record(&mut buf, lsn, generation, lsn, crc_seed(&status.log_uuid));
    buf
}

fn leftover_generation() {
    let (s, rvm, _, expect) = started(2);
    let c = crash(&s, rvm);
    let reader = LogReader::from_device(c.log.clone() as DeviceRef).unwrap();
    let sc = reader.scan().unwrap();
    let status = reader.status().clone();
    // A fresh log starts at generation 1; the run that wrote these records started the next.
    assert_eq!(
        status.generation, 2,
        "a run that writes records starts a new generation"
    );
    assert_eq!(status.generation_start_lsn, sc.records[0].lsn);
    // A record with the next LSN, right at the tail, but stamped with an older generation:
    // what a batch torn by an earlier crash can leave behind. It must not extend the chain.
    let stale = craft_record(&status, sc.next_lsn, status.generation - 1, 4096, 0xee);
    let control_log = c.log.snapshot();
    c.log.write_at(&stale, sc.tail_offset).unwrap();
    let after = scan(&c);
    assert_eq!(
        after.records.len(),
        sc.records.len(),
        "a leftover record was accepted"
    );
    let (rvm, base) = open(&c).unwrap();
    assert_eq!(region(&rvm, base), expect);
    drop(rvm);
    // Control: the same record stamped with the current generation is accepted.
    let c2 = Setup {
        log: Arc::new(MemDevice::new("log", control_log)),
        data: c.data.clone(),
    };
    let current = craft_record(&status, sc.next_lsn, status.generation, 4096, 0xee);
    c2.log.write_at(&current, sc.tail_offset).unwrap();
    assert_eq!(scan(&c2).records.len(), sc.records.len() + 1);
}

fn record_from_another_log() {
    let (s, rvm, _, _) = started(1);
    let c = crash(&s, rvm);
    let reader = LogReader::from_device(c.log.clone() as DeviceRef).unwrap();
    let sc = reader.scan().unwrap();
    let mut foreign = reader.status().clone();
    foreign.log_uuid = rvm::Uuid([0xab; 16]);
    let rec = craft_record(
        &foreign,
        sc.next_lsn,
        reader.status().generation,
        4096,
        0x11,
    );
    c.log.write_at(&rec, sc.tail_offset).unwrap();
    assert_eq!(scan(&c).records.len(), sc.records.len());
}

fn range_outside_segment() {
    let (s, rvm, _, _) = started(1);
    let c = crash(&s, rvm);
    let reader = LogReader::from_device(c.log.clone() as DeviceRef).unwrap();
    let sc = reader.scan().unwrap();
    let status = reader.status().clone();
    // A crafted but well-formed record that writes past the region (into the segment header).
    let evil = craft_record(&status, sc.next_lsn, status.generation, 0, 0xff);
    c.log.write_at(&evil, sc.tail_offset).unwrap();
    let before = c.data.snapshot();
    let err = open(&c).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RangeOutsideSegment {
                segment_offset: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        c.data.snapshot(),
        before,
        "nothing written outside (or inside) the segment"
    );
}

fn segment_by_uuid() {
    let dir = std::env::temp_dir().join(format!("rvm-uuid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (log, data, moved) = (dir.join("log"), dir.join("data"), dir.join("moved"));
    Rvm::create_log(&log, 64 * 1024).unwrap();
    let header = support::one_region_layout(REGION_BYTES as u64, 0x1000_0000_0000);
    drop(segment::create(&data, &header, Default::default()).unwrap());
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(seg.regions()[0].address + 8, &0x1234_5678_u64)
        .unwrap();
    tx.end(CommitMode::Flush).unwrap();
    std::mem::forget(rvm); // crash (the lock dies with the file descriptors at exit)
                           // The segment moves; a different segment takes its old name.
    std::fs::copy(&data, &moved).unwrap();
    let log2 = dir.join("log2");
    std::fs::copy(&log, &log2).unwrap();
    std::fs::remove_file(&data).unwrap();
    let other = support::one_region_layout(REGION_BYTES as u64, 0x1000_0000_0000);
    drop(segment::create(&data, &other, Default::default()).unwrap());
    let err = Rvm::open(&log2, Options::default()).unwrap_err();
    assert!(
        matches!(err, Error::WrongSegment { .. }),
        "never replayed into another segment: {err}"
    );
    let other_bytes = std::fs::read(&data).unwrap();
    let rvm = Rvm::open(
        &log2,
        Options::default()
            .segment_path(&moved)
            .background_recovery(false),
    )
    .unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&moved, MapOptions::anywhere()) }.unwrap();
    assert_eq!(
        seg.read::<u64>(seg.regions()[0].address + 8).unwrap(),
        0x1234_5678
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        other_bytes,
        "the other segment was not touched"
    );
    drop(rvm);
    std::fs::remove_dir_all(&dir).unwrap();
}
