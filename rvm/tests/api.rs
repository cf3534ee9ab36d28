//! Behaviour of the public API: mapping, transactions, isolation of committed values,
//! limits, locking, and the classic weaknesses this library fixes (spec section K).

use std::path::{Path, PathBuf};

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, Error, MapOptions, Options, Rvm};

mod support;
use support::Dir;

/// The address recorded for segments these tests map anywhere (a header needs a valid one).
const ANYWHERE: u64 = 0x1000_0000_0000;

fn make(dir: &Dir, area: u64, region: u64, address: u64) -> (PathBuf, PathBuf) {
    let (log, data) = (dir.path("log"), dir.path("data"));
    Rvm::create_log(&log, area).unwrap();
    let header = segment::layout(
        4096 + region,
        &[RegionSpec {
            length: region,
            address,
        }],
    )
    .unwrap();
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    (log, data)
}

/// After a simulated crash (the instance forgotten, its lock held by this process), recover a
/// copy of the files as they are on disk, as the next process would.
fn recover_copy(dir: &Dir, log: &Path, data: &Path) -> (Rvm, rvm::Segment) {
    let (log2, data2) = (dir.path("log2"), dir.path("data2"));
    std::fs::copy(log, &log2).unwrap();
    std::fs::copy(data, &data2).unwrap();
    let options = Options::default()
        .segment_path(&data2)
        .background_recovery(false);
    let rvm = Rvm::open(&log2, options).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data2, MapOptions::anywhere()) }.unwrap();
    (rvm, seg)
}

fn reopen_value(log: &Path, data: &Path, offset: usize) -> u64 {
    let rvm = Rvm::open(log, Options::default().background_recovery(false)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(data, MapOptions::anywhere()) }.unwrap();
    seg.read(seg.regions()[0].address + offset).unwrap()
}

#[test]
fn set_range_outside_every_region_is_refused() {
    let d = Dir::new("notmapped");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let r = seg.regions()[0];
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let err = tx.set_range(r.address + r.length - 4, 8).unwrap_err();
    assert!(matches!(err, Error::NotMapped { .. }), "{err}");
    assert_eq!(err.code_name(), "RVM_ENOT_MAPPED");
    assert!(tx.set_range(r.address + r.length - 8, 8).is_ok());
    let local = 0u64;
    assert!(tx.set_range(&local as *const u64 as usize, 8).is_err());
    // After a range in the region (the transaction caches it), one running past its end is
    // still refused.
    assert!(tx.set_range(r.address + 16, 8).is_ok());
    assert!(tx.set_range(r.address + r.length - 4, 8).is_err());
    assert!(tx.set_range(r.address + r.length, 1).is_err());
}

#[test]
fn abort_restores_overlapping_ranges_exactly() {
    let d = Dir::new("abort");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(b, 4096, 7).unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    let mut before = vec![0u8; 4096];
    seg.read_bytes(b, &mut before).unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(b + 2000, 150, 0o141).unwrap();
    tx.fill(b + 2100, 50, 0o142).unwrap();
    tx.fill(b + 2050, 500, 0o143).unwrap();
    tx.fill(b + 100, 10, 1).unwrap();
    tx.abort().unwrap();
    let mut after = vec![0u8; 4096];
    seg.read_bytes(b, &mut after).unwrap();
    assert_eq!(before, after);
    // Dropping an un-ended transaction aborts it too.
    {
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.fill(b, 10, 9).unwrap();
    }
    seg.read_bytes(b, &mut after).unwrap();
    assert_eq!(before, after);
    assert_eq!(rvm.statistics().aborts, 2);
}

#[test]
fn values_are_captured_at_commit_not_at_flush() {
    // Spec K11: a later uncommitted write to committed bytes must not be logged as committed.
    let d = Dir::new("capture");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    {
        let rvm = Rvm::open(&log, Options::default()).unwrap();
        // SAFETY: the segment file lives in this test's private temporary directory and nothing
        // shortens it while it is mapped.
        let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
        let b = seg.regions()[0].address;
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.write(b, &1111u64).unwrap();
        tx.end(CommitMode::NoFlush).unwrap();
        // Another transaction changes the same bytes and is still open when the flush happens.
        let mut other = rvm.begin(BeginMode::NoRestore).unwrap();
        other.write(b, &2222u64).unwrap();
        rvm.flush().unwrap();
        std::mem::forget(other);
        std::mem::forget(rvm); // crash
    }
    let (_rvm, seg) = recover_copy(&d, &log, &data);
    assert_eq!(seg.read::<u64>(seg.regions()[0].address).unwrap(), 1111);
}

