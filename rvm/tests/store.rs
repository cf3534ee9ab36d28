//! `Store`: one-call open or create, refusals that leave nothing behind, growing, and
//! opening and closing without a change leaving the log byte for byte.

use std::path::{Path, PathBuf};

use rvm::rds::{Error, PersistentPtr};
use rvm::store::{Store, StoreOptions};
use rvm::typed::{PHashMap, PVec};
use rvm::{CommitMode, Options, Rvm};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvm-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Tests run as threads of one process: each maps its store at its own address.
fn options(test: u64) -> StoreOptions {
    StoreOptions::default()
        .start_address(0x2100_0000_0000 + test * 0x10_0000_0000)
        .heap_bytes(1 << 20)
        .log_bytes(1 << 20)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_store_is_created_once_and_reopened_with_its_data() {
    let dir = tempdir("reopen");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(1)) }.unwrap();
    assert!(store.created());
    let root = store.root::<PHashMap<u64, PVec<u64>>>().unwrap();
    assert!(root.get().unwrap().is_null(), "a new store's root is zero");
    let mut tx = store.begin().unwrap();
    let map = PHashMap::new(&mut tx, &store).unwrap();
    root.set(&mut tx, &map).unwrap();
    for k in 0..10u64 {
        let v = PVec::from_slice(&mut tx, &store, &[k, k * k]).unwrap();
        map.insert(&mut tx, &store, &k, &v).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    drop(root);
    store.close().unwrap();
    assert_eq!(names_in(&dir), ["data", "log"]);

    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(1)) }.unwrap();
    assert!(!store.created());
    let map = store
        .root::<PHashMap<u64, PVec<u64>>>()
        .unwrap()
        .get()
        .unwrap();
    assert_eq!(map.len(&store).unwrap(), 10);
    for k in 0..10u64 {
        let v = map.get(&store, &k).unwrap().unwrap();
        assert_eq!(v.to_vec(&store).unwrap(), [k, k * k]);
    }
    assert!(store.heaps()[0].check().is_ok());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every refusal happens before any file is created, or removes what it created.
