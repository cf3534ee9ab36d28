//! Functional tests of the RDS heap: allocation, coalescing, abort, refused calls, intention
//! lists, prealloc, statistics, roots, locking, and the image checker.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::device::Tear;
use rvm::rds::{self, BlockState, Error, Heap, IntentionList, PersistentPtr, ProblemKind};
use rvm::{BeginMode, CommitMode};

#[test]
fn malloc_free_and_exact_accounting() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let capacity = f.heap.statistics().capacity_bytes;
    assert_eq!(f.heap.statistics().free_bytes, capacity);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 1).unwrap();
    let c = f.heap.malloc(&mut tx, 5000).unwrap();
    tx.fill(a, 100, 0xaa).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap.usable_size(a).unwrap() >= 100);
    assert_eq!(a % 8, 0);
    let s = f.heap.statistics();
    // 100 + 16 -> 2 chunks; 1 + 16 -> 1 chunk; 5016 -> 79 chunks.
    assert_eq!(s.allocated_bytes, (2 + 1 + 79) * 64);
    assert_eq!(s.free_bytes + s.allocated_bytes, capacity);
    assert_eq!(s.malloc_count, 3);
    f.assert_consistent();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    f.heap.free(&mut tx, c).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let s = f.heap.statistics();
    assert_eq!(s.allocated_bytes, 0);
    assert_eq!(s.free_bytes, capacity);
    assert_eq!(s.free_blocks, 1, "immediate coalescing leaves one block");
    assert_eq!(s.fragmentation, 0.0);
    assert!(s.coalesce_count >= 3);
    f.assert_consistent();
}

/// Fill the whole heap with the smallest blocks, then free them in an order that needs
/// merges on both sides; the heap must end as one free block. Run for chunk sizes including
/// 32 (Coda's 64-bit build refuses it) and 40 (not a divisor of the region length).
#[test]
fn fill_and_drain_for_every_chunk_size() {
    for (i, chunk) in [32u64, 40, 48, 64, 200].into_iter().enumerate() {
        for nlists in [1u64, 2, 7, 80] {
            let f = Fixture::new(layout(
                10 + i as u64 * 4 + nlists % 4,
                64 << 10,
                nlists,
                chunk,
            ));
            let capacity = f.heap.statistics().capacity_bytes;
            let g = f.heap.inspect().unwrap().geometry;
            assert!(g.blocks_offset + g.chunk_count * chunk <= 64 << 10);
            let mut blocks = Vec::new();
            let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
            loop {
                match f.heap.malloc(&mut tx, 1) {
                    Ok(a) => blocks.push(a),
                    Err(Error::NoRoom {
                        requested,
                        largest_free,
                    }) => {
                        assert_eq!((requested, largest_free), (1, 0));
                        break;
                    }
                    Err(e) => panic!("chunk {chunk}: {e}"),
                }
            }
            tx.end(CommitMode::NoFlush).unwrap();
            assert_eq!(
                blocks.len() as u64,
                g.chunk_count,
                "chunk {chunk} nlists {nlists}"
            );
            assert_eq!(f.heap.statistics().free_bytes, 0);
            f.assert_consistent();
            // Free every other block, then the rest: the second pass merges on both sides.
            let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
            for a in blocks.iter().step_by(2) {
                f.heap.free(&mut tx, *a).unwrap();
            }
            tx.end(CommitMode::NoFlush).unwrap();
            f.assert_consistent();
            let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
            for a in blocks.iter().skip(1).step_by(2) {
                f.heap.free(&mut tx, *a).unwrap();
            }
            tx.end(CommitMode::NoFlush).unwrap();
            let s = f.heap.statistics();
            assert_eq!((s.free_blocks, s.free_bytes), (1, capacity));
            assert_eq!(f.heap.maxblock() as u64, capacity - 16);
            f.assert_consistent();
        }
    }
}

/// The allocated blocks (address, chunks), in address order.
fn allocated_blocks(f: &Fixture) -> Vec<(u64, u64)> {
    f.heap
        .blocks()
        .unwrap()
        .into_iter()
        .filter(|b| b.state == BlockState::Allocated)
        .map(|b| (b.address, b.chunks))
        .collect()
}

