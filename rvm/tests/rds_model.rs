//! Model-based test: random malloc / free / prealloc / commit / abort / crash sequences applied
//! to the heap and to a plain model of the allocated blocks. After every step: the checker
//! passes, no two live blocks overlap, every block lies inside the heap, the byte accounting
//! is exact, and the blocks the heap holds are exactly the model's. After a crash the heap
//! holds exactly one of the committed states that could be durable (no leak, no double
//! allocation), and every block still holds the bytes written into it.

mod rds_support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use rds_support::{chunks_for, layout, pattern, Fixture};
use rvm::device::Tear;
use rvm::rds::BlockState;
use rvm::{BeginMode, CommitMode, Transaction};

#[derive(Debug, Clone)]
enum Op {
    Malloc(usize),
    Free(usize),
    Prealloc(usize, usize),
    Commit(bool),
    Abort,
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop_oneof![0usize..64, 0usize..600, 0usize..6000].prop_map(Op::Malloc),
        6 => any::<usize>().prop_map(Op::Free),
        1 => (0usize..300, 1usize..4).prop_map(|(s, n)| Op::Prealloc(s, n)),
        3 => any::<bool>().prop_map(Op::Commit),
        1 => Just(Op::Abort),
        1 => (0u8..3).prop_map(Op::Crash),
    ]
}

/// Allocated blocks: data address -> requested size.
type Blocks = BTreeMap<usize, usize>;

struct Model {
    /// Committed states that a crash could leave: [0] is durable (last flush), later ones are
    /// no_flush commits queued after it.
    states: Vec<Blocks>,
    chunk_size: u64,
}

impl Model {
    fn current(&self) -> &Blocks {
        self.states.last().expect("at least the durable state")
    }
}

/// Everything a step can check about the heap against the blocks it should hold.
fn verify(f: &Fixture, blocks: &Blocks, chunk_size: u64) {
    let report = f.heap.check();
    assert!(report.is_ok(), "checker:\n{report}");
    let base = f.heap.address();
    let heap_end = base + f.heap.length();
    let mut end_of_previous = base;
    let mut allocated = 0;
    for (&address, &size) in blocks {
        assert!(address >= end_of_previous, "blocks overlap at {address:#x}");
        let bytes = chunks_for(size, chunk_size) * chunk_size;
        end_of_previous = address - 8 + bytes as usize;
        assert!(
            end_of_previous <= heap_end,
            "block {address:#x} runs past the heap"
        );
        allocated += bytes;
    }
    let s = f.heap.statistics();
    assert_eq!(s.allocated_bytes, allocated, "allocated bytes");
    assert_eq!(s.free_bytes, s.capacity_bytes - allocated, "free bytes");
    let held: BTreeMap<usize, u64> = f
        .heap
        .blocks()
        .unwrap()
        .into_iter()
        .filter(|b| b.state == BlockState::Allocated)
        .map(|b| (b.data_address() as usize, b.chunks))
        .collect();
    let expected: BTreeMap<usize, u64> = blocks
        .iter()
        .map(|(&a, &s)| (a, chunks_for(s, chunk_size)))
        .collect();
    assert_eq!(
        held, expected,
        "the heap's allocated blocks are not the model's"
    );
}

fn verify_contents(f: &Fixture, blocks: &Blocks) {
    for (&address, &size) in blocks {
        let mut buf = vec![0u8; size];
        f.segment.read_bytes(address, &mut buf).unwrap();
        assert!(
            buf.iter().all(|b| *b == pattern(address)),
            "contents of block {address:#x} changed"
        );
    }
}

fn open<'a>(f: &'a Fixture, tx: &mut Option<(Transaction<'a>, Blocks)>, model: &Model) {
    if tx.is_none() {
        *tx = Some((
            f.rvm.begin(BeginMode::Restore).unwrap(),
            model.current().clone(),
        ));
    }
}

