//! The typed layer over a heap on crash devices: containers against std models, abort
//! restoring the heap byte for byte, crashes recovering a committed state, checked access,
//! and threads changing one map.

mod rds_support;

use std::collections::{BTreeMap, HashMap};

use rds_support::{layout, Fixture};
use rvm::device::Tear;
use rvm::field;
use rvm::rds::{Error, Heap, PersistentPtr};
use rvm::typed::{Alloc, PBytes, PHashMap, PSlice, PVec};
use rvm::{BeginMode, CommitMode};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The root: a map from key to a vector of values, and a byte string log of operations.
#[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
#[repr(C)]
struct Root {
    map: PHashMap<u64, PVec<u64>>,
    journal: PBytes,
}

type Model = BTreeMap<u64, Vec<u64>>;

fn snapshot(heap: &Heap, root: &Root) -> (Model, Vec<u8>) {
    let mut model = Model::new();
    for item in root.map.iter(heap).unwrap() {
        let (k, v) = item.unwrap();
        assert!(
            model.insert(k, v.to_vec(heap).unwrap()).is_none(),
            "key {k} twice"
        );
    }
    assert_eq!(model.len(), root.map.len(heap).unwrap());
    (model, root.journal.to_vec(heap).unwrap())
}

/// One random transaction on the map of vectors and the journal.
fn change(
    tx: &mut rvm::Transaction<'_>,
    heap: &Heap,
    root: &Root,
    rng: &mut Rng,
    model: &mut Model,
    journal: &mut Vec<u8>,
) -> Result<(), Error> {
    for _ in 0..1 + rng.below(5) {
        let key = rng.below(60);
        match rng.below(4) {
            0 | 1 => {
                let value = rng.below(1 << 40);
                let v = match root.map.get(heap, &key)? {
                    Some(v) => v,
                    None => {
                        let v = PVec::new(tx, heap)?;
                        root.map.insert(tx, heap, &key, &v)?;
                        v
                    }
                };
                v.push(tx, heap, &value)?;
                model.entry(key).or_default().push(value);
                journal.push(b'+');
                root.journal.extend_from_slice(tx, heap, b"+")?;
            }
            2 => {
                if let Some(v) = root.map.remove(tx, heap, &key)? {
                    v.free(tx, heap)?;
                }
                model.remove(&key);
                journal.push(b'-');
                root.journal.extend_from_slice(tx, heap, b"-")?;
            }
            _ => {
                if let Some(v) = root.map.get(heap, &key)? {
                    let popped = v.pop(tx, heap)?;
                    assert_eq!(popped, model.get_mut(&key).unwrap().pop());
                }
            }
        }
    }
    Ok(())
}

fn new_root(f: &Fixture) -> rvm::rds::Root<Root> {
    let root = f.heap.static_root::<Root>().unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let value = Root {
        map: PHashMap::new(&mut tx, &f.heap).unwrap(),
        journal: PBytes::new(&mut tx, &f.heap).unwrap(),
    };
    root.set(&mut tx, &value).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    root
}

/// Every block of the heap (address, chunks, state).
fn heap_blocks(f: &Fixture) -> Vec<(u64, u64, rvm::rds::BlockState)> {
    f.heap
        .blocks()
        .unwrap()
        .into_iter()
        .map(|b| (b.address, b.chunks, b.state))
        .collect()
}

/// Abort puts the containers back, and the heap's blocks too (every block at the same place
/// with the same size and state), whatever the transaction did to the containers (growing
/// vectors and the bucket array, removing, freeing). The heap's bytes are no longer restored
/// byte for byte, as this test asserted before: an aborted allocation is freed again by a
/// heap call of its own (other transactions may have allocated meanwhile, spec K11), which
/// leaves the counters and the order of a free list different.
#[test]
fn abort_restores_the_containers_and_every_block() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let root = new_root(&f).get().unwrap();
    let mut rng = Rng(11);
    let (mut model, mut journal) = (Model::new(), Vec::new());
    for round in 0..40 {
        let before = heap_blocks(&f);
        let (m0, j0) = (model.clone(), journal.clone());
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        for _ in 0..5 {
            change(&mut tx, &f.heap, &root, &mut rng, &mut model, &mut journal).unwrap();
        }
        if round % 2 == 0 {
            tx.abort().unwrap();
            assert!(
                heap_blocks(&f) == before,
                "round {round}: abort left a block changed"
            );
            (model, journal) = (m0, j0);
        } else {
            tx.end(CommitMode::NoFlush).unwrap();
        }
        assert_eq!(snapshot(&f.heap, &root), (model.clone(), journal.clone()));
    }
    assert!(f.heap.check().is_ok());
}

