//! One function per subcommand: options → run → report → export.

use std::time::SystemTime;

use anyhow::Context as _;

use profkit::analyze::scaling::{self, SweepError, SweepKind, SweepResult};
use profkit::analyze::stress::{self as stress_run, StressError};
use profkit::db::DbError;
use profkit::measure::open_loop::{self, RateError};
use profkit::measure::{PlanError, RunOptions, Stop};
use profkit::render::{plot, scale, table};
use profkit::rundir::{self, OutputError};
use profkit::session::{Session, SessionConfig};
use profkit::workload::{self, WorkloadError};

use crate::cli::{Cli, Command, ProfileArgs, RunArgs, StressArgs, SweepArgs};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Profile(args) => profile(args),
        Command::Sweep(args) => sweep(args),
        Command::Stress(args) => stress(args),
    }
}

/// 2 for bad input (a bad flag value, an unknown name, a file that is not
/// what it should be), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let bad_input = e.chain().any(|c| {
        c.is::<PlanError>()
            || c.is::<WorkloadError>()
            || c.is::<SweepError>()
            || c.is::<StressError>()
            || c.is::<RateError>()
            || matches!(
                c.downcast_ref::<DbError>(),
                Some(DbError::NotSqlite { .. } | DbError::Foreign { .. } | DbError::Locked { .. })
            )
            || matches!(
                c.downcast_ref::<OutputError>(),
                Some(OutputError::Parse { .. } | OutputError::Read { .. })
            )
    });
    if bad_input {
        2
    } else {
        1
    }
}

fn list() -> anyhow::Result<()> {
    let all = workload::builtins();
    let width = all.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, make) in all {
        let w = make();
        let d = w.defaults();
        println!(
            "{name:width$}  {} [{} rows, {} ops, {} thread{}]",
            w.description(),
            d.rows,
            d.ops,
            d.threads,
            if d.threads == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.rate.is_some() {
        return run_load(args);
    }
    let workload = workload::by_name(&args.workload)?;
    let options = RunOptions::from(&args.run);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let outcome = session.run(workload, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.bench)?);
    } else {
        println!("{}", table::bench_table(&outcome.bench));
        println!("wrote {}", outcome.dir.path.display());
    }
    Ok(())
}

/// `profkit run --rate`: an open-loop run, written to `load.json`.
fn run_load(args: RunArgs) -> anyhow::Result<()> {
    let Some(rate) = args.rate else {
        return Ok(());
    };
    let workload = workload::by_name(&args.workload)?;
    let mut options = RunOptions::from(&args.run);
    if options.stop.is_none() {
        options.stop = Some(Stop::Duration(open_loop::defaults::DURATION.into()));
    }
    let started = SystemTime::now();
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let sql_trace = session.config().sql_trace;
    let prepared = session.prepare(workload, &options, sql_trace)?;
    let result = open_loop::measure_open_loop(prepared.workload.as_ref(), &prepared.plan, rate)
        .with_context(|| format!("running workload '{}' open loop", args.workload))?;
    let dir = session.run_dir(prepared.workload.name(), started)?;
    rundir::write_json(&dir.file("load.json"), &result)?;
    session.write_manifest(&dir, &prepared, &["load"], started)?;
    session.discard(prepared);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{}", scale::load_table(&result));
        println!("wrote {}", dir.path.display());
    }
    Ok(())
}

/// Writes a sweep's JSON and plots into a new run folder.
fn save_sweep(session: &Session, r: &SweepResult, started: SystemTime) -> anyhow::Result<String> {
    let dir = session.run_dir(&format!("sweep-{}", r.workload), started)?;
    rundir::write_json(&dir.file("sweep.json"), r)?;
    match plot::write_charts(&dir, &plot::sweep_charts(r)) {
        Ok(_) => {}
        Err(e) => eprintln!("profkit: warning: {e}"),
    }
    Ok(dir.id)
}

fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    let make = || -> anyhow::Result<Box<dyn workload::Workload>> {
        Ok(workload::by_name(&args.workload)?)
    };
    make()?;
    let base = args.base_options();
    let mut session = Session::new(args.session_config())?;
    let started = SystemTime::now();
    let result = if args.rows.len() > 1 {
        if args.threads.len() > 1 {
            return Err(SweepError::TwoDimensions.into());
        }
        let mut base = base;
        base.threads = args.threads.first().copied();
        if let Some(t) = scaling::estimate(args.rows.len(), &base) {
            eprintln!(
                "profkit: sweeping rows {:?} (about {t:.0?} of measuring plus setup)",
                args.rows
            );
        }
        scaling::sweep_rows(&mut session, &make, &base, &args.rows)?
    } else {
        let mut base = base;
        base.rows = args.rows.first().copied();
        let threads = if args.threads.is_empty() {
            scaling::defaults::THREADS.to_vec()
        } else {
            args.threads.clone()
        };
        scaling::sweep_threads(&mut session, &make, &base, &threads)?
    };
    let id = save_sweep(&session, &result, started)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{}", scale::sweep_table(&result));
        println!("wrote {}", session.config().out_dir.join(id).display());
    }
    Ok(())
}

