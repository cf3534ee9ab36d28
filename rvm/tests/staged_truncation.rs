//! A background truncation moves the log's head in stages (after each eighth of the record
//! area it applies, the segment is synced and the head moved): a crash at any write or sync
//! of such a truncation loses no commit, and a crash in its middle leaves only the records
//! after the last stage to recover. With two segments, a stage syncs only the segments it
//! wrote (and a crash anywhere still loses nothing).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rvm::device::{CrashController, CrashDevice, Device, MemDevice, Tear};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;

const REGION_BYTES: usize = 256 * 1024;
const LOG_AREA_BYTES: u64 = 1 << 20;
/// Transactions of one 64-byte value each, at distinct offsets: about 450 KB of log, so the
/// truncation spans several stages of 128 KiB.
const TXS: usize = 3000;

fn fresh_images() -> (Vec<u8>, Vec<u8>) {
    let log = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&log, LOG_AREA_BYTES).unwrap();
    let data = support::one_region_segment(REGION_BYTES as u64, 0x1000_0000_0000);
    (log.snapshot(), data.snapshot())
}

fn open(log: &Arc<CrashDevice>, data: &Arc<CrashDevice>) -> rvm::Result<(Rvm, usize)> {
    let options = Options::default()
        .truncate_threshold(100)
        .background_recovery(false)
        .segment_device(data.clone());
    let rvm = Rvm::open_device(log.clone(), options)?;
    // No background truncation until the test sets a threshold (opened with one, so that the
    // truncation thread runs).
    rvm.set_truncate_threshold(0)?;
    // SAFETY: crash devices lend no descriptor to map; the region is read into anonymous
    // memory.
    let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }?;
    let base = seg.regions()[0].address;
    Ok((rvm, base))
}

fn value(i: usize) -> u8 {
    (i % 251) as u8 + 1
}

#[test]
fn a_crash_during_a_staged_truncation_loses_no_commit_and_replays_only_the_rest() {
    let (log_img, data_img) = fresh_images();
    let checked = TXS * 64;
    let mut expect = vec![0u8; checked];
    for i in 0..TXS {
        expect[i * 64..i * 64 + 64].fill(value(i));
    }
    let (mut crashes, mut partly_truncated) = (0, 0);
    for crash_at in (0..3600).step_by(97) {
        let (controller, log, data) = support::crash_pair(crash_at + 1, &log_img, &data_img);
        let (rvm, base) = open(&log, &data).unwrap();
        for i in 0..TXS {
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.fill(base + i * 64, 64, value(i)).unwrap();
            let mode = if i + 1 == TXS {
                CommitMode::Flush
            } else {
                CommitMode::NoFlush
            };
            tx.end(mode).unwrap();
        }
        // Every transaction is durable; now a background truncation starts at the next flush
        // (of a byte past the checked values), and crashes somewhere.
        controller.crash_after(crash_at);
        rvm.set_truncate_threshold(1).unwrap();
        let trigger = rvm.begin(BeginMode::NoRestore).and_then(|mut tx| {
            tx.fill(base + checked, 1, 1)?;
            tx.end(CommitMode::Flush)
        });
        let waited = trigger.and_then(|_| rvm.wait_for_truncation());
        if !controller.has_crashed() {
            waited.unwrap();
            let mut got = vec![0u8; checked];
            rvm.read_bytes(base, &mut got).unwrap();
            assert_eq!(got, expect, "crash point {crash_at} was never reached");
            continue;
        }
        crashes += 1;
        controller.crash_now();
        drop(rvm);
        log.restart();
        data.restart();
        let (r, b) = open(&log, &data).unwrap();
        let mut got = vec![0u8; checked];
        r.read_bytes(b, &mut got).unwrap();
        assert!(got == expect, "crash at operation {crash_at} lost commits");
        let recovered = r.statistics().recovered_records;
        if recovered > 0 && recovered < TXS as u64 {
            partly_truncated += 1;
        }
        r.close().unwrap();
    }
    eprintln!("{crashes} crashes, {partly_truncated} after the head had moved part of the way");
    assert!(
        crashes > 10,
        "only {crashes} crash points fell inside the truncation"
    );
    assert!(
        partly_truncated > 0,
        "no crash left the head moved part of the way: the truncation was not staged"
    );
}

