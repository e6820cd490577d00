//! Stress to the breaking point, then recovery.
//!
//! Concurrency is stepped up (1, 2, 4, … threads by default), one measured
//! level at a time, until a level breaks the service-level objective (e.g.
//! `p99<5ms`) or the error limit; the last level that held is the breaking
//! point. Then the load drops back to the first level and the run checks
//! recovery: p99 within 1.5× of the value measured before the stress, and
//! no errors. Levels are bounded in number and length, so a stress run
//! takes a known, short time.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::measure::{BenchResult, LatencySummary, RunOptions};
use crate::units::{parse_duration, Nanos};

/// Version of `stress.json`.
pub const STRESS_SCHEMA_VERSION: u32 = 1;

/// Defaults of stress runs, defined once.
pub mod defaults {
    use std::time::Duration;

    /// Measured time per level when neither `--ops` nor `--duration` is given.
    pub const LEVEL_DURATION: Duration = Duration::from_secs(1);
    /// The objective when none is given.
    pub const SLO: &str = "p99<5ms";
    /// Share of operations that may fail at a level that holds.
    pub const MAX_ERROR_RATE: f64 = 0.01;
    /// Threads of the first level (and of the recovery check).
    pub const START_THREADS: usize = 1;
    /// Most threads a level may use.
    pub const MAX_THREADS: usize = 64;
    /// Most levels before the recovery check.
    pub const MAX_LEVELS: usize = 8;
    /// Recovered when p99 is at most this multiple of the pre-stress p99.
    pub const RECOVERY_FACTOR: f64 = 1.5;
}

/// Errors in stress options.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StressError {
    /// The objective does not parse.
    #[error("--slo '{0}' is not an objective; examples: p99<5ms, p95<800us, mean<1ms")]
    Slo(String),
    /// The error limit does not parse.
    #[error("--max-errors '{0}' is not a share; examples: 1%, 0.5%, 0.01")]
    ErrorLimit(String),
    /// Bad level bounds.
    #[error("--max-threads {max} must be at least the starting --threads {start}, and --max-levels at least 1")]
    Levels {
        /// The first level.
        start: usize,
        /// The limit.
        max: usize,
    },
}

/// A latency statistic an objective is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Mean.
    Mean,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Slowest.
    Max,
}

impl SloMetric {
    /// This statistic of a latency summary.
    pub fn of(self, l: &LatencySummary) -> Nanos {
        match self {
            SloMetric::Mean => l.mean,
            SloMetric::P50 => l.p50,
            SloMetric::P90 => l.p90,
            SloMetric::P95 => l.p95,
            SloMetric::P99 => l.p99,
            SloMetric::P999 => l.p999,
            SloMetric::Max => l.max,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SloMetric::Mean => "mean",
            SloMetric::P50 => "p50",
            SloMetric::P90 => "p90",
            SloMetric::P95 => "p95",
            SloMetric::P99 => "p99",
            SloMetric::P999 => "p999",
            SloMetric::Max => "max",
        }
    }
}

/// A service-level objective: `metric < limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slo {
    /// The statistic.
    pub metric: SloMetric,
    /// It must stay below this.
    pub limit: Nanos,
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} < {}", self.metric.name(), self.limit)
    }
}

impl std::str::FromStr for Slo {
    type Err = StressError;

    /// Parses `p99<5ms`, `p99.9 < 20ms`, `mean<1ms`, `p50<300us`.
    fn from_str(s: &str) -> Result<Slo, StressError> {
        let err = || StressError::Slo(s.to_string());
        let (metric, limit) = s.split_once('<').ok_or_else(err)?;
        let metric = match metric.trim().to_ascii_lowercase().as_str() {
            "mean" | "avg" => SloMetric::Mean,
            "p50" | "median" => SloMetric::P50,
            "p90" => SloMetric::P90,
            "p95" => SloMetric::P95,
            "p99" => SloMetric::P99,
            "p999" | "p99.9" => SloMetric::P999,
            "max" => SloMetric::Max,
            _ => return Err(err()),
        };
        let limit = limit.trim().trim_start_matches('=').trim();
        let limit = parse_duration(&limit.replace("µs", "us")).map_err(|_| err())?;
        if limit.is_zero() {
            return Err(err());
        }
        Ok(Slo {
            metric,
            limit: limit.into(),
        })
    }
}

/// Parses an error limit: `1%`, `0.5 %`, or a fraction `0.01`.
pub fn parse_error_limit(s: &str) -> Result<f64, StressError> {
    let t = s.trim();
    let share = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| StressError::ErrorLimit(s.to_string()))?;
    if !(0.0..=1.0).contains(&share) {
        return Err(StressError::ErrorLimit(s.to_string()));
    }
    Ok(share)
}

/// What a stress run does.
#[derive(Clone, Debug, PartialEq)]
pub struct StressOptions {
    /// Rows, seed, warm-up and per-level ops or duration (default
    /// [`defaults::LEVEL_DURATION`]); `threads` is the first level
    /// (default [`defaults::START_THREADS`]).
    pub base: RunOptions,
    /// The objective.
    pub slo: Slo,
    /// Share of failed operations a level may have (default 1 %).
    pub max_error_rate: f64,
    /// Most threads (default [`defaults::MAX_THREADS`]).
    pub max_threads: usize,
    /// Most levels (default [`defaults::MAX_LEVELS`]).
    pub max_levels: usize,
}

