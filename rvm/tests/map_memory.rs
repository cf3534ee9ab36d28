//! Where mapped memory comes from. Huge pages (`MapOptions::huge_pages`,
//! `FileMapOptions::huge_pages`, `StoreOptions::map` with `MapOptions::huge_pages`): the anonymous parts of a mapping,
//! and only those, are advised `MADV_HUGEPAGE`; the mapped bytes, the commits and what
//! truncation writes are the same as without. The advice is read back from the kernel
//! (`VmFlags` of `/proc/self/smaps`); whether the kernel then finds huge pages depends on its
//! memory and is not asserted. Copy mode (`MapOptions::copy`): the regions are read into
//! memory of the process's own, data only (holes stay unresident), and behave as a mapped file
//! does for commits, aborts, truncation and recovery.

use std::path::Path;

use rvm::segment::{self, CreateOptions};
use rvm::{BeginMode, CommitMode, FileMapMode, FileMapOptions, MapOptions, Options, Rvm};

mod support;
use support::{pages_not_resident, pattern, Dir};

const PAGE: usize = 4096;
const REGION: usize = 8 << 20;

/// One mapping of this process, from `/proc/self/smaps`.
#[derive(Debug)]
struct Vma {
    start: usize,
    end: usize,
    /// Mapped from a file (the header line names an inode).
    file: bool,
    /// `VmFlags` has `hg`: advised `MADV_HUGEPAGE`.
    huge_advised: bool,
}

/// The mappings of this process that overlap `[start, end)`.
fn vmas(start: usize, end: usize) -> Vec<Vma> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut found: Vec<Vma> = Vec::new();
    let mut current: Option<Vma> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                found.extend(current.take());
                let inode = fields.nth(3).unwrap_or("0");
                current = Some(Vma {
                    start: a,
                    end: b,
                    file: inode != "0",
                    huge_advised: false,
                });
                continue;
            }
        }
        if first == "VmFlags:" {
            if let Some(v) = current.as_mut() {
                v.huge_advised = fields.any(|f| f == "hg");
            }
        }
    }
    found.extend(current);
    found.retain(|v| v.start < end && start < v.end);
    found
}

/// Whether this kernel accepts `MADV_HUGEPAGE` (built with transparent huge pages): without
/// it the option does nothing, and only its other promises can be checked.
fn kernel_advises_huge_pages() -> bool {
    support::kernel_accepts_advice(libc::MADV_HUGEPAGE)
}

