//! One function per subcommand: options → pass → print. Nothing here runs
//! a workload itself; the passes do.

use anyhow::Context as _;

use super::args::*;
use super::reports;
use crate::analyze::scaling::{self, SweepError};
use crate::analyze::stress::StressOptions;
use crate::measure::RunOptions;
use crate::passes::{self, heap::HeapRunOptions, Session, SessionConfig};
use crate::render::{cpu_table, report, scale, table};
use crate::store::{self, RunDir};
use crate::workload::Registry;

/// Runs the parsed command over the harness's workloads (its probes watch
/// the SQL passes of `profile`, `sql` and `check --profile`).
pub fn dispatch(cli: Cli, harness: &super::Harness) -> anyhow::Result<()> {
    let registry = harness.registry();
    let probes = harness.probes();
    match cli.command {
        Command::List => list(registry),
        Command::Run(a) => run(a, registry),
        Command::Profile(a) => profile(a, registry, probes),
        Command::Sweep(a) => sweep(a, registry),
        Command::Stress(a) => stress(a, registry),
        Command::Cpu(a) => cpu(a, registry),
        Command::Flamegraph(a) => reports::flamegraph_cmd(a),
        Command::Sql(a) => sql(a, registry, probes),
        Command::Advise(a) => advise(a, registry),
        Command::Check(a) => reports::check(a, registry, probes),
        Command::Budget(a) => reports::budget_cmd(a),
        Command::Baseline(a) => reports::baseline_cmd(a),
        Command::Compare(a) => reports::compare_cmd(a),
        Command::Report(a) => reports::report_cmd(a),
        Command::Heap(a) => heap(a, registry),
        Command::Leaks(a) => leaks(a, registry),
        Command::HeapPass(a) => heap_pass(a, registry),
        #[cfg(feature = "service")]
        Command::Serve(a) => super::serve::serve(a),
        Command::Export(a) => super::export::export_cmd(a),
        Command::Bisect(a) => super::bisect::bisect_cmd(a),
        Command::Noise(a) => super::noise::noise_cmd(a, registry),
        #[cfg(feature = "service")]
        Command::Load(a) => super::serve::load(a),
        #[cfg(feature = "service")]
        Command::Attach(a) => super::attach::attach(a),
    }
}

fn list(registry: &Registry) -> anyhow::Result<()> {
    let width = registry.entries().iter().map(|e| e.name.len()).max();
    let width = width.unwrap_or(0);
    for e in registry.entries() {
        let w = (e.ctor)();
        let d = w.defaults();
        let s = if d.threads == 1 { "" } else { "s" };
        let name = &e.name;
        println!(
            "{name:width$}  {} [{} rows, {} ops, {} thread{s}]",
            w.description(),
            d.rows,
            d.ops,
            d.threads
        );
    }
    Ok(())
}

/// Prints a pass's result: `value` as JSON with `--json`, else the text
/// `table` makes and the run folder written.
fn print_result(
    json: bool,
    value: &impl serde::Serialize,
    table: impl FnOnce() -> String,
    dir: &RunDir,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}\nwrote {}", table(), dir.path.display());
    }
    Ok(())
}

fn run(a: RunArgs, registry: &Registry) -> anyhow::Result<()> {
    let workload = registry.get(&a.workload)?;
    let mut session = Session::new(SessionConfig::from(&a.run))?;
    let options = RunOptions::from(&a.run);
    match a.rate {
        Some(rate) => {
            let (dir, r) = passes::load::run(&mut session, workload, &options, rate)?;
            print_result(a.json, &r, || scale::load_table(&r), &dir)
        }
        None => {
            let out = session.run(workload, &options)?;
            // The run's findings as the passes rank them (and keep them in
            // the run folder); the top one is shown under the table.
            let ranked = passes::rank_findings(&out.dir.path, &out.bench.workload)?;
            print_result(
                a.json,
                &out.bench,
                || match ranked.findings.first() {
                    Some(f) => format!(
                        "{}\n[{:?}] {}",
                        table::bench_table(&out.bench),
                        f.severity,
                        f.title
                    ),
                    None => table::bench_table(&out.bench),
                },
                &out.dir,
            )
        }
    }
}

