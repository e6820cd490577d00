//! One function per subcommand: options → run → report → export.

use std::time::SystemTime;

use anyhow::Context as _;

use profkit::db::DbError;
use profkit::measure::{PlanError, RunOptions, Stop};
use profkit::profile;
use profkit::render::table;
use profkit::rundir::{self, OutputError, RunDir};
use profkit::session::{Session, SessionConfig};
use profkit::workload::{self, WorkloadError};

use profkit::analyze::budget::{Budget, BudgetError, Status};
use profkit::analyze::compare::{self, BaselineError, CompareOptions, Comparison};
use profkit::analyze::rundata::{self, RunError, RunSet};
use profkit::render::report::{self, ReportInput};
use profkit::render::{diffgraph, html, json, markdown};

use crate::cli::{
    BaselineArgs, BaselineCommand, CheckArgs, Cli, Command, CompareArgs, ProfileArgs, ReportArgs,
    ReportFormat, RunArgs, SqlArgs,
};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Profile(args) => profile(args),
        Command::Sql(args) => sql(args),
        Command::Check(args) => check(args),
        Command::Baseline(args) => baseline(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Report(args) => report_cmd(args),
    }
}

/// 2 for bad input (a bad flag value, an unknown name, a file that is not
/// what it should be), 1 for anything else.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let bad_input = e.chain().any(|c| {
        c.is::<PlanError>()
            || c.is::<WorkloadError>()
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
        // Extra passes: each runs the workload again, separately, into the
        // same run folder, so no profiler distorts another's figures.
        let mut sql_options = options.clone();
        if let (None, Some(Stop::Ops(n))) = (base.stop, sql_options.stop) {
            sql_options.stop = Some(Stop::Ops((n / 2).max(1)));
        }
        let (_, sql_run) = sql_pass(&mut session, &name, &sql_options, Some(&outcome.dir))
            .with_context(|| format!("SQL pass of '{name}'"))?;
        let top = sql_run
            .findings
            .top()
            .map(|f| format!("[{:?}] {}", f.severity, f.title))
            .unwrap_or_else(|| "no findings".into());
        findings.push((name.clone(), top));
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
    println!("top finding per workload:");
    for (name, top) in &findings {
        println!("  {name:<20} {top}");
    }

    let index_dir = session.run_dir("profile", started)?;
    let mut md = format!(
        "# profkit profile {}\n\n| workload | ops/s | p50 | p95 | p99 | errors |\n|---|---:|---:|---:|---:|---:|\n",
        index_dir.id
    );
    for r in &rows {
        md.push_str(r);
        md.push('\n');
    }
    md.push_str("\n## Top finding per workload\n\n");
    for (name, top) in &findings {
        md.push_str(&format!("- **{name}**: {}\n", top.replace('<', "&lt;")));
    }
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
    profile::sql::write(&dir, &run)?;
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
