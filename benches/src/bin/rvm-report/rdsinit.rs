//! Section `rdsinit`: the whole rdsinit process and the disk it uses.

use anyhow::Result;
use rvm_benches::scenario::{self};
use rvm_benches::{ms, MIB};

use crate::report::{median, Report, Target};
use crate::Plan;

pub(crate) fn rdsinit(plan: &Plan, report: &mut Report) -> Result<()> {
    let what_time = "rdsinit --log-size 30M LOG DATA --data-len 1G --yes, whole process, median";
    let what_disk = "  disk blocks of the data file";
    let runs = plan.pick(5, 15);
    let measured = rvm_benches::tools::binary("rdsinit", "rdsinit").and_then(|binary| {
        // The first run loads the binary into the page cache; it is not counted.
        scenario::rdsinit_whole_process(&binary)?;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let run = scenario::rdsinit_whole_process(&binary)?;
            times.push(run.elapsed);
            last = Some(run);
        }
        Ok((median(times), last))
    });
    match measured {
        Ok((time, Some(run))) => {
            report.add_target(
                "rdsinit_1g_ms",
                Some(ms(time)),
                "ms",
                what_time,
                Target::AtMost(20.0),
            );
            report.add_target(
                "rdsinit_1g_disk_bytes",
                Some(run.data_disk_bytes as f64),
                "B",
                what_disk,
                Target::AtMost(MIB as f64),
            );
            report.add(
                "rdsinit_log_disk_bytes",
                Some(run.log_disk_bytes as f64),
                "B",
                "  disk blocks of the log",
            );
        }
        Ok((_, None)) => unreachable!("at least one run"),
        Err(e) => {
            report.add_target("rdsinit_1g_ms", None, "ms", what_time, Target::AtMost(20.0));
            report.add_target(
                "rdsinit_1g_disk_bytes",
                None,
                "B",
                what_disk,
                Target::AtMost(MIB as f64),
            );
            report.note(format!("rdsinit: not measured: {e:#}"));
        }
    }
    Ok(())
}
