//! What a scenario measured, as a table on stdout and as JSON: each figure beside the NATS
//! baseline figure it compares with and the ratio between them, so that every number comes with
//! the floor the same nats-server set in the same run. Latencies are kept in HDR histograms
//! (microseconds, 3 significant digits) because their tails are the point.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The name of the baseline figure this one is compared with.
    #[serde(skip)]
    pub versus: Option<String>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Figure { name: name.into(), value, unit, versus: None }
    }

    pub fn versus(mut self, baseline: impl Into<String>) -> Self {
        self.versus = Some(baseline.into());
        self
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

pub struct Report {
    scenario: &'static str,
    config: Value,
    pub figures: Vec<Figure>,
    pub baseline: Vec<Figure>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

/// Latencies from 1 µs to 2 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    histogram.saturating_record(latency.as_micros().max(1) as u64);
}

/// p50, p99 and p99.9 in milliseconds, each compared with the same percentile of `versus` (a
/// baseline measurement's name); nothing when nothing was recorded.
pub fn latencies(name: &str, histogram: &Histogram<u64>, versus: Option<&str>) -> Vec<Figure> {
    if histogram.is_empty() {
        return Vec::new();
    }
    [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)]
        .into_iter()
        .map(|(label, q)| {
            let ms = histogram.value_at_percentile(q) as f64 / 1000.0;
            let figure = Figure::new(format!("{name}: {label}"), ms, "ms");
            match versus {
                Some(base) => figure.versus(format!("{base}: {label}")),
                None => figure,
            }
        })
        .collect()
}

impl Report {
    pub fn new(scenario: &'static str, config: Value) -> Self {
        Report { scenario, config, figures: Vec::new(), baseline: Vec::new(), checks: Vec::new(), notes: Vec::new() }
    }

    fn base_of(&self, figure: &Figure) -> Option<&Figure> {
        let name = figure.versus.as_deref()?;
        self.baseline.iter().find(|b| b.name == name)
    }

    pub fn print(&self) {
        println!("\n== soulchat-bench {} ==", self.scenario);
        let width = self.figures.iter().chain(&self.baseline).map(|f| f.name.len()).max().unwrap_or(0);
        for figure in &self.figures {
            let mut line = format!("{:<width$}  {:>16}", figure.name, show(figure.value, figure.unit));
            if let Some(base) = self.base_of(figure) {
                line.push_str(&format!("   {:>8} of {}", ratio(figure.value, base.value), base.name));
            }
            println!("{line}");
        }
        if !self.baseline.is_empty() {
            println!("-- NATS baseline, same nats-server, same run --");
            for figure in &self.baseline {
                println!("{:<width$}  {:>16}", figure.name, show(figure.value, figure.unit));
            }
        }
        for check in &self.checks {
            println!("{} {}: {}", if check.passed { "PASS" } else { "FAIL" }, check.name, check.detail);
        }
        for note in &self.notes {
            println!("note: {note}");
        }
    }

    pub fn write_json(&self, path: &Path, api: &str, nats: &str) -> anyhow::Result<()> {
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                let base = self.base_of(f);
                json!({
                    "name": f.name,
                    "value": f.value,
                    "unit": f.unit,
                    "baseline": base,
                    "ratio": base.map(|b| f.value / b.value),
                })
            })
            .collect();
        let unix_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let body = json!({
            "scenario": self.scenario,
            "unix_time": unix_time,
            "api": api,
            "nats": nats,
            "config": self.config,
            "figures": figures,
            "baseline": self.baseline,
            "checks": self.checks,
            "notes": self.notes,
        });
        std::fs::write(path, serde_json::to_string_pretty(&body)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// An error naming the failed checks, so that the command's exit code says so.
    pub fn verdict(&self) -> anyhow::Result<()> {
        let failed: Vec<&str> = self.checks.iter().filter(|c| !c.passed).map(|c| c.name).collect();
        anyhow::ensure!(failed.is_empty(), "check failed: {}", failed.join(", "));
        Ok(())
    }
}

fn show(value: f64, unit: &str) -> String {
    let number = match unit {
        "ms" if value < 1.0 => format!("{value:.3}"),
        "ms" if value < 100.0 => format!("{value:.2}"),
        _ if value < 100.0 && value.fract() != 0.0 => format!("{value:.2}"),
        _ => thousands(value.round() as i64),
    };
    format!("{number} {unit}")
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn ratio(value: f64, base: f64) -> String {
    if base == 0.0 {
        return "n/a".into();
    }
    let r = value / base;
    if r < 10.0 { format!("{r:.3}x") } else { format!("{r:.1}x") }
}
