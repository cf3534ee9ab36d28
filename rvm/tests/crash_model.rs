//! Model-based crash testing: random transactions over a small segment on crash-injecting
//! devices, a crash at a random write or sync (unsynced writes torn at sector granularity),
//! recovery, then comparison with a plain in-memory model.
//!
//! What must hold after every crash: every flush-committed transaction is present; no byte
//! of an aborted or uncommitted transaction is; the no_flush commits present are a prefix,
//! in commit order, of those made.

use std::sync::Arc;

use proptest::prelude::*;
use rvm::device::{CrashController, CrashDevice, MemDevice, Tear};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;

const REGION_BYTES: usize = 4 * 4096;
const LOG_AREA_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Tx {
        restore: bool,
        writes: Vec<(usize, usize, u8)>,
        end: End,
    },
    Flush,
    Truncate,
    Reopen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Flush,
    NoFlush,
    Abort,
}

/// A few ranges written again and again, some overlapping others (as a heap's counters and
/// tags are): the applier keeps one copy of a range rewritten within a slice, and must still
/// let the newest value of every byte win over the older ranges overlapping it.
const HOT_RANGES: [(usize, usize); 5] = [(64, 8), (68, 12), (64, 64), (4000, 8), (4090, 200)];

fn op_strategy() -> impl Strategy<Value = Op> {
    let anywhere = (0..REGION_BYTES, 1usize..600, any::<u8>()).prop_map(|(off, len, b)| {
        (
            off.min(REGION_BYTES - 1),
            len.min(REGION_BYTES - off.min(REGION_BYTES - 1)),
            b,
        )
    });
    let hot = (prop::sample::select(HOT_RANGES.to_vec()), any::<u8>())
        .prop_map(|((off, len), b)| (off, len, b));
    let write = prop_oneof![2 => anywhere, 1 => hot];
    let end = prop_oneof![3 => Just(End::Flush), 4 => Just(End::NoFlush), 2 => Just(End::Abort)];
    prop_oneof![
        12 => (any::<bool>(), prop::collection::vec(write, 1..5), end)
            .prop_map(|(restore, writes, end)| Op::Tx { restore, writes, end }),
        2 => Just(Op::Flush),
        1 => Just(Op::Truncate),
        1 => Just(Op::Reopen),
    ]
}

/// The model: live memory, and the committed states in commit order.
struct Model {
    live: Vec<u8>,
    /// Committed state after each commit; `states[0]` is the initial state.
    states: Vec<Vec<u8>>,
    /// Index into `states` known durable (flush commit, flush, truncate, clean close).
    durable: usize,
}

impl Model {
    fn committed(&self) -> &Vec<u8> {
        self.states.last().expect("initial state")
    }
}

struct Harness {
    controller: Arc<CrashController>,
    log: Arc<CrashDevice>,
    data: Arc<CrashDevice>,
    /// `Options::coalesce_transactions`: queued commits logged as one record.
    coalesce: bool,
}

fn fresh_images() -> (Vec<u8>, Vec<u8>) {
    warmed_images(0)
}

/// A fresh log and segment, with the log's tail moved `warmup` flushes into the area (then
/// truncated, so the log is empty but its head and tail sit at an arbitrary position): cases
/// then wrap around the end of the area early and often.
fn warmed_images(warmup: usize) -> (Vec<u8>, Vec<u8>) {
    let log = Arc::new(MemDevice::new("log", Vec::new()));
    Rvm::init_log_on(&*log, LOG_AREA_BYTES).unwrap();
    let data = Arc::new(support::one_region_segment(
        REGION_BYTES as u64,
        0x1000_0000_0000,
    ));
    if warmup > 0 {
        let options = Options::default()
            .truncate_threshold(0)
            .background_recovery(false)
            .segment_device(data.clone());
        let rvm = Rvm::open_device(log.clone(), options).unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }.unwrap();
        for _ in 0..warmup {
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.fill(seg.regions()[0].address, 8, 0).unwrap();
            tx.end(CommitMode::Flush).unwrap();
        }
        rvm.truncate().unwrap();
        rvm.close().unwrap();
    }
    (log.snapshot(), data.snapshot())
}

fn open(h: &Harness) -> rvm::Result<(Rvm, usize)> {
    let options = Options::default()
        .truncate_threshold(50)
        .background_recovery(false)
        .segment_device(h.data.clone())
        .coalesce_transactions(h.coalesce);
    let rvm = Rvm::open_device(h.log.clone(), options)?;
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let seg = unsafe { rvm.map_device(h.data.clone(), MapOptions::anywhere()) }?;
    let base = seg.regions()[0].address;
    Ok((rvm, base))
}

fn read_region(rvm: &Rvm, base: usize) -> Vec<u8> {
    let mut buf = vec![0u8; REGION_BYTES];
    rvm.read_bytes(base, &mut buf).unwrap();
    buf
}

