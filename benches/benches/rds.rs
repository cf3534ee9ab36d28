//! RDS malloc/free of 16 B-4 KiB inside no_flush transactions (one operation per
//! transaction, and 16), flush every 1,000 transactions: flushes untimed, then timed with
//! background truncation running.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rvm::Options;
use rvm_benches::scenario::RdsScenario;
use rvm_benches::workload::Rng;

fn rds(c: &mut Criterion) {
    let scenario = RdsScenario::new(Options::default()).expect("heap");
    let mut rng = Rng::new(0x4d5);
    // Reach the steady live set before measuring.
    scenario
        .malloc_free_loop(50_000, 1, 1000, true, &mut rng)
        .expect("warm up");
    let mut group = c.benchmark_group("rds");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("malloc_free_1_per_tx_flushes_untimed", |b| {
        b.iter_custom(|iters| {
            scenario
                .malloc_free_loop(iters, 1, 1000, false, &mut rng)
                .expect("operations")
        })
    });
    group.bench_function("malloc_free_1_per_tx_flushes_timed", |b| {
        b.iter_custom(|iters| {
            scenario
                .malloc_free_loop(iters, 1, 1000, true, &mut rng)
                .expect("operations")
        })
    });
    group.bench_function("malloc_free_16_per_tx_flushes_timed", |b| {
        b.iter_custom(|iters| {
            scenario
                .malloc_free_loop(iters, 16, 1000, true, &mut rng)
                .expect("operations")
        })
    });
    group.finish();
}

criterion_group!(benches, rds);
criterion_main!(benches);