/// An abort no longer puts heap metadata back (other transactions may have changed the heap
/// since, spec K11): frees are only done at commit, so an abort of a transaction that only
/// freed leaves the heap byte for byte as it was; allocations are freed again, so every other
/// abort leaves the same blocks allocated and the same byte accounting. (This test asserted
/// byte-for-byte equality after any abort while a transaction owned the heap until its end.)
#[test]
fn abort_leaves_the_allocated_blocks_as_they_were() {
    let f = Fixture::new(layout(40, 256 << 10, 16, 32));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let keep: Vec<usize> = (0..50)
        .map(|i| f.heap.malloc(&mut tx, 10 + i * 13).unwrap())
        .collect();
    for a in &keep {
        tx.fill(*a, 10, 0x77).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();
    let blocks_before = allocated_blocks(&f);
    let stats_before = f.heap.statistics();

    // Only frees: nothing is written before the commit, so the abort leaves every byte.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    for a in keep.iter().step_by(3) {
        f.heap.free(&mut tx, *a).unwrap();
    }
    assert_eq!(
        f.heap.statistics().open_frees,
        keep.len().div_ceil(3) as u64
    );
    tx.abort().unwrap();
    assert!(f.heap_bytes() == before, "an aborted free changed the heap");
    assert_eq!(f.heap.statistics(), stats_before);

    // Frees, allocations, prealloc and clearing the statistics, then abort.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    for a in keep.iter().step_by(3) {
        f.heap.free(&mut tx, *a).unwrap();
    }
    for i in 0..40 {
        f.heap.malloc(&mut tx, 1 + i * 37).unwrap();
    }
    f.heap.prealloc(&mut tx, 40, 5).unwrap();
    f.heap.clear_statistics(&mut tx).unwrap();
    tx.abort().unwrap();
    assert_eq!(allocated_blocks(&f), blocks_before);
    let s = f.heap.statistics();
    assert_eq!(
        (
            s.allocated_bytes,
            s.free_bytes,
            s.open_allocations,
            s.open_frees
        ),
        (stats_before.allocated_bytes, stats_before.free_bytes, 0, 0)
    );
    for a in &keep {
        assert_eq!(
            f.rvm.read::<[u8; 10]>(*a).unwrap(),
            [0x77; 10],
            "block {a:#x}"
        );
    }
    f.assert_consistent();

    // Dropping an un-ended transaction aborts it too, and the heap stays usable.
    {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        f.heap.malloc(&mut tx, 3000).unwrap();
    }
    assert_eq!(allocated_blocks(&f), blocks_before);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.malloc(&mut tx, 3000).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    f.assert_consistent();
}

#[test]
fn refused_calls_change_nothing() {
    let f = Fixture::new(layout(41, 64 << 10, 8, 48));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 100).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let base = f.heap.address();
    let cases: Vec<(usize, &str)> = vec![
        (a, "EFREED_TWICE"),
        (b + 8, "EBAD_ARGS"),
        (b + 48, "EBAD_ARGS"),
        (0, "EBAD_ARGS"),
        (base, "EBAD_ARGS"),
        (base + f.heap.length(), "EBAD_ARGS"),
        (usize::MAX, "EBAD_ARGS"),
        (f.heap.static_address() + 8, "EBAD_ARGS"),
    ];
    for (address, code) in cases {
        let e = f.heap.free(&mut tx, address).unwrap_err();
        assert_eq!(e.code_name(), code, "free({address:#x}): {e}");
    }
    assert!(matches!(
        f.heap.malloc(&mut tx, 1 << 30).unwrap_err(),
        Error::NoRoom { requested, .. } if requested == 1 << 30
    ));
    assert!(f.heap.malloc(&mut tx, usize::MAX).is_err());
    assert!(f.heap.prealloc(&mut tx, 100_000, 1).is_err());
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before);
    f.assert_consistent();
}

