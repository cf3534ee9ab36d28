//! Issue 12: one size parser in every mode (flags, classic positional values, the dialogue,
//! `--log-size`), and negative or malformed sizes named.

mod support;

use support::*;

#[test]
fn size_units_work_in_flags_positional_values_and_the_dialogue() {
    let dir = TempDir::new("units");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    // A flag: "1GB" was refused with "'G' is not a decimal digit".
    for text in [
        "1GB",
        "1GiB",
        "1gb",
        "1G",
        "0x40000000",
        "2097152S",
        "262144P",
    ] {
        let run = rdsinit(
            &dir,
            &["--dry-run", "--json", "log", "data", "--data-len", text],
        );
        run.assert_ok();
        assert_eq!(
            json_of(&run)["parameters"]["data_len"],
            1u64 << 30,
            "{text}"
        );
    }
    // The classic positional values.
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "--json",
            "-f",
            "log",
            "data",
            "1GiB",
            "0x70000000",
            "0x3fefd000",
            "1MB",
            "80",
            "32",
        ],
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["parameters"]["static_len"], 1u64 << 20);
    // The dialogue.
    let run = rdsinit_in(
        &dir.path,
        &["--dry-run", "--json", "log", "data"],
        "4MiB\ny\n\ny\n\ny\n\ny\n\ny\n\ny\ny\n",
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["parameters"]["data_len"], 4u64 << 20);
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn log_size_takes_init_log_sectors() {
    let dir = TempDir::new("sectors");
    // `--log-size 2048S` was refused although the help points to init_log's syntax.
    let run = rdsinit(
        &dir,
        &[
            "--log-size",
            "2048S",
            "--json",
            "--yes",
            "log",
            "data",
            "--data-len",
            "4M",
        ],
    );
    run.assert_ok();
    let v = json_of(&run);
    assert_eq!(v["log"]["action"], "created");
    assert_eq!(v["log"]["size_bytes"], 2048 * 512 + 64 * 1024);
}

#[test]
fn negative_and_malformed_sizes_are_named() {
    let dir = TempDir::new("negative");
    make_log(&dir.join("log"));
    let before = snapshot(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["--data-len", "-5"], "\"-5\" is negative"),
        (
            &["-f", "-5", "0x70000000", "1M", "1M", "80", "32"],
            "\"-5\" is negative",
        ),
        (&["--data-len", "08"], "'8' is not an octal digit"),
        (&["--data-len", "3Q"], "unknown size unit \"Q\""),
    ];
    for (extra, want) in cases {
        let mut argv = vec!["log", "data"];
        argv.extend_from_slice(extra);
        let run = rdsinit(&dir, &argv);
        assert_eq!(run.code, 2, "{argv:?}: {}", run.all());
        assert!(run.stderr.contains(want), "{argv:?}: {}", run.stderr);
        assert!(!run.stderr.contains("a octal"), "{}", run.stderr);
    }
    assert_eq!(snapshot(&dir), before);
}
