//! The real binary, run with pipes: every non-interactive mode, every refusal (message, exit
//! status, and not one byte changed on disk), the required layouts, and the generated help,
//! man page and completions.

mod support;

use rvm::{BeginMode, CommitMode, Options, Rvm};
use support::*;

const CLASSIC_1G: [&str; 6] = [
    "0x40000000",
    "0x70000000",
    "0x3fefd000",
    "0x100000",
    "0x50",
    "0x20",
];
const SERVER_1G: [&str; 6] = [
    "1073741824",
    "0x50000000",
    "1072627712",
    "1048576",
    "80",
    "64",
];
const TINY: [&str; 6] = ["12288", "0x50000000", "4096", "4096", "16", "64"];

fn args<'a>(head: &[&'a str], values: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(values).copied().collect()
}

// ---------------------------------------------------------------------------------------------
// The required layouts.

#[test]
fn classic_1g_layout_with_chunk_32() {
    let dir = TempDir::new("classic");
    make_log(&dir.join("log"));
    let run = rdsinit(&dir, &args(&["-f", "log", "data"], &CLASSIC_1G));
    run.assert_ok();
    assert!(
        run.stdout
            .contains("heap    0x1000        0x3fefd000 (1072680960)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0x70000000..0xafefd000"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Heap check: ok"), "{}", run.stdout);
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 0x4000_0000,
            start_addr: 0x7000_0000,
            heap_len: 0x3fef_d000,
            static_len: 0x10_0000,
            nlists: 0x50,
            chunk_size: 0x20,
        },
    );
    assert!(disk_usage(&dir.join("data")) < 1 << 20);
}

#[test]
fn server_setup_script_layout() {
    let dir = TempDir::new("server");
    make_log(&dir.join("log"));
    rdsinit(&dir, &args(&["-f", "log", "data"], &SERVER_1G)).assert_ok();
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 1 << 30,
            start_addr: 0x5000_0000,
            heap_len: 1_072_627_712,
            static_len: 1 << 20,
            nlists: 80,
            chunk_size: 64,
        },
    );
}

