//! Model-based test: random malloc / free / do_free (of an intention list) / prealloc / commit
//! / abort / crash sequences applied to the heap and to a plain model of the allocated blocks.
//! After every step: the checker passes, no two live blocks overlap, every block lies inside
//! the heap, the byte accounting is exact, and the blocks the heap holds are exactly the
//! model's (an open transaction's frees are made at its commit, so until then its freed blocks
//! are still allocated). After a crash the heap holds one of the committed states that could be
//! durable (no double allocation), and every block still holds the bytes written into it; its
//! only other blocks are blocks allocated by transactions that did not commit (an allocation is
//! committed at once in the heap's own transaction, so a crash leaks it, as in the classic
//! library), which the model then keeps as leaked.

mod rds_support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use rds_support::{chunks_for, layout, leaked_beyond, pattern, union, Blocks, Fixture};
use rvm::device::Tear;
use rvm::rds::IntentionList;
use rvm::{BeginMode, CommitMode, Transaction};

#[derive(Debug, Clone)]
enum Op {
    Malloc(usize),
    Free(usize),
    /// Record up to `.1` blocks from the `.0`th on in an intention list (`fake_free`), then
    /// free them all in the open transaction (`do_free`).
    DoFree(usize, usize),
    Prealloc(usize, usize),
    Commit(bool),
    Abort,
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop_oneof![0usize..64, 0usize..600, 0usize..6000].prop_map(Op::Malloc),
        6 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), 1usize..4).prop_map(|(p, n)| Op::DoFree(p, n)),
        1 => (0usize..300, 1usize..4).prop_map(|(s, n)| Op::Prealloc(s, n)),
        3 => any::<bool>().prop_map(Op::Commit),
        1 => Just(Op::Abort),
        1 => (0u8..3).prop_map(Op::Crash),
    ]
}

struct Model {
    /// Committed states that a crash could leave: [0] is durable (last flush), later ones are
    /// no_flush commits queued after it.
    states: Vec<Blocks>,
    chunk_size: u64,
    /// Blocks leaked by earlier crashes: allocated for ever, contents unknown.
    leaked: Blocks,
    /// Blocks allocated since the last crash by transactions that have not committed: a
    /// crash may leak them.
    leakable: Blocks,
    /// Blocks leaked, over the whole run.
    leaks_counted: u64,
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
    let held = f.allocated_chunks();
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

/// An open transaction: the blocks once it commits, the blocks it frees at its commit
/// (allocated until then), and the blocks it allocated.
struct Open<'a> {
    tx: Transaction<'a>,
    blocks: Blocks,
    freeing: Blocks,
    fresh: Blocks,
}

fn open<'a>(f: &'a Fixture, tx: &mut Option<Open<'a>>, model: &Model) {
    if tx.is_none() {
        *tx = Some(Open {
            tx: f.rvm.begin(BeginMode::Restore).unwrap(),
            blocks: model.current().clone(),
            freeing: Blocks::new(),
            fresh: Blocks::new(),
        });
    }
}

