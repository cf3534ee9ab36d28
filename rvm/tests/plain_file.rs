//! Plain-file regions (`Rvm::map_file`): mapping a headerless file in each mode, commits
//! recovered after a close and after a real crash (a child process killed with SIGKILL),
//! identity and length checks at recovery, ranges outside the file, unmap and remap.
//!
//! A plain binary (`harness = false`), like `kill9`: run without arguments it runs every case;
//! the crash case re-runs it with `RVM_PLAIN_FILE_CHILD` set to be the child that is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use rvm::format::log::{SegmentKind, LOG_FORMAT_VERSION, LOG_FORMAT_VERSION_PLAIN_FILES};
use rvm::log::LogReader;
use rvm::segment::{self, CreateOptions};
use rvm::{BeginMode, CommitMode, Error, FileMapMode, FileMapOptions, MapOptions, Options, Rvm};

mod support;
use support::Dir;

/// Not a multiple of the page size: the last page of the file is partial.
const FILE_BYTES: usize = 3 * 4096 + 1808;

fn pattern() -> Vec<u8> {
    (0..FILE_BYTES).map(|i| (i * 7 + 3) as u8).collect()
}

/// A log and a plain file holding `pattern()`.
fn make(dir: &Dir) -> (PathBuf, PathBuf) {
    let (log, file) = (dir.path("log"), dir.path("plain"));
    Rvm::create_log(&log, 256 * 1024).unwrap();
    std::fs::write(&file, pattern()).unwrap();
    (log, file)
}

/// Open without background truncation, so committed records stay in the log until closed
/// (close does not truncate): the next open has them to replay.
fn open(log: &Path) -> Rvm {
    Rvm::open(log, Options::default().truncate_threshold(0)).unwrap()
}

fn mode(mode: FileMapMode) -> FileMapOptions {
    FileMapOptions {
        mode,
        ..FileMapOptions::default()
    }
}

fn read_all(seg: &rvm::Segment) -> Vec<u8> {
    let r = seg.regions()[0];
    let mut buf = vec![0u8; r.length];
    seg.read_bytes(r.address, &mut buf).unwrap();
    buf
}

/// Commit `value` over `[offset, offset+len)` of the mapped file (file offsets).
fn commit(rvm: &Rvm, seg: &rvm::Segment, offset: usize, len: usize, value: u8, how: CommitMode) {
    let base = seg.regions()[0].address - seg.regions()[0].segment_offset as usize;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(base + offset, len, value).unwrap();
    tx.end(how).unwrap();
}

fn status_version(log: &Path) -> u32 {
    LogReader::open(log).unwrap().status().version()
}

fn each_mode_maps_the_file_and_recovers_commits_after_close() {
    for m in [FileMapMode::Private, FileMapMode::Copy, FileMapMode::Zeroed] {
        let dir = Dir::new("modes");
        let (log, file) = make(&dir);
        let mut expected = pattern();
        {
            let rvm = open(&log);
            // SAFETY: the file lives in this test's private directory; nothing shortens it.
            let seg = unsafe { rvm.map_file(&file, mode(m)) }.unwrap();
            assert_eq!(seg.kind(), SegmentKind::PlainFile);
            let r = seg.regions()[0];
            assert_eq!((r.segment_offset, r.length), (0, FILE_BYTES), "{m:?}");
            let shown = read_all(&seg);
            if m == FileMapMode::Zeroed {
                assert!(shown.iter().all(|&b| b == 0), "{m:?}: not zeroed");
            } else {
                assert_eq!(shown, expected, "{m:?}: memory is not the file");
            }
            commit(&rvm, &seg, 100, 100, 0xa1, CommitMode::Flush);
            commit(&rvm, &seg, 4090, 20, 0xa2, CommitMode::NoFlush);
            // The last, partial page.
            commit(&rvm, &seg, FILE_BYTES - 8, 8, 0xa3, CommitMode::Flush);
            for (o, l, v) in [
                (100, 100, 0xa1),
                (4090, 20, 0xa2),
                (FILE_BYTES - 8, 8, 0xa3),
            ] {
                expected[o..o + l].fill(v);
            }
            assert_eq!(status_version(&log), LOG_FORMAT_VERSION_PLAIN_FILES);
            rvm.close().unwrap();
        }
        // Reopening replays the records into the file, found by its path.
        let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            expected,
            "{m:?}: file after recovery"
        );
        // SAFETY: as above.
        let seg = unsafe { rvm.map_file(&file, mode(FileMapMode::Copy)) }.unwrap();
        assert_eq!(read_all(&seg), expected, "{m:?}: mapped again");
        rvm.close().unwrap();
    }
}

