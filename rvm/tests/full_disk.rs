//! A full file system (issue 12, item 2): truncation used to write the segment through a
//! shared mapping and died of SIGBUS when the disk was full. Now every write is positional, so
//! a full disk is an `ENOSPC` error naming the file, nothing acknowledged is lost, and after
//! space is freed a reopen recovers everything.
//!
//! Each test mounts its own small tmpfs (the tests run as root, as CI does) and unmounts it at
//! the end, also when the test fails.
//!
//! On tmpfs, a page fault of a file *mapping* over a hole of a full file system allocates a
//! page and raises SIGBUS when there is none (a disk file system such as ext4 maps holes
//! without allocating). The mapping now maps large holes as anonymous memory, which
//! `the_first_touch_of_a_mapped_hole_on_a_full_tmpfs_is_not_a_sigbus` checks; the other tests
//! map the segment through a device that lends no file descriptor (anonymous memory filled by
//! reading the file), so each reaches the truncation and recovery write paths whatever the
//! mapping does, while the segment file's writes still go through `FileDevice`.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rvm::device::{Access, Device, DeviceRef, FileDevice};
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm};

const ENOSPC: i32 = 28;
/// Record area of the test logs.
const LOG_AREA_BYTES: u64 = 1 << 20;
/// The segment is larger than the file system: its file is sparse.
const SEGMENT_BYTES: u64 = 64 << 20;
const PIECE_BYTES: usize = 1000;

