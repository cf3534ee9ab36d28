//! The fragmentation workload: random allocations of 16 B to 4 KiB and random frees, holding
//! the live data near a target, in restore transactions of a fixed number of operations
//! committed no_flush. Shared by the test (a shorter run) and `examples/rds_fragmentation.rs`
//! (the full million operations).

use std::time::{Duration, Instant};

use rvm::rds::{CheckReport, Error, Heap, HeapStatistics};
use rvm::{BeginMode, CommitMode, Rvm};

pub const SIZE_MIN_BYTES: u64 = 16;
pub const SIZE_MAX_BYTES: u64 = 4096;

pub struct WorkloadReport {
    pub operations: u64,
    pub mallocs: u64,
    pub frees: u64,
    /// Allocations refused for lack of room (counted, not fatal).
    pub no_room: u64,
    pub live_blocks: u64,
    /// Sum of the sizes asked for by the live blocks.
    pub requested_bytes: u64,
    /// Time spent in the operations and their commits (no flush waits: commits are no_flush).
    pub elapsed: Duration,
    /// CPU time of the calling thread over the same span: steadier than `elapsed` on a
    /// loaded machine.
    pub cpu: Duration,
    pub statistics: HeapStatistics,
    pub check: CheckReport,
}

impl WorkloadReport {
    pub fn operations_per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn operations_per_cpu_second(&self) -> f64 {
        self.operations as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// Share of allocated bytes the callers asked for (the rest is tags and rounding).
    pub fn internal_utilisation(&self) -> f64 {
        self.requested_bytes as f64 / self.statistics.allocated_bytes.max(1) as f64
    }

    pub fn summary(&self) -> String {
        let s = &self.statistics;
        format!(
            "{} operations ({} malloc, {} free, {} refused) in {:.2?}: {:.0} ops/s \
             ({:.0} per CPU second of the thread)\n\
             live: {} blocks, {} bytes requested, {} bytes allocated ({:.1}% of it requested)\n\
             free: {} bytes in {} blocks, largest free block {} bytes\n\
             fragmentation (1 - largest free / free): {:.4}\n\
             coalesces {}, exact-list hits {}, large-list hits {}, splits {}\n\
             checker: {}",
            self.operations,
            self.mallocs,
            self.frees,
            self.no_room,
            self.elapsed,
            self.operations_per_second(),
            self.operations_per_cpu_second(),
            self.live_blocks,
            self.requested_bytes,
            s.allocated_bytes,
            100.0 * self.internal_utilisation(),
            s.free_bytes,
            s.free_blocks,
            s.largest_free_block,
            s.fragmentation,
            s.coalesce_count,
            s.exact_hits,
            s.large_hits,
            s.splits,
            if self.check.is_ok() {
                "ok".to_string()
            } else {
                self.check.to_string()
            }
        )
    }
}

/// Run `operations` random mallocs and frees on `heap`, keeping the requested live bytes
/// near `live_target_bytes`, `operations_per_transaction` to a transaction.
pub fn run(
    rvm: &Rvm,
    heap: &Heap,
    operations: u64,
    operations_per_transaction: u64,
    live_target_bytes: u64,
    seed: u64,
) -> WorkloadReport {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut live: Vec<(usize, u64)> = Vec::new();
    let (mut mallocs, mut frees, mut no_room, mut requested) = (0, 0, 0, 0u64);
    let started = Instant::now();
    let cpu_started = thread_cpu();
    let mut done = 0;
    while done < operations {
        let mut tx = rvm.begin(BeginMode::Restore).expect("begin");
        for _ in 0..operations_per_transaction.min(operations - done) {
            // Below the target, three of four operations allocate; above it, one in four.
            let allocate = live.is_empty() || {
                let r = next() % 4;
                if requested < live_target_bytes {
                    r != 0
                } else {
                    r == 0
                }
            };
            if allocate {
                let size = SIZE_MIN_BYTES + next() % (SIZE_MAX_BYTES - SIZE_MIN_BYTES + 1);
                match heap.malloc(&mut tx, size as usize) {
                    Ok(a) => {
                        live.push((a, size));
                        requested += size;
                        mallocs += 1;
                    }
                    Err(Error::NoRoom { .. }) => no_room += 1,
                    Err(e) => panic!("malloc({size}): {e}"),
                }
            } else {
                let i = (next() % live.len() as u64) as usize;
                let (a, size) = live.swap_remove(i);
                heap.free(&mut tx, a).expect("free");
                requested -= size;
                frees += 1;
            }
            done += 1;
        }
        tx.end(CommitMode::NoFlush).expect("commit");
    }
    let elapsed = started.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu_started);
    WorkloadReport {
        operations,
        mallocs,
        frees,
        no_room,
        live_blocks: live.len() as u64,
        requested_bytes: requested,
        elapsed,
        cpu,
        statistics: heap.statistics(),
        check: heap.check(),
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
