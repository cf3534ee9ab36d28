//! Section `truncation`: truncating a full log, its limit, and the peak RSS (in a child).

use std::process::ExitCode;

use anyhow::Result;
use rvm_benches::scenario::{self, TruncationScenario};
use rvm_benches::{ms, GIB, LOG_AREA_BYTES};

use crate::report::{median, Report, Target};
use crate::Plan;

pub(crate) fn truncation(plan: &Plan, report: &mut Report) -> Result<()> {
    let s = TruncationScenario::new(GIB, LOG_AREA_BYTES)?;
    let runs = plan.pick(3, 7);
    // First round writes the segment's pages for the first time: not counted.
    s.fill_full(0x7a)?;
    s.truncate()?;
    let mut times = Vec::new();
    let mut limit = Vec::new();
    let mut filled = None;
    for _ in 0..runs {
        let f = s.fill_full(0x7a)?;
        times.push(s.truncate()?);
        limit.push(s.limit(&f)?.total());
        filled = Some(f);
    }
    let (t, l) = (ms(median(times)), ms(median(limit)));
    report.add(
        "truncate_30m_ms",
        Some(t),
        "ms",
        "truncate a full 30 MB log of mix (a), 1 GB segment",
    );
    report.add(
        "truncate_limit_ms",
        Some(l),
        "ms",
        "  limit: read+CRC the log + rewrite and sync the touched pages",
    );
    report.add_target(
        "truncate_over_limit",
        Some(t / l),
        "x",
        "  truncate / limit",
        Target::AtMost(1.5),
    );
    let rss = truncation_rss_in_child();
    let what = "  peak RSS of a process truncating a full 30 MB log into 1 GB (VmHWM)";
    match rss {
        Ok((before, peak)) => {
            report.add_target(
                "truncate_peak_rss_mb",
                Some(peak as f64 / 1e6),
                "MB",
                what,
                Target::AtMost(300.0),
            );
            report.add(
                "truncate_rss_before_mb",
                Some(before as f64 / 1e6),
                "MB",
                "    its RSS just before (its own pages written while filling the log)",
            );
        }
        Err(e) => {
            report.add_target(
                "truncate_peak_rss_mb",
                None,
                "MB",
                what,
                Target::AtMost(300.0),
            );
            report.note(format!("truncation: peak RSS not measured: {e:#}"));
        }
    }
    if let Some(f) = filled {
        report.note(format!(
            "truncation: {} tx, {} MB of log, {} pages touched",
            f.transactions,
            f.log_used_bytes / 1_000_000,
            f.touched_pages.len()
        ));
    }
    s.rvm.close()?;
    Ok(())
}

/// The hidden first argument that makes `rvm-report` the child measuring truncation's RSS.
pub(crate) const CHILD_TRUNCATION_RSS: &str = "--child-truncation-rss";

/// In the child: measure, print "BEFORE PEAK" (bytes) on one line.
pub(crate) fn truncation_rss_child() -> ExitCode {
    match scenario::truncation_peak_rss() {
        Ok(rss) => {
            println!("{} {}", rss.before, rss.peak);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvm-report: truncation RSS: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Run this program again as the child that measures truncation's peak RSS, so that nothing
/// the report did before counts.
pub(crate) fn truncation_rss_in_child() -> Result<(u64, u64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_TRUNCATION_RSS)
        .stdin(std::process::Stdio::null())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "the child failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next()) {
        (Some(Ok(before)), Some(Ok(peak))) => Ok((before, peak)),
        _ => anyhow::bail!("the child printed {text:?}"),
    }
}
