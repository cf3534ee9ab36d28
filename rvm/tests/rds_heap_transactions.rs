//! The RDS heap under several transactions: no-restore and several open transactions of one
//! thread, threads allocating at once, `set` holding the heap, a free planned again at commit,
//! one transaction using two heaps, and the active-transaction count.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::rds::{self, Error, Heap};
use rvm::{BeginMode, CommitMode};

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
