//! Fixtures shared by the rvm integration tests (each test file that uses them declares
//! `mod support;`; not every file uses every fixture).
#![allow(dead_code)]

pub mod gate;

use std::path::{Path, PathBuf};

use rvm::device::MemDevice;
use rvm::segment::{self, RegionSpec};

/// A fresh directory for one test, `$TMPDIR/rvm-<test file>-<name>-<pid>`, removed with its
/// contents when dropped (also while a failing test unwinds).
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "rvm-{}-{name}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// `f` inside the directory.
    pub fn path(&self, f: impl AsRef<Path>) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example `name` of this crate, built with the profile these tests were built with (so
/// the library is not built again). Cargo provides no path to examples, so this asks cargo to
/// build it and finds it next to the test executable's directory.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let profile = if profile_dir.ends_with("release") {
        "release"
    } else {
        "test"
    };
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "rvm", "--example", name])
        .args(["--profile", profile])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example {name} failed");
    let binary = profile_dir.join("examples").join(name);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// The header of a segment with one region of `region_bytes` mapped at `address` (the
/// header's page first, the region after it).
pub fn one_region_layout(region_bytes: u64, address: u64) -> rvm::format::segment::SegmentHeader {
    segment::layout(
        4096 + region_bytes,
        &[RegionSpec {
            length: region_bytes,
            address,
        }],
    )
    .unwrap()
}

/// Whether this kernel accepts `madvise(advice)` on private anonymous memory (for options that
/// are only advice, such as the warm-up's `MADV_POPULATE_WRITE`, Linux 5.14+, or huge pages'
/// `MADV_HUGEPAGE`, kernels built with transparent huge pages): where it does not, a test can
/// only check the option's other promises.
pub fn kernel_accepts_advice(advice: libc::c_int) -> bool {
    const PAGE: usize = 4096;
    // SAFETY: a fresh anonymous page of our own, advised and unmapped; nothing else uses it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::madvise(p, PAGE, advice) == 0;
        libc::munmap(p, PAGE);
        ok
    }
}

/// One pseudo-random byte per (pass, offset): test contents that differ per place and pass.
pub fn pattern(pass: u64, offset: usize) -> u8 {
    ((offset as u64).wrapping_mul(0x9e37_79b9) ^ pass.wrapping_mul(0x85eb_ca6b)) as u8
}

/// Pages of `[start, start + len)` that are not resident (mincore). The range must be mapped.
pub fn pages_not_resident(start: usize, len: usize) -> usize {
    const PAGE: usize = 4096;
    let mut vec = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: the caller's range is mapped; mincore only writes `vec`, one byte per page.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|b| **b & 1 == 0).count()
}

/// An in-memory segment named "data" laid out by [`one_region_layout`].
pub fn one_region_segment(region_bytes: u64, address: u64) -> MemDevice {
    let data = MemDevice::new("data", Vec::new());
    segment::write_header(&data, &one_region_layout(region_bytes, address)).unwrap();
    data
}

/// A log and a segment as crash devices under one new controller (seeded `seed`), starting
/// from these images, whose unsynced writes a crash drops entirely.
pub fn crash_pair(
    seed: u64,
    log_img: &[u8],
    data_img: &[u8],
) -> (
    std::sync::Arc<rvm::device::CrashController>,
    std::sync::Arc<rvm::device::CrashDevice>,
    std::sync::Arc<rvm::device::CrashDevice>,
) {
    use rvm::device::{CrashController, CrashDevice, Tear};
    let controller = CrashController::new(seed);
    let device = |name: &str, img: &[u8]| {
        let d = std::sync::Arc::new(CrashDevice::new(name, controller.clone(), img.to_vec()));
        d.set_tear(Tear::DropAll);
        d
    };
    let (log, data) = (device("log", log_img), device("data", data_img));
    (controller, log, data)
}
