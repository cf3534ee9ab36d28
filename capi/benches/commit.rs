//! The cost of a commit through the C interface versus the same commit through the Rust API,
//! in the same process and run: restore-mode transactions writing 8 bytes, committed no_flush
//! (CPU cost: the C layer's checks and registry against `Transaction` alone) and flush (one log
//! sync each). The C entry points are called through their exported symbols, as a C program
//! calls them. `cargo bench -p rvm-capi --bench commit`.

use std::ffi::{c_char, c_void, CString};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
use rvm_capi::types::*;

use rvm_capi as _;

extern "C" {
    fn rvm_initialize(version: *const c_char, options: *mut RvmOptions) -> i32;
    fn rvm_init_options(options: *mut RvmOptions);
    fn rvm_create_log(options: *mut RvmOptions, len: *mut RvmOffset, mode: i64) -> i32;
    fn rvm_set_options(options: *mut RvmOptions) -> i32;
    fn rvm_create_segment(
        dev: *mut c_char,
        len: RvmOffset,
        options: *mut RvmOptions,
        n: u64,
        defs: *mut RvmRegionDef,
    ) -> i32;
    fn rvm_load_segment(
        dev: *mut c_char,
        len: RvmOffset,
        options: *mut RvmOptions,
        n: *mut u64,
        defs: *mut *mut RvmRegionDef,
    ) -> i32;
    fn rvm_init_tid(tid: *mut RvmTid);
    fn rvm_begin_transaction(tid: *mut RvmTid, mode: u32) -> i32;
    fn rvm_set_range(tid: *mut RvmTid, dest: *mut c_void, len: u64) -> i32;
    fn rvm_end_transaction(tid: *mut RvmTid, mode: u32) -> i32;
}

const LOG_BYTES: u64 = 64 << 20;
const REGION_BYTES: u64 = 1 << 20;
/// The classic option flag `RVM_COALESCE_TRANS` (`rvm.h`).
const RVM_COALESCE_TRANS: RvmLength = 2;

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvm-capi-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rust_instance(dir: &std::path::Path) -> (Rvm, usize) {
    let (log, data) = (dir.join("rust-log"), dir.join("rust-data"));
    Rvm::create_log(&log, LOG_BYTES).unwrap();
    let header = segment::layout(
        4096 + REGION_BYTES,
        &[RegionSpec {
            length: REGION_BYTES,
            address: 0x250000000000,
        }],
    )
    .unwrap();
    drop(segment::create(&data, &header, CreateOptions::default()).unwrap());
    let rvm = Rvm::open(&log, Options::default()).unwrap();
    // SAFETY: the test's files are in its own temporary directory; nothing shortens them.
    let seg = unsafe { rvm.map(&data, MapOptions::default()) }.unwrap();
    let base = seg.regions()[0].address;
    (rvm, base)
}

/// The C instance, set up as a C program would; returns the region's address.
fn c_instance(dir: &std::path::Path) -> usize {
    let log = CString::new(dir.join("c-log").to_str().unwrap()).unwrap();
    let data = CString::new(dir.join("c-data").to_str().unwrap()).unwrap();
    let version = CString::new(RVM_VERSION).unwrap();
    // SAFETY: every pointer passed is a valid, live object of the declared type.
    unsafe {
        let mut o: RvmOptions = std::mem::zeroed();
        rvm_init_options(&mut o);
        o.log_dev = log.as_ptr() as *mut c_char;
        // Queued commits share a record, as the Rust API's default does, so both paths do the
        // same work.
        o.flags = RVM_COALESCE_TRANS;
        assert_eq!(rvm_initialize(version.as_ptr(), std::ptr::null_mut()), 0);
        let mut len = RvmOffset {
            high: 0,
            low: LOG_BYTES as _,
        };
        assert_eq!(rvm_create_log(&mut o, &mut len, 0o600), 0);
        assert_eq!(rvm_set_options(&mut o), 0);
        let mut def = RvmRegionDef {
            offset: RvmOffset::default(),
            length: REGION_BYTES as _,
            vmaddr: 0x260000000000 as *mut c_char,
        };
        let zero = RvmOffset::default();
        let dev = data.as_ptr() as *mut c_char;
        assert_eq!(rvm_create_segment(dev, zero, &mut o, 1, &mut def), 0);
        let mut n = 0u64;
        let mut defs: *mut RvmRegionDef = std::ptr::null_mut();
        assert_eq!(rvm_load_segment(dev, zero, &mut o, &mut n, &mut defs), 0);
        (*defs).vmaddr as usize
    }
}