/// The child: commit with flush, and with no_flush followed by an explicit flush, report
/// each as acknowledged, leave a transaction uncommitted and one committed no_flush and never
/// flushed, then wait to be killed.
fn child(dir: &Path) {
    let rvm = Rvm::open(dir.join("log"), Options::default().truncate_threshold(0)).unwrap();
    let options = FileMapOptions {
        offset: 4096,
        length: 8192,
        mode: FileMapMode::Private,
        ..FileMapOptions::default()
    };
    // SAFETY: the file lives in the parent test's private directory; nothing shortens it.
    let seg = unsafe { rvm.map_file(dir.join("plain"), options) }.unwrap();
    commit(&rvm, &seg, 4096, 64, 0xb1, CommitMode::Flush);
    commit(&rvm, &seg, 8000, 300, 0xb2, CommitMode::NoFlush);
    rvm.flush().unwrap();
    println!("acknowledged");
    let base = seg.regions()[0].address - 4096;
    let mut open_tx = rvm.begin(BeginMode::Restore).unwrap();
    open_tx.fill(base + 5000, 100, 0xee).unwrap();
    println!("waiting");
    std::thread::sleep(std::time::Duration::from_secs(60));
    drop(open_tx);
}

fn a_child_killed_after_committing_recovers_exactly_the_committed_bytes() {
    let dir = Dir::new("kill");
    let (log, file) = make(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("RVM_PLAIN_FILE_CHILD", &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "acknowledged");
    assert_eq!(lines.next().unwrap().unwrap(), "waiting");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Nothing reached the file yet: only the log holds the commits.
    assert_eq!(std::fs::read(&file).unwrap(), pattern());
    let mut expected = pattern();
    expected[4096..4096 + 64].fill(0xb1);
    expected[8000..8300].fill(0xb2);
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), expected);
    rvm.close().unwrap();
}

/// Map, commit, close: the log keeps records for the file (nothing truncated them).
fn leave_records(log: &Path, file: &Path) {
    let rvm = open(log);
    // SAFETY: the file lives in this test's private directory; nothing shortens it.
    let seg = unsafe { rvm.map_file(file, FileMapOptions::default()) }.unwrap();
    commit(&rvm, &seg, 10, 10, 0xc1, CommitMode::Flush);
    rvm.close().unwrap();
}

fn expect_mismatch(log: &Path, file: &Path, says: &str) {
    let log_before = std::fs::read(log).unwrap();
    let file_before = std::fs::read(file).ok();
    match Rvm::open(log, Options::default()) {
        Err(e @ Error::PlainFileMismatch { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&file.display().to_string()), "{text}");
            assert!(text.contains(says), "{text}");
            assert_eq!(e.code_name(), "RVM_EIO");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a changed plain file was accepted ({says})"),
    }
    assert_eq!(std::fs::read(log).unwrap(), log_before, "the log changed");
    assert_eq!(std::fs::read(file).ok(), file_before, "the file changed");
}

