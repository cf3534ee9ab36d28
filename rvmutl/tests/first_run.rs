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
    assert!(
        lines[first + 2].starts_with("stand-in cargo build"),
        "{stdout}"
    );
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
        stdout.matches("largest_free_block").count() + stdout.matches("largest free block").count(),
        1,
        "heap statistics printed more than once:\n{stdout}"
    );
    assert!(stdout.contains("no problems found"), "{stdout}");
}

#[test]
fn fuzz_script_installs_cargo_fuzz_into_the_project() {
    let dir = test_dir("ci-tools");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    // A stand-in cargo that records how it is called: `cargo fuzz --version` fails (cargo-fuzz
    // is missing), the rest succeed and `cargo fuzz list` names no target.
    let fake = dir.join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    let calls = dir.join("calls");
    std::fs::write(
        fake.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$* | PATH=$PATH\" >> '{}'\n\
             [ \"$1 $2\" = \"fuzz --version\" ] && exit 1\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(fake.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg(repo.join("fuzz/run-all.sh"))
        .arg("1")
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    let tools = repo.join(".ci/tools");
    let install = calls
        .lines()
        .find(|l| l.starts_with("install"))
        .unwrap_or_else(|| panic!("cargo-fuzz was not installed:\n{calls}"));
    assert!(
        install.starts_with(&format!(
            "install --root {} cargo-fuzz --locked |",
            tools.display()
        )),
        "{install}"
    );
    // Every later call finds the installed cargo-fuzz first on PATH.
    let fuzz_build = calls.lines().find(|l| l.starts_with("fuzz build")).unwrap();
    assert!(
        fuzz_build.contains(&format!("PATH={}/bin:", tools.display())),
        "{fuzz_build}"
    );
    let ignored = std::fs::read_to_string(repo.join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|l| l == "/.ci/tools"), "{ignored}");
}

#[test]
fn readme_tells_what_the_record_crc_covers() {
    use rvm::format::log::{crc_seed, encode_pad, verify_record, RecordHeader};
    // The truth: a pad's body is not checksummed (any bytes there verify) ...
    let seed = crc_seed(&rvm::Uuid([7; 16]));
    let length = 4096u64;
    let (head, trail) = encode_pad(length, 10, 1, 10, seed);
    let header = RecordHeader::decode(&head, seed, length).unwrap();
    let garbage = vec![0xa5u8; (length as usize) - head.len() - trail.len()];
    assert!(verify_record(&header, &head, &garbage, &trail, seed).is_ok());
    // ... so the README must not claim the CRC covers every byte of every record.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    assert!(
        !readme.contains("every byte of every record"),
        "README claims a CRC over every byte of every record"
    );
    let crc_row = readme
        .lines()
        .find(|l| l.contains("CRC-32 over"))
        .expect("README describes the record CRC");
    assert!(
        crc_row.contains("pad") && crc_row.contains("not covered"),
        "{crc_row}"
    );
}