/// A device that counts its syncs.
#[derive(Debug)]
struct SyncCounting {
    dev: MemDevice,
    syncs: AtomicU64,
}

impl Device for SyncCounting {
    fn name(&self) -> &str {
        self.dev.name()
    }
    fn len(&self) -> io::Result<u64> {
        self.dev.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.dev.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.dev.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.dev.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.dev.set_len(len)
    }
}

/// An instance (opened with a threshold, then set to 0: background truncation only when the
/// test sets one) on `log` and two segments; the base addresses of their regions.
fn open_two(
    log: Arc<dyn Device>,
    a: Arc<dyn Device>,
    b: Arc<dyn Device>,
) -> rvm::Result<(Rvm, usize, usize)> {
    let options = Options::default()
        .truncate_threshold(100)
        .background_recovery(false)
        .segment_device(a.clone())
        .segment_device(b.clone());
    let rvm = Rvm::open_device(log, options)?;
    rvm.set_truncate_threshold(0)?;
    // SAFETY: these devices lend no descriptor to map; the regions are read into anonymous
    // memory.
    let sa = unsafe { rvm.map_device(a, MapOptions::anywhere()) }?;
    // SAFETY: as above.
    let sb = unsafe { rvm.map_device(b, MapOptions::anywhere()) }?;
    Ok((rvm, sa.regions()[0].address, sb.regions()[0].address))
}

/// Start a background truncation (at the next flush, of one byte past `checked` bytes of
/// segment `a`) and wait for it.
fn truncate_in_background(rvm: &Rvm, a: usize, checked: usize) -> rvm::Result<()> {
    rvm.set_truncate_threshold(1)?;
    let mut tx = rvm.begin(BeginMode::NoRestore)?;
    tx.fill(a + checked, 1, 1)?;
    tx.end(CommitMode::Flush)?;
    rvm.wait_for_truncation()
}

/// A staged truncation whose first stage writes both segments and whose later stages write
/// only the first syncs the second once (it was synced again at every stage).
#[test]
fn a_stage_syncs_only_the_segments_written_since_the_last_sync() {
    let log = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&log, LOG_AREA_BYTES).unwrap();
    let counting = |name: &str, region: u64| {
        let dev = support::one_region_segment(region, 0x1000_0000_0000);
        let dev = MemDevice::new(name, dev.snapshot());
        Arc::new(SyncCounting {
            dev,
            syncs: AtomicU64::new(0),
        })
    };
    let (a, b) = (counting("a", REGION_BYTES as u64), counting("b", 4096));
    let (rvm, base_a, base_b) = open_two(Arc::new(log), a.clone(), b.clone()).unwrap();
    // Segment b first (in the first stage), then about 450 KB of segment a (several stages).
    for i in 0..8 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base_b + i * 64, 64, value(i)).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
    }
    for i in 0..TXS {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base_a + i * 64, 64, value(i)).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
    }
    rvm.flush().unwrap();
    let (a0, b0) = (
        a.syncs.load(Ordering::SeqCst),
        b.syncs.load(Ordering::SeqCst),
    );
    truncate_in_background(&rvm, base_a, TXS * 64).unwrap();
    let (a_syncs, b_syncs) = (
        a.syncs.load(Ordering::SeqCst) - a0,
        b.syncs.load(Ordering::SeqCst) - b0,
    );
    assert_eq!(rvm.query().used_bytes, 0);
    assert!(
        a_syncs >= 3,
        "segment a was synced {a_syncs} times: the truncation had no two stages"
    );
    assert_eq!(
        b_syncs, 1,
        "segment b, written only in the first stage, was synced {b_syncs} times ({a_syncs} for a)"
    );
    // Both hold every commit.
    let mut got = vec![0u8; TXS * 64];
    a.dev.read_at(&mut got, 4096).unwrap();
    assert!((0..TXS).all(|i| got[i * 64..i * 64 + 64].iter().all(|&v| v == value(i))));
    let mut got = vec![0u8; 8 * 64];
    b.dev.read_at(&mut got, 4096).unwrap();
    assert!((0..8).all(|i| got[i * 64..i * 64 + 64].iter().all(|&v| v == value(i))));
    rvm.close().unwrap();
}