/// A sparse segment with one `REGION` region at `address` whose first 2 MiB hold data (written
/// by a committed transaction and truncated into the file) and the rest holes. Returns the
/// region's bytes.
fn segment_with_data_then_holes(log: &Path, data: &Path, address: u64) -> Vec<u8> {
    Rvm::create_log(log, 4 << 20).unwrap();
    let header = support::one_region_layout(REGION as u64, address);
    drop(segment::create(data, &header, CreateOptions::default()).unwrap());
    let mut expected = vec![0u8; REGION];
    let rvm = Rvm::open(log, Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let _seg = unsafe { rvm.map(data, MapOptions::default()) }.unwrap();
    let bytes: Vec<u8> = (0..2 << 20).map(|i| pattern(1, i)).collect();
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.modify_bytes(address as usize, &bytes).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    expected[..bytes.len()].copy_from_slice(&bytes);
    rvm.truncate().unwrap();
    rvm.close().unwrap();
    expected
}

/// Commit `len` bytes of [`pattern`] `pass` at every `step` bytes of the region at `base`
/// from `first` on (`(first, step, len)`), a transaction each, begun and ended as `modes`
/// says; `expected` takes the same bytes.
fn commit_spread(
    rvm: &Rvm,
    base: usize,
    expected: &mut [u8],
    (first, step, len): (usize, usize, usize),
    pass: u64,
    (begin, end): (BeginMode, CommitMode),
) {
    for at in (first..=expected.len() - len).step_by(step) {
        let bytes: Vec<u8> = (0..len).map(|i| pattern(pass, at + i)).collect();
        let mut tx = rvm.begin(begin).unwrap();
        tx.modify_bytes(base + at, &bytes).unwrap();
        tx.end(end).unwrap();
        expected[at..at + len].copy_from_slice(&bytes);
    }
}

#[test]
fn huge_pages_advise_the_holes_only_and_change_no_byte() {
    let dir = Dir::new("segment");
    let (log, data) = (dir.path("log"), dir.path("data"));
    const ADDRESS: u64 = 0x3300_0000_0000;
    let mut expected = segment_with_data_then_holes(&log, &data, ADDRESS);
    let base = ADDRESS as usize;
    let advises = kernel_advises_huge_pages();

    // Without the option nothing of the region is advised.
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
    let plain = vmas(base, base + REGION);
    assert!(!plain.is_empty());
    assert!(plain.iter().all(|v| !v.huge_advised), "{plain:?}");
    rvm.unmap(&seg).unwrap();

    // With it, the holes (anonymous memory) are advised and the data stays file-backed.
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, MapOptions::default().huge_pages(true)) }.unwrap();
    assert_eq!(seg.regions()[0].address, base);
    let huge = vmas(base, base + REGION);
    let data_part = huge
        .iter()
        .find(|v| v.start <= base && base < v.end)
        .unwrap();
    assert!(data_part.file, "the data part is not file-backed: {huge:?}");
    assert!(
        !data_part.huge_advised,
        "file-backed memory advised: {huge:?}"
    );
    let hole = base + (4 << 20);
    let hole_part = huge
        .iter()
        .find(|v| v.start <= hole && hole < v.end)
        .unwrap();
    assert!(!hole_part.file, "the hole is not anonymous: {huge:?}");
    if advises {
        assert!(hole_part.huge_advised, "the hole is not advised: {huge:?}");
        assert!(huge.iter().all(|v| v.huge_advised != v.file), "{huge:?}");
    }

    // The bytes read as before, transactions over both parts commit, and truncation writes
    // them into the file.
    let mut now = vec![0u8; REGION];
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the mapped bytes changed");
    let restore = (BeginMode::Restore, CommitMode::NoFlush);
    commit_spread(
        &rvm,
        base,
        &mut expected,
        (PAGE, 3 * PAGE + 448, 200),
        2,
        restore,
    );
    // An aborted transaction over a hole restores its bytes.
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.modify_bytes(hole + 100, &[0xee; 300]).unwrap();
    tx.abort().unwrap();
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the committed bytes differ in memory");
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    rvm.close().unwrap();
    assert_segment_holds(&log, &data, &expected);
}

/// Open the log, map the segment as by default (its one region at its fixed address), and
/// check that the region holds `expected`.
fn assert_segment_holds(log: &Path, data: &Path, expected: &[u8]) {
    let rvm = Rvm::open(log, Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(data, MapOptions::default()) }.unwrap();
    let mut now = vec![0u8; expected.len()];
    seg.read_bytes(seg.regions()[0].address, &mut now).unwrap();
    assert!(now == expected, "the segment file differs");
    rvm.close().unwrap();
}

#[test]
fn huge_pages_advise_a_whole_copied_plain_file() {
    let dir = Dir::new("plain");
    let path = dir.path("plain");
    let contents: Vec<u8> = (0..4 << 20).map(|i| pattern(3, i)).collect();
    std::fs::write(&path, &contents).unwrap();
    Rvm::create_log(dir.path("log"), 4 << 20).unwrap();
    let rvm = Rvm::open(dir.path("log"), Options::default()).unwrap();
    for huge_pages in [false, true] {
        let options = FileMapOptions {
            mode: FileMapMode::Copy,
            huge_pages,
            ..FileMapOptions::default()
        };
        // SAFETY: the file is the test's own; copy mode never faults on it.
        let seg = unsafe { rvm.map_file(&path, options) }.unwrap();
        let r = seg.regions()[0];
        let mapped = vmas(r.address, r.end());
        assert!(mapped.iter().all(|v| !v.file), "{mapped:?}");
        if kernel_advises_huge_pages() {
            assert!(
                mapped.iter().all(|v| v.huge_advised == huge_pages),
                "huge_pages {huge_pages}: {mapped:?}"
            );
        }
        let mut now = vec![0u8; contents.len()];
        seg.read_bytes(r.address, &mut now).unwrap();
        assert!(
            now == contents,
            "the copy differs (huge_pages {huge_pages})"
        );
        rvm.unmap(&seg).unwrap();
    }
    rvm.close().unwrap();
}