fn c_commit(base: usize, i: u64, mode: u32) {
    // SAFETY: `base` is the start of a mapped region of REGION_BYTES; the tid is a local.
    unsafe {
        let mut tid: RvmTid = std::mem::zeroed();
        rvm_init_tid(&mut tid);
        assert_eq!(rvm_begin_transaction(&mut tid, MODE_RESTORE), 0);
        let p = (base + (i as usize % 4096) * 8) as *mut u64;
        assert_eq!(rvm_set_range(&mut tid, p as *mut c_void, 8), 0);
        p.write_volatile(i);
        assert_eq!(rvm_end_transaction(&mut tid, mode), 0);
    }
}

fn rust_commit(rvm: &Rvm, base: usize, i: u64, mode: CommitMode) {
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    tx.write(base + (i as usize % 4096) * 8, &i).unwrap();
    tx.end(mode).unwrap();
}

fn commits(c: &mut Criterion) {
    let dir = scratch();
    let (rvm, rust_base) = rust_instance(&dir);
    let c_base = c_base_or_init(&dir);
    let mut g = c.benchmark_group("commit");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let mut i = 0u64;
    g.bench_function("rust no_flush", |b| {
        b.iter(|| {
            i += 1;
            rust_commit(&rvm, rust_base, black_box(i), CommitMode::NoFlush)
        })
    });
    g.bench_function("c no_flush", |b| {
        b.iter(|| {
            i += 1;
            c_commit(c_base, black_box(i), MODE_NO_FLUSH)
        })
    });
    g.bench_function("rust flush", |b| {
        b.iter(|| {
            i += 1;
            rust_commit(&rvm, rust_base, black_box(i), CommitMode::Flush)
        })
    });
    g.bench_function("c flush", |b| {
        b.iter(|| {
            i += 1;
            c_commit(c_base, black_box(i), MODE_FLUSH)
        })
    });
    g.finish();
    drop(rvm);
}

/// The same commits in alternating batches, so both paths see the same machine load (this
/// machine is shared; the criterion groups run one after the other): the median per-commit
/// time of each path over the batches, and their ratio.
fn alternating(_: &mut Criterion) {
    let dir = scratch().join("alternating");
    std::fs::create_dir_all(&dir).unwrap();
    let (rvm, rust_base) = rust_instance(&dir);
    let c_base = c_base_or_init(&dir);
    let mut i = 0u64;
    for (mode, c_mode, batch, batches) in [
        (CommitMode::NoFlush, MODE_NO_FLUSH, 2000u64, 1000usize),
        (CommitMode::Flush, MODE_FLUSH, 10, 40),
    ] {
        let (mut rust, mut c) = (Vec::new(), Vec::new());
        for _ in 0..batches {
            let t = std::time::Instant::now();
            for _ in 0..batch {
                i += 1;
                rust_commit(&rvm, rust_base, i, mode);
            }
            rust.push(t.elapsed().as_nanos() as f64 / batch as f64);
            let t = std::time::Instant::now();
            for _ in 0..batch {
                i += 1;
                c_commit(c_base, i, c_mode);
            }
            c.push(t.elapsed().as_nanos() as f64 / batch as f64);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (r, cc) = (median(&mut rust), median(&mut c));
        println!(
            "alternating {mode:?} commits: rust {r:.0} ns, c {cc:.0} ns, c/rust {:.2}",
            cc / r
        );
    }
}

static C_BASE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// The C instance is process-wide: set it up once for both benchmark functions.
fn c_base_or_init(dir: &std::path::Path) -> usize {
    *C_BASE.get_or_init(|| c_instance(dir))
}

/// `RVM_CAPI_PROFILE=c:N` or `rust:N`: run N no_flush commits through one path and exit,
/// for `perf stat` / `valgrind --tool=callgrind` (instructions per commit of each path).
fn profile(spec: &str) {
    let (path, n) = spec
        .split_once(':')
        .expect("RVM_CAPI_PROFILE=c:N or rust:N");
    let n: u64 = n.parse().expect("a commit count");
    let dir = scratch().join("profile");
    std::fs::create_dir_all(&dir).unwrap();
    if path == "c" {
        let base = c_base_or_init(&dir);
        for i in 0..n {
            c_commit(base, i, MODE_NO_FLUSH);
        }
    } else {
        let (rvm, base) = rust_instance(&dir);
        for i in 0..n {
            rust_commit(&rvm, base, i, CommitMode::NoFlush);
        }
    }
}

criterion_group!(benches, commits, alternating);

fn main() {
    if let Ok(spec) = std::env::var("RVM_CAPI_PROFILE") {
        profile(&spec);
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // The logs and segments (about 200 MB) go with the run.
    let _ = std::fs::remove_dir_all(scratch());
}
