//! Interactive sessions through a pseudo-terminal: each session is a script of (what the
//! program prints, what the user types) steps checked by one helper.

mod support;

use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::{Eof, Expect, Regex, Session};
use support::*;

/// One step of a session: wait for `expect` in the output, then type `answer` (if any).
type Step<'a> = (&'a str, Option<&'a str>);

/// Messages are wrapped to the terminal width: match their words across line breaks.
fn words_of(text: &str) -> String {
    text.split_whitespace()
        .map(regex_escape)
        .collect::<Vec<_>>()
        .join(r"\s+")
}

fn regex_escape(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct Finished {
    code: i32,
    /// Everything printed after the last step.
    tail: String,
}

/// Run rdsinit on a pseudo-terminal in `dir`, play the script, and wait for the exit.
fn session(dir: &TempDir, args: &[&str], script: &[Step]) -> Finished {
    let mut command = std::process::Command::new(BIN);
    command.args(args).current_dir(&dir.path);
    let spawning = spawning();
    let mut p = Session::spawn(command).expect("spawn on a pseudo-terminal");
    drop(spawning);
    // A limit on waiting for output, so a wrong script fails instead of hanging.
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    for (i, (expect, answer)) in script.iter().enumerate() {
        if let Err(e) = p.expect(Regex(words_of(expect))) {
            panic!("step {i}: waiting for {expect:?}: {e}");
        }
        if let Some(answer) = answer {
            p.send_line(answer).unwrap();
        }
    }
    let rest = p.expect(Eof).expect("end of output");
    let tail = String::from_utf8_lossy(rest.before()).into_owned();
    let code = match p.get_process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("rdsinit ended with {other:?}"),
    };
    Finished { code, tail }
}

const ACCEPT: &str = "Accept ? (y|n|q)";
const AGREE: &str = "Do you agree with these parameters ? (y|n|q)";
const QUIT: &str = "rdsinit quit. No permanent change is made";

#[test]
fn dialogue_with_rounding_and_reentry() {
    let dir = TempDir::new("dialogue");
    make_log(&dir.join("log"));
    let script: &[Step] = &[
        ("Length of the data segment in bytes", None),
        ("==> Enter the data segment length: ", Some("16M")),
        (
            "Data segment length: 0x1000000 (16777216). Accept ? (y|n|q)",
            Some("y"),
        ),
        ("Virtual address at which the heap region is mapped", None),
        (
            "==> Enter the start address [0x50000000 (1342177280)]: ",
            Some("0x50000123"),
        ),
        ("rounded up to 0x50001000 (1342181376)", None),
        (ACCEPT, Some("y")),
        (
            "==> Enter the heap length [0xeff000 (15724544)]: ",
            Some("5000"),
        ),
        ("rounded up to 0x2000 (8192)", None),
        ("Heap length: 0x2000 (8192). Accept ? (y|n|q)", Some("n")),
        ("==> Enter the heap length", Some("0x800000")),
        (ACCEPT, Some("y")),
        (
            "==> Enter the static length [0x100000 (1048576)]: ",
            Some(""),
        ),
        (ACCEPT, Some("")),
        ("==> Enter the nlists [0x50 (80)]: ", Some("0")),
        ("raised to the minimum", None),
        ("Nlists: 0x1 (1). Accept ? (y|n|q)", Some("n")),
        ("==> Enter the nlists", Some("40")),
        (ACCEPT, Some("y")),
        ("==> Enter the chunk size [0x40 (64)]: ", Some("33")),
        ("rounded up to 0x28 (40)", None),
        (ACCEPT, Some("y")),
        ("The following parameters are chosen:", None),
        ("heap length:          0x800000 (8388608)", None),
        (AGREE, Some("n")),
        // Everything again, the previous answers offered as defaults.
        (
            "==> Enter the data segment length [0x1000000 (16777216)]: ",
            Some(""),
        ),
        (ACCEPT, Some("y")),
        (
            "==> Enter the start address [0x50001000 (1342181376)]: ",
            Some(""),
        ),
        (ACCEPT, Some("y")),
        (
            "==> Enter the heap length [0x800000 (8388608)]: ",
            Some("0x400000"),
        ),
        (ACCEPT, Some("y")),
        (
            "==> Enter the static length [0x100000 (1048576)]: ",
            Some(""),
        ),
        (ACCEPT, Some("y")),
        ("==> Enter the nlists [0x28 (40)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the chunk size [0x28 (40)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("heap length:          0x400000 (4194304)", None),
        (AGREE, Some("y")),
        ("initialized with an RDS heap", None),
    ];
    let done = session(&dir, &["log", "data"], script);
    assert_eq!(done.code, 0, "{}", done.tail);
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 16 << 20,
            start_addr: 0x5000_1000,
            heap_len: 4 << 20,
            static_len: 1 << 20,
            nlists: 40,
            chunk_size: 40,
        },
    );
}

#[test]
fn heap_and_static_are_asked_again_when_they_do_not_fit() {
    let dir = TempDir::new("refit");
    make_log(&dir.join("log"));
    let script: &[Step] = &[
        ("==> Enter the data segment length", Some("64K")),
        (ACCEPT, Some("y")),
        ("==> Enter the start address", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the heap length", Some("64K")),
        (ACCEPT, Some("y")),
        ("==> Enter the static length", Some("8K")),
        (ACCEPT, Some("y")),
        ("Sorry, these do not fit", None),
        ("largest heap that fits is 0xd000 (53248)", None),
        ("==> Enter the heap length [0xd000 (53248)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the static length [0x2000 (8192)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the nlists", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the chunk size", Some("")),
        (ACCEPT, Some("y")),
        (AGREE, Some("y")),
    ];
    let done = session(&dir, &["log", "data"], script);
    assert_eq!(done.code, 0, "{}", done.tail);
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 64 << 10,
            start_addr: 0x5000_0000,
            heap_len: 0xd000,
            static_len: 0x2000,
            nlists: 80,
            chunk_size: 64,
        },
    );
}

