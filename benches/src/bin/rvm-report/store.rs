//! Section `store`: the persistent map against redb and LMDB.

use std::time::Duration;

use anyhow::Result;
use rvm_benches::store_peers::{self, Engine};
use rvm_benches::{ms, per_second};

use crate::report::{ratio, Report, Target};
use crate::Plan;

/// The store section's keys the issue requires in `--json` (null when the section is left
/// out or fails).
pub(crate) const STORE_KEYS: [&str; 8] = [
    "store_batch_over_redb",
    "store_batch_over_lmdb",
    "store_single_over_redb",
    "store_single_over_lmdb",
    "store_get_over_redb",
    "store_get_over_lmdb",
    "store_reopen_over_redb",
    "store_reopen_over_lmdb",
];

/// The store against redb and LMDB (issue 10; `rvm_benches::store_peers`): a map u64 →
/// 100-byte value, every commit durable, the engines taking turns on the same disk.
pub(crate) fn store(plan: &Plan, report: &mut Report) -> Result<()> {
    let counts = if plan.quick {
        store_peers::Counts {
            batch_inserts: 200_000,
            single_inserts: 2_000,
            gets: 1_000_000,
            reopen_entries: 200_000,
            // Where each kill falls in the truncation cycle decides what is left to replay
            // (14-74 records after a 200k fill), so one round is a coin toss: a median of 3.
            reopen_rounds: 3,
        }
    } else {
        store_peers::Counts::FULL
    };
    let exe = std::env::current_exe()?;
    let c = store_peers::compare(&counts, Some(&exe))?;
    let rate = |n: u64, t: Duration| Some(per_second(n, t));
    let (batch, single, gets, reopen) = (
        |e: Engine| rate(counts.batch_inserts, c.of(e).batch),
        |e: Engine| rate(counts.single_inserts, c.of(e).single),
        |e: Engine| rate(counts.gets, c.of(e).gets),
        |e: Engine| c.of(e).reopen.map(ms),
    );
    let quick = plan.quick;
    let pick = |q: &'static str, f: &'static str| if quick { q } else { f };
    report.add(
        "store_batch_rvm_per_s",
        batch(Engine::Rvm),
        "1/s",
        pick(
            "store (ours): 200k inserts (--quick), durable commit every 1,000",
            "store (ours): 1M inserts, durable commit every 1,000",
        ),
    );
    report.add(
        "store_batch_redb_per_s",
        batch(Engine::Redb),
        "1/s",
        "  redb, the same, in turns",
    );
    report.add(
        "store_batch_lmdb_per_s",
        batch(Engine::Lmdb),
        "1/s",
        "  LMDB (heed), the same",
    );
    for (key, peer) in [
        ("store_batch_over_redb", Engine::Redb),
        ("store_batch_over_lmdb", Engine::Lmdb),
    ] {
        let what = pick(
            "  ours / peer (batch, --quick counts)",
            "  ours / peer (batch)",
        );
        let r = ratio(batch(Engine::Rvm), batch(peer));
        report.add_target(key, r, "x", what, Target::AtLeast(1.0));
    }
    report.add(
        "store_single_rvm_per_s",
        single(Engine::Rvm),
        "1/s",
        pick(
            "store (ours): 2,000 single inserts (--quick), each durable",
            "store (ours): 10,000 single inserts, each durable",
        ),
    );
    report.add(
        "store_single_redb_per_s",
        single(Engine::Redb),
        "1/s",
        "  redb, in turns",
    );
    report.add(
        "store_single_lmdb_per_s",
        single(Engine::Lmdb),
        "1/s",
        "  LMDB (heed)",
    );
    for (key, peer) in [
        ("store_single_over_redb", Engine::Redb),
        ("store_single_over_lmdb", Engine::Lmdb),
    ] {
        let what = pick(
            "  ours / peer (single, --quick counts)",
            "  ours / peer (single)",
        );
        let r = ratio(single(Engine::Rvm), single(peer));
        report.add_target(key, r, "x", what, Target::AtLeast(0.9));
    }
    report.add(
        "store_get_rvm_per_s",
        gets(Engine::Rvm),
        "1/s",
        pick(
            "store (ours): 1M random gets, warm, of a 200k-entry store (--quick)",
            "store (ours): 1M random gets, warm, of the 1M-entry store",
        ),
    );
    report.add(
        "store_get_redb_per_s",
        gets(Engine::Redb),
        "1/s",
        "  redb, one read transaction",
    );
    report.add(
        "store_get_lmdb_per_s",
        gets(Engine::Lmdb),
        "1/s",
        "  LMDB (heed), one read transaction",
    );
    for (key, peer) in [
        ("store_get_over_redb", Engine::Redb),
        ("store_get_over_lmdb", Engine::Lmdb),
    ] {
        let r = ratio(gets(Engine::Rvm), gets(peer));
        report.add_target(key, r, "x", "  ours / peer (gets)", Target::AtLeast(1.0));
    }
    report.add(
        "store_reopen_rvm_ms",
        reopen(Engine::Rvm),
        "ms",
        pick(
            "store (ours): open + first get after kill -9 of a 200k-entry store (--quick)",
            "store (ours): open + first get after kill -9 of a 1M-entry store, median of 3",
        ),
    );
    report.add(
        "store_reopen_redb_ms",
        reopen(Engine::Redb),
        "ms",
        "  redb (repairs after an unclean close)",
    );
    report.add(
        "store_reopen_lmdb_ms",
        reopen(Engine::Lmdb),
        "ms",
        "  LMDB (heed)",
    );
    for (key, peer) in [
        ("store_reopen_over_redb", Engine::Redb),
        ("store_reopen_over_lmdb", Engine::Lmdb),
    ] {
        let r = ratio(reopen(Engine::Rvm), reopen(peer));
        report.add_target(
            key,
            r,
            "x",
            "  ours / peer (reopen time)",
            Target::AtMost(1.0),
        );
    }
    if let Some(e) = &c.reopen_error {
        report.note(format!("store: reopen after kill -9 not measured: {e}"));
    }
    report.note(format!(
        "store: disk bytes after the batch and single runs: ours {} MB, redb {} MB, LMDB {} MB",
        c.of(Engine::Rvm).disk_bytes / 1_000_000,
        c.of(Engine::Redb).disk_bytes / 1_000_000,
        c.of(Engine::Lmdb).disk_bytes / 1_000_000
    ));
    Ok(())
}
