//! open + map of a segment of 1 MB, 64 MB, 1 GB and 4 GB (sparse) with an empty log.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rvm::Options;
use rvm_benches::scenario::{create_log, create_segment, open_and_map};
use rvm_benches::scratch::Scratch;
use rvm_benches::{GIB, LOG_AREA_BYTES, MIB};

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    for (name, size) in [("1m", MIB), ("64m", 64 * MIB), ("1g", GIB), ("4g", 4 * GIB)] {
        let dir = Scratch::new("bench-open").expect("scratch dir");
        let (log, data) = (dir.join("log"), dir.join("data"));
        create_log(&log, LOG_AREA_BYTES).expect("log");
        create_segment(&data, size).expect("segment");
        // The first map records the segment in the log's status; later opens find it there.
        let (rvm, _) = open_and_map(&log, &data, Options::default()).expect("first open");
        rvm.close().expect("close");
        group.bench_function(BenchmarkId::new("open_map_empty_log", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let (rvm, seg) = open_and_map(&log, &data, Options::default()).expect("open");
                    total += started.elapsed();
                    std::hint::black_box(seg);
                    rvm.close().expect("close");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = open
}
criterion_main!(benches);
