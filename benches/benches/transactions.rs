//! Transactions on a 64 MiB segment with a 30 MB log: 64-byte set_range + end(no_flush) with
//! a flush every 1,000 (flushes untimed, then timed with background truncation running),
//! 4 KiB ranges, and end(flush) from 1, 2 and 4 threads (group commit).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rvm::{CommitMode, Options};
use rvm_benches::scenario::TxScenario;
use rvm_benches::workload::Rng;
use rvm_benches::{LOG_AREA_BYTES, MIB};

const SEGMENT_BYTES: u64 = 64 * MIB;
const FLUSH_EVERY: u64 = 1000;

fn no_flush(c: &mut Criterion) {
    let scenario =
        TxScenario::new(SEGMENT_BYTES, LOG_AREA_BYTES, Options::default()).expect("scenario");
    let mut group = c.benchmark_group("no_flush");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(2));
    let mut rng = Rng::new(1);
    group.bench_function("64b_flushes_untimed", |b| {
        b.iter_custom(|iters| {
            scenario
                .commit_loop(64, iters, CommitMode::NoFlush, FLUSH_EVERY, false, &mut rng)
                .expect("commits")
        })
    });
    group.bench_function("64b_sustained", |b| {
        b.iter_custom(|iters| {
            scenario
                .commit_loop(64, iters, CommitMode::NoFlush, FLUSH_EVERY, true, &mut rng)
                .expect("commits")
        })
    });
    group.bench_function("4k_sustained", |b| {
        b.iter_custom(|iters| {
            scenario
                .commit_loop(
                    4096,
                    iters,
                    CommitMode::NoFlush,
                    FLUSH_EVERY,
                    true,
                    &mut rng,
                )
                .expect("commits")
        })
    });
    group.finish();
}

fn flush(c: &mut Criterion) {
    let scenario =
        TxScenario::new(SEGMENT_BYTES, LOG_AREA_BYTES, Options::default()).expect("scenario");
    let mut group = c.benchmark_group("flush");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for threads in [1usize, 2, 4] {
        group.bench_function(BenchmarkId::new("64b_threads", threads), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads as u64);
                let elapsed = scenario
                    .flush_commits(threads, per_thread)
                    .expect("commits");
                // Scale to exactly `iters` commits.
                elapsed.mul_f64(iters as f64 / (per_thread * threads as u64) as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, no_flush, flush);
criterion_main!(benches);
