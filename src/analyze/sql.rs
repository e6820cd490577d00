//! SQL-level analysis: per normalized statement figures, query plans with
//! full scans and temp B-trees flagged, and N+1 detection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stacks::Folded;
use crate::db::trace::{StatementTally, Tallies};
use crate::measure::BenchResult;
pub use crate::profile::sql::PlanStep;
use crate::units::Nanos;

/// Version of `sql.json`.
pub const SQL_SCHEMA_VERSION: u32 = 1;

/// A statement shape that runs at least this many times per operation is
/// a candidate N+1.
pub const N_PLUS_ONE_MIN_PER_OP: f64 = 10.0;

/// Collapses a statement to its shape: literals and parameters become `?`,
/// IN-lists become `IN (?…)`, white space is folded.
pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let push_space = |out: &mut String| {
        if !out.is_empty() && !out.ends_with(' ') && !out.ends_with('(') {
            out.push(' ');
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            push_space(&mut out);
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        if c == '\'' {
            // A string literal, with '' as an escaped quote.
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push('?');
            continue;
        }
        if c == '?'
            || ((c == ':' || c == '@' || c == '$')
                && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()))
        {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push('?');
            continue;
        }
        let prev_ident = out
            .chars()
            .last()
            .is_some_and(|p| p.is_alphanumeric() || p == '_');
        if c.is_ascii_digit() && !prev_ident {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push('?');
            continue;
        }
        if c == ',' && out.ends_with(' ') {
            out.pop();
        }
        out.push(c);
        i += 1;
    }
    let mut s = out.trim().trim_end_matches(';').trim().to_string();
    // IN (?, ?, ?) → IN (?…)
    while let Some(start) = s.find("(?, ?") {
        let rest = &s[start + 1..];
        let end = rest.find(')').map(|e| start + 1 + e);
        match end {
            Some(end) if s[start + 1..end].split(',').all(|p| p.trim() == "?") => {
                s.replace_range(start..=end, "(?…)");
            }
            _ => break,
        }
    }
    s
}

/// A plan on one line: its steps joined by ` → `.
pub fn plan_text(plan: &[PlanStep]) -> String {
    plan.iter()
        .map(|p| p.detail.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Tables a plan reads in full (`SCAN t` with no index).
pub fn full_scans(plan: &[PlanStep]) -> Vec<String> {
    plan.iter()
        .filter_map(|s| {
            let rest = s.detail.strip_prefix("SCAN ")?;
            let indexed = [
                "USING INDEX",
                "USING COVERING INDEX",
                "USING INTEGER PRIMARY KEY",
                "VIRTUAL TABLE",
                "CONSTANT ROW",
            ]
            .iter()
            .any(|m| rest.contains(m));
            (!indexed).then(|| rest.split_whitespace().next().unwrap_or(rest).to_string())
        })
        .collect()
}

/// What temp B-trees a plan builds (`ORDER BY`, `GROUP BY`, `DISTINCT`).
pub fn temp_btrees(plan: &[PlanStep]) -> Vec<String> {
    plan.iter()
        .filter_map(|s| {
            s.detail
                .strip_prefix("USE TEMP B-TREE FOR ")
                .map(str::to_string)
        })
        .collect()
}

/// The slowest run of a statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowestRun {
    /// Its time.
    pub time: Nanos,
    /// Its SQL with the bound values.
    pub sql: String,
    /// Its plan.
    pub plan: Vec<PlanStep>,
}

/// Figures of one statement shape within one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatementStats {
    /// The normalized statement.
    pub shape: String,
    /// A statement text as the program prepared it.
    pub example: String,
    /// Times it ran.
    pub executions: u64,
    /// Runs per operation.
    pub per_op: f64,
    /// Total time it was active.
    pub total: Nanos,
    /// Mean per run.
    pub mean: Nanos,
    /// 95th percentile per run.
    pub p95: Nanos,
    /// Slowest run.
    pub max: Nanos,
    /// Rows returned.
    pub rows: u64,
    /// Rows per run.
    pub rows_per_exec: f64,
    /// Share of the operation's database time.
    pub share_of_db_time: f64,
    /// Share of the operation's latency (summed over operations).
    pub share_of_latency: f64,
    /// EXPLAIN QUERY PLAN of the statement as prepared (parameters unbound).
    pub plan: Vec<PlanStep>,
    /// The slowest run: its time, its SQL with the values bound, and the
    /// plan SQLite makes for those values (with STAT4 it may differ).
    pub slowest: Option<SlowestRun>,
    /// Tables read in full.
    pub full_scans: Vec<String>,
    /// Temp B-trees built.
    pub temp_btrees: Vec<String>,
    /// Runs that followed a fresh `prepare` (no statement cache hit).
    #[serde(default)]
    pub prepares: u64,
    /// Times SQLite re-prepared it on its own while it ran (a bound value
    /// its plan depends on, or a schema change).
    #[serde(default)]
    pub reprepares: u64,
}