/// Power fails at a random write or sync while transactions change the containers; after
/// recovery the containers hold the state after the last acknowledged commit or the one in
/// progress, and the heap checker passes.
#[test]
fn a_crash_recovers_a_committed_state_of_the_containers() {
    for seed in 1..=12u64 {
        let f = Fixture::with_log(layout(10 + seed, 1 << 20, 80, 64), seed, 256 << 10);
        let root = new_root(&f).get().unwrap();
        let mut rng = Rng((seed * 0x9e37_79b9) | 1);
        let (mut model, mut journal) = (Model::new(), Vec::new());
        f.controller.crash_after(50 + rng.below(400));
        let mut in_progress = None;
        loop {
            let (mut m, mut j) = (model.clone(), journal.clone());
            let done = (|| -> Result<(), Error> {
                let mut tx = f.rvm.begin(BeginMode::Restore)?;
                change(&mut tx, &f.heap, &root, &mut rng, &mut m, &mut j)?;
                tx.end(CommitMode::Flush)?;
                Ok(())
            })();
            match done {
                Ok(()) => (model, journal) = (m, j),
                Err(_) => {
                    in_progress = Some((m, j));
                    break;
                }
            }
            if rng.below(8) == 0 && f.rvm.truncate().is_err() {
                break;
            }
        }
        assert!(
            f.controller.has_crashed(),
            "seed {seed}: the loop ended without the injected crash"
        );
        let f = f.crash_and_recover(Tear::RandomSectors);
        let root = f.heap.static_root::<Root>().unwrap().get().unwrap();
        let now = snapshot(&f.heap, &root);
        assert!(
            now == (model.clone(), journal.clone()) || Some(&now) == in_progress.as_ref(),
            "seed {seed}: recovered {} keys / {} journal bytes; acknowledged {} / {}",
            now.0.len(),
            now.1.len(),
            model.len(),
            journal.len()
        );
        let report = f.heap.check();
        assert!(report.is_ok(), "seed {seed}:\n{report}");
    }
}

/// The hash map against std's through many inserts, overwrites and removes (the bucket array
/// doubles several times); removing everything frees every byte it took.
#[test]
fn the_map_matches_a_std_model_and_frees_everything() {
    let f = Fixture::new(layout(30, 4 << 20, 80, 64));
    let heap = &f.heap;
    let allocated_before = heap.statistics().allocated_bytes;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<[u8], u32> = PHashMap::new(&mut tx, heap).unwrap();
    let mut model: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut rng = Rng(5);
    for i in 0..6000u32 {
        let key = format!("key-{}", rng.below(2500)).into_bytes();
        if rng.below(4) == 0 {
            assert_eq!(map.remove(&mut tx, heap, &key).unwrap(), model.remove(&key));
        } else {
            assert_eq!(
                map.insert(&mut tx, heap, &key, &i).unwrap(),
                model.insert(key, i)
            );
        }
        if i % 500 == 0 {
            tx.end(CommitMode::NoFlush).unwrap();
            tx = f.rvm.begin(BeginMode::Restore).unwrap();
        }
    }
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(map.len(heap).unwrap(), model.len());
    let listed: HashMap<Vec<u8>, u32> = map.iter(heap).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(listed, model);
    for (k, v) in &model {
        assert_eq!(map.get(heap, k).unwrap(), Some(*v));
    }
    assert_eq!(map.get(heap, b"absent".as_slice()).unwrap(), None);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    for k in model.keys() {
        assert!(map.remove(&mut tx, heap, k).unwrap().is_some());
    }
    assert!(map.is_empty(heap).unwrap());
    map.free(&mut tx, heap).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(heap.statistics().allocated_bytes, allocated_before);
    assert!(heap.check().is_ok());
}

#[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
#[repr(C)]
struct Account {
    id: u64,
    balance: i64,
    limits: Limits,
}

#[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
#[repr(C)]
struct Limits {
    daily: [u32; 4],
}

