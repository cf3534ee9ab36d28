//! Background truncation starts ahead of the threshold by how far the log rose above the use
//! at which a flush asked for the last background truncation, until it ended
//! (`LogState::truncation_lead_bytes`): the lead is measured (half as much again), counts the
//! rise after the first stage freed space too, is capped at half the threshold, shrinks by a
//! quarter after a truncation the log did not rise during, and a flush that leaves the log
//! below the threshold but within the lead of it starts a truncation. Truncations are held at
//! their first read of the log (a gate in front of the log device), or at a segment sync (a
//! gate in front of the segment device), while the test commits.

use std::sync::Arc;
use std::time::Duration;

use rvm::device::{Device, MemDevice};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;
use support::gate::{gated, Gate, GatedLog};

const REGION_BYTES: usize = 256 * 1024;
const LOG_AREA_BYTES: u64 = 1 << 20;
/// The 64-byte slots that commits write (slot `i % SLOTS` for commit `i`).
const SLOTS: usize = 4000;

/// An instance on a gated memory log (threshold 100: before a background truncation has ended
/// none starts below 75% use, which no test here reaches before it lowers the threshold) and a
/// gated memory segment; the base address of the segment's region.
fn open_gated() -> (Rvm, Arc<GatedLog>, Arc<GatedLog>, usize) {
    let dev = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&dev, LOG_AREA_BYTES).unwrap();
    let log = gated(Arc::new(dev));
    let data = gated(Arc::new(support::one_region_segment(
        REGION_BYTES as u64,
        0x1000_0000_0000,
    )));
    let options = Options::default()
        .truncate_threshold(100)
        .background_recovery(false)
        .segment_device(data.clone());
    let rvm = Rvm::open_device(log.clone(), options).unwrap();
    // SAFETY: memory devices lend no descriptor to map; the region is read into anonymous
    // memory.
    let seg =
        unsafe { rvm.map_device(data.clone() as Arc<dyn Device>, MapOptions::anywhere()) }.unwrap();
    let base = seg.regions()[0].address;
    (rvm, log, data, base)
}

/// [`open_gated`] without the segment's gate.
fn open() -> (Rvm, Arc<GatedLog>, usize) {
    let (rvm, log, _, base) = open_gated();
    (rvm, log, base)
}

/// Commits `slots` (64 bytes each at slot `i % SLOTS`), each in its own flush.
fn commit(rvm: &Rvm, base: usize, slots: std::ops::Range<usize>) {
    for i in slots {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + (i % SLOTS) * 64, 64, (i % 251) as u8 + 1)
            .unwrap();
        tx.end(CommitMode::Flush).unwrap();
    }
}

/// Commit 30 flushes (about 15 KB, over 1% of the log), start a background truncation
/// with one more at a threshold of 1%, hold it at its first log read, commit `during` flushes
/// while it is held, then let it finish (the threshold is 100 again after). `next` is the
/// next commit's number. Returns the log's growth while it was held (what the next truncation
/// should start ahead by, before the margin).
fn held_truncation(rvm: &Rvm, log: &GatedLog, base: usize, next: &mut usize, during: usize) -> u64 {
    commit(rvm, base, *next..*next + 30);
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(1).unwrap();
    commit(rvm, base, *next + 30..*next + 31);
    let _held = log.wait_holding();
    let at_start = rvm.query().used_bytes;
    rvm.set_truncate_threshold(100).unwrap();
    commit(rvm, base, *next + 31..*next + 31 + during);
    *next += 31 + during;
    let grown = rvm.query().used_bytes - at_start;
    log.set(Gate::Open);
    rvm.wait_for_truncation().unwrap();
    assert_eq!(rvm.query().used_bytes, 0);
    grown
}

