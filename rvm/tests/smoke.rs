use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

#[test]
fn commit_close_reopen_and_crash_recover() {
    let dir = tempdir();
    let log = dir.join("log");
    let data = dir.join("data");
    Rvm::create_log(&log, 1 << 20).unwrap();
    let header = segment::layout(
        3 * 4096,
        &[RegionSpec {
            length: 8192,
            address: 0,
        }],
    )
    .unwrap();
    segment::create(&data, &header, CreateOptions::default()).unwrap();
    {
        let rvm = Rvm::open(&log, Options::default()).unwrap();
        let seg = rvm.map(&data, MapOptions::anywhere()).unwrap();
        let base = seg.regions()[0].address;
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.write(base, &0xdead_beef_u64).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        tx.write(base + 8, &7u64).unwrap();
        tx.abort().unwrap();
        assert_eq!(seg.read::<u64>(base + 8).unwrap(), 0);
        rvm.close().unwrap();
    }
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    rvm.wait_for_truncation().unwrap();
    let seg = rvm.map(&data, MapOptions::anywhere()).unwrap();
    let base = seg.regions()[0].address;
    assert_eq!(seg.read::<u64>(base).unwrap(), 0xdead_beef);
    for i in 0..2000u64 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.write(base + 16 + (i as usize % 100) * 8, &i).unwrap();
        tx.end(if i % 100 == 99 {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        })
        .unwrap();
    }
    let st = rvm.query();
    eprintln!("{st:?}");
    // Crash: forget the instance without closing (mem::forget keeps the lock fd open, so drop the
    // mappings by reopening from a copy instead).
    std::mem::forget(rvm);
    let log2 = dir.join("log2");
    let data2 = dir.join("data2");
    std::fs::copy(&log, &log2).unwrap();
    std::fs::copy(&data, &data2).unwrap();
    let rvm = Rvm::open(&log2, Options::default().segment_path(&data2)).unwrap();
    rvm.wait_for_truncation().unwrap();
    let seg = rvm.map(&data2, MapOptions::anywhere()).unwrap();
    let base = seg.regions()[0].address;
    assert_eq!(seg.read::<u64>(base).unwrap(), 0xdead_beef);
    for slot in 0..100usize {
        let want = 1900 + slot as u64;
        assert_eq!(
            seg.read::<u64>(base + 16 + slot * 8).unwrap(),
            want,
            "slot {slot}"
        );
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvm-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
