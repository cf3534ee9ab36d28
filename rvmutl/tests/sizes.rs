//! Issue 12: rvmutl reads sizes with the library's one parser, in one-shot subcommands and at
//! the prompt, with the same units as rdsinit (`30MB` was refused as `"30M" is not a number`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// The record area of the log at `path`, from its file length (64 KiB of status blocks).
fn area_of(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len() - 64 * 1024
}

fn run(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(rvmutl())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn init_log_takes_every_unit_as_a_subcommand() {
    let _serial = serial();
    let dir = test_dir("sizes-oneshot");
    let cases: &[(&str, u64)] = &[
        ("30MB", 30 << 20),
        ("30MiB", 30 << 20),
        ("30m", 30 << 20),
        ("2048S", 2048 * 512),
        ("16P", 16 * 4096),
        ("0x100KB", 256 << 10),
        ("1_048_576", 1 << 20),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let log = dir.join(format!("log{i}"));
        let (code, out) = run(&["init-log", log.to_str().unwrap(), text], "");
        assert_eq!(code, 0, "{text}: {out}");
        assert_eq!(area_of(&log), *want, "{text}");
    }
}

#[test]
fn init_log_at_the_prompt_takes_the_same_units() {
    let _serial = serial();
    let dir = test_dir("sizes-prompt");
    let log = dir.join("log");
    let (code, out) = run(
        &[],
        &format!("init_log {} 1MiB\nquit\n", log.to_str().unwrap()),
    );
    assert!(code == 0 || out.contains("created log"), "{out}");
    assert_eq!(area_of(&log), 1 << 20, "{out}");
}

#[test]
fn bad_sizes_are_named_and_create_nothing() {
    let _serial = serial();
    let dir = test_dir("sizes-bad");
    let log = dir.join("log");
    let cases: &[(&str, &str)] = &[
        ("-5", "\"-5\" is negative"),
        ("3Q", "unknown size unit \"Q\""),
        ("08", "'8' is not an octal digit"),
        ("1.5M", "'.' is not a decimal digit"),
    ];
    for (text, want) in cases {
        let (code, out) = run(&["init-log", log.to_str().unwrap(), text], "");
        assert_ne!(code, 0, "{text}: {out}");
        assert!(out.contains(want), "{text}: {out}");
        assert!(!out.contains("a octal"), "{out}");
        assert!(!log.exists(), "{text} created the log");
    }
}

#[test]
fn init_log_help_says_kb_is_1024() {
    let (code, out) = run(&["init-log", "--help"], "");
    assert_eq!(code, 0, "{out}");
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("KB..: all 1024-based"), "{text}");
    assert!(text.contains("512-byte sectors"), "{text}");
}