/// Commits of the two-segment crash test: 1 KiB of `value(i)` at slot `i % 64` of segment
/// a, except every 250th group of 4 and the last 4, which go to slot `i % 8` of segment b, so
/// that some stages write b and others do not, and the part after the last stage does.
const CRASH_TXS: usize = 500;

fn crash_target(i: usize) -> (bool, usize) {
    let b = i % 250 < 4 || i + 4 >= CRASH_TXS;
    (b, if b { i % 8 } else { i % 64 } * 1024)
}

/// A crash at any write or sync of a staged truncation over two segments, where some stages
/// write both and others only one (which then syncs only that one), loses no commit: every
/// segment a stage wrote is durable before the head moves past its records.
#[test]
fn a_crash_during_a_staged_truncation_of_two_segments_loses_no_commit() {
    let log = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&log, LOG_AREA_BYTES).unwrap();
    let log_img = log.snapshot();
    let a_img = support::one_region_segment(64 * 1024, 0x1000_0000_0000).snapshot();
    let b_img = support::one_region_segment(8 * 1024, 0x2000_0000_0000).snapshot();
    let (mut expect_a, mut expect_b) = (vec![0u8; 64 * 1024], vec![0u8; 8 * 1024]);
    for i in 0..CRASH_TXS {
        let (in_b, at) = crash_target(i);
        let expect = if in_b { &mut expect_b } else { &mut expect_a };
        expect[at..at + 1024].fill(value(i));
    }
    let (mut crashes, mut partly_truncated, mut replayed_all) = (0, 0, None);
    for crash_at in 0.. {
        let controller = CrashController::new(crash_at + 1);
        let device = |name: &str, img: &[u8]| {
            let d = Arc::new(CrashDevice::new(name, controller.clone(), img.to_vec()));
            d.set_tear(Tear::DropAll);
            d
        };
        let (log, a, b) = (
            device("log", &log_img),
            device("a", &a_img),
            device("b", &b_img),
        );
        let (rvm, base_a, base_b) = open_two(log.clone(), a.clone(), b.clone()).unwrap();
        for i in 0..CRASH_TXS {
            let (in_b, at) = crash_target(i);
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.fill(if in_b { base_b } else { base_a } + at, 1024, value(i))
                .unwrap();
            tx.end(CommitMode::NoFlush).unwrap();
        }
        rvm.flush().unwrap();
        controller.crash_after(crash_at);
        let truncated = truncate_in_background(&rvm, base_a, 64 * 1024 - 1);
        if !controller.has_crashed() {
            // Every operation of the truncation has had its crash.
            truncated.unwrap();
            assert_eq!(rvm.query().used_bytes, 0);
            break;
        }
        crashes += 1;
        controller.crash_now();
        drop(rvm);
        for d in [&log, &a, &b] {
            d.restart();
        }
        let (r, ba, bb) = open_two(log.clone(), a.clone(), b.clone()).unwrap();
        let mut got = vec![0u8; 64 * 1024 - 1];
        r.read_bytes(ba, &mut got).unwrap();
        assert!(
            got == expect_a[..got.len()],
            "a crash at operation {crash_at} lost commits to segment a"
        );
        let mut got = vec![0u8; 8 * 1024];
        r.read_bytes(bb, &mut got).unwrap();
        assert!(
            got == expect_b,
            "a crash at operation {crash_at} lost commits to segment b"
        );
        // A crash before the first stage moved the head (the first crash point) replays
        // every record; one after it, fewer.
        let recovered = r.statistics().recovered_records;
        let all = *replayed_all.get_or_insert(recovered);
        if recovered > 0 && recovered < all {
            partly_truncated += 1;
        }
        r.close().unwrap();
    }
    eprintln!("{crashes} crashes, {partly_truncated} after the head had moved part of the way");
    assert!(
        crashes > 100,
        "only {crashes} crash points fell inside the truncation"
    );
    assert!(
        partly_truncated > 0,
        "no crash left the head moved part of the way: the truncation was not staged"
    );
}