#[test]
fn unmap_then_map_again_shows_committed_changes() {
    // Spec K12: the classic library returns stale data here.
    let d = Dir::new("remap");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.modify_bytes(b + 16, b"HELLO").unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    rvm.unmap(&seg).unwrap();
    assert!(
        seg.read::<u8>(b).is_err(),
        "reads through a stale handle are refused"
    );
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let mut got = [0u8; 5];
    seg.read_bytes(seg.regions()[0].address + 16, &mut got)
        .unwrap();
    assert_eq!(&got, b"HELLO");
}

#[test]
fn unmap_is_refused_while_a_transaction_holds_a_range() {
    let d = Dir::new("pinned");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.set_range(seg.regions()[0].address, 8).unwrap();
    let err = rvm.unmap(&seg).unwrap_err();
    assert_eq!(err.code_name(), "RVM_EUNCOMMIT");
    tx.end(CommitMode::Flush).unwrap();
    rvm.unmap(&seg).unwrap();
}

#[test]
fn too_big_is_refused_before_writing_and_the_largest_allowed_completes() {
    // Spec K14b: a transaction that passes the size check must always complete.
    let d = Dir::new("toobig");
    let area = 64 * 1024;
    let (log, data) = make(&d, area, 128 * 1024, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    let max = rvm.query().record_bytes_max;
    // Fill the log partly so the big transaction needs a truncation to fit.
    for i in 0..40u64 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.write(b + 8 * i as usize, &i).unwrap();
        tx.end(CommitMode::Flush).unwrap();
    }
    let used_before = rvm.query().used_bytes;
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.fill(b, area as usize, 0xaa).unwrap();
    let err = tx.end(CommitMode::Flush).unwrap_err();
    assert!(matches!(err, Error::TooBig { .. }), "{err}");
    assert_eq!(err.code_name(), "RVM_ETOO_BIG");
    assert_eq!(
        seg.read::<u64>(b + 8).unwrap(),
        1,
        "the refused transaction was rolled back"
    );
    assert_eq!(rvm.query().used_bytes, used_before, "nothing was written");
    assert_eq!(
        rvm.statistics().aborts,
        1,
        "a refused end counts as an abort (it was not counted at all)"
    );
    // The largest transaction the log accepts completes (one range: record overhead 112 bytes).
    let biggest = (max - 112) as usize & !7;
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.fill(b, biggest, 0x5c).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    drop(seg);
    rvm.close().unwrap();
    assert_eq!(
        reopen_value(&log, &data, biggest - 8),
        0x5c5c_5c5c_5c5c_5c5c
    );
}

#[test]
fn a_second_opener_of_the_log_is_refused() {
    let d = Dir::new("locked");
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let err = Rvm::open(&log, Options::default()).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("log") && err.to_string().contains("in use"));
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let _seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    // A second process (flock(1) from util-linux) cannot take the lock either.
    let out = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&log)
        .arg("true")
        .output()
        .expect("run flock(1)");
    assert!(!out.status.success(), "another process could lock the log");
}

#[test]
fn an_occupied_fixed_address_is_reported_not_clobbered() {
    let d = Dir::new("occupied");
    // Take a page-aligned address that is certainly in use: this test's own heap mapping.
    let probe = vec![0u8; 1 << 20];
    let inside = (probe.as_ptr() as u64 + 8192) & !4095;
    let (log, data) = make(&d, 64 * 1024, 4096, inside);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let err = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap_err();
    match &err {
        Error::AddressInUse {
            start, occupant, ..
        } => {
            assert_eq!(*start, inside);
            assert!(
                occupant.contains('-'),
                "names the occupying mapping: {occupant}"
            );
        }
        other => panic!("expected AddressInUse, got {other}"),
    }
    assert!(err.to_string().contains(&format!("{inside:#x}")));
    assert!(
        probe.iter().all(|b| *b == 0),
        "the existing mapping was not touched"
    );
}

