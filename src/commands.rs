//! One function per subcommand: options → run → report → export.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use profkit::analyze::leaks::{self, LeakOptions};
use profkit::analyze::scaling::{self, SweepError, SweepKind, SweepResult};
use profkit::analyze::stress::{self as stress_run, StressError};
use profkit::db::DbError;
use profkit::measure::open_loop::{self, RateError};
use profkit::measure::{PlanError, RunOptions, RunPlan, Stop, Warmup};
use profkit::profile;
use profkit::profile::heap::{self, HeapError, HeapRunOptions};
use profkit::render::{plot, scale, table};
use profkit::rundir::{self, OutputError, RunDir};
use profkit::session::{Session, SessionConfig};
use profkit::units::Nanos;
use profkit::workload::{self, WorkloadError};

use profkit::analyze::budget::{Budget, BudgetError, Status};
use profkit::analyze::compare::{self, BaselineError, CompareOptions, Comparison};
use profkit::analyze::rundata::{self, RunError, RunSet};
use profkit::profile::cpu::{self as cpu_profile, CpuError, CpuPassOptions};
use profkit::render::flamegraph::{self as fg, InputError};
use profkit::render::report::{self, ReportInput};
use profkit::render::{diffgraph, html, json, markdown};

use crate::cli::{
    BaselineArgs, BaselineCommand, CheckArgs, Cli, Command, CompareArgs, CpuArgs, FlamegraphArgs,
    HeapArgs, HeapPassArgs, LeaksArgs, ProfileArgs, ReportArgs, ReportFormat, RunArgs, SqlArgs,
    StressArgs, SweepArgs,
};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Profile(args) => profile(args),
        Command::Sweep(args) => sweep(args),
        Command::Stress(args) => stress(args),
        Command::Cpu(args) => cpu(args),
        Command::Flamegraph(args) => flamegraph(args),
        Command::Sql(args) => sql(args),
        Command::Check(args) => check(args),
        Command::Baseline(args) => baseline(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Report(args) => report_cmd(args),
        Command::Heap(args) => heap(args),
        Command::Leaks(args) => leaks(args),
        Command::HeapPass(args) => heap_pass(args),
    }
}

/// Whether the command profiles the heap in this process (then heap
/// profiling must be switched on first thing in `main`).
pub fn wants_heap_profiling(cli: &Cli) -> bool {
    match &cli.command {
        Command::Heap(_) | Command::HeapPass(_) => true,
        Command::Leaks(args) => args.soak.is_none(),
        _ => false,
    }
}

