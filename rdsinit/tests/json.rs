//! `--json`: the report of a run (every parameter, region and file), refusals and usage
//! errors as a JSON object, and a dry run that never says "created".

mod support;

use support::*;

#[test]
fn json_reports_every_parameter_region_and_file() {
    let dir = TempDir::new("json");
    let run = rdsinit(
        &dir,
        &[
            "--json",
            "--log-size",
            "2M",
            "log",
            "data",
            "--data-len",
            "8M",
            "--static-len",
            "64K",
            "--nlists",
            "20",
            "--chunk-size",
            "128",
            "-f",
        ],
    );
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    let heap_len = (8u64 << 20) - (64 << 10) - 4096;
    assert_eq!(v["ok"], true);
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["mode"], "firm");
    let p = &v["parameters"];
    assert_eq!(p["data_len"], 8u64 << 20);
    assert_eq!(p["start_addr"], 0x5000_0000u64);
    assert_eq!(p["heap_len"], heap_len);
    assert_eq!(p["static_len"], 64u64 << 10);
    assert_eq!(p["nlists"], 20);
    assert_eq!(p["chunk_size"], 128);
    let regions = v["regions"].as_array().unwrap();
    let names: Vec<&str> = regions
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["header", "heap", "static"]);
    assert_eq!(regions[1]["offset"], 4096);
    assert_eq!(regions[1]["address"], 0x5000_0000u64);
    assert_eq!(regions[1]["end_address"], 0x5000_0000u64 + heap_len);
    assert_eq!(regions[2]["offset"], 4096 + heap_len);
    assert_eq!(regions[2]["address"], 0x5000_0000u64 + heap_len);
    assert_eq!(regions[2]["length"], 64u64 << 10);
    assert_eq!(v["log"]["path"], "log");
    assert_eq!(v["log"]["size_bytes"], (2u64 << 20) + (64 << 10));
    assert_eq!(v["log"]["action"], "created");
    assert_eq!(v["data"]["path"], "data");
    assert_eq!(v["data"]["length_bytes"], 8u64 << 20);
    assert_eq!(v["data"]["fill"], "sparse");
    assert!(v["data"]["disk_usage_bytes"].as_u64().unwrap() < 1 << 20);
    let header = rvm::segment::read_header(&dir.join("data")).unwrap();
    assert_eq!(v["segment_uuid"], header.uuid.to_string());
    assert_eq!(v["heap"]["check"], "ok");
}

#[test]
fn json_refusal_is_machine_readable() {
    let dir = TempDir::new("jsonerr");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &["--json", "log", "data", "--data-len", "12K", "--yes"],
    );
    assert_eq!(run.code, 3);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("--data-len"));
}

#[test]
fn dry_run_json_never_says_created() {
    let dir = TempDir::new("dryjson");
    let run = rdsinit(
        &dir,
        &[
            "--dry-run",
            "--json",
            "--log-size",
            "1M",
            "log",
            "data",
            "--data-len",
            "4M",
        ],
    );
    run.assert_ok();
    assert!(!run.stdout.contains("\"created\""), "{}", run.stdout);
    assert_eq!(json_of(&run)["log"]["action"], "would_create");
    make_log(&dir.join("log"));
    let run = rdsinit(
        &dir,
        &["--dry-run", "--json", "log", "data", "--data-len", "4M"],
    );
    run.assert_ok();
    assert_eq!(json_of(&run)["log"]["action"], "would_use");
    assert!(!dir.join("data").exists());
}

#[test]
fn usage_errors_under_json_print_a_json_object() {
    let dir = TempDir::new("jsonusage");
    for argv in [
        &["--json", "--bogus", "log", "data"][..],
        &["--json", "log"],
        &["--json", "log", "data", "--data-len", "1X"],
        &["log", "data", "--data-len", "-5", "--json"],
    ] {
        let run = rdsinit(&dir, argv);
        assert_eq!(run.code, 2, "{argv:?}");
        let v = json_of(&run);
        assert_eq!(v["ok"], false, "{argv:?}");
        assert_eq!(v["exit_code"], 2, "{argv:?}");
        let error = v["error"].as_str().unwrap();
        assert!(!error.is_empty() && !error.starts_with("error:"), "{error}");
        // The human message still goes to standard error.
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
    }
    // Without --json standard output stays empty.
    let run = rdsinit(&dir, &["--bogus", "log", "data"]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}
