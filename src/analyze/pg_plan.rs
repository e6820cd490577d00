//! PostgreSQL query plans: the output of `EXPLAIN (FORMAT JSON)` (never
//! `ANALYZE`: the statement is planned, not run) turned into the findings
//! SQLite's `EXPLAIN QUERY PLAN` gives through [`super::sql`]: a full scan
//! ("Seq Scan" on a table over a size threshold, with its filter) and a sort
//! (a "Sort" node over many rows, i.e. no index in that order).
//!
//! Pure: the caller runs `EXPLAIN` (through the service's own pool) and
//! [`TABLE_SIZES_SQL`] for the tables' sizes, and hands the text here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::findings::{self, short_sql, Finding, FindingKind, Severity};

/// Thresholds, defined once.
pub mod defaults {
    /// A Seq Scan on a table of at least this many rows is a finding.
    pub const FULL_SCAN_MIN_ROWS: u64 = 10_000;
    /// A Sort of at least this many rows is a finding.
    pub const SORT_MIN_ROWS: u64 = 1_000;
}

/// The query giving each user table's row count as the planner knows it
/// (`pg_class.reltuples`, kept by autovacuum and `ANALYZE`), as
/// (name, rows) rows for [`TableSizes`].
pub const TABLE_SIZES_SQL: &str = "SELECT c.relname::text, GREATEST(c.reltuples, 0)::bigint \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// The `EXPLAIN (FORMAT JSON)` statement that plans `sql` without running
/// it (never `ANALYZE`, which would run a write), or `None` for what has no
/// plan worth asking for: DDL, transaction control, `SET`, several
/// statements, an `EXPLAIN` already.
pub fn explain_statement(sql: &str) -> Option<String> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let first = sql.split_whitespace().next()?.to_ascii_uppercase();
    let plannable = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE",
    ];
    (plannable.contains(&first.as_str()) && !sql.contains(';'))
        .then(|| format!("EXPLAIN (FORMAT JSON) {sql}"))
}

/// Rows per table, by name.
pub type TableSizes = BTreeMap<String, u64>;

/// Output that is not `EXPLAIN (FORMAT JSON)`'s.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not JSON at all.
    #[error("not EXPLAIN (FORMAT JSON) output: {0}")]
    NotJson(String),
    /// JSON without a `[{"Plan": {…}}]`.
    #[error("EXPLAIN (FORMAT JSON) output has no \"Plan\" object")]
    NoPlan,
}

/// One node of a plan, with what the findings need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanNode {
    /// "Seq Scan", "Index Scan", "Sort", "Limit", "Nested Loop"…
    pub node_type: String,
    /// The table a scan reads.
    pub relation: Option<String>,
    /// The index a scan uses.
    pub index: Option<String>,
    /// The scan's filter, literals stripped (`(status = ?::text)`).
    pub filter: Option<String>,
    /// A sort's keys.
    pub sort_key: Vec<String>,
    /// Rows the planner expects out of the node.
    pub plan_rows: f64,
    /// Planner's total cost.
    pub total_cost: f64,
    /// A parallel scan ("Parallel Seq Scan").
    pub parallel: bool,
    /// Input nodes.
    pub children: Vec<PlanNode>,
}

/// Parses `EXPLAIN (FORMAT JSON)` output (`[{"Plan": {…}}]`).
pub fn parse(json: &str) -> Result<PlanNode, PlanError> {
    let v: Value = serde_json::from_str(json).map_err(|e| PlanError::NotJson(e.to_string()))?;
    // psql and most drivers give the array; a driver may give its element.
    let top = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
    top.get("Plan").map(node).ok_or(PlanError::NoPlan)
}

fn node(v: &Value) -> PlanNode {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    PlanNode {
        node_type: text("Node Type").unwrap_or_default(),
        relation: text("Relation Name"),
        index: text("Index Name"),
        filter: text("Filter").map(|f| strip_literals(&f)),
        sort_key: v
            .get("Sort Key")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        plan_rows: num("Plan Rows"),
        total_cost: num("Total Cost"),
        parallel: v.get("Parallel Aware").and_then(Value::as_bool) == Some(true),
        children: v
            .get("Plans")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(node).collect())
            .unwrap_or_default(),
    }
}

