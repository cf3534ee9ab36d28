//! `rvm-report`: quick versions of the benchmarks next to this machine's own limits measured in
//! the same run, printed as a table of absolute figures and ratios (or one JSON object).
//!
//! ```text
//! cargo run --release -p rvm-benches --bin rvm-report -- [--quick] [--json]
//! ```
//!
//! Exit codes: 0 the report was produced (targets met or not: nothing here asserts a timing);
//! 1 a benchmark could not run at all; 2 bad arguments.

mod cold;
mod huge;
mod machine;
mod rds;
mod rdsinit;
mod recovery;
mod report;
mod store;
mod transactions;
mod truncation;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use rvm_benches::store_peers;

use crate::cold::{cold_start, COLD_KEYS};
use crate::huge::huge_pages;
use crate::machine::{machine, open};
use crate::rds::rds;
use crate::rdsinit::rdsinit;
use crate::recovery::recovery;
use crate::report::{print_json, print_table, Report, REQUIRED_KEYS};
use crate::store::{store, STORE_KEYS};
use crate::transactions::transactions;
use crate::truncation::{truncation, truncation_rss_child, CHILD_TRUNCATION_RSS};

/// One part of the report: adds its figures (or fails and leaves a note).
pub(crate) type Section = fn(&Plan, &mut Report) -> Result<()>;

/// How big the runs are (`--quick` or full counts).
pub(crate) struct Plan {
    pub(crate) quick: bool,
}

impl Plan {
    pub(crate) fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

pub(crate) fn main() -> ExitCode {
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
                     rds, huge, rdsinit, truncation, cold, store); for profiling"
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
    let sections: [(&str, Section); 10] = [
        ("machine", machine),
        ("open", open),
        ("cold", cold_start),
        ("recovery", recovery),
        ("transactions", transactions),
        ("rds", rds),
        ("huge", huge_pages),
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
        let required: Vec<&str> = REQUIRED_KEYS
            .iter()
            .chain(&COLD_KEYS)
            .chain(&STORE_KEYS)
            .copied()
            .collect();
        print_json(&report, quick, &required);
    } else {
        print_table(&report, quick);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
