//! Predicted gains where no mechanical fix exists to try: an N+1, a table
//! scan that no index can serve (`ORDER BY RANDOM()`, `LIKE '%…%'`), a leak,
//! a hot function of the program's own. Each prediction is read from the
//! slow run's own profile, nothing is run:
//!
//! - **N+1**: batching removes the repeated statements' *per-statement*
//!   work (taking and dropping the read lock, resetting, the statement-cache
//!   lookup, the pooled connection taken and given back around each:
//!   [`statement_work`] in the CPU profile); the rows they read are
//!   still read. Without a CPU profile, the repeated statements' measured
//!   time, an upper bound.
//! - **scan**: the scanning statement's share of latency goes; what replaces
//!   it reads only the rows it returns (not counted).
//! - **leak**: bounding the site takes its bytes retained per operation to 0.
//! - **hot function**: at most its self share of CPU, were it free.
//!
//! The predictor is checked against the built-in slow/fast twins by
//! `scripts/bench-predict.sh` (BENCHMARKS.md).

use serde::{Deserialize, Serialize};

use super::cpu::CpuReport;
use super::findings::{Finding, FindingKind};
use super::leaks::LeakReport;
use super::sql::SqlReport;
use crate::profile::cpu::CpuProfile;
use crate::units::Nanos;

/// A predicted change of one figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The figure (`mean` latency per operation, `bytes retained per op`).
    pub metric: String,
    /// Its value in the run, when known (nanoseconds or bytes).
    #[serde(default)]
    pub before: Option<f64>,
    /// Predicted relative change, e.g. −0.42.
    pub change: f64,
    /// How the figure was predicted, in one line.
    pub basis: String,
}

impl Prediction {
    /// "predicted: mean −42 % (0.283 ms → 0.164 ms; basis)".
    pub fn line(&self) -> String {
        let values = match self.before {
            Some(b) if self.metric == "mean" => format!(
                "{:.3} ms → {:.3} ms; ",
                b / 1e6,
                b * (1.0 + self.change) / 1e6
            ),
            Some(b) => format!("{b:.0} → {:.0}; ", b * (1.0 + self.change)),
            None => String::new(),
        };
        format!(
            "predicted: {} {}{:.0} % ({values}{})",
            self.metric,
            if self.change < 0.0 { "−" } else { "+" },
            100.0 * self.change.abs(),
            self.basis
        )
    }
}

/// Work SQLite and rusqlite do once per statement run, whatever its rows:
/// the read lock taken and dropped around an autocommit statement, the
/// reset and halt, the statement-cache lookup; and the connection pool's
/// checkout and return (r2d2's `Pool::get`, the `PooledConnection` given
/// back on drop), which code that runs each statement through a method of
/// its own does per statement. Binding is per value and stays with a
/// batch, so it is not counted. The read lock's frames are the read-lock
/// cause's ([`super::causes::is_read_lock`]).
fn is_statement_work(f: &str) -> bool {
    super::causes::is_read_lock(f)
        || matches!(
            f,
            "sqlite3BtreeBeginTrans"
                | "sqlite3_reset"
                | "sqlite3VdbeReset"
                | "sqlite3VdbeHalt"
                | "sqlite3VdbeMakeReady"
        )
        || f.contains("StatementCache")
        || f.ends_with("::prepare_cached")
        || f.contains("r2d2::Pool")
}

/// Samples whose stack shows per-statement work ([`is_statement_work`]).
pub fn statement_work(profile: &CpuProfile) -> u64 {
    profile
        .stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| is_statement_work(&f.function)))
        .map(|s| s.samples)
        .sum()
}

/// Mean operation latency the SQL report implies (its database time over
/// the share of latency inside SQLite).
fn sql_latency(sql: &SqlReport) -> Option<f64> {
    (sql.db_time_share > 0.0).then(|| sql.db_time_per_op.0 as f64 / sql.db_time_share)
}

fn micros(n: Nanos) -> String {
    format!("{:.1} µs", n.0 as f64 / 1e3)
}

