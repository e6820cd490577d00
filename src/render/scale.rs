//! Tables of load runs, sweeps and stress runs.

use comfy_table::Cell;

use super::table::{new_table as table, right};

use crate::analyze::scaling::{cost_per_op, SweepKind, SweepResult};
use crate::analyze::stress::StressResult;
use crate::measure::open_loop::LoadResult;
use crate::measure::LatencySummary;

/// An open-loop run: the schedule (target and achieved rate, lag,
/// backlog), then corrected and uncorrected percentiles side by side.
pub fn load_table(r: &LoadResult) -> String {
    let stop = r.plan.stop.to_string();
    let mut head = table();
    head.set_header(vec![
        Cell::new(format!("{} (open loop)", r.workload)),
        Cell::new(""),
    ]);
    let mut row = |k: &str, v: String| {
        head.add_row(vec![Cell::new(k), right(v)]);
    };
    row(
        "parameters",
        format!(
            "{} rows, {} threads, {stop}, seed {}",
            r.plan.rows, r.plan.threads, r.plan.seed
        ),
    );
    row(
        "rate target / achieved",
        format!("{} / {}", r.target_rate, r.achieved_rate),
    );
    row(
        "rate sustained",
        if r.sustained { "yes" } else { "NO" }.to_string(),
    );
    row("lag at end / max", format!("{} / {}", r.lag_end, r.lag_max));
    row("backlog", format!("{} of {} due", r.backlog, r.scheduled));
    row(
        "operations",
        format!(
            "{} in {}, {} errors ({:.2} %)",
            r.ops,
            r.elapsed,
            r.errors,
            100.0 * r.error_rate
        ),
    );
    row(
        "cpu",
        format!(
            "{:.2} cores ({:.0} % of machine)",
            r.cpu.cores_busy, r.cpu.percent_of_machine
        ),
    );
    if let Some(e) = &r.first_error {
        row("first error", e.clone());
    }
    let mut t = table();
    t.set_header(vec![
        Cell::new("latency"),
        right("corrected (from due time)"),
        right("uncorrected (from start)"),
    ]);
    type Pick = fn(&LatencySummary) -> String;
    let rows: [(&str, Pick); 6] = [
        ("mean", |l| l.mean.to_string()),
        ("p50", |l| l.p50.to_string()),
        ("p95", |l| l.p95.to_string()),
        ("p99", |l| l.p99.to_string()),
        ("p99.9", |l| l.p999.to_string()),
        ("max", |l| l.max.to_string()),
    ];
    for (k, pick) in rows {
        t.add_row(vec![
            Cell::new(k),
            right(pick(&r.corrected)),
            right(pick(&r.uncorrected)),
        ]);
    }
    format!("{head}\n{t}")
}

