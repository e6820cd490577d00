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

use crate::cli::{Cli, Command, ProfileArgs, RunArgs, SqlArgs};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Profile(args) => profile(args),
        Command::Sql(args) => sql(args),
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
