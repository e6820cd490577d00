//! The main job, `profkit profile`: for every workload a bench pass, a CPU
//! pass, a SQL pass and (in a child process) the heap pass with a leak
//! check, each into the workload's run folder, and its ranked findings; a
//! short thread sweep of the key workloads; and a session folder with
//! `index.md` and `index.json` that `report`, `check` and `compare` read.
//! What measures time runs alone; the rest overlaps (see [`run`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use anyhow::Context as _;

use super::heap::ChildArgs;
use super::session::{RunOutcome, Session, SessionConfig};
use super::{cpu, heap, sql, sweep};
use crate::analyze::replicates::NoiseModel;
use crate::analyze::rundata::{Index, IndexEntry, RunSet};
use crate::analyze::scaling::SweepResult;
use crate::measure::{self, BenchResult, PlanError, RunOptions, Stop};
use crate::render::markdown::{self, IndexRow};
use crate::store::{self, files, RunDir};
use crate::workload::{Ctor, Registry};

/// Defaults of the main job, defined once.
pub mod defaults {
    use std::time::Duration;

    /// Workloads the thread sweep measures (those that ran).
    pub const SWEPT: [&str; 2] = ["point-read", "concurrent-write"];
    /// Thread levels of the sweep.
    pub const SWEEP_THREADS: [usize; 2] = [1, 2];
    /// Length of each level of the sweep, unless a length is given.
    pub const SWEEP_LEVEL: Duration = Duration::from_millis(300);
    /// The SQL pass runs 1 / this of the bench pass's operations: it
    /// counts statements per operation, which a tenth tells as well as
    /// the whole.
    pub const SQL_SHARE: u64 = 10;
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
    /// The run-to-run spread that comparison judges sides of one run by
    /// (default: the built-in model; `profkit noise` measures one).
    pub noise_model: NoiseModel,
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
    /// The first line of its advice (what `profkit advise` would try, or
    /// measured), if any.
    pub advice: Option<String>,
}

/// What the main job left behind.
#[derive(Clone, Debug)]
pub struct ProfileOutcome {
    /// The session folder (`index.md`, `index.json`).
    pub index: RunDir,
    /// One entry per workload that ran.
    pub workloads: Vec<WorkloadOutcome>,
    /// The thread sweeps: (run id, result).
    pub sweeps: Vec<(String, SweepResult)>,
    /// The comparison against the baseline, when one was given.
    pub baseline: Option<super::compare::BaselineOutcome>,
}

/// One workload of the main job between its passes.
struct Planned {
    name: String,
    ctor: Ctor,
    run: RunOptions,
    planned_ops: f64,
    /// Its worker threads: it shares no core with a heap child when it
    /// needs every core.
    threads: usize,
    outcome: RunOutcome,
    /// The CPU pass ran (alone, before the heap children).
    cpu_done: bool,
}

