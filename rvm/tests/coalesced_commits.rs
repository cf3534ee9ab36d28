//! Commits queued before a flush logged as one record (`Options::coalesce_transactions`, the
//! classic `RVM_COALESCE_TRANS`): what is logged, what a crash keeps (all of a group or none
//! of it), and the newest write of every byte winning inside a group, where bytes rewritten
//! are logged once.

use std::sync::Arc;

use rvm::device::{CrashDevice, MemDevice, Tear};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;

const REGION_BYTES: usize = 16 * 4096;
const LOG_AREA_BYTES: u64 = 256 * 1024;
/// A record's header and trailer: what each coalesced commit saves.
const RECORD_FRAMING: u64 = 80;

fn images() -> (Vec<u8>, Vec<u8>) {
    let log = MemDevice::new("log", Vec::new());
    Rvm::init_log_on(&log, LOG_AREA_BYTES).unwrap();
    let data = support::one_region_segment(REGION_BYTES as u64, 0x1000_0000_0000);
    (log.snapshot(), data.snapshot())
}

fn open(log: &Arc<CrashDevice>, data: &Arc<CrashDevice>, coalesce: bool) -> (Rvm, usize) {
    let options = Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .segment_device(data.clone())
        .coalesce_transactions(coalesce);
    let rvm = Rvm::open_device(log.clone(), options).unwrap();
    // SAFETY: crash devices lend no descriptor to map; the segment is read into anonymous
    // memory.
    let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }.unwrap();
    let base = seg.regions()[0].address;
    (rvm, base)
}

/// A fresh log and segment on crash devices (which tear nothing until told to crash).
fn fresh(seed: u64, coalesce: bool) -> (Arc<rvm::device::CrashController>, Harness) {
    let (log_img, data_img) = images();
    let (controller, log, data) = support::crash_pair(seed, &log_img, &data_img);
    let (rvm, base) = open(&log, &data, coalesce);
    (
        controller,
        Harness {
            rvm,
            base,
            log,
            data,
        },
    )
}

/// Power fails: the instance goes with the devices down, they come back (unsynced writes
/// torn as set), and the log is recovered.
fn crash_and_recover(
    controller: &rvm::device::CrashController,
    h: Harness,
    coalesce: bool,
) -> Harness {
    controller.crash_now();
    let Harness { rvm, log, data, .. } = h;
    drop(rvm);
    log.restart();
    data.restart();
    let (rvm, base) = open(&log, &data, coalesce);
    Harness {
        rvm,
        base,
        log,
        data,
    }
}

struct Harness {
    rvm: Rvm,
    base: usize,
    log: Arc<CrashDevice>,
    data: Arc<CrashDevice>,
}

/// Commit `n` no_flush transactions, the `i`th writing `len` bytes of `i + 1` at `i * len`.
fn commit_each(h: &Harness, n: usize, len: usize) {
    for i in 0..n {
        let mut tx = h.rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(h.base + i * len, len, i as u8 + 1).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
    }
}

/// Log bytes and records of `n` no_flush commits of 64 bytes and one flush.
fn logged(coalesce: bool, n: usize) -> rvm::Statistics {
    let (_, h) = fresh(1, coalesce);
    commit_each(&h, n, 64);
    assert_eq!(h.rvm.query().queued_no_flush_commits, n);
    h.rvm.flush().unwrap();
    assert_eq!(h.rvm.query().queued_no_flush_commits, 0);
    h.rvm.statistics()
}

#[test]
fn commits_before_a_flush_share_one_record() {
    // 40 x (32 + 64) + 80 bytes: within a group's bound of 4 KiB here.
    let on = logged(true, 40);
    let off = logged(false, 40);
    assert_eq!((on.records_written, on.transactions_coalesced), (1, 39));
    assert_eq!((off.records_written, off.transactions_coalesced), (40, 0));
    assert_eq!(on.bytes_logged + 39 * RECORD_FRAMING, off.bytes_logged);
    assert_eq!(on.no_flush_commits, 40);
}

#[test]
fn a_flush_commit_joins_the_queued_group_and_the_next_one_starts_anew() {
    let (_, h) = fresh(1, true);
    commit_each(&h, 5, 64);
    let mut tx = h.rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(h.base + 4096, 8, 0xaa).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(h.rvm.statistics().records_written, 1);
    commit_each(&h, 3, 64);
    h.rvm.flush().unwrap();
    let s = h.rvm.statistics();
    assert_eq!((s.records_written, s.transactions_coalesced), (2, 7));
}

