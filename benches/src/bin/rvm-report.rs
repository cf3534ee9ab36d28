//! `rvm-report`: quick versions of the benchmarks next to this machine's own limits measured in
//! the same run, printed as a table of absolute figures and ratios (or one JSON object).
//!
//! ```text
//! cargo run --release -p rvm-benches --bin rvm-report -- [--quick] [--json]
//! ```
//!
//! Exit codes: 0 the report was produced (targets met or not: nothing here asserts a timing);
//! 1 a benchmark could not run at all; 2 bad arguments.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use rvm::{CommitMode, Options};
use rvm_benches::limits;
use rvm_benches::scenario::{self, RdsScenario, RecoveryScenario, TruncationScenario, TxScenario};
use rvm_benches::scratch::Scratch;
use rvm_benches::store_peers::{self, Engine};
use rvm_benches::workload::{Mix, Rng};
use rvm_benches::{ms, per_second, GIB, LOG_AREA_BYTES, MIB};

/// How a figure compares with its target from the issue.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }
    fn describe(self) -> String {
        match self {
            Target::AtMost(t) => format!("<= {}", human(t)),
            Target::AtLeast(t) => format!(">= {}", human(t)),
        }
    }
}

struct Figure {
    key: &'static str,
    value: Option<f64>,
    unit: &'static str,
    what: &'static str,
    target: Option<Target>,
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    notes: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        key: &'static str,
        value: Option<f64>,
        unit: &'static str,
        what: &'static str,
    ) {
        self.figures.push(Figure {
            key,
            value,
            unit,
            what,
            target: None,
        });
    }
    fn add_target(
        &mut self,
        key: &'static str,
        value: Option<f64>,
        unit: &'static str,
        what: &'static str,
        target: Target,
    ) {
        self.figures.push(Figure {
            key,
            value,
            unit,
            what,
            target: Some(target),
        });
    }
    fn value(&self, key: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.key == key)
            .and_then(|f| f.value)
    }
    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