/// One level of the stress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StressLevel {
    /// Worker threads.
    pub threads: usize,
    /// Whether the objective and the error limit held.
    pub held: bool,
    /// Why it broke.
    pub broke_because: Option<String>,
    /// The measured run.
    pub bench: BenchResult,
}

/// The check after the stress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// Threads (the first level's).
    pub threads: usize,
    /// p99 of the first level, before the stress.
    pub p99_before: Nanos,
    /// p99 now.
    pub p99_after: Nanos,
    /// `p99_after ÷ p99_before`.
    pub ratio: f64,
    /// Errors now.
    pub errors: u64,
    /// Ratio within [`defaults::RECOVERY_FACTOR`] and no errors.
    pub recovered: bool,
    /// The measured run.
    pub bench: BenchResult,
}

impl Recovery {
    /// The recovery check of `bench`, measured at `threads` after the
    /// stress, against the p99 measured at that level before it: recovered
    /// when p99 is within [`defaults::RECOVERY_FACTOR`] of it and nothing
    /// failed.
    pub fn after(threads: usize, p99_before: Nanos, bench: BenchResult) -> Recovery {
        let p99_after = bench.latency.p99;
        let ratio = p99_after.0 as f64 / p99_before.0.max(1) as f64;
        Recovery {
            threads,
            p99_before,
            p99_after,
            ratio,
            errors: bench.errors,
            recovered: ratio <= defaults::RECOVERY_FACTOR && bench.errors == 0,
            bench,
        }
    }
}

/// The result of a stress run: what `stress.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StressResult {
    /// [`STRESS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// The objective.
    pub slo: Slo,
    /// The error limit (share).
    pub max_error_rate: f64,
    /// Logical cores available.
    pub cores: usize,
    /// The levels run, in order.
    pub levels: Vec<StressLevel>,
    /// Threads of the last level that held before the first break: the
    /// breaking point (`None` if even the first level broke).
    pub last_held: Option<usize>,
    /// Threads of the first level that broke (`None` if none did within the bounds).
    pub first_broke: Option<usize>,
    /// The recovery check.
    pub recovery: Recovery,
}

/// Why a level broke, if it did.
pub fn verdict(bench: &BenchResult, slo: &Slo, max_error_rate: f64) -> Option<String> {
    let value = slo.metric.of(&bench.latency);
    if bench.error_rate > max_error_rate {
        Some(format!(
            "errors {:.2} % > {:.2} %",
            100.0 * bench.error_rate,
            100.0 * max_error_rate
        ))
    } else if value >= slo.limit {
        Some(format!("{} {} ≥ {}", slo.metric.name(), value, slo.limit))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::fixture::BenchFixture;

    fn bench(p99_us: u64, errors: u64) -> BenchResult {
        let mut b = BenchFixture {
            ops: 100,
            errors,
            elapsed: 1,
            throughput: 1.0,
            ..BenchFixture::default()
        }
        .build();
        b.latency.p99 = Nanos(p99_us * 1000);
        b
    }

    #[test]
    fn recovery_allows_one_and_a_half_times_the_p99_and_no_errors() {
        let before = Nanos(1_000_000);
        let r = Recovery::after(1, before, bench(1500, 0));
        assert!(r.recovered && (r.ratio - 1.5).abs() < 1e-9, "{r:?}");
        assert!(!Recovery::after(1, before, bench(1501, 0)).recovered);
        assert!(!Recovery::after(1, before, bench(900, 1)).recovered);
        assert!(Recovery::after(1, Nanos(0), bench(0, 0)).recovered);
    }

    #[test]
    fn a_level_breaks_on_errors_above_the_limit_whatever_its_latency() {
        let slo: Slo = "p99<5ms".parse().unwrap();
        // 3 % errors, latency well within the objective.
        let b = bench(1000, 3);
        assert_eq!(
            verdict(&b, &slo, 0.01).as_deref(),
            Some("errors 3.00 % > 1.00 %")
        );
        assert_eq!(verdict(&b, &slo, 0.05), None);
        assert_eq!(verdict(&b, &slo, 0.03), None, "the limit itself holds");
        assert!(verdict(&bench(6000, 0), &slo, 0.01)
            .unwrap()
            .starts_with("p99 "));
    }

    #[test]
    fn objectives_parse() {
        let s: Slo = "p99<5ms".parse().unwrap();
        assert_eq!(s.metric, SloMetric::P99);
        assert_eq!(s.limit, Nanos(5_000_000));
        let s: Slo = " p99.9 < 20ms ".parse().unwrap();
        assert_eq!(s.metric, SloMetric::P999);
        let s: Slo = "mean<=300us".parse().unwrap();
        assert_eq!((s.metric, s.limit), (SloMetric::Mean, Nanos(300_000)));
        assert_eq!(s.to_string(), "mean < 300.0 µs");
        for bad in ["p99>5ms", "p42<5ms", "p99<soon", "p99<0ms", ""] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }

    #[test]
    fn error_limits_parse() {
        assert_eq!(parse_error_limit("1%"), Ok(0.01));
        assert_eq!(parse_error_limit("0.5 %"), Ok(0.005));
        assert_eq!(parse_error_limit("0.02"), Ok(0.02));
        assert!(parse_error_limit("lots").is_err());
        assert!(parse_error_limit("150%").is_err());
    }
}