#[test]
fn corruption_is_detected_and_not_followed() {
    let f = Fixture::new(layout(42, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 100).unwrap();
    let c = f.heap.malloc(&mut tx, 100).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    tx.end(CommitMode::Flush).unwrap();

    // Blocks are carved from the high end, so c < b < a. A buffer overrun from `c` smashes
    // the head tag of `b`, the free block after it.
    let smashed = c - 8 + 2 * 64;
    assert_eq!(smashed, b - 8);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(smashed, &0x4141_4141_4141_4141u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();
    let report = f.heap.check();
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == smashed as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.free(&mut tx, c).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    let e = f.heap.free(&mut tx, a).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before, "refused frees changed the heap");

    // A list head pointing outside the heap is reported, not followed.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let offset = smashed - f.heap.address();
    tx.modify_bytes(smashed, &before[offset..offset + 8])
        .unwrap();
    let list_2 = f.heap.address() + 192 + 8;
    tx.write(list_2, &0xdead_beef_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.malloc(&mut tx, 100).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.abort().unwrap();
    let report = f.heap.check();
    assert!(
        report.problems.iter().any(|p| p.kind == ProblemKind::Link),
        "{report}"
    );
}

/// Both tags carry the state: a foot that disagrees with its head (same size, other state)
/// is reported by the checker and refused by the calls that meet it, and a forged "free" foot
/// before a block being freed is not followed into an allocated neighbour.
#[test]
fn foot_state_must_agree_with_the_head() {
    const FOOT_FREE: u64 = 0x6D9A_5200_0000_0000;
    const FOOT_ALLOCATED: u64 = 0x93E5_C400_0000_0000;
    let f = Fixture::new(layout(45, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // Carved from the high end: z < y < x, 2 chunks (128 bytes) each.
    let x = f.heap.malloc(&mut tx, 100).unwrap();
    let y = f.heap.malloc(&mut tx, 100).unwrap();
    let _z = f.heap.malloc(&mut tx, 100).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let y_foot = y - 8 + 128 - 8;
    assert_eq!(y_foot, x - 16);
    let intact = f.heap_bytes();

    // Allocated y with a free foot (the checker reports it at y's block).
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(y_foot, &(FOOT_FREE | 2)).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let report = f.heap.check();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == (y - 8) as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );
    let before = f.heap_bytes();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.free(&mut tx, y).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    // x's left neighbour claims to be free: its head says otherwise, so nothing is merged.
    let e = f.heap.free(&mut tx, x).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before, "refused frees changed the heap");

    // Repair it; then free y and give it an allocated foot.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let offset = y_foot - f.heap.address();
    tx.modify_bytes(y_foot, &intact[offset..offset + 8])
        .unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, y).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(y_foot, &(FOOT_ALLOCATED | 2)).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let report = f.heap.check();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == (y - 8) as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );
    let before = f.heap_bytes();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.malloc(&mut tx, 100).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(
        f.heap_bytes() == before,
        "a refused malloc changed the heap"
    );
}

#[test]
fn version_skew_and_missing_heap_are_refused_at_load() {
    let f = Fixture::new(layout(43, 64 << 10, 8, 64));
    // A version-1 heap (other counter order) and a version-2 heap (foot tags without the
    // state) are refused.
    for old in [1u64, 2] {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        tx.write(f.heap.address() + 8, &old).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let e = Heap::load(&f.segment).unwrap_err();
        assert!(
            matches!(
                e,
                Error::VersionSkew {
                    found,
                    expected: 3,
                    ..
                } if found == old
            ),
            "{e}"
        );
        assert_eq!(e.code_name(), "EHEAP_VERSION_SKEW");
    }
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(
        f.heap.malloc(&mut tx, 8).unwrap_err().code_name(),
        "EHEAP_VERSION_SKEW"
    );
    tx.fill(f.heap.address(), 8, 0).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(
        Heap::load(&f.segment).unwrap_err().code_name(),
        "EHEAP_INIT"
    );
}

