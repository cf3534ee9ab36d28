//! Checked reads of heap blocks without the heap's lock (`rds/heap/block_read.rs`): what a
//! typed read or `Heap::usable_size` refuses with the lock it still refuses without it (freed
//! blocks, stale pointers, a heap header changed behind the heap's back), and what it accepts
//! it accepts while other threads allocate and free around it; under isolation the copy still
//! waits for other threads' range locks.

mod rds_support;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rds_support::{layout, Fixture};
use rvm::rds::{Error, Heap, PersistentPtr};
use rvm::store::{Store, StoreOptions};
use rvm::typed::PHashMap;
use rvm::{BeginMode, CommitMode, Options};
use support::Dir;

/// Offsets of two header words (FORMAT.md, "RDS heap"): the chunk size and the chunk count.
const CHUNK_SIZE_AT: usize = 24;
const CHUNK_COUNT_AT: usize = 48;

#[test]
fn a_get_of_a_removed_key_finds_nothing_and_its_stale_value_pointer_is_refused() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<u64, [u64; 4]> = PHashMap::new(&mut tx, heap).unwrap();
    for k in 0..20u64 {
        map.insert(&mut tx, heap, &k, &[k; 4]).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    // Reads that pass (and so publish the heap's layout for the lock-free check).
    assert_eq!(map.get(heap, &7).unwrap(), Some([7; 4]));
    let stale = map.value_ptr_of(heap, &7).unwrap().unwrap();
    assert_eq!(stale.read(heap).unwrap(), [7; 4]);
    let entry = stale.block() as usize;
    assert!(heap.usable_size(entry).unwrap() >= 4 * 8);

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(map.remove(&mut tx, heap, &7).unwrap(), Some([7; 4]));
    tx.end(CommitMode::Flush).unwrap();

    assert_eq!(map.get(heap, &7).unwrap(), None);
    assert_eq!(map.get(heap, &8).unwrap(), Some([8; 4]));
    assert!(
        matches!(stale.read(heap), Err(Error::DoubleFree { .. })),
        "a pointer into the freed entry: {:?}",
        stale.read(heap)
    );
    assert!(matches!(
        heap.usable_size(entry),
        Err(Error::DoubleFree { .. })
    ));
    // Interior and foreign addresses of live blocks stay refused too.
    let live = map.value_ptr_of(heap, &8).unwrap().unwrap().block() as usize;
    for forged in [live + 8, live + 64, heap.address() + 8, heap.address() - 8] {
        assert!(heap.usable_size(forged).is_err(), "{forged:#x}");
        assert!(
            PersistentPtr::<u64>::from_address(forged)
                .read(heap)
                .is_err(),
            "{forged:#x}"
        );
    }
    assert!(heap.check().is_ok());
}

/// Write the chunk size and chunk count words of the heap header in a transaction of its own
/// (a raw write into the heap region: what a stray transaction could do).
fn set_chunking(f: &Fixture, chunk_size: u64, chunk_count: u64) {
    let base = f.heap.address();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base + CHUNK_SIZE_AT, &chunk_size).unwrap();
    tx.write(base + CHUNK_COUNT_AT, &chunk_count).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
}