#[test]
fn turning_coalescing_off_gives_each_later_commit_its_own_record() {
    let (_, h) = fresh(1, true);
    commit_each(&h, 3, 64);
    h.rvm.set_coalesce_transactions(false);
    commit_each(&h, 4, 64);
    h.rvm.set_coalesce_transactions(true);
    commit_each(&h, 2, 64);
    h.rvm.flush().unwrap();
    // One group of 3, four records, then a group of 2.
    assert_eq!(h.rvm.statistics().records_written, 6);
}

/// A group stops growing at 1/64 of the record area (4 KiB here): a large record would leave
/// as much unused at the area's end when the log wraps.
#[test]
fn a_group_stops_growing_at_its_bound() {
    let (_, h) = fresh(1, true);
    // 80 + 3 x (32 + 1000) = 3,176 bytes fit 4,096; a fourth commit would not.
    commit_each(&h, 10, 1000);
    h.rvm.flush().unwrap();
    assert_eq!(h.rvm.statistics().records_written, 4);
}

/// How many of the `n` commits of `commit_each` the region holds: they must form a prefix.
fn commits_present(rvm: &Rvm, base: usize, n: usize, len: usize) -> usize {
    let mut region = vec![0u8; n * len];
    rvm.read_bytes(base, &mut region).unwrap();
    let present = region
        .chunks(len)
        .take_while(|c| c.iter().all(|&b| b != 0))
        .count();
    for (i, c) in region.chunks(len).enumerate() {
        let want = if i < present { i as u8 + 1 } else { 0 };
        assert!(
            c.iter().all(|&b| b == want),
            "commit {i}: not a prefix of the commits ({present} present)"
        );
    }
    present
}

/// Queue commits with `queue` on a fresh instance, flush with a crash after `crash_at` device
/// operations (unsynced sectors of both devices torn at random), recover, and count what
/// `present` finds: whether the flush returned, that count, and the statistics before the crash.
fn crash_in_flush(
    seed: u64,
    crash_at: u64,
    coalesce: bool,
    queue: impl Fn(&Harness),
    present: impl Fn(&Harness) -> usize,
) -> (bool, usize, rvm::Statistics) {
    let (controller, h) = fresh(seed, coalesce);
    h.log.set_tear(Tear::RandomSectors);
    h.data.set_tear(Tear::RandomSectors);
    queue(&h);
    controller.crash_after(crash_at);
    let flushed = h.rvm.flush().is_ok();
    let stats = h.rvm.statistics();
    let h = crash_and_recover(&controller, h, coalesce);
    (flushed, present(&h), stats)
}

/// Crash anywhere in the flush of 40 queued commits, with the unsynced sectors of the log
/// torn at random: with coalescing the recovered state has all of them or none (and all of
/// them when the flush returned); without it, torn flushes keep a part, which shows the
/// crashes do land inside the group's write.
#[test]
fn a_crash_keeps_a_group_whole_or_not_at_all() {
    const N: usize = 40;
    for coalesce in [true, false] {
        let mut partial = 0;
        let mut outcomes = [0usize; 2];
        for seed in 0..12u64 {
            // A first flush writes a status and its sync, the batch, zeros ahead of it, and
            // syncs: crash points past them let some flushes complete.
            for crash_at in 0..10 {
                let (flushed, present, _) = crash_in_flush(
                    seed,
                    crash_at,
                    coalesce,
                    |h| commit_each(h, N, 64),
                    |h| commits_present(&h.rvm, h.base, N, 64),
                );
                if flushed {
                    assert_eq!(present, N, "seed {seed}, crash at {crash_at}: flushed");
                }
                if coalesce {
                    assert!(
                        present == 0 || present == N,
                        "seed {seed}, crash at {crash_at}: {present} of a group of {N} kept"
                    );
                    outcomes[usize::from(present == N)] += 1;
                } else if present != 0 && present != N {
                    partial += 1;
                }
            }
        }
        if coalesce {
            assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
        } else {
            assert!(partial > 0, "no crash tore a batch of separate records");
        }
    }
}