#[test]
fn intention_lists_free_at_do_free() {
    let f = Fixture::new(layout(44, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let blocks: Vec<usize> = (0..6)
        .map(|_| f.heap.malloc(&mut tx, 40).unwrap())
        .collect();
    tx.end(CommitMode::Flush).unwrap();
    let allocated = f.heap.statistics().allocated_bytes;

    let mut intentions = IntentionList::new();
    for a in &blocks[..4] {
        f.heap.fake_free(&mut intentions, *a).unwrap();
    }
    assert!(matches!(
        f.heap.fake_free(&mut intentions, blocks[0]),
        Err(Error::DoubleFree { .. })
    ));
    assert_eq!(intentions.len(), 4);
    assert_eq!(
        f.heap.statistics().allocated_bytes,
        allocated,
        "fake_free frees nothing"
    );

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.do_free(&mut tx, intentions).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(f.heap.statistics().allocated_bytes, allocated - 4 * 64);
    f.assert_consistent();

    // A stale intention (freed meanwhile) is refused before anything is freed.
    let mut intentions = IntentionList::new();
    f.heap.fake_free(&mut intentions, blocks[4]).unwrap();
    f.heap.fake_free(&mut intentions, blocks[5]).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, blocks[5]).unwrap();
    let before = f.heap.statistics();
    assert!(matches!(
        f.heap.do_free(&mut tx, intentions),
        Err(Error::DoubleFree { .. })
    ));
    assert_eq!(f.heap.statistics().allocated_bytes, before.allocated_bytes);
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
}

#[test]
fn prealloc_makes_later_mallocs_exact_hits() {
    let f = Fixture::new(layout(45, 256 << 10, 80, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.prealloc(&mut tx, 200, 10).unwrap();
    f.heap.clear_statistics(&mut tx).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let s = f.heap.statistics();
    assert_eq!(s.lists[3].blocks, 10, "200 + 16 bytes is 4 chunks of 64");
    assert_eq!(s.malloc_count, 0);
    f.assert_consistent();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    for _ in 0..10 {
        f.heap.malloc(&mut tx, 200).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    let s = f.heap.statistics();
    assert_eq!((s.exact_hits, s.malloc_count), (10, 10));
    assert_eq!(s.lists[3].blocks, 0);
    f.assert_consistent();
}

#[test]
fn no_room_reports_the_largest_free_block() {
    let f = Fixture::new(layout(46, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let max = f.heap.maxblock();
    assert_eq!(max as u64, f.heap.statistics().capacity_bytes - 16);
    let e = f.heap.malloc(&mut tx, max + 1).unwrap_err();
    assert!(
        matches!(e, Error::NoRoom { requested, largest_free } if requested == max as u64 + 1 && largest_free == max as u64)
    );
    assert!(e.to_string().contains(&max.to_string()));
    let a = f.heap.malloc(&mut tx, max).unwrap();
    assert_eq!(f.heap.maxblock(), 0);
    f.heap.free(&mut tx, a).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
}

/// Nothing in the heap depends on the caller's undo any more, so no-restore transactions may
/// allocate and free; and several open transactions of one thread use the heap at once (this
/// test asserted that a no-restore malloc was refused, and that a second open transaction of
/// the owning thread got `Busy`: the issue forbids both waiting and "busy" for plain heap
/// calls).
#[test]
fn heap_changes_accept_no_restore_transactions_and_several_per_thread() {
    let f = Fixture::new(layout(47, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::NoRestore).unwrap();
    let a = f.heap.malloc(&mut tx, 8).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::NoRestore).unwrap();
    let b = f.heap.malloc(&mut tx, 8).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    tx.abort().unwrap();
    assert!(f.heap.usable_size(a).is_ok(), "the aborted free was made");
    assert!(
        f.heap.usable_size(b).is_err(),
        "the aborted allocation was kept"
    );
    f.assert_consistent();

    let mut first = f.rvm.begin(BeginMode::Restore).unwrap();
    let x = f.heap.malloc(&mut first, 8).unwrap();
    let mut second = f.rvm.begin(BeginMode::Restore).unwrap();
    let y = f.heap.malloc(&mut second, 8).unwrap();
    f.heap.free(&mut second, a).unwrap();
    assert!(matches!(
        f.heap.free(&mut first, a),
        Err(Error::FreePending { transaction, .. }) if transaction == second.id()
    ));
    assert!(matches!(
        f.heap.free(&mut second, a),
        Err(Error::DoubleFree { .. })
    ));
    // Read-only calls see both allocations (and the pending free, still allocated).
    let s = f.heap.statistics();
    assert_eq!((s.open_allocations, s.open_frees), (2, 1));
    first.end(CommitMode::NoFlush).unwrap();
    second.abort().unwrap();
    assert!(f.heap.usable_size(x).is_ok() && f.heap.usable_size(a).is_ok());
    assert!(f.heap.usable_size(y).is_err());
    f.assert_consistent();
}

#[test]
fn threads_allocate_concurrently_without_overlap() {
    let f = Fixture::new(layout(48, 1 << 20, 40, 32));
    let all = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..4usize {
            let (f, all) = (&f, &all);
            s.spawn(move || {
                let mut mine = Vec::new();
                for round in 0..50usize {
                    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
                    let size = 1 + (t * 131 + round * 17) % 700;
                    let a = f.heap.malloc(&mut tx, size).unwrap();
                    tx.fill(a, size, t as u8 + 1).unwrap();
                    let mut freed = None;
                    if round % 3 == 2 && !mine.is_empty() {
                        let old: (usize, usize) = mine.swap_remove(0);
                        f.heap.free(&mut tx, old.0).unwrap();
                        freed = Some(old);
                    }
                    if round % 5 == 4 {
                        tx.abort().unwrap();
                        mine.extend(freed);
                    } else {
                        tx.end(CommitMode::NoFlush).unwrap();
                        mine.push((a, size));
                    }
                }
                all.lock()
                    .unwrap()
                    .extend(mine.into_iter().map(|(a, n)| (a, n, t as u8 + 1)));
            });
        }
    });
    let mut all = all.into_inner().unwrap();
    all.sort();
    for w in all.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "overlap: {:?}", w);
    }
    for (a, n, t) in &all {
        let mut buf = vec![0u8; *n];
        f.segment.read_bytes(*a, &mut buf).unwrap();
        assert!(
            buf.iter().all(|b| b == t),
            "block {a:#x} of thread {t} was overwritten"
        );
    }
    f.assert_consistent();
}

#[test]
fn roots_and_persistent_pointers_survive_restart_and_crash() {
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Node {
        value: u64,
        next: PersistentPtr<Node>,
    }
    let f = Fixture::new(layout(49, 64 << 10, 8, 64));
    let root = f.heap.static_root::<PersistentPtr<Node>>().unwrap();
    assert!(root.get().unwrap().is_null(), "static region starts zeroed");
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut head = PersistentPtr::null();
    for value in 1..=5 {
        head = f.heap.alloc(&mut tx, &Node { value, next: head }).unwrap();
    }
    root.set(&mut tx, &head).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap.static_root::<[[u8; 4096]; 2]>().is_err());

    let f = f.reopen_clean();
    let walk = |f: &Fixture| {
        let root = f.heap.static_root::<PersistentPtr<Node>>().unwrap();
        let mut values = Vec::new();
        let mut p = root.get().unwrap();
        while !p.is_null() {
            let n = f.heap.get(p).unwrap();
            values.push(n.value);
            p = n.next;
        }
        values
    };
    assert_eq!(walk(&f), vec![5, 4, 3, 2, 1]);

    // Pop one node committed, then crash in the middle of popping another (uncommitted).
    let root = f.heap.static_root::<PersistentPtr<Node>>().unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let top = root.get().unwrap();
    let node = f.heap.get(top).unwrap();
    root.set(&mut tx, &node.next).unwrap();
    f.heap.free_ptr(&mut tx, top).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap.get(top).is_err(), "a dangling pointer is refused");
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let top = root.get().unwrap();
    root.set(&mut tx, &PersistentPtr::null()).unwrap();
    f.heap.free_ptr(&mut tx, top).unwrap();
    // Power fails before the commit: the devices go down, then the transaction is dropped.
    f.controller.crash_now();
    drop(tx);
    let f = f.crash_and_recover(Tear::RandomSectors);
    assert_eq!(walk(&f), vec![4, 3, 2, 1]);
    f.assert_consistent();
}

