//! Logs and segments made by the library for the rvmutl tests. Every fixture is deterministic
//! except for UUIDs and times (which the golden helper normalizes).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

/// Fixed addresses of the fixture segments' regions, far from anything a test process maps.
pub const REGION0_ADDRESS: u64 = 0x6000_0000_0000;
pub const REGION1_ADDRESS: u64 = 0x6000_0010_0000;
/// Where the `heap` fixture's heap region is mapped.
pub const HEAP_ADDRESS: u64 = 0x6100_0000_0000;

/// Fixtures map fixed addresses: build one at a time.
static BUILDING: Mutex<()> = Mutex::new(());

/// Tests of one binary that spawn rvmutl run one at a time: a child forked while another
/// thread holds a freshly created log open inherits the descriptor until it execs, and with
/// it the log's lock, so a concurrent `Rvm::open` of that log would see it in use.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("log")
}
pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// A fresh directory for a test, removed (with what the test left in it) when dropped.
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // The per-process parent goes once its last test directory is gone.
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A fresh directory for a test (see [`TestDir`]).
pub fn test_dir(name: &str) -> TestDir {
    let d = std::env::temp_dir()
        .join(format!("rvmutl-test-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TestDir(d)
}

/// Each commit a record of its own, so the fixtures show one record per transaction as
/// their descriptions below say.
fn options() -> Options {
    Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .coalesce_transactions(false)
}

fn make_segment(dir: &Path) {
    let header = segment::layout(
        4096 + 65536 + 16384,
        &[
            RegionSpec {
                length: 65536,
                address: REGION0_ADDRESS,
            },
            RegionSpec {
                length: 16384,
                address: REGION1_ADDRESS,
            },
        ],
    )
    .unwrap();
    segment::create(&data_path(dir), &header, CreateOptions::default()).unwrap();
}

/// Build fixture `name` in `dir` (files `log` and `data`).
///
/// - `empty`: a new log with a 1 MiB record area, and a segment it has never mapped.
/// - `partly`: five transactions (flush and no_flush, restore and no_restore, one and two
///   ranges, data longer than the preview), closed cleanly without truncation.
/// - `wrapped`: a 64 KiB area, twelve 3000-byte transactions, a truncation, then ten more, so
///   the live records wrap around the end of the area and applied ones lie before the head.
/// - `crash`: the image of a crash after six flushes (two transactions each): the status
///   is not clean and nothing was truncated.
pub fn build(name: &str, dir: &Path) {
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let log = log_path(dir);
    make_segment(dir);
    match name {
        "empty" => {
            Rvm::create_log(&log, 1 << 20).unwrap();
        }
        "partly" => {
            Rvm::create_log(&log, 1 << 20).unwrap();
            let rvm = Rvm::open(&log, options()).unwrap();
            // SAFETY: the segment file lives in this test's private temporary directory and nothing
            // shortens it while it is mapped.
            let seg = unsafe { rvm.map(data_path(dir), MapOptions::default()) }.unwrap();
            let b0 = seg.regions()[0].address;
            let b1 = seg.regions()[1].address;
            assert_eq!(b0 as u64, REGION0_ADDRESS);
            let mut tx = rvm.begin(BeginMode::Restore).unwrap();
            tx.write(b0, &0xdead_beef_u64).unwrap();
            tx.modify_bytes(b0 + 64, b"hello, rvm\0").unwrap();
            tx.end(CommitMode::Flush).unwrap();
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            let pattern: Vec<u8> = (0..100u8).collect();
            tx.modify_bytes(b1 + 8, &pattern).unwrap();
            tx.end(CommitMode::NoFlush).unwrap();
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.write(b0 + 128, &42u32).unwrap();
            tx.end(CommitMode::NoFlush).unwrap();
            let mut tx = rvm.begin(BeginMode::Restore).unwrap();
            tx.write(b0 + 256, &7u64).unwrap();
            let long: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
            tx.modify_bytes(b1, &long).unwrap();
            tx.end(CommitMode::Flush).unwrap();
            let mut tx = rvm.begin(BeginMode::Restore).unwrap();
            tx.modify_bytes(b0 + 64, b"HELLO, RVM!\0").unwrap();
            tx.end(CommitMode::Flush).unwrap();
            rvm.close().unwrap();
        }
        "wrapped" => {
            Rvm::create_log(&log, 64 << 10).unwrap();
            let rvm = Rvm::open(&log, options()).unwrap();
            // SAFETY: the segment file lives in this test's private temporary directory and nothing
            // shortens it while it is mapped.
            let seg = unsafe { rvm.map(data_path(dir), MapOptions::default()) }.unwrap();
            let b0 = seg.regions()[0].address;
            for i in 0..22u32 {
                if i == 12 {
                    rvm.truncate().unwrap();
                }
                let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
                let data = vec![i as u8; 3000];
                tx.modify_bytes(b0 + (i as usize % 16) * 4000, &data)
                    .unwrap();
                tx.end(CommitMode::Flush).unwrap();
            }
            rvm.close().unwrap();
        }
        "crash" => {
            Rvm::create_log(&log, 1 << 20).unwrap();
            let rvm = Rvm::open(&log, options()).unwrap();
            // SAFETY: the segment file lives in this test's private temporary directory and nothing
            // shortens it while it is mapped.
            let seg = unsafe { rvm.map(data_path(dir), MapOptions::default()) }.unwrap();
            let b0 = seg.regions()[0].address;
            for i in 0..12u64 {
                let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                tx.write(b0 + 8 * i as usize, &(1000 + i)).unwrap();
                tx.end(if i % 2 == 1 {
                    CommitMode::Flush
                } else {
                    CommitMode::NoFlush
                })
                .unwrap();
            }
            // The crash: what is on disk now, before close writes anything.
            let log_image = std::fs::read(&log).unwrap();
            let data_image = std::fs::read(data_path(dir)).unwrap();
            rvm.close().unwrap();
            std::fs::write(&log, log_image).unwrap();
            std::fs::write(data_path(dir), data_image).unwrap();
        }
        "heap" => {
            // A segment with an RDS heap (region 0) and statics (region 1): a few allocations,
            // some freed, truncated so the file holds them.
            std::fs::remove_file(data_path(dir)).unwrap();
            Rvm::create_log(&log, 1 << 20).unwrap();
            let rvm = Rvm::open(&log, options()).unwrap();
            let layout = rvm::rds::HeapLayout {
                start_address: HEAP_ADDRESS,
                heap_length: 64 << 10,
                static_length: 4096,
                nlists: 8,
                chunk_size: 64,
            };
            // SAFETY: the segment file lives in this test's private temporary directory and nothing
            // shortens it while it is mapped.
            unsafe {
                rvm::rds::create_heap_segment(
                    &rvm,
                    &data_path(dir),
                    layout.segment_length_min(),
                    &layout,
                    CreateOptions::default(),
                )
            }
            .unwrap();
            // SAFETY: the segment file lives in this test's private temporary directory and nothing
            // shortens it while it is mapped.
            let seg = unsafe { rvm.map(data_path(dir), MapOptions::default()) }.unwrap();
            let heap = rvm::rds::Heap::load(&seg).unwrap();
            let mut kept = Vec::new();
            for (i, size) in [10usize, 100, 200, 64, 1000, 3000, 50, 120]
                .iter()
                .enumerate()
            {
                let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                let a = heap.malloc(&mut tx, *size).unwrap();
                tx.end(CommitMode::Flush).unwrap();
                kept.push((i, a));
            }
            for (i, a) in kept {
                if i % 2 == 1 {
                    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
                    heap.free(&mut tx, a).unwrap();
                    tx.end(CommitMode::Flush).unwrap();
                }
            }
            drop(heap);
            rvm.truncate().unwrap();
            rvm.close().unwrap();
        }
        other => panic!("unknown fixture {other}"),
    }
}

/// The path of the built rvmutl binary.
pub fn rvmutl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvmutl"))
}