/// Whether some anonymous part of `[start, end)` is advised, and no file-backed part is.
fn advised_holes(start: usize, end: usize) -> bool {
    let found = vmas(start, end);
    assert!(
        found.iter().all(|v| !(v.file && v.huge_advised)),
        "{found:?}"
    );
    found.iter().any(|v| !v.file && v.huge_advised)
}

#[test]
fn a_store_maps_its_heaps_and_added_ones_with_huge_pages_when_asked() {
    use rvm::store::{Store, StoreOptions};
    use rvm::typed::PHashMap;
    let dir = Dir::new("store");
    let options = |huge_pages: bool| {
        StoreOptions::default()
            .start_address(0x3400_0000_0000)
            .heap_bytes(8 << 20)
            .log_bytes(1 << 20)
            .map(MapOptions::default().huge_pages(huge_pages))
    };
    let advises = kernel_advises_huge_pages();
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { Store::open_or_create(dir.path("kv"), options(true)) }.unwrap();
    let root = store.root::<PHashMap<u64, u64>>().unwrap();
    let mut tx = store.begin().unwrap();
    let map = PHashMap::new(&mut tx, &store).unwrap();
    root.set(&mut tx, &map).unwrap();
    for k in 0..2000u64 {
        map.insert(&mut tx, &store, &k, &(k * 3)).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    store.grow(8 << 20).unwrap();
    let heaps = store.heaps();
    assert_eq!(heaps.len(), 2);
    if advises {
        for h in &heaps {
            assert!(
                advised_holes(h.address(), h.address() + h.length()),
                "heap at {:#x} not advised",
                h.address()
            );
        }
    }
    drop((root, map, heaps));
    store.close().unwrap();

    // Reopened without the option: nothing is advised, every entry is there. With it, the
    // holes are advised; with copy mode too, every part of the heaps (the entries included)
    // is memory of the process's own, advised.
    for huge_pages in [false, true] {
        // SAFETY: as above.
        let store = unsafe { Store::open_or_create(dir.path("kv"), options(huge_pages)) }.unwrap();
        assert!(!store.created());
        let heaps = store.heaps();
        assert_eq!(heaps.len(), 2);
        for h in &heaps {
            let advised = advised_holes(h.address(), h.address() + h.length());
            assert_eq!(advised, huge_pages && advises, "heap at {:#x}", h.address());
        }
        let map = store.root::<PHashMap<u64, u64>>().unwrap().get().unwrap();
        for k in 0..2000u64 {
            assert_eq!(map.get(&store, &k).unwrap(), Some(k * 3), "key {k}");
        }
        drop((map, heaps));
        store.close().unwrap();
    }
    let copied = StoreOptions {
        map: MapOptions::default().huge_pages(true).copy(true),
        ..options(true)
    };
    // SAFETY: as above.
    let store = unsafe { Store::open_or_create(dir.path("kv"), copied) }.unwrap();
    for h in store.heaps() {
        let parts = vmas(h.address(), h.address() + h.length());
        assert!(parts.iter().all(|v| !v.file), "{parts:?}");
        if advises {
            assert!(parts.iter().all(|v| v.huge_advised), "{parts:?}");
        }
    }
    let map = store.root::<PHashMap<u64, u64>>().unwrap().get().unwrap();
    for k in 0..2000u64 {
        assert_eq!(map.get(&store, &k).unwrap(), Some(k * 3), "key {k}");
    }
    store.close().unwrap();
}

#[test]
fn copy_mode_reads_the_data_only_and_commits_truncates_and_recovers_as_a_mapping_does() {
    let dir = Dir::new("copy");
    let (log, data) = (dir.path("log"), dir.path("data"));
    const ADDRESS: u64 = 0x3800_0000_0000;
    let mut expected = segment_with_data_then_holes(&log, &data, ADDRESS);
    let base = ADDRESS as usize;

    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&data, MapOptions::default().copy(true)) }.unwrap();
    assert_eq!(seg.regions()[0].address, base);
    let mapped = vmas(base, base + REGION);
    assert!(
        mapped.iter().all(|v| !v.file),
        "a file-backed part: {mapped:?}"
    );
    // The data (the first 2 MiB) was read; the holes were not touched.
    assert_eq!(pages_not_resident(base, 2 << 20), 0);
    assert_eq!(
        pages_not_resident(base + (2 << 20), REGION - (2 << 20)),
        (REGION - (2 << 20)) / PAGE,
        "copy mode made holes resident"
    );
    let mut now = vec![0u8; REGION];
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the copied bytes differ from the file");

    // Commits over data and holes, an abort, and truncation into the file.
    let restore = (BeginMode::Restore, CommitMode::NoFlush);
    commit_spread(
        &rvm,
        base,
        &mut expected,
        (PAGE / 2, 5 * PAGE + 136, 300),
        4,
        restore,
    );
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.modify_bytes(base + 100, &[0xee; 5000]).unwrap();
    tx.abort().unwrap();
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    // Then commits left in the log for recovery (flushed, not truncated).
    let durable = (BeginMode::NoRestore, CommitMode::Flush);
    commit_spread(
        &rvm,
        base,
        &mut expected,
        (3 * PAGE, 11 * PAGE + 8, 64),
        5,
        durable,
    );
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the committed bytes differ in memory");
    drop(seg);
    drop(rvm);

    // Reopened (recovery applies what the log holds) and copied again, with huge pages this
    // time: the whole region is then advised, data included.
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    let options = MapOptions::default().copy(true).huge_pages(true);
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&data, options) }.unwrap();
    seg.read_bytes(base, &mut now).unwrap();
    assert!(now == expected, "the recovered copy differs");
    if kernel_advises_huge_pages() {
        let mapped = vmas(base, base + REGION);
        assert!(
            mapped.iter().all(|v| v.huge_advised && !v.file),
            "{mapped:?}"
        );
    }
    rvm.close().unwrap();
    // And the file itself agrees, through a default mapping.
    assert_segment_holds(&log, &data, &expected);
}