#[test]
fn image_checker_and_inspector_read_the_segment_without_mapping() {
    let f = Fixture::new(layout(50, 128 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let blocks: Vec<usize> = (0..20)
        .map(|i| f.heap.malloc(&mut tx, 50 * i).unwrap())
        .collect();
    for a in blocks.iter().step_by(4) {
        f.heap.free(&mut tx, *a).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    f.rvm.truncate().unwrap();
    let image = f.data.live();
    let heap_offset = 4096;
    let region = &image[heap_offset..heap_offset + (128 << 10)];
    let address = f.heap.address() as u64;
    let report = rds::check_image(region, address);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report, f.heap.check());
    let info = rds::inspect_image(region, address).unwrap();
    assert_eq!(info.geometry.chunk_size, 64);
    assert_eq!(info.counters, {
        let s = f.heap.statistics();
        rvm::rds::HeapCounters {
            generation: info.counters.generation,
            free_bytes: s.free_bytes,
            allocated_bytes: s.allocated_bytes,
            malloc_count: s.malloc_count,
            free_count: s.free_count,
            prealloc_count: s.prealloc_count,
            coalesce_count: s.coalesce_count,
            exact_hits: s.exact_hits,
            large_hits: s.large_hits,
            splits: s.splits,
        }
    });
    let listed: u64 = info.lists.iter().map(|l| l.blocks).sum();
    assert_eq!(listed, info.check.free_blocks);
    let blocks = rds::blocks_image(region, address).unwrap();
    assert_eq!(blocks.len() as u64, report.blocks);
    assert_eq!(
        blocks
            .iter()
            .filter(|b| b.state == BlockState::Allocated)
            .count(),
        15
    );
    // The image checker and inspector never panic on damage, wherever it is.
    let mut damaged = region.to_vec();
    for i in (0..damaged.len()).step_by(997) {
        damaged[i] ^= 0x5a;
        let _ = rds::check_image(&damaged, address);
        let _ = rds::inspect_image(&damaged, address);
        let _ = rds::blocks_image(&damaged, address);
    }
    assert!(!rds::check_image(&damaged, address).is_ok());
    assert_eq!(rds::check_image(&region[..100], address).problems.len(), 1);
    assert!(rds::inspect_image(&[0u8; 4096], address).is_err());
    // The device-backed checker finds the same as the image checker, and never panics.
    let region_entry = rvm::format::segment::RegionEntry {
        offset: heap_offset as u64,
        length: 128 << 10,
        address,
    };
    let device = rvm::device::MemDevice::new("data", image.clone());
    assert_eq!(rds::check_device(&device, &region_entry), report);
    assert_eq!(rds::inspect_device(&device, &region_entry).unwrap(), info);
    let mut damaged_image = image.clone();
    for i in (heap_offset..heap_offset + (128 << 10)).step_by(997) {
        damaged_image[i] ^= 0x5a;
    }
    let device = rvm::device::MemDevice::new("data", damaged_image);
    assert_eq!(
        rds::check_device(&device, &region_entry),
        rds::check_image(&damaged, address)
    );
}

/// A device that counts the bytes read through it.
#[derive(Debug)]
struct CountingDevice {
    inner: rvm::device::FileDevice,
    bytes_read: std::sync::atomic::AtomicU64,
}

impl rvm::device::Device for CountingDevice {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.bytes_read
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("read-only"))
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("read-only"))
    }
}