/// Commits rewriting the same bytes, and bytes overlapping them partly, inside one group:
/// recovery (and a truncation after it) must leave the newest value of every byte.
#[test]
fn the_newest_write_of_every_byte_wins_inside_a_group() {
    let spots = [(64, 8), (68, 12), (64, 64), (4000, 8), (4090, 200), (60, 4)];
    for seed in 0..20u64 {
        let (controller, h) = fresh(seed, true);
        let mut model = vec![0u8; REGION_BYTES];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for n in 0..200u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut tx = h.rvm.begin(BeginMode::NoRestore).unwrap();
            for k in 0..1 + (x % 3) as usize {
                let (off, len) = spots[((x >> (8 * k)) % spots.len() as u64) as usize];
                let value = (n % 251) as u8 + 1 + k as u8;
                tx.fill(h.base + off, len, value).unwrap();
                model[off..off + len].fill(value);
            }
            tx.end(CommitMode::NoFlush).unwrap();
            if n % 70 == 69 {
                h.rvm.flush().unwrap();
            }
        }
        h.rvm.flush().unwrap();
        assert!(h.rvm.statistics().transactions_coalesced > 150);
        let Harness {
            rvm,
            base,
            log,
            data,
        } = crash_and_recover(&controller, h, true);
        let mut region = vec![0u8; REGION_BYTES];
        rvm.read_bytes(base, &mut region).unwrap();
        assert!(region == model, "seed {seed}: recovered bytes differ");
        rvm.truncate().unwrap();
        rvm.close().unwrap();
        let (rvm, base) = open(&log, &data, true);
        rvm.read_bytes(base, &mut region).unwrap();
        assert!(
            region == model,
            "seed {seed}: bytes differ after truncation"
        );
    }
}

/// Commit `n` no_flush transactions, the `i`th writing a counter (8 bytes at 0, value `i + 1`)
/// and 8 bytes of `i + 1` at `64 + 16 * i` (apart from each other: nothing to join).
fn count_each(h: &Harness, n: usize) {
    for i in 0..n {
        let mut tx = h.rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(h.base, 8, i as u8 + 1).unwrap();
        tx.fill(h.base + 64 + 16 * i, 8, i as u8 + 1).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
    }
}

/// The counter and slots of [`count_each`]: how many of the `n` commits are present (a prefix,
/// with the counter of the last of them).
fn counted_present(rvm: &Rvm, base: usize, n: usize) -> usize {
    let mut region = vec![0u8; 64 + 16 * n];
    rvm.read_bytes(base, &mut region).unwrap();
    let present = (0..n).take_while(|&i| region[64 + 16 * i] != 0).count();
    for i in 0..n {
        let want = if i < present { i as u8 + 1 } else { 0 };
        let slot = &region[64 + 16 * i..72 + 16 * i];
        assert!(slot.iter().all(|&b| b == want), "commit {i} of {present}");
    }
    assert!(
        region[..8].iter().all(|&b| b == present as u8),
        "the counter"
    );
    present
}

/// Bytes that every commit of a group rewrites are logged once, with their last value: the
/// record's ranges are merged before it is written.
#[test]
fn bytes_rewritten_inside_a_group_are_logged_once() {
    const N: usize = 40;
    let (controller, h) = fresh(1, true);
    count_each(&h, N);
    h.rvm.flush().unwrap();
    let s = h.rvm.statistics();
    assert_eq!(
        (s.records_written, s.transactions_coalesced),
        (1, N as u64 - 1)
    );
    // 40 counter ranges become one; the 40 slots stay.
    assert_eq!(s.ranges_merged_across_commits, N as u64 - 1);
    assert_eq!(s.bytes_saved_across_commits, (N as u64 - 1) * (32 + 8));
    assert_eq!(s.bytes_logged, RECORD_FRAMING + (N as u64 + 1) * (32 + 8));
    let h = crash_and_recover(&controller, h, true);
    assert_eq!(counted_present(&h.rvm, h.base, N), N);
}

/// A crash anywhere in the flush of a merged group keeps all of it or none of it, as it does
/// for a group with nothing to merge.
#[test]
fn a_crash_keeps_a_merged_group_whole_or_not_at_all() {
    const N: usize = 40;
    let mut outcomes = [0usize; 2];
    for seed in 0..12u64 {
        for crash_at in 0..10 {
            let (flushed, present, stats) = crash_in_flush(
                seed,
                crash_at,
                true,
                |h| count_each(h, N),
                |h| counted_present(&h.rvm, h.base, N),
            );
            if flushed {
                assert_eq!(stats.ranges_merged_across_commits, N as u64 - 1);
                assert_eq!(present, N, "seed {seed}, crash at {crash_at}: flushed");
            }
            assert!(
                present == 0 || present == N,
                "seed {seed}, crash at {crash_at}: {present} of a group of {N} kept"
            );
            outcomes[usize::from(present == N)] += 1;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
