//! Issue 12, item 1: every segment ever mapped kept its entry in the log's 16-entry segment
//! table, so the 17th new segment was refused (and rdsinit, which had already overwritten the
//! data file, destroyed it). Entries with no unapplied records are now reclaimed: when the
//! table is full, and when a segment is re-created at the path of an old one.

use std::path::Path;

use rvm::format::log::SEGMENTS_PER_LOG_MAX;
use rvm::log::LogReader;
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm, Uuid};

mod support;
use support::Dir;

const REGION_BYTES: u64 = 8192;

/// A fresh one-region segment at `path` (replacing any file there); returns its UUID.
fn make_segment(path: &Path) -> Uuid {
    let _ = std::fs::remove_file(path);
    let header = segment::layout(
        4096 + REGION_BYTES,
        &[RegionSpec {
            length: REGION_BYTES,
            address: 0x1000_0000_0000,
        }],
    )
    .unwrap();
    drop(segment::create(path, &header, CreateOptions::default()).unwrap());
    header.uuid
}

/// The UUIDs the log's segment table names (free entries left out).
fn table(log: &Path) -> Vec<Uuid> {
    LogReader::open(log)
        .unwrap()
        .status()
        .segments
        .iter()
        .map(|e| e.uuid)
        .filter(|u| *u != Uuid::NIL)
        .collect()
}

fn options() -> Options {
    Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
}

/// Map `path`, write `value` at the start of its region, commit, unmap.
fn commit_one(rvm: &Rvm, path: &Path, value: u64) {
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(path, MapOptions::anywhere()) }.unwrap();
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(seg.regions()[0].address, &value).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    rvm.unmap(&seg).unwrap();
}

fn read_first(rvm: &Rvm, path: &Path) -> u64 {
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(path, MapOptions::anywhere()) }.unwrap();
    let v = seg.read::<u64>(seg.regions()[0].address).unwrap();
    rvm.unmap(&seg).unwrap();
    v
}

#[test]
fn a_full_table_reclaims_the_entries_of_unmapped_segments() {
    let d = Dir::new("full");
    let log = d.path("log");
    Rvm::create_log(&log, 256 * 1024).unwrap();
    let rvm = Rvm::open(&log, options()).unwrap();
    // Twice as many segments as the table holds, each with a committed record still in the
    // log when the next one is mapped.
    for i in 0..2 * SEGMENTS_PER_LOG_MAX {
        let path = d.path(format!("seg{i}"));
        make_segment(&path);
        commit_one(&rvm, &path, 1000 + i as u64);
    }
    rvm.close().unwrap();
    assert!(table(&log).len() <= SEGMENTS_PER_LOG_MAX);
    // No record was lost to a reclaimed entry: every segment holds its value.
    let rvm = Rvm::open(&log, options()).unwrap();
    for i in 0..2 * SEGMENTS_PER_LOG_MAX {
        assert_eq!(
            read_first(&rvm, &d.path(format!("seg{i}"))),
            1000 + i as u64,
            "segment {i}"
        );
    }
    rvm.close().unwrap();
}

#[test]
fn the_entries_of_mapped_segments_are_never_reclaimed() {
    let d = Dir::new("mapped");
    let log = d.path("log");
    Rvm::create_log(&log, 256 * 1024).unwrap();
    let rvm = Rvm::open(&log, options()).unwrap();
    let mut mapped = Vec::new();
    for i in 0..SEGMENTS_PER_LOG_MAX {
        let path = d.path(format!("seg{i}"));
        make_segment(&path);
        // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
        mapped.push(unsafe { rvm.map(&path, MapOptions::anywhere()) }.unwrap());
    }
    let extra = d.path("extra");
    make_segment(&extra);
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let err = unsafe { rvm.map(&extra, MapOptions::anywhere()) }.unwrap_err();
    assert!(matches!(err, Error::TooManySegments { .. }), "{err}");
    assert_eq!(table(&log).len(), SEGMENTS_PER_LOG_MAX);
    // Creating a heap segment over an existing file is refused before the file changes.
    let old = std::fs::read(&extra).unwrap();
    let layout = rvm::rds::HeapLayout {
        start_address: 0x1000_0000_0000,
        heap_length: 64 << 10,
        static_length: 4096,
        nlists: 8,
        chunk_size: 64,
    };
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let err = unsafe {
        rvm::rds::create_heap_segment(
            &rvm,
            &extra,
            layout.segment_length_min(),
            &layout,
            CreateOptions {
                overwrite: true,
                fallocate: false,
            },
        )
    }
    .unwrap_err();
    assert_eq!(err.code_name(), "RVM_ENO_MEMORY", "{err}");
    assert_eq!(std::fs::read(&extra).unwrap(), old, "the file is unchanged");
    // Unmapping one makes room.
    let gone = mapped.remove(3);
    rvm.unmap(&gone).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&extra, MapOptions::anywhere()) }.unwrap();
    let names = table(&log);
    assert!(names.contains(&seg.uuid()) && !names.contains(&gone.uuid()));
    for s in &mapped {
        assert!(
            names.contains(&s.uuid()),
            "a mapped segment keeps its entry"
        );
    }
    drop(mapped);
    drop(seg);
    rvm.close().unwrap();
}

#[test]
fn recreating_a_segment_at_its_path_replaces_its_entry() {
    let d = Dir::new("recreate");
    let (log, data) = (d.path("log"), d.path("data"));
    Rvm::create_log(&log, 256 * 1024).unwrap();
    let mut last = Uuid::NIL;
    for round in 0..3 * SEGMENTS_PER_LOG_MAX as u64 {
        let rvm = Rvm::open(&log, options()).unwrap();
        last = make_segment(&data);
        commit_one(&rvm, &data, round);
        assert_eq!(read_first(&rvm, &data), round);
        rvm.close().unwrap();
        assert_eq!(table(&log), vec![last], "round {round}");
    }
    let status = LogReader::open(&log).unwrap().status().clone();
    let entry = status.segments.iter().find(|e| e.uuid == last).unwrap();
    assert_eq!(
        Path::new(&entry.path_hint),
        std::fs::canonicalize(&data).unwrap()
    );
}

#[test]
fn mapping_a_moved_segment_records_its_new_path() {
    let d = Dir::new("moved");
    let (log, data, moved) = (d.path("log"), d.path("data"), d.path("moved"));
    Rvm::create_log(&log, 256 * 1024).unwrap();
    let uuid = make_segment(&data);
    let rvm = Rvm::open(&log, options()).unwrap();
    commit_one(&rvm, &data, 7);
    rvm.close().unwrap();
    std::fs::rename(&data, &moved).unwrap();
    // The user says where the segment went; from then on the log remembers it.
    let rvm = Rvm::open(&log, options().segment_path(&moved)).unwrap();
    commit_one(&rvm, &moved, 8);
    // Recovery after a crash now would look for the segment where the last map found it.
    let status = LogReader::open(&log).unwrap().status().clone();
    let entry = status.segments.iter().find(|e| e.uuid == uuid).unwrap();
    assert_eq!(
        Path::new(&entry.path_hint),
        std::fs::canonicalize(&moved).unwrap()
    );
    assert_eq!(read_first(&rvm, &moved), 8);
    rvm.close().unwrap();
}