/// Run `ops`; each time the device crashes (at the scheduled points, and once more at the
/// end), restart it, recover, check the recovered state, and carry on with the remaining ops
/// from that state. Several crashes per case exercise recovery after recovery.
fn run_case(
    ops: &[Op],
    crash_points: &[u64],
    seed: u64,
    tear: Tear,
    warmup: usize,
    coalesce: bool,
) -> Result<(), TestCaseError> {
    let (log_img, data_img) = warmed_images(warmup);
    let controller = CrashController::new(seed);
    let h = Harness {
        log: Arc::new(CrashDevice::new("log", controller.clone(), log_img)),
        data: Arc::new(CrashDevice::new("data", controller.clone(), data_img)),
        controller,
        coalesce,
    };
    h.log.set_tear(tear);
    h.data.set_tear(tear);
    let mut model = Model {
        live: vec![0; REGION_BYTES],
        states: vec![vec![0; REGION_BYTES]],
        durable: 0,
    };
    let (mut rvm, mut base) = open(&h).expect("first open");
    let mut crashes = crash_points.iter();
    if let Some(c) = crashes.next() {
        h.controller.crash_after(*c);
    }
    let mut remaining = ops;
    loop {
        let crashed_at = run_until_crash(&mut rvm, &mut base, &h, &mut model, remaining)?;
        let Some(done) = crashed_at else { break };
        remaining = &remaining[done..];
        // The crashed instance must be gone before the devices come back: a crashed process
        // does no more I/O, but this one's truncation thread and its `Drop` would. Dropped
        // while the devices are still down, every write it attempts fails.
        h.controller.crash_now();
        drop(std::mem::replace(&mut rvm, placeholder(&h)));
        rvm = recover_and_check(&h, &mut model, &mut base)?;
        if let Some(c) = crashes.next() {
            h.controller.crash_after(*c);
        }
    }
    // Power fails at the end (if it has not already).
    h.controller.crash_now();
    drop(rvm);
    recover_and_check(&h, &mut model, &mut base).map(|_| ())
}

/// Restart the crashed devices, recover, check against the model, and reset the model to
/// the recovered state.
fn recover_and_check(
    h: &Harness,
    model: &mut Model,
    base: &mut usize,
) -> Result<Rvm, TestCaseError> {
    let (r, b) =
        reopen_after_crash(h).map_err(|e| TestCaseError::fail(format!("recovery failed: {e}")))?;
    let recovered = read_region(&r, b);
    check_recovered(model, &recovered)?;
    *base = b;
    model.live = recovered.clone();
    model.states = vec![recovered];
    model.durable = 0;
    Ok(r)
}

/// Apply ops until one fails because the device crashed. Returns the number of ops consumed
/// (including the failing one) if a crash happened, or None if all ran.
fn run_until_crash(
    rvm: &mut Rvm,
    base: &mut usize,
    h: &Harness,
    model: &mut Model,
    ops: &[Op],
) -> Result<Option<usize>, TestCaseError> {
    for (i, op) in ops.iter().enumerate() {
        let crashed = Some(i + 1);
        let base_now = *base;
        match op {
            Op::Tx {
                restore,
                writes,
                end,
            } => {
                let mode = if *restore {
                    BeginMode::Restore
                } else {
                    BeginMode::NoRestore
                };
                let before = model.live.clone();
                let mut tx = match rvm.begin(mode) {
                    Ok(tx) => tx,
                    Err(_) => return Ok(crashed),
                };
                let mut declared = Vec::new();
                for &(off, len, byte) in writes {
                    tx.fill(base_now + off, len, byte).unwrap();
                    model.live[off..off + len].fill(byte);
                    declared.push((off, len));
                }
                prop_assert_eq!(
                    &read_region(rvm, base_now),
                    &model.live,
                    "memory after writes"
                );
                match end {
                    End::Abort => {
                        tx.abort().unwrap();
                        if *restore {
                            model.live = before;
                        }
                        prop_assert_eq!(
                            &read_region(rvm, base_now),
                            &model.live,
                            "memory after abort"
                        );
                    }
                    End::Flush | End::NoFlush => {
                        let mut next = model.committed().clone();
                        for (off, len) in declared {
                            next[off..off + len].copy_from_slice(&model.live[off..off + len]);
                        }
                        model.states.push(next);
                        let mode = if *end == End::Flush {
                            CommitMode::Flush
                        } else {
                            CommitMode::NoFlush
                        };
                        match tx.end(mode) {
                            Ok(()) if *end == End::Flush => model.durable = model.states.len() - 1,
                            Ok(()) => {}
                            Err(_) => return Ok(crashed),
                        }
                    }
                }
            }
            Op::Flush => match rvm.flush() {
                Ok(()) => model.durable = model.states.len() - 1,
                Err(_) => return Ok(crashed),
            },
            Op::Truncate => match rvm.truncate() {
                Ok(()) => model.durable = model.states.len() - 1,
                Err(_) => return Ok(crashed),
            },
            Op::Reopen => {
                // Close cleanly (flushes), then open again.
                let old = std::mem::replace(rvm, placeholder(h));
                if old.close().is_err() {
                    return Ok(crashed);
                }
                model.durable = model.states.len() - 1;
                match open(h) {
                    Ok((r, b)) => {
                        *rvm = r;
                        *base = b;
                        prop_assert_eq!(
                            &read_region(rvm, b),
                            model.committed(),
                            "state after clean reopen"
                        );
                        model.live = model.committed().clone();
                    }
                    Err(_) => return Ok(crashed),
                }
            }
        }
    }
    Ok(None)
}

