//! One function per subcommand: options → run → report → export.

use std::time::SystemTime;

use anyhow::Context as _;

use profkit::db::DbError;
use profkit::measure::{PlanError, RunOptions, Stop};
use profkit::render::table;
use profkit::rundir::{self, OutputError};
use profkit::session::{Session, SessionConfig};
use profkit::workload::{self, WorkloadError};

use profkit::profile::cpu::{self as cpu_profile, CpuError, CpuPassOptions};
use profkit::render::flamegraph::{self as fg, InputError};

use crate::cli::{Cli, Command, CpuArgs, FlamegraphArgs, ProfileArgs, RunArgs};

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Profile(args) => profile(args),
        Command::Cpu(args) => cpu(args),
        Command::Flamegraph(args) => flamegraph(args),
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
        let cpu = cpu_profile::profile_workload(
            &mut session,
            workload::by_name(&name)?,
            &options,
            &outcome,
            &CpuPassOptions::default(),
        )
        .with_context(|| format!("CPU profile of '{name}'"))?;
        eprintln!("  {}", cpu_summary(&cpu));
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

    let index_dir = session.run_dir("profile", started)?;
    let mut md = format!(
        "# profkit profile {}\n\n| workload | ops/s | p50 | p95 | p99 | errors |\n|---|---:|---:|---:|---:|---:|\n",
        index_dir.id
    );
    for r in &rows {
        md.push_str(r);
        md.push('\n');
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
    println!("wrote {}", outcome.dir.path.display());
    for svg in &outcome.flamegraphs {
        println!("wrote {}", svg.display());
    }
    if outcome.no_flamegraph.is_some() {
        outcome.profile.check_enough()?;
    }
    Ok(())
}

fn flamegraph(args: FlamegraphArgs) -> anyhow::Result<()> {
    let output = args.output.clone().unwrap_or_else(|| {
        let mut name = args.file.clone().into_os_string();
        name.push(".svg");
        name.into()
    });
    let svg = fg::render_file(
        &args.file,
        &fg::SvgOptions {
            title: args.title.clone().unwrap_or_default(),
            subtitle: None,
            inverted: args.inverted,
            count_name: "samples".to_string(),
        },
    )?;
    rundir::write_atomic(&output, &svg)?;
    println!("wrote {}", output.display());
    Ok(())
}