/// An operation's SQL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationSql {
    /// Operation name (the workload's name unless the workload labels its operations).
    pub operation: String,
    /// Statements per operation.
    pub statements_per_op: f64,
    /// Database time per operation.
    pub db_time_per_op: Nanos,
    /// Its statements, most time first.
    pub statements: Vec<StatementStats>,
}

/// A statement shape run many times per operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NPlusOne {
    /// Operation.
    pub operation: String,
    /// The repeated statement.
    pub shape: String,
    /// Runs per operation.
    pub per_op: f64,
    /// The statement whose rows drive the repetition, when one is found:
    /// the classic N+1 (one query, then one per row).
    pub parent: Option<String>,
    /// Share of operation latency spent in the repeated statement.
    pub share_of_latency: f64,
}

/// What `sql.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SqlReport {
    /// [`SQL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload.
    pub workload: String,
    /// Measured operations.
    pub ops: u64,
    /// Statements per operation (all operations).
    pub statements_per_op: f64,
    /// Database time per operation.
    pub db_time_per_op: Nanos,
    /// Share of operation latency spent inside SQLite.
    pub db_time_share: f64,
    /// Per operation.
    pub operations: Vec<OperationSql>,
    /// Repeated statements (N+1 candidates).
    pub n_plus_one: Vec<NPlusOne>,
}

fn stats_for(
    shape: String,
    tallies: &[(&str, &StatementTally)],
    ops: u64,
    op_db_nanos: u64,
    op_latency: f64,
    plans: Plans<'_>,
) -> StatementStats {
    let plan = plans(tallies[0].0);
    let mut merged = StatementTally::default();
    for (_, t) in tallies {
        merged.merge(t);
    }
    let h = &merged.histogram;
    let slowest = merged.slowest.as_ref().map(|(nanos, sql)| SlowestRun {
        time: Nanos(*nanos),
        plan: plans(sql),
        sql: sql.clone(),
    });
    let mut scans = full_scans(&plan);
    let mut btrees = temp_btrees(&plan);
    if let Some(s) = &slowest {
        scans.extend(full_scans(&s.plan));
        btrees.extend(temp_btrees(&s.plan));
    }
    scans.sort();
    scans.dedup();
    btrees.sort();
    btrees.dedup();
    StatementStats {
        example: tallies
            .first()
            .map(|(s, _)| s.to_string())
            .unwrap_or_default(),
        executions: merged.executions,
        per_op: merged.executions as f64 / ops.max(1) as f64,
        total: Nanos(merged.nanos),
        mean: Nanos(merged.nanos / merged.executions.max(1)),
        p95: Nanos(if h.is_empty() {
            0
        } else {
            h.value_at_quantile(0.95)
        }),
        max: Nanos(if h.is_empty() { 0 } else { h.max() }),
        rows: merged.rows,
        rows_per_exec: merged.rows as f64 / merged.executions.max(1) as f64,
        share_of_db_time: merged.nanos as f64 / op_db_nanos.max(1) as f64,
        share_of_latency: if op_latency > 0.0 {
            (merged.nanos as f64 / op_latency).min(1.0)
        } else {
            0.0
        },
        full_scans: scans,
        temp_btrees: btrees,
        prepares: merged.prepares,
        reprepares: merged.reprepares,
        plan,
        slowest,
        shape,
    }
}

/// The query plan of a statement text (empty when it has none).
pub type Plans<'a> = &'a dyn Fn(&str) -> Vec<PlanStep>;

