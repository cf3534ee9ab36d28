//! A commit refused after the heap has made its frees in it (the record is too big for the
//! log): the heap's words get their old values back in either mode (the old values the
//! heap's write log gave the transaction, `Transaction::declare_written`), the block stays
//! allocated, and in restore mode every byte the caller wrote is restored too.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::{BeginMode, CommitMode};

const LOG_AREA: u64 = 64 << 10;
const MID_BYTES: usize = 200;
const BIG_WRITE: usize = 100 << 10;

fn refused_free_puts_the_heap_back(test: u64, mode: BeginMode, isolation: bool) {
    let layout = layout(test, 1 << 20, 80, 64);
    // With isolation (range locks) the heap declares its runs one by one.
    let f = Fixture::with_options(layout, 1, LOG_AREA, |o| o.isolation(isolation));
    let (rvm, heap) = (&f.rvm, &f.heap);
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let big = heap.malloc(&mut tx, 128 << 10).unwrap();
    let left = heap.malloc(&mut tx, MID_BYTES).unwrap();
    let mid = heap.malloc(&mut tx, MID_BYTES).unwrap();
    let right = heap.malloc(&mut tx, MID_BYTES).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // Free neighbours on both sides of `mid` (blocks are carved from the high end, so these
    // three are adjacent): its free merges with both, touching lists, links and tags.
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    heap.free(&mut tx, left).unwrap();
    heap.free(&mut tx, right).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    let before = f.heap_bytes();
    let stats_before = heap.statistics();

    let mut tx = rvm.begin(mode).unwrap();
    // The caller writes into the block it frees (the bytes that become its links) and more
    // than the log can hold elsewhere.
    tx.fill(mid, MID_BYTES, 0x11).unwrap();
    tx.fill(big, BIG_WRITE, 0x22).unwrap();
    heap.free(&mut tx, mid).unwrap();
    let err = tx.end(CommitMode::Flush).unwrap_err();
    assert!(matches!(err, rvm::Error::TooBig { .. }), "{err:?}");

    f.assert_consistent();
    assert_eq!(heap.statistics(), stats_before);
    assert!(heap.usable_size(mid).unwrap() >= MID_BYTES);
    let after = f.heap_bytes();
    let base = f.layout.start_address as usize;
    match mode {
        BeginMode::Restore => assert!(after == before, "restore mode: every byte back"),
        BeginMode::NoRestore => {
            // The caller's bytes stay as written; every other byte is as before.
            let written = |a: usize| {
                (mid..mid + MID_BYTES).contains(&a) || (big..big + BIG_WRITE).contains(&a)
            };
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                let at = base + i;
                if (mid..mid + MID_BYTES).contains(&at) {
                    assert_eq!(*a, 0x11, "caller's byte at {at:#x}");
                } else if written(at) {
                    assert_eq!(*a, 0x22, "caller's byte at {at:#x}");
                } else {
                    assert_eq!(a, b, "heap byte at {at:#x} not put back");
                }
            }
        }
    }

    // The block can be freed again, and then it is.
    let mut tx = rvm.begin(mode).unwrap();
    heap.free(&mut tx, mid).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    assert!(heap.usable_size(mid).is_err());
    let stats = heap.statistics();
    assert_eq!(stats.free_count, stats_before.free_count + 1);
    assert_eq!(
        stats.coalesce_count,
        stats_before.coalesce_count + 2,
        "merged both sides"
    );
}

#[test]
fn a_refused_commit_puts_back_its_frees_and_the_callers_bytes_in_restore_mode() {
    refused_free_puts_the_heap_back(1, BeginMode::Restore, false);
}

#[test]
fn a_refused_commit_puts_back_its_frees_in_no_restore_mode() {
    refused_free_puts_the_heap_back(2, BeginMode::NoRestore, false);
}

#[test]
fn a_refused_commit_puts_back_its_frees_under_isolation() {
    refused_free_puts_the_heap_back(3, BeginMode::Restore, true);
    refused_free_puts_the_heap_back(4, BeginMode::NoRestore, true);
}
