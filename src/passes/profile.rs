//! The main job, `profkit profile`: for every workload a bench pass, a CPU
//! pass, a SQL pass and (in a child process) the heap pass with a leak
//! check, each into the workload's run folder; its ranked findings; then a
//! short thread sweep of the key workloads, and a session folder with
//! `index.md` and `index.json` that `report`, `check` and `compare` read.

use std::time::SystemTime;

use anyhow::Context as _;

use super::heap::ChildArgs;
use super::session::{Session, SessionConfig};
use super::{cpu, heap, sql, sweep};
use crate::analyze::rundata::{Index, IndexEntry, RunSet};
use crate::analyze::scaling::SweepResult;
use crate::measure::{self, BenchResult, PlanError, RunOptions, Stop};
use crate::render::markdown::{self, IndexRow};
use crate::store::{self, files, RunDir};
use crate::workload::Registry;

/// Defaults of the main job, defined once.
pub mod defaults {
    use std::time::Duration;

    /// Workloads the closing thread sweep measures (those that ran).
    pub const SWEPT: [&str; 2] = ["point-read", "concurrent-write"];
    /// Thread levels of the closing sweep.
    pub const SWEEP_THREADS: [usize; 2] = [1, 2];
    /// Length of each level of the closing sweep, unless a length is given.
    pub const SWEEP_LEVEL: Duration = Duration::from_millis(500);
    /// The SQL pass runs this share of the bench pass's operations.
    pub const SQL_SHARE: u64 = 2;
}

/// What the main job runs.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Workloads by name (empty: the registry's profiled workloads).
    pub workloads: Vec<String>,
    /// Scales every workload's default operation count.
    pub scale: f64,
    /// Run the heap and leak passes (in a child process).
    pub heap: bool,
    /// Run options shared by every workload.
    pub run: RunOptions,
    /// Compare the session against this baseline at the end.
    pub baseline: Option<RunSet>,
}

/// One workload's line of the main job.
#[derive(Clone, Debug)]
pub struct WorkloadOutcome {
    /// Its run folder.
    pub dir: RunDir,
    /// The bench pass (statement counts from the SQL pass).
    pub bench: BenchResult,
    /// The top finding, one line.
    pub top_finding: String,
}

/// What the main job left behind.
#[derive(Clone, Debug)]
pub struct ProfileOutcome {
    /// The session folder (`index.md`, `index.json`).
    pub index: RunDir,
    /// One entry per workload that ran.
    pub workloads: Vec<WorkloadOutcome>,
    /// The closing thread sweeps: (run id, result).
    pub sweeps: Vec<(String, SweepResult)>,
    /// The comparison against the baseline, when one was given.
    pub baseline: Option<super::compare::BaselineOutcome>,
}

/// Runs the main job over workloads from `registry`.
pub fn run(
    registry: &Registry,
    config: SessionConfig,
    options: &ProfileOptions,
) -> anyhow::Result<ProfileOutcome> {
    anyhow::ensure!(
        options.scale > 0.0 && options.scale.is_finite(),
        PlanError::EmptyRun
    );
    let names = if options.workloads.is_empty() {
        registry.profiled_names()
    } else {
        options.workloads.clone()
    };
    // Resolve every name before running anything.
    let ctors = names
        .iter()
        .map(|n| registry.ctor(n))
        .collect::<Result<Vec<_>, _>>()?;
    let started = SystemTime::now();
    // The bench pass measures without the SQL hook; the SQL pass comes after.
    let mut session = Session::new(SessionConfig {
        sql_trace: false,
        ..config
    })?;
    let base = &options.run;
    let mut workloads = Vec::new();
    for (name, ctor) in names.iter().zip(&ctors) {
        if measure::interrupted() {
            eprintln!("profkit: interrupted: skipping the remaining workloads");
            break;
        }
        let w = registry.get(name)?;
        let planned_ops = w.defaults().ops as f64 * options.scale;
        let mut run_options = base.clone();
        if run_options.stop.is_none() {
            run_options.stop = Some(Stop::Ops((planned_ops.round() as u64).max(1)));
        }
        eprintln!("profkit: {name} ...");
        let outcome = session
            .run(w, &run_options)
            .with_context(|| format!("profiling '{name}'"))?;
        let cpu = cpu::after_bench(
            &mut session,
            ctor(),
            &run_options,
            &outcome,
            &cpu::CpuPassOptions::default(),
            options.scale,
        )
        .with_context(|| format!("CPU profile of '{name}'"))?;
        eprintln!("  {}", crate::render::cpu_table::summary_line(&cpu.report));
        // Extra passes: each runs the workload again, separately, into the
        // same run folder, so no profiler distorts another's figures.
        let mut sql_options = run_options.clone();
        if let (None, Some(Stop::Ops(n))) = (base.stop, sql_options.stop) {
            sql_options.stop = Some(Stop::Ops((n / defaults::SQL_SHARE).max(1)));
        }
        let (_, sql_run) = sql::run(&mut session, ctor(), &sql_options, Some(&outcome.dir))
            .with_context(|| format!("SQL pass of '{name}'"))?;
        // The summary shows statements per operation from the SQL pass (a
        // count, which the hook does not distort); bench.json keeps the
        // bench pass's own figures.
        let mut bench = outcome.bench;
        bench.sql = sql_run.bench.sql;
        if options.heap {
            let child = ChildArgs {
                rows: base.rows,
                threads: base.threads,
                seed: base.seed,
                ..ChildArgs::sized(name, planned_ops, &session, &outcome.dir.path)
            };
            // A failed heap pass is a warning, not the end of the profile.
            match heap::spawn_child(&child) {
                Ok(line) => eprintln!("profkit: {name}: {line}"),
                Err(e) => eprintln!("profkit: warning: {name}: {e:#}"),
            }
        }
        let ranked = super::rank_findings(&outcome.dir.path, name)?;
        let top_finding = ranked
            .top()
            .map(|f| format!("[{:?}] {}", f.severity, f.title))
            .unwrap_or_else(|| "no findings".into());
        workloads.push(WorkloadOutcome {
            dir: outcome.dir,
            bench,
            top_finding,
        });
    }
    let sweeps = closing_sweeps(&mut session, registry, &names, base)?;
    let index = write_index(&session, started, &workloads, &sweeps)?;
    let baseline = match &options.baseline {
        Some(base) => Some(super::compare::against_baseline(
            base,
            &index,
            &session.config().flamegraph_dir,
        )?),
        None => None,
    };
    Ok(ProfileOutcome {
        index,
        workloads,
        sweeps,
        baseline,
    })
}

