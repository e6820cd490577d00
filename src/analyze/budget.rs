//! Budgets: per workload, a target and a critical threshold for each metric,
//! read from `profkit.toml`, and the check of runs against them.
//!
//! ```toml
//! [default]                      # applies to every workload
//! error_rate = { target = "0%", critical = "1%" }
//!
//! [point-read]                   # overrides the default metric by metric
//! p95 = { target = "20us", critical = "100us" }
//! throughput = { target = "50k", critical = "10k" }   # a floor: higher is better
//! peak_heap = { target = "64MiB", critical = "256MiB" }
//! ```
//!
//! Metrics: `mean`, `p50`, `p95`, `p99` (durations: `ns`, `us`, `ms`, `s`;
//! a bare number is nanoseconds), `throughput` (operations per second,
//! `k`/`m` suffixes), `error_rate` (a fraction or a percentage),
//! `peak_heap`, `alloc_per_op` (bytes: `B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`,
//! `GB`), `leak_slope` (bytes per operation), `sql_per_op` (statements per
//! operation), `full_scans` (statements per operation that read a whole
//! table, from the SQL pass's query plans). A metric whose data a run lacks
//! is reported as not measured.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::budget_check::{verdict, CheckLine, CheckReport, Status, NOISE_Z};
use super::rundata::LoadedRun;

/// Errors of a budget file.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The file is missing or unreadable.
    #[error("cannot read budget file '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has the wrong shape.
    #[error("budget file '{}' is not valid: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What a budget (and a comparison) can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean latency.
    Mean,
    /// Median latency.
    P50,
    /// 95th percentile latency.
    P95,
    /// 99th percentile latency.
    P99,
    /// Operations per second (a floor).
    Throughput,
    /// Errors ÷ operations.
    ErrorRate,
    /// CPU time (user + system) per operation.
    CpuPerOp,
    /// Peak live heap bytes.
    PeakHeap,
    /// Bytes allocated per operation.
    AllocPerOp,
    /// Leak slope, bytes per operation.
    LeakSlope,
    /// SQL statements per operation.
    SqlPerOp,
    /// Statements per operation that read a whole table.
    FullScans,
}

