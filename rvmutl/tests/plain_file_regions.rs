//! rvmutl on a log naming a plain file (`Rvm::map_file`): `status`, `records` and `check` show
//! the entry's kind, path, identity and length; `check` reports a replaced file as a problem
//! naming it; `recover --dry-run` names the file, `recover` refuses a replaced file (writing
//! nothing) and replays into the right one by its path.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use rvm::{BeginMode, CommitMode, FileMapOptions, Options, Rvm};

const FILE_BYTES: usize = 10_000;

fn rvmutl(args: &[&str], log: &Path) -> Output {
    Command::new(common::rvmutl())
        .args(args)
        .arg(log)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A log holding one committed, unapplied record for a plain file: bytes 100..108 := 0x5a.
fn fixture(log: &Path, file: &Path) {
    Rvm::create_log(log, 1 << 20).unwrap();
    std::fs::write(file, vec![1u8; FILE_BYTES]).unwrap();
    let rvm = Rvm::open(log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the file is in the test's own directory; nothing shortens it.
    let seg = unsafe { rvm.map_file(file, FileMapOptions::default()) }.unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(seg.regions()[0].address + 100, 8, 0x5a).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    // Closing does not truncate: the record stays in the log, the file is unchanged.
    rvm.close().unwrap();
}

#[test]
fn the_tools_show_check_and_recover_plain_file_entries() {
    let _serial = common::serial();
    let dir = common::test_dir("plain-file");
    let (log, file) = (dir.join("log"), dir.join("plain"));
    fixture(&log, &file);
    let file = std::fs::canonicalize(&file).unwrap();
    let name = file.display().to_string();

    let status = stdout(&rvmutl(&["status"], &log));
    let line = |key: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {status}"))
            .to_string()
    };
    assert!(
        line("format version:").trim_end().ends_with(" 2"),
        "{status}"
    );
    assert!(line("segments:").contains("1 (1 plain file)"), "{status}");
    let json: serde_json::Value =
        serde_json::from_slice(&rvmutl(&["status", "--json"], &log).stdout).unwrap();
    assert_eq!(
        (
            json["format_version"].as_u64(),
            json["plain_files"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let mut prompt = Command::new(common::rvmutl())
        .arg(&log)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = prompt.stdin.take().unwrap();
        input
            .write_all(b"seg_dict\nset seg_dict 0 = /etc/hostname\nq\n")
            .unwrap();
    }
    let done = prompt.wait_with_output().unwrap();
    let session = format!("{}{}", stdout(&done), String::from_utf8_lossy(&done.stderr));
    assert!(
        session.contains(&format!("0: plain file {name:?}, device "))
            && session.contains(&format!("length {FILE_BYTES} bytes")),
        "{session}"
    );
    assert!(session.contains("cannot be redirected"), "{session}");

    let records = stdout(&rvmutl(&["records"], &log));
    assert!(
        records.contains(&format!("segment 0 (plain file {name})")),
        "{records}"
    );

    let check = rvmutl(&["check"], &log);
    let text = stdout(&check);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains(&format!("plain file {name} (segment 0): device "))
            && text.contains(&format!("{FILE_BYTES} bytes, as the log records it")),
        "{text}"
    );

    let dry = stdout(&rvmutl(&["recover", "--dry-run"], &log));
    assert!(
        dry.contains(&format!("segment 0 is the plain file {name} (device ")),
        "{dry}"
    );
    assert!(dry.contains("-> region 0"), "{dry}");

    // Another file (another inode) at the path: check and recover refuse it, naming it.
    let original = dir.join("original");
    std::fs::rename(&file, &original).unwrap();
    std::fs::write(&file, vec![2u8; FILE_BYTES]).unwrap();
    let log_before = std::fs::read(&log).unwrap();
    let check = rvmutl(&["check"], &log);
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&name) && text.contains("the file was replaced"),
        "{text}"
    );
    let recover = rvmutl(&["recover"], &log);
    let all = format!(
        "{}{}",
        stdout(&recover),
        String::from_utf8_lossy(&recover.stderr)
    );
    assert!(!recover.status.success(), "{all}");
    assert!(all.contains(&name) && all.contains("replaced"), "{all}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        vec![2u8; FILE_BYTES],
        "the wrong file was written"
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        log_before,
        "the log was written"
    );

    // The right file back: recover replays into it by its path.
    std::fs::rename(&original, &file).unwrap();
    let recover = rvmutl(&["recover"], &log);
    assert!(recover.status.success(), "{}", stdout(&recover));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes[100..108], [0x5a; 8]);
    assert_eq!(bytes[99], 1);
    assert_eq!(bytes[108], 1);
    let status = stdout(&rvmutl(&["status"], &log));
    assert!(
        status.contains("log empty:")
            && status
                .lines()
                .any(|l| l.contains("log empty:") && l.contains("yes")),
        "{status}"
    );
}
