//! Section `transactions`: no_flush, sustained and flush commits, group commit.

use std::time::Duration;

use anyhow::Result;
use rvm::{CommitMode, Options};
use rvm_benches::limits;
use rvm_benches::scenario::TxScenario;
use rvm_benches::scratch::Scratch;
use rvm_benches::workload::Rng;
use rvm_benches::{per_second, LOG_AREA_BYTES, MIB};

use crate::report::{ratio, Report, Target};
use crate::Plan;

/// The no_flush commit loop with isolation on (range locks taken at `set_range`, released at
/// `end`), next to the same loop with isolation off, in the same section run.
pub(crate) fn transactions_isolated(plan: &Plan, report: &mut Report, segment: u64) -> Result<()> {
    let commits = plan.pick(300_000, 2_000_000);
    let mut rates = [0.0; 2];
    for (i, isolation) in [false, true].into_iter().enumerate() {
        let s = TxScenario::new(
            segment,
            LOG_AREA_BYTES,
            Options::default().isolation(isolation),
        )?;
        let mut rng = Rng::new(11);
        s.commit_loop(64, 10_000, CommitMode::NoFlush, 1000, false, &mut rng)?;
        let t = s.commit_loop(64, commits, CommitMode::NoFlush, 1000, false, &mut rng)?;
        rates[i] = per_second(commits, t);
    }
    report.add(
        "noflush_isolation_off_per_s",
        Some(rates[0]),
        "1/s",
        "64 B no_flush commits, isolation off (paired with the next line)",
    );
    report.add(
        "noflush_isolation_on_per_s",
        Some(rates[1]),
        "1/s",
        "  the same with isolation on (a range lock per set_range)",
    );
    report.add(
        "isolation_on_over_off",
        ratio(Some(rates[1]), Some(rates[0])),
        "x",
        "  isolation on / off",
    );
    Ok(())
}