/// Runs the main job over workloads from `registry`, in two phases:
///
/// 1. alone on the machine, what measures time: every bench pass, the
///    thread sweeps, and the CPU passes of workloads whose threads
///    fill every core;
/// 2. the heap children (a process each: the dhat heap pass and leak
///    check) one after another beside this process's other CPU passes and
///    SQL passes, then two at a time: a CPU profile counts its own
///    threads' CPU time, a SQL pass counts statements, heap figures are
///    counts, so none of them is a timing the other disturbs. With one
///    core nothing overlaps.
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
    let cores = measure::sys::cores();
    let mut planned = Vec::new();
    super::writes::log("start");
    for (name, ctor) in names.iter().zip(&ctors) {
        if measure::interrupted() {
            eprintln!("profkit: interrupted: skipping the remaining workloads");
            break;
        }
        let w = registry.get(name)?;
        let planned_ops = w.defaults().ops as f64 * options.scale;
        let threads = base.threads.unwrap_or(w.defaults().threads);
        let mut run = base.clone();
        if run.stop.is_none() {
            run.stop = Some(Stop::Ops((planned_ops.round() as u64).max(1)));
        }
        eprintln!("profkit: {name} ...");
        let outcome = session
            .run(w, &run)
            .with_context(|| format!("profiling '{name}'"))?;
        super::writes::log(&format!("{name} bench"));
        let mut p = Planned {
            name: name.clone(),
            ctor: ctor.clone(),
            run,
            planned_ops,
            threads,
            outcome,
            cpu_done: false,
        };
        if !options.heap || p.threads >= cores {
            cpu_pass(&mut session, &mut p, options.scale)?;
        }
        planned.push(p);
    }
    let sweeps = thread_sweeps(&mut session, registry, &names, base)?;
    // Phase 2: the heap children on a thread of their own, the remaining
    // passes here.
    let children: Vec<(String, ChildArgs)> = match options.heap {
        true => planned
            .iter()
            .map(|p| {
                let child = ChildArgs {
                    rows: base.rows,
                    threads: base.threads,
                    concurrency: base.concurrency,
                    seed: base.seed,
                    leak_secs: super::heap::defaults::LEAK_SECS * options.scale,
                    ..ChildArgs::sized(&p.name, p.planned_ops, &session, &p.outcome.dir.path)
                };
                (p.name.clone(), child)
            })
            .collect(),
        false => Vec::new(),
    };
    let next_child = AtomicUsize::new(0);
    let benches = std::thread::scope(|scope| -> anyhow::Result<Vec<BenchResult>> {
        let heap_lane = (cores >= 2).then(|| scope.spawn(|| heap_children(&children, &next_child)));
        let mut benches = Vec::new();
        for p in &mut planned {
            // Once interrupted, a workload keeps what its passes left.
            benches.push(match measure::interrupted() {
                true => p.outcome.bench.clone(),
                false => remaining_passes(&mut session, p, base, options.scale)?,
            });
        }
        // Then this thread takes heap children too: two at a time.
        heap_children(&children, &next_child);
        if let Some(lane) = heap_lane {
            let _ = lane.join();
        }
        Ok(benches)
    })?;
    let mut workloads = Vec::new();
    for (p, bench) in planned.into_iter().zip(benches) {
        let ranked = super::rank_findings(&p.outcome.dir.path, &p.name)?;
        let top_finding = ranked
            .top()
            .map(|f| format!("[{:?}] {}", f.severity, f.title))
            .unwrap_or_else(|| "no findings".into());
        // The summary's advice line: the first of findings.json's section.
        let advice = ranked.advice.first().map(|a| a.action.clone());
        workloads.push(WorkloadOutcome {
            dir: p.outcome.dir,
            bench,
            top_finding,
            advice,
        });
    }
    let index = write_index(&session, started, &workloads, &sweeps)?;
    super::writes::log("findings and index");
    let baseline = match &options.baseline {
        Some(base) => Some(super::compare::against_baseline(
            base,
            &index,
            &session.config().flamegraph_dir,
            &options.noise_model,
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

/// The CPU pass of a workload, sized by samples from its bench pass.
fn cpu_pass(session: &mut Session, p: &mut Planned, scale: f64) -> anyhow::Result<()> {
    let cpu = cpu::after_bench(
        session,
        (p.ctor)(),
        &p.run,
        &p.outcome,
        &cpu::CpuPassOptions::default(),
        scale,
    )
    .with_context(|| format!("CPU profile of '{}'", p.name))?;
    // The sampling-rate warning holds for the machine, not the workload:
    // once per session is enough.
    let line = crate::render::cpu_table::summary_line(&cpu.report, |w| {
        !w.starts_with(crate::profile::cpu::RATE_WARNING) || session.first_warning("cpu-rate")
    });
    eprintln!("profkit: {}: {line}", p.name);
    super::writes::log(&format!("{} cpu", p.name));
    p.cpu_done = true;
    Ok(())
}

/// The CPU pass (unless it ran) and the SQL pass of a workload: each runs
/// the workload again, separately, into the bench pass's run folder, so
/// no profiler distorts another's figures. Returns the bench pass's result
/// with statements per operation from the SQL pass (a count, which the
/// hook does not distort); `bench.json` keeps the bench pass's own.
fn remaining_passes(
    session: &mut Session,
    p: &mut Planned,
    base: &RunOptions,
    scale: f64,
) -> anyhow::Result<BenchResult> {
    if !p.cpu_done {
        cpu_pass(session, p, scale)?;
    }
    let mut sql_options = p.run.clone();
    if let (None, Some(Stop::Ops(n))) = (base.stop, sql_options.stop) {
        sql_options.stop = Some(Stop::Ops((n / defaults::SQL_SHARE).max(1)));
    }
    let (_, sql_run) = sql::run(session, (p.ctor)(), &sql_options, Some(&p.outcome.dir))
        .with_context(|| format!("SQL pass of '{}'", p.name))?;
    super::writes::log(&format!("{} sql", p.name));
    let mut bench = p.outcome.bench.clone();
    bench.sql = sql_run.bench.sql;
    Ok(bench)
}

/// Runs heap children, taking the next one not yet taken until none is
/// left (a failed one is a warning, not the end of the profile).
fn heap_children(children: &[(String, ChildArgs)], next: &AtomicUsize) {
    while let Some((name, child)) = children.get(next.fetch_add(1, Ordering::Relaxed)) {
        if measure::interrupted() {
            break;
        }
        match heap::spawn_child(child) {
            Ok(line) => eprintln!("profkit: {name}: {line}"),
            Err(e) => eprintln!("profkit: warning: {name}: {e:#}"),
        }
    }
}

/// The small thread sweep of the main job, after the bench passes: 1 and 2
/// threads of the key workloads that ran, [`defaults::SWEEP_LEVEL`] per level.
fn thread_sweeps(
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
        super::writes::log(&format!("{key} sweep"));
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
