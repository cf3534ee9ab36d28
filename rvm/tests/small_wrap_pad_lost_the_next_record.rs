//! Regression: a flush whose wrap pad is at most two sectors long was written as one run with
//! the records after it, so those records landed past the end of the record area (the log file
//! grew) instead of at its start. The flush-committed transaction was then lost: a clean reopen
//! reported corruption, a crash would have dropped it. Found by the truncation benchmark.

use rvm::segment::{self, CreateOptions};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;

#[test]
fn records_after_a_small_wrap_pad_go_to_the_area_start() {
    let dir = std::env::temp_dir().join(format!("rvm-wrap-pad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (log, data) = (dir.join("log"), dir.join("data"));
    let area: u64 = 64 * 1024;
    Rvm::create_log(&log, area).unwrap();
    let log_file_bytes = std::fs::metadata(&log).unwrap().len();
    let header = support::one_region_layout(65536, 0x1000_0000_0000);
    segment::create(&data, &header, CreateOptions::default()).unwrap();
    {
        let rvm = Rvm::open(&log, Options::default().truncate_threshold(0)).unwrap();
        // SAFETY: the segment file lives in this test's private temporary directory and nothing
        // shortens it while it is mapped.
        let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
        let base = seg.regions()[0].address;
        // A record of `record` bytes holds one range of `record - 112` bytes (header 56,
        // range header 32, trailer 24), and needs no sector pad when `record` is a multiple of
        // 512.
        let commit = |record: usize, byte: u8| {
            let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
            tx.fill(base, record - 112, byte).unwrap();
            tx.end(CommitMode::Flush).unwrap();
        };
        commit(32768, 1);
        rvm.truncate().unwrap(); // empty, head = tail = area start + 32 KiB
        commit(31744, 2); // tail = area end - 1024
        commit(1024, 3); // a 1024-byte wrap pad, then this record at the area start
        assert_eq!(
            std::fs::metadata(&log).unwrap().len(),
            log_file_bytes,
            "nothing may be written past the record area"
        );
        rvm.close().unwrap();
    }
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the segment file lives in this test's private temporary directory and nothing
    // shortens it while it is mapped.
    let seg = unsafe { rvm.map(&data, MapOptions::anywhere()) }.unwrap();
    let first: u8 = seg.read(seg.regions()[0].address).unwrap();
    assert_eq!(first, 3, "the last flush-committed transaction survives");
    rvm.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
