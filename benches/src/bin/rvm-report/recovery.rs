//! Section `recovery`: startup recovery of the three log mixes against their limits.

use anyhow::Result;
use rvm_benches::scenario::RecoveryScenario;
use rvm_benches::workload::Mix;
use rvm_benches::{ms, GIB, LOG_AREA_BYTES};

use crate::report::{median, Report, Target};
use crate::Plan;

pub(crate) fn recovery(plan: &Plan, report: &mut Report) -> Result<()> {
    for mix in Mix::ALL {
        // Mix (b) touches ~180,000 pages: one repetition is enough to see it in quick mode.
        let runs = if mix == Mix::Scattered {
            plan.pick(1, 3)
        } else {
            plan.pick(3, 7)
        };
        let scenario = RecoveryScenario::build(mix, GIB, LOG_AREA_BYTES, 0xa11ce)?;
        // The first recovery writes the segment's pages for the first time; later ones see
        // the same page cache state as the limit measured below.
        scenario.recover()?;
        let mut ready = Vec::new();
        let mut durable = Vec::new();
        for _ in 0..runs {
            let t = scenario.recover()?;
            ready.push(t.ready);
            durable.push(t.durable);
        }
        let mut limit = Vec::new();
        for _ in 0..runs {
            limit.push(scenario.limit()?.total());
        }
        let (ready, durable, limit) = (ms(median(ready)), ms(median(durable)), ms(median(limit)));
        let over = ready / limit;
        let f = &scenario.filled;
        let keys: [&'static str; 4] = match mix {
            Mix::OneRange => [
                "recovery_30m_ms",
                "recovery_30m_durable_ms",
                "recovery_limit_ms",
                "recovery_over_limit",
            ],
            Mix::Scattered => [
                "recovery_scattered_ms",
                "recovery_scattered_durable_ms",
                "recovery_scattered_limit_ms",
                "recovery_scattered_over_limit",
            ],
            Mix::Wrapped => [
                "recovery_wrapped_ms",
                "recovery_wrapped_durable_ms",
                "recovery_wrapped_limit_ms",
                "recovery_wrapped_over_limit",
            ],
        };
        let what: &'static str = match mix {
            Mix::OneRange => "mix (a): 11,000 tx of one 64 B-4 KiB range, 1 GB segment: open+map",
            Mix::Scattered => "mix (b): 8 x 64 B ranges per tx over 1 GB, log full: open+map",
            Mix::Wrapped => "mix (c): mix (a) in a wrapped log: open+map",
        };
        if mix == Mix::OneRange {
            report.add_target(keys[0], Some(ready), "ms", what, Target::AtMost(70.0));
        } else {
            report.add(keys[0], Some(ready), "ms", what);
        }
        report.add(
            keys[1],
            Some(durable),
            "ms",
            "  ... until truncated and the segment synced",
        );
        report.add(
            keys[2],
            Some(limit),
            "ms",
            "  limit: read+CRC the log + fault the touched pages",
        );
        report.add_target(
            keys[3],
            Some(over),
            "x",
            "  ready / limit",
            Target::AtMost(1.5),
        );
        report.note(format!(
            "recovery {}: {} tx, {} ranges, {} MB of range data, {} MB of log, {} pages touched",
            mix.name(),
            f.transactions,
            f.ranges,
            f.range_bytes / 1_000_000,
            f.log_used_bytes / 1_000_000,
            f.touched_pages.len()
        ));
    }
    Ok(())
}