/// Field pointers reach into the middle of a block; every access is checked against the
/// block, so stale, foreign and out-of-range pointers are errors, never wild accesses.
#[test]
fn field_and_index_access_is_typed_and_checked() {
    let f = Fixture::new(layout(31, 1 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let account = PersistentPtr::alloc(
        &mut tx,
        heap,
        &Account {
            id: 1,
            balance: 10,
            limits: Limits { daily: [5; 4] },
        },
    )
    .unwrap();
    let balance = field!(account, Account, balance);
    assert_eq!(balance.address(), account.address() + 8);
    balance.update(&mut tx, heap, |b| *b -= 25).unwrap();
    let daily = field!(account, Account, limits.daily);
    daily.index(2).unwrap().write(&mut tx, heap, &99).unwrap();
    assert!(matches!(
        daily.index(4),
        Err(Error::OutOfBounds {
            index: 4,
            len: 4,
            ..
        })
    ));
    // Field of a field pointer.
    let limits = field!(account, Account, limits);
    assert_eq!(
        field!(limits, Limits, daily)
            .index(2)
            .unwrap()
            .read(heap)
            .unwrap(),
        99
    );
    tx.end(CommitMode::Flush).unwrap();
    let a = account.read(heap).unwrap();
    assert_eq!((a.id, a.balance, a.limits.daily), (1, -15, [5, 5, 99, 5]));

    // A slice element past the block's end (a forged slice) is refused.
    let forged = PSlice::<u64>::from_raw_parts(account.address() as u64, 0, 1000);
    assert!(forged.get(heap, 3).is_ok(), "inside the block");
    assert!(matches!(
        forged.get(heap, 900),
        Err(Error::OutOfBounds { .. })
    ));
    // Null, foreign and interior addresses are not blocks.
    assert!(PersistentPtr::<u64>::null().read(heap).is_err());
    assert!(PersistentPtr::<u64>::from_address(heap.address() + 8)
        .read(heap)
        .is_err());
    assert!(PersistentPtr::<u64>::from_address(account.address() + 8)
        .read(heap)
        .is_err());
    assert!(PVec::<u64>::null().len(heap).is_err());
    // After a free the pointer is dangling: refused.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let v = PVec::from_slice(&mut tx, heap, &[1u16, 2, 3]).unwrap();
    assert!(matches!(
        v.get(heap, 3),
        Err(Error::OutOfBounds {
            index: 3,
            len: 3,
            ..
        })
    ));
    assert!(v.set(&mut tx, heap, 3, &4).is_err());
    account.free(&mut tx, heap).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(account.read(heap).is_err());
    assert!(balance.read(heap).is_err());
    assert!(heap.check().is_ok());
}

/// Threads insert into one map, each in its own transactions: every container change takes
/// the heap first, so no insert is lost to another's.
#[test]
fn threads_inserting_into_one_map_lose_nothing() {
    let f = Fixture::new(layout(32, 4 << 20, 80, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<u64, u64> = PHashMap::new(&mut tx, &f.heap).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (rvm, heap) = (&f.rvm, &f.heap);
            s.spawn(move || {
                for i in 0..300u64 {
                    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                    map.insert(&mut tx, heap, &(t * 1000 + i), &i).unwrap();
                    // A shared counter under key u64::MAX: read-modify-write in the map.
                    let n = map.get(heap, &u64::MAX).unwrap().unwrap_or(0);
                    map.insert(&mut tx, heap, &u64::MAX, &(n + 1)).unwrap();
                    tx.end(CommitMode::NoFlush).unwrap();
                }
            });
        }
    });
    assert_eq!(map.len(&f.heap).unwrap(), 1201);
    assert_eq!(map.get(&f.heap, &u64::MAX).unwrap(), Some(1200));
    for t in 0..4u64 {
        for i in 0..300u64 {
            assert_eq!(map.get(&f.heap, &(t * 1000 + i)).unwrap(), Some(i));
        }
    }
    assert!(f.heap.check().is_ok());
}

/// A lookup reads each chain entry in one piece, on the stack when it is small and on the heap
/// when it is not: keys longer than that buffer, keys of equal length differing only in their
/// last byte, and the empty key are each found, replaced and removed like std's map does.
#[test]
fn map_lookups_of_long_and_nearly_equal_keys_match_a_std_model() {
    let f = Fixture::new(layout(33, 4 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<[u8], u64> = PHashMap::with_buckets(&mut tx, heap, 2).unwrap();
    let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for len in [1usize, 100, 223, 224, 225, 300, 1000] {
        for last in 0..3u8 {
            let mut k = vec![b'k'; len];
            k[len - 1] = last;
            keys.push(k);
        }
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            map.insert(&mut tx, heap, k, &(i as u64)).unwrap(),
            model.insert(k.clone(), i as u64)
        );
    }
    for (i, k) in keys.iter().enumerate().step_by(2) {
        let v = 1000 + i as u64;
        assert_eq!(
            map.insert(&mut tx, heap, k, &v).unwrap(),
            model.insert(k.clone(), v)
        );
    }
    for k in keys.iter().skip(1).step_by(3) {
        assert_eq!(map.remove(&mut tx, heap, k).unwrap(), model.remove(k));
        assert_eq!(map.remove(&mut tx, heap, k).unwrap(), None);
    }
    tx.end(CommitMode::Flush).unwrap();
    for k in &keys {
        assert_eq!(
            map.get(heap, k).unwrap(),
            model.get(k).copied(),
            "{}",
            k.len()
        );
        assert_eq!(map.contains_key(heap, k).unwrap(), model.contains_key(k));
    }
    let mut longer = vec![b'k'; 1001];
    assert_eq!(map.get(heap, &longer).unwrap(), None);
    longer.truncate(999);
    assert_eq!(map.get(heap, &longer).unwrap(), None);
    assert_eq!(map.len(heap).unwrap(), model.len());
    // Iteration copies each entry in one read, a long key's rest in a second: keys up to
    // 224 bytes fit the first with a u64 value, longer ones do not.
    let listed: HashMap<Vec<u8>, u64> = map.iter(heap).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(listed, model);
    assert!(heap.check().is_ok());
}

/// An `Alloc` over a heap that counts the block checks (`block_len`, `read_block`) made on
/// each block.
struct CountingChecks<'h> {
    heap: &'h Heap,
    checks: std::cell::RefCell<HashMap<usize, usize>>,
}

impl CountingChecks<'_> {
    fn count(&self, block: usize) {
        *self.checks.borrow_mut().entry(block).or_default() += 1;
    }
}

