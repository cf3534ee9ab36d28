//! The RDS fragmentation workload at full size: a million random allocations of 16 B to
//! 4 KiB and frees, holding about half the heap live, then the checker.
//!
//! ```text
//! cargo run --release -p rvm --example rds_fragmentation -- [OPERATIONS] [CHUNK_SIZE] [NLISTS] [OPS_PER_TX]
//! ```
//!
//! The log and segment are in-memory devices, so the figure is the heap's and the
//! transactions' cost, without flushes (commits are no_flush).

#[path = "../tests/rds_support/workload.rs"]
mod workload;

use std::process::ExitCode;
use std::sync::Arc;

use rvm::device::{DeviceRef, MemDevice};
use rvm::rds::{self, Heap, HeapLayout};
use rvm::{MapOptions, Options, Rvm};

/// Allocate 64 blocks of 16 B to 1 KiB, then free them, over and over: the allocator's cost
/// when its metadata is in cache.
fn hot_loop(rvm: &Rvm, heap: &Heap, operations: u64, per_tx: u64) {
    let started = std::time::Instant::now();
    let cpu_started = workload::thread_cpu();
    let mut done = 0u64;
    let mut blocks = Vec::with_capacity(64);
    while done < operations {
        let mut tx = rvm.begin(rvm::BeginMode::Restore).expect("begin");
        let mut in_tx = 0;
        while in_tx < per_tx {
            for i in 0..64u64 {
                let size = 16 + (i * 977 + done) % 1009;
                blocks.push(heap.malloc(&mut tx, size as usize).expect("malloc"));
            }
            for a in blocks.drain(..).rev() {
                heap.free(&mut tx, a).expect("free");
            }
            in_tx += 128;
        }
        done += in_tx;
        tx.end(rvm::CommitMode::NoFlush).expect("commit");
    }
    let elapsed = started.elapsed();
    let cpu = (workload::thread_cpu() - cpu_started).as_secs_f64();
    println!(
        "hot loop: {done} operations in {elapsed:.2?}: {:.0} ops/s; {:.0} ops per CPU second \
         of this thread",
        done as f64 / elapsed.as_secs_f64(),
        done as f64 / cpu
    );
}

fn main() -> ExitCode {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| panic!("not a number: {a}")))
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (operations, chunk_size, nlists, per_tx) =
        (arg(0, 1_000_000), arg(1, 64), arg(2, 80), arg(3, 1000));
    let heap_length = 64 << 20;
    let layout = HeapLayout {
        start_address: 0x2100_0000_0000,
        heap_length,
        static_length: 4096,
        nlists,
        chunk_size,
    };
    let log: DeviceRef = Arc::new(MemDevice::new("log", Vec::new()));
    let data: DeviceRef = Arc::new(MemDevice::new("data", Vec::new()));
    Rvm::init_log_on(&*log, 64 << 20).expect("log");
    let rvm = Rvm::open_device(log, Options::default().segment_device(data.clone())).expect("open");
    // SAFETY: memory devices lend no descriptor: the segment is read into anonymous memory.
    unsafe {
        rds::create_heap_segment_on(&rvm, data.clone(), layout.segment_length_min(), &layout)
    }
    .expect("create heap");
    // SAFETY: memory devices lend no descriptor: the segment is read into anonymous memory.
    let segment = unsafe { rvm.map_device(data, MapOptions::default()) }.expect("map");
    let heap = Heap::load(&segment).expect("load");
    println!(
        "heap {} MiB, chunk {chunk_size}, nlists {nlists}, {per_tx} operations per transaction",
        heap_length >> 20
    );
    let report = workload::run(&rvm, &heap, operations, per_tx, heap_length / 2, 1);
    println!("{}", report.summary());
    hot_loop(&rvm, &heap, operations, per_tx);
    if report.check.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
