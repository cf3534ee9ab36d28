//! Re-running rdsinit (issue 12, item 1): the 17th run on one log used to overwrite DATA, then
//! fail because the log's segment table was full, leaving no heap. Also what overwriting DATA
//! keeps (the old file whole when interrupted, permissions, symbolic links) and what it refuses.

mod support;

use support::*;

const REPEATED: [&str; 6] = ["0x100000", "0x70000000", "0x80000", "0x8000", "80", "32"];

/// The segments the log's table names (free entries left out).
fn named_segments(log: &std::path::Path) -> usize {
    rvm::log::LogReader::open(log)
        .unwrap()
        .status()
        .segments
        .iter()
        .filter(|e| e.uuid != rvm::Uuid::NIL)
        .count()
}

#[test]
fn rerunning_rdsinit_on_one_log_never_fills_its_segment_table() {
    let dir = TempDir::new("rerun");
    let (log, data) = (dir.join("log"), dir.join("data"));
    make_log(&log);
    for round in 1..=20 {
        let run = rdsinit(&dir, &args(&["-f", "log", "data"], &REPEATED));
        assert_eq!(run.code, 0, "run {round}:\n{}", run.all());
        assert!(run.stdout.contains("Heap check: ok"), "{}", run.stdout);
        // The new segment replaced the old one's entry.
        assert_eq!(named_segments(&log), 1, "run {round}");
        assert_eq!(dir.names(), ["data", "log"], "run {round}");
    }
    verify_segment(
        &log,
        &data,
        Layout {
            data_len: 0x10_0000,
            start_addr: 0x7000_0000,
            heap_len: 0x8_0000,
            static_len: 0x8000,
            nlists: 80,
            chunk_size: 32,
        },
    );
}

/// Run rdsinit under a file-size limit (the shell's `ulimit -f`, with SIGXFSZ ignored so the
/// write fails with EFBIG instead of killing the process): a full disk, in effect.
fn rdsinit_with_file_size_limit(dir: &TempDir, blocks: u64, args: &[&str]) -> Run {
    let script = format!("ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\"");
    let spawning = spawning();
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .current_dir(&dir.path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(spawning);
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn an_interrupted_overwrite_leaves_the_old_data_file_whole() {
    let dir = TempDir::new("interrupted");
    let (log, data) = (dir.join("log"), dir.join("data"));
    make_log(&log);
    rdsinit(&dir, &args(&["-f", "log", "data"], &REPEATED)).assert_ok();
    let old = std::fs::read(&data).unwrap();
    // A 64 MiB data file cannot be written under a 4 MiB limit (8192 blocks of 512 bytes;
    // 8 MiB for a shell counting KiB); the log (1 MiB + 64 KiB) and the old data fit.
    let run = rdsinit_with_file_size_limit(
        &dir,
        8192,
        &[
            "-f",
            "log",
            "data",
            "64M",
            "0x70000000",
            "0x3000000",
            "0x100000",
            "80",
            "32",
        ],
    );
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(
        run.stderr.contains("data is unchanged") && !run.stderr.contains("run rdsinit again"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        old,
        "DATA is byte for byte as it was"
    );
    assert_eq!(
        dir.names(),
        ["data", "log"],
        "the temporary file is removed"
    );
    verify_segment(
        &log,
        &data,
        Layout {
            data_len: 0x10_0000,
            start_addr: 0x7000_0000,
            heap_len: 0x8_0000,
            static_len: 0x8000,
            nlists: 80,
            chunk_size: 32,
        },
    );
}

#[test]
fn a_log_where_data_would_be_built_is_refused_before_anything_changes() {
    let dir = TempDir::new("buildpath");
    make_log(&dir.join("data.rdsinit-tmp"));
    make_segment(&dir.join("data"));
    let before = snapshot(&dir);
    let run = rdsinit(&dir, &args(&["-f", "data.rdsinit-tmp", "data"], &REPEATED));
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("would be built"), "{}", run.stderr);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn overwriting_data_keeps_its_permissions_and_follows_a_symbolic_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    make_log(&dir.join("log"));
    std::fs::create_dir(dir.join("real")).unwrap();
    make_segment(&dir.join("real/data"));
    std::fs::set_permissions(
        dir.join("real/data"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("real/data", dir.join("data")).unwrap();
    rdsinit(&dir, &args(&["-f", "log", "data"], &REPEATED)).assert_ok();
    assert!(std::fs::symlink_metadata(dir.join("data"))
        .unwrap()
        .file_type()
        .is_symlink());
    let meta = std::fs::metadata(dir.join("real/data")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.len(), 0x10_0000);
    assert_eq!(
        std::fs::read_dir(dir.join("real")).unwrap().count(),
        1,
        "no temporary file is left"
    );
}

/// Issue 12, item 6: a segment with unapplied records whose file is at its path hint but has a
/// damaged header was called "not there". rdsinit now says what is wrong with it, points to
/// rvmutl (not to a library option), and changes nothing.
#[test]
fn a_damaged_segment_with_unapplied_records_is_named_with_its_damage() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("damaged-other");
    let (log, other) = (dir.join("log"), dir.join("other"));
    make_log(&log);
    make_segment(&other);
    leave_unapplied_record(&log, &other);
    // Format version 2 (offset 8; FORMAT.md).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&other)
        .unwrap();
    f.write_all_at(&2u32.to_le_bytes(), 8).unwrap();
    drop(f);
    let before = snapshot(&dir);
    let run = rdsinit(&dir, &args(&["-f", "log", "data"], &REPEATED));
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stderr.contains("segment format version 2")
            && run.stderr.contains("rvmutl recover")
            && !run.stderr.contains("not there")
            && !run.stderr.contains("Options::"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&dir), before);
}
