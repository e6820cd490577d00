//! Human-readable tables.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Table};

use crate::analyze::findings::Findings;
use crate::analyze::sql::SqlReport;
use crate::measure::{BenchResult, Stop};

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t
}

/// One run as a two-column table: measure and value.
pub fn bench_table(r: &BenchResult) -> String {
    let mut t = table();
    t.set_header(vec![Cell::new(&r.workload), Cell::new("")]);
    let stop = match r.plan.stop {
        Stop::Ops(n) => format!("{n} ops"),
        Stop::Duration(d) => format!("{d}"),
    };
    let mut row = |k: &str, v: String| {
        t.add_row(vec![
            Cell::new(k),
            Cell::new(v).set_alignment(CellAlignment::Right),
        ]);
    };
    row(
        "parameters",
        format!(
            "{} rows, {} threads, {stop}, seed {}",
            r.plan.rows, r.plan.threads, r.plan.seed
        ),
    );
    row("operations", format!("{} in {}", r.ops, r.elapsed));
    row("throughput", r.throughput.to_string());
    row(
        "errors",
        format!("{} ({:.2} %)", r.errors, 100.0 * r.error_rate),
    );
    let l = &r.latency;
    row("latency mean ± sd", format!("{} ± {}", l.mean, l.stdev));
    row("min / max", format!("{} / {}", l.min, l.max));
    row(
        "p50 / p90 / p95",
        format!("{} / {} / {}", l.p50, l.p90, l.p95),
    );
    row("p99 / p99.9", format!("{} / {}", l.p99, l.p999));
    row(
        "cpu (user + sys)",
        format!(
            "{} + {} = {:.2} cores ({:.0} % of machine)",
            r.cpu.user, r.cpu.system, r.cpu.cores_busy, r.cpu.percent_of_machine
        ),
    );
    row(
        "peak rss / at end",
        format!("{} / {}", r.memory.peak_rss, r.memory.rss_end),
    );
    if let Some(p) = &r.pool {
        row(
            "pool acquire mean / max",
            format!(
                "{} / {} ({} acquires, {} timeouts)",
                p.mean_wait, p.max_wait, p.acquires, p.timeouts
            ),
        );
    }
    if let Some(s) = &r.sql {
        row(
            "sql statements / op",
            format!("{:.2} ({} total)", s.per_op, s.statements),
        );
        row(
            "time inside sqlite",
            format!(
                "{} ({:.0} % of latency)",
                s.db_time,
                100.0 * s.db_time_share
            ),
        );
    }
    for (k, v) in &r.metrics {
        let shown = if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{v:.0}")
        } else {
            format!("{v:.4}")
        };
        row(k, shown);
    }
    if let Some(e) = &r.first_error {
        row("first error", e.clone());
    }
    t.to_string()
}

/// Several runs, one row each.
pub fn summary_table(results: &[BenchResult]) -> String {
    let mut t = table();
    t.set_header(vec![
        "workload", "ops", "ops/s", "p50", "p95", "p99", "max", "errors", "sql/op", "peak rss",
    ]);
    for r in results {
        let sql = r
            .sql
            .map(|s| format!("{:.1}", s.per_op))
            .unwrap_or_else(|| "-".into());
        t.add_row(vec![
            Cell::new(&r.workload),
            Cell::new(r.ops).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.0}", r.throughput.0)).set_alignment(CellAlignment::Right),
            Cell::new(r.latency.p50).set_alignment(CellAlignment::Right),
            Cell::new(r.latency.p95).set_alignment(CellAlignment::Right),
            Cell::new(r.latency.p99).set_alignment(CellAlignment::Right),
            Cell::new(r.latency.max).set_alignment(CellAlignment::Right),
            Cell::new(r.errors).set_alignment(CellAlignment::Right),
            Cell::new(sql).set_alignment(CellAlignment::Right),
            Cell::new(r.memory.peak_rss).set_alignment(CellAlignment::Right),
        ]);
    }
    t.to_string()
}

/// The statements of a SQL report, most time first.
pub fn sql_table(report: &SqlReport, top: usize) -> String {
    let mut t = table();
    t.set_header(vec![
        "operation",
        "statement",
        "runs/op",
        "mean",
        "p95",
        "rows/run",
        "% latency",
        "plan",
    ]);
    let mut rows: Vec<_> = report
        .operations
        .iter()
        .flat_map(|op| op.statements.iter().map(move |s| (op, s)))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.total));
    for (op, s) in rows.into_iter().take(top) {
        let mut plan = crate::analyze::sql::plan_text(&s.plan);
        if !s.full_scans.is_empty() {
            plan.push_str("  [FULL SCAN]");
        }
        t.add_row(vec![
            Cell::new(&op.operation),
            Cell::new(crate::analyze::findings::short_sql(&s.shape)),
            Cell::new(format!("{:.1}", s.per_op)).set_alignment(CellAlignment::Right),
            Cell::new(s.mean).set_alignment(CellAlignment::Right),
            Cell::new(s.p95).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", s.rows_per_exec)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.0}", 100.0 * s.share_of_latency))
                .set_alignment(CellAlignment::Right),
            Cell::new(plan),
        ]);
    }
    format!(
        "{}\n{:.1} statements and {} of database time per operation ({:.0} % of latency inside SQLite)",
        t,
        report.statements_per_op,
        report.db_time_per_op,
        100.0 * report.db_time_share
    )
}

/// Findings as a numbered list, most important first.
pub fn findings_text(findings: &Findings) -> String {
    if findings.findings.is_empty() {
        return format!("{}: no findings\n", findings.workload);
    }
    let mut out = format!("findings for {}:\n", findings.workload);
    for (i, f) in findings.findings.iter().enumerate() {
        out.push_str(&format!("{:>2}. [{:?}] {}\n", i + 1, f.severity, f.title));
        for e in &f.evidence {
            out.push_str(&format!("      {e}\n"));
        }
        out.push_str(&format!("      fix: {}\n", f.hint));
    }
    out
}
