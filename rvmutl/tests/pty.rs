//! An interactive session through a pseudo-terminal: the `* ` prompt, line editing, history,
//! an empty line repeating a sticky command, and a question answered at the prompt.

mod common;

use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Expect, Session};

#[test]
fn interactive_session_with_line_editing_and_history() {
    let dir = common::test_dir("pty");
    common::build("partly", &dir);
    let mut cmd = Command::new(common::rvmutl());
    cmd.arg(common::log_path(&dir)).env("TERM", "xterm");
    let mut p = Session::spawn(cmd).expect("spawn rvmutl in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(30)));
    p.expect("opened").unwrap();
    p.expect("* ").unwrap();

    p.send_line("head").unwrap();
    p.expect("Record LSN 1 at offset 65536").unwrap();
    p.expect("* ").unwrap();

    // An empty line repeats the last sticky command (next).
    p.send_line("n").unwrap();
    p.expect("Record LSN 2 ").unwrap();
    p.expect("* ").unwrap();
    p.send_line("").unwrap();
    p.expect("Record LSN 3 ").unwrap();
    p.expect("* ").unwrap();

    // Line editing: a typo erased with backspace.
    p.send("statux").unwrap();
    p.send("\x7f").unwrap();
    p.send_line("s").unwrap();
    p.expect("Status of log").unwrap();
    p.expect("* ").unwrap();

    // History: up arrow recalls the previous line.
    p.send("\x1b[A").unwrap();
    p.send_line("").unwrap();
    p.expect("Status of log").unwrap();
    p.expect("* ").unwrap();

    // An error keeps the session going.
    p.send_line("st").unwrap();
    p.expect("ambiguous command: status or statistics").unwrap();
    p.expect("* ").unwrap();

    // A question asked at the prompt.
    p.send_line(format!("open_log {}", dir.join("missing").display()))
        .unwrap();
    p.expect("Do you want to create it (y or n [n])? ").unwrap();
    p.send_line("n").unwrap();
    p.expect("not opened").unwrap();
    p.expect("* ").unwrap();

    p.send_line("q").unwrap();
    p.expect(Eof).unwrap();
}
