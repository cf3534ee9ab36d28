//! `status` reported the log's segment-table length ("segments: 2") where `check` reported the
//! segments it names ("1 segment(s)"): an entry freed for reuse (a re-created data file, issue
//! 12 item 1) was counted. Both now count the segments the table names.

mod common;

use std::path::Path;
use std::process::Command;

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{MapOptions, Options, Rvm};

fn make_segment(path: &Path) {
    let header = segment::layout(
        4096 + 8192,
        &[RegionSpec {
            length: 8192,
            address: 0x6a00_0000_0000,
        }],
    )
    .unwrap();
    let options = CreateOptions {
        overwrite: true,
        ..CreateOptions::default()
    };
    drop(segment::create(path, &header, options).unwrap());
}

fn map_once(log: &Path, data: &Path) {
    let rvm = Rvm::open(log, Options::default()).unwrap();
    // SAFETY: the segment file is in the test's own directory; nothing shortens it.
    let seg = unsafe { rvm.map(data, MapOptions::anywhere()) }.unwrap();
    rvm.unmap(&seg).unwrap();
    rvm.close().unwrap();
}

#[test]
fn status_counts_the_segments_the_table_names_not_its_freed_entries() {
    let _serial = common::serial();
    let dir = common::test_dir("status-freed-entry");
    let (log, data) = (dir.join("log"), dir.join("data"));
    Rvm::create_log(&log, 1 << 20).unwrap();
    make_segment(&data);
    map_once(&log, &data);
    // A new segment built aside and renamed over the old one (as rdsinit does): mapped from
    // the old one's path, it makes the old entry free.
    let aside = dir.join("data.new");
    make_segment(&aside);
    map_once(&log, &aside);
    std::fs::rename(&aside, &data).unwrap();
    map_once(&log, &data);
    let table = rvm::log::LogReader::open(&log)
        .unwrap()
        .status()
        .segments
        .clone();
    assert_eq!(
        table.len(),
        2,
        "the fixture leaves a freed entry in the table"
    );
    let out = Command::new(common::rvmutl())
        .args(["status", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["segments"], 1, "{json}");
    let out = Command::new(common::rvmutl())
        .arg("status")
        .arg(&log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("segments:")).unwrap();
    assert!(line.trim_end().ends_with(" 1"), "{line}");
}
