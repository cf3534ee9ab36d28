//! Several open transactions allocating and freeing in one heap (issue 11, "the heap when
//! several transactions allocate"): every interleaving of two transactions' small programs,
//! random programs of three, the classic K11 case, several open transactions of one thread,
//! a thread whose malloc must not wait for another thread's open transaction, and crashes at
//! every point of an interleaving.
//!
//! A model keeps the rule the heap promises: a malloc is allocated at once and freed again if
//! its transaction aborts; a free is checked at once and made when its transaction commits
//! (refused if another open transaction frees the block already); an aborted allocator's
//! block is no longer freed by another transaction's commit. After every step the heap must
//! check clean, hold exactly the model's allocated blocks, and every allocated block must
//! still hold the bytes its transaction wrote.
//!
//! After a crash (unsynced writes dropped) the heap must check clean and hold exactly the
//! blocks of the last durable committed state, plus blocks *leaked*: allocated by a
//! transaction whose commit was not durable (an allocation is committed at once in the heap's
//! own transaction, so a crash before the caller's commit leaks it, as in the classic
//! library). The tests count the leaked blocks and print the count.

mod rds_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use rds_support::{layout, pattern, Fixture};
use rvm::device::Tear;
use rvm::rds::Error;
use rvm::{BeginMode, CommitMode, Transaction};

/// One step of one transaction's program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Allocate this many bytes and fill them.
    Malloc(usize),
    /// Free this transaction's last allocation.
    FreeOwn,
    /// Free the last allocation of the next transaction (index + 1, wrapping).
    FreeNext,
    /// Free the first block allocated before the transactions began (shared by all).
    FreeBase,
    /// Commit, with flush or not.
    Commit(bool),
    Abort,
}

/// (transaction index, step) in the order they run.
type Script = Vec<(usize, Act)>;

/// The heap as the rule says it must be.
#[derive(Default, Clone)]
struct Model {
    /// Allocated block (data address) -> size asked for.
    allocated: BTreeMap<usize, usize>,
    /// Block -> open transaction that allocated it (freed again if it aborts).
    allocated_by: HashMap<usize, usize>,
    /// Block -> open transaction that frees it at its commit.
    freed_by: HashMap<usize, usize>,
    /// Per transaction: its allocations and frees so far, its last allocation, ended.
    fresh: Vec<Vec<usize>>,
    frees: Vec<Vec<usize>>,
    last: Vec<Option<usize>>,
    ended: Vec<bool>,
    /// The committed state now, and as of the last flush commit.
    committed: BTreeMap<usize, usize>,
    durable: BTreeMap<usize, usize>,
    /// Transactions committed since the last flush commit.
    committed_since_flush: Vec<usize>,
    /// (block, transaction) for every allocation whose transaction has not committed
    /// durably: the blocks a crash may leak.
    leakable: BTreeSet<(usize, usize)>,
    /// Blocks allocated before the transactions began.
    base: Vec<usize>,
}

impl Model {
    fn new(transactions: usize, base: &BTreeMap<usize, usize>) -> Model {
        Model {
            allocated: base.clone(),
            fresh: vec![Vec::new(); transactions],
            frees: vec![Vec::new(); transactions],
            last: vec![None; transactions],
            ended: vec![false; transactions],
            committed: base.clone(),
            durable: base.clone(),
            base: base.keys().copied().collect(),
            ..Model::default()
        }
    }

    fn may_leak(&self, block: usize) -> bool {
        self.leakable
            .range((block, 0)..=(block, usize::MAX))
            .next()
            .is_some()
    }

    /// The block a free step names, if any.
    fn target(&self, t: usize, act: Act) -> Option<usize> {
        match act {
            Act::FreeOwn => self.last[t],
            Act::FreeNext => self.last[(t + 1) % self.last.len()],
            Act::FreeBase => self.base.first().copied(),
            _ => None,
        }
    }

