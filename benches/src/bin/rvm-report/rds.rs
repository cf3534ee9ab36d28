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
    // Reach the steady live set (about 8,000 blocks) before measuring.
    s.malloc_free_loop(50_000, 1, 1000, true, &mut rng)?;
    let operations = plan.pick(200_000u64, 1_000_000);
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
    let check = s.heap.check();
    if !check.is_ok() {
        report.note(format!(
            "rds: the heap checker found problems after the run: {:?}",
            check.problems.first()
        ));
    }
    let st = s.rvm.statistics();
    let area = s.rvm.query().area_size;
    report.add(
        "rds_log_peak_percent",
        Some(st.log_used_peak_bytes as f64 * 100.0 / area as f64),
        "%",
        "  log use high-water mark over the RDS runs (truncation threshold 50%)",
    );
    report.note(format!(
        "rds: {} truncations ({} background), {} commits waited for log space",
        st.truncations, st.background_truncations, st.space_waits
    ));
    report.note(format!(
        "rds: 64 MiB heap, chunk 64, 80 lists, ~8,000 live blocks; {} log bytes per operation",
        st.bytes_logged / (3 * operations + 50_000).max(1)
    ));
    s.rvm.close()?;
    Ok(())
}