#[test]
fn tiny_three_page_segment() {
    let dir = TempDir::new("tiny");
    make_log(&dir.join("log"));
    let values = ["12288", "0x50000000", "4096", "4096", "80", "64"];
    let run = rdsinit(&dir, &args(&["-f", "log", "data"], &values));
    run.assert_ok();
    // The statistics of the new heap: one free block of every whole chunk after the header.
    assert!(run.stdout.contains("Heap statistics:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("free_blocks              1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("allocated_bytes          0"),
        "{}",
        run.stdout
    );
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 3 * 4096,
            start_addr: 0x5000_0000,
            heap_len: 4096,
            static_len: 4096,
            nlists: 80,
            chunk_size: 64,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The modern interface.

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
fn json_reports_every_parameter_region_and_file() {
    let dir = TempDir::new("json");
    let run = rdsinit(
        &dir,
        &[
            "--json",
            "--log-size",
            "2M",
            "log",
            "data",
            "--data-len",
            "8M",
            "--static-len",
            "64K",
            "--nlists",
            "20",
            "--chunk-size",
            "128",
            "-f",
        ],
    );
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    let heap_len = (8u64 << 20) - (64 << 10) - 4096;
    assert_eq!(v["ok"], true);
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["mode"], "firm");
    let p = &v["parameters"];
    assert_eq!(p["data_len"], 8u64 << 20);
    assert_eq!(p["start_addr"], 0x5000_0000u64);
    assert_eq!(p["heap_len"], heap_len);
    assert_eq!(p["static_len"], 64u64 << 10);
    assert_eq!(p["nlists"], 20);
    assert_eq!(p["chunk_size"], 128);
    let regions = v["regions"].as_array().unwrap();
    let names: Vec<&str> = regions
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["header", "heap", "static"]);
    assert_eq!(regions[1]["offset"], 4096);
    assert_eq!(regions[1]["address"], 0x5000_0000u64);
    assert_eq!(regions[1]["end_address"], 0x5000_0000u64 + heap_len);
    assert_eq!(regions[2]["offset"], 4096 + heap_len);
    assert_eq!(regions[2]["address"], 0x5000_0000u64 + heap_len);
    assert_eq!(regions[2]["length"], 64u64 << 10);
    assert_eq!(v["log"]["path"], "log");
    assert_eq!(v["log"]["size_bytes"], (2u64 << 20) + (64 << 10));
    assert_eq!(v["log"]["action"], "created");
    assert_eq!(v["data"]["path"], "data");
    assert_eq!(v["data"]["length_bytes"], 8u64 << 20);
    assert_eq!(v["data"]["fill"], "sparse");
    assert!(v["data"]["disk_usage_bytes"].as_u64().unwrap() < 1 << 20);
    let header = rvm::segment::read_header(&dir.join("data")).unwrap();
    assert_eq!(v["segment_uuid"], header.uuid.to_string());
    assert_eq!(v["heap"]["check"], "ok");
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

// ---------------------------------------------------------------------------------------------
// Refusals: each names the parameter or file and the rule, exits non-zero, changes nothing.

#[derive(Clone, Copy, Debug)]
enum Setup {
    Empty,
    Log,
    LogAndSegment,
    /// The log holds an unapplied record for the segment in `data`.
    Pending,
    /// `log` holds bytes that are not a log.
    JunkLog,
    /// `log` holds a segment.
    SegmentAsLog,
    /// `data` is a directory.
    DataDirectory,
    /// `data` is a hard link to `log`.
    HardLink,
    /// The log holds an unapplied record for a segment that has since disappeared.
    PendingElsewhere,
}

fn prepare(dir: &TempDir, setup: Setup) {
    let (log, data) = (dir.join("log"), dir.join("data"));
    match setup {
        Setup::Empty => {}
        Setup::Log => make_log(&log),
        Setup::LogAndSegment => {
            make_log(&log);
            make_segment(&data);
        }
        Setup::Pending => {
            make_log(&log);
            make_segment(&data);
            leave_unapplied_record(&log, &data);
        }
        Setup::JunkLog => std::fs::write(&log, vec![0xab; 200_000]).unwrap(),
        Setup::SegmentAsLog => make_segment(&log),
        Setup::DataDirectory => {
            make_log(&log);
            std::fs::create_dir(&data).unwrap();
        }
        Setup::HardLink => {
            make_log(&log);
            std::fs::hard_link(&log, &data).unwrap();
        }
        Setup::PendingElsewhere => {
            let other = dir.join("other");
            make_log(&log);
            make_segment(&other);
            leave_unapplied_record(&log, &other);
            std::fs::remove_file(&other).unwrap();
        }
    }
}

struct Refusal {
    setup: Setup,
    args: Vec<String>,
    code: i32,
    /// Every one of these appears in standard error.
    expect: Vec<&'static str>,
}

fn firm(values: [&str; 6]) -> Vec<String> {
    let mut v: Vec<String> = ["-f", "log", "data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(values.iter().map(|s| s.to_string()));
    v
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn refusals() -> Vec<Refusal> {
    let r = |setup, args: Vec<String>, code, expect: &[&'static str]| Refusal {
        setup,
        args,
        code,
        expect: expect.to_vec(),
    };
    let nlists_too_many = (rdsinit::params::NLISTS_MAX + 1).to_string();
    vec![
        // The layout rules.
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1G", "1M", "80", "64"]),
            3,
            &[
                "heap length",
                "--heap-len",
                "do not fit",
                "largest heap that fits is 0x3feff000",
                "the heap length alone leaves no room for a static region",
            ],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "0x3fefd001", "1M", "80", "64"]),
            3,
            &["--heap-len", "not a multiple of 4096"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1049576", "80", "64"]),
            3,
            &["--static-len", "not a multiple of 4096"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000010", "1M", "1M", "80", "64"]),
            3,
            &["--start-addr", "not a multiple of 4096"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x1000", "1M", "1M", "80", "64"]),
            3,
            &["--start-addr", "below the minimum 0x2000000"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x7fffd0000000", "0x3fefd000", "1M", "80", "64"]),
            3,
            &[
                "--start-addr",
                "address-space limit 0x7ffffffff000",
                "highest start address",
            ],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1M", "80", "36"]),
            3,
            &["--chunk-size", "not a multiple of 8"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1M", "80", "24"]),
            3,
            &["--chunk-size", "below the minimum 0x20 (32)"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1M", "0", "64"]),
            3,
            &["--nlists", "below the minimum 0x1 (1)"],
        ),
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1M", &nlists_too_many, "64"]),
            3,
            &["--nlists", "above the maximum"],
        ),
        r(
            Setup::Log,
            firm(["12288", "0x50000000", "4096", "4096", "4096", "64"]),
            3,
            &[
                "--heap-len",
                "no room for a block after the",
                "with 4096 lists",
            ],
        ),
        r(
            Setup::Log,
            firm(["8K", "0x50000000", "4K", "4K", "80", "64"]),
            3,
            &["--data-len", "below the minimum 0x3000 (12288)"],
        ),
        r(
            Setup::Log,
            words("log data --data-len 12K --yes"),
            3,
            &["--data-len", "no room for a heap", "--static-len"],
        ),
        r(
            Setup::Log,
            words("log data --data-len 1M --heap-len 5000 --yes"),
            3,
            &["--heap-len", "not a multiple of 4096", "--round"],
        ),
        // The files.
        r(
            Setup::Log,
            firm(["1G", "0x50000000", "1M", "1M", "80", "64"])
                .into_iter()
                .map(|a| if a == "data" { "./log".into() } else { a })
                .collect(),
            3,
            &["same file"],
        ),
        r(
            Setup::HardLink,
            firm(["1G", "0x50000000", "1M", "1M", "80", "64"]),
            3,
            &["same file"],
        ),
        r(
            Setup::Pending,
            firm(TINY),
            3,
            &["DATA data holds segment", "unapplied record", "--force"],
        ),
        r(
            Setup::Empty,
            firm(TINY),
            3,
            &["LOG log does not exist", "rvmutl init_log", "--log-size"],
        ),
        r(
            Setup::Log,
            words("--log-size 1M log data --data-len 2M --yes"),
            3,
            &["already exists", "--force"],
        ),
        r(
            Setup::Pending,
            words("--log-size 1M --force log data --data-len 2M --yes"),
            3,
            &["unapplied record", "even with --force"],
        ),
        r(Setup::JunkLog, firm(TINY), 3, &["not a usable rvm log"]),
        r(
            Setup::PendingElsewhere,
            firm(TINY),
            3,
            &["unapplied record(s) for segment", "other", "is not there"],
        ),
        r(
            Setup::SegmentAsLog,
            words("--log-size 1M --force log data --data-len 2M --yes"),
            3,
            &["holds an rvm data segment, not a log"],
        ),
        r(
            Setup::Empty,
            words("--log-size 32K log data --data-len 2M --yes"),
            3,
            &[
                "--log-size",
                "record area 0x8000 (32768) must be between 0x10000 (65536)",
            ],
        ),
        r(
            Setup::DataDirectory,
            firm(TINY),
            3,
            &["DATA data is a directory"],
        ),
        r(
            Setup::Log,
            words("-f log missing/data 12288 0x50000000 4096 4096 16 64"),
            3,
            &["directory missing does not exist"],
        ),
        // The command line.
        r(
            Setup::Log,
            words("log data 1G 0x50000000 1M 1M"),
            2,
            &["missing NLISTS CHUNK"],
        ),
        r(
            Setup::Log,
            words("log data 1G 0x50000000 1M 1M 80 64 --nlists 8"),
            2,
            &["cannot be mixed"],
        ),
        r(
            Setup::Log,
            words("log data --heap-len 1M"),
            2,
            &["--data-len is required"],
        ),
        r(
            Setup::Log,
            words("-f log data 1G 0x5000000z 1M 1M 80 64"),
            2,
            &["SADDR", "not a number", "hexadecimal"],
        ),
        r(
            Setup::Log,
            words("-f log data 1G 0x50000000 1M 1M 80 64 9"),
            2,
            &["unexpected"],
        ),
        r(Setup::Log, words("-x log data"), 2, &["-x"]),
        r(Setup::Log, words("--round log data"), 2, &["--round"]),
        r(
            Setup::Log,
            words("--zero --fallocate log data --data-len 1M"),
            2,
            &["--fallocate"],
        ),
        r(Setup::Log, words("log"), 2, &["DATA"]),
    ]
}

#[test]
fn every_refusal_names_the_rule_and_changes_nothing() {
    let cases = refusals();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = TempDir::new(&format!("refusal{i}"));
        prepare(&dir, case.setup);
        let before = snapshot(&dir);
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let run = rdsinit(&dir, &args);
        let mut problems = Vec::new();
        if run.code != case.code {
            problems.push(format!("exit status {} (expected {})", run.code, case.code));
        }
        for text in &case.expect {
            if !run.stderr.contains(text) {
                problems.push(format!("missing {text:?}"));
            }
        }
        if snapshot(&dir) != before {
            problems.push("files changed".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case {i} {:?} {:?}: {}\n  stderr: {}",
                case.setup,
                case.args,
                problems.join(", "),
                run.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_refusal_is_machine_readable() {
    let dir = TempDir::new("jsonerr");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &["--json", "log", "data", "--data-len", "12K", "--yes"],
    );
    assert_eq!(run.code, 3);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("--data-len"));
}

// ---------------------------------------------------------------------------------------------
// Help, man page, completions, pipes.

#[test]
fn help_explains_every_parameter_and_the_exit_codes() {
    let dir = TempDir::new("help");
    let run = rdsinit(&dir, &["--help"]);
    run.assert_ok();
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for field in rdsinit::Field::ALL {
        assert!(help.contains(field.flag()), "{}", field.flag());
        assert!(help.contains(field.classic()), "{}", field.classic());
        // The explanation the dialogue shows, word for word.
        let explanation = field.explanation();
        let start: String = explanation
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains(&start), "{start}");
    }
    for text in [
        "--log-size",
        "--force",
        "--yes",
        "--dry-run",
        "--json",
        "--zero",
        "--fallocate",
        "--round",
        "Exit status",
        "0 the segment was initialized",
        "1 quit",
        "2 the command line",
        "3 a check refused",
        "4 writing",
    ] {
        assert!(help.contains(text), "{text}");
    }
    let short = rdsinit(&dir, &["-h"]);
    short.assert_ok();
    assert!(short.stdout.contains("Exit status"));
    assert!(rdsinit(&dir, &["--version"])
        .assert_ok()
        .stdout
        .contains("rdsinit"));
}

#[test]
fn man_page_and_completions_come_from_the_same_definitions() {
    let dir = TempDir::new("man");
    let man = rdsinit(&dir, &["--generate-man"]);
    man.assert_ok();
    assert!(man.stdout.contains(".TH rdsinit"), "{}", man.stdout);
    assert!(man.stdout.contains("data\\-len"), "{}", man.stdout);
    assert!(man.stdout.contains("Exit status"), "{}", man.stdout);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = rdsinit(&dir, &["--generate-completions", shell]);
        run.assert_ok();
        assert!(run.stdout.contains("data-len"), "{shell}");
        assert!(run.stdout.contains("log-size"), "{shell}");
    }
}

#[test]
fn broken_pipe_is_not_an_error() {
    let dir = TempDir::new("pipe");
    make_log(&dir.join("log"));
    let spawning = spawning();
    let mut child = std::process::Command::new(BIN)
        .args(["--dry-run", "log", "data", "--data-len", "1G"])
        .current_dir(&dir.path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(spawning);
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn files_in_use_are_refused() {
    let dir = TempDir::new("inuse");
    prepare(&dir, Setup::LogAndSegment);
    let before = snapshot(&dir);
    for (what, name) in [("LOG", "log"), ("DATA", "data")] {
        // Held here the way a running server holds them (an exclusive flock). Only this test's
        // files are open, so the guard against inherited descriptors is not needed.
        let held =
            rvm::device::FileDevice::open(&dir.join(name), rvm::device::Access::ReadWrite).unwrap();
        let run = rdsinit(&dir, &args(&["-f", "log", "data"], &TINY));
        drop(held);
        assert_eq!(run.code, 3, "{}", run.all());
        assert!(
            run.stderr
                .contains(&format!("{what} {name} is in use by another process")),
            "{}",
            run.stderr
        );
        assert_eq!(snapshot(&dir), before);
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12: one size parser in every mode, man and completions subcommands, JSON.

fn json_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

#[test]
fn size_units_work_in_flags_positional_values_and_the_dialogue() {
    let dir = TempDir::new("units");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    // A flag: "1GB" was refused with "'G' is not a decimal digit".
    for text in [
        "1GB",
        "1GiB",
        "1gb",
        "1G",
        "0x40000000",
        "2097152S",
        "262144P",
    ] {
        let run = rdsinit(
            &dir,
            &["--dry-run", "--json", "log", "data", "--data-len", text],
        );
        run.assert_ok();
        assert_eq!(
            json_of(&run)["parameters"]["data_len"],
            1u64 << 30,
            "{text}"
        );
    }
    // The classic positional values.
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "--json",
            "-f",
            "log",
            "data",
            "1GiB",
            "0x70000000",
            "0x3fefd000",
            "1MB",
            "80",
            "32",
        ],
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["parameters"]["static_len"], 1u64 << 20);
    // The dialogue.
    let run = rdsinit_in(
        &dir.path,
        &["--dry-run", "--json", "log", "data"],
        "4MiB\ny\n\ny\n\ny\n\ny\n\ny\n\ny\ny\n",
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["parameters"]["data_len"], 4u64 << 20);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn log_size_takes_init_log_sectors() {
    let dir = TempDir::new("sectors");
    // `--log-size 2048S` was refused although the help points to init_log's syntax.
    let run = rdsinit(
        &dir,
        &[
            "--log-size",
            "2048S",
            "--json",
            "--yes",
            "log",
            "data",
            "--data-len",
            "4M",
        ],
    );
    run.assert_ok();
    let v = json_of(&run);
    assert_eq!(v["log"]["action"], "created");
    assert_eq!(v["log"]["size_bytes"], 2048 * 512 + 64 * 1024);
}

#[test]
fn negative_and_malformed_sizes_are_named() {
    let dir = TempDir::new("negative");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["--data-len", "-5"], "\"-5\" is negative"),
        (
            &["-f", "-5", "0x70000000", "1M", "1M", "80", "32"],
            "\"-5\" is negative",
        ),
        (&["--data-len", "08"], "'8' is not an octal digit"),
        (&["--data-len", "3Q"], "unknown size unit \"Q\""),
    ];
    for (extra, want) in cases {
        let mut argv = vec!["log", "data"];
        argv.extend_from_slice(extra);
        let run = rdsinit(&dir, &argv);
        assert_eq!(run.code, 2, "{argv:?}: {}", run.all());
        assert!(run.stderr.contains(want), "{argv:?}: {}", run.stderr);
        assert!(!run.stderr.contains("a octal"), "{}", run.stderr);
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn man_and_completions_are_subcommands() {
    let dir = TempDir::new("subcommands");
    let man = rdsinit(&dir, &["man"]);
    man.assert_ok();
    assert!(man.stdout.contains(".TH rdsinit"), "{}", man.all());
    rdsinit(&dir, &["man", "."]).assert_ok();
    let written = std::fs::read_to_string(dir.join("rdsinit.1")).unwrap();
    assert_eq!(written, man.stdout);
    for shell in ["bash", "zsh", "fish"] {
        let run = rdsinit(&dir, &["completions", shell]);
        run.assert_ok();
        assert!(run.stdout.contains("data-len"), "{shell}");
    }
    let help = rdsinit(&dir, &["--help"]);
    help.assert_ok();
    assert!(help.stdout.contains("rdsinit man [DIR]"), "{}", help.stdout);
    assert!(
        help.stdout.contains("rdsinit completions SHELL"),
        "{}",
        help.stdout
    );
    let bad = rdsinit(&dir, &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
}

/// The width a roff text line takes on screen: escapes like `\-` and `\fB` are one or zero
/// columns.
fn roff_width(line: &str) -> usize {
    let mut width = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            width += 1;
            continue;
        }
        match chars.next() {
            Some('f') => {
                chars.next();
            }
            Some('*') | Some('(') => {
                chars.next();
                chars.next();
                width += 1;
            }
            _ => width += 1,
        }
    }
    width
}

#[test]
fn man_page_fits_80_columns() {
    // Lines starting with a blank are kept as they are by roff (no filling): each must fit in
    // 80 columns after man's 7-column indent, or it wraps into the next line's text.
    let dir = TempDir::new("man80");
    let man = rdsinit(&dir, &["man"]);
    man.assert_ok();
    let mut preformatted = 0;
    for line in man.stdout.lines().filter(|l| l.starts_with(' ')) {
        preformatted += 1;
        assert!(
            roff_width(line) + 7 <= 80,
            "too wide for 80 columns ({}): {line:?}",
            roff_width(line) + 7
        );
    }
    assert!(preformatted > 10, "{}", man.stdout);
}

#[test]
fn dry_run_json_never_says_created() {
    let dir = TempDir::new("dryjson");
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "--json",
            "--log-size",
            "1M",
            "log",
            "data",
            "--data-len",
            "4M",
        ],
    );
    run.assert_ok();
    assert!(!run.stdout.contains("\"created\""), "{}", run.stdout);
    assert_eq!(json_of(&run)["log"]["action"], "would_create");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &["--dry-run", "--json", "log", "data", "--data-len", "4M"],
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["log"]["action"], "would_use");
    assert!(!dir.join("data").exists());
}

#[test]
fn usage_errors_under_json_print_a_json_object() {
    let dir = TempDir::new("jsonusage");
    for argv in [
        &["--json", "--bogus", "log", "data"][..],
        &["--json", "log"],
        &["--json", "log", "data", "--data-len", "1X"],
        &["log", "data", "--data-len", "-5", "--json"],
    ] {
        let run = rdsinit(&dir, argv);
        assert_eq!(run.code, 2, "{argv:?}");
        let v = json_of(&run);
        assert_eq!(v["ok"], false, "{argv:?}");
        assert_eq!(v["exit_code"], 2, "{argv:?}");
        let error = v["error"].as_str().unwrap();
        assert!(!error.is_empty() && !error.starts_with("error:"), "{error}");
        // The human message still goes to standard error.
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
    }
    // Without --json standard output stays empty.
    let run = rdsinit(&dir, &["--bogus", "log", "data"]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// Re-running rdsinit (issue 12, item 1): the 17th run on one log used to overwrite DATA, then
// fail because the log's segment table was full, leaving no heap.

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
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
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
