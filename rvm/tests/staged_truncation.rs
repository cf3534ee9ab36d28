//! A background truncation moves the log's head in stages (after each eighth of the record
//! area it applies, the segment is synced and the head moved): a crash at any write or sync
//! of such a truncation loses no commit, and a crash in its middle leaves only the records
//! after the last stage to recover.

use std::sync::Arc;

use rvm::device::{CrashDevice, MemDevice};
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
