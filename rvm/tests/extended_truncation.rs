//! A background truncation goes on with the records made durable while it runs (so one
//! rewrite of the segment covers more log), loses no commit to a crash anywhere in it, and a
//! flush that finds the log full while one runs waits for it instead of truncating again at
//! once, and goes on as soon as a stage of it made room. The truncation is held at its first
//! read of the log (a gate in front of the log device) while the test commits, or at a sync
//! of the segment (a gate in front of the segment device) after a stage moved the head.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvm::device::{Device, MemDevice};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;
use support::gate::{gated, Gate, GatedLog};

const REGION_BYTES: usize = 256 * 1024;
const LOG_AREA_BYTES: u64 = 1 << 20;
/// The 64-byte slots that commits write (slot `i % SLOTS` for commit `i`).
const SLOTS: usize = 4000;

/// An instance on `log` (opened with a threshold, so that its truncation thread runs, then set
/// to 0: no background truncation until the test sets one) and the segment `data`; the base
/// address of the segment's region.
fn open_on(log: Arc<dyn Device>, data: Arc<dyn Device>) -> rvm::Result<(Rvm, usize)> {
    let options = Options::default()
        .truncate_threshold(100)
        .background_recovery(false)
        .segment_device(data.clone());
    let rvm = Rvm::open_device(log, options)?;
    rvm.set_truncate_threshold(0)?;
    // SAFETY: these devices lend no descriptor to map; the region is read into anonymous
    // memory.
    let seg = unsafe { rvm.map_device(data, MapOptions::anywhere()) }?;
    let base = seg.regions()[0].address;
    Ok((rvm, base))
}

/// An instance on a gated memory log and a memory segment.
fn open() -> (Rvm, Arc<GatedLog>, Arc<MemDevice>, usize) {
    let dev = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&dev, LOG_AREA_BYTES).unwrap();
    let log = gated(Arc::new(dev));
    let data = Arc::new(support::one_region_segment(
        REGION_BYTES as u64,
        0x1000_0000_0000,
    ));
    let (rvm, base) = open_on(log.clone(), data.clone()).unwrap();
    (rvm, log, data, base)
}

/// Start a background truncation (with `0..100` committed before it) and hold it at its
/// first log read while `100..300` are committed and flushed.
fn commit_during_a_held_truncation(rvm: &Rvm, log: &GatedLog, base: usize) {
    commit(rvm, base, 0..100);
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(1).unwrap();
    commit(rvm, base, 100..101);
    let _held = log.wait_holding();
    rvm.set_truncate_threshold(100).unwrap();
    // Made durable while the truncation runs (no flush asks for another one now).
    commit(rvm, base, 101..300);
}

fn expected(n: usize) -> Vec<u8> {
    let mut expect = vec![0u8; n * 64];
    for i in 0..n {
        expect[i * 64..i * 64 + 64].fill(value(i));
    }
    expect
}

fn value(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

/// Commit 64 bytes of `value(i)` at slot `i % SLOTS` of the region for each `i` in `slots`,
/// the last with a flush.
fn commit(rvm: &Rvm, base: usize, slots: std::ops::Range<usize>) {
    let last = slots.end - 1;
    for i in slots {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + (i % SLOTS) * 64, 64, value(i)).unwrap();
        let mode = if i == last {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        };
        tx.end(mode).unwrap();
    }
}

/// The region's bytes as the segment device holds them (what is durable in the segment).
fn segment_bytes(data: &MemDevice, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    data.read_at(&mut got, 4096).unwrap();
    got
}

#[test]
fn a_background_truncation_applied_the_records_flushed_while_it_ran() {
    let (rvm, log, data, base) = open();
    commit_during_a_held_truncation(&rvm, &log, base);
    log.set(Gate::Open);
    rvm.wait_for_truncation().unwrap();
    let q = rvm.query();
    assert_eq!(
        (q.used_bytes, q.head_lsn),
        (0, q.next_lsn),
        "the records flushed during the truncation are still in the log"
    );
    assert_eq!(rvm.statistics().truncations, 1);
    // The log is empty, so the segment itself holds every commit.
    let expect = expected(300);
    assert!(segment_bytes(&data, expect.len()) == expect);
    rvm.close().unwrap();
}