/// Issue 12 item 8: `rvmutl heap` and `check` read the whole heap region into memory (1 GiB of
/// RSS for a 1 GiB sparse segment). The walk from a file reads only the pages holding tags.
#[test]
fn heap_walk_from_a_file_reads_far_less_than_the_region() {
    let dir = std::env::temp_dir().join(format!("rvm-heap-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let data = dir.join("data");
    rvm::Rvm::create_log(&log, 1 << 20).unwrap();
    let rvm = rvm::Rvm::open(&log, rvm::Options::default()).unwrap();
    let layout = layout(58, 1 << 30, 80, 64);
    // SAFETY: the data file is created by this call in the test's own directory, and nothing
    // shortens it.
    let header = unsafe {
        rds::create_heap_segment(
            &rvm,
            &data,
            layout.segment_length_min(),
            &layout,
            rvm::segment::CreateOptions::default(),
        )
    }
    .unwrap();
    rvm.close().unwrap();
    let device = CountingDevice {
        inner: rvm::device::FileDevice::open(&data, rvm::device::Access::ReadOnly).unwrap(),
        bytes_read: Default::default(),
    };
    let info = rds::inspect_device(&device, &header.regions[0]).unwrap();
    let read = device.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(info.check.is_ok(), "{}", info.check);
    assert_eq!(info.check.free_blocks, 1);
    assert_eq!(info.check.free_bytes, info.counters.free_bytes);
    assert!(
        read <= 1 << 20,
        "read {read} bytes of a {} byte heap region",
        header.regions[0].length
    );
}

#[test]
fn segments_that_are_not_heap_segments_are_refused() {
    use rvm::device::{DeviceRef, MemDevice};
    use rvm::segment::{self, RegionSpec};
    use rvm::MapOptions;
    use std::sync::Arc;
    let f = Fixture::new(layout(51, 64 << 10, 8, 64));
    // One region only.
    let one: DeviceRef = Arc::new(MemDevice::new("one", Vec::new()));
    let header = segment::layout(
        4096 + 8192,
        &[RegionSpec {
            length: 8192,
            address: rds_support::address_for(52),
        }],
    )
    .unwrap();
    segment::write_header(&*one, &header).unwrap();
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let seg = unsafe { f.rvm.map_device(one, MapOptions::default()) }.unwrap();
    assert_eq!(
        Heap::load(&seg).unwrap_err().code_name(),
        "EBAD_SEGMENT_HDR"
    );
    // A heap segment mapped anywhere: its pointers would be wrong.
    f.rvm.unmap(&f.segment).unwrap();
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let anywhere = unsafe { f.rvm.map_device(f.data.clone(), MapOptions::anywhere()) }.unwrap();
    let e = Heap::load(&anywhere).unwrap_err();
    assert_eq!(e.code_name(), "EBAD_SEGMENT_HDR", "{e}");
    // The old handle's segment is unmapped: calls fail cleanly.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(
        f.heap.malloc(&mut tx, 8).unwrap_err().code_name(),
        "RVM_ENOT_MAPPED"
    );
    tx.abort().unwrap();
    assert!(!f.heap.check().is_ok());
    assert_eq!(f.heap.maxblock(), 0);
    assert!(f.heap.statistics().damage.is_some());
}

/// The range counts of the transaction records logged since the last call (`seen` records
/// ago), after a flush.
fn logged_ranges(f: &Fixture, seen: &mut usize) -> Vec<u32> {
    f.rvm.flush().unwrap();
    let reader = rvm::log::LogReader::from_device(f.log.clone()).unwrap();
    let records = reader.scan().unwrap().records;
    let counts = records[*seen..]
        .iter()
        .filter(|r| r.kind == rvm::format::log::KIND_TRANSACTION)
        .map(|r| r.range_count)
        .collect();
    *seen = records.len();
    counts
}

/// The common operations log few ranges: each costs a `set_range`, coalescing at commit
/// and a 32-byte range header in the log. The counters a call changes are one range; adjacent
/// words are written as one range. Both tags of a block carry its state, so allocating or
/// freeing a block rewrites its foot as well as its head: one range more than the head
/// alone, except for a block of four words (one 32-byte chunk), whose head and foot are
/// written as one range.
///
/// An allocation is logged as a record of its own (the heap's own transaction); a free, at
/// the commit of the transaction that made it, in that transaction's record. (This test
/// counted the ranges declared in the caller's transaction, where every heap change used to
/// go; the figures are the same except where noted.)
#[test]
fn common_operations_log_few_ranges() {
    let f = Fixture::new(layout(52, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // Carved from the high end of the one free block: e < d < c < b < a, all of 2 chunks.
    let blocks: Vec<usize> = (0..5)
        .map(|_| f.heap.malloc(&mut tx, 100).unwrap())
        .collect();
    tx.end(CommitMode::NoFlush).unwrap();
    let (b, c, d) = (blocks[1], blocks[2], blocks[3]);
    let mut seen = 0;
    logged_ranges(&f, &mut seen);

    // Free with allocated neighbours onto an empty list: counters, head tag and links, foot
    // tag, list head.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [4]);
    // The same onto a non-empty list: also the old first block's back link.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, d).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [5]);
    // Exact-fit malloc of the first of two: counters, list head, the next block's back link,
    // head tag, foot tag.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(f.heap.malloc(&mut tx, 100).unwrap(), d);
    assert_eq!(logged_ranges(&f, &mut seen), [5]);
    // A second one in the same transaction: list head, head tag, foot tag, and (a record of
    // its own) the counters again.
    assert_eq!(f.heap.malloc(&mut tx, 100).unwrap(), b);
    assert_eq!(logged_ranges(&f, &mut seen), [4]);
    tx.abort().unwrap();
    logged_ranges(&f, &mut seen);
    f.assert_consistent();
    // A split of the large block: counters, its head, the remainder's foot with the new
    // block's head, the new block's foot.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.malloc(&mut tx, 1000).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [4]);
    tx.abort().unwrap();
    logged_ranges(&f, &mut seen);
    // Free between two free blocks (d on the left, b on the right, list 2 = d, b): counters,
    // d's next link (b unlinked), list 2's head (d unlinked), d's head and links (pushed on
    // list 6), list 6's head, the merged foot (b's), c's head (marked free, for double frees).
    // Merging writes no more than with stateless feet: the merged block's foot changes anyway.
    // d's next link lies inside d's head and links, so the record holds one range fewer.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, c).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [6]);
    f.assert_consistent();

    // One-chunk blocks of 32 bytes: head, links and foot are one range.
    let f = Fixture::new(layout(53, 64 << 10, 8, 32));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let blocks: Vec<usize> = (0..5)
        .map(|_| f.heap.malloc(&mut tx, 16).unwrap())
        .collect();
    tx.end(CommitMode::NoFlush).unwrap();
    let (b, d) = (blocks[1], blocks[3]);
    let mut seen = 0;
    logged_ranges(&f, &mut seen);
    // Free onto an empty list: counters, head tag with links and foot tag, list head; onto a
    // non-empty list, in the same transaction: block, back link, list head (the counters and
    // list head are declared again, and b's back link lies in b's range: 3 + 1).
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    f.heap.free(&mut tx, d).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [4]);
    // Exact-fit malloc: counters, list head, the next block's back link, the block's tags.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(f.heap.malloc(&mut tx, 16).unwrap(), d);
    assert_eq!(logged_ranges(&f, &mut seen), [4]);
    tx.abort().unwrap();
    logged_ranges(&f, &mut seen);
    // Prealloc of one block onto list 1 (= d, b): counters, the large block's head, the
    // remainder's foot with the new block's head, links and foot (one range), d's back link,
    // list 1's head.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.prealloc(&mut tx, 16, 1).unwrap();
    assert_eq!(logged_ranges(&f, &mut seen), [5]);
    tx.end(CommitMode::NoFlush).unwrap();
    f.assert_consistent();
}

/// `Heap::set` checked that its block was allocated without taking the heap, so another
/// transaction could free the block before `set`'s transaction committed, and `set` then wrote
/// into a free block (over its list links). Now `set` takes the heap for its transaction first.
#[test]
fn set_through_a_pointer_holds_the_heap_so_its_block_cannot_be_freed_meanwhile() {
    let f = Fixture::new(layout(59, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let ptr = f.heap.alloc(&mut tx, &1u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let mut writer = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.set(&mut writer, ptr, &2u64).unwrap();
    let mut freer = f.rvm.begin(BeginMode::Restore).unwrap();
    assert!(
        matches!(f.heap.free_ptr(&mut freer, ptr), Err(Error::Busy { .. })),
        "another transaction freed the block a pending set writes"
    );
    writer.end(CommitMode::Flush).unwrap();
    assert_eq!(f.heap.get(ptr).unwrap(), 2);
    f.heap.free_ptr(&mut freer, ptr).unwrap();
    freer.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
}

/// A free is checked at the call and, when no heap call has changed the heap since, made at
/// the commit by that check's plan. Here another transaction allocates the block's free
/// neighbour in between: the commit must plan again and free the block alone (the stale
/// plan would merge it with the now allocated neighbour).
#[test]
fn a_free_checked_before_its_free_neighbour_was_allocated_is_planned_again_at_commit() {
    let f = Fixture::new(layout(54, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // Carved from the high end: blocks[0] > blocks[1] > blocks[2] > blocks[3].
    let blocks: Vec<usize> = (0..4)
        .map(|_| f.heap.malloc(&mut tx, 100).unwrap())
        .collect();
    tx.end(CommitMode::Flush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, blocks[1]).unwrap();
    tx.end(CommitMode::Flush).unwrap();

    // Checked now: its right neighbour (blocks[1]) is free, to merge with.
    let mut first = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut first, blocks[2]).unwrap();
    let mut second = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(f.heap.malloc(&mut second, 100).unwrap(), blocks[1]);
    second.end(CommitMode::Flush).unwrap();
    first.end(CommitMode::Flush).unwrap();

    let report = f.heap.check();
    assert!(report.is_ok(), "{report}");
    let s = f.heap.statistics();
    assert_eq!(
        s.allocated_bytes,
        3 * 2 * 64,
        "blocks 0, 1 and 3 are allocated"
    );
    assert_eq!(f.heap.usable_size(blocks[1]).unwrap(), 2 * 64 - 16);
    f.assert_consistent();
}

/// A transaction that allocates and frees in two heaps carries one hook per heap: its commit
/// makes both heaps' frees, and its abort frees both heaps' allocations and forgets both
/// heaps' frees.
#[test]
fn a_transaction_using_two_heaps_commits_and_aborts_in_both() {
    use rvm::device::{CrashDevice, DeviceRef};
    use std::sync::Arc;

    let f = Fixture::new(layout(55, 64 << 10, 8, 64));
    let layout2 = layout(56, 64 << 10, 8, 64);
    let data2 = Arc::new(CrashDevice::new("data2", f.controller.clone(), Vec::new()));
    // SAFETY: a crash device lends no descriptor to map (it is read into anonymous memory).
    unsafe {
        rds::create_heap_segment_on(
            &f.rvm,
            data2.clone() as DeviceRef,
            layout2.segment_length_min(),
            &layout2,
        )
    }
    .unwrap();
    // SAFETY: as above.
    let seg2 = unsafe { f.rvm.map_device(data2.clone(), rvm::MapOptions::default()) }.unwrap();
    let heap2 = Heap::load(&seg2).unwrap();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = heap2.malloc(&mut tx, 200).unwrap();
    tx.end(CommitMode::Flush).unwrap();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    heap2.free(&mut tx, b).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    let c = heap2.malloc(&mut tx, 300).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(f.heap.statistics().allocated_bytes, 0);
    assert_eq!(
        heap2.statistics().allocated_bytes,
        5 * 64,
        "c: 316 bytes, 5 chunks"
    );

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let d = f.heap.malloc(&mut tx, 100).unwrap();
    heap2.free(&mut tx, c).unwrap();
    assert_eq!(f.heap.statistics().allocated_bytes, 2 * 64);
    tx.abort().unwrap();
    assert!(
        f.heap.usable_size(d).is_err(),
        "d is freed again by the abort"
    );
    assert_eq!(f.heap.statistics().allocated_bytes, 0);
    assert_eq!(
        heap2.usable_size(c).unwrap(),
        5 * 64 - 16,
        "c's free is forgotten"
    );
    assert!(f.heap.check().is_ok());
    assert!(heap2.check().is_ok());
    drop(heap2);
    drop(seg2);
}

/// The active-transaction count is derived (begun minus committed minus aborted), and heap
/// calls commit records of their own without beginning a transaction: those must not be
/// taken for the end of a caller's transaction.
#[test]
fn heap_calls_records_left_the_active_transaction_count_right() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let active = || f.rvm.query().active_transactions;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut blocks = Vec::new();
    for size in [100, 1, 5000, 64, 300] {
        blocks.push(f.heap.malloc(&mut tx, size).unwrap());
    }
    let records_before = f.rvm.statistics().no_flush_commits + f.rvm.statistics().flush_commits;
    assert!(records_before > 0, "the heap committed records of its own");
    assert_eq!(active(), 1);
    let mut other = f.rvm.begin(BeginMode::NoRestore).unwrap();
    for b in blocks.drain(..2) {
        f.heap.free(&mut other, b).unwrap();
    }
    assert_eq!(active(), 2);
    other.end(CommitMode::NoFlush).unwrap();
    assert_eq!(active(), 1);
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(active(), 0);
    f.assert_consistent();
}
