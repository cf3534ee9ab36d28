//! The warm-up after mapping (`MapOptions::warm_up`): it changes no byte of the segment, makes
//! every page present, lets transactions run meanwhile, and stops when the segment is unmapped
//! or the instance closes. No timing is asserted. The tests run one at a time (each counts the
//! process's warm-up threads).

use std::path::Path;
use std::sync::Mutex;

use rvm::segment::{self, CreateOptions};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Placement, Rvm, Segment};

mod support;
use support::{pattern, Dir};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PAGE: usize = 4096;

/// A sparse one-region segment of `region_bytes` at a fixed address.
fn make_segment(path: &Path, region_bytes: u64, address: u64) {
    let header = support::one_region_layout(region_bytes, address);
    drop(segment::create(path, &header, CreateOptions::default()).unwrap());
}

/// Threads of this process named as the warm-up thread is.
fn warm_up_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "rvm-warm-up")
        .count()
}

/// Whether every warm-up thread is gone. A joined thread can stay listed for a moment while
/// the kernel finishes its exit, so this looks again for a while (a liveness bound, not a
/// timing check).
fn warm_up_threads_gone() -> bool {
    for _ in 0..10_000 {
        if warm_up_threads() == 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}

/// Whether this kernel has `MADV_POPULATE_WRITE` (Linux 5.14+): without it the warm-up does
/// nothing, and only its other promises can be checked.
fn kernel_populates() -> bool {
    support::kernel_accepts_advice(libc::MADV_POPULATE_WRITE)
}

/// Pages of the segment's first region that are not resident.
fn pages_not_resident(seg: &Segment) -> usize {
    let r = seg.regions()[0];
    support::pages_not_resident(r.address, r.length)
}

fn wait_for_warm_up(seg: &Segment) {
    // A liveness bound, not a timing check: the warm-up of a few MiB ends long before this.
    for _ in 0..60_000 {
        if !seg.warming_up() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the warm-up never finished");
}

#[test]
fn warm_up_keeps_every_byte_and_makes_every_page_present_while_transactions_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("contents");
    let (log, data) = (dir.path("log"), dir.path("data"));
    const REGION: usize = 8 << 20;
    const ADDRESS: u64 = 0x3100_0000_0000;
    Rvm::create_log(&log, 4 << 20).unwrap();
    make_segment(&data, REGION as u64, ADDRESS);
    // Data in some pages of the file (the rest stays holes): committed and truncated into it.
    let mut expected = vec![0u8; REGION];
    {
        let rvm = Rvm::open(&log, Options::default()).unwrap();
        // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
        let seg = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
        let base = seg.regions()[0].address;
        for page in (0..REGION / PAGE).step_by(7) {
            let bytes: Vec<u8> = (0..PAGE).map(|i| pattern(1, page * PAGE + i)).collect();
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.modify_bytes(base + page * PAGE, &bytes).unwrap();
            tx.end(CommitMode::NoFlush).unwrap();
            expected[page * PAGE..(page + 1) * PAGE].copy_from_slice(&bytes);
        }
        rvm.flush().unwrap();
        rvm.truncate().unwrap();
        rvm.close().unwrap();
    }
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::default().warm_up(true)) }.unwrap();
    let base = seg.regions()[0].address;
    // Transactions while the warm-up runs: every 5th page gets new bytes.
    for page in (0..REGION / PAGE).step_by(5) {
        let bytes: Vec<u8> = (0..64).map(|i| pattern(2, page * PAGE + i)).collect();
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.modify_bytes(base + page * PAGE, &bytes).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
        expected[page * PAGE..page * PAGE + 64].copy_from_slice(&bytes);
    }
    wait_for_warm_up(&seg);
    let mut now = vec![0u8; REGION];
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the mapped bytes changed");
    if kernel_populates() {
        assert_eq!(pages_not_resident(&seg), 0, "pages left cold");
    }
    assert!(warm_up_threads_gone());
    // And the file agrees once everything is truncated into it.
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    rvm.unmap(&seg).unwrap();
    // SAFETY: as above.
    let again = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
    again.read_bytes(ADDRESS as usize, &mut now).unwrap();
    assert!(now == expected, "the segment file differs after truncation");
    rvm.close().unwrap();
}

#[test]
fn warm_up_stops_at_unmap_and_at_close() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Dir::new("stops");
    let (log, data) = (dir.path("log"), dir.path("data"));
    // Large enough that the warm-up is still running when unmap and close come.
    const REGION: u64 = 1 << 30;
    const ADDRESS: u64 = 0x3200_0000_0000;
    Rvm::create_log(&log, 4 << 20).unwrap();
    make_segment(&data, REGION, ADDRESS);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let warm = MapOptions::default().warm_up(true);
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&data, warm) }.unwrap();
    rvm.unmap(&seg).unwrap();
    // Unmapping joined the thread (it is not merely told to stop).
    assert!(!seg.warming_up());
    // The address range is free again: the segment maps there once more at once (fixed
    // placement), now without warm-up, and nothing makes its pages present: no warm-up of the
    // first mapping goes on over the second.
    assert_eq!(warm.placement, Placement::Fixed);
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
    assert_eq!(seg.regions()[0].address, ADDRESS as usize);
    assert!(warm_up_threads_gone(), "a warm-up thread outlived unmap");
    let pages = REGION as usize / PAGE;
    if kernel_populates() {
        assert_eq!(
            pages_not_resident(&seg),
            pages,
            "the old warm-up touched the new mapping"
        );
    }
    let mut first = [0xffu8; 4096];
    seg.read_bytes(ADDRESS as usize, &mut first).unwrap();
    assert!(first.iter().all(|b| *b == 0));
    rvm.unmap(&seg).unwrap();
    // A second warm-up stops at close.
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, warm) }.unwrap();
    rvm.close().unwrap();
    assert!(!seg.warming_up());
    assert!(warm_up_threads_gone(), "a warm-up thread outlived close");
    // Without warm-up there is no thread at all.
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
    assert!(!seg.warming_up());
    assert!(warm_up_threads_gone());
    rvm.close().unwrap();
}