/// A crash at any write or sync of a truncation that went on with the records flushed while
/// it ran loses no commit: the head moves past them only after the segment holding them is
/// synced.
#[test]
fn a_crash_during_an_extended_truncation_loses_no_commit() {
    let dev = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&dev, LOG_AREA_BYTES).unwrap();
    let (log_img, data_img) = (
        dev.snapshot(),
        support::one_region_segment(REGION_BYTES as u64, 0x1000_0000_0000).snapshot(),
    );
    let expect = expected(300);
    let mut crashes = 0;
    for crash_at in (0..320).step_by(7) {
        let (controller, log, data) = support::crash_pair(crash_at + 1, &log_img, &data_img);
        let gate = gated(log.clone());
        let (rvm, base) = open_on(gate.clone(), data.clone()).unwrap();
        commit_during_a_held_truncation(&rvm, &gate, base);
        controller.crash_after(crash_at);
        gate.set(Gate::Open);
        let waited = rvm.wait_for_truncation();
        if controller.has_crashed() {
            crashes += 1;
        } else {
            // Not reached: the truncation ended; crash right after it instead.
            waited.unwrap();
            assert_eq!(rvm.query().used_bytes, 0, "crash point {crash_at}");
        }
        controller.crash_now();
        drop(rvm);
        log.restart();
        data.restart();
        let (r, b) = open_on(log.clone(), data.clone()).unwrap();
        let mut got = vec![0u8; expect.len()];
        r.read_bytes(b, &mut got).unwrap();
        assert!(
            got == expect,
            "a crash at operation {crash_at} lost commits"
        );
        r.close().unwrap();
    }
    assert!(
        crashes > 10,
        "only {crashes} crash points fell inside the truncation"
    );
}

#[test]
fn a_flush_that_found_the_log_full_waited_for_the_running_truncation() {
    let (rvm, log, data, base) = open();
    commit(&rvm, base, 0..100);
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(1).unwrap();
    commit(&rvm, base, 100..101);
    // The instance is made shared before the guard, so a failing test drops the guard (and
    // opens the gate) before the instance closes.
    let rvm = Arc::new(rvm);
    let _held = log.wait_holding();
    rvm.set_truncate_threshold(100).unwrap();
    // Fill the log while the truncation is held: a record of about 176 bytes each, so 8,000
    // of them (1.4 MB) outgrow the 1 MiB area, and the flush waits for room.
    let writer = {
        let rvm = rvm.clone();
        std::thread::spawn(move || {
            for i in 0..8000usize {
                let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
                tx.fill(base + (i % 4000) * 64, 64, value(i)).unwrap();
                tx.end(CommitMode::Flush).unwrap();
            }
        })
    };
    // (Bounded: a flush that never waits for room must fail the test, not hang it.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while rvm.statistics().space_waits == 0
        && !writer.is_finished()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let waited = rvm.statistics().space_waits > 0;
    log.set(Gate::Open);
    assert!(
        waited,
        "the flush never waited for room behind the held truncation"
    );
    writer.join().unwrap();
    let st = rvm.statistics();
    // The flush waited for the background truncation and went on in the room it made; the
    // writer filled the log again later (a truncation each time, in the background once the
    // held one had taught the instance to start ahead of the threshold), but never truncated
    // right after waiting. Without the wait, each space wait is a truncation of its own.
    let own = st.truncations - st.background_truncations;
    assert!(
        own < st.space_waits,
        "{own} truncations of the flush's own for {} space waits",
        st.space_waits
    );
    rvm.truncate().unwrap();
    let mut expect = vec![0u8; 4000 * 64];
    for i in 4000..8000usize {
        expect[(i % 4000) * 64..(i % 4000) * 64 + 64].fill(value(i));
    }
    assert!(segment_bytes(&data, expect.len()) == expect);
    Arc::try_unwrap(rvm).ok().unwrap().close().unwrap();
}