/// A sweep, one row per level; rows sweeps end with the growth fit.
pub fn sweep_table(r: &SweepResult) -> String {
    let mut t = table();
    let first = match r.kind {
        SweepKind::Threads => "threads",
        SweepKind::Rows => "rows",
    };
    let mut header = vec![
        first, "ops", "ops/s", "p50", "p95", "p99", "errors", "cpu %",
    ];
    match r.kind {
        SweepKind::Threads => header.push("efficiency"),
        SweepKind::Rows => header.push("cost/op"),
    }
    t.set_header(header);
    for l in &r.levels {
        let b = &l.bench;
        let last = match r.kind {
            SweepKind::Threads => l
                .efficiency
                .map_or("-".into(), |e| format!("{:.0} %", 100.0 * e)),
            SweepKind::Rows => cost_per_op(b).to_string(),
        };
        t.add_row(vec![
            right(match r.kind {
                SweepKind::Threads => l.threads.to_string(),
                SweepKind::Rows => l.rows.to_string(),
            }),
            right(b.ops),
            right(format!("{:.0}", b.throughput.0)),
            right(b.latency.p50),
            right(b.latency.p95),
            right(b.latency.p99),
            right(b.errors),
            right(format!("{:.0}", b.cpu.percent_of_machine)),
            right(last),
        ]);
    }
    let mut out = t.to_string();
    match r.kind {
        SweepKind::Threads => {
            out.push_str(&format!(
                "\n{} cores available; efficiency = throughput(T) ÷ (T × throughput({})); past {} threads it measures oversubscription",
                r.cores,
                r.levels.first().map_or(1, |l| l.threads),
                r.cores
            ));
            if let Some(c) = &r.scaling_cause {
                out.push_str(&format!("\nwhy: {}", c.summary));
            }
        }
        SweepKind::Rows => match &r.fit {
            Some(f) => out.push_str(&format!(
                "\ngrowth: cost ∝ n^{:.2} (95 % interval {:.2} to {:.2}), {:.2}× over the range; closest model {} (R² {:.3}, normalised residual {:.1} %){}",
                f.exponent,
                f.exponent_low,
                f.exponent_high,
                f.growth,
                f.best,
                f.r_squared,
                100.0 * f.nrmse,
                if f.flagged {
                    " — FLAG: cost grows linearly or worse with the data".to_string()
                } else if let Some(m) = f.relabelled_from {
                    format!(
                        "; sublinear over this range ({m} on a large fixed cost fits the residuals too, but the cost grew {:.2}× for {:.0}× the data)",
                        f.growth,
                        r.levels.last().map_or(1.0, |l| l.rows as f64)
                            / r.levels.first().map_or(1.0, |l| l.rows.max(1) as f64)
                    )
                } else {
                    String::new()
                }
            )),
            None => out.push_str("\ngrowth: not fitted (needs at least 3 row levels)"),
        },
    }
    out
}

/// A stress run: one row per level, the verdict, and the recovery check.
pub fn stress_table(r: &StressResult) -> String {
    let mut t = table();
    t.set_header(vec![
        "threads", "ops/s", "p50", "p95", "p99", "errors", "cpu %", "verdict",
    ]);
    for l in &r.levels {
        let b = &l.bench;
        t.add_row(vec![
            right(l.threads),
            right(format!("{:.0}", b.throughput.0)),
            right(b.latency.p50),
            right(b.latency.p95),
            right(b.latency.p99),
            right(b.errors),
            right(format!("{:.0}", b.cpu.percent_of_machine)),
            Cell::new(match &l.broke_because {
                None => "held".to_string(),
                Some(why) => format!("BROKE: {why}"),
            }),
        ]);
    }
    let rec = &r.recovery;
    t.add_row(vec![
        right(format!("{} (recovery)", rec.threads)),
        right(format!("{:.0}", rec.bench.throughput.0)),
        right(rec.bench.latency.p50),
        right(rec.bench.latency.p95),
        right(rec.bench.latency.p99),
        right(rec.errors),
        right(format!("{:.0}", rec.bench.cpu.percent_of_machine)),
        Cell::new(if rec.recovered {
            "recovered"
        } else {
            "NOT recovered"
        }),
    ]);
    let mut out = t.to_string();
    out.push_str(&format!(
        "\nobjective {} with at most {:.2} % errors; {} cores available",
        r.slo,
        100.0 * r.max_error_rate,
        r.cores
    ));
    out.push_str(&match (r.last_held, r.first_broke) {
        (Some(h), Some(b)) => format!("\nbreaking point: held at {h} threads, broke at {b}"),
        (None, Some(b)) => format!("\nbreaking point: broke already at {b} threads"),
        (Some(h), None) => format!("\nbreaking point: not reached; held up to {h} threads"),
        (None, None) => String::new(),
    });
    out.push_str(&format!(
        "\nrecovery at {} threads: p99 {} vs {} before ({:.2}×, limit 1.5×), {} errors: {}",
        rec.threads,
        rec.p99_after,
        rec.p99_before,
        rec.ratio,
        rec.errors,
        if rec.recovered {
            "recovered"
        } else {
            "NOT recovered"
        }
    ));
    out
}
