//! Refusals: each names the parameter or file and the rule, exits non-zero, and changes not
//! one byte on disk (a table of cases, plus files another process holds).

mod support;

use support::*;

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
