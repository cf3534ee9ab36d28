//! Data-driven tests: each file in `tests/golden/` names a fixture and holds commands with
//! their expected output, checked by one helper.
//!
//! ```text
//! # a comment
//! fixture: partly
//! $ rvmutl status $LOG        <- arguments ($DIR, $LOG, $DATA are the test's files)
//! < show head                 <- lines fed to standard input (optional)
//! expected output, standard output and errors together, then [exit N] when N != 0
//! ```
//!
//! Header lines `write: NAME: TEXT` create file NAME in the test directory first (`\n` in
//! TEXT is a newline).
//!
//! Times, UUIDs, CRC values and the test directory are normalized. Run with
//! `UPDATE_GOLDEN=1` to rewrite the expected output after an intended change.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

struct Case {
    args: String,
    stdin: Vec<String>,
    expected: Vec<String>,
}

fn parse_file(text: &str) -> (Vec<String>, String, Vec<Case>) {
    let mut header = Vec::new();
    let mut fixture = String::new();
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(args) = line.strip_prefix("$ ") {
            cases.push(Case {
                args: args.to_string(),
                stdin: Vec::new(),
                expected: Vec::new(),
            });
            continue;
        }
        match cases.last_mut() {
            None => {
                if let Some(f) = line.strip_prefix("fixture: ") {
                    fixture = f.trim().to_string();
                }
                header.push(line.to_string());
            }
            Some(c) => {
                if let Some(input) =
                    line.strip_prefix("< ")
                        .or(if line == "<" { Some("") } else { None })
                {
                    if c.expected.is_empty() {
                        c.stdin.push(input.to_string());
                        continue;
                    }
                }
                c.expected.push(line.to_string());
            }
        }
    }
    for c in &mut cases {
        while c.expected.last().is_some_and(|l| l.is_empty()) {
            c.expected.pop();
        }
    }
    (header, fixture, cases)
}

fn substitute(text: &str, dir: &Path) -> String {
    let d = dir.display().to_string();
    text.replace("$LOG", &format!("{d}/log"))
        .replace("$DATA", &format!("{d}/data"))
        .replace("$DIR", &d)
}

fn run_case(case: &Case, dir: &Path) -> Vec<String> {
    let args_line = substitute(&case.args, dir);
    let mut words = args_line.split_whitespace();
    assert_eq!(
        words.next(),
        Some("rvmutl"),
        "a case starts with `$ rvmutl`"
    );
    let out_path = dir.join(".output");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(common::rvmutl())
        .args(words)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for l in &case.stdin {
            let _ = writeln!(stdin, "{}", substitute(l, dir));
        }
    }
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&out_path).unwrap();
    let _ = std::fs::remove_file(&out_path);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| normalize(l, dir).trim_end().to_string())
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let code = status.code().unwrap_or(-1);
    if code != 0 {
        lines.push(format!("[exit {code}]"));
    }
    lines
}

/// Replace what changes from run to run.
fn normalize(line: &str, dir: &Path) -> String {
    let mut s = line.replace(&dir.display().to_string(), "$DIR");
    s = replace_shape(&s, "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh", "<UUID>");
    // Times of this century are "now"; older ones come from test data and stay.
    s = replace_shape(&s, "20dd-dd-dd dd:dd:dd.ddd UTC", "<TIME>");
    for key in ["stored ", "computed "] {
        s = replace_after(
            &s,
            key,
            |rest| {
                let n = rest.strip_prefix("0x")?;
                (n.len() >= 8 && n[..8].bytes().all(|b| b.is_ascii_hexdigit())).then_some(10)
            },
            "<CRC>",
        );
    }
    // Space allocated on disk depends on the file system.
    s = replace_after(
        &s,
        "\"on_disk_bytes\": ",
        |rest| Some(rest.bytes().take_while(|b| b.is_ascii_digit()).count()),
        "<N>",
    );
    if let Some(at) = s.find("on disk:") {
        let value_at = at + "on disk:".len();
        let spaces = s[value_at..].bytes().take_while(|b| *b == b' ').count();
        let digits = s[value_at + spaces..]
            .bytes()
            .take_while(|b| b.is_ascii_digit())
            .count();
        s.replace_range(value_at + spaces..value_at + spaces + digits, "<N>");
    }
    for key in ["_ms\": ", "_us\": "] {
        s = replace_after(
            &s,
            key,
            |rest| {
                let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
                (n > 0 && !rest.starts_with("0,") && rest != "0").then_some(n)
            },
            "<T>",
        );
    }
    s
}

/// Replace every substring matching `shape` (h = hex digit, d = digit, else literal).
fn replace_shape(s: &str, shape: &str, with: &str) -> String {
    let b = s.as_bytes();
    let n = shape.len();
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if i + n <= b.len()
            && shape.bytes().zip(&b[i..i + n]).all(|(p, c)| match p {
                b'h' => c.is_ascii_hexdigit(),
                b'd' => c.is_ascii_digit(),
                other => other == *c,
            })
        {
            out.extend_from_slice(with.as_bytes());
            i += n;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After each `key`, replace the text `measure` says (by its length) with `with`.
fn replace_after(
    s: &str,
    key: &str,
    measure: impl Fn(&str) -> Option<usize>,
    with: &str,
) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(key) {
        let (before, after) = rest.split_at(at + key.len());
        out.push_str(before);
        match measure(after) {
            Some(n) => {
                out.push_str(with);
                rest = &after[n..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn golden() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let (header, fixture, cases) = parse_file(&text);
        let dir = common::test_dir(&format!("golden-{name}"));
        common::build(&fixture, &dir);
        for line in &header {
            if let Some(spec) = line.strip_prefix("write: ") {
                let (name, content) = spec.split_once(": ").expect("write: NAME: TEXT");
                std::fs::write(
                    dir.join(name),
                    substitute(&content.replace("\\n", "\n"), &dir),
                )
                .unwrap();
            }
        }
        let mut rewritten = header.join("\n");
        for case in &cases {
            let actual = run_case(case, &dir);
            if actual != case.expected {
                failures.push(format!(
                    "{name}: `{}`\n--- expected\n{}\n--- actual\n{}\n",
                    case.args,
                    case.expected.join("\n"),
                    actual.join("\n")
                ));
            }
            rewritten.push_str(&format!("\n$ {}", case.args));
            for l in &case.stdin {
                if l.is_empty() {
                    rewritten.push_str("\n<");
                } else {
                    rewritten.push_str(&format!("\n< {l}"));
                }
            }
            for l in &actual {
                rewritten.push_str(&format!("\n{l}"));
            }
            rewritten.push('\n');
        }
        if update {
            std::fs::write(&file, rewritten.trim_end().to_string() + "\n").unwrap();
        }
    }
    if !update {
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