/// Run `ops` until a crash; returns the index after the crash op and its tear mode.
fn run(f: &Fixture, ops: &[Op], model: &mut Model) -> Option<(usize, Tear)> {
    let mut tx: Option<Open<'_>> = None;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Malloc(size) => {
                open(f, &mut tx, model);
                let Open {
                    tx: t,
                    blocks,
                    fresh,
                    ..
                } = tx.as_mut().unwrap();
                match f.heap.malloc(t, *size) {
                    Ok(a) => {
                        t.fill(a, *size, pattern(a)).unwrap();
                        assert!(
                            blocks.insert(a, *size).is_none(),
                            "address handed out twice"
                        );
                        fresh.insert(a, *size);
                        model.leakable.insert(a, *size);
                    }
                    Err(rvm::rds::Error::NoRoom { largest_free, .. }) => {
                        assert!((largest_free as usize) < *size);
                    }
                    Err(e) => panic!("malloc({size}): {e}"),
                }
            }
            Op::Free(pick) => {
                open(f, &mut tx, model);
                let Open {
                    tx: t,
                    blocks,
                    freeing,
                    ..
                } = tx.as_mut().unwrap();
                if let Some(&a) = blocks.keys().nth(pick % blocks.len().max(1)) {
                    f.heap.free(t, a).unwrap();
                    freeing.insert(a, blocks.remove(&a).expect("picked"));
                    assert!(matches!(
                        f.heap.free(t, a),
                        Err(rvm::rds::Error::DoubleFree { .. })
                    ));
                }
            }
            Op::DoFree(pick, count) => {
                open(f, &mut tx, model);
                let Open {
                    tx: t,
                    blocks,
                    freeing,
                    ..
                } = tx.as_mut().unwrap();
                let picked: Vec<usize> = blocks
                    .keys()
                    .cycle()
                    .skip(pick % blocks.len().max(1))
                    .take((*count).min(blocks.len()))
                    .copied()
                    .collect();
                let mut intentions = IntentionList::new();
                for a in &picked {
                    f.heap.fake_free(&mut intentions, *a).unwrap();
                }
                f.heap.do_free(t, intentions).unwrap();
                for a in picked {
                    freeing.insert(a, blocks.remove(&a).expect("picked"));
                    assert!(matches!(
                        f.heap.free(t, a),
                        Err(rvm::rds::Error::DoubleFree { .. })
                    ));
                }
            }
            Op::Prealloc(size, count) => {
                open(f, &mut tx, model);
                let t = &mut tx.as_mut().unwrap().tx;
                match f.heap.prealloc(t, *size, *count) {
                    Ok(()) | Err(rvm::rds::Error::NoRoom { .. }) => {}
                    Err(rvm::rds::Error::InvalidArgument { .. })
                        if chunks_for(*size, model.chunk_size) >= f.heap.statistics().nlists => {}
                    Err(e) => panic!("prealloc: {e}"),
                }
            }
            Op::Commit(flush) => {
                if let Some(Open {
                    tx: t,
                    blocks,
                    fresh,
                    ..
                }) = tx.take()
                {
                    if *flush {
                        t.end(CommitMode::Flush).unwrap();
                        model.states = vec![blocks];
                    } else {
                        t.end(CommitMode::NoFlush).unwrap();
                        model.states.push(blocks);
                    }
                    for a in fresh.keys() {
                        model.leakable.remove(a);
                    }
                }
            }
            Op::Abort => {
                if let Some(open) = tx.take() {
                    open.tx.abort().unwrap();
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
            Some(open) => verify(
                f,
                &union(&union(&open.blocks, &open.freeing), &model.leaked),
                model.chunk_size,
            ),
            None => verify(f, &union(model.current(), &model.leaked), model.chunk_size),
        }
    }
    if let Some(open) = tx.take() {
        open.tx.abort().unwrap();
    }
    verify(f, &union(model.current(), &model.leaked), model.chunk_size);
    verify_contents(f, model.current());
    None
}

/// Every block of `blocks` holds its pattern.
fn contents_ok(f: &Fixture, blocks: &Blocks) -> bool {
    blocks.iter().all(|(&address, &size)| {
        let mut buf = vec![0u8; size];
        f.segment.read_bytes(address, &mut buf).unwrap();
        buf.iter().all(|b| *b == pattern(address))
    })
}