/// Builds the SQL report of a measured run from its statement tallies and
/// the query plans of its statements (`plans`, captured by
/// [`crate::profile::sql::Planner`]).
pub fn analyze(bench: &BenchResult, tallies: &Tallies, plans: Plans<'_>) -> SqlReport {
    let ops = bench.ops.max(1);
    let latency_total = bench.latency.mean.0 as f64 * bench.ops as f64;
    let mut operations = Vec::new();
    let mut all_statements = 0u64;
    let mut all_nanos = 0u64;
    let mut labels: Vec<&&str> = tallies.keys().collect();
    labels.sort();
    for label in labels {
        let by_sql = &tallies[*label];
        let op_nanos: u64 = by_sql.values().map(|t| t.nanos).sum();
        let op_execs: u64 = by_sql.values().map(|t| t.executions).sum();
        all_statements += op_execs;
        all_nanos += op_nanos;
        let mut shapes: BTreeMap<String, Vec<(&str, &StatementTally)>> = BTreeMap::new();
        for (sql, t) in by_sql {
            shapes.entry(normalize(sql)).or_default().push((sql, t));
        }
        let mut statements: Vec<StatementStats> = shapes
            .into_iter()
            .map(|(shape, mut ts)| {
                ts.sort_by(|a, b| a.0.cmp(b.0));
                stats_for(shape, &ts, ops, op_nanos, latency_total, plans)
            })
            .collect();
        statements.sort_by(|a, b| b.total.cmp(&a.total).then(a.shape.cmp(&b.shape)));
        operations.push(OperationSql {
            operation: if label.is_empty() {
                bench.workload.clone()
            } else {
                label.to_string()
            },
            statements_per_op: op_execs as f64 / ops as f64,
            db_time_per_op: Nanos(op_nanos / ops),
            statements,
        });
    }
    let n_plus_one = find_n_plus_one(&operations);
    SqlReport {
        schema_version: SQL_SCHEMA_VERSION,
        workload: bench.workload.clone(),
        ops: bench.ops,
        statements_per_op: all_statements as f64 / ops as f64,
        db_time_per_op: Nanos(all_nanos / ops),
        db_time_share: if latency_total > 0.0 {
            (all_nanos as f64 / latency_total).min(1.0)
        } else {
            0.0
        },
        operations,
        n_plus_one,
    }
}

fn find_n_plus_one(operations: &[OperationSql]) -> Vec<NPlusOne> {
    let mut found = Vec::new();
    for op in operations {
        for s in op
            .statements
            .iter()
            .filter(|s| s.per_op >= N_PLUS_ONE_MIN_PER_OP)
        {
            // The parent: a statement run about once per operation whose
            // rows number about as many as the repetitions.
            let parent = op
                .statements
                .iter()
                .filter(|p| p.shape != s.shape && p.per_op <= 2.0)
                .find(|p| p.rows_per_exec * p.per_op >= 0.5 * s.per_op)
                .map(|p| p.shape.clone());
            found.push(NPlusOne {
                operation: op.operation.clone(),
                shape: s.shape.clone(),
                per_op: s.per_op,
                parent,
                share_of_latency: s.share_of_latency,
            });
        }
    }
    found
}

/// Folded stacks `workload;operation;statement;plan` weighted by
/// microseconds of database time. SQLite does not time plan steps, so the
/// plan is one frame (steps joined by ` → `), not a split of the time.
pub fn folded(report: &SqlReport) -> Folded {
    let clean = |s: &str| s.replace(';', ",").replace('\n', " ");
    let mut stacks = Folded::new();
    for op in &report.operations {
        for s in &op.statements {
            let micros = s.total.0 / 1000;
            if micros == 0 {
                continue;
            }
            let plan = if s.plan.is_empty() {
                "(no plan)".to_string()
            } else {
                plan_text(&s.plan)
            };
            let stack = format!(
                "{};{};{};{}",
                clean(&report.workload),
                clean(&op.operation),
                clean(&s.shape),
                clean(&plan)
            );
            *stacks.entry(stack).or_default() += micros;
        }
    }
    stacks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_literals_and_in_lists() {
        assert_eq!(
            normalize("SELECT * FROM t WHERE a = 'x''y' AND b = 42 AND c IN (?, ?, ?)"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c IN (?…)"
        );
        assert_eq!(
            normalize("SELECT a1 FROM t2 WHERE id = ?1\n  LIMIT :n;"),
            "SELECT a1 FROM t2 WHERE id = ? LIMIT ?"
        );
        assert_eq!(
            normalize("SELECT x FROM t WHERE id IN (?, ?)"),
            normalize("SELECT x FROM t WHERE id IN (?, ?, ?, ?, ?)")
        );
    }

    #[test]
    fn plans_with_scan_are_flagged_and_index_searches_are_not() {
        let step = |detail: &str| PlanStep {
            id: 1,
            parent: 0,
            detail: detail.to_string(),
        };
        let scan = [step("SCAN emails")];
        assert_eq!(full_scans(&scan), vec!["emails".to_string()]);
        let search = [step("SEARCH emails USING INDEX s (sender=?)")];
        assert!(full_scans(&search).is_empty());
        let covering = [step("SCAN emails USING COVERING INDEX s")];
        assert!(full_scans(&covering).is_empty());
        let random = [step("SCAN emails"), step("USE TEMP B-TREE FOR ORDER BY")];
        assert_eq!(full_scans(&random), vec!["emails".to_string()]);
        assert_eq!(temp_btrees(&random), vec!["ORDER BY".to_string()]);
    }
}
