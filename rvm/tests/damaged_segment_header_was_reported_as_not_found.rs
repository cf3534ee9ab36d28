//! Issue 12, items 4 and 6. A log with records for a segment whose file is at its path hint
//! but whose header is damaged was reported as "segment ... was not found; pass its path with
//! Options::segment_path". Recovery now says what is wrong with the header of that file. And a
//! header whose region address could never be mapped (0, or in the kernel half) was accepted by
//! recovery, which applied records to it, while `map` refused it: the decoder's rules now
//! refuse it for recovery, map and the tools alike.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rvm::format::segment::SegmentHeader;
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm};

mod support;
use support::Dir;

const REGION_BYTES: u64 = 8192;

/// A log holding one committed, unapplied record for a two-region segment at `data`.
fn log_with_a_record(d: &Dir) -> (PathBuf, PathBuf) {
    let (log, data) = (d.path("log"), d.path("data"));
    Rvm::create_log(&log, 64 * 1024).unwrap();
    let header = segment::layout(
        4096 + 2 * REGION_BYTES,
        &[
            RegionSpec {
                length: REGION_BYTES,
                address: 0x1000_0000_0000,
            },
            RegionSpec {
                length: REGION_BYTES,
                address: 0x1000_0000_2000,
            },
        ],
    )
    .unwrap();
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(seg.regions()[0].address + 8, &0x5555_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    drop(seg);
    rvm.close().unwrap();
    (log, data)
}

fn write_header_bytes(data: &Path, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(data).unwrap();
    f.write_all_at(bytes, 0).unwrap();
}

fn rewrite_header(data: &Path, change: impl FnOnce(&mut SegmentHeader)) {
    let mut h = segment::read_header(data).unwrap();
    change(&mut h);
    write_header_bytes(data, &h.encode());
}

/// Set a little-endian u32 of the header and give it a valid CRC (offset 16, computed with
/// the CRC field zero; FORMAT.md).
fn poke_u32(data: &Path, at: usize, value: u32) {
    let mut buf = std::fs::read(data).unwrap()[..4096].to_vec();
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
    buf[16..20].copy_from_slice(&[0; 4]);
    let crc = crc32fast::hash(&buf);
    buf[16..20].copy_from_slice(&crc.to_le_bytes());
    write_header_bytes(data, &buf);
}

/// Damage the header, then open the log: the error names the file and what is wrong with it.
fn open_after(name: &str, damage: impl FnOnce(&Path), rule: &str) {
    let d = Dir::new(name);
    let (log, data) = log_with_a_record(&d);
    let before = std::fs::read(&data).unwrap();
    damage(&data);
    let damaged = std::fs::read(&data).unwrap();
    assert_ne!(before, damaged);
    let err = Rvm::open(&log, Options::default()).unwrap_err();
    let text = err.to_string();
    let shown = std::fs::canonicalize(&data).unwrap().display().to_string();
    match &err {
        Error::SegmentUnusable { path, cause, .. } => {
            assert_eq!(path, &shown, "{name}");
            assert!(
                matches!(
                    **cause,
                    Error::BadSegment { .. } | Error::SegmentVersion { .. }
                ),
                "{name}: {cause}"
            );
        }
        other => panic!("{name}: expected SegmentUnusable, got {other:?}"),
    }
    assert!(
        text.contains(&shown) && text.contains(rule),
        "{name}: {text}"
    );
    assert!(
        !text.contains("not found") && !text.contains("Options::"),
        "{name}: {text}"
    );
    // Nothing was written to it, and map refuses the same header for the same reason.
    assert_eq!(std::fs::read(&data).unwrap(), damaged, "{name}");
    Rvm::create_log(d.path("other-log"), 64 * 1024).unwrap();
    let rvm = Rvm::open(d.path("other-log"), Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let map_err = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap_err();
    assert!(map_err.to_string().contains(rule), "{name}: map: {map_err}");
    rvm.close().unwrap();
}

#[test]
fn a_damaged_header_at_the_path_hint_is_named_not_reported_missing() {
    open_after(
        "version",
        |data| poke_u32(data, 8, 2),
        "segment format version 2",
    );
    open_after(
        "truncated",
        |data| {
            let f = std::fs::OpenOptions::new().write(true).open(data).unwrap();
            f.set_len(100).unwrap();
        },
        "shorter than a segment header",
    );
    open_after(
        "past-the-end",
        |data| {
            rewrite_header(data, |h| {
                h.length_bytes += 0x10000;
                h.regions[1].length += 0x10000;
            })
        },
        "but the header says the segment is",
    );
    open_after(
        "overlapping",
        |data| rewrite_header(data, |h| h.regions[1].offset = h.regions[0].offset),
        "overlaps region 0 in the segment",
    );
    open_after(
        "count",
        |data| poke_u32(data, 20, u32::MAX),
        "4294967295 exceeds 126",
    );
}

#[test]
fn recovery_refuses_region_addresses_that_map_refuses() {
    open_after(
        "address-zero",
        |data| rewrite_header(data, |h| h.regions[0].address = 0),
        "region 0 (offset 0x1000, length 0x2000, address 0x0): address is zero",
    );
    open_after(
        "kernel-half",
        |data| rewrite_header(data, |h| h.regions[1].address = 0xffff_8000_0000_0000),
        "end of user address space",
    );
    open_after(
        "crossing-the-limit",
        |data| {
            rewrite_header(data, |h| {
                h.regions[0].address = 0x7fff_ffff_e000;
                h.regions[1].address = 0x1000_0000_0000;
            })
        },
        "end of user address space",
    );
}

#[test]
fn a_missing_segment_is_still_reported_as_not_found_without_library_advice() {
    let d = Dir::new("missing");
    let (log, data) = log_with_a_record(&d);
    std::fs::remove_file(&data).unwrap();
    let err = Rvm::open(&log, Options::default()).unwrap_err();
    assert!(matches!(err, Error::SegmentNotFound { .. }), "{err}");
    assert!(!err.to_string().contains("Options::"), "{err}");
}