#[test]
fn the_lead_is_the_growth_during_the_last_truncation_and_shrinks_when_there_is_none() {
    let (rvm, log, base) = open();
    assert_eq!(
        rvm.query().truncation_lead_bytes,
        LOG_AREA_BYTES / 4,
        "no truncation yet: a quarter of the threshold (100%)"
    );
    let mut next = 0;
    // 200 flushes while the truncation is held: 200 records and their sector pads.
    let grown = held_truncation(&rvm, &log, base, &mut next, 200);
    assert!(grown >= 200 * 176, "grew only {grown} bytes");
    let lead = rvm.query().truncation_lead_bytes;
    assert_eq!(lead, grown + grown / 2, "the growth, half as much again");
    assert_eq!(rvm.statistics().background_truncations, 1);
    // A truncation during which nothing is committed: the lead shrinks by a quarter.
    assert_eq!(held_truncation(&rvm, &log, base, &mut next, 0), 0);
    assert_eq!(rvm.query().truncation_lead_bytes, lead - lead / 4);
    // A larger growth replaces a smaller lead at once.
    let more = held_truncation(&rvm, &log, base, &mut next, 400);
    assert!(more + more / 2 > lead);
    assert_eq!(rvm.query().truncation_lead_bytes, more + more / 2);
    assert_eq!(rvm.statistics().background_truncations, 3);
    rvm.close().unwrap();
}

/// Before any background truncation has ended nothing is measured, and the first one starts
/// a quarter of the threshold ahead of it: not below that use, but at it. With the guess
/// ignored (a lead of 0) the log would reach the threshold itself first.
#[test]
fn the_first_truncation_starts_a_quarter_of_the_threshold_ahead() {
    let (rvm, _log, base) = open();
    rvm.set_truncate_threshold(40).unwrap();
    assert_eq!(rvm.query().truncation_lead_bytes, LOG_AREA_BYTES / 10);
    let trigger = LOG_AREA_BYTES * 30 / 100;
    // One flush: a 176-byte record and its sector pad.
    let flush_bytes = 512;
    let mut next = 0;
    while rvm.query().used_bytes + flush_bytes < trigger {
        commit(&rvm, base, next..next + 1);
        next += 1;
    }
    rvm.wait_for_truncation().unwrap();
    assert_eq!(
        rvm.statistics().truncations,
        0,
        "none below the use a quarter of the threshold ahead of it"
    );
    // One more flush reaches the trigger. (Not a loop on the use: the truncation it starts
    // may free space before the use is read again, and a commit after it ends stays.)
    assert!(rvm.query().used_bytes < trigger);
    commit(&rvm, base, next..next + 1);
    rvm.wait_for_truncation().unwrap();
    let st = rvm.statistics();
    assert_eq!(st.background_truncations, 1, "one started there");
    assert_eq!(rvm.query().used_bytes, 0, "and it freed the log");
    // Once one has ended, the lead is what it measured (no commits while it ran: none).
    assert_eq!(rvm.query().truncation_lead_bytes, 0);
    rvm.close().unwrap();
}

/// The lead counts the log's rise over the whole truncation, not only before its first stage
/// freed space: a producer that outruns the later stages lifts the log past where the
/// truncation started too. Nothing is committed before the first stage moves the head (the
/// truncation is then held at its second segment sync); the commits after it lift the log
/// above its starting use.
#[test]
fn the_lead_counts_the_rise_after_the_first_stage_too() {
    let (rvm, log, data, base) = open_gated();
    let mut next = 0;
    // About 60% of the log: a truncation of it has several stages of 128 KiB.
    while rvm.query().used_bytes < LOG_AREA_BYTES * 60 / 100 {
        commit(&rvm, base, next..next + 1);
        next += 1;
    }
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(1).unwrap();
    commit(&rvm, base, next..next + 1);
    next += 1;
    let _held = log.wait_holding();
    let at_start = rvm.query().used_bytes;
    rvm.set_truncate_threshold(100).unwrap();
    data.set(Gate::ArmedSync(1));
    log.set(Gate::Open);
    let held = data.wait_holding_for(Duration::from_secs(60));
    let after_stage = rvm.query().used_bytes;
    // Flushes while the second stage is held, until the log is 64 KiB above its use at the
    // start.
    while held && rvm.query().used_bytes <= at_start + (64 << 10) {
        commit(&rvm, base, next..next + 1);
        next += 1;
    }
    let peak = rvm.query().used_bytes;
    // (Released before any assertion: a failing one must not leave the truncation held.)
    data.set(Gate::Open);
    rvm.wait_for_truncation().unwrap();
    assert!(
        held,
        "the truncation never reached a second segment sync: no stage"
    );
    assert!(
        after_stage < at_start,
        "the first stage freed nothing: {after_stage} bytes in use, {at_start} at the start"
    );
    assert!(
        peak > at_start,
        "{peak} bytes at the peak, {at_start} at the start"
    );
    let grown = peak - at_start;
    assert_eq!(rvm.query().truncation_lead_bytes, grown + grown / 2);
    rvm.close().unwrap();
}