fn a_replaced_resized_or_missing_file_is_refused_at_recovery() {
    let dir = Dir::new("identity");
    let (log, file) = make(&dir);
    let file = std::fs::canonicalize(file).unwrap();
    leave_records(&log, &file);
    // Another inode at the same path, same length and bytes.
    let other = dir.path("other");
    std::fs::write(&other, pattern()).unwrap();
    let original = dir.path("original");
    std::fs::rename(&file, &original).unwrap();
    std::fs::rename(&other, &file).unwrap();
    expect_mismatch(&log, &file, "replaced");
    // The original file back, but one byte shorter.
    std::fs::rename(&original, &file).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(FILE_BYTES as u64 - 1).unwrap();
    expect_mismatch(&log, &file, "shortened");
    f.set_len(FILE_BYTES as u64).unwrap();
    drop(f);
    // Gone.
    std::fs::rename(&file, &original).unwrap();
    assert!(matches!(
        Rvm::open(&log, Options::default()),
        Err(Error::PlainFileMismatch { ref detail, .. }) if detail.contains("does not exist")
    ));
    // Back as it was: recovered.
    std::fs::rename(&original, &file).unwrap();
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    assert_eq!(std::fs::read(&file).unwrap()[10..20], [0xc1; 10]);
    rvm.close().unwrap();
}

