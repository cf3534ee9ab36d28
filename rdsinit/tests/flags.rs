//! The modern interface, run with pipes: one command making log and segment, dry runs,
//! confirmation from a pipe, `--force`, `--zero`/`--fallocate`, `--round`, several segments on
//! one log, and the warning for an occupied address range.

mod support;

use rvm::{BeginMode, CommitMode, Options, Rvm};
use support::*;

#[test]
fn one_command_creates_log_and_sparse_1g_segment() {
    let dir = TempDir::new("modern");
    let run = rdsinit(
        &dir,
        &[
            "--log-size",
            "30M",
            "log",
            "data",
            "--data-len",
            "1G",
            "--yes",
        ],
    );
    run.assert_ok();
    // 30 MiB of records plus 64 KiB of status blocks, as `rvmutl init_log log 30M` makes.
    assert_eq!(
        std::fs::metadata(dir.join("log")).unwrap().len(),
        (30 << 20) + (64 << 10)
    );
    let usage = disk_usage(&dir.join("data"));
    assert!(usage < 1 << 20, "the data file uses {usage} bytes on disk");
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 1 << 30,
            start_addr: 0x5000_0000,
            heap_len: (1 << 30) - (1 << 20) - 4096,
            static_len: 1 << 20,
            nlists: 80,
            chunk_size: 64,
        },
    );
}

#[test]
fn dry_run_validates_and_touches_nothing() {
    let dir = TempDir::new("dry");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    let run = rdsinit(
        &dir,
        &args(&["--dry-run", "-f", "log", "data"], &CLASSIC_1G),
    );
    run.assert_ok();
    assert!(run.stdout.contains("dry run"), "{}", run.stdout);
    assert!(
        run.stdout.contains("0x70000000..0xafefd000"),
        "{}",
        run.stdout
    );
    // Without -f a dry run asks nothing either.
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "--json",
            "--log-size",
            "1M",
            "newlog",
            "data",
            "--data-len",
            "1G",
        ],
    );
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["log"]["action"], "would_create");
    assert_eq!(v["parameters"]["heap_len"], (1u64 << 30) - (1 << 20) - 4096);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn confirmation_from_a_pipe() {
    let dir = TempDir::new("confirm");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    for (answer, code) in [("q\n", 1), ("", 1), ("maybe\nq\n", 1)] {
        let run = rdsinit_in(&dir.path, &args(&["log", "data"], &TINY), answer);
        assert_eq!(run.code, code, "{answer:?}: {}", run.all());
        assert!(run.stdout.contains("The following parameters are chosen:"));
        assert!(run
            .stdout
            .contains("Do you agree with these parameters ? (y|n|q)"));
        assert!(run
            .stdout
            .contains("rdsinit quit. No permanent change is made"));
        assert_eq!(snapshot(&dir), before, "{answer:?}");
    }
    let run = rdsinit_in(&dir.path, &args(&["log", "data"], &TINY), "y\n");
    run.assert_ok();
    assert!(
        run.stdout
            .contains("   heap length:          0x1000 (4096)"),
        "{}",
        run.stdout
    );
    // The modern flags ask the same question.
    let run = rdsinit_in(&dir.path, &["log", "data2", "--data-len", "2M"], "y\n");
    run.assert_ok();
    assert!(run.stdout.contains("Do you agree"));
    assert!(dir.join("data2").exists());
}

#[test]
fn force_overwrites_a_segment_with_unapplied_records() {
    let dir = TempDir::new("force");
    let (log, data) = (dir.join("log"), dir.join("data"));
    make_log(&log);
    make_segment(&data);
    leave_unapplied_record(&log, &data);
    let run = rdsinit(&dir, &args(&["-f", "--force", "log", "data"], &TINY));
    run.assert_ok();
    assert!(run.stderr.contains("unapplied"), "{}", run.stderr);
    verify_segment(
        &log,
        &data,
        Layout {
            data_len: 3 * 4096,
            start_addr: 0x5000_0000,
            heap_len: 4096,
            static_len: 4096,
            nlists: 16,
            chunk_size: 64,
        },
    );
}

#[test]
fn force_reinitializes_an_empty_log() {
    let dir = TempDir::new("reinit");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &[
            "--log-size",
            "3M",
            "--force",
            "log",
            "data",
            "--data-len",
            "2M",
            "--yes",
        ],
    );
    run.assert_ok();
    assert!(run.stdout.contains("reinitialized"), "{}", run.stdout);
    assert_eq!(
        std::fs::metadata(dir.join("log")).unwrap().len(),
        (3 << 20) + (64 << 10)
    );
}