    fn commit(&mut self, t: usize, flush: bool) {
        for a in std::mem::take(&mut self.frees[t]) {
            if self.freed_by.get(&a) != Some(&t) {
                continue;
            }
            match self.allocated_by.get(&a).copied() {
                // Another open transaction's allocation: the free is handed over to it.
                Some(u) if u != t => {
                    self.freed_by.insert(a, u);
                    self.frees[u].push(a);
                }
                _ => {
                    self.freed_by.remove(&a);
                    self.allocated_by.remove(&a);
                    self.allocated.remove(&a);
                    self.committed.remove(&a);
                }
            }
        }
        for a in std::mem::take(&mut self.fresh[t]) {
            if self.allocated_by.get(&a) == Some(&t) {
                self.allocated_by.remove(&a);
                self.committed.insert(a, self.allocated[&a]);
            }
        }
        self.committed_since_flush.push(t);
        if flush {
            self.durable = self.committed.clone();
            for u in std::mem::take(&mut self.committed_since_flush) {
                self.leakable.retain(|(_, by)| *by != u);
            }
        }
        self.ended[t] = true;
    }

    fn abort(&mut self, t: usize) {
        for a in std::mem::take(&mut self.frees[t]) {
            if self.freed_by.get(&a) == Some(&t) {
                self.freed_by.remove(&a);
            }
        }
        for a in std::mem::take(&mut self.fresh[t]) {
            if self.allocated_by.get(&a) == Some(&t) {
                self.allocated_by.remove(&a);
                self.freed_by.remove(&a);
                self.allocated.remove(&a);
            }
        }
        self.ended[t] = true;
    }
}

fn allocated_in_heap(f: &Fixture) -> BTreeSet<usize> {
    f.allocated_chunks().into_keys().collect()
}

fn holds_pattern(f: &Fixture, address: usize, size: usize) -> bool {
    let mut buf = vec![0u8; size];
    f.segment.read_bytes(address, &mut buf).unwrap();
    buf.iter().all(|b| *b == pattern(address))
}

fn verify(f: &Fixture, m: &Model, at: &str) {
    let report = f.heap.check();
    assert!(report.is_ok(), "{at}: heap check:\n{report}");
    let held = allocated_in_heap(f);
    let expected: BTreeSet<usize> = m.allocated.keys().copied().collect();
    assert_eq!(held, expected, "{at}: allocated blocks");
    for (a, size) in &m.allocated {
        assert!(
            holds_pattern(f, *a, *size),
            "{at}: block {a:#x} overwritten"
        );
    }
}

/// Allocate `count` blocks and commit them with flush: the state the scripts start from.
/// The free space is dirtied first, so a block handed out holds stale bytes that differ from
/// any list link (an abort that put them back over a free block would be seen).
fn base_blocks(f: &Fixture, count: usize) -> BTreeMap<usize, usize> {
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let all = f.heap.maxblock();
    let a = f.heap.malloc(&mut tx, all).unwrap();
    tx.fill(a, all, 0xee).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut blocks = BTreeMap::new();
    for i in 0..count {
        let size = 40 + 24 * i;
        let a = f.heap.malloc(&mut tx, size).unwrap();
        tx.fill(a, size, pattern(a)).unwrap();
        blocks.insert(a, size);
    }
    tx.end(CommitMode::Flush).unwrap();
    blocks
}

