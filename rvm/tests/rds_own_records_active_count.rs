//! The active-transaction count (`query`) is derived: transactions begun minus commits minus
//! aborts. The RDS heap's own records (`queue_own_record`) are commits never begun, and a
//! refused one is an abort never begun: neither may move the count. These tests drive heap
//! calls the way the C interface's NULL-tid calls do (a transaction of their own around each
//! call) and check the count against the transactions really open.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::{BeginMode, CommitMode};

#[test]
fn null_tid_style_heap_calls_leave_no_transaction_active() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let active = || f.rvm.query().active_transactions;
    let commits = || {
        let s = f.rvm.statistics();
        s.flush_commits + s.no_flush_commits
    };
    let mut blocks = Vec::new();
    let mut transactions = 0;
    for size in [100, 1, 5000, 64, 300, 4096] {
        // As `rds_malloc(size, NULL, &err)`: a restore transaction of the call's own.
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        blocks.push(f.heap.malloc(&mut tx, size).unwrap());
        tx.end(CommitMode::NoFlush).unwrap();
        transactions += 1;
        assert_eq!(active(), 0, "after malloc({size})");
    }
    let blocks_before_prealloc = blocks.len();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.prealloc(&mut tx, 200, 3).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    transactions += 1;
    assert_eq!(active(), 0, "after prealloc");
    for b in blocks.drain(..) {
        // As `rds_free(b, NULL, &err)`.
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        f.heap.free(&mut tx, b).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
        transactions += 1;
        assert_eq!(active(), 0, "after free");
    }
    // The heap's own records were committed besides the transactions, one per malloc and
    // one for the prealloc at least (else this test would not exercise them).
    let own = commits() - transactions;
    assert!(
        own > blocks_before_prealloc as u64,
        "{own} records of the heap's own"
    );

    // One ordinary transaction open, with heap calls (own records) inside it: one active.
    let mut tx = f.rvm.begin(BeginMode::NoRestore).unwrap();
    assert_eq!(active(), 1);
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 200).unwrap();
    assert_eq!(active(), 1, "own records inside an open transaction");
    tx.write(a, &7u64).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    assert_eq!(active(), 1);
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(active(), 0);
    assert_eq!(f.rvm.statistics().aborts, 0);
    f.assert_consistent();
}

/// A heap call whose own record is refused (too big for the log) is counted as an abort and
/// leaves the active count as it was: the caller's transaction is still the only one.
#[test]
fn a_refused_own_record_leaves_the_active_count_alone() {
    let f = Fixture::with_log(layout(2, 4 << 20, 80, 64), 1, 64 << 10);
    let active = || f.rvm.query().active_transactions;
    let before = f.rvm.statistics();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(active(), 1);
    // Thousands of blocks carved in one call: its record cannot fit a 64 KiB log.
    let e = f.heap.prealloc(&mut tx, 64, 20_000).unwrap_err();
    assert_eq!(e.code_name(), "RVM_ETOO_BIG", "{e}");
    let after = f.rvm.statistics();
    assert_eq!(after.aborts, before.aborts + 1, "the refusal is an abort");
    assert_eq!(
        after.no_restore_transactions,
        before.no_restore_transactions + 1,
        "of a no-restore record"
    );
    assert_eq!(
        after.flush_commits + after.no_flush_commits,
        before.flush_commits + before.no_flush_commits,
        "nothing was committed"
    );
    assert_eq!(
        active(),
        1,
        "the caller's transaction is still the only one open"
    );
    // The heap still works in the same transaction, and the count follows it.
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    assert_eq!(active(), 1);
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(active(), 0);
    assert!(f.heap.usable_size(a).unwrap() >= 100);

    // The same refusal by a NULL-tid style call, aborted afterwards as the C interface does.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert!(f.heap.prealloc(&mut tx, 64, 20_000).is_err());
    tx.abort().unwrap();
    assert_eq!(active(), 0);
    assert_eq!(f.rvm.statistics().aborts, before.aborts + 3);
    f.assert_consistent();
}
