//! The optional warm-up after mapping ([`MapOptions::warm_up`](crate::MapOptions::warm_up)): a
//! background thread that faults every page of a segment's regions in, writable, so the first
//! writes of transactions do not each take a page fault.
//!
//! It asks the kernel to do it (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14 and later): the
//! pages are made present and private to the mapping without reading or writing their bytes
//! from user space, so transactions writing meanwhile are not disturbed, and a page that cannot
//! be provided (a file shortened against the contract of `Rvm::map`) makes the call fail with
//! `EFAULT` instead of raising SIGBUS. On an older kernel the first call fails with `EINVAL` and
//! the thread stops: the warm-up is only ever an optimization.
//!
//! The thread runs at the lowest priority (nice 19), so it uses idle processor time. It works
//! in chunks of [`CHUNK_BYTES`], each with the segment's `mapped` lock held for
//! reading, the lock unmapping takes for writing: so no chunk runs while (or after) the regions
//! are unmapped, and unmapping waits for at most one chunk. Unmapping then joins the thread.
//!
//! The cost: the whole segment becomes resident memory of the process (private pages, one per
//! page of the regions), as if every page had been written.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use crate::segment::SegmentShared;
use crate::sync::read_lock;

/// Bytes populated per `madvise` call: short enough that unmapping waits little, long enough
/// that the lock and the call cost nothing next to the faults (512 pages of 4 KiB).
pub(crate) const CHUNK_BYTES: usize = 2 << 20;

/// Start warming up `segment`'s regions in a thread of its own. `None` if the thread could not
/// be started (the warm-up is an optimization: mapping does not fail for it).
pub(crate) fn start(segment: &Arc<SegmentShared>) -> Option<JoinHandle<()>> {
    let weak = Arc::downgrade(segment);
    let regions: Vec<(usize, usize)> = segment
        .regions
        .iter()
        .map(|r| (r.address, r.length))
        .collect();
    std::thread::Builder::new()
        .name("rvm-warm-up".into())
        .spawn(move || run(&weak, &regions))
        .ok()
}

/// Why a chunk's warm-up stopped the thread.
enum Stop {
    /// The segment was unmapped (or every handle to it dropped).
    Unmapped,
    /// The kernel does not know `MADV_POPULATE_WRITE`.
    Unsupported,
}

fn run(segment: &Weak<SegmentShared>, regions: &[(usize, usize)]) {
    // Lowest priority: on a busy machine the warm-up takes idle time, not the transactions'.
    // (Measured on 2 shared cores: at normal priority it halved the rate of the commits it
    // raced; at 19 it left it unchanged.) Linux nice values are per thread.
    // SAFETY: setpriority and gettid have no memory-safety preconditions; this changes only
    // the calling thread's nice value (a failure leaves it unchanged, which is harmless).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
    for &(address, length) in regions {
        let end = address + length;
        let mut at = address;
        while at < end {
            let len = CHUNK_BYTES.min(end - at);
            match populate(segment, at, len) {
                Ok(()) => at += len,
                Err(Stop::Unmapped | Stop::Unsupported) => return,
            }
        }
    }
}

/// Populate `[at, at + len)`, which lies inside one of `segment`'s regions, if the segment is
/// still mapped.
fn populate(segment: &Weak<SegmentShared>, at: usize, len: usize) -> Result<(), Stop> {
    let shared = segment.upgrade().ok_or(Stop::Unmapped)?;
    let mapped = read_lock(&shared.mapped);
    if !*mapped {
        return Err(Stop::Unmapped);
    }
    for _ in 0..RETRIES_MAX {
        // SAFETY: `[at, at + len)` lies inside a region of this segment, which stays mapped
        // while `mapped` is held for reading (unmapping takes it for writing first). The advice
        // changes no byte of the memory (it only makes its pages present and writable, as a
        // write fault would, without writing); a page that cannot be provided is reported as
        // EFAULT, not raised as SIGBUS. No Rust reference to the memory is made.
        let rc = unsafe { libc::madvise(at as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
        if rc == 0 {
            return Ok(());
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR | libc::EAGAIN) => continue,
            Some(libc::EINVAL) => return Err(Stop::Unsupported),
            // ENOMEM (out of memory), EFAULT / EHWPOISON (a page that cannot be provided):
            // leave this chunk cold, try the next.
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Interrupted calls of one chunk retried before it is left cold.
const RETRIES_MAX: usize = 8;