pub(super) fn profile(
    a: ProfileArgs,
    registry: &Registry,
    probes: &passes::Probes,
) -> anyhow::Result<()> {
    let baseline = match &a.baseline {
        Some(name) => Some(store::resolve(name, &a.run.out)?),
        None => None,
    };
    let options = passes::profile::ProfileOptions {
        workloads: a.workloads.clone(),
        scale: a.scale,
        heap: !a.no_heap,
        run: RunOptions::from(&a.run),
        baseline,
        noise_model: store::noise::noise_model_for(a.noise_model.as_deref(), &a.run.out)?,
    };
    let config = SessionConfig {
        probes: probes.clone(),
        ..SessionConfig::from(&a.run)
    };
    run_profile(registry, config, &options, a.format)
}

/// Runs the main job and prints its summary (`profile`, `check --profile`).
pub(super) fn run_profile(
    registry: &Registry,
    config: SessionConfig,
    options: &passes::profile::ProfileOptions,
    format: Option<CompareFormat>,
) -> anyhow::Result<()> {
    let out = passes::profile::run(registry, config, options)?;
    let benches: Vec<_> = out.workloads.iter().map(|w| w.bench.clone()).collect();
    println!("{}", table::summary_table(&benches));
    println!("top finding per workload:");
    for w in &out.workloads {
        println!("  {:<20} {}", w.bench.workload, w.top_finding);
        if let Some(a) = &w.advice {
            println!("  {:<20} advice: {a}", "");
        }
    }
    println!(
        "index: {}",
        out.index.file(store::files::INDEX_MD).display()
    );
    if let Some(b) = &out.baseline {
        let comment = b
            .reports
            .iter()
            .find(|p| p.ends_with(passes::compare::COMMENT_MD));
        if let (Some(CompareFormat::Github), Some(comment)) = (format, comment) {
            print!("\n{}", std::fs::read_to_string(comment)?);
            return Ok(());
        }
        if format == Some(CompareFormat::Json) {
            println!("{}", serde_json::to_string_pretty(&b.comparison)?);
            return Ok(());
        }
        print!("\n{}", report::comparison_text(&b.comparison));
        println!("comparison: {}", b.json.display());
        let reports: Vec<_> = b.reports.iter().map(|p| p.display().to_string()).collect();
        println!("reports: {}", reports.join(", "));
    }
    Ok(())
}

fn sweep(a: SweepArgs, registry: &Registry) -> anyhow::Result<()> {
    let ctor = registry.ctor(&a.workload)?;
    let mut base = a.base_options();
    let mut session = Session::new(a.session_config())?;
    let started = std::time::SystemTime::now();
    let result = if a.rows.len() > 1 {
        if a.threads.len() > 1 {
            return Err(SweepError::TwoDimensions.into());
        }
        base.threads = a.threads.first().copied();
        if let Some(t) = passes::sweep::estimate(a.rows.len(), &base) {
            eprintln!(
                "profkit: sweeping rows {:?} (about {t:.0?} of measuring plus setup)",
                a.rows
            );
        }
        passes::sweep::rows(&mut session, &|| ctor(), &base, &a.rows)?
    } else {
        base.rows = a.rows.first().copied();
        let threads = match a.threads.is_empty() {
            true => scaling::defaults::THREADS.to_vec(),
            false => a.threads.clone(),
        };
        passes::sweep::threads(&mut session, &|| ctor(), &base, &threads)?
    };
    let dir = passes::sweep::save(&session, &result, started)?;
    print_result(a.json, &result, || scale::sweep_table(&result), &dir)
}

fn stress(a: StressArgs, registry: &Registry) -> anyhow::Result<()> {
    let ctor = registry.ctor(&a.workload)?;
    let mut session = Session::new(SessionConfig::from(&a.run))?;
    let started = std::time::SystemTime::now();
    let result = passes::stress::run(&mut session, &|| ctor(), &StressOptions::from(&a))?;
    let dir = passes::stress::save(&session, &result, started)?;
    print_result(a.json, &result, || scale::stress_table(&result), &dir)
}