#[test]
fn a_refused_layout_leaves_nothing_behind() {
    let dir = tempdir("refused");
    let good = options(2);
    let mut cases: Vec<(&str, StoreOptions)> = Vec::new();
    let mut o = good.clone();
    o.layout.chunk_size = 7;
    cases.push(("chunk_size", o));
    cases.push(("heap_length", good.clone().heap_bytes(0)));
    cases.push(("start_address", good.clone().start_address(u64::MAX)));
    let mut o = good.clone();
    o.layout.static_length = 4096 * 1024 * 1024 * 1024;
    cases.push(("static_length", o));
    cases.push(("log size", good.clone().log_bytes(100)));
    // Addresses already mapped in this process (by another store).
    let other_dir = tempdir("refused-other");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let other = unsafe { Store::open_or_create(&other_dir, options(3)) }.unwrap();
    cases.push(("already mapped", options(3)));
    for (what, o) in cases {
        // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
        let e = unsafe { Store::open_or_create(&dir, o) }.unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
        assert!(
            names_in(&dir).is_empty(),
            "{what} left {:?}",
            names_in(&dir)
        );
    }
    drop(other);
    std::fs::remove_dir_all(&other_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_one_of_log_and_data_is_refused_and_left_alone() {
    let dir = tempdir("half");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    unsafe { Store::open_or_create(&dir, options(4)) }
        .unwrap()
        .close()
        .unwrap();
    let log = std::fs::read(dir.join("log")).unwrap();
    let data = std::fs::read(dir.join("data")).unwrap();
    std::fs::rename(dir.join("data"), dir.join("data.saved")).unwrap();
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let e = unsafe { Store::open_or_create(&dir, options(4)) }.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
    assert!(e.to_string().contains("refusing to guess"), "{e}");
    assert_eq!(std::fs::read(dir.join("log")).unwrap(), log);
    std::fs::rename(dir.join("data.saved"), dir.join("data")).unwrap();
    std::fs::rename(dir.join("log"), dir.join("log.saved")).unwrap();
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let e = unsafe { Store::open_or_create(&dir, options(4)) }.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), data);
    assert_eq!(names_in(&dir), ["data", "log.saved"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 12 item 3 (the library part): an instance opened on a cleanly closed log and closed
/// without a change used to rewrite the log's status slot on close (new sequence number,
/// other slot); a refused run then changed the log. Now nothing is written.
#[test]
fn open_and_close_without_a_change_leaves_the_log_byte_for_byte() {
    let dir = tempdir("unchanged");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(5)) }.unwrap();
    let mut tx = store.begin().unwrap();
    store.root::<u64>().unwrap().set(&mut tx, &9).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // Nothing left for recovery to apply (that would be a change).
    store.rvm().truncate().unwrap();
    store.close().unwrap();
    let log = std::fs::read(dir.join("log")).unwrap();
    let data = std::fs::read(dir.join("data")).unwrap();
    Rvm::open(dir.join("log"), Options::default())
        .unwrap()
        .close()
        .unwrap();
    assert!(
        std::fs::read(dir.join("log")).unwrap() == log,
        "Rvm open+close changed the log"
    );
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    unsafe { Store::open(&dir, options(5)) }
        .unwrap()
        .close()
        .unwrap();
    assert!(
        std::fs::read(dir.join("log")).unwrap() == log,
        "Store open+close changed the log"
    );
    // A data file that is not a segment is refused before the log is opened.
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let e = unsafe { Store::open_or_create_files(dir.join("log"), "/dev/zero", options(5)) }
        .unwrap_err();
    assert!(e.to_string().contains("/dev/zero"), "{e}");
    assert!(
        std::fs::read(dir.join("log")).unwrap() == log,
        "a refused open changed the log"
    );
    assert!(std::fs::read(dir.join("data")).unwrap() == data);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_store_grows_and_old_pointers_stay_valid() {
    let dir = tempdir("grow");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(6)) }.unwrap();
    let root = store.root::<PVec<PersistentPtr<[u64; 32]>>>().unwrap();
    let mut tx = store.begin().unwrap();
    let blocks = PVec::new(&mut tx, &store).unwrap();
    root.set(&mut tx, &blocks).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // Fill the 1 MiB heap with 256-byte blocks, one commit each few.
    let fill = |store: &Store, start: u64| -> Result<u64, Error> {
        let mut committed = start;
        loop {
            let mut n = committed;
            let mut tx = store.begin()?;
            for _ in 0..16 {
                let p = match PersistentPtr::alloc(&mut tx, store, &[n; 32]) {
                    Ok(p) => p,
                    Err(e) => {
                        tx.abort()?;
                        return match e {
                            Error::NoRoom { .. } => Ok(committed),
                            e => Err(e),
                        };
                    }
                };
                if let Err(e) = blocks.push(&mut tx, store, &p) {
                    tx.abort()?;
                    return match e {
                        Error::NoRoom { .. } => Ok(n),
                        e => Err(e),
                    };
                }
                n += 1;
            }
            tx.end(CommitMode::NoFlush)?;
            committed = n;
        }
    };
    let full = fill(&store, 0).unwrap();
    assert!(full > 1000, "{full} blocks in a 1 MiB heap");
    let first_heap = store.heaps()[0].address()..store.heaps()[0].address() + (1 << 20);
    let old: Vec<_> = blocks.to_vec(&store).unwrap();
    store.grow(4 << 20).unwrap();
    assert_eq!(store.heaps().len(), 2);
    let more = fill(&store, full).unwrap();
    assert!(
        more > full + 3 * 1000,
        "the new heap took {} blocks",
        more - full
    );
    let all = blocks.to_vec(&store).unwrap();
    assert!(all.iter().any(|p| !first_heap.contains(&p.address())));
    drop(root);
    store.close().unwrap();

    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(6)) }.unwrap();
    assert_eq!(store.heaps().len(), 2, "the added segment is mapped again");
    let blocks = store
        .root::<PVec<PersistentPtr<[u64; 32]>>>()
        .unwrap()
        .get()
        .unwrap();
    let again = blocks.to_vec(&store).unwrap();
    assert_eq!(again.len() as u64, more);
    assert_eq!(&again[..old.len()], &old[..], "old pointers are unchanged");
    for (i, p) in again.iter().enumerate() {
        assert_eq!(p.read(&store).unwrap(), [i as u64; 32], "block {i}");
    }
    for h in store.heaps() {
        assert!(h.check().is_ok());
    }
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A crash between creating an added segment and recording it leaves an unrecorded file:
/// opening ignores it and the next grow replaces it.
#[test]
fn an_unrecorded_added_segment_is_replaced_by_the_next_grow() {
    let dir = tempdir("orphan");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    unsafe { Store::open_or_create(&dir, options(7)) }
        .unwrap()
        .close()
        .unwrap();
    std::fs::write(dir.join("data.1"), b"left by an interrupted grow").unwrap();
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(7)) }.unwrap();
    assert_eq!(store.heaps().len(), 1);
    store.grow(1 << 20).unwrap();
    let mut tx = store.begin().unwrap();
    let p = PersistentPtr::alloc(&mut tx, &store.heaps()[1].clone(), &5u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    store.close().unwrap();
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open(&dir, options(7)) }.unwrap();
    assert_eq!(store.heaps().len(), 2);
    assert_eq!(p.read(&store).unwrap(), 5);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_grow_that_is_refused_leaves_no_file() {
    let dir = tempdir("grow-refused");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(8)) }.unwrap();
    assert!(store.grow(5000).is_err(), "not a multiple of 4096");
    assert!(store.grow(1 << 50).is_err(), "past the end of user space");
    assert_eq!(store.heaps().len(), 1);
    assert_eq!(names_in(&dir), ["data", "log"]);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store and the container handles can be shared between threads.