fn stress(args: StressArgs) -> anyhow::Result<()> {
    let make = || -> anyhow::Result<Box<dyn workload::Workload>> {
        Ok(workload::by_name(&args.workload)?)
    };
    make()?;
    let options = stress_run::StressOptions::from(&args);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let started = SystemTime::now();
    let result = stress_run::stress(&mut session, &make, &options)?;
    let dir = session.run_dir(&format!("stress-{}", result.workload), started)?;
    rundir::write_json(&dir.file("stress.json"), &result)?;
    let chart = plot::stress_chart(&result);
    if let Err(e) = plot::write_charts(&dir, &[("stress-latency.svg".into(), chart)]) {
        eprintln!("profkit: warning: {e}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{}", scale::stress_table(&result));
        println!("wrote {}", dir.path.display());
    }
    Ok(())
}

/// The small thread sweep `profkit profile` ends with: 1 and 2 threads of
/// the key workloads (those among `names`), half a second per level.
fn profile_sweeps(
    session: &mut Session,
    names: &[String],
    base: &RunOptions,
) -> anyhow::Result<Vec<(String, SweepResult)>> {
    let mut out = Vec::new();
    for key in ["point-read", "concurrent-write"] {
        if !names.iter().any(|n| n == key) {
            continue;
        }
        let mut options = base.clone();
        options.threads = None;
        if options.stop.is_none() {
            options.stop = Some(Stop::Duration(std::time::Duration::from_millis(500).into()));
        }
        eprintln!("profkit: thread sweep of {key} (1, 2 threads) ...");
        let started = SystemTime::now();
        let make =
            || -> anyhow::Result<Box<dyn workload::Workload>> { Ok(workload::by_name(key)?) };
        let r = scaling::sweep_threads(session, &make, &options, &[1, 2])
            .with_context(|| format!("thread sweep of '{key}'"))?;
        let id = save_sweep(session, &r, started)?;
        out.push((id, r));
    }
    Ok(out)
}

fn profile(args: ProfileArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.scale > 0.0 && args.scale.is_finite(),
        PlanError::EmptyRun
    );
    let names: Vec<String> = if args.workloads.is_empty() {
        workload::profiled_names()
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        args.workloads.clone()
    };
    // Resolve every name before running anything.
    let workloads = names
        .iter()
        .map(|n| workload::by_name(n))
        .collect::<Result<Vec<_>, _>>()?;
    let started = SystemTime::now();
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let base = RunOptions::from(&args.run);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for w in workloads {
        let name = w.name().to_string();
        let mut options = base.clone();
        if options.stop.is_none() {
            let ops = ((w.defaults().ops as f64 * args.scale).round() as u64).max(1);
            options.stop = Some(Stop::Ops(ops));
        }
        eprintln!("profkit: {name} ...");
        let outcome = session
            .run(w, &options)
            .with_context(|| format!("profiling '{name}'"))?;
        rows.push(format!(
            "| [{name}](../{id}/bench.json) | {:.0} | {} | {} | {} | {} |",
            outcome.bench.throughput.0,
            outcome.bench.latency.p50,
            outcome.bench.latency.p95,
            outcome.bench.latency.p99,
            outcome.bench.errors,
            id = outcome.dir.id
        ));
        results.push((outcome.dir.id.clone(), outcome.bench));
    }
    let benches: Vec<_> = results.iter().map(|(_, b)| b.clone()).collect();
    println!("{}", table::summary_table(&benches));
    let sweeps = profile_sweeps(&mut session, &names, &base)?;

    let index_dir = session.run_dir("profile", started)?;
    let mut md = format!(
        "# profkit profile {}\n\n| workload | ops/s | p50 | p95 | p99 | errors |\n|---|---:|---:|---:|---:|---:|\n",
        index_dir.id
    );
    for r in &rows {
        md.push_str(r);
        md.push('\n');
    }
    md.push_str(&sweep_index(&sweeps));
    rundir::write_atomic(&index_dir.file("index.md"), md.as_bytes())?;
    let index: Vec<_> = results
        .iter()
        .map(|(id, b)| serde_json::json!({ "run_id": id, "workload": b.workload }))
        .collect();
    rundir::write_json(
        &index_dir.file("index.json"),
        &serde_json::json!({ "runs": index }),
    )?;
    println!("index: {}", index_dir.file("index.md").display());
    Ok(())
}

/// The thread-sweep section of the profile index.
fn sweep_index(sweeps: &[(String, SweepResult)]) -> String {
    if sweeps.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Thread sweep\n\n| workload | threads | ops/s | p99 | efficiency |\n|---|---:|---:|---:|---:|\n",
    );
    for (id, r) in sweeps {
        debug_assert_eq!(r.kind, SweepKind::Threads);
        for l in &r.levels {
            md.push_str(&format!(
                "| [{}](../{id}/sweep.json) | {} | {:.0} | {} | {:.0} % |\n",
                r.workload,
                l.threads,
                l.bench.throughput.0,
                l.bench.latency.p99,
                100.0 * l.efficiency.unwrap_or(0.0)
            ));
        }
    }
    md.push_str(&format!(
        "\n{} cores available; efficiency = throughput(T) ÷ (T × throughput(1)).\n",
        sweeps[0].1.cores
    ));
    md
}