/// The prompts of a full dialogue in order, with an answer that moves past each.
const PROMPTS: [Step; 13] = [
    ("==> Enter the data segment length", Some("4M")),
    (ACCEPT, Some("y")),
    ("==> Enter the start address", Some("")),
    (ACCEPT, Some("y")),
    ("==> Enter the heap length", Some("")),
    (ACCEPT, Some("y")),
    ("==> Enter the static length", Some("")),
    (ACCEPT, Some("y")),
    ("==> Enter the nlists", Some("")),
    (ACCEPT, Some("y")),
    ("==> Enter the chunk size", Some("")),
    (ACCEPT, Some("y")),
    (AGREE, Some("y")),
];

#[test]
fn quit_at_every_prompt_leaves_no_file_behind() {
    for quit_at in 0..PROMPTS.len() {
        let dir = TempDir::new(&format!("quit{quit_at}"));
        let mut script: Vec<Step> = PROMPTS[..quit_at].to_vec();
        script.push((
            PROMPTS[quit_at].0,
            Some(if quit_at % 2 == 0 { "q" } else { "Q" }),
        ));
        script.push((QUIT, None));
        // --log-size: the log would be created too; quitting must create neither file.
        let done = session(&dir, &["--log-size", "1M", "log", "data"], &script);
        assert_eq!(done.code, 1, "quit at prompt {quit_at}: {}", done.tail);
        assert!(
            dir.names().is_empty(),
            "quit at prompt {quit_at}: {:?}",
            dir.names()
        );
    }
}

#[test]
fn quit_keeps_existing_files_unchanged() {
    let dir = TempDir::new("quitkeep");
    make_log(&dir.join("log"));
    make_segment(&dir.join("data"));
    let before = snapshot(&dir);
    let mut script: Vec<Step> = PROMPTS[..12].to_vec();
    script.push((AGREE, Some("q")));
    script.push((QUIT, None));
    let done = session(&dir, &["log", "data"], &script);
    assert_eq!(done.code, 1);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn classic_values_then_no_goes_through_the_questions() {
    let dir = TempDir::new("values-no");
    make_log(&dir.join("log"));
    let script: &[Step] = &[
        ("The following parameters are chosen:", None),
        ("data segment length:  0x3000 (12288)", None),
        (AGREE, Some("n")),
        // The given values are offered as defaults.
        (
            "==> Enter the data segment length [0x3000 (12288)]: ",
            Some("0x4000"),
        ),
        (ACCEPT, Some("y")),
        (
            "==> Enter the start address [0x50000000 (1342177280)]: ",
            Some(""),
        ),
        (ACCEPT, Some("y")),
        ("==> Enter the heap length [0x1000 (4096)]: ", Some("8K")),
        (ACCEPT, Some("y")),
        ("==> Enter the static length [0x1000 (4096)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the nlists [0x10 (16)]: ", Some("")),
        (ACCEPT, Some("y")),
        ("==> Enter the chunk size [0x40 (64)]: ", Some("")),
        (ACCEPT, Some("y")),
        (AGREE, Some("y")),
    ];
    let mut args = vec!["log", "data"];
    args.extend(["12288", "0x50000000", "4096", "4096", "16", "64"]);
    let done = session(&dir, &args, script);
    assert_eq!(done.code, 0, "{}", done.tail);
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 0x4000,
            start_addr: 0x5000_0000,
            heap_len: 8192,
            static_len: 4096,
            nlists: 16,
            chunk_size: 64,
        },
    );
}

#[test]
fn classic_values_quit_at_the_confirmation() {
    let dir = TempDir::new("values-q");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    let script: &[Step] = &[(AGREE, Some("q")), (QUIT, None)];
    let args = [
        "log",
        "data",
        "12288",
        "0x50000000",
        "4096",
        "4096",
        "16",
        "64",
    ];
    let done = session(&dir, &args, script);
    assert_eq!(done.code, 1);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn progress_bar_on_a_terminal() {
    let dir = TempDir::new("bar");
    make_log(&dir.join("log"));
    let script: &[Step] = &[
        ("rdsinit: allocating", None),
        ("initialized with an RDS heap", None),
    ];
    let args = ["log", "data", "--data-len", "8M", "--zero", "--yes"];
    let done = session(&dir, &args, script);
    assert_eq!(done.code, 0, "{}", done.tail);
    assert!(disk_usage(&dir.join("data")) >= 8 << 20);
}

#[test]
fn firm_flag_with_two_names_still_asks() {
    // Classic: -f only skips questions when the six values are given.
    let dir = TempDir::new("f-two");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    let script: &[Step] = &[
        ("The six parameters are asked in turn", None),
        ("==> Enter the data segment length", Some("q")),
        (QUIT, None),
    ];
    let done = session(&dir, &["-f", "log", "data"], script);
    assert_eq!(done.code, 1);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn dry_run_dialogue_writes_nothing() {
    let dir = TempDir::new("dry-dialogue");
    let mut script: Vec<Step> = PROMPTS.to_vec();
    script.push(("dry run", None));
    let done = session(
        &dir,
        &["--dry-run", "--log-size", "1M", "log", "data"],
        &script,
    );
    assert_eq!(done.code, 0, "{}", done.tail);
    assert!(dir.names().is_empty(), "{:?}", dir.names());
}
