//! Soundness and liveness of the safe API (issue 9, section 1): one test per defect found with
//! safe code, each named after what broke. What the type system prevents is tested by the
//! compile-fail cases in `tests/compile_fail/` (driven by `compile_fail.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Barrier;
use std::time::Duration;

use rvm::rds::{self, Heap, HeapLayout};
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm, Segment};

mod support;
use support::Dir;

/// A log and a one-region segment (`region` bytes at `address`; 0 stands for a placeholder
/// address, for segments the test maps anywhere).
fn make(dir: &Dir, name: &str, region: u64, address: u64) -> (PathBuf, PathBuf) {
    let (log, data) = (
        dir.path(format!("{name}.log")),
        dir.path(format!("{name}.data")),
    );
    Rvm::create_log(&log, 1 << 20).unwrap();
    let header = segment::layout(
        4096 + region,
        &[RegionSpec {
            length: region,
            address: if address == 0 {
                0x3c00_0000_0000
            } else {
                address
            },
        }],
    )
    .unwrap();
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    (log, data)
}

fn map(rvm: &Rvm, data: &PathBuf, options: MapOptions) -> Segment {
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    unsafe { rvm.map(data, options) }.unwrap()
}

/// Run `f` on another thread and return its result, or `None` if it has not returned after
/// `limit` (a generous bound: it only turns a hang into a failure).
fn finishes_within<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (send, recv) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    recv.recv_timeout(limit).ok()
}

const HANG_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// 1. One instance unmapped another's segment.

