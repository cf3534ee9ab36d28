//! Functional tests of the RDS heap: allocation, coalescing and exact accounting, abort,
//! intention lists, prealloc, running out of room, and roots. Transactions and threads using
//! the heap are in `rds_heap_transactions.rs`, refused calls and damage in
//! `rds_heap_refusals.rs`, the image and device checkers in `rds_heap_checker.rs`, and what the
//! common operations log in `rds_heap_logging.rs`.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::device::Tear;
use rvm::rds::{BlockState, Error, IntentionList, PersistentPtr};
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
