//! Section `cold`: the first commits after opening a 1 GB segment, with and without warm-up.

use std::time::Duration;

use anyhow::Result;
use rvm::MapOptions;
use rvm_benches::{ms, per_second, GIB};

use crate::report::{median, ratio, Report, Target};
use crate::Plan;

/// The cold-start keys (issue 10), in `--json` even when the section did not run.
pub(crate) const COLD_KEYS: [&str; 9] = [
    "open_1g_warmup_ms",
    "noflush_cold_commits_per_s",
    "noflush_cold_warmup_commits_per_s",
    "noflush_cold_warm_commits_per_s",
    "noflush_cold_over_warm",
    "noflush_cold_warmup_over_warm",
    "noflush_cold_warmup_done_ms",
    "noflush_cold_rss_mb",
    "noflush_cold_warmup_rss_mb",
];

/// Cold start (issue 10): the first 20,000 64-byte no_flush commits at random offsets of a
/// freshly opened 1 GB segment, without and with the warm-up, alternating runs on fresh files,
/// against the same commits once the warm-up has made every page present; and the same with
/// the warm-up and huge pages on. Medians.
pub(crate) fn cold_start(plan: &Plan, report: &mut Report) -> Result<()> {
    use rvm_benches::cold::cold_run;
    let commits = 20_000;
    let runs = plan.pick(3, 7);
    let (mut plain, mut warmed, mut huge) = (Vec::new(), Vec::new(), Vec::new());
    let warm_up = MapOptions::default().warm_up(true);
    for run in 0..runs {
        plain.push(cold_run(GIB, commits, MapOptions::default(), 0xc01d + run)?);
        warmed.push(cold_run(GIB, commits, warm_up, 0xc01d + run)?);
        huge.push(cold_run(
            GIB,
            commits,
            warm_up.huge_pages(true),
            0xc01d + run,
        )?);
    }
    let rate = |runs: &[rvm_benches::cold::ColdRun],
                f: fn(&rvm_benches::cold::ColdRun) -> Duration| {
        per_second(commits, median(runs.iter().map(f).collect()))
    };
    let cold = rate(&plain, |r| r.cold);
    let cold_warmup = rate(&warmed, |r| r.cold);
    let warm = rate(&warmed, |r| r.warm.unwrap_or_default());
    let huge_cold = rate(&huge, |r| r.cold);
    let huge_warm = rate(&huge, |r| r.warm.unwrap_or_default());
    let done_ms = |runs: &[rvm_benches::cold::ColdRun]| {
        ms(median(
            runs.iter()
                .map(|r| r.warm_up_done.unwrap_or_default())
                .collect(),
        ))
    };
    let mb = |runs: &[rvm_benches::cold::ColdRun]| {
        let mut v: Vec<u64> = runs.iter().map(|r| r.rss_growth_bytes).collect();
        v.sort_unstable();
        v[v.len() / 2] as f64 / 1e6
    };
    report.add_target(
        "open_1g_warmup_ms",
        Some(ms(median(warmed.iter().map(|r| r.open).collect()))),
        "ms",
        "Rvm::open + map of a fresh 1 GB segment with warm-up on, median",
        Target::AtMost(1.0),
    );
    report.add(
        "noflush_cold_commits_per_s",
        Some(cold),
        "1/s",
        "first 20,000 64 B no_flush commits after open, 1 GB segment, no warm-up",
    );
    report.add(
        "noflush_cold_warmup_commits_per_s",
        Some(cold_warmup),
        "1/s",
        "  the same with warm-up on (started at once, racing it)",
    );
    report.add(
        "noflush_cold_warm_commits_per_s",
        Some(warm),
        "1/s",
        "  the same once the warm-up has finished (every page present)",
    );
    report.add(
        "noflush_cold_over_warm",
        ratio(Some(cold), Some(warm)),
        "x",
        "  cold / warm",
    );
    report.add_target(
        "noflush_cold_warmup_over_warm",
        ratio(Some(cold_warmup), Some(warm)),
        "x",
        "  cold with warm-up / warm",
        Target::AtLeast(0.5),
    );
    report.add(
        "noflush_cold_warmup_done_ms",
        Some(done_ms(&warmed)),
        "ms",
        "  from open until the warm-up of 1 GB finished",
    );
    report.add(
        "noflush_cold_rss_mb",
        Some(mb(&plain)),
        "MB",
        "  resident-set growth: 20,000 cold commits, no warm-up",
    );
    report.add(
        "noflush_cold_warmup_rss_mb",
        Some(mb(&warmed)),
        "MB",
        "  resident-set growth with warm-up, once finished (its RSS cost)",
    );
    report.add(
        "noflush_cold_warmup_huge_commits_per_s",
        Some(huge_cold),
        "1/s",
        "  the first 20,000 with warm-up and huge pages on (racing the warm-up)",
    );
    report.add(
        "noflush_cold_warmup_huge_done_ms",
        Some(done_ms(&huge)),
        "ms",
        "  from open until that warm-up finished",
    );
    report.add(
        "noflush_cold_huge_warm_commits_per_s",
        Some(huge_warm),
        "1/s",
        "  the same commits once it has finished (every huge page present)",
    );
    report.add(
        "noflush_cold_warmup_huge_over_warm",
        ratio(Some(huge_cold), Some(huge_warm)),
        "x",
        "  cold with warm-up and huge pages / warm with huge pages",
    );
    report.add(
        "noflush_cold_warmup_huge_rss_mb",
        Some(mb(&huge)),
        "MB",
        "  resident-set growth with both, once finished",
    );
    Ok(())
}