/// A log whose entry for the file says it is shorter than a record's range (a crafted or
/// damaged log, the file shortened to match): recovery refuses the range, naming the file and
/// the offset, and writes nothing.
fn a_logged_range_past_the_end_of_the_file_is_refused_at_recovery() {
    let dir = Dir::new("past-end");
    let (log, file) = make(&dir);
    {
        let rvm = open(&log);
        // SAFETY: the file lives in this test's private directory; nothing shortens it.
        let seg = unsafe { rvm.map_file(&file, FileMapOptions::default()) }.unwrap();
        commit(&rvm, &seg, FILE_BYTES - 8, 8, 0xe1, CommitMode::Flush);
        rvm.close().unwrap();
    }
    let short = (FILE_BYTES - 4096) as u64;
    let reader = LogReader::open(&log).unwrap();
    let mut status = reader.status().clone();
    drop(reader);
    status.segments[0].length_bytes = short;
    status.sequence += 1;
    let slot = status.slot() * rvm::format::log::STATUS_SLOT_SIZE;
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.write_all_at(&status.encode(), slot).unwrap();
    drop(f);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(short)
        .unwrap();
    let before = std::fs::read(&file).unwrap();
    match Rvm::open(&log, Options::default()) {
        Err(Error::RangeOutsideSegment {
            segment,
            segment_offset,
            ..
        }) => {
            assert!(segment.ends_with("plain"), "{segment}");
            assert_eq!(segment_offset, (FILE_BYTES - 8) as u64);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a range past the end of the file was accepted"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), before, "the file changed");
}

fn ranges_outside_the_file_and_bad_addresses_are_refused() {
    let dir = Dir::new("range");
    let (log, file) = make(&dir);
    let rvm = open(&log);
    let cases = [
        (FILE_BYTES as u64, 0, None, "offset"),
        (8192, 8192, None, "length"),
        (0, u64::MAX, None, "length"),
        (0, 0, Some(0x1234_5001), "address"),
    ];
    for (offset, length, address, parameter) in cases {
        let options = FileMapOptions {
            offset,
            length,
            address,
            ..FileMapOptions::default()
        };
        // SAFETY: the file lives in this test's private directory; nothing shortens it.
        match unsafe { rvm.map_file(&file, options) } {
            Err(Error::InvalidArgument { parameter: p, .. }) => assert_eq!(p, parameter),
            Err(e) => panic!("{parameter}: wrong error {e}"),
            Ok(_) => panic!("{parameter}: accepted"),
        }
    }
    // SAFETY: as above.
    let missing = unsafe { rvm.map_file(dir.path("missing"), FileMapOptions::default()) };
    assert!(
        matches!(missing, Err(Error::Io { ref path, .. }) if path.ends_with("missing")),
        "{missing:?}"
    );
    // A path the log cannot record as it is (not UTF-8) is refused by name.
    use std::os::unix::ffi::OsStrExt;
    let odd = dir.path(std::ffi::OsStr::from_bytes(b"odd-\xff"));
    std::fs::write(&odd, pattern()).unwrap();
    // SAFETY: as above.
    let refused = unsafe { rvm.map_file(&odd, FileMapOptions::default()) };
    assert!(
        matches!(
            refused,
            Err(Error::InvalidArgument {
                parameter: "path",
                ..
            })
        ),
        "{refused:?}"
    );
    // Nothing was registered by the refusals: the log holds no plain file.
    assert_eq!(status_version(&log), LOG_FORMAT_VERSION);
    // Clamped, the classic way: the end of the file.
    let options = FileMapOptions {
        offset: 8192 + 5,
        length: 1 << 20,
        clamp_length: true,
        ..FileMapOptions::default()
    };
    // SAFETY: as above.
    let seg = unsafe { rvm.map_file(&file, options) }.unwrap();
    let r = seg.regions()[0];
    assert_eq!((r.segment_offset, r.length), (8192, FILE_BYTES - 8192));
    // Bytes of the file outside the mapped span are not in any region.
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    assert!(matches!(
        tx.set_range(r.address - 8, 8),
        Err(Error::NotMapped { .. })
    ));
    tx.abort().unwrap();
    rvm.close().unwrap();
}

fn unmap_and_map_again_shows_commits_and_a_second_map_is_refused() {
    let dir = Dir::new("remap");
    let (log, file) = make(&dir);
    let rvm = open(&log);
    let options = FileMapOptions {
        address: Some(0x2100_0000_0000),
        ..FileMapOptions::default()
    };
    // SAFETY: the file lives in this test's private directory; nothing shortens it.
    let seg = unsafe { rvm.map_file(&file, options) }.unwrap();
    assert_eq!(seg.regions()[0].address, 0x2100_0000_0000);
    // SAFETY: as above.
    let again = unsafe { rvm.map_file(&file, mode(FileMapMode::Copy)) };
    assert!(
        matches!(again, Err(Error::AlreadyMapped { .. })),
        "{again:?}"
    );
    commit(&rvm, &seg, 0, 16, 0xd1, CommitMode::NoFlush);
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.set_range(seg.regions()[0].address + 100, 4).unwrap();
    assert!(matches!(rvm.unmap(&seg), Err(Error::Uncommitted { .. })));
    tx.abort().unwrap();
    rvm.unmap(&seg).unwrap();
    assert!(!seg.is_mapped());
    // Mapped again (another mode, another place): the committed bytes are there.
    // SAFETY: as above.
    let seg = unsafe { rvm.map_file(&file, mode(FileMapMode::Copy)) }.unwrap();
    assert_eq!(read_all(&seg)[..16], [0xd1; 16]);
    assert_eq!(std::fs::read(&file).unwrap()[..16], [0xd1; 16]);
    rvm.close().unwrap();
}

fn several_ranges_of_one_file_map_at_once_but_never_overlapping_ones() {
    let dir = Dir::new("ranges");
    let (log, file) = make(&dir);
    let range = |offset, length| FileMapOptions {
        offset,
        length,
        ..FileMapOptions::default()
    };
    {
        let rvm = open(&log);
        // SAFETY: the file lives in this test's private directory; nothing shortens it.
        let first = unsafe { rvm.map_file(&file, range(0, 4096)) }.unwrap();
        // SAFETY: as above.
        let last = unsafe { rvm.map_file(&file, range(8192, 0)) }.unwrap();
        assert_eq!(
            (last.regions()[0].segment_offset, last.regions()[0].length),
            (8192, FILE_BYTES - 8192)
        );
        // SAFETY: as above.
        let overlapping = unsafe { rvm.map_file(&file, range(4000, 5000)) };
        assert!(
            matches!(overlapping, Err(Error::AlreadyMapped { ref path }) if path.contains("0..4096")),
            "{overlapping:?}"
        );
        assert_eq!(
            rvm.query().segments.len(),
            1,
            "one table entry for the file"
        );
        commit(&rvm, &first, 10, 10, 0xf1, CommitMode::Flush);
        commit(&rvm, &last, 9000, 10, 0xf2, CommitMode::Flush);
        // Unmapping one range leaves the other mapped and usable.
        rvm.unmap(&first).unwrap();
        assert!(!first.is_mapped() && last.is_mapped());
        commit(&rvm, &last, 9500, 10, 0xf3, CommitMode::NoFlush);
        // The middle page, now free of neighbours' overlaps, maps (and shows the file).
        // SAFETY: as above.
        let middle = unsafe { rvm.map_file(&file, range(4096, 4096)) }.unwrap();
        assert_eq!(read_all(&middle), pattern()[4096..8192]);
        rvm.close().unwrap();
    }
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    let mut expected = pattern();
    expected[10..20].fill(0xf1);
    expected[9000..9010].fill(0xf2);
    expected[9500..9510].fill(0xf3);
    assert_eq!(std::fs::read(&file).unwrap(), expected);
    rvm.close().unwrap();
}

fn segments_and_plain_files_share_a_log() {
    let dir = Dir::new("shared");
    let (log, file) = make(&dir);
    let data = dir.path("data");
    let header = support::one_region_layout(65536, 0x1000_0000_0000);
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    {
        let rvm = open(&log);
        // SAFETY: both files live in this test's private directory; nothing shortens them.
        let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
        // SAFETY: as above.
        let plain = unsafe { rvm.map_file(&file, FileMapOptions::default()) }.unwrap();
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.write(seg.regions()[0].address, &0x1122_3344u32).unwrap();
        tx.write(plain.regions()[0].address + 40, &0x5566_7788u32)
            .unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let kinds: Vec<SegmentKind> = rvm.query().segments.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [SegmentKind::Segment, SegmentKind::PlainFile]);
        rvm.close().unwrap();
    }
    let rvm = Rvm::open(&log, Options::default().background_recovery(false)).unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap()[40..44],
        0x5566_7788u32.to_le_bytes()
    );
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    assert_eq!(
        seg.read::<u32>(seg.regions()[0].address).unwrap(),
        0x1122_3344
    );
    rvm.close().unwrap();
}

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var("RVM_PLAIN_FILE_CHILD") {
        child(Path::new(&dir));
        return ExitCode::SUCCESS;
    }
    let cases: [(&str, fn()); 8] = [
        (
            "several_ranges_of_one_file_map_at_once_but_never_overlapping_ones",
            several_ranges_of_one_file_map_at_once_but_never_overlapping_ones,
        ),
        (
            "a_logged_range_past_the_end_of_the_file_is_refused_at_recovery",
            a_logged_range_past_the_end_of_the_file_is_refused_at_recovery,
        ),
        (
            "each_mode_maps_the_file_and_recovers_commits_after_close",
            each_mode_maps_the_file_and_recovers_commits_after_close,
        ),
        (
            "a_child_killed_after_committing_recovers_exactly_the_committed_bytes",
            a_child_killed_after_committing_recovers_exactly_the_committed_bytes,
        ),
        (
            "a_replaced_resized_or_missing_file_is_refused_at_recovery",
            a_replaced_resized_or_missing_file_is_refused_at_recovery,
        ),
        (
            "ranges_outside_the_file_and_bad_addresses_are_refused",
            ranges_outside_the_file_and_bad_addresses_are_refused,
        ),
        (
            "unmap_and_map_again_shows_commits_and_a_second_map_is_refused",
            unmap_and_map_again_shows_commits_and_a_second_map_is_refused,
        ),
        (
            "segments_and_plain_files_share_a_log",
            segments_and_plain_files_share_a_log,
        ),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(case) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