#[test]
fn a_one_gigabyte_sparse_segment_maps_without_reading_it() {
    let d = Dir::new("sparse");
    let gig = 1u64 << 30;
    let (log, data) = make(&d, 64 * 1024, gig - 4096, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let r = seg.regions()[0];
    assert_eq!(r.length as u64, gig - 4096);
    // Count resident pages of the mapping: nothing was read up front.
    let pages = r.length / 4096;
    let mut vec = vec![0u8; pages];
    // SAFETY: the region is mapped and page aligned; vec has one byte per page.
    let rc = unsafe { libc::mincore(r.address as *mut libc::c_void, r.length, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    let resident = vec.iter().filter(|b| **b & 1 == 1).count();
    assert!(
        resident < 64,
        "{resident} pages resident right after mapping 1 GB"
    );
    let on_disk = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&data).unwrap()) * 512;
    assert!(
        on_disk < 1 << 20,
        "the segment file stays sparse ({on_disk} bytes)"
    );
    // Touching one page in a transaction faults in only that page.
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(r.address + 512 * 1024 * 1024, &42u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
}

#[test]
fn concurrent_flush_commits_from_threads_are_all_durable() {
    let d = Dir::new("threads");
    let (log, data) = make(&d, 1 << 20, 64 * 1024, ANYWHERE);
    let threads = 4;
    let per_thread = 200;
    {
        let rvm = Rvm::open(&log, Options::default()).unwrap();
        // SAFETY: the segment file lives in this test's private temporary directory and nothing
        // shortens it while it is mapped.
        let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
        let b = seg.regions()[0].address;
        std::thread::scope(|s| {
            for t in 0..threads {
                let rvm = &rvm;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
                        tx.write(b + (t * per_thread + i) * 8, &((t * 1000 + i) as u64 + 1))
                            .unwrap();
                        tx.end(CommitMode::Flush).unwrap();
                    }
                });
            }
        });
        let st = rvm.statistics();
        assert_eq!(st.flush_commits, (threads * per_thread) as u64);
        assert!(
            st.flushes <= st.flush_commits,
            "one sync never serves less than one commit"
        );
        std::mem::forget(seg);
        std::mem::forget(rvm); // crash: no close
    }
    let (_rvm, seg) = recover_copy(&d, &log, &data);
    let b = seg.regions()[0].address;
    for t in 0..threads {
        for i in 0..per_thread {
            assert_eq!(
                seg.read::<u64>(b + (t * per_thread + i) * 8).unwrap(),
                (t * 1000 + i) as u64 + 1
            );
        }
    }
}

#[test]
fn background_truncation_starts_at_the_threshold_and_statistics_add_up() {
    // A log large enough never to fill here: only the background thread can truncate it.
    let d = Dir::new("threshold");
    let (log, data) = make(&d, 1 << 20, 64 * 1024, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(50)).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    let mut commits = 0u64;
    while rvm.statistics().background_truncations == 0 {
        let i = commits;
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.write(b + (i as usize % 1000) * 8, &i).unwrap();
        tx.set_range(b + (i as usize % 1000) * 8, 4).unwrap(); // coalesces into the first range
        tx.end(if i.is_multiple_of(2) {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        })
        .unwrap();
        commits += 1;
        assert!(
            commits < 20_000,
            "no background truncation after {commits} commits"
        );
    }
    rvm.wait_for_truncation().unwrap();
    let st = rvm.statistics();
    // Each flush writes at least a sector, so half the log is used after ~1,000 flushes.
    assert!(
        commits >= 1000,
        "truncation started at {commits} commits, before the threshold"
    );
    assert_eq!(st.space_waits, 0, "the log never filled");
    assert_eq!(st.flush_commits + st.no_flush_commits, commits);
    assert_eq!(st.ranges_coalesced, commits);
    let q = rvm.query();
    assert!(q.used_percent < 50.0, "truncation freed the log: {q:?}");
    assert!(q.used_bytes + q.free_bytes == q.area_size);
    assert_eq!(q.active_transactions, 0);
    assert_eq!(q.segments.len(), 1);
}

