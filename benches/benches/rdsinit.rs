//! rdsinit of a 1 GB segment with a 30 MB log, whole process (spawn to exit), each run in a
//! fresh directory. The binary is found next to this bench's executable or built (release).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rvm_benches::scenario::rdsinit_whole_process;
use rvm_benches::tools;

fn rdsinit(c: &mut Criterion) {
    let binary = match tools::binary("rdsinit", "rdsinit")
        .and_then(|b| rdsinit_whole_process(&b).map(|_| b))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rdsinit: not benchmarked: {e:#}");
            return;
        }
    };
    let mut group = c.benchmark_group("rdsinit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("1g_segment_30m_log_whole_process", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rdsinit_whole_process(&binary).expect("rdsinit").elapsed)
                .sum::<Duration>()
        })
    });
    group.finish();
}

criterion_group!(benches, rdsinit);
criterion_main!(benches);
