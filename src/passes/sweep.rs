//! Sweeps: a workload measured at several thread counts or data volumes,
//! written as `sweep.json` and plots in a run folder of its own. The
//! efficiency and growth fits are [`crate::analyze::scaling`]'s.

use std::time::{Duration, SystemTime};

use super::session::{Prepared, Session};
use crate::analyze::scaling::{
    cost_per_op, defaults, efficiencies, fit_complexity, SweepError, SweepKind, SweepLevel,
    SweepResult, SWEEP_SCHEMA_VERSION,
};
use crate::analyze::scaling_cause::{explain, ScalingCause, POOR_EFFICIENCY};
use crate::measure::{sys, RunOptions, Stop};
use crate::profile::cpu::CpuOptions;
use crate::render::plot;
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::Make;

/// Sorted, deduplicated levels; rejects zero.
fn levels<T: Ord + Copy + Default>(v: &[T], what: &'static str) -> Result<Vec<T>, SweepError> {
    if v.is_empty() {
        return Err(SweepError::NoLevels(what));
    }
    if v.contains(&T::default()) {
        return Err(SweepError::ZeroLevel(what));
    }
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The options of one level: the base options, with a per-level duration
/// of [`defaults::LEVEL_DURATION`] unless ops or a duration were given.
fn level_options(base: &RunOptions) -> RunOptions {
    let mut o = base.clone();
    o.stop = o
        .stop
        .or(Some(Stop::Duration(Nanos::from(defaults::LEVEL_DURATION))));
    o
}

/// Measures the workload at each thread count, on one database set up for
/// the largest count.
pub fn threads(
    session: &mut Session,
    make: Make<'_>,
    base: &RunOptions,
    threads: &[usize],
) -> anyhow::Result<SweepResult> {
    let threads = levels(threads, "threads")?;
    let mut options = level_options(base);
    options.threads = threads.last().copied();
    let sql_trace = session.config().sql_trace;
    let mut prepared = session.prepare(make(), &options, sql_trace)?;
    let mut benches = Vec::with_capacity(threads.len());
    for &t in &threads {
        prepared.plan.threads = t;
        benches.push(session.measure(&prepared)?);
    }
    let workload = prepared.workload.name().to_string();
    let eff = efficiencies(
        &benches
            .iter()
            .map(|b| (b.plan.threads, b.throughput.0))
            .collect::<Vec<_>>(),
    );
    let scaling_cause = match (threads.first(), threads.get(1), eff.get(1)) {
        (Some(&t1), Some(&t2), Some(&e)) if e < POOR_EFFICIENCY => {
            match explain_scaling(session, &mut prepared, (t1, t2), e) {
                Ok(c) => Some(c),
                Err(err) => {
                    eprintln!("profkit: warning: poor scaling not explained: {err:#}");
                    None
                }
            }
        }
        _ => None,
    };
    session.discard(prepared);
    Ok(SweepResult {
        schema_version: SWEEP_SCHEMA_VERSION,
        workload,
        kind: SweepKind::Threads,
        cores: sys::cores(),
        levels: benches
            .into_iter()
            .zip(eff)
            .map(|(bench, e)| SweepLevel {
                threads: bench.plan.threads,
                rows: bench.plan.rows,
                efficiency: Some(e),
                bench,
            })
            .collect(),
        fit: None,
        scaling_cause,
    })
}

/// Profiles the first two levels of a thread sweep and compares them
/// ([`explain`]): where the added thread's time goes.
fn explain_scaling(
    session: &Session,
    prepared: &mut Prepared,
    (t1, t2): (usize, usize),
    efficiency: f64,
) -> anyhow::Result<ScalingCause> {
    let mut runs = Vec::with_capacity(2);
    for t in [t1, t2] {
        prepared.plan.threads = t;
        let (bench, mut profile) =
            crate::profile::cpu::profile(&CpuOptions::default(), || session.measure(prepared))?;
        let bench = bench?;
        if !session.config().keep_runtime_frames {
            profile.fold_runtime_frames();
        }
        let cpu = bench.cpu.user.0 + bench.cpu.system.0;
        runs.push((profile, Nanos(cpu / bench.ops.max(1))));
    }
    let (one, two) = (&runs[0], &runs[1]);
    Ok(explain(
        (t1, t2),
        efficiency,
        &one.0,
        &two.0,
        Some((one.1, two.1)),
    ))
}

/// Sets the workload up at each data volume and measures it; fits the
/// growth of the median cost per operation.
pub fn rows(
    session: &mut Session,
    make: Make<'_>,
    base: &RunOptions,
    rows: &[u64],
) -> anyhow::Result<SweepResult> {
    let rows = levels(rows, "rows")?;
    let mut out = Vec::with_capacity(rows.len());
    let mut workload = String::new();
    for &n in &rows {
        let mut options = level_options(base);
        options.rows = Some(n);
        let sql_trace = session.config().sql_trace;
        let prepared = session.prepare(make(), &options, sql_trace)?;
        let bench = session.measure(&prepared)?;
        workload = prepared.workload.name().to_string();
        session.discard(prepared);
        out.push(SweepLevel {
            threads: bench.plan.threads,
            rows: n,
            efficiency: None,
            bench,
        });
    }
    let points: Vec<(f64, f64)> = out
        .iter()
        .map(|l| (l.rows as f64, cost_per_op(&l.bench).0 as f64))
        .collect();
    Ok(SweepResult {
        schema_version: SWEEP_SCHEMA_VERSION,
        workload,
        kind: SweepKind::Rows,
        cores: sys::cores(),
        levels: out,
        fit: fit_complexity(&points),
        scaling_cause: None,
    })
}

/// How long a sweep at these levels will take, roughly (for messages).
pub fn estimate(levels: usize, base: &RunOptions) -> Option<Duration> {
    match level_options(base).stop {
        Some(Stop::Duration(d)) => Some(Duration::from(d) * levels as u32 * 11 / 10),
        _ => None,
    }
}

/// Writes a sweep's JSON and plots into a new run folder (a plot that
/// cannot be drawn is a warning, not a failure).
pub fn save(session: &Session, r: &SweepResult, started: SystemTime) -> anyhow::Result<RunDir> {
    let dir = session.run_dir(&format!("sweep-{}", r.workload), started)?;
    store::write_json(&dir.file(files::SWEEP), r)?;
    for (name, chart) in plot::sweep_charts(r) {
        save_chart(&dir, &name, &chart);
    }
    Ok(dir)
}

/// Draws one chart into a run folder; a failure is a warning.
pub fn save_chart(dir: &RunDir, name: &str, chart: &plot::Chart) {
    let written = plot::render(chart, name)
        .map_err(anyhow::Error::from)
        .and_then(|svg| Ok(store::write_atomic(&dir.file(name), svg.as_bytes())?));
    if let Err(e) = written {
        eprintln!("profkit: warning: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_sorted_and_checked() {
        assert_eq!(levels(&[4, 1, 2, 2], "threads"), Ok(vec![1, 2, 4]));
        assert_eq!(
            levels::<usize>(&[], "threads"),
            Err(SweepError::NoLevels("threads"))
        );
        assert_eq!(levels(&[0, 1], "rows"), Err(SweepError::ZeroLevel("rows")));
    }
}
