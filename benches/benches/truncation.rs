//! Truncating a full 30 MB log (mix (a) transactions) into a 1 GB segment. Filling the log
//! before each truncation is not timed.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rvm_benches::scenario::TruncationScenario;
use rvm_benches::{quick_criterion_settings, GIB, LOG_AREA_BYTES};

fn truncation(c: &mut Criterion) {
    let (samples, warm_up, measure) = quick_criterion_settings();
    let mut group = c.benchmark_group("truncation");
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measure);
    let scenario = TruncationScenario::new(GIB, LOG_AREA_BYTES).expect("scenario");
    group.bench_function("full_30m_log", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                scenario.fill_full(0x7a).expect("fill");
                total += scenario.truncate().expect("truncate");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, truncation);
criterion_main!(benches);
