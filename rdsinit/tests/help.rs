//! Help, man page and completions (flags and subcommands, generated from the same
//! definitions; the man page fits 80 columns), and a broken pipe.

mod support;

use support::*;

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