/// A plan's expression with its string and number literals as `?`
/// (`(status = 'paid'::text)` → `(status = ?::text)`): plans carry the
/// values a statement ran with, and those must not reach a report.
pub fn strip_literals(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A string literal, with '' as an escaped quote.
            while let Some(n) = chars.next() {
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        continue;
                    }
                    break;
                }
            }
            out.push('?');
        } else if c.is_ascii_digit()
            && !out
                .chars()
                .last()
                .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$')
        {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.' || *n == 'e')
            {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl PlanNode {
    /// This node and all below it, depth first.
    pub fn walk(&self) -> Vec<&PlanNode> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.walk());
        }
        out
    }

    /// "Seq Scan on orders", "Index Scan on customers using customers_pkey", "Sort (total_cents DESC)".
    pub fn label(&self) -> String {
        let mut s = if self.parallel && !self.node_type.starts_with("Parallel") {
            format!("Parallel {}", self.node_type)
        } else {
            self.node_type.clone()
        };
        if let Some(r) = &self.relation {
            s += &format!(" on {r}");
        }
        if let Some(i) = &self.index {
            s += &format!(" using {i}");
        }
        if !self.sort_key.is_empty() {
            s += &format!(" ({})", self.sort_key.join(", "));
        }
        if let Some(f) = &self.filter {
            s += &format!(" filter {f}");
        }
        s
    }
}

/// A plan on one line, outermost first: `Limit → Sort (…) → Seq Scan on orders filter …`.
pub fn plan_text(plan: &PlanNode) -> String {
    plan.walk()
        .iter()
        .map(|n| n.label())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// A table read in full.
#[derive(Clone, Debug, PartialEq)]
pub struct FullScan {
    /// The table.
    pub relation: String,
    /// Its rows (from [`TableSizes`], or the planner's lower bound when
    /// the size is unknown).
    pub table_rows: u64,
    /// Whether `table_rows` came from [`TableSizes`].
    pub size_known: bool,
    /// The filter applied to every row, literals stripped.
    pub filter: Option<String>,
    /// Rows the planner expects to keep.
    pub rows_kept: f64,
}

/// Seq Scans on tables of at least `min_rows` rows. A table missing from
/// `sizes` counts with the rows the scan puts out (a lower bound: all of
/// them when there is no filter).
pub fn full_scans(plan: &PlanNode, sizes: &TableSizes, min_rows: u64) -> Vec<FullScan> {
    plan.walk()
        .into_iter()
        .filter(|n| n.node_type == "Seq Scan" || n.node_type == "Parallel Seq Scan")
        .filter_map(|n| {
            let relation = n.relation.clone()?;
            let known = sizes.get(&relation).copied();
            let table_rows = known.unwrap_or(n.plan_rows.max(0.0) as u64);
            (table_rows >= min_rows).then(|| FullScan {
                relation,
                table_rows,
                size_known: known.is_some(),
                filter: n.filter.clone(),
                rows_kept: n.plan_rows,
            })
        })
        .collect()
}

/// A sort the plan does in memory or on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    /// Sort keys as the plan gives them (`total_cents DESC`).
    pub keys: Vec<String>,
    /// Rows sorted.
    pub rows: f64,
    /// The table the sorted rows come from, when one scan feeds it.
    pub relation: Option<String>,
    /// Under a Limit: a top-N sort that still reads every input row.
    pub limited: bool,
}

/// Sorts of at least `min_rows` rows ("Sort" and "Incremental Sort" are
/// both counted; an index in key order avoids either).
pub fn sorts(plan: &PlanNode, min_rows: u64) -> Vec<Sort> {
    fn visit(n: &PlanNode, under_limit: bool, min_rows: u64, out: &mut Vec<Sort>) {
        if n.node_type.ends_with("Sort") && n.plan_rows >= min_rows as f64 {
            let scans: Vec<&PlanNode> = n
                .walk()
                .into_iter()
                .filter(|c| c.relation.is_some())
                .collect();
            out.push(Sort {
                keys: n.sort_key.clone(),
                rows: n.plan_rows,
                relation: match scans.as_slice() {
                    [one] => one.relation.clone(),
                    _ => None,
                },
                limited: under_limit,
            });
        }
        for c in &n.children {
            visit(c, n.node_type == "Limit", min_rows, out);
        }
    }
    let mut out = Vec::new();
    visit(plan, false, min_rows, &mut out);
    out
}

/// A statement with its plan and what is known of its cost.
#[derive(Clone, Debug)]
pub struct PlannedStatement {
    /// Where it runs: the endpoint (`GET /orders/{id}`) or workload.
    pub context: String,
    /// The statement, normalized.
    pub shape: String,
    /// Its plan.
    pub plan: PlanNode,
    /// Runs seen (0 when only planned).
    pub executions: u64,
    /// Share of its context's latency, 0–1 (0 when unknown).
    pub share_of_latency: f64,
}