/// Run `ops` until a crash; returns the index after the crash op and its tear mode.
fn run(f: &Fixture, ops: &[Op], model: &mut Model) -> Option<(usize, Tear)> {
    let mut tx: Option<(Transaction<'_>, Blocks)> = None;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Malloc(size) => {
                open(f, &mut tx, model);
                let (t, blocks) = tx.as_mut().unwrap();
                match f.heap.malloc(t, *size) {
                    Ok(a) => {
                        t.fill(a, *size, pattern(a)).unwrap();
                        assert!(
                            blocks.insert(a, *size).is_none(),
                            "address handed out twice"
                        );
                    }
                    Err(rvm::rds::Error::NoRoom { largest_free, .. }) => {
                        assert!((largest_free as usize) < *size);
                    }
                    Err(e) => panic!("malloc({size}): {e}"),
                }
            }
            Op::Free(pick) => {
                open(f, &mut tx, model);
                let (t, blocks) = tx.as_mut().unwrap();
                if let Some(&a) = blocks.keys().nth(pick % blocks.len().max(1)) {
                    f.heap.free(t, a).unwrap();
                    blocks.remove(&a);
                    assert!(matches!(
                        f.heap.free(t, a),
                        Err(rvm::rds::Error::DoubleFree { .. })
                    ));
                }
            }
            Op::Prealloc(size, count) => {
                open(f, &mut tx, model);
                let (t, _) = tx.as_mut().unwrap();
                match f.heap.prealloc(t, *size, *count) {
                    // Partly done is fine: the carved blocks are free either way.
                    Ok(()) | Err(rvm::rds::Error::NoRoom { .. }) => {}
                    Err(rvm::rds::Error::InvalidArgument { .. })
                        if chunks_for(*size, model.chunk_size) >= f.heap.statistics().nlists => {}
                    Err(e) => panic!("prealloc: {e}"),
                }
            }
            Op::Commit(flush) => {
                if let Some((t, blocks)) = tx.take() {
                    if *flush {
                        t.end(CommitMode::Flush).unwrap();
                        model.states = vec![blocks];
                    } else {
                        t.end(CommitMode::NoFlush).unwrap();
                        model.states.push(blocks);
                    }
                }
            }
            Op::Abort => {
                if let Some((t, _)) = tx.take() {
                    t.abort().unwrap();
                }
            }
            Op::Crash(mode) => {
                f.controller.crash_now();
                drop(tx);
                let tear = [Tear::DropAll, Tear::KeepAll, Tear::RandomSectors][*mode as usize];
                return Some((i + 1, tear));
            }
        }
        match &tx {
            Some((_, blocks)) => verify(f, blocks, model.chunk_size),
            None => verify(f, model.current(), model.chunk_size),
        }
    }
    if let Some((t, _)) = tx.take() {
        t.abort().unwrap();
    }
    verify(f, model.current(), model.chunk_size);
    verify_contents(f, model.current());
    None
}

fn run_case(test: u64, chunk_size: u64, nlists: u64, ops: &[Op]) {
    let mut f = Fixture::with_log(layout(test, 128 << 10, nlists, chunk_size), test, 256 << 10);
    let mut model = Model {
        states: vec![Blocks::new()],
        chunk_size,
    };
    let mut at = 0;
    while let Some((next, tear)) = run(&f, &ops[at..], &mut model) {
        at += next;
        f = f.crash_and_recover(tear);
        let held: Blocks = {
            let addresses: Vec<usize> = f
                .heap
                .blocks()
                .unwrap()
                .into_iter()
                .filter(|b| b.state == BlockState::Allocated)
                .map(|b| b.data_address() as usize)
                .collect();
            let found = model
                .states
                .iter()
                .find(|s| s.keys().copied().eq(addresses.iter().copied()))
                .unwrap_or_else(|| {
                    panic!(
                        "after the crash the heap holds {addresses:x?}, which is none of the \
                         committed states {:x?}",
                        model.states
                    )
                });
            found.clone()
        };
        verify(&f, &held, chunk_size);
        verify_contents(&f, &held);
        model.states = vec![held];
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn heap_matches_model_chunk_32(ops in proptest::collection::vec(op(), 1..80)) {
        run_case(60, 32, 4, &ops);
    }

    #[test]
    fn heap_matches_model_chunk_40_one_list(ops in proptest::collection::vec(op(), 1..80)) {
        run_case(61, 40, 1, &ops);
    }

    #[test]
    fn heap_matches_model_chunk_64_eighty_lists(ops in proptest::collection::vec(op(), 1..80)) {
        run_case(62, 64, 80, &ops);
    }
}