fn cpu(a: CpuArgs, registry: &Registry) -> anyhow::Result<()> {
    let workload = registry.get(&a.workload)?;
    let mut session = Session::new(SessionConfig::from(&a.run))?;
    let pass = passes::cpu::CpuPassOptions::from(&a);
    let out = passes::cpu::run(&mut session, workload, &RunOptions::from(&a.run), &pass)?;
    println!("{}", table::bench_table(&out.bench));
    print!("{}", cpu_table::cpu_report_text(&out.report));
    let ranked = passes::rank_findings(&out.dir.path, &a.workload)?;
    print!("{}", table::findings_text(&ranked));
    println!("wrote {}", out.dir.path.display());
    for svg in &out.flamegraphs {
        println!("wrote {}", svg.display());
    }
    if out.no_flamegraph.is_some() {
        out.profile.check_enough()?;
    }
    Ok(())
}

fn advise(a: AdviseArgs, registry: &Registry) -> anyhow::Result<()> {
    let ctor = registry.ctor(&a.workload)?;
    let config = SessionConfig::from(&a.run);
    let out = passes::advise::run(&config, &|| ctor(), &RunOptions::from(&a.run), &(&a).into())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out.advice)?);
    } else {
        print!("{}", crate::render::advice::advice_text(&out.advice));
        println!("wrote {}", out.dir.path.display());
    }
    Ok(())
}

fn sql(a: SqlArgs, registry: &Registry, probes: &passes::Probes) -> anyhow::Result<()> {
    let workload = registry.get(&a.workload)?;
    let mut session = Session::new(SessionConfig {
        probes: probes.clone(),
        ..SessionConfig::from(&a.run)
    })?;
    let (dir, run) = passes::sql::run(&mut session, workload, &RunOptions::from(&a.run), None)?;
    println!("{}\n", table::sql_table(&run.report, a.top));
    print!("{}", table::findings_text(&run.findings));
    println!("wrote {}", dir.path.display());
    Ok(())
}

fn heap(a: HeapArgs, registry: &Registry) -> anyhow::Result<()> {
    let workload = registry.get(&a.workload)?;
    let mut session = Session::new(SessionConfig::from(&a.run))?;
    let heap_options = HeapRunOptions {
        include_setup: a.include_setup,
        into: None,
        sampled: a.sampled.then_some(a.sample_interval),
    };
    let options = RunOptions::from(&a.run);
    let (dir, out) = passes::heap::run(&mut session, workload, &options, &heap_options)?;
    if a.sampled {
        println!(
            "sampled: one sample per {} on average; figures are estimates",
            crate::units::Bytes(a.sample_interval)
        );
    }
    print!("{}", table::alloc_text(&out.summary, a.top));
    println!("wrote {}", dir.path.display());
    println!(
        "flamegraphs: {}, {}",
        out.svg.display(),
        out.live_svg.display()
    );
    Ok(())
}

fn leaks(a: LeaksArgs, registry: &Registry) -> anyhow::Result<()> {
    let ctor = registry.ctor(&a.workload)?;
    let check = a.check(ctor().defaults().ops)?;
    let mut session = Session::new(SessionConfig::from(&a.run))?;
    let options = RunOptions::from(&a.run);
    let (dir, report) = passes::leaks::run(&mut session, &|| ctor(), &options, check)?;
    print!("{}", table::leak_text(&report));
    println!("wrote {}", dir.file(store::files::LEAKS).display());
    Ok(())
}

fn heap_pass(a: HeapPassArgs, registry: &Registry) -> anyhow::Result<()> {
    let ctor = registry.ctor(&a.workload)?;
    let mut session = Session::new(SessionConfig {
        progress: false,
        ..SessionConfig::from(&a.run)
    })?;
    if let Some(t) = &a.templates {
        session.share_templates(t.clone());
    }
    let into = RunDir::open(&a.into).context("--into must name a run folder")?;
    let options = RunOptions::from(&a.run);
    let (heap, leaks) = passes::heap::child(
        &mut session,
        &|| ctor(),
        &options,
        &into,
        a.heap_ops,
        a.leak_ops,
        a.leak_secs
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(passes::heap::defaults::LEAK_SECS),
    )?;
    let s = &heap.summary;
    println!(
        "heap: {} allocated, peak {}; leaks: {}",
        s.total_bytes, s.peak_bytes, leaks.verdict
    );
    Ok(())
}
