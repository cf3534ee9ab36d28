//! Scenarios shared by the criterion benches (`benches/benches/*.rs`) and the `rvm-report`
//! ratio report (`src/bin/rvm-report/`).
//!
//! Every scenario builds its files in a fresh directory under the system temp directory
//! ([`scratch::Scratch`], removed on drop) and uses sparse files only. The machine's own limits
//! that the report divides by live in [`limits`]; they run on the same files and the same page
//! cache state as the scenario they are compared with.
//!
//! Architecture Invariant: nothing here asserts a timing. Figures are measured and reported;
//! targets are judged by a person reading `BENCHMARKS.md`.

pub mod cold;
pub mod limits;
pub mod scenario;
pub mod scratch;
pub mod store_peers;
pub mod tools;
pub mod workload;

/// Bytes in a mebibyte and a gibibyte, for sizes written the way the issue states them.
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The record area of every "30 MB log" in the benchmarks.
pub const LOG_AREA_BYTES: u64 = 30 * MIB;

/// Operations per second from a count and a duration (0 when nothing was timed).
pub fn per_second(count: u64, elapsed: std::time::Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// Milliseconds as a float, the unit of every `*_ms` figure in the report.
pub fn ms(elapsed: std::time::Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

/// Criterion settings for the slow, file-system-bound benchmarks: few samples and short
/// measurement times so that `cargo bench` finishes in a few minutes on a shared 2-core machine.
pub fn quick_criterion_settings() -> (usize, std::time::Duration, std::time::Duration) {
    (
        10,
        std::time::Duration::from_millis(300),
        std::time::Duration::from_secs(2),
    )
}
