//! Ending and aborting a transaction where it lies (`Transaction::end_in_place`,
//! `abort_in_place`, `Rvm::begin_in`): the transaction is finished afterwards, later calls are
//! refused without touching memory, and dropping it does nothing more.

use std::mem::MaybeUninit;
use std::path::PathBuf;

use rvm::segment::{self, CreateOptions};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm};

mod support;
use support::Dir;

/// The address recorded for segments these tests map anywhere (a header needs a valid one).
const ANYWHERE: u64 = 0x1000_0000_0000;

fn make(dir: &Dir, area: u64) -> (PathBuf, PathBuf) {
    let (log, data) = (dir.path("log"), dir.path("data"));
    Rvm::create_log(&log, area).unwrap();
    let header = support::one_region_layout(8192, ANYWHERE);
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    (log, data)
}

fn open(dir: &Dir) -> (Rvm, rvm::Segment, PathBuf) {
    let (log, data) = make(dir, 1 << 20);
    let (rvm, seg) = reopen(&log, &data);
    (rvm, seg, data)
}

/// Open the log and map the segment.
fn reopen(log: &PathBuf, data: &PathBuf) -> (Rvm, rvm::Segment) {
    let rvm = Rvm::open(log, Options::default().background_recovery(false)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(data, MapOptions::anywhere()) }.unwrap();
    (rvm, seg)
}

/// Declare more than a 64 KiB log holds per transaction (each range adds a header): 2,048
/// two-byte writes of `first + i`.
fn write_too_much(tx: &mut rvm::Transaction<'_>, base: usize, first: u16) {
    for i in 0..2048 {
        tx.write(base + i * 4, &(first + i as u16)).unwrap();
    }
}

/// Every call that would touch memory or the log after the end is refused with
/// `TransactionEnded`, and none changes the bytes at `base`.
fn assert_refused_after_finish(tx: &mut rvm::Transaction<'_>, rvm: &Rvm, base: usize) {
    let before: [u8; 16] = rvm.read(base).unwrap();
    assert!(tx.is_finished());
    assert!(matches!(
        tx.set_range(base, 8),
        Err(Error::TransactionEnded)
    ));
    assert!(matches!(
        tx.modify_bytes(base, &[0xee; 8]),
        Err(Error::TransactionEnded)
    ));
    assert!(matches!(
        tx.write(base, &u64::MAX),
        Err(Error::TransactionEnded)
    ));
    assert!(matches!(
        tx.fill(base, 16, 0xdd),
        Err(Error::TransactionEnded)
    ));
    assert!(matches!(
        tx.end_in_place(CommitMode::Flush),
        Err(Error::TransactionEnded)
    ));
    assert!(matches!(tx.abort_in_place(), Err(Error::TransactionEnded)));
    assert_eq!(rvm.read::<[u8; 16]>(base).unwrap(), before);
    assert_eq!(Error::TransactionEnded.code_name(), "RVM_ETID");
}

#[test]
fn calls_after_end_in_place_are_refused_and_drop_does_not_abort() {
    let d = Dir::new("end");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base, &41u64).unwrap();
    assert!(!tx.is_finished());
    tx.end_in_place(CommitMode::Flush).unwrap();
    assert_refused_after_finish(&mut tx, &rvm, base);
    let aborts = rvm.statistics().aborts;
    drop(tx);
    // Dropping a finished transaction neither restores nor counts an abort.
    assert_eq!(rvm.read::<u64>(base).unwrap(), 41);
    assert_eq!(rvm.statistics().aborts, aborts);
    assert_eq!(rvm.statistics().flush_commits, 1);
}

#[test]
fn abort_in_place_restores_and_the_transaction_stays_finished() {
    let d = Dir::new("abort");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base, &7u64).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();

    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base, &1000u64).unwrap();
    tx.fill(base + 8, 8, 0xff).unwrap();
    tx.abort_in_place().unwrap();
    assert_eq!(rvm.read::<[u64; 2]>(base).unwrap(), [7, 0]);
    assert_refused_after_finish(&mut tx, &rvm, base);
    drop(tx);
    assert_eq!(rvm.statistics().aborts, 1);
    assert_eq!(rvm.read::<[u64; 2]>(base).unwrap(), [7, 0]);
}

#[test]
fn a_finished_transaction_pins_nothing_and_never_touches_an_unmapped_region() {
    let d = Dir::new("unmap");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base, &3u64).unwrap();
    tx.end_in_place(CommitMode::NoFlush).unwrap();
    // Still alive, but finished: the region is not pinned any more.
    rvm.unmap(&seg).unwrap();
    // A call that would save old values from the (now unmapped) range is refused before it
    // reads anything.
    assert!(matches!(
        tx.set_range(base, 8),
        Err(Error::TransactionEnded)
    ));
    drop(tx);
}

#[test]
fn a_refused_end_in_place_rolls_back_and_finishes() {
    let d = Dir::new("toobig");
    let (log, data) = make(&d, 64 * 1024);
    let (rvm, seg) = reopen(&log, &data);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    write_too_much(&mut tx, base, 0);
    assert!(matches!(
        tx.end_in_place(CommitMode::Flush),
        Err(Error::TooBig { .. })
    ));
    assert_eq!(rvm.read::<[u8; 16]>(base).unwrap(), [0; 16]);
    assert_refused_after_finish(&mut tx, &rvm, base);
    drop(tx);
    assert_eq!(rvm.statistics().aborts, 1);
}