#[test]
fn truncate_threshold_changes_at_run_time() {
    let d = Dir::new("set-threshold");
    let (log, data) = make(&d, 1 << 20, 64 * 1024, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(50)).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    assert!(matches!(
        rvm.set_truncate_threshold(101),
        Err(Error::InvalidArgument { .. })
    ));
    rvm.set_truncate_threshold(0).unwrap();
    assert_eq!(rvm.truncate_threshold(), 0);
    // Past the old threshold (each flush writes at least a sector): nothing truncates.
    for i in 0..1200u64 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.write(b + (i as usize % 100) * 8, &i).unwrap();
        tx.end(CommitMode::Flush).unwrap();
    }
    assert!(rvm.query().used_percent > 50.0);
    assert_eq!(rvm.statistics().background_truncations, 0);
    // A lower threshold starts truncation at the next flush.
    rvm.set_truncate_threshold(10).unwrap();
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.write(b, &1u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let mut polls = 0;
    while rvm.statistics().background_truncations == 0 {
        polls += 1;
        assert!(
            polls < 2000,
            "no background truncation after lowering the threshold"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rvm.wait_for_truncation().unwrap();
    assert!(rvm.query().used_percent < 10.0);
    drop(seg);
    rvm.close().unwrap();
    // Without a truncation thread only 0 is accepted.
    let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
    assert!(rvm.set_truncate_threshold(30).is_err());
    rvm.set_truncate_threshold(0).unwrap();
}

#[test]
fn bad_files_get_errors_that_name_them_and_change_nothing() {
    let d = Dir::new("badfiles");
    let junk = d.path("junk");
    std::fs::write(&junk, vec![0x42u8; 200_000]).unwrap();
    let err = Rvm::open(&junk, Options::default()).unwrap_err();
    assert!(
        err.to_string().contains(&junk.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&junk).unwrap(), vec![0x42u8; 200_000]);
    let (log, data) = make(&d, 64 * 1024, 8192, ANYWHERE);
    use std::os::unix::fs::PermissionsExt;
    for f in [&log, &data] {
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let err = unsafe { rvm.map(&junk, MapOptions::anywhere()) }.unwrap_err();
    assert!(
        matches!(err, Error::BadSegment { .. }) && err.to_string().contains("junk"),
        "{err}"
    );
    let err = Rvm::create_log(&log, 64 * 1024).unwrap_err();
    assert!(err.to_string().contains("log"), "{err}");
    let err = Rvm::create_log(d.path("tiny"), 100).unwrap_err();
    assert!(err.to_string().contains("log size"), "{err}");
    assert!(!d.path("tiny").exists());
}

#[test]
fn active_transactions_are_those_begun_and_not_yet_ended_or_aborted() {
    // The count is derived (begun minus committed minus aborted), so every way a
    // transaction ends must be counted exactly once.
    let d = Dir::new("active");
    // A 64 KiB log cannot hold a record of the whole 64 KiB region.
    let (log, data) = make(&d, 64 * 1024, 64 * 1024, ANYWHERE);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let b = seg.regions()[0].address;
    let active = || rvm.query().active_transactions;
    assert_eq!(active(), 0);
    let mut outer = rvm.begin(BeginMode::Restore).unwrap();
    outer.write(b, &1u64).unwrap();
    let empty = rvm.begin(BeginMode::NoRestore).unwrap();
    let mut aborted = rvm.begin(BeginMode::Restore).unwrap();
    aborted.write(b + 8, &2u64).unwrap();
    let dropped = rvm.begin(BeginMode::Restore).unwrap();
    let mut too_big = rvm.begin(BeginMode::NoRestore).unwrap();
    too_big.set_range(b, 64 * 1024).unwrap();
    assert_eq!(active(), 5);
    empty.end(CommitMode::NoFlush).unwrap();
    assert_eq!(active(), 4);
    aborted.abort().unwrap();
    assert_eq!(active(), 3);
    drop(dropped);
    assert_eq!(active(), 2);
    let refused = too_big.end(CommitMode::Flush);
    assert!(matches!(refused, Err(Error::TooBig { .. })), "{refused:?}");
    assert_eq!(active(), 1);
    outer.end(CommitMode::Flush).unwrap();
    assert_eq!(active(), 0);
    let st = rvm.statistics();
    assert_eq!((st.flush_commits + st.no_flush_commits, st.aborts), (2, 3));
}
