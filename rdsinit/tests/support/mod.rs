//! Helpers shared by the integration tests: temporary directories, running the real binary,
//! snapshots of files to prove nothing changed, and loading a segment back with the library.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

pub const BIN: &str = env!("CARGO_BIN_EXE_rdsinit");

/// The classic positional values (DATALEN SADDR HEAPLEN STATICLEN NLISTS CHUNK) of the classic
/// 1 GiB segment with 32-byte chunks.
pub const CLASSIC_1G: [&str; 6] = [
    "0x40000000",
    "0x70000000",
    "0x3fefd000",
    "0x100000",
    "0x50",
    "0x20",
];

/// The classic positional values of the smallest segment: three pages.
pub const TINY: [&str; 6] = ["12288", "0x50000000", "4096", "4096", "16", "64"];

/// `head` followed by `values`: a command line.
pub fn args<'a>(head: &[&'a str], values: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(values).copied().collect()
}

/// The library locks files with `flock`, and a lock belongs to the open file description: a
/// child forked by another test thread while this process has a log open inherits the
/// descriptor until it execs, and for that moment the log looks "in use" to a concurrent
/// rdsinit. So children are started only while no test thread holds a library file open.
static OPEN_FILES: RwLock<()> = RwLock::new(());

/// Held while the test process has log or segment files open through the library.
pub fn library_files() -> RwLockWriteGuard<'static, ()> {
    OPEN_FILES.write().unwrap_or_else(|e| e.into_inner())
}

/// Held while a child process is being started.
pub fn spawning() -> RwLockReadGuard<'static, ()> {
    OPEN_FILES.read().unwrap_or_else(|e| e.into_inner())
}

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "rdsinit-test-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
    /// The names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The JSON object `run` printed on standard output (the test fails showing the output if
/// there is none).
pub fn json_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

/// Run rdsinit in `dir` with `args` and `input` on standard input (pipes, not a terminal).
pub fn rdsinit_in(dir: &Path, args: &[&str], input: &str) -> Run {
    let spawning = spawning();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(spawning);
    {
        let mut stdin = child.stdin.take().unwrap();
        // The binary may exit before reading everything; a closed pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    Run::from(child.wait_with_output().unwrap())
}

pub fn rdsinit(dir: &TempDir, args: &[&str]) -> Run {
    rdsinit_in(&dir.path, args, "")
}

/// What a file looks like: enough to tell any change (length, contents, mtime, inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub len: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    pub contents: Vec<u8>,
}

/// Every file of a directory (contents read in full: tests that snapshot keep files small).
pub fn snapshot(dir: &TempDir) -> BTreeMap<String, Option<FileState>> {
    dir.names()
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let meta = std::fs::metadata(&path).unwrap();
            let state = meta.is_file().then(|| FileState {
                len: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                inode: meta.ino(),
                contents: std::fs::read(&path).unwrap(),
            });
            (name, state)
        })
        .collect()
}

/// Make an empty log of 1 MiB (its record area) at `path`.
pub fn make_log(path: &Path) {
    let _files = library_files();
    Rvm::create_log(path, 1 << 20).unwrap();
}

/// Make a small two-region segment with the library (not through rdsinit).
pub fn make_segment(path: &Path) {
    let _files = library_files();
    let header = segment::layout(
        4 * 4096,
        &[
            RegionSpec {
                length: 4096,
                address: 0x1000_0000_0000,
            },
            RegionSpec {
                length: 8192,
                address: 0x1000_0000_1000,
            },
        ],
    )
    .unwrap();
    segment::create(path, &header, CreateOptions::default()).unwrap();
}

/// Commit one transaction to `data` through `log` and close without truncating, so the log
/// keeps an unapplied record for the segment.
pub fn leave_unapplied_record(log: &Path, data: &Path) {
    let _files = library_files();
    let rvm = Rvm::open(log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(data, MapOptions::anywhere()) }.unwrap();
    let base = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base, &0x1234_5678_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    rvm.close().unwrap();
    let scan = rvm::log::LogReader::open(log).unwrap().scan().unwrap();
    assert!(
        !scan.records.is_empty(),
        "the record must still be in the log"
    );
}

/// The parameters a segment was made with, as the test expects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub data_len: u64,
    pub start_addr: u64,
    pub heap_len: u64,
    pub static_len: u64,
    pub nlists: u64,
    pub chunk_size: u64,
}

/// Segments are mapped at fixed addresses in this process: one at a time.
static MAPPING: Mutex<()> = Mutex::new(());

/// Check a segment made by rdsinit: the header's regions are the layout asked for, and the
/// heap loads with the library and passes its checker.
pub fn verify_segment(log: &Path, data: &Path, layout: Layout) {
    let header = segment::read_header(data).unwrap();
    assert_eq!(header.length_bytes, layout.data_len);
    assert_eq!(header.regions.len(), 2, "{header:?}");
    let (heap, statics) = (header.regions[0], header.regions[1]);
    assert_eq!(
        (heap.offset, heap.length, heap.address),
        (4096, layout.heap_len, layout.start_addr)
    );
    assert_eq!(
        (statics.offset, statics.length, statics.address),
        (
            4096 + layout.heap_len,
            layout.static_len,
            layout.start_addr + layout.heap_len
        )
    );
    assert_eq!(std::fs::metadata(data).unwrap().len(), layout.data_len);
    let _one_at_a_time = MAPPING.lock().unwrap_or_else(|e| e.into_inner());
    let _files = library_files();
    check_heap(log, data, layout);
}

/// Load the heap with the library and run its checker.
fn check_heap(log: &Path, data: &Path, layout: Layout) {
    let rvm = Rvm::open(log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(data, MapOptions::default()) }.unwrap();
    let heap = rvm::rds::Heap::load(&seg).unwrap();
    assert_eq!(heap.address() as u64, layout.start_addr);
    assert_eq!(heap.length() as u64, layout.heap_len);
    assert_eq!(
        heap.static_address() as u64,
        layout.start_addr + layout.heap_len
    );
    assert_eq!(heap.static_length() as u64, layout.static_len);
    let report = heap.check();
    assert!(report.is_ok(), "heap check: {report}");
    assert!(report.walk_complete);
    let stats = heap.statistics();
    assert_eq!(
        (stats.nlists, stats.chunk_size),
        (layout.nlists, layout.chunk_size)
    );
    assert_eq!(stats.allocated_bytes, 0);
    assert_eq!(stats.free_bytes, stats.capacity_bytes);
    // The static region is zero (a sample of it: the start and the end).
    let static_end = (layout.start_addr + layout.heap_len + layout.static_len) as usize;
    assert_eq!(seg.read::<u64>(heap.static_address()).unwrap(), 0);
    assert_eq!(seg.read::<u64>(static_end - 8).unwrap(), 0);
    // The heap works: allocate in a transaction.
    let mut tx = rvm.begin(rvm::BeginMode::Restore).unwrap();
    let block = heap.malloc(&mut tx, 100).unwrap();
    assert!(seg.region_of(block, 100).is_some());
    tx.abort().unwrap();
    drop(heap);
    rvm.unmap(&seg).unwrap();
    rvm.close().unwrap();
}

/// Disk usage of a file in bytes.
pub fn disk_usage(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}