/// Run `script` with `transactions` transactions from `base`, checking after every step;
/// stop before step `crash_at` (then the devices go down and the open transactions are
/// dropped, as in a power failure). Returns the model as of the end (or the crash).
fn run(
    f: &Fixture,
    transactions: usize,
    base: &BTreeMap<usize, usize>,
    script: &[(usize, Act)],
    crash_at: Option<usize>,
) -> Model {
    let mut m = Model::new(transactions, base);
    let mut txs: Vec<Option<Transaction<'_>>> = (0..transactions)
        .map(|i| {
            // Alternate the modes: nothing in the heap depends on the caller's undo.
            let mode = if i % 2 == 0 {
                BeginMode::Restore
            } else {
                BeginMode::NoRestore
            };
            Some(f.rvm.begin(mode).unwrap())
        })
        .collect();
    let ids: Vec<u64> = txs.iter().map(|t| t.as_ref().unwrap().id()).collect();
    for (step, &(t, act)) in script.iter().enumerate() {
        if crash_at == Some(step) {
            f.controller.crash_now();
            drop(txs);
            return m;
        }
        if m.ended[t] {
            continue;
        }
        let at = format!("step {step} ({t}, {act:?}) of {script:?}");
        match act {
            Act::Malloc(size) => {
                let tx = txs[t].as_mut().unwrap();
                let a = f.heap.malloc(tx, size).unwrap();
                tx.fill(a, size, pattern(a)).unwrap();
                assert!(m.allocated.insert(a, size).is_none(), "{at}: {a:#x} twice");
                m.allocated_by.insert(a, t);
                m.fresh[t].push(a);
                m.last[t] = Some(a);
                m.leakable.insert((a, t));
            }
            Act::FreeOwn | Act::FreeNext | Act::FreeBase => {
                let Some(a) = m.target(t, act) else { continue };
                let result = f.heap.free(txs[t].as_mut().unwrap(), a);
                match m.freed_by.get(&a) {
                    Some(&u) if u == t => {
                        assert!(
                            matches!(result, Err(Error::DoubleFree { .. })),
                            "{at}: {result:?}"
                        )
                    }
                    Some(&u) => assert!(
                        matches!(result, Err(Error::FreePending { transaction, .. }) if transaction == ids[u]),
                        "{at}: {result:?}"
                    ),
                    None if !m.allocated.contains_key(&a) => assert!(
                        matches!(
                            result,
                            Err(Error::DoubleFree { .. } | Error::NotFromHeap { .. })
                        ),
                        "{at}: {result:?}"
                    ),
                    None => {
                        result.unwrap_or_else(|e| panic!("{at}: {e}"));
                        m.freed_by.insert(a, t);
                        m.frees[t].push(a);
                    }
                }
            }
            Act::Commit(flush) => {
                let mode = if flush {
                    CommitMode::Flush
                } else {
                    CommitMode::NoFlush
                };
                txs[t].take().unwrap().end(mode).unwrap();
                m.commit(t, flush);
            }
            Act::Abort => {
                txs[t].take().unwrap().abort().unwrap();
                m.abort(t);
            }
        }
        verify(f, &m, &at);
    }
    if crash_at == Some(script.len()) {
        f.controller.crash_now();
        drop(txs);
        return m;
    }
    for (t, tx) in txs.iter_mut().enumerate() {
        if let Some(tx) = tx.take() {
            tx.abort().unwrap();
            m.abort(t);
        }
    }
    verify(f, &m, &format!("after {script:?}"));
    m
}