#[test]
fn a_copied_segment_keeps_working_when_its_file_is_shortened() {
    // The case copy mode removes: touching a page of a mapped file that was shortened raises
    // SIGBUS. A copied region is the process's own memory, which is why `map_copy` is safe.
    let dir = Dir::new("shortened");
    let (log, data) = (dir.path("log"), dir.path("data"));
    const ADDRESS: u64 = 0x3900_0000_0000;
    let expected = segment_with_data_then_holes(&log, &data, ADDRESS);
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // `map_copy` maps in copy mode whatever the options say.
    let seg = rvm.map_copy(&data, MapOptions::default()).unwrap();
    let parts = vmas(ADDRESS as usize, ADDRESS as usize + REGION);
    assert!(parts.iter().all(|v| !v.file), "{parts:?}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(PAGE as u64)
        .unwrap();
    let mut now = vec![0u8; REGION];
    seg.read_bytes(ADDRESS as usize, &mut now).unwrap();
    assert!(now == expected, "the copied bytes changed");
    let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
    tx.modify_bytes(ADDRESS as usize + REGION - 64, &[7; 64])
        .unwrap();
    tx.end(CommitMode::Flush).unwrap();
    rvm.close().unwrap();
}

#[test]
fn copy_mode_of_a_plain_file_reads_each_data_extent_once_from_any_offset() {
    let dir = Dir::new("extents");
    let path = dir.path("sparse");
    // Data extents at [0, 64K), [1M, 1M + 8K) and the last 4K of 3M; holes between.
    const LEN: u64 = 3 << 20;
    let file = std::fs::File::create(&path).unwrap();
    let mut contents = vec![0u8; LEN as usize];
    for (start, len) in [(0u64, 64 << 10), (1 << 20, 8 << 10), (LEN - 4096, 4096)] {
        let bytes: Vec<u8> = (0..len).map(|i| pattern(6, (start + i) as usize)).collect();
        std::os::unix::fs::FileExt::write_all_at(&file, &bytes, start).unwrap();
        contents[start as usize..(start + len) as usize].copy_from_slice(&bytes);
    }
    file.set_len(LEN).unwrap();
    drop(file);
    Rvm::create_log(dir.path("log"), 4 << 20).unwrap();
    let rvm = Rvm::open(dir.path("log"), Options::default()).unwrap();
    // The whole file, from inside the first extent, from inside a hole, and a range that
    // ends inside the second extent.
    for (offset, length) in [
        (0u64, 0u64),
        (32 << 10, 0),
        (512 << 10, 0),
        (512 << 10, (1 << 20) + 4096 - (512 << 10)),
    ] {
        let options = FileMapOptions {
            mode: FileMapMode::Copy,
            offset,
            length,
            ..FileMapOptions::default()
        };
        // SAFETY: the file is the test's own; copy mode never faults on it.
        let seg = unsafe { rvm.map_file(&path, options) }.unwrap();
        let r = seg.regions()[0];
        // The hole from 128K to 1M is never read (the copy from 512K starts inside it). Looked
        // at before the bytes are read back, which maps the zero page over untouched pages.
        let hole = (128u64 << 10).max(offset)..(1 << 20);
        let hole_at = r.address + (hole.start - offset) as usize;
        let hole_len = (hole.end - hole.start) as usize;
        assert_eq!(
            pages_not_resident(hole_at, hole_len),
            hole_len / PAGE,
            "copy from {offset}: hole pages made resident"
        );
        let want = &contents[offset as usize..offset as usize + r.length];
        let mut now = vec![0u8; r.length];
        seg.read_bytes(r.address, &mut now).unwrap();
        assert!(now == want, "copy from {offset} ({length} bytes) differs");
        rvm.unmap(&seg).unwrap();
    }
    rvm.close().unwrap();
}

#[test]
fn a_copied_store_is_opened_created_and_grown_without_unsafe_and_survives_shortened_files() {
    use rvm::store::{Store, StoreOptions};
    use rvm::typed::PHashMap;
    let dir = Dir::new("safe-store");
    let options = StoreOptions::default()
        .start_address(0x3a00_0000_0000)
        .heap_bytes(8 << 20)
        .log_bytes(1 << 20);
    let no_file_mapped = |store: &Store| {
        for h in store.heaps() {
            let parts = vmas(h.address(), h.address() + h.length());
            assert!(parts.iter().all(|v| !v.file), "{parts:?}");
        }
    };
    // Created, filled and grown: no heap is ever mapped from its file.
    let store = Store::open_or_create_copied(dir.path("kv"), options.clone()).unwrap();
    assert!(store.created());
    let root = store.root::<PHashMap<u64, u64>>().unwrap();
    let mut tx = store.begin().unwrap();
    let map = PHashMap::new(&mut tx, &store).unwrap();
    root.set(&mut tx, &map).unwrap();
    for k in 0..500u64 {
        map.insert(&mut tx, &store, &k, &(k + 1)).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
    store.grow(8 << 20).unwrap();
    assert_eq!(store.heaps().len(), 2);
    no_file_mapped(&store);
    drop((root, map));
    store.close().unwrap();

    // Reopened (copy mode whatever the options say): every entry is there.
    let asked_private = StoreOptions {
        map: MapOptions::default(),
        ..options
    };
    let store = Store::open_or_create_copied(dir.path("kv"), asked_private).unwrap();
    assert!(!store.created());
    no_file_mapped(&store);
    let map = store.root::<PHashMap<u64, u64>>().unwrap().get().unwrap();
    // The files shortened under the open store: with a mapped file, the reads below would
    // die of SIGBUS; the copies are the process's own memory.
    for name in ["data", "data.1"] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path("kv").join(name))
            .unwrap()
            .set_len(0)
            .unwrap();
    }
    for k in 0..500u64 {
        assert_eq!(map.get(&store, &k).unwrap(), Some(k + 1), "key {k}");
    }
    for h in store.heaps() {
        assert!(h.check().is_ok());
    }
}