impl Alloc for CountingChecks<'_> {
    fn lock(&self, tx: &mut rvm::Transaction<'_>) -> Result<(), Error> {
        self.heap.lock(tx)
    }
    fn alloc_bytes(&self, tx: &mut rvm::Transaction<'_>, size: usize) -> Result<usize, Error> {
        self.heap.alloc_bytes(tx, size)
    }
    fn free_bytes(&self, tx: &mut rvm::Transaction<'_>, address: usize) -> Result<(), Error> {
        self.heap.free_bytes(tx, address)
    }
    fn block_len(&self, address: usize) -> Result<usize, Error> {
        self.count(address);
        self.heap.block_len(address)
    }
    fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.heap.read_bytes(address, buf)
    }
    fn read_block(&self, block: usize, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        self.count(block);
        self.heap.read_block(block, offset, buf)
    }
}

/// An iteration step checked its entry's block three times (fixed part, value, key); it
/// checks it once now, for short keys and long ones alike.
#[test]
fn map_iteration_checked_each_entry_block_three_times() {
    let f = Fixture::new(layout(36, 4 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<str, u64> = PHashMap::new(&mut tx, heap).unwrap();
    let keys: Vec<String> = (0..20).map(|i| "k".repeat(1 + 30 * i)).collect();
    for (i, k) in keys.iter().enumerate() {
        map.insert(&mut tx, heap, k, &(i as u64)).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    let counting = CountingChecks {
        heap,
        checks: Default::default(),
    };
    let listed: HashMap<String, u64> = map.iter(&counting).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(listed.len(), keys.len());
    let checks = counting.checks.borrow();
    for k in &keys {
        let entry = map.value_ptr_of(heap, k.as_str()).unwrap().unwrap().block() as usize;
        assert_eq!(
            checks.get(&entry),
            Some(&1),
            "the entry of a {}-byte key",
            k.len()
        );
    }
}

/// An entry damaged while an iteration is under way is reported by the step that reaches it
/// (after which the iterator ends), never read past its block: a key length past the block,
/// key bytes that are not text, a block tag that is no longer a block's, a chain that loops.
#[test]
fn a_map_entry_damaged_mid_iteration_is_an_error() {
    let f = Fixture::new(layout(35, 4 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let map: PHashMap<str, u64> = PHashMap::with_buckets(&mut tx, heap, 4).unwrap();
    let mut keys: Vec<String> = (0..6).map(|i| format!("key {i}")).collect();
    keys.push("long ".repeat(80));
    for (i, k) in keys.iter().enumerate() {
        map.insert(&mut tx, heap, k, &(i as u64)).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    let order: Vec<String> = map.iter(heap).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(order.len(), keys.len());
    let intact = f.heap_bytes();

    // Entry layout: next link, hash, key length, the u64 value, the key's bytes.
    const KEY_LEN: usize = 16;
    const KEY: usize = 32;
    // Where (from the entry's address) the damage goes and what is written there.
    type Damage = fn(usize) -> (usize, u64);
    let cases: [(&str, Damage); 5] = [
        ("key length past the block", |e| (e + KEY_LEN, 1 << 20)),
        ("key length overflowing", |e| (e + KEY_LEN, u64::MAX - 8)),
        ("key not UTF-8", |e| (e + KEY, 0xffff_ffff_ffff_ffff)),
        ("head tag gone", |e| (e - 8, 0)),
        ("chain looping", |e| (e, e as u64)),
    ];
    for (name, damage) in cases {
        for (position, key) in order.iter().enumerate() {
            let entry = map.value_ptr_of(heap, key.as_str()).unwrap().unwrap();
            let (at, value) = damage(entry.block() as usize);
            let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
            tx.write(at, &value).unwrap();
            let mut it = map.iter(heap).unwrap();
            for k in &order[..position] {
                assert_eq!(
                    &it.next().unwrap().unwrap().0,
                    k,
                    "{name}: before the damage"
                );
            }
            let err = if name == "chain looping" {
                // The damaged entry itself is read, then again and again until the map's
                // length runs out.
                let mut steps = 0;
                loop {
                    match it.next() {
                        Some(Ok(_)) => steps += 1,
                        Some(Err(e)) => break e,
                        None => panic!("{name}: the iteration ended without an error"),
                    }
                    assert!(steps <= order.len(), "{name}: no error after {steps} steps");
                }
            } else {
                it.next().unwrap().unwrap_err()
            };
            match name {
                "key length past the block" | "key length overflowing" => {
                    assert!(matches!(err, Error::OutOfBounds { .. }), "{name}: {err:?}")
                }
                "head tag gone" => {
                    assert!(matches!(err, Error::NotFromHeap { .. }), "{name}: {err:?}")
                }
                _ => assert!(
                    matches!(err, Error::Corrupt { address, .. } if address == entry.block()
                        || name == "chain looping"),
                    "{name}: {err:?}"
                ),
            }
            assert!(it.next().is_none(), "{name}: the iterator ends at an error");
            tx.abort().unwrap();
            assert!(f.heap_bytes() == intact);
        }
    }
    // The last byte of the long key (copied apart from the rest of its entry).
    let long = keys.last().unwrap();
    let entry = map.value_ptr_of(heap, long.as_str()).unwrap().unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(entry.block() as usize + KEY + long.len() - 1, &0xffu8)
        .unwrap();
    let err = map
        .iter(heap)
        .unwrap()
        .find_map(|r| r.err())
        .expect("an error");
    assert!(
        matches!(err, Error::Corrupt { address, .. } if address == entry.block()),
        "{err:?}"
    );
    tx.abort().unwrap();
    assert!(heap.check().is_ok());
}

/// A damaged chain is an error, never a hang or a wild read: an entry linking to itself
/// (a loop) and an entry linking into the middle of a block.
#[test]
fn map_lookup_through_a_damaged_chain_is_an_error() {
    let f = Fixture::new(layout(34, 4 << 20, 80, 64));
    let heap = &f.heap;
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // One bucket and one entry (no doubling yet): every lookup walks its chain.
    let map: PHashMap<u64, u64> = PHashMap::with_buckets(&mut tx, heap, 1).unwrap();
    map.insert(&mut tx, heap, &1, &10).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let a = map.value_ptr_of(heap, &1).unwrap().unwrap().block();
    // An entry's first word is the link to the next entry on its chain.
    for (bad_next, expect_loop) in [(a, true), (a + 8, false)] {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        tx.write(a as usize, &bad_next).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        assert_eq!(map.get(heap, &1).unwrap(), Some(10));
        let e = map.get(heap, &3).unwrap_err();
        if expect_loop {
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        } else {
            assert!(matches!(e, Error::NotFromHeap { .. }), "{e:?}");
        }
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        assert!(map.insert(&mut tx, heap, &3, &30).is_err());
        tx.abort().unwrap();
    }
}
