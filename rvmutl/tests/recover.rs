//! `rvmutl recover` writes exactly the segment bytes the library's own recovery writes, and a
//! dry run writes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use rvm::{Options, Rvm};

fn copy_fixture(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["log", "data"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

fn rvmutl(args: &[&str]) -> std::process::Output {
    Command::new(common::rvmutl()).args(args).output().unwrap()
}

#[test]
fn recover_matches_the_library_recovery() {
    let _serial = common::serial();
    for fixture in ["partly", "wrapped", "crash"] {
        let base = common::test_dir(&format!("recover-{fixture}"));
        let original = base.join("original");
        std::fs::create_dir_all(&original).unwrap();
        common::build(fixture, &original);
        let by_tool = base.join("tool");
        let by_library = base.join("library");
        copy_fixture(&original, &by_tool);
        copy_fixture(&original, &by_library);

        // A dry run changes nothing.
        let log = by_tool.join("log");
        let data = by_tool.join("data");
        let out = rvmutl(&[
            "recover",
            log.to_str().unwrap(),
            "--dry-run",
            "--segment",
            data.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{fixture}: {out:?}");
        for name in ["log", "data"] {
            assert_eq!(
                std::fs::read(original.join(name)).unwrap(),
                std::fs::read(by_tool.join(name)).unwrap(),
                "{fixture}: the dry run changed {name}"
            );
        }

        // The tool, told where the segment is (the log's path hint names the original).
        let out = rvmutl(&[
            "recover",
            log.to_str().unwrap(),
            "--segment",
            data.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{fixture}: {out:?}");

        // The library, on the other copy.
        let rvm = Rvm::open(
            by_library.join("log"),
            Options::default()
                .truncate_threshold(0)
                .background_recovery(false)
                .segment_path(by_library.join("data")),
        )
        .unwrap();
        rvm.close().unwrap();

        let tool_bytes = std::fs::read(&data).unwrap();
        let library_bytes = std::fs::read(by_library.join("data")).unwrap();
        assert_eq!(tool_bytes.len(), library_bytes.len());
        assert!(
            tool_bytes == library_bytes,
            "{fixture}: segments differ after recovery"
        );
        assert_ne!(
            tool_bytes,
            std::fs::read(original.join("data")).unwrap(),
            "{fixture}: recovery applied nothing"
        );

        // The log is empty afterwards and a second recover has nothing to do.
        let out = rvmutl(&["recover", log.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("log is empty, nothing to recover"), "{text}");
        let out = rvmutl(&["check", log.to_str().unwrap(), data.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{fixture}: check after recover: {out:?}"
        );
    }
}

#[test]
fn broken_pipe_is_not_an_error() {
    let _serial = common::serial();
    let dir = common::test_dir("pipe");
    common::build("wrapped", &dir);
    let log = common::log_path(&dir);
    let mut child = Command::new(common::rvmutl())
        .args(["records", log.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line and close the pipe, as `| head -1` would.
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("Record LSN"), "{first}");
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_page_and_completions_come_from_the_table() {
    let _serial = common::serial();
    let out = rvmutl(&["man"]);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH rvmutl"), "{man}");
    for c in rvmutl::table::COMMANDS {
        assert!(
            man.contains(c.name),
            "the man page does not mention {}",
            c.name
        );
    }
    let out = rvmutl(&["completions", "bash"]);
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "status", "records", "recover", "check", "segment", "heap", "init-log",
    ] {
        assert!(bash.contains(sub), "bash completions lack {sub}");
    }
    let out = rvmutl(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && help.contains("open_log") && help.contains("seg_dict"),
        "{help}"
    );
}

/// Issue 12 item 10: `rvmutl help [COMMAND]` tried to open a log called `help`; `man` and
/// `completions` were missing from `--help`; `records --help` described `show`.
#[test]
fn help_man_and_completions_are_commands() {
    let _serial = common::serial();
    let out = rvmutl(&["help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("Usage: rvmutl"), "{text}");
    let out = rvmutl(&["help", "peek"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("peek "), "{out:?}");
    let out = rvmutl(&["help", "records"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Usage: rvmutl records"),
        "{out:?}"
    );
    let out = rvmutl(&["help", "no_such_command"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rvmutl(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["help ", "man ", "completions "] {
        assert!(
            help.contains(&format!("  {sub}")),
            "--help lacks {sub}: {help}"
        );
    }
    let out = rvmutl(&["records", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Shows every live record"), "{text}");
    assert!(
        !text.contains("mods ADDR"),
        "records --help describes show: {text}"
    );
}

/// Issue 12 item 10: the man page referred to pages that were never written and its
/// preformatted command list broke at 80 columns.
#[test]
fn man_pages_are_all_written_and_fit_80_columns() {
    let _serial = common::serial();
    let out = rvmutl(&["man"]);
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    // Every page the main page refers to is written.
    let mut referred = 0;
    for line in man.lines() {
        if let Some(page) = line
            .strip_prefix("rvmutl\\-")
            .and_then(|r| r.strip_suffix("(1)"))
        {
            referred += 1;
            let page = page.replace("\\-", "-");
            assert!(
                man.contains(&format!(".TH rvmutl-{page} ")),
                "rvmutl-{page}(1) is referred to but not written"
            );
        }
    }
    assert!(referred >= 7, "{man}");
    // No preformatted (indented) text lines: roff fills every paragraph to the width.
    for line in man.lines() {
        assert!(!line.starts_with("  "), "preformatted line: {line:?}");
    }
    // With groff at hand, render at 80 columns: nothing longer.
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-rLL=80n", "-P-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    if let Ok(mut child) = groff {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let rendered = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        for line in text.lines() {
            // Bold and underline are overstruck (c BACKSPACE c): count what shows.
            let mut shown: Vec<char> = Vec::new();
            for c in line.chars() {
                if c == '\u{8}' {
                    shown.pop();
                } else {
                    shown.push(c);
                }
            }
            let shown: String = shown.into_iter().collect();
            assert!(
                shown.chars().count() <= 80,
                "longer than 80 columns: {shown:?}"
            );
        }
    }
    // Written into a directory: one file per page.
    let dir = common::test_dir("man-pages");
    std::fs::create_dir_all(&dir).unwrap();
    let out = rvmutl(&["man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "rvmutl.1",
        "rvmutl-status.1",
        "rvmutl-records.1",
        "rvmutl-help.1",
    ] {
        assert!(dir.join(page).exists(), "{page} not written");
    }
}

/// Issue 12 item 11: a usage error under --json printed clap's text only.
#[test]
fn usage_errors_under_json_are_json() {
    let _serial = common::serial();
    for args in [
        &["status", "--json"][..],
        &["check", "--json", "--no-such-flag", "x"],
        &["status", "--json", "/no/such/log"],
    ] {
        let out = rvmutl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out:?}"));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert_eq!(v["exit_code"], 2);
    }
}

/// Issue 12, items 4 and 6: a segment file whose header is damaged, or whose region address
/// could never be mapped, was reported as "not found; pass its path with
/// Options::segment_path" (or, for the address, recovered into). `recover` now names the file
/// and the broken rule, gives rvmutl's own advice, and writes nothing.
#[test]
fn recover_names_what_is_wrong_with_a_segment_header() {
    let _serial = common::serial();
    type Damage = fn(&mut rvm::format::segment::SegmentHeader);
    let cases: [(&str, Damage, &str); 3] = [
        ("zero", |h| h.regions[0].address = 0, "address is zero"),
        (
            "kernel",
            |h| h.regions[0].address = 0xffff_8000_0000_0000,
            "end of user address space",
        ),
        (
            "past-end",
            |h| {
                h.length_bytes += 1 << 20;
                h.regions[1].length += 1 << 20;
            },
            "but the header says the segment is",
        ),
    ];
    for (name, damage, rule) in cases {
        // Built in place, so the log's path hint names the damaged file.
        let dir = common::test_dir(&format!("recover-damaged-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        common::build("partly", &dir);
        let (log, data) = (dir.join("log"), dir.join("data"));
        let mut header = rvm::segment::read_header(&data).unwrap();
        damage(&mut header);
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
            f.write_all_at(&header.encode(), 0).unwrap();
        }
        let before = (std::fs::read(&log).unwrap(), std::fs::read(&data).unwrap());
        let dry = rvmutl(&[
            "recover",
            log.to_str().unwrap(),
            "--dry-run",
            "--segment",
            data.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&dry.stdout).into_owned()
            + &String::from_utf8_lossy(&dry.stderr);
        assert!(
            text.contains("cannot be used") && text.contains(rule),
            "{name}: {text}"
        );
        let out = rvmutl(&[
            "recover",
            log.to_str().unwrap(),
            "--segment",
            data.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {out:?}");
        assert!(
            stderr.contains(data.to_str().unwrap()) && stderr.contains(rule),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("--segment FILE")
                && !stderr.contains("Options::")
                && !stderr.contains("not found"),
            "{name}: {stderr}"
        );
        assert_eq!(
            (std::fs::read(&log).unwrap(), std::fs::read(&data).unwrap()),
            before,
            "{name}: nothing is written"
        );
    }
}