/// How a metric's values are written and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds.
    Nanos,
    /// Operations per second.
    PerSec,
    /// A fraction shown as a percentage.
    Fraction,
    /// Bytes.
    Bytes,
    /// Bytes per operation.
    BytesPerOp,
    /// A plain number.
    Count,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 12] = [
        Metric::Mean,
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::Throughput,
        Metric::ErrorRate,
        Metric::CpuPerOp,
        Metric::PeakHeap,
        Metric::AllocPerOp,
        Metric::LeakSlope,
        Metric::SqlPerOp,
        Metric::FullScans,
    ];

    /// Its name in `profkit.toml` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Mean => "mean",
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::Throughput => "throughput",
            Metric::ErrorRate => "error_rate",
            Metric::CpuPerOp => "cpu_per_op",
            Metric::PeakHeap => "peak_heap",
            Metric::AllocPerOp => "alloc_per_op",
            Metric::LeakSlope => "leak_slope",
            Metric::SqlPerOp => "sql_per_op",
            Metric::FullScans => "full_scans",
        }
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its unit.
    pub fn unit(self) -> Unit {
        match self {
            Metric::Mean | Metric::P50 | Metric::P95 | Metric::P99 | Metric::CpuPerOp => {
                Unit::Nanos
            }
            Metric::Throughput => Unit::PerSec,
            Metric::ErrorRate => Unit::Fraction,
            Metric::PeakHeap => Unit::Bytes,
            Metric::AllocPerOp | Metric::LeakSlope => Unit::BytesPerOp,
            Metric::SqlPerOp | Metric::FullScans => Unit::Count,
        }
    }

    /// Whether a larger value is better (only throughput).
    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// Whether the metric is a time (its verdicts read faster/slower).
    pub fn is_speed(self) -> bool {
        matches!(self.unit(), Unit::Nanos | Unit::PerSec)
    }

    /// The measured value in a run, if the run has the data.
    pub fn value(self, run: &LoadedRun) -> Option<f64> {
        let b = &run.bench;
        // A run of 0 measured operations measured nothing (a heap run's
        // heap figures excepted: it has no bench.json at all).
        let heap = matches!(self, Metric::PeakHeap | Metric::AllocPerOp);
        if b.ops == 0 && !(run.heap_only && heap) {
            return None;
        }
        let lat = |n: crate::units::Nanos| (b.ops > 0).then_some(n.0 as f64);
        match self {
            Metric::Mean => lat(b.latency.mean),
            Metric::P50 => lat(b.latency.p50),
            Metric::P95 => lat(b.latency.p95),
            Metric::P99 => lat(b.latency.p99),
            Metric::Throughput => (b.ops > 0).then_some(b.throughput.0),
            Metric::ErrorRate => (b.ops > 0).then_some(b.error_rate),
            Metric::CpuPerOp => (b.ops > 0 && b.cpu.user.0 + b.cpu.system.0 > 0)
                .then(|| (b.cpu.user.0 + b.cpu.system.0) as f64 / b.ops as f64),
            Metric::PeakHeap => run
                .alloc
                .as_ref()
                .map(|a| a.peak_bytes.0 as f64)
                .or(run.dhat_peak.map(|p| p as f64)),
            Metric::AllocPerOp => {
                let a = run.alloc.as_ref()?;
                a.bytes_per_op.or_else(|| {
                    let ops = a.ops.filter(|o| *o > 0)?;
                    Some(a.total_bytes.0 as f64 / ops as f64)
                })
            }
            Metric::LeakSlope => run.leaks.as_ref().map(|l| l.leaked_bytes_per_op),
            Metric::SqlPerOp => b
                .sql
                .map(|s| s.per_op)
                .filter(|_| b.ops > 0)
                .or_else(|| run.sql.as_ref().map(|s| s.statements_per_op)),
            Metric::FullScans => run.sql.as_ref().map(|_| {
                run.statements()
                    .iter()
                    .filter(|s| !s.full_scans.is_empty())
                    .fold(0.0, |total, s| total + s.per_op)
            }),
        }
    }

    /// Formats a value of this metric.
    pub fn format(self, v: f64) -> String {
        format_value(self.unit(), v)
    }

    /// Parses a budget value of this metric: a number or a string with a unit.
    pub fn parse(self, v: &toml::Value) -> Result<f64, String> {
        let value = self.parse_unchecked(v)?;
        if value < 0.0 {
            return Err(format!(
                "{value} is negative; a threshold must be 0 or more"
            ));
        }
        if self.unit() == Unit::Fraction && value > 1.0 {
            return Err(format!(
                "{} is not a rate between 0 and 100 %",
                self.format(value)
            ));
        }
        Ok(value)
    }

    fn parse_unchecked(self, v: &toml::Value) -> Result<f64, String> {
        let text = match v {
            toml::Value::Integer(i) => return Ok(*i as f64),
            toml::Value::Float(f) if f.is_finite() => return Ok(*f),
            toml::Value::String(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "a {} value is not a number or a string with a unit",
                    other.type_str()
                ))
            }
        };
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
            .unwrap_or(text.len());
        let (num, unit) = (text[..split].trim(), text[split..].trim());
        let n: f64 = num
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("'{text}' does not start with a non-negative number"))?;
        let unit_l = unit.to_ascii_lowercase();
        let mult = match (self.unit(), unit_l.trim_end_matches("/op")) {
            (_, "") => 1.0,
            (Unit::Nanos, "ns") => 1.0,
            (Unit::Nanos, "us" | "µs") => 1e3,
            (Unit::Nanos, "ms") => 1e6,
            (Unit::Nanos, "s") => 1e9,
            (Unit::PerSec, "k") => 1e3,
            (Unit::PerSec, "m") => 1e6,
            (Unit::PerSec, "ops/s" | "/s") => 1.0,
            (Unit::PerSec, "k ops/s" | "kops/s") => 1e3,
            (Unit::Fraction, "%") => 0.01,
            (Unit::Bytes | Unit::BytesPerOp, "b") => 1.0,
            (Unit::Bytes | Unit::BytesPerOp, "kb") => 1e3,
            (Unit::Bytes | Unit::BytesPerOp, "mb") => 1e6,
            (Unit::Bytes | Unit::BytesPerOp, "gb") => 1e9,
            (Unit::Bytes | Unit::BytesPerOp, "kib") => 1024.0,
            (Unit::Bytes | Unit::BytesPerOp, "mib") => 1024.0 * 1024.0,
            (Unit::Bytes | Unit::BytesPerOp, "gib") => 1024.0 * 1024.0 * 1024.0,
            _ => {
                return Err(format!(
                    "'{unit}' is not a unit of {} (examples: {})",
                    self.name(),
                    match self.unit() {
                        Unit::Nanos => "500us, 2ms, 1s",
                        Unit::PerSec => "5000, 10k",
                        Unit::Fraction => "0.01, 1%",
                        Unit::Bytes | Unit::BytesPerOp => "512B, 4KiB, 64MiB",
                        Unit::Count => "1, 2.5",
                    }
                ))
            }
        };
        Ok(n * mult)
    }
}

