//! Issue 12, item 4: `check` and `heap` printed a damaged pointer (an address outside the heap)
//! as a file offset (`offset 35184372093760 (0x200000001340)`). A problem at an address outside
//! the heap region has no file offset; one inside it is shown at its offset in the file.

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;

/// Outside the fixture's heap region (at 0x6100_0000_0000), below and above it.
const BELOW: u64 = 0x2000_0000_1340;
const ABOVE: u64 = 0x7000_0000_1340;

#[test]
fn a_pointer_outside_the_heap_is_not_printed_as_a_file_offset() {
    let _serial = common::serial();
    let dir = common::test_dir("heap-bad-pointer");
    common::build("heap", &dir);
    let data = common::data_path(&dir);
    let header = rvm::segment::read_header(&data).unwrap();
    let heap = header.regions[0];
    // Every free-list head (8 lists, at 192 + 8 * (list - 1) in the heap header; FORMAT.md)
    // now points outside the heap.
    let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    for list in 0..8u64 {
        let bad = if list < 4 { BELOW } else { ABOVE };
        f.write_all_at(&bad.to_le_bytes(), heap.offset + 192 + 8 * list)
            .unwrap();
    }
    drop(f);
    let file_len = std::fs::metadata(&data).unwrap().len();
    for args in [
        vec!["heap", data.to_str().unwrap()],
        vec![
            "check",
            common::log_path(&dir).to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(common::rvmutl()).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let problems: Vec<&str> = text.lines().filter(|l| l.contains("PROBLEM")).collect();
        for bad in [BELOW, ABOVE] {
            let bad = format!("{bad:#x}");
            assert!(
                problems.iter().any(|l| l.contains(&bad)),
                "{args:?}: the damaged pointer is reported:\n{text}"
            );
            for line in problems.iter().filter(|l| l.contains(&bad)) {
                assert!(
                    !line.contains(" offset "),
                    "{args:?}: no file offset: {line}"
                );
            }
        }
        for line in problems {
            if let Some(rest) = line.split(" offset ").nth(1) {
                let n: u64 = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(
                    n < file_len,
                    "{args:?}: offset {n} is not in the file: {line}"
                );
            }
        }
    }
}
