//! One scenario at a time, for profilers (the commands are in BENCHMARKS.md):
//!
//! ```text
//! cargo build --release -p rvm-benches --example profile
//! perf record -g target/release/examples/profile noflush 2000000
//! valgrind --tool=callgrind target/release/examples/profile noflush 200000
//! strace -f -c target/release/examples/profile flush 2000
//! ```
//!
//! Scenarios: `noflush N` (64 B no_flush commits, flush every 1,000), `flush N` (64 B flush
//! commits, one thread), `flush4 N` (the same from 4 threads), `rawsync N` (pwrite 512 B +
//! fdatasync in a new sparse file, the limit of `flush`), `rds N` (RDS malloc/free, one per
//! no_flush transaction, after 50,000 untimed), `recovery a|b|c [RUNS]` (recoveries
//! of a crashed 30 MB log into a 1 GB segment, after one untimed warm-up), `truncate` (one
//! truncation of a full 30 MB log), `truncate-noflush N [ROUNDS]` (ROUNDS explicit truncations
//! of N no_flush commits of the `noflush` workload each, background truncation off),
//! `store rvm|redb|lmdb N [ROUNDS]` (fill a store of the
//! issue-10 comparison with N entries, a durable commit every 1,000, then ROUNDS (default 1)
//! rounds of the same 1,000,000 random gets; each timed: more rounds make the gets dominate a
//! profile). Prints the time of the measured part.

use std::time::Instant;