/// The small thread sweep the main job ends with: 1 and 2 threads of the
/// key workloads that ran, half a second per level.
fn closing_sweeps(
    session: &mut Session,
    registry: &Registry,
    names: &[String],
    base: &RunOptions,
) -> anyhow::Result<Vec<(String, SweepResult)>> {
    let mut out = Vec::new();
    for key in defaults::SWEPT {
        if !names.iter().any(|n| n == key) || measure::interrupted() {
            continue;
        }
        let ctor = registry.ctor(key)?;
        let mut options = base.clone();
        options.threads = None;
        if options.stop.is_none() {
            options.stop = Some(Stop::Duration(defaults::SWEEP_LEVEL.into()));
        }
        eprintln!("profkit: thread sweep of {key} (1, 2 threads) ...");
        let started = SystemTime::now();
        let r = sweep::threads(session, &|| ctor(), &options, &defaults::SWEEP_THREADS)
            .with_context(|| format!("thread sweep of '{key}'"))?;
        let dir = sweep::save(session, &r, started)?;
        out.push((dir.id, r));
    }
    Ok(out)
}

/// Writes the session folder: `index.md` (with links to each run's
/// flamegraphs that exist) and `index.json`.
fn write_index(
    session: &Session,
    started: SystemTime,
    workloads: &[WorkloadOutcome],
    sweeps: &[(String, SweepResult)],
) -> anyhow::Result<RunDir> {
    let index_dir = session.run_dir("profile", started)?;
    let config = session.config();
    let (out, graphs) = (&config.out_dir, &config.flamegraph_dir);
    // Links from `<out>/<session>/index.md` to the flamegraph folder.
    let prefix = if out.is_relative() && graphs.is_relative() {
        let up = "../".repeat(out.components().count() + 1);
        format!("{up}{}", graphs.display())
    } else {
        std::path::absolute(graphs)
            .unwrap_or_else(|_| graphs.clone())
            .display()
            .to_string()
    };
    let rows: Vec<IndexRow<'_>> = workloads
        .iter()
        .map(|w| IndexRow {
            run_id: &w.dir.id,
            bench: &w.bench,
            top_finding: &w.top_finding,
            flamegraphs: ["cpu", "sql", "heap", "heap-live"]
                .iter()
                .filter(|kind| session.flamegraph_path(&w.dir.id, kind).exists())
                .map(|kind| {
                    (
                        kind.to_string(),
                        format!("{prefix}/{}-{kind}.svg", w.dir.id),
                    )
                })
                .collect(),
        })
        .collect();
    let md = markdown::session_index(&index_dir.id, &rows, sweeps);
    store::write_atomic(&index_dir.file(files::INDEX_MD), md.as_bytes())?;
    let index = Index {
        runs: workloads
            .iter()
            .map(|w| IndexEntry {
                run_id: w.dir.id.clone(),
                workload: w.bench.workload.clone(),
            })
            .collect(),
        ..Index::default()
    };
    store::write_json(&index_dir.file(files::INDEX_JSON), &index)?;
    Ok(index_dir)
}