#[test]
fn a_heap_header_changed_behind_the_heaps_back_is_read_again_before_a_block_is_trusted() {
    let f = Fixture::new(layout(2, 1 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let p = PersistentPtr::alloc(&mut tx, heap, &[0x5a5a_5a5a_5a5a_5a5au64; 13]).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(p.read(heap).unwrap(), [0x5a5a_5a5a_5a5a_5a5a; 13]);
    let base = heap.address();
    let chunk_count: u64 = f.segment.read(base + CHUNK_COUNT_AT).unwrap();
    assert_eq!(f.segment.read::<u64>(base + CHUNK_SIZE_AT).unwrap(), 64);

    // The same header with 32-byte chunks: consistent (it decodes), but every block's size in
    // chunks now means half as many bytes, so the block's foot is not where its head says.
    // A check with the layout published before would accept the block.
    let blocks_offset: u64 = f.segment.read(base + 40).unwrap();
    let halved = ((1 << 20) - blocks_offset) / 32;
    set_chunking(&f, 32, halved);
    assert!(p.read(heap).is_err(), "read with a stale layout");
    assert!(heap.usable_size(p.address()).is_err());

    // A damaged header (inconsistent words) is reported as damage, naming the heap.
    set_chunking(&f, 32, chunk_count);
    match p.read(heap) {
        Err(Error::Corrupt { address, .. }) => assert_eq!(address, base as u64),
        other => panic!("expected Corrupt at the heap's address: {other:?}"),
    }

    // The header as it was: the block reads again (the old layout is published again).
    set_chunking(&f, 64, chunk_count);
    assert_eq!(p.read(heap).unwrap(), [0x5a5a_5a5a_5a5a_5a5a; 13]);
    assert!(heap.usable_size(p.address()).unwrap() >= 100);
    assert!(heap.check().is_ok());
}

#[test]
fn headers_beyond_the_layouts_a_heap_publishes_are_still_checked_under_the_lock() {
    let f = Fixture::new(layout(5, 1 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let p = PersistentPtr::alloc(&mut tx, heap, &[0x5a5a_5a5a_5a5a_5a5au64; 13]).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let base = heap.address();
    // Chunk size, lists, blocks offset, chunk count: words 3 to 6 of the header.
    let original: [u64; 4] = f.segment.read(base + CHUNK_SIZE_AT).unwrap();
    assert_eq!(original[0], 64);
    let header_bytes: u64 = 192 + 8 * 80;
    let set = |words: &[u64; 4]| {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        tx.write(base + CHUNK_SIZE_AT, words).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
    };
    // Six more consistent headers, more than the heap keeps published; each is validated
    // under the lock, and none fits the block.
    for round in 0..2 {
        for chunk in [32u64, 40, 48, 56, 72, 80] {
            let blocks_offset = header_bytes.div_ceil(chunk) * chunk;
            set(&[
                chunk,
                80,
                blocks_offset,
                ((1 << 20) - blocks_offset) / chunk,
            ]);
            assert!(p.read(heap).is_err(), "round {round}, {chunk}-byte chunks");
            assert!(heap.usable_size(p.address()).is_err());
        }
        set(&original);
        assert_eq!(
            p.read(heap).unwrap(),
            [0x5a5a_5a5a_5a5a_5a5a; 13],
            "round {round}"
        );
        assert_eq!(heap.usable_size(p.address()).unwrap(), 112);
    }
    assert!(heap.check().is_ok());
}

#[test]
fn a_heap_initialised_again_with_another_chunk_size_reads_its_new_blocks() {
    let f = Fixture::new(layout(3, 1 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let old = PersistentPtr::alloc(&mut tx, heap, &1u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(old.read(heap).unwrap(), 1);

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let again = Heap::init(&mut tx, &f.segment, 40, 32).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(old.read(&again).is_err(), "a block of the zapped heap");
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let new: Vec<_> = (0..10u64)
        .map(|i| PersistentPtr::alloc(&mut tx, &again, &[i; 9]).unwrap())
        .collect();
    tx.end(CommitMode::Flush).unwrap();
    for (i, p) in new.iter().enumerate() {
        assert_eq!(p.read(&again).unwrap(), [i as u64; 9]);
        // 72 bytes + two tags in 32-byte chunks: 3 chunks, 80 usable bytes.
        assert_eq!(again.usable_size(p.address()).unwrap(), 80);
        assert_eq!(
            heap.usable_size(p.address()).unwrap(),
            80,
            "the first handle"
        );
    }
    assert!(again.check().is_ok());
}

#[test]
fn reads_of_live_blocks_never_fail_while_other_threads_allocate_and_free_around_them() {
    let f = Fixture::new(layout(4, 4 << 20, 80, 64));
    let heap = &f.heap;
    // Live blocks with free blocks between them, so the churn below splits and merges the
    // neighbours of every live block.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let mut live = Vec::new();
    let mut gaps = Vec::new();
    for i in 0..200u64 {
        gaps.push(heap.malloc(&mut tx, 40 + (i as usize % 5) * 64).unwrap());
        live.push(PersistentPtr::alloc(&mut tx, heap, &[i; 12]).unwrap());
    }
    for g in gaps {
        heap.free(&mut tx, g).unwrap();
    }
    tx.end(CommitMode::NoFlush).unwrap();

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (f, stop) = (&f, &stop);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
                    let blocks: Vec<usize> = (0..8)
                        .map(|j| {
                            f.heap
                                .malloc(&mut tx, 8 + ((i + j) % 7) as usize * 40)
                                .unwrap()
                        })
                        .collect();
                    tx.end(CommitMode::NoFlush).unwrap();
                    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
                    for b in blocks {
                        f.heap.free(&mut tx, b).unwrap();
                    }
                    tx.end(CommitMode::NoFlush).unwrap();
                    i += 1;
                }
            });
        }
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (heap, live) = (heap, &live);
                s.spawn(move || {
                    for _ in 0..200 {
                        for (i, p) in live.iter().enumerate() {
                            assert_eq!(p.read(heap).unwrap(), [i as u64; 12]);
                            assert_eq!(heap.usable_size(p.address()).unwrap(), 112);
                        }
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(heap.check().is_ok());
}

#[test]
fn a_typed_read_under_isolation_waits_for_another_threads_range_lock() {
    let d = Dir::new("isolation");
    let options = StoreOptions {
        rvm: Options::default()
            .isolation(true)
            .lock_timeout(Duration::from_millis(100)),
        ..StoreOptions::default()
            .start_address(0x2500_0000_0000)
            .heap_bytes(1 << 20)
            .log_bytes(1 << 20)
    };
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(d.path("store"), options) }.unwrap();
    let mut tx = store.begin().unwrap();
    let map: PHashMap<u64, u64> = PHashMap::new(&mut tx, &store).unwrap();
    map.insert(&mut tx, &store, &1, &10).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let value = map.value_ptr_of(&store, &1).unwrap().unwrap();
    assert_eq!(value.read(&store).unwrap(), 10);

    // Another thread's transaction holds the value's bytes (a plain transaction: no data lock).
    let mut holder = store.begin().unwrap();
    holder.set_range(value.address(), 8).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let e = value.read(&store).unwrap_err();
            assert!(
                matches!(e, Error::Rvm(rvm::Error::LockTimeout { .. })),
                "{e:?}"
            );
            assert!(map.get(&store, &1).is_err());
        });
    });
    holder.abort().unwrap();
    assert_eq!(map.get(&store, &1).unwrap(), Some(10));
    store.close().unwrap();
}
