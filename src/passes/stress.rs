//! The stress pass: concurrency stepped up until the objective breaks,
//! then the recovery check; written as `stress.json` and a latency plot.

use std::time::SystemTime;

use super::session::Session;
use crate::analyze::stress::{
    defaults, verdict, Recovery, StressError, StressLevel, StressOptions, StressResult,
    STRESS_SCHEMA_VERSION,
};
use crate::measure::{sys, Stop};
use crate::render::plot;
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::Make;

/// Steps concurrency up until the objective breaks, then checks recovery.
pub fn run(
    session: &mut Session,
    make: Make<'_>,
    options: &StressOptions,
) -> anyhow::Result<StressResult> {
    let start = options
        .base
        .threads
        .unwrap_or(defaults::START_THREADS)
        .max(1);
    if options.max_threads < start || options.max_levels == 0 {
        return Err(StressError::Levels {
            start,
            max: options.max_threads,
        }
        .into());
    }
    let mut steps = vec![start];
    while steps.len() < options.max_levels {
        let next = (steps[steps.len() - 1] * 2).min(options.max_threads);
        if next == steps[steps.len() - 1] {
            break;
        }
        steps.push(next);
    }
    let mut base = options.base.clone();
    base.stop = base
        .stop
        .or(Some(Stop::Duration(Nanos::from(defaults::LEVEL_DURATION))));
    // One database, its pool sized for the largest level.
    base.threads = steps.last().copied();
    let sql_trace = session.config().sql_trace;
    let mut prepared = session.prepare(make(), &base, sql_trace)?;
    let mut levels = Vec::new();
    let (mut last_held, mut first_broke) = (None, None);
    for &t in &steps {
        prepared.plan.threads = t;
        let bench = session.measure(&prepared)?;
        let broke = verdict(&bench, &options.slo, options.max_error_rate);
        let held = broke.is_none();
        levels.push(StressLevel {
            threads: t,
            held,
            broke_because: broke,
            bench,
        });
        if held {
            last_held = Some(t);
        } else {
            first_broke = Some(t);
            break;
        }
    }
    prepared.plan.threads = start;
    let bench = session.measure(&prepared)?;
    let workload = prepared.workload.name().to_string();
    session.discard(prepared);
    let recovery = Recovery::after(start, levels[0].bench.latency.p99, bench);
    Ok(StressResult {
        schema_version: STRESS_SCHEMA_VERSION,
        workload,
        slo: options.slo,
        max_error_rate: options.max_error_rate,
        cores: sys::cores(),
        levels,
        last_held,
        first_broke,
        recovery,
    })
}

/// Writes `stress.json` and `stress-latency.svg` into a new run folder.
pub fn save(session: &Session, r: &StressResult, started: SystemTime) -> anyhow::Result<RunDir> {
    let dir = session.run_dir(&format!("stress-{}", r.workload), started)?;
    store::write_json(&dir.file(files::STRESS), r)?;
    super::sweep::save_chart(&dir, "stress-latency.svg", &plot::stress_chart(r));
    Ok(dir)
}
