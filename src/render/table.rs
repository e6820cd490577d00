//! Human-readable text: tables (one helper, [`new_table`]) and the short
//! summaries commands print.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Table};

use crate::analyze::alloc::{AllocSummary, SiteSummary};
use crate::analyze::findings::Findings;
use crate::analyze::leaks::LeakReport;
use crate::analyze::sql::SqlReport;
use crate::measure::breakdown::Part;
use crate::measure::BenchResult;
use crate::units::{Bytes, Nanos};

/// A new table in profkit's style: the one table helper every text
/// table of the crate is drawn with.
pub fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t
}

/// A right-aligned cell, for numbers.
pub fn right<T: ToString>(v: T) -> Cell {
    Cell::new(v.to_string()).set_alignment(CellAlignment::Right)
}

/// One run as a two-column table: measure and value.
pub fn bench_table(r: &BenchResult) -> String {
    let mut t = new_table();
    t.set_header(vec![Cell::new(&r.workload), Cell::new("")]);
    let stop = r.plan.stop.to_string();
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), right(v)]);
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
    if let Some(b) = r.breakdown.as_ref().filter(|b| b.ops > 0) {
        for part in Part::ALL {
            if (part == Part::RunQueue && !b.run_queue_measured) || !b.has(part) {
                continue;
            }
            row(
                &format!("latency: {}", part.label()),
                format!("{} / op ({:.0} %)", b.per_op(part), 100.0 * b.share(part)),
            );
        }
        if let Some(p) = &b.polled {
            let ops = b.ops.max(1);
            row(
                "latency: polled (busy)",
                format!(
                    "{} / op ({:.0} %), {:.1} polls / op, longest poll {}, {} in flight",
                    Nanos(p.busy.0 / ops),
                    100.0 * p.busy.0 as f64 / b.total.0.max(1) as f64,
                    p.polls as f64 / ops as f64,
                    p.longest,
                    p.in_flight
                ),
            );
        }
    }
    if r.instrumented {
        row(
            "instrumented",
            "SQL trace hook on (--trace-sql): latencies include its cost".to_string(),
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

/// The share of latency spent waiting and its largest part: `76 % lock`.
fn waiting(r: &BenchResult) -> String {
    match &r.breakdown {
        Some(b) if b.ops > 0 => {
            let (part, _) = b.main_wait();
            let name = match part {
                Part::PoolWait => "pool",
                Part::LockWait => "lock",
                _ => "cpu",
            };
            format!("{:.0} % {name}", 100.0 * b.waiting_share())
        }
        _ => "-".into(),
    }
}

/// Several runs, one row each.
pub fn summary_table(results: &[BenchResult]) -> String {
    let mut t = new_table();
    t.set_header(vec![
        "workload", "ops", "ops/s", "p50", "p95", "p99", "max", "errors", "sql/op", "waiting",
        "peak rss",
    ]);
    for r in results {
        let sql = r
            .sql
            .map(|s| format!("{:.1}", s.per_op))
            .unwrap_or_else(|| "-".into());
        t.add_row(vec![
            Cell::new(&r.workload),
            right(r.ops),
            right(format!("{:.0}", r.throughput.0)),
            right(r.latency.p50),
            right(r.latency.p95),
            right(r.latency.p99),
            right(r.latency.max),
            right(r.errors),
            right(sql),
            right(waiting(r)),
            right(r.memory.peak_rss),
        ]);
    }
    t.to_string()
}

/// The statements of a SQL report, most time first.
pub fn sql_table(report: &SqlReport, top: usize) -> String {
    let mut t = new_table();
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
            right(format!("{:.1}", s.per_op)),
            right(s.mean),
            right(s.p95),
            right(format!("{:.1}", s.rows_per_exec)),
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
/// A human summary of an [`AllocSummary`] (a few lines per list).
pub fn alloc_text(s: &AllocSummary, top: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = |us: u64| us as f64 / 1e6;
    let _ = writeln!(
        out,
        "allocated  {} in {} blocks over {:.2} s ({} by SQLite)",
        s.total_bytes,
        s.total_blocks,
        secs(s.duration_us),
        s.sqlite_bytes
    );
    let _ = writeln!(
        out,
        "peak live  {} in {} blocks (t-gmax){}",
        s.peak_bytes,
        s.peak_blocks,
        s.peak_at_us
            .map(|t| format!(" at {:.2} s", secs(t)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "live @end  {} in {} blocks (t-end)",
        s.end_bytes, s.end_blocks
    );
    let mut list = |title: &str, sites: &[SiteSummary], figure: &dyn Fn(&SiteSummary) -> String| {
        if sites.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title}:");
        for site in sites.iter().take(top) {
            let _ = writeln!(out, "  {:>12}  {}", figure(site), site.stack.join(" ← "));
        }
    };
    list("top sites by bytes allocated", &s.top_by_bytes, &|x| {
        x.total_bytes.to_string()
    });
    list("top sites by bytes at peak", &s.top_by_peak, &|x| {
        x.peak_bytes.to_string()
    });
    list("top sites by blocks", &s.top_by_blocks, &|x| {
        format!("{} blk", x.total_blocks)
    });
    list(
        "short-lived hot spots (many blocks freed quickly: reuse candidates)",
        &s.short_lived,
        &|x| {
            format!(
                "{} × {:.0} B, {:.1} µs",
                x.total_blocks, x.avg_block, x.avg_lifetime_us
            )
        },
    );
    out
}

/// A human rendering of a leak report.
pub fn leak_text(r: &LeakReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if !r.ops.is_empty() {
        let _ = writeln!(
            out,
            "{}: live bytes at the end after {} ops (+{} warm-up): {} → total slope {:.1} B/op (R² {:.2})",
            r.workload,
            r.ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(" / "),
            r.warmup_ops,
            r.total_live_end.iter().map(|b| Bytes(*b).to_string()).collect::<Vec<_>>().join(" / "),
            r.total_slope_bytes_per_op,
            r.total_r2
        );
        for s in &r.leaks {
            let _ = writeln!(
                out,
                "  growing {:>8.1} B/op  R² {:.2}  +{}  {}",
                s.slope_bytes_per_op,
                s.r2,
                s.growth,
                s.stack.join(" ← ")
            );
        }
        for s in &r.bounded {
            let _ = writeln!(
                out,
                "  bounded {:>8.1} B/op  +{}  {}: {}",
                s.slope_bytes_per_op,
                s.growth,
                s.bounded_by.as_deref().unwrap_or("bounded"),
                s.stack.join(" ← ")
            );
        }
        let _ = writeln!(out, "{}", r.verdict);
    }
    if let Some(s) = &r.soak {
        let _ = writeln!(out, "soak: {}", s.verdict);
    }
    out
}