/// Returns the number of blocks leaked by crashes.
fn run_case(test: u64, chunk_size: u64, nlists: u64, ops: &[Op]) -> u64 {
    let mut f = Fixture::with_log(layout(test, 128 << 10, nlists, chunk_size), test, 256 << 10);
    let mut model = Model {
        states: vec![Blocks::new()],
        chunk_size,
        leaked: Blocks::new(),
        leakable: Blocks::new(),
        leaks_counted: 0,
    };
    let mut at = 0;
    while let Some((next, tear)) = run(&f, &ops[at..], &mut model) {
        at += next;
        f = f.crash_and_recover(tear);
        let held = f.allocated_chunks();
        // A transaction that only allocated leaves the same blocks whether its commit was
        // lost (its blocks leaked) or not; the blocks' contents tell which.
        let (state, leaks) = model
            .states
            .iter()
            .filter(|s| contents_ok(&f, s))
            .filter_map(|s| {
                leaked_beyond(&union(s, &model.leaked), &held, &model.leakable, chunk_size)
                    .map(|extra| (s.clone(), extra))
            })
            .min_by_key(|(_, extra)| extra.len())
            .unwrap_or_else(|| {
                panic!(
                    "after the crash the heap holds {held:x?}, which is none of the committed \
                     states {:x?} with the leaked blocks {:x?} and some of the blocks \
                     uncommitted transactions allocated {:x?}",
                    model.states, model.leaked, model.leakable
                )
            });
        model.leaks_counted += leaks.len() as u64;
        model.leaked.extend(leaks);
        model.leakable.clear();
        let held = state;
        verify(&f, &union(&held, &model.leaked), chunk_size);
        verify_contents(&f, &held);
        model.states = vec![held];
    }
    model.leaks_counted
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

/// A heap image with a mix of free and allocated blocks on several lists, as the segment
/// file holds it, and the address it is mapped at.
fn sample_image() -> &'static (Vec<u8>, u64) {
    static IMAGE: std::sync::OnceLock<(Vec<u8>, u64)> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let f = Fixture::new(layout(63, 64 << 10, 6, 40));
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let blocks: Vec<usize> = (0..60)
            .map(|i| f.heap.malloc(&mut tx, 1 + i * 29 % 700).unwrap())
            .collect();
        for a in blocks.iter().step_by(3) {
            f.heap.free(&mut tx, *a).unwrap();
        }
        tx.end(CommitMode::Flush).unwrap();
        assert!(f.heap.check().is_ok());
        f.rvm.truncate().unwrap();
        let image = f.data.live()[4096..4096 + (64 << 10)].to_vec();
        (image, f.heap.address() as u64)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Damage anywhere: the checker, inspector and block walk report it or not, but never
    /// panic (debug builds also check arithmetic overflow) and never read outside the image.
    #[test]
    fn image_tools_never_panic_on_damage(
        damage in proptest::collection::vec((0usize..(64 << 10), any::<u64>(), 0u8..4), 1..8),
        cut in prop_oneof![Just(64usize << 10), 0usize..(64 << 10)],
    ) {
        let (image, address) = sample_image();
        let mut image = image.clone();
        for (at, value, how) in damage {
            let at = at & !7;
            let word = match how {
                // An arbitrary word, a plausible pointer, a plausible tag size, zero.
                0 => value,
                1 => address + value % (64 << 10),
                2 => (u64::from_le_bytes(image[at..at + 8].try_into().unwrap()) & !0xff_ffff_ffff)
                    | (value % 5000),
                _ => 0,
            };
            image[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        let image = &image[..cut];
        let report = rvm::rds::check_image(image, *address);
        let _ = report.to_string();
        if let Ok(info) = rvm::rds::inspect_image(image, *address) {
            prop_assert!(info.fragmentation >= 0.0 && info.fragmentation <= 1.0);
        }
        let _ = rvm::rds::blocks_image(image, *address);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Damage a live heap, then malloc and free at random: a call either succeeds or is
    /// refused with memory exactly as it was (every check comes before the first write), and
    /// nothing panics.
    #[test]
    fn refused_calls_on_a_damaged_heap_change_nothing(
        damage in proptest::collection::vec((0usize..(32 << 10), any::<u64>(), 0u8..3), 1..4),
        ops in proptest::collection::vec((any::<bool>(), 0usize..2000, any::<usize>()), 1..30),
    ) {
        let f = Fixture::new(layout(64, 32 << 10, 5, 48));
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let mut live: Vec<usize> = (0..30)
            .map(|i| f.heap.malloc(&mut tx, 1 + i * 53 % 900).unwrap())
            .collect();
        for a in live.iter().step_by(4) {
            f.heap.free(&mut tx, *a).unwrap();
        }
        // The frees are made at this commit: before the damage.
        tx.end(CommitMode::Flush).unwrap();
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let base = f.heap.address();
        for (at, value, how) in damage {
            let at = base + (at & !7);
            let word = match how {
                0 => value,
                1 => (base as u64 + value % (32 << 10)) & !7,
                _ => 0,
            };
            tx.write(at, &word).unwrap();
        }
        tx.end(CommitMode::Flush).unwrap();
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        for (allocate, size, pick) in ops {
            let before = f.heap_bytes();
            let result = if allocate || live.is_empty() {
                f.heap.malloc(&mut tx, size).map(|a| live.push(a))
            } else {
                let a = live.swap_remove(pick % live.len());
                f.heap.free(&mut tx, a)
            };
            if let Err(e) = result {
                prop_assert!(
                    f.heap_bytes() == before,
                    "refused call ({e}) changed the heap"
                );
            }
        }
        tx.abort().unwrap();
        let _ = f.heap.check();
    }
}