/// 2 for bad input (a bad flag value, an unknown name, a file that is not
/// what it should be), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let bad_input = e.chain().any(|c| {
        c.is::<PlanError>()
            || c.is::<WorkloadError>()
            || c.is::<InputError>()
            || matches!(
                c.downcast_ref::<CpuError>(),
                Some(CpuError::BadFrequency(_) | CpuError::TooFewSamples { .. })
            )
            || matches!(
                c.downcast_ref::<HeapError>(),
                Some(HeapError::Parse { .. } | HeapError::Invalid { .. } | HeapError::Read { .. })
            )
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
            || c.is::<BudgetError>()
            || c.is::<RunError>()
            || c.is::<BadTarget>()
            || matches!(
                c.downcast_ref::<BaselineError>(),
                Some(BaselineError::BadName(_) | BaselineError::Run(_))
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
    // Resolve the baseline before running anything.
    let baseline = match &args.baseline {
        Some(name) => Some(RunSet::resolve(name, &args.run.out)?),
        None => None,
    };
    let started = SystemTime::now();
    // The bench pass measures without the SQL hook; the SQL pass comes after.
    let mut session = Session::new(SessionConfig {
        sql_trace: false,
        ..SessionConfig::from(&args.run)
    })?;
    let base = RunOptions::from(&args.run);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for w in workloads {
        if profkit::measure::interrupted() {
            eprintln!("profkit: interrupted: skipping the remaining workloads");
            break;
        }
        let name = w.name().to_string();
        let mut options = base.clone();
        if options.stop.is_none() {
            let ops = ((w.defaults().ops as f64 * args.scale).round() as u64).max(1);
            options.stop = Some(Stop::Ops(ops));
        }
        eprintln!("profkit: {name} ...");
        let defaults = w.defaults();
        let outcome = session
            .run(w, &options)
            .with_context(|| format!("profiling '{name}'"))?;
        let cpu = cpu_profile::profile_workload(
            &mut session,
            workload::by_name(&name)?,
            &options,
            &outcome,
            &CpuPassOptions::default(),
        )
        .with_context(|| format!("CPU profile of '{name}'"))?;
        eprintln!("  {}", cpu_summary(&cpu));
        // Extra passes: each runs the workload again, separately, into the
        // same run folder, so no profiler distorts another's figures.
        let mut sql_options = options.clone();
        if let (None, Some(Stop::Ops(n))) = (base.stop, sql_options.stop) {
            sql_options.stop = Some(Stop::Ops((n / 2).max(1)));
        }
        let (_, sql_run) = sql_pass(&mut session, &name, &sql_options, Some(&outcome.dir))
            .with_context(|| format!("SQL pass of '{name}'"))?;
        // The summary shows statements per operation from the SQL pass (a
        // count, which the hook does not distort); bench.json keeps the
        // bench pass's own figures.
        let mut outcome = outcome;
        outcome.bench.sql = sql_run.bench.sql;
        if !args.no_heap {
            heap_child(
                &name,
                defaults.ops,
                args.scale,
                &args,
                &session,
                &outcome.dir,
            );
        }
        // Findings from every pass's data in the run folder, ranked.
        let ranked = profkit::analyze::findings::for_run_dir(&outcome.dir.path, &name);
        rundir::write_json(&outcome.dir.file("findings.json"), &ranked)?;
        let top = ranked
            .top()
            .map(|f| format!("[{:?}] {}", f.severity, f.title))
            .unwrap_or_else(|| "no findings".into());
        findings.push((name.clone(), top));
        let graphs = flamegraph_links(session.config(), &outcome.dir.id);
        rows.push(format!(
            "| [{name}](../{id}/bench.json) | {:.0} | {} | {} | {} | {} | {graphs} |",
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
    println!("top finding per workload:");
    for (name, top) in &findings {
        println!("  {name:<20} {top}");
    }
    let sweeps = profile_sweeps(&mut session, &names, &base)?;

    let index_dir = session.run_dir("profile", started)?;
    let mut md = format!(
        "# profkit profile {}\n\n| workload | ops/s | p50 | p95 | p99 | errors | flamegraphs |\n|---|---:|---:|---:|---:|---:|---|\n",
        index_dir.id
    );
    for r in &rows {
        md.push_str(r);
        md.push('\n');
    }
    md.push_str("\n## Top finding per workload\n\n");
    for (name, top) in &findings {
        md.push_str(&format!("- **{name}**: {}\n", markdown::escape(top)));
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
    if let Some(base) = &baseline {
        profile_against_baseline(base, &index_dir, &session.config().flamegraph_dir)?;
    }
    Ok(())
}

/// The SQL pass over one workload, into `dir` (a new run folder when `None`).
fn sql_pass(
    session: &mut Session,
    name: &str,
    options: &RunOptions,
    dir: Option<&RunDir>,
) -> anyhow::Result<(RunDir, profile::sql::SqlRun)> {
    let started = SystemTime::now();
    let prepared = session.prepare(workload::by_name(name)?, options, true)?;
    let run = profile::sql::profile_prepared(&prepared, &session.progress(name))?;
    let dir = match dir {
        Some(d) => d.clone(),
        None => {
            let d = session.run_dir(name, started)?;
            rundir::write_json(&d.file("bench.json"), &run.bench)?;
            session.write_manifest(&d, &prepared, &["bench", "sql"], started)?;
            d
        }
    };
    profile::sql::write(&dir, &run, &session.config().flamegraph_dir)?;
    session.discard(prepared);
    Ok((dir, run))
}

fn sql(args: SqlArgs) -> anyhow::Result<()> {
    workload::by_name(&args.workload)?;
    let options = RunOptions::from(&args.run);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let (dir, run) = sql_pass(&mut session, &args.workload, &options, None)?;
    println!("{}", table::sql_table(&run.report, args.top));
    println!();
    print!("{}", table::findings_text(&run.findings));
    println!("wrote {}", dir.path.display());
    Ok(())
}

fn heap(args: HeapArgs) -> anyhow::Result<()> {
    let workload = workload::by_name(&args.workload)?;
    let options = RunOptions::from(&args.run);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let heap_options = HeapRunOptions {
        include_setup: args.include_setup,
        into: None,
    };
    let (dir, out) = heap::run_heap(&mut session, workload, &options, &heap_options)?;
    print!("{}", heap::summary_text(&out.summary, args.top));
    println!("wrote {}", dir.path.display());
    println!(
        "flamegraphs: {}, {}",
        out.svg.display(),
        out.live_svg.display()
    );
    Ok(())
}

/// The leak check's N and warm-up from the run flags and the workload's defaults.
fn leak_options(run: &crate::cli::RunFlags, default_ops: u64) -> anyhow::Result<LeakOptions> {
    let mut leak = LeakOptions::for_ops(
        run.ops
            .unwrap_or(default_ops / leaks::defaults::OPS_DIVISOR),
    );
    match run.warmup.map(|w| w.0) {
        None => {}
        Some(Warmup::Ops(n)) => leak.warmup = n,
        Some(_) => anyhow::bail!(
            "--warmup of `profkit leaks` must be an operation count (e.g. 2000), not a duration"
        ),
    }
    anyhow::ensure!(
        run.duration.is_none(),
        "--duration does not apply to `profkit leaks`; use --ops N, or --soak DURATION"
    );
    Ok(leak)
}

fn leaks(args: LeaksArgs) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let name = args.workload.clone();
    let probe = workload::by_name(&name)?;
    let defaults = probe.defaults();
    let description = probe.description().to_string();
    drop(probe);
    let make = || workload::by_name(&name).expect("the name was checked above");
    let mut options = RunOptions::from(&args.run);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let report = if let Some(d) = args.soak {
        anyhow::ensure!(!d.is_zero(), PlanError::EmptyRun);
        options.stop = None;
        let soak = leaks::soak(&mut session, &make, &options, d)?;
        let mut r = leaks::LeakReport::skipped(&name);
        r.verdict = soak.verdict.clone();
        r.soak = Some(soak);
        r
    } else {
        let leak = leak_options(&args.run, defaults.ops)?;
        options.stop = None;
        options.warmup = None;
        let scratch = session.temp_dir().join("leaks");
        leaks::check_growth(&mut session, &make, &options, leak, &scratch)?
    };
    let dir = session.run_dir(&name, started)?;
    rundir::write_json(&dir.file("leaks.json"), &report)?;
    let plan = RunPlan::resolve(&RunOptions::from(&args.run), defaults)?;
    let manifest = rundir::Manifest {
        schema_version: rundir::MANIFEST_VERSION,
        run_id: dir.id.clone(),
        workload: name.clone(),
        description,
        plan,
        passes: vec![if args.soak.is_some() { "soak" } else { "leaks" }.to_string()],
        git_revision: rundir::git_revision(),
        host: rundir::Host::current(),
        tools: rundir::ToolVersions::current(),
        started_at: rundir::rfc3339(started),
        finished_at: rundir::rfc3339(SystemTime::now()),
    };
    rundir::write_json(&dir.file("manifest.json"), &manifest)?;
    print!("{}", leaks::report_text(&report));
    println!("wrote {}", dir.file("leaks.json").display());
    Ok(())
}

/// `profkit profile`'s heap and leak passes for one workload: a child
/// process (heap tracking would distort the timing and CPU passes here).
/// A failure is a warning, not the end of the profile.
fn heap_child(
    name: &str,
    default_ops: u64,
    scale: f64,
    args: &ProfileArgs,
    session: &Session,
    dir: &RunDir,
) {
    // About a twentieth of the bench pass for the heap profile, N = a
    // fiftieth for the leak check (≈ 19N operations with its warm-up).
    let scaled = default_ops as f64 * scale;
    let heap_ops = ((scaled / 20.0).round() as u64).max(1);
    let leak_ops = ((scaled / 50.0).round() as u64).max(1);
    let run = || -> anyhow::Result<String> {
        let exe = std::env::current_exe().context("finding the profkit executable")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("heap-pass")
            .arg(name)
            .arg("--into")
            .arg(&dir.path)
            .arg("--templates")
            .arg(session.temp_dir())
            .arg("--heap-ops")
            .arg(heap_ops.to_string())
            .arg("--leak-ops")
            .arg(leak_ops.to_string())
            .arg("--out")
            .arg(&args.run.out)
            .stderr(std::process::Stdio::piped());
        if let Some(r) = args.run.rows {
            cmd.arg("--rows").arg(r.to_string());
        }
        if let Some(t) = args.run.threads {
            cmd.arg("--threads").arg(t.to_string());
        }
        if let Some(s) = args.run.seed {
            cmd.arg("--seed").arg(s.to_string());
        }
        let out = cmd.output().context("starting the heap pass")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .rfind(|l| l.starts_with("Error:"))
                .unwrap_or("no error message");
            anyhow::bail!("heap pass failed ({}): {line}", out.status);
        }
        heap::add_passes(&dir.path, &["heap", "leaks"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    match run() {
        Ok(line) => eprintln!("profkit: {name}: {line}"),
        Err(e) => eprintln!("profkit: warning: {name}: {e:#}"),
    }
}

/// Seconds of dhat-tracked work in `profkit profile`'s heap pass.
const HEAP_PASS_SECS: f64 = 0.3;
/// Allocations tracked by `profkit profile`'s leak check (about 0.75 s).
const LEAK_BLOCKS: f64 = 150_000.0;

fn heap_pass(args: HeapPassArgs) -> anyhow::Result<()> {
    let name = args.workload.clone();
    let workload = workload::by_name(&name)?;
    let make = || workload::by_name(&name).expect("the name was checked above");
    let mut session = Session::new(SessionConfig {
        progress: false,
        ..SessionConfig::from(&args.run)
    })?;
    if let Some(t) = &args.templates {
        session.share_templates(t.clone());
    }
    let id = args
        .into
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("--into must name a run folder")?;
    let into = RunDir {
        id,
        path: args.into.clone(),
    };
    // The heap pass: at most `--heap-ops` operations, and at most
    // HEAP_PASS_SECS under dhat (tracking costs ~5 µs per allocation).
    let mut options = RunOptions::from(&args.run);
    options.stop = Some(Stop::Duration(Nanos::from(Duration::from_secs_f64(
        HEAP_PASS_SECS,
    ))));
    options.warmup = Some(Warmup::Ops((args.heap_ops / 10).clamp(1, 100)));
    let heap_options = HeapRunOptions {
        include_setup: false,
        into: Some(into.clone()),
    };
    let (_, out) = heap::run_heap(&mut session, workload, &options, &heap_options)?;
    // Size the leak check by allocations per operation seen in the heap
    // pass: 19N operations (warm-up 4N + N + 2N + 4N) within LEAK_BLOCKS.
    let ops_done = out.ops.max(1);
    let per_op = out.summary.total_blocks as f64 / ops_done as f64;
    let budget = (LEAK_BLOCKS / per_op.max(1e-9)).floor() as u64;
    let report = if budget < 7 {
        let mut r = leaks::LeakReport::skipped(&name);
        r.verdict = format!(
            "skipped: one operation allocates {per_op:.0} blocks, too many for the profile's time budget; run `profkit leaks {name}`"
        );
        r
    } else {
        let n = args.leak_ops.min(budget / 19).max(1);
        let mut leak = LeakOptions::for_ops(n);
        leak.warmup = leak.warmup.min(budget.saturating_sub(7 * n) / 3);
        options.stop = None;
        options.warmup = None;
        let scratch = session.temp_dir().join("leaks");
        leaks::check_growth(&mut session, &make, &options, leak, &scratch)?
    };
    rundir::write_json(&into.file("leaks.json"), &report)?;
    println!(
        "heap: {} allocated, peak {}; leaks: {}",
        out.summary.total_bytes, out.summary.peak_bytes, report.verdict
    );
    Ok(())
}

fn cpu_summary(cpu: &cpu_profile::CpuOutcome) -> String {
    let r = &cpu.report;
    let top = r
        .top_self
        .first()
        .map(|f| format!("; hottest: {} ({:.0} %)", f.function, f.percent))
        .unwrap_or_default();
    let mut s = format!(
        "cpu: {} samples at {:.0} Hz effective{top}",
        r.samples, r.effective_rate
    );
    for w in &r.warnings {
        s.push_str(&format!("\n  warning: {w}"));
    }
    s
}

fn cpu(args: CpuArgs) -> anyhow::Result<()> {
    let workload = workload::by_name(&args.workload)?;
    let options = RunOptions::from(&args.run);
    let pass = CpuPassOptions::from(&args);
    let mut session = Session::new(SessionConfig::from(&args.run))?;
    let outcome = cpu_profile::run_cpu(&mut session, workload, &options, &pass)?;
    println!("{}", table::bench_table(&outcome.bench));
    print!(
        "{}",
        profkit::render::cpu_table::cpu_report_text(&outcome.report)
    );
    let ranked = profkit::analyze::findings::for_run_dir(&outcome.dir.path, &args.workload);
    rundir::write_json(&outcome.dir.file("findings.json"), &ranked)?;
    print!("{}", table::findings_text(&ranked));
    println!("wrote {}", outcome.dir.path.display());
    for svg in &outcome.flamegraphs {
        println!("wrote {}", svg.display());
    }
    if outcome.no_flamegraph.is_some() {
        outcome.profile.check_enough()?;
    }
    Ok(())
}

/// A budget check that failed: exit 1.
#[derive(Debug, thiserror::Error)]
#[error(
    "budget check failed: {critical} critical threshold(s) broken, {warnings} target(s) missed"
)]
struct CheckFailed {
    critical: usize,
    warnings: usize,
}

/// A `report` target that is neither a run nor BASE..CURRENT.
#[derive(Debug, thiserror::Error)]
#[error(
    "'{0}' is neither a run folder, a profile session, a baseline name, nor BASE..CURRENT of those"
)]
pub struct BadTarget(String);

fn resolve_runs(runs: &[String], out: &std::path::Path) -> anyhow::Result<Vec<RunSet>> {
    if runs.is_empty() {
        let newest = rundata::newest_session(out)?;
        return Ok(vec![RunSet::load(&newest)?]);
    }
    Ok(runs
        .iter()
        .map(|r| RunSet::resolve(r, out))
        .collect::<Result<_, _>>()?)
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let budget = Budget::read(&args.budget)?;
    if args.profile {
        // The budget is valid: run the workloads, then check what they wrote.
        let run = crate::cli::RunFlags {
            rows: None,
            threads: None,
            ops: None,
            duration: None,
            warmup: None,
            seed: None,
            db: None,
            out: args.out.clone(),
        };
        profile(ProfileArgs {
            workloads: args.workloads.clone(),
            scale: args.scale,
            no_heap: false,
            baseline: None,
            run,
        })?;
    }
    let sets = resolve_runs(&args.runs, &args.out)?;
    let report = budget.check(sets.iter().flat_map(|s| s.runs.iter()));
    for line in &report.lines {
        println!("{line}");
    }
    let (critical, warnings) = (report.count(Status::Fail), report.count(Status::Warn));
    println!(
        "{} line(s): {} ok, {warnings} target(s) missed, {critical} critical, {} not measured",
        report.lines.len(),
        report.count(Status::Ok),
        report.count(Status::NotMeasured)
    );
    if critical > 0 || (args.strict && warnings > 0) {
        return Err(CheckFailed { critical, warnings }.into());
    }
    Ok(())
}

fn baseline(args: BaselineArgs) -> anyhow::Result<()> {
    match args.command {
        BaselineCommand::Save { name, run } => {
            let set = match run {
                Some(r) => RunSet::resolve(&r, &args.out)?,
                None => RunSet::load(&rundata::newest_session(&args.out)?)?,
            };
            let dest = compare::save_baseline(&args.out, &name, &set)?;
            println!(
                "saved baseline '{name}' ({} run(s): {}) to {}",
                set.runs.len(),
                set.runs
                    .iter()
                    .map(|r| r.workload.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                dest.display()
            );
        }
        BaselineCommand::List => {
            let all = compare::list_baselines(&args.out);
            if all.is_empty() {
                println!(
                    "no baselines under {}",
                    rundata::baselines_dir(&args.out).display()
                );
            }
            for b in all {
                println!(
                    "{:<20} {}  git {}  {} workload(s)  from {}",
                    b.name,
                    b.saved_at,
                    b.git_revision.as_deref().unwrap_or("unknown"),
                    b.workloads.len(),
                    b.source
                );
            }
        }
    }
    Ok(())
}

/// Compares and writes the differential flamegraphs of every workload with
/// CPU profiles on both sides.
fn compare_and_draw(
    base: &RunSet,
    current: &RunSet,
    noise: f64,
    flamegraphs: &std::path::Path,
) -> anyhow::Result<Comparison> {
    let options = CompareOptions {
        noise,
        ..CompareOptions::default()
    };
    let mut comparison = compare::compare(base, current, &options);
    for (w, (b, c)) in comparison
        .workloads
        .iter_mut()
        .zip(compare::pair(base, current))
    {
        if let (Some(bf), Some(cf)) = (&b.cpu_folded, &c.cpu_folded) {
            let title = format!("{}: {} → {}", c.workload, b.id, c.id);
            match diffgraph::write_differential(flamegraphs, &c.id, bf, cf, &title) {
                Ok(paths) => w.flamegraphs = paths,
                Err(e) => eprintln!(
                    "profkit: no differential flamegraph for '{}': {e}",
                    c.workload
                ),
            }
        }
    }
    Ok(comparison)
}

fn compare_cmd(args: CompareArgs) -> anyhow::Result<()> {
    let base = RunSet::resolve(&args.base, &args.out)?;
    let current = RunSet::resolve(&args.current, &args.out)?;
    let comparison = compare_and_draw(&base, &current, args.noise, &args.flamegraphs)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", report::comparison_text(&comparison));
    }
    Ok(())
}

fn flamegraph(args: FlamegraphArgs) -> anyhow::Result<()> {
    let output = args.output.clone().unwrap_or_else(|| {
        let mut name = args.file.clone().into_os_string();
        name.push(".svg");
        name.into()
    });
    // A dhat heap profile is weighted by bytes; pprof and folded files by samples.
    let is_heap = std::fs::read(&args.file)
        .map(|b| b.trim_ascii_start().starts_with(b"{"))
        .unwrap_or(false);
    let svg = fg::render_file(
        &args.file,
        &fg::SvgOptions {
            title: args.title.clone().unwrap_or_default(),
            subtitle: None,
            inverted: args.inverted,
            count_name: if is_heap { "bytes" } else { "samples" }.to_string(),
            memory: is_heap,
        },
    )?;
    rundir::write_atomic(&output, &svg)?;
    println!("wrote {}", output.display());
    Ok(())
}

/// Markdown links, from a session index (`<out>/<session>/index.md`), to a
/// run's flamegraphs that exist.
fn flamegraph_links(config: &SessionConfig, run_id: &str) -> String {
    let (out, graphs) = (&config.out_dir, &config.flamegraph_dir);
    let prefix = if out.is_relative() && graphs.is_relative() {
        let up = "../".repeat(out.components().count() + 1);
        format!("{up}{}", graphs.display())
    } else {
        std::path::absolute(graphs)
            .unwrap_or_else(|_| graphs.clone())
            .display()
            .to_string()
    };
    ["cpu", "sql", "heap", "heap-live"]
        .iter()
        .filter(|kind| graphs.join(format!("{run_id}-{kind}.svg")).exists())
        .map(|kind| format!("[{kind}]({prefix}/{run_id}-{kind}.svg)"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Splits `BASE..CURRENT` where both sides resolve.
fn split_range(target: &str, out: &std::path::Path) -> Option<(RunSet, RunSet)> {
    target.match_indices("..").find_map(|(i, _)| {
        let (l, r) = (&target[..i], &target[i + 2..]);
        if l.is_empty() || r.is_empty() {
            return None;
        }
        Some((RunSet::resolve(l, out).ok()?, RunSet::resolve(r, out).ok()?))
    })
}

fn render_report(input: &ReportInput<'_>, format: ReportFormat) -> String {
    match format {
        ReportFormat::Md => markdown::render(input),
        ReportFormat::Html => html::render(input),
        ReportFormat::Json => json::render(input),
    }
}

fn report_cmd(args: ReportArgs) -> anyhow::Result<()> {
    let single = RunSet::resolve(&args.target, &args.out);
    let text = match single {
        Ok(set) => {
            let budget_path = args.budget.clone().or_else(|| {
                let p = std::path::PathBuf::from("profkit.toml");
                p.is_file().then_some(p)
            });
            let check = match budget_path {
                Some(p) => Some(Budget::read(&p)?.check(&set.runs)),
                None => None,
            };
            render_report(
                &ReportInput::Runs {
                    set: &set,
                    check: check.as_ref(),
                },
                args.format,
            )
        }
        Err(e) => {
            let Some((base, current)) = split_range(&args.target, &args.out) else {
                if args.target.contains("..") {
                    return Err(BadTarget(args.target.clone()).into());
                }
                return Err(e.into());
            };
            let options = CompareOptions {
                noise: args.noise,
                ..CompareOptions::default()
            };
            let comparison = compare::compare(&base, &current, &options);
            render_report(
                &ReportInput::Compare {
                    base: &base,
                    current: &current,
                    comparison: &comparison,
                },
                args.format,
            )
        }
    };
    match &args.output {
        Some(p) => {
            rundir::write_atomic(p, text.as_bytes())?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The end of `profkit profile --baseline NAME`: the comparison, its
/// flamegraphs and reports in the session folder.
fn profile_against_baseline(
    base: &RunSet,
    index_dir: &RunDir,
    flamegraphs: &std::path::Path,
) -> anyhow::Result<()> {
    let current = RunSet::load(&index_dir.path)?;
    let comparison = compare_and_draw(base, &current, compare::defaults::NOISE, flamegraphs)?;
    print!("\n{}", report::comparison_text(&comparison));
    rundir::write_json(&index_dir.file("compare.json"), &comparison)?;
    let input = ReportInput::Compare {
        base,
        current: &current,
        comparison: &comparison,
    };
    let md = index_dir.file("report.md");
    let html_path = index_dir.file("report.html");
    rundir::write_atomic(&md, markdown::render(&input).as_bytes())?;
    rundir::write_atomic(&html_path, html::render(&input).as_bytes())?;
    println!("comparison: {}", index_dir.file("compare.json").display());
    println!("reports: {}, {}", md.display(), html_path.display());
    Ok(())
}
