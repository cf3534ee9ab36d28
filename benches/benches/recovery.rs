//! Startup recovery: a 1 GB segment and a 30 MB log full of committed, untruncated
//! transactions (three mixes). "ready" is open + map returned; "durable" is also the log
//! truncated and the segment synced. Restoring the crashed log before each run is not timed.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rvm_benches::scenario::RecoveryScenario;
use rvm_benches::workload::Mix;
use rvm_benches::{quick_criterion_settings, GIB, LOG_AREA_BYTES};

fn recovery(c: &mut Criterion) {
    let (samples, warm_up, measure) = quick_criterion_settings();
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measure);
    for mix in Mix::ALL {
        let scenario =
            RecoveryScenario::build(mix, GIB, LOG_AREA_BYTES, 0xa11ce).expect("build scenario");
        group.bench_function(BenchmarkId::new("ready", mix.name()), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| scenario.recover().expect("recover").ready)
                    .sum::<Duration>()
            })
        });
        group.bench_function(BenchmarkId::new("durable", mix.name()), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| scenario.recover().expect("recover").durable)
                    .sum::<Duration>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