/// Every interleaving of the programs (each program's steps keep their order).
fn interleavings(programs: &[Vec<Act>]) -> Vec<Script> {
    fn go(programs: &[Vec<Act>], next: &mut Vec<usize>, acc: &mut Script, out: &mut Vec<Script>) {
        let mut any = false;
        for t in 0..programs.len() {
            if next[t] < programs[t].len() {
                any = true;
                acc.push((t, programs[t][next[t]]));
                next[t] += 1;
                go(programs, next, acc, out);
                next[t] -= 1;
                acc.pop();
            }
        }
        if !any {
            out.push(acc.clone());
        }
    }
    let mut out = Vec::new();
    go(
        programs,
        &mut vec![0; programs.len()],
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// Free every allocated block (so the next script starts from a near-empty heap).
fn clear(f: &Fixture) {
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    for a in allocated_in_heap(f) {
        f.heap.free(&mut tx, a).unwrap();
    }
    tx.end(CommitMode::NoFlush).unwrap();
    assert_eq!(f.heap.statistics().allocated_bytes, 0);
}

/// After a crash: recover, check, and compare with the durable state; returns the number of
/// leaked blocks (all of them allocated by transactions that had not committed durably).
fn recover_and_verify(f: Fixture, m: &Model, at: &str) -> (Fixture, usize) {
    let f = f.crash_and_recover(Tear::DropAll);
    let report = f.heap.check();
    assert!(report.is_ok(), "{at}: heap check after recovery:\n{report}");
    let held = allocated_in_heap(&f);
    for (a, size) in &m.durable {
        assert!(held.contains(a), "{at}: committed block {a:#x} lost");
        assert!(
            holds_pattern(&f, *a, *size),
            "{at}: committed block {a:#x} overwritten"
        );
    }
    let leaked: Vec<usize> = held
        .iter()
        .copied()
        .filter(|a| !m.durable.contains_key(a))
        .collect();
    for a in &leaked {
        assert!(
            m.may_leak(*a),
            "{at}: block {a:#x} is allocated after recovery, but neither committed nor \
             allocated by a transaction that had not committed (a committed free was lost?)"
        );
    }
    (f, leaked.len())
}

/// The programs of one transaction tried against each other.
fn programs_of_two() -> Vec<Vec<Act>> {
    let mut out = Vec::new();
    for free in [Act::FreeOwn, Act::FreeNext, Act::FreeBase] {
        for end in [Act::Commit(true), Act::Commit(false), Act::Abort] {
            out.push(vec![Act::Malloc(100), free, end]);
        }
    }
    out
}

/// Every interleaving of every pair of small programs, each step checked; then the same
/// heap is cleared for the next.
#[test]
fn every_interleaving_of_two_transactions_keeps_the_heap_consistent() {
    let f = Fixture::with_log(layout(120, 64 << 10, 8, 32), 1, 1 << 20);
    let programs = programs_of_two();
    let mut runs = 0;
    for p in &programs {
        for q in &programs {
            for script in interleavings(&[p.clone(), q.clone()]) {
                let base = base_blocks(&f, 2);
                run(&f, 2, &base, &script, None);
                clear(&f);
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 81 * 20);
    f.assert_consistent();
}

/// Spec K11: A allocates, B allocates and commits, A aborts. The classic library puts A's
/// old heap metadata back and loses B's block; here B's block is intact and the heap clean.
#[test]
fn k11_an_abort_after_another_transaction_allocated_keeps_its_block() {
    let f = Fixture::new(layout(121, 64 << 10, 8, 64));
    let mut a = f.rvm.begin(BeginMode::Restore).unwrap();
    let x = f.heap.malloc(&mut a, 200).unwrap();
    let mut b = f.rvm.begin(BeginMode::Restore).unwrap();
    let y = f.heap.malloc(&mut b, 200).unwrap();
    b.fill(y, 200, 0xbb).unwrap();
    b.end(CommitMode::Flush).unwrap();
    a.abort().unwrap();
    f.assert_consistent();
    assert!(f.heap.usable_size(x).is_err(), "A's block is freed again");
    assert!(f.heap.usable_size(y).unwrap() >= 200);
    assert_eq!(f.rvm.read::<[u8; 8]>(y).unwrap(), [0xbb; 8]);
    // The same after a crash: B's block survives, A's is at worst leaked.
    let f = f.crash_and_recover(Tear::DropAll);
    f.assert_consistent();
    assert!(f.heap.usable_size(y).unwrap() >= 200);
    assert_eq!(f.rvm.read::<[u8; 8]>(y).unwrap(), [0xbb; 8]);
}

/// Three transactions of one thread open at once: none waits, none gets `Busy`, and frees of
/// another open transaction's allocation follow the rule both ways.
#[test]
fn several_open_transactions_of_one_thread_share_the_heap() {
    let f = Fixture::new(layout(122, 64 << 10, 8, 64));
    let mut t1 = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut t2 = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut t3 = f.rvm.begin(BeginMode::NoRestore).unwrap();
    let a = f.heap.malloc(&mut t1, 64).unwrap();
    let b = f.heap.malloc(&mut t2, 64).unwrap();
    let c = f.heap.malloc(&mut t3, 64).unwrap();
    // t2 frees t1's block, then t1 aborts: t1's abort frees it and cancels t2's free.
    f.heap.free(&mut t2, a).unwrap();
    t1.abort().unwrap();
    assert!(f.heap.usable_size(a).is_err());
    // t3 frees t2's block and commits first: t2 has written into the block, and its abort
    // would put those bytes back over a free block, so the free is handed over to t2, whose
    // abort frees the block (once).
    b_write(&f, &mut t2, b);
    f.heap.free(&mut t3, b).unwrap();
    t3.end(CommitMode::NoFlush).unwrap();
    assert!(
        f.heap.usable_size(b).is_ok(),
        "freed under its open allocator"
    );
    assert_eq!(f.heap.statistics().open_frees, 1);
    t2.abort().unwrap();
    assert!(f.heap.usable_size(b).is_err());
    assert!(f.heap.usable_size(c).is_ok());
    let s = f.heap.statistics();
    assert_eq!((s.open_allocations, s.open_frees), (0, 0));
    f.assert_consistent();
    // The same, the allocator committing: the free is made inside its commit.
    let mut t4 = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut t5 = f.rvm.begin(BeginMode::Restore).unwrap();
    let d = f.heap.malloc(&mut t4, 64).unwrap();
    b_write(&f, &mut t4, d);
    f.heap.free(&mut t5, d).unwrap();
    t5.end(CommitMode::NoFlush).unwrap();
    t4.end(CommitMode::Flush).unwrap();
    assert!(f.heap.usable_size(d).is_err());
    let s = f.heap.statistics();
    assert_eq!((s.open_allocations, s.open_frees), (0, 0));
    f.assert_consistent();
}

fn b_write(f: &Fixture, tx: &mut Transaction<'_>, block: usize) {
    tx.fill(block, 64, 0x5b).unwrap();
    assert_eq!(f.rvm.read::<u8>(block).unwrap(), 0x5b);
}

/// A thread allocates and frees while another thread's transaction is open (it allocated and
/// freed too): its calls return while that transaction is still open.
#[test]
fn a_malloc_does_not_wait_for_another_threads_open_transaction() {
    let f = Fixture::new(layout(123, 64 << 10, 8, 64));
    let (opened, open) = std::sync::mpsc::channel::<usize>();
    let (done, finished) = std::sync::mpsc::channel::<usize>();
    std::thread::scope(|s| {
        let f = &f;
        s.spawn(move || {
            let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
            let a = f.heap.malloc(&mut tx, 100).unwrap();
            opened.send(a).unwrap();
            // Stay open until the other thread's heap calls have returned.
            let theirs = finished.recv().unwrap();
            f.heap.free(&mut tx, theirs).unwrap_err();
            tx.end(CommitMode::Flush).unwrap();
        });
        let a = open.recv().unwrap();
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let b = f.heap.malloc(&mut tx, 100).unwrap();
        f.heap.free(&mut tx, b).unwrap();
        assert!(matches!(f.heap.free(&mut tx, a), Ok(())));
        tx.abort().unwrap();
        // Still open on the other thread: our calls returned without it.
        assert_eq!(f.heap.statistics().open_allocations, 1);
        done.send(b).unwrap();
    });
    f.assert_consistent();
}

/// Crash between any two steps of interleavings of two transactions (and after the last):
/// recovery gives the durable committed state plus leaked blocks of uncommitted transactions.
#[test]
fn crashes_between_any_two_steps_of_two_transactions() {
    let programs = [
        vec![Act::Malloc(100), Act::FreeBase, Act::Commit(true)],
        vec![Act::Malloc(60), Act::FreeNext, Act::Commit(false)],
        vec![Act::Malloc(80), Act::Malloc(30), Act::Abort],
        vec![Act::Malloc(50), Act::FreeOwn, Act::Commit(true)],
    ];
    let (mut runs, mut leaked) = (0, 0);
    for (i, p) in programs.iter().enumerate() {
        for q in &programs[i..] {
            for script in interleavings(&[p.clone(), q.clone()]) {
                for crash_at in 0..=script.len() {
                    let f = Fixture::with_log(layout(124, 64 << 10, 8, 32), 1, 256 << 10);
                    let base = base_blocks(&f, 2);
                    let m = run(&f, 2, &base, &script, Some(crash_at));
                    let at = format!("crash before step {crash_at} of {script:?}");
                    let (f, n) = recover_and_verify(f, &m, &at);
                    leaked += n;
                    runs += 1;
                    drop(f);
                }
            }
        }
    }
    println!("{runs} crashes; {leaked} blocks leaked by uncommitted transactions");
    assert!(
        leaked > 0,
        "no crash leaked a block: the leak path was not exercised"
    );
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (1usize..300).prop_map(Act::Malloc),
        2 => Just(Act::FreeOwn),
        2 => Just(Act::FreeNext),
        1 => Just(Act::FreeBase),
        1 => any::<bool>().prop_map(Act::Commit),
        1 => Just(Act::Abort),
    ]
}

fn script_of_three() -> impl Strategy<Value = Script> {
    proptest::collection::vec((0usize..3, act()), 1..24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random interleavings of three transactions' mallocs, frees, commits and aborts.
    #[test]
    fn three_transactions_interleaved_keep_the_heap_consistent(script in script_of_three()) {
        let f = Fixture::with_log(layout(125, 64 << 10, 8, 48), 1, 1 << 20);
        let base = base_blocks(&f, 3);
        run(&f, 3, &base, &script, None);
    }

    /// The same with a crash at a random point, then recovery.
    #[test]
    fn three_transactions_crash_anywhere(script in script_of_three(), at in any::<prop::sample::Index>()) {
        let f = Fixture::with_log(layout(126, 64 << 10, 8, 48), 1, 256 << 10);
        let base = base_blocks(&f, 3);
        let crash_at = at.index(script.len() + 1);
        let m = run(&f, 3, &base, &script, Some(crash_at));
        recover_and_verify(f, &m, &format!("crash before step {crash_at} of {script:?}"));
    }
}

/// A commit refused after its frees were made (the record is too big for the log) puts the
/// frees back before anybody else sees them, in either mode (in no-restore mode too: the
/// heap saves their old values itself), and its allocations are freed again.
#[test]
fn a_refused_commit_puts_its_frees_back() {
    for mode in [BeginMode::Restore, BeginMode::NoRestore] {
        let f = Fixture::with_log(layout(127, 256 << 10, 8, 64), 1, 64 << 10);
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let big = f.heap.malloc(&mut tx, 100 << 10).unwrap();
        let small = f.heap.malloc(&mut tx, 100).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let blocks_before = allocated_in_heap(&f);
        let stats_before = f.heap.statistics();

        let mut tx = f.rvm.begin(mode).unwrap();
        let fresh = f.heap.malloc(&mut tx, 300).unwrap();
        f.heap.free(&mut tx, small).unwrap();
        tx.fill(big, 100 << 10, 0x42).unwrap();
        let e = tx.end(CommitMode::Flush).unwrap_err();
        assert_eq!(e.code_name(), "RVM_ETOO_BIG", "{e}");
        f.assert_consistent();
        assert_eq!(allocated_in_heap(&f), blocks_before, "{mode:?}");
        assert!(f.heap.usable_size(small).is_ok() && f.heap.usable_size(fresh).is_err());
        let s = f.heap.statistics();
        assert_eq!(
            (s.allocated_bytes, s.open_allocations, s.open_frees),
            (stats_before.allocated_bytes, 0, 0)
        );
        // The heap is usable, and the free can be made by a commit that fits.
        let mut tx = f.rvm.begin(mode).unwrap();
        f.heap.free(&mut tx, small).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        assert!(f.heap.usable_size(small).is_err());
        f.assert_consistent();
        let f = f.crash_and_recover(Tear::DropAll);
        f.assert_consistent();
        assert!(f.heap.usable_size(small).is_err() && f.heap.usable_size(big).is_ok());
    }
}