/// Formats a value in a unit.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Nanos => crate::units::Nanos(v.max(0.0).round() as u64).to_string(),
        Unit::PerSec => crate::units::OpsPerSec(v).to_string(),
        Unit::Fraction => format!("{:.2} %", v * 100.0),
        Unit::Bytes => crate::units::Bytes(v.max(0.0).round() as u64).to_string(),
        Unit::BytesPerOp => {
            if v.abs() < 1024.0 {
                format!("{v:.1} B/op")
            } else {
                format!("{}/op", crate::units::Bytes(v.max(0.0).round() as u64))
            }
        }
        Unit::Count => format!("{v:.2}"),
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A target and a critical threshold; either may be absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// Missing it is a warning.
    pub target: Option<f64>,
    /// Breaking it fails the check.
    pub critical: Option<f64>,
}

/// A budget file: limits per metric, by default and per workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budget {
    /// From `[default]`.
    pub default: BTreeMap<Metric, Limit>,
    /// From `[<workload>]`.
    pub workloads: BTreeMap<String, BTreeMap<Metric, Limit>>,
    /// `timings_optimised_only = true` at the top of the file: timing
    /// targets are calibrated on optimised builds, so a debug build's
    /// timings are not judged (deterministic figures still are).
    pub timings_optimised_only: bool,
}

/// The file's top-level key for [`Budget::timings_optimised_only`].
pub const TIMINGS_OPTIMISED_ONLY: &str = "timings_optimised_only";