pub(crate) fn transactions(plan: &Plan, report: &mut Report) -> Result<()> {
    let segment = 64 * MIB;
    transactions_isolated(plan, report, segment)?;
    {
        let s = TxScenario::new(segment, LOG_AREA_BYTES, Options::default())?;
        let commits = plan.pick(300_000, 2_000_000);
        s.commit_loop(
            64,
            10_000,
            CommitMode::NoFlush,
            1000,
            false,
            &mut Rng::new(1),
        )?;
        let t = s.commit_loop(
            64,
            commits,
            CommitMode::NoFlush,
            1000,
            false,
            &mut Rng::new(2),
        )?;
        report.add_target(
            "noflush_commits_per_s",
            Some(per_second(commits, t)),
            "1/s",
            "64 B set_range + end(no_flush), flushes not timed",
            Target::AtLeast(5e6),
        );
        let logged_before = s.rvm.statistics().bytes_logged;
        let t = s.commit_loop(
            64,
            commits,
            CommitMode::NoFlush,
            1000,
            true,
            &mut Rng::new(3),
        )?;
        let st = s.rvm.statistics();
        // Log bytes per commit: 176 for a record each; with the default coalescing of queued
        // commits, a record's 80 bytes of framing per flush instead of per commit.
        let bytes_per_commit = ((st.bytes_logged - logged_before) / commits.max(1)) as usize;
        report.add_target(
            "noflush_sustained_per_s",
            Some(per_second(commits, t)),
            "1/s",
            "the same with a flush every 1,000 and truncation running, all timed",
            Target::AtLeast(1e6),
        );
        // The least a sustained run must spend per 1,000 commits: the commits themselves,
        // plus writing and syncing the log bytes they make once.
        let loop_rate = report.value("noflush_commits_per_s").unwrap_or(0.0);
        let dir = Scratch::new("sustained-limit")?;
        // The log has wrapped by now (its blocks are allocated), so the raw file is too.
        let mut sync = limits::SyncLoop::preallocated(
            &dir.join("raw"),
            LOG_AREA_BYTES,
            bytes_per_commit * 1000,
        )?;
        let syncs = plan.pick(20u64, 60);
        let mut sync_time = Duration::ZERO;
        for _ in 0..syncs {
            sync_time += sync.once()?;
        }
        let per_thousand = 1000.0 / loop_rate + sync_time.as_secs_f64() / syncs as f64;
        let limit = 1000.0 / per_thousand;
        report.add(
            "noflush_sustained_limit_per_s",
            Some(limit),
            "1/s",
            "  limit: the commit loop + pwrite of the log bytes + fdatasync per 1,000",
        );
        report.add(
            "noflush_sustained_log_bytes_per_commit",
            Some(bytes_per_commit as f64),
            "B",
            "  log bytes per 64 B commit in that run",
        );
        report.add_target(
            "noflush_sustained_over_limit",
            ratio(report.value("noflush_sustained_per_s"), Some(limit)),
            "x",
            "  sustained / limit",
            Target::AtLeast(0.7),
        );
        report.note(format!(
            "transactions: 64 MiB segment, 30 MB log; {} truncations ({} background) during the no_flush runs",
            st.truncations, st.background_truncations
        ));
        let commits_4k = plan.pick(20_000, 100_000);
        let t = s.commit_loop(
            4096,
            commits_4k,
            CommitMode::NoFlush,
            1000,
            true,
            &mut Rng::new(4),
        )?;
        let rate = per_second(commits_4k, t);
        report.add(
            "noflush_4k_commits_per_s",
            Some(rate),
            "1/s",
            "4 KiB ranges, flush every 1,000, all timed",
        );
        report.add(
            "noflush_4k_mb_per_s",
            Some(rate * 4096.0 / 1e6),
            "MB/s",
            "  the same in range bytes",
        );
        s.rvm.close()?;
    }
    // One shared disk: a raw pwrite + fdatasync appending to a sparse file, the same over
    // allocated blocks (as the log's are: it is allocated when created), and a 1-thread flush
    // commit take turns one operation at a time, so a slow moment of the disk hits all alike;
    // the 1, 2 and 4 thread runs alternate in rounds for the same reason.
    let dir = Scratch::new("flush-limit")?;
    let mut sync = limits::SyncLoop::new(&dir.join("raw"), LOG_AREA_BYTES, 512)?;
    let mut allocated =
        limits::SyncLoop::preallocated(&dir.join("raw-allocated"), LOG_AREA_BYTES, 512)?;
    let s = TxScenario::new(segment, LOG_AREA_BYTES, Options::default())?;
    let pairs = plan.pick(1000u64, 3000);
    let mut rng = Rng::new(9);
    let (mut raw, mut raw_allocated, mut one) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for i in 0..pairs {
        // Every order of the three in turn: none always follows another's sync.
        let order = [
            [0, 1, 2],
            [2, 1, 0],
            [1, 2, 0],
            [0, 2, 1],
            [2, 0, 1],
            [1, 0, 2],
        ];
        for which in order[(i % 6) as usize] {
            match which {
                0 => raw += sync.once()?,
                1 => raw_allocated += allocated.once()?,
                _ => one += s.commit_loop(64, 1, CommitMode::Flush, 0, true, &mut rng)?,
            }
        }
    }
    let raw_rate = per_second(pairs, raw);
    let raw_allocated_rate = per_second(pairs, raw_allocated);
    let one_rate = per_second(pairs, one);
    // Many short rounds: a burst of disk contention from another process then lands in all
    // three thread counts alike.
    let rounds = plan.pick(25u64, 60);
    let per_round = 40u64;
    let mut threaded = [Duration::ZERO; 3];
    let mut syncs = [0u64; 3];
    let group_limit = limits::GroupSyncLimit::preallocated(&dir.join("group-limit"), 4 << 20)?;
    let (mut limit_time, mut limit_syncs) = (Duration::ZERO, 0u64);
    for _ in 0..rounds {
        for (i, threads) in [1u64, 2, 4].into_iter().enumerate() {
            let before = s.rvm.statistics().flushes;
            threaded[i] += s.flush_commits(threads as usize, per_round / threads)?;
            syncs[i] += s.rvm.statistics().flushes - before;
        }
        let (t, n) = group_limit.run(4, per_round / 4, 64)?;
        limit_time += t;
        limit_syncs += n;
    }
    report.note(format!(
        "group commit: {} commits per thread count; log syncs with 1, 2, 4 threads: {}, {}, {}; \
         the 4-thread limit's syncs: {limit_syncs}",
        rounds * per_round,
        syncs[0],
        syncs[1],
        syncs[2]
    ));
    let limit_rate = per_second(rounds * per_round, limit_time);
    let rates: Vec<f64> = threaded
        .iter()
        .map(|t| per_second(rounds * per_round, *t))
        .collect();
    let st = s.rvm.statistics();
    report.note(format!(
        "flush commits: {} commits in {} log syncs over all thread counts",
        st.flush_commits, st.flushes
    ));
    s.rvm.close()?;
    report.add(
        "fdatasync_loop_per_s",
        Some(raw_rate),
        "1/s",
        "raw pwrite 512 B + fdatasync in a new sparse file, alternating with the next",
    );
    report.add(
        "fdatasync_allocated_loop_per_s",
        Some(raw_allocated_rate),
        "1/s",
        "raw pwrite 512 B + fdatasync over allocated blocks, in the same turns",
    );
    report.add(
        "flush_commits_per_s",
        Some(one_rate),
        "1/s",
        "64 B end(flush), 1 thread",
    );
    report.add(
        "flush_1thread_rounds_per_s",
        Some(rates[0]),
        "1/s",
        "  1 thread, in rounds with 2 and 4 threads",
    );
    report.add("flush_2threads_per_s", Some(rates[1]), "1/s", "  2 threads");
    report.add("flush_4threads_per_s", Some(rates[2]), "1/s", "  4 threads");
    report.add_target(
        "flush_over_fdatasync",
        Some(one_rate / raw_rate),
        "x",
        "1-thread flush commits / raw pwrite+fdatasync loop",
        Target::AtLeast(0.9),
    );
    report.add_target(
        "flush_over_fdatasync_allocated",
        Some(one_rate / raw_allocated_rate),
        "x",
        "1-thread flush commits / raw loop over allocated blocks",
        Target::AtLeast(0.95),
    );
    report.add(
        "flush_4threads_limit_per_s",
        Some(limit_rate),
        "1/s",
        "  limit: 4 threads hand 64 B records to one writer, one pwrite + fdatasync per batch",
    );
    report.add_target(
        "flush_4threads_over_1thread",
        Some(rates[2] / rates[0]),
        "x",
        "group commit: 4 threads / 1 thread",
        Target::AtLeast(2.5),
    );
    report.add_target(
        "flush_4threads_over_limit",
        Some(rates[2] / limit_rate),
        "x",
        "group commit: 4 threads / the 4-thread limit, same rounds",
        Target::AtLeast(0.9),
    );
    Ok(())
}