#[test]
fn begin_in_writes_an_open_transaction_into_the_callers_place() {
    let d = Dir::new("begin_in");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut place = MaybeUninit::uninit();
    let tx = rvm.begin_in(BeginMode::Restore, &mut place).unwrap();
    tx.write(base, &5u64).unwrap();
    tx.end_in_place(CommitMode::NoFlush).unwrap();
    assert_eq!(rvm.read::<u64>(base).unwrap(), 5);
    // SAFETY: `begin_in` succeeded, so `place` holds the (finished) transaction; it is
    // dropped once.
    unsafe { place.assume_init_drop() };

    // Dropping an open transaction written by `begin_in` aborts it, as for `begin`.
    let mut place = MaybeUninit::uninit();
    let tx = rvm.begin_in(BeginMode::Restore, &mut place).unwrap();
    tx.write(base, &6u64).unwrap();
    // SAFETY: as above.
    unsafe { place.assume_init_drop() };
    assert_eq!(rvm.read::<u64>(base).unwrap(), 5);
    assert_eq!(rvm.statistics().aborts, 1);
}

#[test]
fn a_guard_attached_after_the_end_is_dropped_at_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let d = Dir::new("attach");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let before = Arc::new(AtomicBool::new(false));
    tx.attach(Box::new(Flag(before.clone())));
    tx.write(base, &1u64).unwrap();
    assert!(!before.load(Ordering::SeqCst));
    tx.end_in_place(CommitMode::NoFlush).unwrap();
    // Released by the end, not by the drop.
    assert!(before.load(Ordering::SeqCst));
    let after = Arc::new(AtomicBool::new(false));
    tx.attach(Box::new(Flag(after.clone())));
    assert!(after.load(Ordering::SeqCst));
    drop(tx);
}

#[test]
fn restart_begins_a_new_transaction_in_a_finished_ones_place() {
    let d = Dir::new("restart");
    let (rvm, seg, _) = open(&d);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(base, &1u64).unwrap();
    let first = tx.number();

    // An open transaction is not restarted, and stays usable.
    assert!(matches!(
        tx.restart(BeginMode::Restore),
        Err(Error::TransactionOpen)
    ));
    assert!(!tx.is_finished());
    assert_eq!(tx.mode(), BeginMode::NoRestore);
    tx.write(base + 8, &2u64).unwrap();
    tx.end_in_place(CommitMode::NoFlush).unwrap();
    assert_eq!(rvm.query().active_transactions, 0);

    // Restarted: open again, in the new mode, numbered as a new begin, counted as active.
    tx.restart(BeginMode::Restore).unwrap();
    assert!(!tx.is_finished());
    assert_eq!(tx.mode(), BeginMode::Restore);
    assert!(tx.number() > first);
    assert_eq!(rvm.query().active_transactions, 1);
    tx.write(base, &10u64).unwrap();
    // Restore mode: an abort puts back what the first transaction committed.
    tx.abort_in_place().unwrap();
    assert_eq!(rvm.read::<[u64; 2]>(base).unwrap(), [1, 2]);
    assert_eq!(rvm.query().active_transactions, 0);

    // After an abort, too; the new transaction commits only its own ranges.
    tx.restart(BeginMode::Restore).unwrap();
    tx.write(base + 16, &3u64).unwrap();
    tx.end_in_place(CommitMode::Flush).unwrap();
    assert_eq!(rvm.read::<[u64; 3]>(base).unwrap(), [1, 2, 3]);
    let stats = rvm.statistics();
    assert_eq!((stats.aborts, stats.flush_commits), (1, 1));
    drop(tx);
    assert_eq!(rvm.statistics().aborts, 1);
}

#[test]
fn restart_after_a_refused_end_forgets_the_refused_ranges() {
    let d = Dir::new("restart_toobig");
    let (log, data) = make(&d, 64 * 1024);
    let (rvm, seg) = reopen(&log, &data);
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    write_too_much(&mut tx, base, 1);
    assert!(matches!(
        tx.end_in_place(CommitMode::Flush),
        Err(Error::TooBig { .. })
    ));
    // Restarted, the transaction holds none of the refused ranges: one small write fits.
    tx.restart(BeginMode::Restore).unwrap();
    tx.write(base + 4, &0xabcdu16).unwrap();
    tx.end_in_place(CommitMode::Flush).unwrap();
    let committed: [u16; 4] = rvm.read(base).unwrap();
    assert_eq!(committed, [0, 0, 0xabcd, 0]);
    drop(tx);
    drop(seg);
    rvm.close().unwrap();
    // Recovery replays exactly that.
    let (rvm, seg) = reopen(&log, &data);
    let base = seg.regions()[0].address;
    assert_eq!(rvm.read::<[u16; 4]>(base).unwrap(), [0, 0, 0xabcd, 0]);
}
