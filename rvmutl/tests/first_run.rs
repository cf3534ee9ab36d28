//! Issue 12: `demo.sh` says it is building, shows each command with a one-line title before
//! running it, and prints the heap statistics once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn demo_titles_each_command_and_shows_statistics_once() {
    let _serial = serial();
    let dir = test_dir("demo");
    let bin_dir = rvmutl().parent().unwrap().to_path_buf();
    let rdsinit = bin_dir.join("rdsinit");
    assert!(
        rdsinit.exists(),
        "{} is missing: build the workspace (cargo test --workspace builds it)",
        rdsinit.display()
    );
    // A stand-in cargo: the demo's build step runs it instead of a release build.
    let fake_cargo = dir.join("cargo");
    std::fs::write(&fake_cargo, "#!/bin/sh\necho \"stand-in cargo $*\"\n").unwrap();
    std::fs::set_permissions(&fake_cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo.sh");
    let out = Command::new("bash")
        .arg(&demo)
        .arg(dir.join("files"))
        .env("CARGO", &fake_cargo)
        .env("DEMO_BIN", &bin_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The build comes first and says so.
    let first = lines.iter().position(|l| l.starts_with("== ")).unwrap();
    assert!(lines[first].contains("Build"), "{stdout}");
    assert!(lines[first + 1].starts_with("$ ") && lines[first + 1].contains("build --release"));
    assert!(lines[first + 2].starts_with("stand-in cargo build"), "{stdout}");
    // Every command is echoed right after its title, and every tool run has one.
    let commands: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("$ "))
        .map(|(i, l)| {
            assert!(lines[i - 1].starts_with("== "), "no title before {l}");
            *l
        })
        .collect();
    for tool in ["rdsinit --log-size 30M", "rvmutl status", "rvmutl check"] {
        assert!(
            commands.iter().any(|c| c.contains(tool)),
            "{tool} not echoed:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("largest_free_block").count()
            + stdout.matches("largest free block").count(),
        1,
        "heap statistics printed more than once:\n{stdout}"
    );
    assert!(stdout.contains("no problems found"), "{stdout}");
}