/// The prediction for an N+1 finding: batching the repeated statement.
fn n_plus_one(sql: &SqlReport, cpu: Option<&CpuReport>, mean: Option<f64>) -> Option<Prediction> {
    let n = sql
        .n_plus_one
        .iter()
        .filter(|n| n.parent.is_some())
        .max_by(|a, b| a.per_op.total_cmp(&b.per_op))?;
    let op = sql.operations.iter().find(|o| o.operation == n.operation)?;
    let stmt = op.statements.iter().find(|s| s.shape == n.shape)?;
    let removed = (n.per_op - 1.0).max(0.0);
    let all = op.statements_per_op.max(n.per_op).max(1.0);
    let cpu = cpu.filter(|c| c.samples >= super::findings::CPU_FINDING_MIN_SAMPLES);
    let (change, basis) = match cpu {
        Some(c) => {
            let share = c.statement_work as f64 / c.samples as f64;
            let change = -share * removed / all;
            let per_stmt = mean.map(|m| Nanos((-change * m / removed.max(1.0)) as u64));
            (
                change,
                format!(
                    "removing {removed:.0} of {all:.0} statements per operation{}: their per-statement work (read lock, reset, statement-cache lookup, pool checkout) is {:.0} % of {} CPU samples; the rows they read ({} per run) are still read",
                    per_stmt.map(|p| format!(" × {} each", micros(p))).unwrap_or_default(),
                    100.0 * share,
                    c.samples,
                    stmt.rows_per_exec
                ),
            )
        }
        None => {
            let latency = mean.or_else(|| sql_latency(sql))?;
            let change = -(removed * stmt.mean.0 as f64 / latency).min(1.0);
            (
                change,
                format!(
                    "removing {removed:.0} statements × {} (their measured time; an upper bound: the rows they read are still read)",
                    micros(stmt.mean)
                ),
            )
        }
    };
    Some(Prediction {
        metric: "mean".into(),
        before: mean,
        change,
        basis,
    })
}

/// The prediction for a full-scan finding: the scan's time goes.
fn scan(sql: &SqlReport, title: &str, mean: Option<f64>) -> Option<Prediction> {
    let stmt = sql
        .operations
        .iter()
        .flat_map(|o| o.statements.iter())
        .filter(|s| !s.full_scans.is_empty())
        .find(|s| title.contains(&super::findings::short_sql(&s.shape)))?;
    Some(Prediction {
        metric: "mean".into(),
        before: mean,
        change: -stmt.share_of_latency.min(1.0),
        basis: format!(
            "the scan's {} per run × {:.1} runs per operation go; a lookup by key or index reads only the {:.0} rows it returns (not counted)",
            micros(stmt.mean),
            stmt.per_op,
            stmt.rows_per_exec
        ),
    })
}

/// The prediction for a leak finding: bounding the site. With one leaking
/// site, the live heap's whole slope goes (the container that holds what
/// the site keeps grows with it: a map's table); with several, the site's.
fn leak(leaks: &LeakReport, title: &str) -> Option<Prediction> {
    let site = leaks.leaks.iter().find(|s| title.contains(&s.site))?;
    let (before, basis) = if leaks.leaks.len() == 1
        && leaks.total_slope_bytes_per_op > site.slope_bytes_per_op
    {
        (
            leaks.total_slope_bytes_per_op,
            format!(
                "bounding or releasing what {} keeps takes the live heap's growth to 0: {:.0} B/op at the site, {:.0} B/op in all (what holds its entries grows with it)",
                site.site, site.slope_bytes_per_op, leaks.total_slope_bytes_per_op
            ),
        )
    } else {
        (
            site.slope_bytes_per_op,
            format!(
                "bounding or releasing what {} keeps takes its {:.0} B/op to 0",
                site.site, site.slope_bytes_per_op
            ),
        )
    };
    Some(Prediction {
        metric: "bytes retained per op".into(),
        before: Some(before),
        change: -1.0,
        basis,
    })
}

/// The prediction for a hot function of the program's own: at most its
/// self share, were it free.
fn hot_function(cpu: &CpuReport, title: &str, mean: Option<f64>) -> Option<Prediction> {
    let f = cpu
        .top_self
        .iter()
        .find(|f| title.starts_with(&format!("{} holds", f.function)))?;
    Some(Prediction {
        metric: "mean".into(),
        before: mean,
        change: -f.percent / 100.0,
        basis: format!(
            "at most, were {} free: its self share of {} CPU samples",
            f.function, cpu.samples
        ),
    })
}

/// The prediction for one finding, from the run's analyses (whichever are
/// there); `None` for findings this predictor does not read.
pub fn for_finding(
    f: &Finding,
    sql: Option<&SqlReport>,
    cpu: Option<&CpuReport>,
    leaks: Option<&LeakReport>,
    mean: Option<Nanos>,
) -> Option<Prediction> {
    let mean = mean.map(|m| m.0 as f64).filter(|m| *m > 0.0);
    match f.kind {
        FindingKind::NPlusOne => n_plus_one(sql?, cpu, mean),
        FindingKind::FullScan => scan(sql?, &f.title, mean),
        FindingKind::Leak => leak(leaks?, &f.title),
        FindingKind::CpuHotspot => hot_function(cpu?, &f.title, mean),
        _ => None,
    }
}

#[cfg(test)]
#[path = "predict_tests.rs"]
mod tests;