/// A tmpfs mounted for one test; unmounted when dropped (also while a failing test unwinds).
/// The tests of this file run one at a time (`_serial`): another test's `mount` or `umount`
/// child holds copies of this process's descriptors between its fork and its exec, and a
/// filler file unlinked in that window keeps its space until the child execs, so the space
/// the test just freed could still look used.
struct Tmpfs {
    dir: PathBuf,
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("rvm-full-disk-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed ({status}): these tests need root",
            dir.display()
        );
        Tmpfs {
            dir,
            _serial: serial,
        }
    }
    fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Write a file until the file system is full.
    fn fill(&self) -> PathBuf {
        let path = self.join("filler");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![0xeeu8; 4096];
        let mut at = file.metadata().unwrap().len();
        loop {
            match file.write_at(&block, at) {
                Ok(n) => at += n as u64,
                Err(e) if e.raw_os_error() == Some(ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A segment file device that lends no descriptor for mapping (see the module comment).
#[derive(Debug)]
struct Unmappable(FileDevice);

impl Device for Unmappable {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.0.preallocate(offset, len)
    }
    fn write_pieces(&self, pieces: &[(u64, &[u8])]) -> io::Result<()> {
        self.0.write_pieces(pieces)
    }
}

/// A log and a sparse segment on `fs`; returns the segment's path and its region's file offset.
fn create_files(fs: &Tmpfs) -> (PathBuf, PathBuf, u64) {
    let (log, data) = (fs.join("log"), fs.join("data"));
    Rvm::create_log(&log, LOG_AREA_BYTES).unwrap();
    let region = SEGMENT_BYTES - 4096;
    let header = segment::layout(
        SEGMENT_BYTES,
        &[RegionSpec {
            length: region,
            address: 0x3d00_0000_0000, // recorded only: the test maps it anywhere
        }],
    )
    .unwrap();
    let offset = header.regions[0].offset;
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    (log, data, offset)
}

fn map(rvm: &Rvm, data: &Path) -> usize {
    let dev: DeviceRef = Arc::new(Unmappable(
        FileDevice::open(data, Access::ReadWrite).unwrap(),
    ));
    // SAFETY: the device lends no descriptor to map (its regions are read into anonymous memory), so nothing can shorten the mapping.
    let seg = unsafe { rvm.map_device(dev, MapOptions::anywhere()) }.unwrap();
    seg.regions()[0].address
}

/// The bytes commit `n` writes: one piece on page `n * 5` (every piece on a page of its own,
/// so each needs a new block of the file).
fn piece(n: u64) -> (u64, Vec<u8>) {
    let offset = n * 5 * 4096 + n % 7 * 100;
    let bytes = (0..PIECE_BYTES)
        .map(|i| (n as u8) ^ (i as u8) | 1)
        .collect();
    (offset, bytes)
}

fn commit(rvm: &Rvm, base: usize, n: u64, mode: CommitMode) -> rvm::Result<()> {
    let (offset, bytes) = piece(n);
    let mut tx = rvm.begin(BeginMode::NoRestore)?;
    tx.modify_bytes(base + offset as usize, &bytes)?;
    tx.end(mode)
}

/// Every acknowledged commit's bytes are in the segment file.
fn assert_in_segment(data: &Path, region_offset: u64, commits: std::ops::Range<u64>) {
    let file = std::fs::File::open(data).unwrap();
    for n in commits {
        let (offset, bytes) = piece(n);
        let mut got = vec![0u8; bytes.len()];
        file.read_exact_at(&mut got, region_offset + offset)
            .unwrap();
        assert!(got == bytes, "commit {n} is not in {}", data.display());
    }
}

fn assert_enospc_naming(e: &Error, path: &Path) {
    let text = e.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("No space left on device"),
        "expected ENOSPC naming {}, got: {text}",
        path.display()
    );
}

/// The log's bytes, to show a refused open changed nothing.
fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn truncation_on_a_full_disk_is_enospc_not_sigbus_and_reopen_recovers() {
    let fs = Tmpfs::mount("truncate", "4M");
    let (log, data, region_offset) = create_files(&fs);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    let base = map(&rvm, &data);
    commit(&rvm, base, 0, CommitMode::Flush).unwrap();
    let filler = fs.fill();
    // The log's blocks were allocated when it was created: commits need no space.
    const COMMITS: u64 = 200;
    for n in 1..COMMITS {
        commit(&rvm, base, n, CommitMode::Flush).unwrap();
    }
    let err = rvm.truncate().unwrap_err();
    assert_enospc_naming(&err, &data);
    assert!(
        rvm.query().used_bytes > 0,
        "the records stay in the log after a failed truncation"
    );
    // Closing needs no space: it marks the log clean and leaves the records in it.
    rvm.close().unwrap();

    // Recovery applies with the same writer: refused cleanly, the log left as it was.
    let before = bytes_of(&log);
    let err = Rvm::open(&log, Options::default()).unwrap_err();
    assert_enospc_naming(&err, &data);
    assert!(
        before == bytes_of(&log),
        "a refused recovery changed the log"
    );

    std::fs::remove_file(filler).unwrap();
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    rvm.wait_for_truncation().unwrap();
    assert_eq!(rvm.query().used_bytes, 0);
    rvm.close().unwrap();
    assert_in_segment(&data, region_offset, 0..COMMITS);
}

/// A sparse segment mapped from its file on a full tmpfs: the first write to each page of a
/// hole used to make tmpfs allocate a page for the hole, and with none left the process died
/// of SIGBUS inside `Transaction::modify_bytes`. Large holes are now anonymous memory, so the
/// commits succeed and the full disk shows up as a clean `ENOSPC` at truncation.
#[test]
fn the_first_touch_of_a_mapped_hole_on_a_full_tmpfs_is_not_a_sigbus() {
    let fs = Tmpfs::mount("hole", "4M");
    let (log, data, region_offset) = create_files(&fs);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the segment file is in the test's own file system; nothing shortens it.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let base = seg.regions()[0].address;
    let filler = fs.fill();
    const COMMITS: u64 = 100;
    for n in 0..COMMITS {
        commit(&rvm, base, n, CommitMode::Flush).unwrap();
    }
    for n in 0..COMMITS {
        let (offset, bytes) = piece(n);
        let mut got = vec![0u8; bytes.len()];
        seg.read_bytes(base + offset as usize, &mut got).unwrap();
        assert!(got == bytes, "commit {n} is not in memory");
    }
    let err = rvm.truncate().unwrap_err();
    assert_enospc_naming(&err, &data);
    drop(seg);
    rvm.close().unwrap();
    std::fs::remove_file(filler).unwrap();
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    assert_eq!(rvm.query().used_bytes, 0);
    rvm.close().unwrap();
    assert_in_segment(&data, region_offset, 0..COMMITS);
}

#[test]
fn background_truncation_on_a_full_disk_fails_the_instance_and_loses_nothing() {
    let fs = Tmpfs::mount("background", "4M");
    let (log, data, region_offset) = create_files(&fs);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(10)).unwrap();
    let base = map(&rvm, &data);
    let filler = fs.fill();
    // Commit until the failed background truncation surfaces (the log holds about 1,000 of
    // these records, so it must fill several times over without truncation).
    let mut acknowledged = 0;
    let err = loop {
        match commit(&rvm, base, acknowledged, CommitMode::Flush) {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 5000, "a full disk never stopped the commits");
    };
    assert!(
        err.to_string().contains("No space left on device"),
        "the instance reports the cause: {err}"
    );
    assert!(commit(&rvm, base, acknowledged, CommitMode::Flush).is_err());
    drop(rvm);
    std::fs::remove_file(filler).unwrap();
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    rvm.close().unwrap();
    assert_in_segment(&data, region_offset, 0..acknowledged);
}

#[test]
fn a_sparse_log_on_a_full_disk_fails_the_commit_cleanly() {
    let fs = Tmpfs::mount("sparse-log", "4M");
    let (log, data, region_offset) = create_files(&fs);
    // A log whose record area is a hole, as logs created before allocation was added are.
    {
        let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        let area_offset = rvm::format::log::RECORD_AREA_OFFSET;
        // SAFETY: a valid descriptor owned by `file`; punching a hole changes no memory.
        let rc = unsafe {
            libc::fallocate(
                std::os::unix::io::AsRawFd::as_raw_fd(&file),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                area_offset as libc::off_t,
                LOG_AREA_BYTES as libc::off_t,
            )
        };
        assert_eq!(rc, 0, "punch a hole: {}", io::Error::last_os_error());
    }
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    let base = map(&rvm, &data);
    const COMMITS: u64 = 20;
    for n in 0..COMMITS {
        commit(&rvm, base, n, CommitMode::Flush).unwrap();
    }
    let filler = fs.fill();
    // Records of one page or more need log blocks that are not there.
    let err = loop {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.modify_bytes(base, &[7u8; 8192]).unwrap();
        if let Err(e) = tx.end(CommitMode::Flush) {
            break e;
        }
    };
    assert_enospc_naming(&err, &log);
    assert!(
        commit(&rvm, base, COMMITS, CommitMode::Flush).is_err(),
        "the instance stays failed after a log write failed"
    );
    drop(rvm);
    std::fs::remove_file(filler).unwrap();
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    rvm.close().unwrap();
    assert_in_segment(&data, region_offset, 0..COMMITS);
}

#[test]
fn creating_a_log_on_a_full_disk_is_enospc_and_leaves_no_file() {
    let fs = Tmpfs::mount("create", "1M");
    let log = fs.join("log");
    let err = Rvm::create_log(&log, 2 << 20).unwrap_err();
    assert_enospc_naming(&err, &log);
    assert!(
        !log.exists(),
        "a failed create left {} behind",
        log.display()
    );
}
