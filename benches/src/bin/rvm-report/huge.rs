//! Section `huge`: the no_flush and RDS loops on segments mapped with huge pages
//! (`MapOptions::huge_pages`), in alternating rounds with the same loops on small pages.

use std::time::Duration;

use anyhow::Result;
use rvm::{CommitMode, MapOptions, Options};
use rvm_benches::scenario::{RdsScenario, TxScenario, RDS_HEAP_ADDRESS, RDS_SECOND_HEAP_ADDRESS};
use rvm_benches::workload::Rng;
use rvm_benches::{per_second, LOG_AREA_BYTES, MIB};

use crate::report::{ratio, Report};
use crate::Plan;

/// Alternating rounds of each loop (the order swapped every round).
const ROUNDS: usize = 4;

/// Run `round(variant)` for variants 0 and 1 in [`ROUNDS`] alternating rounds; the total
/// time of each variant.
fn alternate(mut round: impl FnMut(usize) -> Result<Duration>) -> Result<[Duration; 2]> {
    let mut total = [Duration::ZERO; 2];
    for r in 0..ROUNDS {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for variant in order {
            total[variant] += round(variant)?;
        }
    }
    Ok(total)
}

/// Add a pair of rates (the default mapping, then the one `huge` names) and their ratio.
fn add_pair(
    report: &mut Report,
    keys: [&'static str; 3],
    huge: &'static str,
    operations: u64,
    times: [Duration; 2],
) {
    let small_rate = per_second(operations, times[0]);
    let huge_rate = per_second(operations, times[1]);
    report.add(
        keys[0],
        Some(small_rate),
        "1/s",
        "  the default mapping (small pages), same rounds",
    );
    report.add(keys[1], Some(huge_rate), "1/s", huge);
    report.add(
        keys[2],
        ratio(Some(huge_rate), Some(small_rate)),
        "x",
        "  the two above: the second over the first",
    );
}

pub(crate) fn huge_pages(plan: &Plan, report: &mut Report) -> Result<()> {
    let maps = [
        MapOptions::anywhere(),
        MapOptions::anywhere().huge_pages(true),
    ];
    // The no_flush loop of `noflush_commits_per_s`: 64-byte commits at random offsets of a
    // 64 MiB segment, flushes not timed.
    {
        let s = [
            TxScenario::with_map(64 * MIB, LOG_AREA_BYTES, Options::default(), maps[0])?,
            TxScenario::with_map(64 * MIB, LOG_AREA_BYTES, Options::default(), maps[1])?,
        ];
        let commits = plan.pick(150_000, 500_000);
        let mut rngs = [Rng::new(21), Rng::new(21)];
        for (s, rng) in s.iter().zip(&mut rngs) {
            s.commit_loop(64, 10_000, CommitMode::NoFlush, 1000, false, rng)?;
        }
        let times = alternate(|v| {
            s[v].commit_loop(64, commits, CommitMode::NoFlush, 1000, false, &mut rngs[v])
        })?;
        report.note(
            "huge: each pair ran in 4 alternating rounds, on fresh sparse segments \
             (their holes are what huge pages apply to)",
        );
        add_pair(
            report,
            [
                "noflush_small_pages_per_s",
                "noflush_huge_pages_per_s",
                "noflush_huge_over_small",
            ],
            "  huge pages",
            commits * ROUNDS as u64,
            times,
        );
    }
    // The RDS loop of `rds_ops_per_s`: one malloc or free per no_flush transaction, flushes not
    // timed; two heaps at different addresses.
    {
        let s = [
            RdsScenario::with_map(Options::default(), maps[0], RDS_HEAP_ADDRESS)?,
            RdsScenario::with_map(Options::default(), maps[1], RDS_SECOND_HEAP_ADDRESS)?,
        ];
        let operations = plan.pick(100_000, 300_000);
        let mut rngs = [Rng::new(0x4d6), Rng::new(0x4d6)];
        for (s, rng) in s.iter().zip(&mut rngs) {
            s.malloc_free_loop(50_000, 1, 1000, true, rng)?;
        }
        let times = alternate(|v| s[v].malloc_free_loop(operations, 1, 1000, false, &mut rngs[v]))?;
        add_pair(
            report,
            [
                "rds_ops_small_pages_per_s",
                "rds_ops_huge_pages_per_s",
                "rds_huge_over_small",
            ],
            "  huge pages",
            operations * ROUNDS as u64,
            times,
        );
        for s in s {
            s.rvm.close()?;
        }
    }
    store_gets(plan, report)
}

/// Random gets on a freshly filled store (the `store_get_over_redb` workload), its heap mapped
/// with small and with huge pages (`StoreOptions::map` with `MapOptions::huge_pages`): two
/// stores at different addresses, filled once each, then the gets in alternating rounds, every
/// value checked. Then both are closed and reopened, one as by default (its entries are then
/// file data, in small pages), the other with copy mode and huge pages (its entries read into
/// huge pages at open), and the gets run again.
fn store_gets(plan: &Plan, report: &mut Report) -> Result<()> {
    use rvm_benches::store_peers::{fill_open, key, open_rvm_with, rvm_store_options, value_for};
    let entries = plan.pick(200_000u64, 1_000_000);
    let gets = plan.pick(300_000u64, 1_000_000);
    let dir = rvm_benches::scratch::Scratch::new("huge-store")?;
    let mut stores = Vec::new();
    for (i, huge_pages) in [false, true].into_iter().enumerate() {
        let options = rvm_store_options()
            .start_address(HUGE_STORE_ADDRESSES[i])
            .map(MapOptions::default().huge_pages(huge_pages));
        let mut store = open_rvm_with(
            &dir.join(if huge_pages { "huge" } else { "small" }),
            options,
        )?;
        fill_open(store.as_mut(), entries)?;
        stores.push(store);
    }
    let mut rng = Rng::new(0x6e7);
    let keys: Vec<u64> = (0..gets).map(|_| key(rng.below(entries))).collect();
    let timed_gets = |stores: &[Box<dyn rvm_benches::store_peers::Kv>]| {
        alternate(|v| {
            let started = std::time::Instant::now();
            let mut wrong = 0u64;
            let found = stores[v].get_many(&keys, &mut |k, value| {
                wrong += u64::from(*value != value_for(k));
            })?;
            let elapsed = started.elapsed();
            anyhow::ensure!(
                found == gets && wrong == 0,
                "store gets: {found} of {gets} found, {wrong} wrong"
            );
            Ok(elapsed)
        })
    };
    let times = timed_gets(&stores)?;
    for store in stores.drain(..) {
        store.close()?;
    }
    // Reopened (cleanly closed: nothing to replay), with and without copy mode.
    let mut opens = [std::time::Duration::ZERO; 2];
    for (i, map) in [
        MapOptions::default(),
        MapOptions::default().huge_pages(true).copy(true),
    ]
    .into_iter()
    .enumerate()
    {
        let options = rvm_store_options()
            .start_address(HUGE_STORE_ADDRESSES[i])
            .map(map);
        let started = std::time::Instant::now();
        let store = open_rvm_with(&dir.join(if i == 1 { "huge" } else { "small" }), options)?;
        opens[i] = started.elapsed();
        stores.push(store);
    }
    let reopened = timed_gets(&stores)?;
    for store in stores {
        store.close()?;
    }
    report.note(format!(
        "huge: store gets on a fresh store of {entries} entries (the report's store workload), \
         then on the same stores reopened"
    ));
    add_pair(
        report,
        [
            "store_get_small_pages_per_s",
            "store_get_huge_pages_per_s",
            "store_get_huge_over_small",
        ],
        "  huge pages",
        gets * ROUNDS as u64,
        times,
    );
    add_pair(
        report,
        [
            "store_reopened_get_small_pages_per_s",
            "store_reopened_get_copy_huge_per_s",
            "store_reopened_get_copy_huge_over_small",
        ],
        "  copy mode and huge pages (entries read at open)",
        gets * ROUNDS as u64,
        reopened,
    );
    report.add(
        "store_open_ms",
        Some(rvm_benches::ms(opens[0])),
        "ms",
        "  open of that store as by default (cleanly closed)",
    );
    report.add(
        "store_open_copy_huge_ms",
        Some(rvm_benches::ms(opens[1])),
        "ms",
        "  open with copy mode and huge pages (reads the entries)",
    );
    Ok(())
}

/// Heap addresses of the two stores of [`store_gets`] (each heap is 1 GiB).
const HUGE_STORE_ADDRESSES: [u64; 2] = [0x3500_0000_0000, 0x3600_0000_0000];