use anyhow::{bail, Result};
use rvm::{CommitMode, Options};
use rvm_benches::scenario::{RecoveryScenario, TruncationScenario, TxScenario};
use rvm_benches::workload::{Mix, Rng};
use rvm_benches::{ms, per_second, GIB, LOG_AREA_BYTES, MIB};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("");
    let count: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    match what {
        "noflush" | "flush" | "flush4" => {
            let s = TxScenario::new(64 * MIB, LOG_AREA_BYTES, Options::default())?;
            let started = Instant::now();
            let cpu_started = process_cpu_time();
            match what {
                "noflush" => {
                    s.commit_loop(64, count, CommitMode::NoFlush, 1000, true, &mut Rng::new(1))?;
                }
                "flush" => {
                    s.flush_commits(1, count)?;
                }
                _ => {
                    s.flush_commits(4, count / 4)?;
                }
            }
            let t = started.elapsed();
            let cpu = process_cpu_time().saturating_sub(cpu_started);
            println!(
                "{what}: {count} commits in {:.1} ms: {:.0}/s ({:.1} ms of CPU time, all threads)",
                ms(t),
                per_second(count, t),
                ms(cpu)
            );
            println!("{:?}", s.rvm.statistics());
        }
        "rawsync" => {
            let dir = rvm_benches::scratch::Scratch::new("rawsync")?;
            let t = rvm_benches::limits::pwrite_fdatasync_loop(
                &dir.join("f"),
                LOG_AREA_BYTES,
                512,
                count,
            )?;
            println!(
                "rawsync: {count} pwrite+fdatasync in {:.1} ms: {:.0}/s",
                ms(t),
                per_second(count, t)
            );
        }
        "rds" => {
            let s = rvm_benches::scenario::RdsScenario::new(Options::default())?;
            let mut rng = Rng::new(0x4d5);
            s.malloc_free_loop(50_000, 1, 1000, true, &mut rng)?;
            let t = s.malloc_free_loop(count, 1, 1000, false, &mut rng)?;
            println!(
                "rds: {count} malloc/free in {:.1} ms: {:.0}/s",
                ms(t),
                per_second(count, t)
            );
            let st = s.rvm.statistics();
            println!(
                "rds: {} truncations ({} background), {:.1} ms each on average, {} space waits, \
                 log peak {:.1}% of {} bytes, {} bytes logged, truncation lead {:.1}%",
                st.truncations,
                st.background_truncations,
                st.truncation_time_us as f64 / 1e3 / st.truncations.max(1) as f64,
                st.space_waits,
                st.log_used_peak_bytes as f64 * 100.0 / s.rvm.query().area_size as f64,
                s.rvm.query().area_size,
                st.bytes_logged,
                s.rvm.query().truncation_lead_bytes as f64 * 100.0 / s.rvm.query().area_size as f64,
            );
        }
        "recovery" => {
            let mix = match args.get(1).map(String::as_str) {
                Some("b") => Mix::Scattered,
                Some("c") => Mix::Wrapped,
                _ => Mix::OneRange,
            };
            let s = RecoveryScenario::build(mix, GIB, LOG_AREA_BYTES, 0xa11ce)?;
            s.recover()?;
            let runs = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
            for _ in 0..runs {
                s.restore()?;
                let started = Instant::now();
                let reader = rvm::log::LogReader::open(&s.log)?;
                let scan = reader.scan()?;
                println!(
                    "  scan alone: {:.1} ms ({} records)",
                    ms(started.elapsed()),
                    scan.records.len()
                );
                let t = s.recover()?;
                println!(
                    "recovery {}: ready {:.1} ms, durable {:.1} ms",
                    mix.name(),
                    ms(t.ready),
                    ms(t.durable)
                );
            }
        }
        "truncate-noflush" => {
            // One explicit truncation of the sustained no_flush workload's log (N 64-byte
            // ranges at random offsets of the 64 MiB segment; background truncation off),
            // ROUNDS times: the apply path of `noflush` alone, for callgrind
            // (`--toggle-collect='*truncate_now*'`) and CPU-time comparisons.
            let rounds: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
            let s = TxScenario::new(
                64 * MIB,
                LOG_AREA_BYTES,
                Options::default().truncate_threshold(0),
            )?;
            let mut rng = Rng::new(1);
            for _ in 0..rounds {
                s.commit_loop(64, count, CommitMode::NoFlush, 1000, false, &mut rng)?;
                s.rvm.flush()?;
                let started = Instant::now();
                let cpu_started = thread_cpu_time();
                s.rvm.truncate()?;
                let cpu = thread_cpu_time().saturating_sub(cpu_started);
                println!(
                    "truncate-noflush: {count} ranges: {:.1} ms ({:.1} ms of this thread's CPU \
                     time, {:.2} us per 1,000 log bytes)",
                    ms(started.elapsed()),
                    ms(cpu),
                    cpu.as_secs_f64() * 1e6 / (count as f64 * 176.0 / 1000.0)
                );
            }
        }
        "truncate" => {
            let s = TruncationScenario::new(GIB, LOG_AREA_BYTES)?;
            s.fill_full(0x7a)?;
            s.truncate()?;
            s.fill_full(0x7a)?;
            println!("truncate: {:.1} ms", ms(s.truncate()?));
        }
        "store" => {
            use rvm_benches::store_peers::{self, Engine};
            let engine = args.get(1).and_then(|e| Engine::parse(e));
            let Some(engine) = engine else {
                bail!("usage: profile store rvm|redb|lmdb N [ROUNDS]");
            };
            let count: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
            let dir = rvm_benches::scratch::Scratch::new("profile-store")?;
            let started = Instant::now();
            let store = store_peers::fill(engine, dir.path(), count)?;
            let t = started.elapsed();
            println!(
                "store {}: fill {count}: {:.0}/s",
                engine.name(),
                per_second(count, t)
            );
            let mut rng = Rng::new(7);
            let keys: Vec<u64> = (0..1_000_000)
                .map(|_| store_peers::key(rng.below(count)))
                .collect();
            let rounds: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
            for _ in 0..rounds {
                let started = Instant::now();
                let cpu_started = thread_cpu_time();
                let found = store.get_many(&keys, &mut |_, v| {
                    std::hint::black_box(v);
                })?;
                let cpu = thread_cpu_time().saturating_sub(cpu_started);
                let t = started.elapsed();
                println!(
                    "store {}: {found} of 1M gets: {:.0}/s ({:.0}/s of this thread's CPU time)",
                    engine.name(),
                    per_second(1_000_000, t),
                    per_second(1_000_000, cpu)
                );
            }
            store.close()?;
        }
        "reopen-store" => {
            // `Store::open` and the first get of `reopen_after_kill`, timed apart.
            use rvm_benches::store_peers::{self, Engine};
            let (Some(dir), Some(n)) =
                (args.get(1), args.get(2).and_then(|a| a.parse::<u64>().ok()))
            else {
                bail!("usage: profile reopen-store DIR ENTRIES");
            };
            let Some(last) = n.checked_sub(1) else {
                bail!("profile reopen-store: ENTRIES must be at least 1");
            };
            let k = store_peers::key(last);
            let started = Instant::now();
            let store = Engine::Rvm.open(std::path::Path::new(dir))?;
            let opened = started.elapsed();
            let found = store.get_many(&[k], &mut |_, _| {})?;
            let got = started.elapsed();
            println!(
                "reopen-store: open {:.1} ms, first get {:.1} ms ({found} found)",
                ms(opened),
                ms(got - opened)
            );
            store.close()?;
        }
        "reopen" => {
            // The steps of `Store::open` on a store a killed process left, timed one by one.
            let Some(dir) = args.get(1).map(std::path::PathBuf::from) else {
                bail!("usage: profile reopen DIR");
            };
            let data = dir.join("data");
            let started = Instant::now();
            let rvm = rvm::Rvm::open(dir.join("log"), Options::default().segment_path(&data))?;
            let opened = started.elapsed();
            // SAFETY: the store's files are a scratch copy nothing else opens or shortens.
            let seg = unsafe { rvm.map(&data, rvm::MapOptions::default()) }?;
            let mapped = started.elapsed();
            let heap = rvm::rds::Heap::load(&seg)?;
            let loaded = started.elapsed();
            std::hint::black_box(&heap);
            rvm.wait_for_truncation()?;
            let durable = started.elapsed();
            let st = rvm.statistics();
            println!(
                "reopen: open {:.1} ms (recovery {:.1} ms, {} records), map {:.1} ms, heap load \
                 {:.1} ms; durable after {:.1} ms",
                ms(opened),
                st.recovery_time_us as f64 / 1000.0,
                st.recovered_records,
                ms(mapped - opened),
                ms(loaded - mapped),
                ms(durable)
            );
        }
        _ => bail!(
            "usage: profile noflush|flush|flush4|rawsync|rds N | recovery a|b|c | truncate | \
             truncate-noflush N [ROUNDS] | \
             store rvm|redb|lmdb N [ROUNDS] | reopen DIR | reopen-store DIR N"
        ),
    }
    Ok(())
}

/// CPU time of the whole process (all threads, user and system): on a shared machine it
/// leaves out the time other processes had the cores, which wall time counts.
fn process_cpu_time() -> std::time::Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread (as `process_cpu_time`, for one thread).
fn thread_cpu_time() -> std::time::Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The CPU-time clock `clock` (zero if it cannot be read).
fn cpu_time(clock: libc::clockid_t) -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
