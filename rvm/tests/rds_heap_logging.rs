//! What the RDS heap's common operations write to the log: few ranges per call.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::{BeginMode, CommitMode};

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