/// A throwaway instance on its own memory devices, to stand in while the real one reopens.
fn placeholder(_h: &Harness) -> Rvm {
    let (log_img, _) = fresh_images();
    Rvm::open_device(
        Arc::new(MemDevice::new("placeholder", log_img)),
        Options::default().truncate_threshold(0),
    )
    .unwrap()
}

fn reopen_after_crash(h: &Harness) -> rvm::Result<(Rvm, usize)> {
    h.controller.crash_now();
    h.log.restart();
    h.data.restart();
    open(h)
}

/// The recovered image must equal the committed state after some commit at or after the
/// last durable point: a prefix of the commits, containing every flushed one.
fn check_recovered(model: &Model, recovered: &[u8]) -> Result<(), TestCaseError> {
    let ok = model.states[model.durable..]
        .iter()
        .any(|s| s.as_slice() == recovered);
    if !ok {
        let diffs: Vec<usize> = (0..REGION_BYTES)
            .filter(|i| recovered[*i] != model.states[model.durable][*i])
            .take(8)
            .collect();
        return Err(TestCaseError::fail(format!(
            "recovered state matches none of the {} candidate states (durable index {} of {}); first differing bytes vs durable state: {:?}",
            model.states.len() - model.durable,
            model.durable,
            model.states.len() - 1,
            diffs
        )));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RVM_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn crash_anywhere_recovers_a_committed_prefix(
        ops in prop::collection::vec(op_strategy(), 1..60),
        crash_points in prop::collection::vec(0u64..60, 1..4),
        seed in any::<u64>(),
        tear in prop_oneof![Just(Tear::RandomSectors), Just(Tear::DropAll), Just(Tear::KeepAll)],
        warmup in 0usize..120,
        coalesce in any::<bool>(),
    ) {
        run_case(&ops, &crash_points, seed, tear, warmup, coalesce)?;
    }
}

/// A crash during recovery itself (or during the truncation that follows) recovers again to
/// the same state: replay is idempotent.
#[test]
fn crash_during_recovery_recovers_the_same_state() {
    let mut crashes_inside_recovery = 0;
    for crash_at in 0..40 {
        let (log_img, data_img) = fresh_images();
        let controller = CrashController::new(crash_at + 1);
        let h = Harness {
            log: Arc::new(CrashDevice::new("log", controller.clone(), log_img)),
            data: Arc::new(CrashDevice::new("data", controller.clone(), data_img)),
            controller,
            coalesce: crash_at % 2 == 0,
        };
        let (rvm, base) = open(&h).unwrap();
        let mut expect = vec![0u8; REGION_BYTES];
        for i in 0..30usize {
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            let off = (i * 509) % (REGION_BYTES - 64);
            tx.fill(base + off, 64, i as u8 + 1).unwrap();
            expect[off..off + 64].fill(i as u8 + 1);
            tx.end(CommitMode::Flush).unwrap();
        }
        h.controller.crash_now();
        drop(rvm);
        h.log.restart();
        h.data.restart();
        // Crash somewhere inside recovery, then recover again.
        h.controller.crash_after(crash_at);
        let first = open(&h);
        if let Ok((r, b)) = first {
            if !h.controller.has_crashed() {
                assert_eq!(
                    read_region(&r, b),
                    expect,
                    "crash point {crash_at} not reached"
                );
                continue;
            }
            drop(r);
        }
        crashes_inside_recovery += 1;
        let (r, b) = reopen_after_crash(&h).unwrap();
        assert_eq!(
            read_region(&r, b),
            expect,
            "after a crash at device operation {crash_at} during recovery"
        );
    }
    // Recovery of 30 transactions writes the segment, syncs it and writes a status: the
    // first crash points land inside it (the later ones after it, checked above).
    assert!(
        crashes_inside_recovery >= 3,
        "only {crashes_inside_recovery} crash points fell inside recovery"
    );
}
