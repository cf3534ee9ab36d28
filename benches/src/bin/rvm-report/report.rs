//! The report: figures with their targets, printed as a table or one JSON object.

use std::time::Duration;

/// How a figure compares with its target from the issue.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub(crate) fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }
    pub(crate) fn describe(self) -> String {
        match self {
            Target::AtMost(t) => format!("<= {}", human(t)),
            Target::AtLeast(t) => format!(">= {}", human(t)),
        }
    }
}

pub(crate) struct Figure {
    pub(crate) key: &'static str,
    pub(crate) value: Option<f64>,
    pub(crate) unit: &'static str,
    pub(crate) what: &'static str,
    pub(crate) target: Option<Target>,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) figures: Vec<Figure>,
    pub(crate) notes: Vec<String>,
}

impl Report {
    pub(crate) fn add(
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
    pub(crate) fn add_target(
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
    pub(crate) fn value(&self, key: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.key == key)
            .and_then(|f| f.value)
    }
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

pub(crate) fn human(v: f64) -> String {
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

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

pub(crate) fn print_table(report: &Report, quick: bool) {
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
pub(crate) const REQUIRED_KEYS: [&str; 18] = [
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

/// The report as one JSON object; every key of `required` is present (null when it was not
/// measured), so scripts can rely on them.
pub(crate) fn print_json(report: &Report, quick: bool, required: &[&str]) {
    let mut map = serde_json::Map::new();
    for key in required {
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