fn human(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// One part of the report: adds its figures (or fails and leaves a note).
type Section = fn(&Plan, &mut Report) -> Result<()>;

struct Plan {
    quick: bool,
}

impl Plan {
    fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

fn main() -> ExitCode {
    let mut quick = false;
    let mut json = false;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    if std::env::args().nth(1).as_deref() == Some(CHILD_TRUNCATION_RSS) {
        return truncation_rss_child();
    }
    if std::env::args().nth(1).as_deref() == Some(store_peers::CHILD_ARG) {
        return store_peers::child_main(&std::env::args().skip(2).collect::<Vec<_>>());
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--json" => json = true,
            "--only" => match args.next() {
                Some(list) => only.extend(list.split(',').map(str::to_string)),
                None => {
                    eprintln!("rvm-report: --only needs a comma-separated list of sections");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: rvm-report [--quick] [--json] [--only SECTION,...]\n\n  \
                     --quick  smaller runs, under a minute\n  \
                     --json   print one JSON object instead of the table\n  \
                     --only   run only these sections (machine, open, recovery, transactions, \
                     rds, rdsinit, truncation, cold, store); for profiling"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("rvm-report: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let plan = Plan { quick };
    let started = Instant::now();
    let mut report = Report::default();
    let sections: [(&str, Section); 9] = [
        ("machine", machine),
        ("open", open),
        ("cold", cold_start),
        ("recovery", recovery),
        ("transactions", transactions),
        ("rds", rds),
        ("rdsinit", rdsinit),
        ("truncation", truncation),
        ("store", store),
    ];
    let mut failed = false;
    for (name, section) in sections {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            report.note(format!("{name}: not run (--only)"));
            continue;
        }
        if !json {
            eprintln!("rvm-report: {name} ...");
        }
        if let Err(e) = section(&plan, &mut report) {
            failed = true;
            report.note(format!("{name}: could not run: {e:#}"));
        }
    }
    report.add(
        "report_seconds",
        Some(started.elapsed().as_secs_f64()),
        "s",
        "time this report took",
    );
    if json {
        print_json(&report, quick);
    } else {
        print_table(&report, quick);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_table(report: &Report, quick: bool) {
    println!(
        "rvm-report{} ({} cores; ratios are measured in this one run)",
        if quick { " --quick" } else { "" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<36} {:>12} {:<6} {:<12} {:<7} what",
        "key", "value", "unit", "target", ""
    );
    for f in &report.figures {
        let value = f.value.map(human).unwrap_or_else(|| "null".into());
        let (target, verdict) = match (f.target, f.value) {
            (Some(t), Some(v)) => (t.describe(), if t.met(v) { "met" } else { "MISSED" }),
            (Some(t), None) => (t.describe(), "n/a"),
            (None, _) => (String::new(), ""),
        };
        println!(
            "{:<36} {:>12} {:<6} {:<12} {:<7} {}",
            f.key, value, f.unit, target, verdict, f.what
        );
    }
    for n in &report.notes {
        println!("note: {n}");
    }
}

/// The keys the issue requires in `--json`; a section left out with `--only` reports them as
/// null.
const REQUIRED_KEYS: [&str; 18] = [
    "open_1g_ms",
    "open_1g_over_1m",
    "recovery_30m_ms",
    "recovery_over_limit",
    "noflush_commits_per_s",
    "noflush_sustained_per_s",
    "flush_commits_per_s",
    "flush_over_fdatasync",
    "flush_over_fdatasync_allocated",
    "flush_4threads_over_1thread",
    "flush_4threads_over_limit",
    "rds_ops_per_s",
    "rds_log_peak_percent",
    "rdsinit_1g_ms",
    "rdsinit_1g_disk_bytes",
    "truncate_30m_ms",
    "truncate_over_limit",
    "truncate_peak_rss_mb",
];

fn print_json(report: &Report, quick: bool) {
    let mut map = serde_json::Map::new();
    for key in REQUIRED_KEYS.iter().chain(&COLD_KEYS).chain(&STORE_KEYS) {
        map.insert(key.to_string(), serde_json::Value::Null);
    }
    for f in &report.figures {
        let v = f
            .value
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null);
        map.insert(f.key.to_string(), v);
    }
    map.insert("quick".into(), serde_json::Value::Bool(quick));
    map.insert(
        "notes".into(),
        serde_json::Value::Array(
            report
                .notes
                .iter()
                .cloned()
                .map(serde_json::Value::String)
                .collect(),
        ),
    );
    println!("{}", serde_json::Value::Object(map));
}

/// Memory bandwidth, log-sized sequential read + CRC, raw flush cost, and page-fault cost.
fn machine(plan: &Plan, report: &mut Report) -> Result<()> {
    let copy = limits::memcpy_bytes_per_s(64 << 20, plan.pick(8, 32));
    report.add(
        "memcpy_gb_per_s",
        Some(copy / 1e9),
        "GB/s",
        "memcpy bandwidth (64 MiB buffers)",
    );
    let dir = Scratch::new("machine")?;
    let log = dir.join("log");
    scenario::create_log(&log, LOG_AREA_BYTES)?;
    // Fill the file so the read is of real data in the page cache, as a full log's would be.
    std::fs::write(&log, vec![0x11u8; (LOG_AREA_BYTES + 64 * 1024) as usize])?;
    let (elapsed, bytes) = limits::read_and_crc(&log)?;
    report.add(
        "log_read_crc_mb_per_s",
        Some(per_second(bytes, elapsed) / 1e6),
        "MB/s",
        "sequential read + CRC32 of a 30 MB file (page cache)",
    );
    let count = plan.pick(300, 1000);
    let sparse =
        limits::pwrite_fdatasync_loop(&dir.join("sync-sparse"), LOG_AREA_BYTES, 512, count)?;
    report.add(
        "fdatasync_per_s",
        Some(per_second(count, sparse)),
        "1/s",
        "pwrite 512 B + fdatasync, appending in a new sparse file",
    );
    // The same loop over blocks that are already allocated (a log after its first wrap).
    let mut dense = limits::SyncLoop::preallocated(&dir.join("sync-dense"), 4 << 20, 512)?;
    let mut dense_time = Duration::ZERO;
    for _ in 0..count {
        dense_time += dense.once()?;
    }
    report.add(
        "fdatasync_allocated_per_s",
        Some(per_second(count, dense_time)),
        "1/s",
        "the same over already allocated blocks",
    );
    let data = dir.join("data");
    scenario::create_segment(&data, GIB)?;
    let pages: Vec<u64> = (0..plan.pick(20_000u64, 100_000))
        .map(|i| (i * 37 % 262_000 + 1) * 4096)
        .collect();
    // The first pass reads the pages into the page cache (with readahead); the second is the
    // fault cost alone, as the recovery limit sees it after a first recovery.
    limits::private_mapping_faults(&data, &pages)?;
    let faults = limits::private_mapping_faults(&data, &pages)?;
    report.add(
        "page_faults_per_s",
        Some(per_second(pages.len() as u64, faults)),
        "1/s",
        "write faults on a private mapping of a 1 GB file (page cache warm)",
    );
    Ok(())
}

fn open(plan: &Plan, report: &mut Report) -> Result<()> {
    let sizes: [(&'static str, u64); 4] = [
        ("open_1m_ms", MIB),
        ("open_64m_ms", 64 * MIB),
        ("open_1g_ms", GIB),
        ("open_4g_ms", 4 * GIB),
    ];
    let runs = plan.pick(15, 60);
    for (key, size) in sizes {
        let dir = Scratch::new("open")?;
        let (log, data) = (dir.join("log"), dir.join("data"));
        scenario::create_log(&log, LOG_AREA_BYTES)?;
        scenario::create_segment(&data, size)?;
        // The first map records the segment in the log; every later open finds it there.
        scenario::open_and_map(&log, &data, Options::default())?
            .0
            .close()?;
        let mut samples = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let (rvm, seg) = scenario::open_and_map(&log, &data, Options::default())?;
            samples.push(started.elapsed());
            std::hint::black_box(seg);
            rvm.close()?;
        }
        let what = "Rvm::open (empty 30 MB log) + map, median";
        let v = Some(ms(median(samples)));
        if key == "open_1g_ms" {
            report.add_target(key, v, "ms", what, Target::AtMost(1.0));
        } else {
            report.add(key, v, "ms", what);
        }
    }
    let r = ratio(report.value("open_1g_ms"), report.value("open_1m_ms"));
    report.add_target(
        "open_1g_over_1m",
        r,
        "x",
        "open 1 GB / open 1 MB",
        Target::AtMost(1.5),
    );
    Ok(())
}

/// The cold-start keys (issue 10), in `--json` even when the section did not run.
const COLD_KEYS: [&str; 9] = [
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
/// against the same commits once the warm-up has made every page present. Medians.
fn cold_start(plan: &Plan, report: &mut Report) -> Result<()> {
    use rvm_benches::cold::cold_run;
    let commits = 20_000;
    let runs = plan.pick(3, 7);
    let (mut plain, mut warmed) = (Vec::new(), Vec::new());
    for run in 0..runs {
        plain.push(cold_run(GIB, commits, false, 0xc01d + run)?);
        warmed.push(cold_run(GIB, commits, true, 0xc01d + run)?);
    }
    let rate = |runs: &[rvm_benches::cold::ColdRun],
                f: fn(&rvm_benches::cold::ColdRun) -> Duration| {
        per_second(commits, median(runs.iter().map(f).collect()))
    };
    let cold = rate(&plain, |r| r.cold);
    let cold_warmup = rate(&warmed, |r| r.cold);
    let warm = rate(&warmed, |r| r.warm.unwrap_or_default());
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
        Some(ms(median(
            warmed
                .iter()
                .map(|r| r.warm_up_done.unwrap_or_default())
                .collect(),
        ))),
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
    Ok(())
}

fn recovery(plan: &Plan, report: &mut Report) -> Result<()> {
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

/// The no_flush commit loop with isolation on (range locks taken at `set_range`, released at
/// `end`), next to the same loop with isolation off, in the same section run.
fn transactions_isolated(plan: &Plan, report: &mut Report, segment: u64) -> Result<()> {
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

fn transactions(plan: &Plan, report: &mut Report) -> Result<()> {
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
        let t = s.commit_loop(
            64,
            commits,
            CommitMode::NoFlush,
            1000,
            true,
            &mut Rng::new(3),
        )?;
        let st = s.rvm.statistics();
        report.add_target(
            "noflush_sustained_per_s",
            Some(per_second(commits, t)),
            "1/s",
            "the same with a flush every 1,000 and truncation running, all timed",
            Target::AtLeast(1e6),
        );
        // The least a sustained run must spend per 1,000 commits: the commits themselves,
        // plus writing and syncing the log bytes they make (176 B each) once.
        let loop_rate = report.value("noflush_commits_per_s").unwrap_or(0.0);
        let dir = Scratch::new("sustained-limit")?;
        // The log has wrapped by now (its blocks are allocated), so the raw file is too.
        let mut sync =
            limits::SyncLoop::preallocated(&dir.join("raw"), LOG_AREA_BYTES, 176 * 1000)?;
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
            "  limit: the commit loop + pwrite 176 KB + fdatasync per 1,000",
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

fn rds(plan: &Plan, report: &mut Report) -> Result<()> {
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

fn rdsinit(plan: &Plan, report: &mut Report) -> Result<()> {
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

fn truncation(plan: &Plan, report: &mut Report) -> Result<()> {
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
const CHILD_TRUNCATION_RSS: &str = "--child-truncation-rss";

/// In the child: measure, print "BEFORE PEAK" (bytes) on one line.
fn truncation_rss_child() -> ExitCode {
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
fn truncation_rss_in_child() -> Result<(u64, u64)> {
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

/// The store section's keys the issue requires in `--json` (null when the section is left
/// out or fails).
const STORE_KEYS: [&str; 8] = [
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
fn store(plan: &Plan, report: &mut Report) -> Result<()> {
    let counts = if plan.quick {
        store_peers::Counts {
            batch_inserts: 200_000,
            single_inserts: 2_000,
            gets: 1_000_000,
            reopen_entries: 200_000,
            reopen_rounds: 1,
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