#[test]
fn zero_and_fallocate_allocate_every_block() {
    let dir = TempDir::new("zero");
    make_log(&dir.join("log"));
    for (flag, name) in [("--zero", "zeroed"), ("--fallocate", "allocated")] {
        let run = rdsinit(
            &dir,
            &[
                "log",
                name,
                "--data-len",
                "1M",
                "--static-len",
                "64K",
                flag,
                "--yes",
            ],
        );
        run.assert_ok();
        // Not a terminal: no progress bar.
        assert!(
            !run.stderr.contains("rdsinit: allocating"),
            "{}",
            run.stderr
        );
        assert!(disk_usage(&dir.join(name)) >= 1 << 20, "{flag}");
        verify_segment(
            &dir.join("log"),
            &dir.join(name),
            Layout {
                data_len: 1 << 20,
                start_addr: 0x5000_0000,
                heap_len: (1 << 20) - (64 << 10) - 4096,
                static_len: 64 << 10,
                nlists: 80,
                chunk_size: 64,
            },
        );
    }
}

#[test]
fn round_flag_rounds_given_values_up() {
    let dir = TempDir::new("round");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &[
            "log",
            "data",
            "--data-len",
            "1M",
            "--start-addr",
            "0x50000010",
            "--heap-len",
            "5000",
            "--static-len",
            "5000",
            "--chunk-size",
            "33",
            "--round",
            "--yes",
        ],
    );
    run.assert_ok();
    assert!(
        run.stdout
            .contains("heap length 0x1388 (5000) rounded up to 0x2000 (8192)"),
        "{}",
        run.stdout
    );
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 1 << 20,
            start_addr: 0x5000_1000,
            heap_len: 8192,
            static_len: 8192,
            nlists: 80,
            chunk_size: 40,
        },
    );
}

#[test]
fn one_log_serves_several_segments() {
    let dir = TempDir::new("several");
    make_log(&dir.join("log"));
    for name in ["a", "b", "c"] {
        rdsinit(&dir, &["log", name, "--data-len", "2M", "--yes"]).assert_ok();
    }
    // Running again over an existing segment replaces it.
    let run = rdsinit(&dir, &["log", "a", "--data-len", "4M", "--yes"]);
    run.assert_ok();
    assert!(run.stderr.contains("will be overwritten"), "{}", run.stderr);
    assert_eq!(std::fs::metadata(dir.join("a")).unwrap().len(), 4 << 20);
}

#[test]
fn a_log_naming_a_plain_file_still_serves_rdsinit() {
    let dir = TempDir::new("plain-file");
    let (log, plain) = (dir.join("log"), dir.join("plain"));
    make_log(&log);
    std::fs::write(&plain, vec![0u8; 3 * 4096]).unwrap();
    {
        // A plain file with a committed record left in the log (close does not truncate).
        let _files = library_files();
        let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
        // SAFETY: the file lives in this test's private directory; nothing shortens it.
        let seg = unsafe { rvm.map_file(&plain, rvm::FileMapOptions::default()) }.unwrap();
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.fill(seg.regions()[0].address + 4096, 16, 0x77).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        rvm.close().unwrap();
    }
    // DATA at the plain file's path would lose its records: refused, nothing changed.
    let before = snapshot(&dir);
    let run = rdsinit(&dir, &["log", "plain", "--data-len", "2M", "--yes"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("plain file DATA"), "{}", run.stderr);
    assert_eq!(snapshot(&dir), before);
    rdsinit(&dir, &["log", "data", "--data-len", "2M", "--yes"]).assert_ok();
    // rdsinit opened the log, so recovery replayed the plain file's record into it.
    assert_eq!(std::fs::read(&plain).unwrap()[4096..4112], [0x77; 16]);
    let table = rvm::log::LogReader::open(&log)
        .unwrap()
        .status()
        .segments
        .clone();
    let kinds: Vec<_> = table.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            rvm::format::log::SegmentKind::PlainFile,
            rvm::format::log::SegmentKind::Segment
        ]
    );
}

#[test]
fn occupied_range_is_a_warning() {
    let dir = TempDir::new("occupied");
    make_log(&dir.join("log"));
    // The top of the user address space holds at least the stack of any process.
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "log",
            "data",
            "--data-len",
            "0x100000000000",
            "--start-addr",
            "0x700000000000",
        ],
    );
    run.assert_ok();
    assert!(
        run.stderr.contains("already mapped in this process"),
        "{}",
        run.stderr
    );
}