/// Thresholds of the findings.
#[derive(Clone, Debug)]
pub struct Thresholds {
    /// See [`defaults::FULL_SCAN_MIN_ROWS`].
    pub full_scan_min_rows: u64,
    /// See [`defaults::SORT_MIN_ROWS`].
    pub sort_min_rows: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            full_scan_min_rows: defaults::FULL_SCAN_MIN_ROWS,
            sort_min_rows: defaults::SORT_MIN_ROWS,
        }
    }
}

/// Column names a filter compares (`(status = ?::text)` → `status`),
/// equality comparisons first: the order a B-tree index serves them in.
fn filter_columns(filter: &str) -> Vec<String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let tokens: Vec<&str> = filter
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .collect();
    for w in tokens.windows(2) {
        let op = ["=", "<", ">", "<=", ">=", "<>", "~~", "~~*", "!~~"].contains(&w[1]);
        let col = w[0].rsplit('.').next().unwrap_or(w[0]);
        let ident = col
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"')
            && col.chars().next().is_some_and(|c| !c.is_ascii_digit());
        if op && ident && !out.iter().any(|(_, c)| c == col) {
            out.push((w[1] != "=", col.to_string()));
        }
    }
    // Stable: equality columns first, each group in the filter's order.
    out.sort_by_key(|(range, _)| *range);
    out.into_iter().map(|(_, c)| c).collect()
}

fn scan_hint(scan: &FullScan) -> String {
    let filter = scan.filter.as_deref().unwrap_or("");
    if filter.contains("~~ ?") && !filter.contains("~~ ?::") || filter.contains("~~*") {
        return "a LIKE '%…%' pattern cannot use a B-tree index: use a pg_trgm GIN index or full-text search".into();
    }
    match filter_columns(filter).as_slice() {
        [] => format!(
            "every row of {} is read: add a WHERE on an indexed column, or paginate",
            scan.relation
        ),
        cols => format!(
            "CREATE INDEX ON {} ({}) — equality columns first",
            scan.relation,
            cols.join(", ")
        ),
    }
}

/// Findings of Postgres plans: one per Seq Scan over the size threshold
/// (kind [`FindingKind::FullScan`]) and one per large sort (kind
/// [`FindingKind::TempBtree`], SQLite's name for the same work).
pub fn findings(
    statements: &[PlannedStatement],
    sizes: &TableSizes,
    thresholds: &Thresholds,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in statements {
        let runs = if s.executions > 0 {
            format!(
                "{} runs, {:.0} % of {} latency",
                s.executions,
                100.0 * s.share_of_latency,
                s.context
            )
        } else {
            format!("planned, not measured, in {}", s.context)
        };
        for scan in full_scans(&s.plan, sizes, thresholds.full_scan_min_rows) {
            let size = if scan.size_known {
                format!("{} rows", scan.table_rows)
            } else {
                format!("≥ {} rows", scan.table_rows)
            };
            let mut evidence = vec![format!("plan: {}", plan_text(&s.plan)), runs.clone()];
            if let Some(f) = &scan.filter {
                evidence.push(format!(
                    "filter {f} keeps about {:.0} of {} rows",
                    scan.rows_kept, scan.table_rows
                ));
            }
            out.push(Finding {
                kind: FindingKind::FullScan,
                // A big table read in full is worth a look whatever its
                // share today: it grows with the table.
                severity: findings::severity_for(s.share_of_latency).max(Severity::Warning),
                score: s.share_of_latency,
                workload: s.context.clone(),
                title: format!(
                    "`{}` runs Seq Scan on {} ({size}, no usable index) in {}",
                    short_sql(&s.shape),
                    scan.relation,
                    s.context
                ),
                evidence,
                hint: scan_hint(&scan),
            });
        }
        for sort in sorts(&s.plan, thresholds.sort_min_rows) {
            let table = sort.relation.as_deref().unwrap_or("its input");
            out.push(Finding {
                kind: FindingKind::TempBtree,
                severity: findings::severity_for(s.share_of_latency)
                    .clamp(Severity::Info, Severity::Warning),
                score: s.share_of_latency,
                workload: s.context.clone(),
                title: format!(
                    "`{}` sorts about {:.0} rows of {table} by {}{} in {}",
                    short_sql(&s.shape),
                    sort.rows,
                    sort.keys.join(", "),
                    if sort.limited { " to keep a few" } else { "" },
                    s.context
                ),
                evidence: vec![format!("plan: {}", plan_text(&s.plan)), runs.clone()],
                hint: format!(
                    "an index on {table} whose columns are the filter's equality columns then ({}) lets Postgres read rows in order{}",
                    sort.keys.join(", "),
                    if sort.limited { " and stop at the LIMIT" } else { "" }
                ),
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "pg_plan_tests.rs"]
mod tests;
