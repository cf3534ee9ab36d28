//! Section `rds`: RDS malloc/free rates and the log's high-water mark.

use anyhow::Result;
use rvm::Options;
use rvm_benches::per_second;
use rvm_benches::scenario::RdsScenario;
use rvm_benches::workload::Rng;

use crate::report::{Report, Target};
use crate::Plan;

pub(crate) fn rds(plan: &Plan, report: &mut Report) -> Result<()> {
    let s = RdsScenario::new(Options::default())?;
    let mut rng = Rng::new(0x4d5);
    // Reach the steady live set (about 8,000 blocks) before measuring, and go on until a
    // background truncation has run: the first one starts ahead of the threshold by a guess
    // (a quarter of it), with no measured growth yet (`LogState::truncation_lead_bytes`), so
    // its peak is reported apart from the steady one.
    s.malloc_free_loop(50_000, 1, 1000, true, &mut rng)?;
    let mut warm_up = 50_000u64;
    while s.rvm.statistics().background_truncations == 0 && warm_up < 1_000_000 {
        s.malloc_free_loop(10_000, 1, 1000, true, &mut rng)?;
        warm_up += 10_000;
    }
    s.rvm.wait_for_truncation()?;
    let first_peak = s.rvm.take_log_used_peak();
    let before = s.rvm.statistics();
    let operations = plan.pick(200_000u64, 1_000_000);
    let runs_started = std::time::Instant::now();
    let t = s.malloc_free_loop(operations, 1, 1000, false, &mut rng)?;
    report.add_target(
        "rds_ops_per_s",
        Some(per_second(operations, t)),
        "1/s",
        "rds malloc/free 16 B-4 KiB, one per no_flush tx, flushes not timed",
        Target::AtLeast(2.5e6),
    );
    let t = s.malloc_free_loop(operations, 1, 1000, true, &mut rng)?;
    report.add_target(
        "rds_ops_flush_per_s",
        Some(per_second(operations, t)),
        "1/s",
        "  the same with a flush every 1,000 tx timed (truncation running)",
        Target::AtLeast(1.2e6),
    );
    let t = s.malloc_free_loop(operations, 16, 1000, true, &mut rng)?;
    report.add(
        "rds_ops_16_per_tx_per_s",
        Some(per_second(operations, t)),
        "1/s",
        "  16 operations per tx, flushes timed",
    );
    let runs_s = runs_started.elapsed().as_secs_f64();
    let check = s.heap.check();
    if !check.is_ok() {
        report.note(format!(
            "rds: the heap checker found problems after the run: {:?}",
            check.problems.first()
        ));
    }
    let st = s.rvm.statistics();
    let q = s.rvm.query();
    let area = q.area_size as f64;
    let logged = st.bytes_logged - before.bytes_logged;
    let batch = logged / (st.flushes - before.flushes).max(1);
    // How fast truncation applies the log when it runs, from the runs above: the log bytes
    // they wrote over the time truncation spent (all of them are applied by the end).
    let truncating_s = (st.truncation_time_us - before.truncation_time_us) as f64 / 1e6;
    let applied_per_s = logged as f64 / truncating_s.max(1e-6);
    let per_op = logged as f64 / (3 * operations) as f64;
    // A producer at half that rate, for as many bytes as two record areas.
    let paced_ops = (2.0 * area / per_op) as u64;
    let pace = 0.5 * applied_per_s / per_op;
    s.rvm.wait_for_truncation()?;
    let paced_first = s.rvm.take_log_used_peak();
    s.malloc_free_paced(paced_ops, pace, &mut rng)?;
    let paced_peak = s.rvm.take_log_used_peak();
    report.add(
        "rds_log_peak_percent",
        Some(st.log_used_peak_bytes as f64 * 100.0 / area),
        "%",
        "  log use high-water mark over the RDS runs (threshold 50%)",
    );
    report.add(
        "rds_log_threshold_plus_batch_percent",
        Some(f64::from(s.rvm.truncate_threshold()) + batch as f64 * 100.0 / area),
        "%",
        "  its goal: the threshold plus one flush batch",
    );
    report.add(
        "rds_log_paced_peak_percent",
        Some(paced_peak as f64 * 100.0 / area),
        "%",
        "  the same with the producer paced at half the rate truncation applies the log",
    );
    report.add(
        "rds_log_first_peak_percent",
        Some(first_peak as f64 * 100.0 / area),
        "%",
        "  the same before the runs, up to the first background truncation",
    );
    report.note(format!(
        "rds: {} truncations ({} background), {} commits waited for log space; background \
         truncation starts {:.1}% below the threshold",
        st.truncations,
        st.background_truncations,
        st.space_waits,
        q.truncation_lead_bytes as f64 * 100.0 / area
    ));
    report.note(format!(
        "rds: truncation applied {:.0} MB/s of log while it ran ({:.0}% of the runs' time); \
         the runs logged {:.0} MB/s; the paced run {:.0} ops/s, peak {:.1}% before it",
        applied_per_s / 1e6,
        truncating_s * 100.0 / runs_s,
        logged as f64 / runs_s / 1e6,
        pace,
        paced_first as f64 * 100.0 / area,
    ));
    report.note(format!(
        "rds: 64 MiB heap, chunk 64, 80 lists, ~8,000 live blocks; {} log bytes per operation \
         ({} ranges and {} bytes fewer: the commits of a flush share a merged record)",
        logged / (3 * operations).max(1),
        st.ranges_merged_across_commits - before.ranges_merged_across_commits,
        st.bytes_saved_across_commits - before.bytes_saved_across_commits,
    ));
    s.rvm.close()?;
    Ok(())
}