#[test]
fn stores_and_handles_are_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Store>();
    shareable::<PVec<u64>>();
    shareable::<PHashMap<[u8], PVec<u8>>>();
    shareable::<PersistentPtr<[u8; 3]>>();
    shareable::<rvm::typed::FieldPtr<u64>>();
}

/// `grow` takes `&self` and does not wait for another thread's open transaction, which can
/// then allocate in the new heap.
#[test]
fn grow_runs_while_another_transaction_holds_the_heap() {
    let dir = tempdir("grow-shared");
    // A log that holds the 2 MiB allocation's zero fill.
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(9).log_bytes(8 << 20)) }.unwrap();
    let mut tx = store.begin().unwrap();
    let small = PersistentPtr::alloc(&mut tx, &store, &1u64).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| store.grow(4 << 20).unwrap()).join().unwrap();
    });
    // Larger than the first heap: only the new one can hold it.
    let big = rvm::typed::PSlice::<u8>::alloc(&mut tx, &store, 2 << 20).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let heaps = store.heaps();
    assert_eq!(heaps.len(), 2);
    assert!(big.block() as usize >= heaps[1].address());
    assert_eq!(small.read(&store).unwrap(), 1);
    assert_eq!(big.to_vec(&store).unwrap().len(), 2 << 20);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 9, liveness: a handle kept past `close` (here a root) used to keep the data file
/// locked, so the store could not be reopened in the same process; and the handle must not
/// read memory the closed store no longer owns. Now closing releases the locks and the stale
/// handle answers `NotMapped`.
#[test]
fn a_handle_kept_past_close_neither_blocks_a_reopen_nor_reads_unmapped_memory() {
    let dir = tempdir("stale-root");
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(&dir, options(9)) }.unwrap();
    let root = store.root::<u64>().unwrap();
    let mut tx = store.begin().unwrap();
    root.set(&mut tx, &7).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    store.close().unwrap();
    let stale = root.get().unwrap_err();
    assert!(
        matches!(stale, Error::Rvm(rvm::Error::NotMapped { .. })),
        "a root of a closed store answered {stale:?}"
    );
    // SAFETY: as above.
    let store = unsafe { Store::open_or_create(&dir, options(9)) }.unwrap();
    assert_eq!(store.root::<u64>().unwrap().get().unwrap(), 7);
    drop(root);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