#[test]
fn one_instance_unmapped_another_instances_segment() {
    let d = Dir::new("foreign");
    let (log_a, data_a) = make(&d, "a", 8192, 0x3a10_0000_0000);
    let (log_b, data_b) = make(&d, "b", 8192, 0x3a20_0000_0000);
    let (log_c, data_c) = make(&d, "c", 8192, 0x3a10_0000_0000);
    let a = Rvm::open(&log_a, Options::default()).unwrap();
    let b = Rvm::open(&log_b, Options::default()).unwrap();
    let seg_a = map(&a, &data_a, MapOptions::default());
    let seg_b = map(&b, &data_b, MapOptions::default());
    let at = seg_a.regions()[0].address;

    let err = b.unmap(&seg_a).unwrap_err();
    assert!(matches!(err, Error::ForeignSegment { .. }), "{err}");
    assert!(err.to_string().contains("another Rvm instance"), "{err}");
    assert!(seg_a.is_mapped() && seg_b.is_mapped());

    // B cannot put another segment where A's is: the memory is still A's.
    let c = Rvm::open(&log_c, Options::default()).unwrap();
    // SAFETY: as in `map`.
    let err = unsafe { c.map(&data_c, MapOptions::default()) }.unwrap_err();
    assert!(matches!(err, Error::AddressInUse { .. }), "{err}");

    // A's transactions still work on A's memory, and B's segment is untouched.
    let mut tx = a.begin(BeginMode::Restore).unwrap();
    tx.write(at, &0xa11ce_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(seg_a.read::<u64>(at).unwrap(), 0xa11ce);
    assert_eq!(seg_b.read::<u64>(seg_b.regions()[0].address).unwrap(), 0);
    // B cannot write A's memory either: its transactions see only its own regions.
    let mut tx = b.begin(BeginMode::Restore).unwrap();
    assert!(matches!(
        tx.write(at, &1u64).unwrap_err(),
        Error::NotMapped { .. }
    ));
    drop(tx);
    a.unmap(&seg_a).unwrap();
    assert!(!seg_a.is_mapped());
}

// ---------------------------------------------------------------------------------------------
// 2. SIGBUS from safe code: mapping is `unsafe` (see tests/compile_fail/). What the library
// does on its own never touches a file past its end.

#[test]
fn a_segment_file_shortened_while_unmapped_is_refused_at_map_not_a_sigbus() {
    let d = Dir::new("short");
    let (log, data) = make(&d, "s", 1 << 20, 0);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(at + (1 << 19), &7u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    rvm.unmap(&seg).unwrap();
    // Shortened behind the library's back while it is not mapped.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(8192)
        .unwrap();
    // SAFETY: as in `map` (the file is shortened only while it is not mapped).
    let err = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap_err();
    assert!(
        matches!(err, Error::BadSegment { .. } | Error::Io { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("data"), "names the file: {err}");
}

/// A device whose bytes are one file but which lends the descriptor of another, shorter one.
#[derive(Debug)]
struct ShortLender {
    bytes: rvm::device::FileDevice,
    short: std::fs::File,
}

impl rvm::device::Device for ShortLender {
    fn name(&self) -> &str {
        "short-lender"
    }
    fn len(&self) -> std::io::Result<u64> {
        self.bytes.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.bytes.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.bytes.write_at(buf, offset)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.bytes.sync()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.bytes.set_len(len)
    }
    // SAFETY: deliberately breaks the contract (the file is shorter than the device) to check
    // that mapping refuses such a descriptor before anything touches the mapping.
    unsafe fn mappable_fd(&self) -> Option<std::os::unix::io::RawFd> {
        use std::os::unix::io::AsRawFd;
        Some(self.short.as_raw_fd())
    }
}

#[test]
fn a_device_lending_a_descriptor_of_a_shorter_file_is_refused_at_map_not_a_sigbus() {
    use rvm::device::{Access, FileDevice};
    let d = Dir::new("lender");
    let (log, data) = make(&d, "l", 1 << 20, 0);
    let short = d.path("short");
    std::fs::copy(&data, &short).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(8192)
        .unwrap();
    let device = ShortLender {
        bytes: FileDevice::open(&data, Access::ReadWrite).unwrap(),
        short: std::fs::File::open(&short).unwrap(),
    };
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the lender's descriptor is too short on purpose; map must refuse it before any
    // page is touched (the assertion below), so nothing faults.
    let err =
        unsafe { rvm.map_device(std::sync::Arc::new(device), MapOptions::anywhere()) }.unwrap_err();
    assert!(matches!(err, Error::BadSegment { .. }), "{err}");
    assert!(err.to_string().contains("short-lender"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// 3. Data race: concurrent writers and a reader of the same bytes only ever copy them.

#[test]
fn racing_writers_and_a_reader_of_the_same_bytes_see_whole_words() {
    // Classic semantics (no isolation): three threads race on one 64-byte value. Every access
    // is a race-defined atomic copy (no reference to mapped memory), and each aligned word is
    // copied whole, so every word read is one some writer wrote.
    let d = Dir::new("race");
    let (log, data) = make(&d, "r", 8192, 0);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let stop = AtomicBool::new(false);
    let patterns = [0x1111_1111_1111_1111u64, 0x2222_2222_2222_2222u64];
    std::thread::scope(|s| {
        for p in patterns {
            let rvm = &rvm;
            let stop = &stop;
            s.spawn(move || {
                for _ in 0..2000 {
                    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                    tx.write(at, &[p; 8]).unwrap();
                    tx.end(CommitMode::NoFlush).unwrap();
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) || reads < 100 {
            let words: [u64; 8] = seg.read(at).unwrap();
            for w in words {
                assert!(w == 0 || patterns.contains(&w), "torn word {w:#x}");
            }
            reads += 1;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Isolation.

#[test]
fn an_aborted_transactions_bytes_became_durable_through_another() {
    let d = Dir::new("abort-durable");
    let (log, data) = make(&d, "i", 8192, 0);
    let options = Options::default().isolation(true);
    let rvm = Rvm::open(&log, options).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let declared = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut tx = rvm.begin(BeginMode::Restore).unwrap();
            tx.write(at, &0xbad_u64).unwrap();
            declared.wait();
            // Give the other transaction time to try to declare the bytes it must wait for.
            std::thread::sleep(Duration::from_millis(100));
            tx.abort().unwrap();
        });
        declared.wait();
        // Covers the aborted bytes; waits until the abort has put them back.
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.set_range(at, 16).unwrap();
        tx.write(at + 8, &0x600d_u64).unwrap();
        tx.end(CommitMode::Flush).unwrap();
    });
    rvm.close().unwrap();
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    assert_eq!(
        seg.read::<u64>(at).unwrap(),
        0,
        "the aborted value is not durable"
    );
    assert_eq!(seg.read::<u64>(at + 8).unwrap(), 0x600d);
}

#[test]
fn readers_saw_torn_values_while_a_transaction_wrote_them() {
    // Isolation: a writer changes a 256-byte value in two halves inside one transaction; a
    // reader must never see one half new and the other old.
    let d = Dir::new("torn");
    let (log, data) = make(&d, "t", 8192, 0);
    let rvm = Rvm::open(&log, Options::default().isolation(true)).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=600u32 {
                let b = (i % 251) as u8 + 1;
                let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                tx.set_range(at, 256).unwrap();
                tx.write(at, &[b; 128]).unwrap();
                std::thread::yield_now();
                tx.write(at + 128, &[b; 128]).unwrap();
                tx.end(CommitMode::NoFlush).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        while !stop.load(Ordering::Relaxed) {
            let mut buf = [0u8; 256];
            seg.read_bytes(at, &mut buf).unwrap();
            assert!(buf.iter().all(|&x| x == buf[0]), "torn read: {buf:?}");
            let whole: [u8; 256] = {
                let mut v = [0u8; 256];
                rvm.read_bytes(at, &mut v).unwrap();
                v
            };
            assert!(whole.iter().all(|&x| x == whole[0]), "torn Rvm::read_bytes");
        }
    });
}

#[test]
fn two_transactions_waiting_for_each_other_hung_forever() {
    let d = Dir::new("deadlock");
    let (log, data) = make(&d, "k", 8192, 0);
    let options = Options::default()
        .isolation(true)
        .lock_timeout(Duration::from_secs(30));
    let rvm = Rvm::open(&log, options).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let both = Barrier::new(2);
    let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = [(at, at + 64), (at + 64, at)]
            .into_iter()
            .map(|(first, second)| {
                let (rvm, both) = (&rvm, &both);
                s.spawn(move || {
                    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                    tx.set_range(first, 8).unwrap();
                    both.wait();
                    match tx.set_range(second, 8) {
                        Ok(()) => tx.end(CommitMode::NoFlush),
                        Err(e) => {
                            tx.abort().unwrap();
                            Err(e)
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let deadlocks = results
        .iter()
        .filter(|r| matches!(r, Err(Error::Deadlock { .. })))
        .count();
    assert_eq!(deadlocks, 1, "exactly one is refused: {results:?}");
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Liveness.

fn heap_store(d: &Dir, address: u64, options: Options) -> (Rvm, Heap) {
    let (log, data) = (d.path("heap.log"), d.path("heap.data"));
    Rvm::create_log(&log, 1 << 20).unwrap();
    let rvm = Rvm::open(&log, options).unwrap();
    let layout = HeapLayout {
        start_address: address,
        heap_length: 1 << 20,
        static_length: 4096,
        nlists: 16,
        chunk_size: 64,
    };
    // SAFETY: the file is created by this call in the test's private temporary directory.
    unsafe {
        rds::create_heap_segment(
            &rvm,
            &data,
            layout.segment_length_min(),
            &layout,
            CreateOptions::default(),
        )
    }
    .unwrap();
    let seg = map(&rvm, &data, MapOptions::default());
    let heap = Heap::load(&seg).unwrap();
    (rvm, heap)
}

/// A transaction leaked with `mem::forget` used to own the heap for ever. Now a plain heap
/// call never waits for a transaction: the other thread's malloc succeeds at once, and the
/// leaked transaction's block stays allocated (leaked). The typed layer's data lock is still
/// held for a transaction's lifetime, so waiting for a leaked holder ends in a lock timeout.
#[test]
fn a_forgotten_transaction_blocked_other_threads_heap_calls_forever() {
    let d = Dir::new("forgot-heap");
    let options = Options::default().lock_timeout(Duration::from_millis(300));
    let (rvm, heap) = heap_store(&d, 0x3b10_0000_0000, options);
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let ptr = heap.alloc(&mut tx, &1u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    heap.malloc(&mut tx, 100).unwrap();
    heap.set(&mut tx, ptr, &2u64).unwrap();
    std::mem::forget(tx);
    let other = heap.clone();
    let rvm = std::sync::Arc::new(rvm);
    let r2 = rvm.clone();
    let result = finishes_within(HANG_LIMIT, move || {
        let mut tx = r2.begin(BeginMode::Restore).unwrap();
        let malloc = other.malloc(&mut tx, 100).map(|_| ());
        let set = other.set(&mut tx, ptr, &3u64);
        tx.end(CommitMode::Flush).unwrap();
        let stats = other.statistics();
        (
            malloc.map_err(|e| e.to_string()),
            set.map_err(|e| e.to_string()),
            stats,
            other.check().is_ok(),
        )
    });
    let (malloc, set, stats, clean) =
        result.expect("the heap calls returned instead of waiting forever");
    assert_eq!(malloc, Ok(()));
    let err = set.unwrap_err();
    assert!(err.contains("still held by transaction"), "{err}");
    assert_eq!(stats.open_allocations, 1, "the leaked transaction's block");
    assert!(clean);
}

#[test]
fn a_forgotten_transaction_blocked_a_range_lock_forever() {
    let d = Dir::new("forgot-range");
    let (log, data) = make(&d, "f", 8192, 0);
    let options = Options::default()
        .isolation(true)
        .lock_timeout(Duration::from_millis(300));
    let rvm = std::sync::Arc::new(Rvm::open(&log, options).unwrap());
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(at, &1u64).unwrap();
    std::mem::forget(tx);
    let (r2, s2) = (rvm.clone(), seg.clone());
    let (set, read) = finishes_within(HANG_LIMIT, move || {
        let mut tx = r2.begin(BeginMode::Restore).unwrap();
        let set = tx.set_range(at, 8);
        drop(tx);
        (set, s2.read::<u64>(at))
    })
    .expect("set_range and read returned instead of waiting forever");
    assert!(matches!(set, Err(Error::LockTimeout { .. })), "{set:?}");
    assert!(matches!(read, Err(Error::LockTimeout { .. })), "{read:?}");
    // Unmapping is refused at once (the leaked transaction pins the region), not a wait.
    let err = rvm.unmap(&seg).unwrap_err();
    assert!(matches!(err, Error::Uncommitted { .. }), "{err}");
}

#[test]
fn handles_kept_working_after_close() {
    let d = Dir::new("close-handles");
    let (rvm, heap) = heap_store(&d, 0x3b20_0000_0000, Options::default());
    let root = heap.static_root::<u64>().unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let ptr = heap.alloc(&mut tx, &5u64).unwrap();
    root.set(&mut tx, &(ptr.address() as u64)).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // A leaked transaction still declares a range in the segment.
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.set_range(heap.static_address(), 8).unwrap();
    std::mem::forget(tx);
    let seg = heap.segment().clone();
    let at = heap.static_address();
    rvm.close().unwrap();
    let not_mapped = |e: String| e.contains("not inside one mapped region");
    assert!(!seg.is_mapped());
    assert!(matches!(seg.read::<u64>(at), Err(Error::NotMapped { .. })));
    assert!(not_mapped(root.get().unwrap_err().to_string()));
    assert!(not_mapped(heap.get(ptr).unwrap_err().to_string()));
    assert!(not_mapped(
        heap.usable_size(ptr.address()).unwrap_err().to_string()
    ));
    assert!(!heap.check().problems.is_empty() || heap.inspect().is_err());
}

#[test]
fn reopening_after_close_failed_while_a_segment_handle_was_alive() {
    let d = Dir::new("reopen");
    let (log, data) = make(&d, "o", 8192, 0);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg = map(&rvm, &data, MapOptions::anywhere());
    let at = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(at, &9u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    rvm.close().unwrap();
    // `seg` is still alive; the files must be free again.
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg2 = map(&rvm, &data, MapOptions::anywhere());
    assert_eq!(seg2.read::<u64>(seg2.regions()[0].address).unwrap(), 9);
    assert!(matches!(seg.read::<u64>(at), Err(Error::NotMapped { .. })));
}

#[test]
fn a_lock_held_by_this_process_was_reported_as_another_process() {
    let d = Dir::new("samelock");
    let (log, _) = make(&d, "l", 8192, 0);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let err = Rvm::open(&log, Options::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InUse {
                by_this_process: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("this process"), "{err}");
    assert!(!err.to_string().contains("another process"), "{err}");
    drop(rvm);
    Rvm::open(&log, Options::default()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Region pins taken without the region table's lock: a thread's next transaction pins the
// region its previous one used through a cached description (`tx.rs`), which must never let a
// transaction use a region unmapped meanwhile, nor name the wrong segment.

/// A log with two segments whose one region lies at the same address.
fn two_segments_at_one_address(d: &Dir, address: u64) -> (PathBuf, PathBuf, PathBuf) {
    let (log, a) = make(d, "a", 8192, address);
    let b = d.path("b.data");
    let header = segment::layout(
        4096 + 8192,
        &[RegionSpec {
            length: 8192,
            address,
        }],
    )
    .unwrap();
    drop(segment::create(&b, &header, CreateOptions::default()).unwrap());
    (log, a, b)
}

#[test]
fn a_cached_region_was_used_after_its_segment_was_unmapped() {
    let d = Dir::new("pin-cache");
    let address = 0x3d10_0000_0000u64;
    let (log, data_a, data_b) = two_segments_at_one_address(&d, address);
    let at = address as usize + 64;
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let a = map(&rvm, &data_a, MapOptions::default());
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(at, &0xaaaa_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // Nothing pins A once the transaction ended, though this thread remembers its region.
    rvm.unmap(&a).unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    assert!(matches!(tx.write(at, &1u64), Err(Error::NotMapped { .. })));
    drop(tx);
    // Another segment at the same address: the range belongs to B now, not to A's entry.
    let b = map(&rvm, &data_b, MapOptions::default());
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(at, &0xbbbb_u64).unwrap();
    // B is pinned by this transaction, through whichever path found it.
    assert!(matches!(
        rvm.unmap(&b),
        Err(Error::Uncommitted { count: 1, .. })
    ));
    tx.end(CommitMode::Flush).unwrap();
    rvm.close().unwrap();
    // After recovery each file holds its own value: the record named B, not A.
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    rvm.truncate().unwrap();
    let a = map(&rvm, &data_a, MapOptions::default());
    assert_eq!(a.read::<u64>(at).unwrap(), 0xaaaa);
    rvm.unmap(&a).unwrap();
    let b = map(&rvm, &data_b, MapOptions::default());
    assert_eq!(b.read::<u64>(at).unwrap(), 0xbbbb);
    rvm.close().unwrap();
}

#[test]
fn unmap_raced_transactions_pinning_through_cached_regions() {
    // Writers commit in a loop (each transaction after the first pins through the region
    // its thread cached) while the main thread unmaps the segment, lets every writer try
    // once while it is unmapped, and maps it again. A pin that lost the race to an unmap
    // would write unmapped memory (a crash); an unmap that lost the race to a pin must be
    // refused; every write that was accepted must have reached the memory it was made in.
    let d = Dir::new("pin-race");
    let address = 0x3d20_0000_0000u64;
    let (log, data) = make(&d, "r", 8192, address);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let mut seg = Some(map(&rvm, &data, MapOptions::default()));
    let stop = AtomicBool::new(false);
    let attempts: [std::sync::atomic::AtomicU64; 2] = Default::default();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2usize)
            .map(|w| {
                let (rvm, stop, attempts) = (&rvm, &stop, &attempts);
                s.spawn(move || {
                    let at = address as usize + 8 * w;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
                        match tx.write(at, &n) {
                            Ok(()) => {
                                // Pinned: still mapped, and this is the value just written.
                                assert_eq!(tx.read::<u64>(at).unwrap(), n);
                                tx.end(CommitMode::NoFlush).unwrap();
                            }
                            Err(Error::NotMapped { .. }) => {}
                            Err(e) => panic!("writer {w}: {e}"),
                        }
                        attempts[w].fetch_add(1, Ordering::Release);
                    }
                })
            })
            .collect();
        for _ in 0..300 {
            match seg.as_ref().map(|s| rvm.unmap(s)) {
                Some(Ok(())) => {
                    seg = None;
                    // Every writer tries (at least) once more while nothing is mapped.
                    let before: Vec<u64> =
                        attempts.iter().map(|a| a.load(Ordering::Acquire)).collect();
                    while writers.iter().all(|w| !w.is_finished())
                        && attempts
                            .iter()
                            .zip(&before)
                            .any(|(a, b)| a.load(Ordering::Acquire) < b + 2)
                    {
                        std::thread::yield_now();
                    }
                }
                // Refused: a writer's transaction pins the region (and is counted).
                Some(Err(Error::Uncommitted { count, .. })) => assert!(count >= 1),
                Some(Err(e)) => panic!("unmap: {e}"),
                None => seg = Some(map(&rvm, &data, MapOptions::default())),
            }
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    });
    drop(seg);
    rvm.close().unwrap();
}

#[test]
fn a_refused_unmap_left_the_segments_other_regions_unusable() {
    // Unmap retires the regions one by one and gives up at the first pinned one: those it
    // retired before must be usable again, through the table and through a cached pin.
    let d = Dir::new("pin-undo");
    let (log, data) = (d.path("u.log"), d.path("u.data"));
    Rvm::create_log(&log, 1 << 20).unwrap();
    let (first, second) = (0x3d30_0000_0000u64, 0x3d30_0010_0000u64);
    let regions = [
        RegionSpec {
            length: 8192,
            address: first,
        },
        RegionSpec {
            length: 8192,
            address: second,
        },
    ];
    let header = segment::layout(4096 + 2 * 8192, &regions).unwrap();
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let seg = map(&rvm, &data, MapOptions::default());
    let mut pinning = rvm.begin(BeginMode::Restore).unwrap();
    pinning.write(second as usize, &2u64).unwrap();
    // A transaction of this thread in the first region: its set of buffers, given back to
    // the thread, remembers that region.
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(first as usize, &1u64).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert!(matches!(
        rvm.unmap(&seg),
        Err(Error::Uncommitted { count: 1, .. })
    ));
    // Both paths to the first region work: the cached pin (the next transaction of this
    // thread) and the table (another thread, which has no cached region).
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(first as usize, &3u64).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut tx = rvm.begin(BeginMode::Restore).unwrap();
            tx.write(first as usize + 8, &4u64).unwrap();
            tx.end(CommitMode::NoFlush).unwrap();
        });
    });
    pinning.end(CommitMode::Flush).unwrap();
    assert_eq!(seg.read::<[u64; 2]>(first as usize).unwrap(), [3, 4]);
    rvm.unmap(&seg).unwrap();
    rvm.close().unwrap();
}
