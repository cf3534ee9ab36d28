//! Crash injection: the log and the segment sit on crash devices that fail at a chosen write
//! or sync (the write in progress is torn) while transactions full of mallocs and frees
//! commit, and while the log is truncated into the segment. After restarting the devices and
//! recovering, the heap must hold exactly the last acknowledged state or the one whose commit
//! was in progress, with every block's contents intact, and pass the checker.

mod rds_support;

use std::collections::BTreeMap;

use rds_support::{chunks_for, layout, pattern, Fixture};
use rvm::device::Tear;
use rvm::rds::BlockState;
use rvm::{BeginMode, CommitMode};

/// Data address -> requested size.
type Blocks = BTreeMap<usize, usize>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic per seed.
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn allocated(f: &Fixture) -> Vec<(usize, u64)> {
    f.heap
        .blocks()
        .unwrap()
        .into_iter()
        .filter(|b| b.state == BlockState::Allocated)
        .map(|b| (b.data_address() as usize, b.chunks))
        .collect()
}

fn same(blocks: &Blocks, held: &[(usize, u64)], chunk_size: u64) -> bool {
    blocks.len() == held.len()
        && blocks
            .iter()
            .zip(held)
            .all(|((a, s), (h, c))| a == h && chunks_for(*s, chunk_size) == *c)
}

fn verify(f: &Fixture, blocks: &Blocks) {
    let report = f.heap.check();
    assert!(report.is_ok(), "checker after recovery:\n{report}");
    for (&address, &size) in blocks {
        let mut buf = vec![0u8; size];
        f.segment.read_bytes(address, &mut buf).unwrap();
        assert!(
            buf.iter().all(|b| *b == pattern(address)),
            "block {address:#x} lost its contents"
        );
    }
}

#[derive(Debug)]
enum Failure {
    /// The power failed before the transaction began to commit: it cannot be durable.
    BeforeCommit,
    /// An operation failed because the devices crashed (maybe during the commit).
    Crashed(#[allow(dead_code)] String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Crashed(e.to_string())
    }
}

/// One random transaction of mallocs and frees applied to `blocks`.
fn transaction(f: &Fixture, rng: &mut Rng, blocks: &mut Blocks) -> Result<(), Failure> {
    let mut tx = f.rvm.begin(BeginMode::Restore)?;
    for _ in 0..1 + rng.below(6) {
        if blocks.is_empty() || rng.below(3) > 0 {
            let limit = [64, 700, 5000][rng.below(3) as usize];
            let size = 1 + rng.below(limit) as usize;
            match f.heap.malloc(&mut tx, size) {
                Ok(a) => {
                    tx.fill(a, size, pattern(a))?;
                    blocks.insert(a, size);
                }
                Err(rvm::rds::Error::NoRoom { .. }) => {}
                Err(e) => return Err(e.to_string().into()),
            }
        } else {
            let pick = rng.below(blocks.len() as u64) as usize;
            let a = *blocks.keys().nth(pick).expect("non-empty");
            f.heap.free(&mut tx, a)?;
            blocks.remove(&a);
        }
    }
    if rng.below(60) == 0 {
        // Power fails before this transaction commits.
        f.controller.crash_now();
        return Err(Failure::BeforeCommit);
    }
    tx.end(CommitMode::Flush)?;
    Ok(())
}

/// Returns how many crashes hit an operation that was writing (commit or truncation).
fn crash_run(seed: u64, chunk_size: u64, nlists: u64) -> u64 {
    let mut io_crashes = 0;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // A small log, so commits also wait for truncations that write the segment.
    let mut f = Fixture::with_log(
        layout(70 + seed % 8, 256 << 10, nlists, chunk_size),
        seed,
        64 << 10,
    );
    let mut durable = Blocks::new();
    for round in 0..3 {
        f.controller.crash_after(rng.below(300));
        let mut in_flight = None;
        for step in 0..1000 {
            let mut next = durable.clone();
            let outcome = transaction(&f, &mut rng, &mut next);
            if outcome.is_ok() && step % 37 == 36 {
                // Truncation writes the segment file; a crash there must also be safe.
                if f.rvm.truncate().is_err() {
                    io_crashes += 1;
                    durable = next;
                    break;
                }
            }
            match outcome {
                Ok(()) => durable = next,
                Err(failure) => {
                    assert!(
                        f.controller.has_crashed(),
                        "seed {seed} round {round} step {step}: {failure:?} without a crash"
                    );
                    if let Failure::Crashed(_) = failure {
                        io_crashes += 1;
                        in_flight = Some(next);
                    }
                    break;
                }
            }
            if f.controller.has_crashed() {
                break;
            }
        }
        let tear = [Tear::DropAll, Tear::KeepAll, Tear::RandomSectors][rng.below(3) as usize];
        f = f.crash_and_recover(tear);
        let held = allocated(&f);
        durable = if same(&durable, &held, chunk_size) {
            durable
        } else if in_flight
            .as_ref()
            .is_some_and(|b| same(b, &held, chunk_size))
        {
            in_flight.expect("checked")
        } else {
            panic!(
                "seed {seed} round {round}: recovered blocks {held:x?} are neither the \
                 acknowledged state {durable:x?} nor the one being committed {in_flight:x?}"
            );
        };
        verify(&f, &durable);
        let s = f.heap.statistics();
        let expected: u64 = durable
            .values()
            .map(|s| chunks_for(*s, chunk_size) * chunk_size)
            .sum();
        assert_eq!(
            s.allocated_bytes, expected,
            "seed {seed}: leaked or lost bytes"
        );
    }
    io_crashes
}

#[test]
fn crashes_during_commit_and_truncation_leave_a_committed_heap() {
    let mut io_crashes = 0;
    for seed in 1..=40 {
        let (chunk_size, nlists) = [(32, 8), (40, 1), (64, 80)][seed as usize % 3];
        io_crashes += crash_run(seed, chunk_size, nlists);
    }
    // Most crash points fall on a log or segment write, not between transactions.
    assert!(
        io_crashes >= 60,
        "only {io_crashes} crashes hit a write or sync"
    );
}