impl Budget {
    /// Parses budget text; the error says which table and metric is wrong.
    pub fn parse(text: &str) -> Result<Budget, String> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.to_string().lines().next().unwrap_or("").to_string())?;
        let mut budget = Budget::default();
        for (section, body) in doc {
            if section == TIMINGS_OPTIMISED_ONLY {
                let toml::Value::Boolean(b) = body else {
                    return Err(format!("'{section}' must be true or false"));
                };
                budget.timings_optimised_only = b;
                continue;
            }
            let toml::Value::Table(body) = body else {
                return Err(format!(
                    "'{section}' must be a table ([{section}]) of metrics"
                ));
            };
            let mut limits = BTreeMap::new();
            for (name, value) in body {
                let metric = Metric::from_name(&name).ok_or_else(|| {
                    format!(
                        "[{section}] unknown metric '{name}'; valid metrics: {}",
                        Metric::ALL.map(Metric::name).join(", ")
                    )
                })?;
                let toml::Value::Table(t) = value else {
                    return Err(format!(
                        "[{section}] {name} must be {{ target = …, critical = … }}"
                    ));
                };
                let mut limit = Limit::default();
                for (k, v) in t {
                    let parsed = metric
                        .parse(&v)
                        .map_err(|e| format!("[{section}] {name}.{k}: {e}"))?;
                    match k.as_str() {
                        "target" => limit.target = Some(parsed),
                        "critical" => limit.critical = Some(parsed),
                        other => {
                            return Err(format!(
                            "[{section}] {name}: unknown key '{other}' (use target and critical)"
                        ))
                        }
                    }
                }
                if let (Some(t), Some(c)) = (limit.target, limit.critical) {
                    let wrong_order = if metric.higher_is_better() {
                        c > t
                    } else {
                        c < t
                    };
                    if wrong_order {
                        return Err(format!(
                            "[{section}] {name}: critical {} is stricter than target {}",
                            metric.format(c),
                            metric.format(t)
                        ));
                    }
                }
                limits.insert(metric, limit);
            }
            if section == "default" {
                budget.default = limits;
            } else {
                budget.workloads.insert(section, limits);
            }
        }
        Ok(budget)
    }

    /// The limits that apply to `workload`: its own over the defaults.
    pub fn limits_for(&self, workload: &str) -> BTreeMap<Metric, Limit> {
        let mut all = self.default.clone();
        if let Some(own) = self.workloads.get(workload) {
            all.extend(own.iter().map(|(m, l)| (*m, *l)));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_with_units() {
        let s = |x: &str| toml::Value::String(x.into());
        assert_eq!(Metric::P95.parse(&s("2ms")), Ok(2e6));
        assert_eq!(Metric::P95.parse(&s("1.5 us")), Ok(1500.0));
        assert_eq!(Metric::P95.parse(&toml::Value::Integer(500)), Ok(500.0));
        assert_eq!(Metric::ErrorRate.parse(&s("1%")), Ok(0.01));
        assert_eq!(Metric::PeakHeap.parse(&s("64MiB")), Ok(64.0 * 1048576.0));
        assert_eq!(Metric::Throughput.parse(&s("10k")), Ok(10_000.0));
        assert!(Metric::P95.parse(&s("2 parsecs")).is_err());
        assert!(Metric::PeakHeap.parse(&s("-3B")).is_err());
    }

    #[test]
    fn workload_limits_override_defaults() {
        let b = Budget::parse(
            r#"
            [default]
            p95 = { target = "1ms", critical = "5ms" }
            error_rate = { critical = "1%" }
            [point-read]
            p95 = { target = "20us", critical = "100us" }
            "#,
        )
        .unwrap();
        let l = b.limits_for("point-read");
        assert_eq!(l[&Metric::P95].target, Some(20_000.0));
        assert_eq!(l[&Metric::ErrorRate].critical, Some(0.01));
        assert_eq!(b.limits_for("other")[&Metric::P95].critical, Some(5e6));
    }

    #[test]
    fn the_example_budget_parses() {
        let b = Budget::parse(include_str!("../../profkit.toml")).unwrap();
        assert!(b.workloads.contains_key("point-read"));
        assert_eq!(b.default[&Metric::LeakSlope].critical, Some(64.0));
    }

    #[test]
    fn bad_budgets_name_the_problem() {
        let e = Budget::parse("[default]\nlatency = { target = 1 }").unwrap_err();
        assert!(e.contains("unknown metric 'latency'"), "{e}");
        let e = Budget::parse("[x]\np95 = { target = \"5ms\", critical = \"1ms\" }").unwrap_err();
        assert!(e.contains("stricter"), "{e}");
        let e = Budget::parse("[x]\nthroughput = { target = 100, critical = 1000 }").unwrap_err();
        assert!(e.contains("stricter"), "{e}");
        assert!(Budget::parse("[x\n").is_err());
        assert!(Budget::parse("[x]\np95 = { goal = 1 }").is_err());
    }
}