#[test]
fn the_lead_is_at_most_half_the_threshold() {
    let (rvm, log, base) = open();
    // 1,200 flushes of a record and a sector pad each while held: over half of the log.
    let grown = held_truncation(&rvm, &log, base, &mut 0, 1200);
    assert!(grown > LOG_AREA_BYTES / 2, "grew only {grown} bytes");
    // The threshold is 100 again: half of it is half the area.
    assert_eq!(rvm.query().truncation_lead_bytes, LOG_AREA_BYTES / 2);
    rvm.set_truncate_threshold(20).unwrap();
    assert_eq!(rvm.query().truncation_lead_bytes, LOG_AREA_BYTES / 10);
    rvm.close().unwrap();
}

#[test]
fn a_flush_below_the_threshold_but_within_the_lead_starts_a_truncation() {
    let (rvm, log, base) = open();
    let mut next = 0;
    held_truncation(&rvm, &log, base, &mut next, 200);
    // The use climbs one flush at a time towards a threshold of 60%; as soon as it is within
    // the lead of it (but still under it), a truncation must start (held at its first read
    // of the log).
    let threshold = 60u64;
    log.set(Gate::Armed);
    rvm.set_truncate_threshold(threshold as u8).unwrap();
    let lead = rvm.query().truncation_lead_bytes;
    assert!(lead > 0 && lead * 200 <= threshold * LOG_AREA_BYTES);
    let within = |used: u64| (used + lead) * 100 >= threshold * LOG_AREA_BYTES;
    assert!(!within(rvm.query().used_bytes));
    loop {
        commit(&rvm, base, next..next + 1);
        next += 1;
        let used = rvm.query().used_bytes;
        if within(used) {
            assert!(used * 100 < threshold * LOG_AREA_BYTES);
            // This flush crossed the trigger: the truncation thread takes it up.
            assert!(
                log.wait_holding_for(Duration::from_secs(60)),
                "the flush that came within the lead ({lead} bytes) of the threshold, at \
                 {used} bytes, started no truncation"
            );
            break;
        }
    }
    log.set(Gate::Open);
    rvm.wait_for_truncation().unwrap();
    assert_eq!(rvm.statistics().background_truncations, 2);
    rvm.close().unwrap();
}

#[test]
fn take_log_used_peak_returns_the_peak_and_starts_again_from_the_use_now() {
    let (rvm, _log, base) = open();
    commit(&rvm, base, 0..500);
    let peak = rvm.query().used_bytes;
    assert_eq!(rvm.statistics().log_used_peak_bytes, peak);
    rvm.truncate().unwrap();
    assert_eq!(rvm.query().used_bytes, 0);
    assert_eq!(rvm.take_log_used_peak(), peak);
    assert_eq!(rvm.statistics().log_used_peak_bytes, 0);
    commit(&rvm, base, 500..510);
    let now = rvm.query().used_bytes;
    assert!(now > 0);
    assert_eq!(rvm.take_log_used_peak(), now);
    assert_eq!(
        rvm.take_log_used_peak(),
        now,
        "starts again from the use now"
    );
    rvm.close().unwrap();
}