/// The region's first `SLOTS` slots after commits `0..n` (each writes slot `i % SLOTS`).
fn expected_after(n: usize) -> Vec<u8> {
    let mut expect = vec![0u8; SLOTS * 64];
    for i in 0..n {
        expect[(i % SLOTS) * 64..(i % SLOTS) * 64 + 64].fill(value(i));
    }
    expect
}

/// A flush that found the log full while a staged background truncation ran went on as soon
/// as the truncation's first stage had moved the head, while the rest was still being applied
/// (the truncation is held at its second segment sync, after that first stage), and left
/// the rest to that truncation: it truncated nothing itself.
#[test]
fn a_flush_that_found_the_log_full_went_on_once_a_stage_made_room() {
    let dev = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&dev, LOG_AREA_BYTES).unwrap();
    let log = gated(Arc::new(dev));
    let segment = Arc::new(support::one_region_segment(
        REGION_BYTES as u64,
        0x1000_0000_0000,
    ));
    let data = gated(segment.clone());
    let (rvm, base) = open_on(log.clone(), data.clone()).unwrap();
    // Most of the log (a truncation of it has several stages of 128 KiB), then a background
    // truncation, held at its first read of the log.
    let mut n = 0;
    while rvm.query().used_bytes < LOG_AREA_BYTES * 80 / 100 {
        commit(&rvm, base, n..n + 100);
        n += 100;
    }
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(1).unwrap();
    commit(&rvm, base, n..n + 1);
    n += 1;
    // Shared before the guard, as above.
    let rvm = Arc::new(rvm);
    let _held = log.wait_holding();
    rvm.set_truncate_threshold(100).unwrap();
    // A writer fills the rest of the log, one flush per commit, and waits for room; once it
    // does, it is given 200 commits more (about 35 KB: less than a stage frees).
    let (started, limit) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(usize::MAX)),
    );
    let writer = {
        let (rvm, started, limit) = (rvm.clone(), started.clone(), limit.clone());
        std::thread::spawn(move || {
            let mut i = n;
            while i - n < limit.load(Ordering::SeqCst) {
                started.store(i - n + 1, Ordering::SeqCst);
                commit(&rvm, base, i..i + 1);
                i += 1;
            }
            i
        })
    };
    // (Bounded: a flush that never waits for room must fail the test, not hang it.)
    let deadline = Instant::now() + Duration::from_secs(60);
    while rvm.statistics().space_waits == 0 && !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        rvm.statistics().space_waits > 0,
        "the flush never waited for room behind the held truncation"
    );
    // The writer is stuck in commit `started` (the log is full and the truncation held).
    limit.store(started.load(Ordering::SeqCst) + 200, Ordering::SeqCst);
    data.set(Gate::ArmedSync(1));
    log.set(Gate::Open);
    let held = data.wait_holding_for(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while held && !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (went_on, truncations) = (writer.is_finished(), rvm.statistics().truncations);
    data.set(Gate::Open);
    assert!(
        held,
        "the truncation never reached a second segment sync: no stage"
    );
    assert!(
        went_on,
        "the flush waited for the whole truncation, though its first stage had made room"
    );
    assert_eq!(
        truncations, 0,
        "the truncation had ended before the flush went on"
    );
    let end = writer.join().unwrap();
    rvm.wait_for_truncation().unwrap();
    let st = rvm.statistics();
    assert_eq!(
        (st.truncations, st.background_truncations),
        (1, 1),
        "the flush truncated on its own after waiting for room"
    );
    rvm.truncate().unwrap();
    let expect = expected_after(end);
    assert!(segment_bytes(&segment, expect.len()) == expect);
    Arc::try_unwrap(rvm).ok().unwrap().close().unwrap();
}
