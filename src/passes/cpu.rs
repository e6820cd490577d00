//! The CPU pass: a measured run under the CPU sampler, analysed into top
//! frames and layers, written as `cpu.pb.gz`, `cpu.folded`, `cpu.json` and
//! flamegraphs. `profkit cpu` runs it into a new run folder
//! ([`run`]); `profkit profile` adds it to a bench run's folder
//! ([`after_bench`]).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;

use super::session::{Prepared, RunOutcome, Session};
use crate::analyze::cpu::{self, analyze, CpuReport};
use crate::analyze::rundata::Pass;
use crate::measure::{BenchResult, RunOptions, Stop, Warmup};
use crate::profile::cpu::{profile, CpuOptions, CpuProfile};
use crate::render;
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::Workload;

/// Defaults of the CPU pass, defined once.
pub mod defaults {
    /// Length of the CPU pass of `profkit profile`, in seconds of the
    /// workload's measured throughput.
    pub const PROFILE_PASS_SECONDS: f64 = 0.6;
}

/// Options of a CPU pass (what `profkit cpu` takes beyond run options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPassOptions {
    /// Sampling.
    pub cpu: CpuOptions,
    /// Also render an icicle graph (root at the top).
    pub inverted: bool,
    /// Also render one flamegraph per thread name.
    pub per_thread: bool,
    /// Frames in the top-N tables (default [`cpu::defaults::TOP`]).
    pub top: usize,
}

impl Default for CpuPassOptions {
    fn default() -> Self {
        CpuPassOptions {
            cpu: CpuOptions::default(),
            inverted: false,
            per_thread: false,
            top: cpu::defaults::TOP,
        }
    }
}

/// What a CPU pass left behind.
#[derive(Clone, Debug)]
pub struct CpuOutcome {
    /// The run folder holding `cpu.pb.gz`, `cpu.folded`, `cpu.json`.
    pub dir: RunDir,
    /// The measured run that was profiled (profiling included).
    pub bench: BenchResult,
    /// The profile.
    pub profile: CpuProfile,
    /// Its analysis.
    pub report: CpuReport,
    /// SVG files written.
    pub flamegraphs: Vec<PathBuf>,
    /// Why no flamegraph was drawn (too few samples), if none was.
    pub no_flamegraph: Option<String>,
}

/// Measures a prepared workload under the CPU profiler.
fn measure_profiled(
    session: &Session,
    prepared: &Prepared,
    options: &CpuOptions,
) -> anyhow::Result<(BenchResult, CpuProfile)> {
    let (bench, profile) = profile(options, || session.measure(prepared))?;
    Ok((bench?, profile))
}

/// `profkit cpu`: sets up, measures under the profiler and writes a new run
/// folder (`bench.json`, `manifest.json`, `cpu.pb.gz`, `cpu.folded`,
/// `cpu.json`) and the flamegraphs.
pub fn run(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    pass: &CpuPassOptions,
) -> anyhow::Result<CpuOutcome> {
    let started = SystemTime::now();
    let prepared = session.prepare(workload, options, session.config().sql_trace)?;
    let (bench, profile) = measure_profiled(session, &prepared, &pass.cpu)?;
    let dir = session.run_dir(prepared.workload.name(), started)?;
    store::write_json(&dir.file(files::BENCH), &bench)?;
    session.write_manifest_of(
        &dir,
        &prepared,
        &[Pass::Bench, Pass::Cpu],
        started,
        Some(&bench),
    )?;
    let title = title_of(&bench);
    session.discard(prepared);
    write_outputs(session, dir, bench, profile, &title, pass)
}

/// The CPU pass of `profkit profile`: profiles `workload` again after its
/// bench pass `bench`, for about [`defaults::PROFILE_PASS_SECONDS`] of its
/// measured throughput, and adds the CPU files to the bench pass's folder.
pub fn after_bench(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    bench: &RunOutcome,
    pass: &CpuPassOptions,
) -> anyhow::Result<CpuOutcome> {
    let mut options = options.clone();
    let planned = bench.bench.ops.max(1);
    let ops = (bench.bench.throughput.0 * defaults::PROFILE_PASS_SECONDS).round() as u64;
    options.stop = Some(match bench.bench.plan.stop {
        Stop::Duration(d) => Stop::Duration(Nanos(
            d.0.min((defaults::PROFILE_PASS_SECONDS * 1e9) as u64),
        )),
        Stop::Ops(_) => Stop::Ops(ops.clamp(1, planned)),
    });
    if options.warmup.is_none() {
        options.warmup = Some(Warmup::Auto);
    }
    let prepared = session.prepare(workload, &options, session.config().sql_trace)?;
    let (cpu_bench, profile) = measure_profiled(session, &prepared, &pass.cpu)?;
    session.discard(prepared);
    store::add_passes(&bench.dir.path, &[Pass::Cpu])?;
    let title = title_of(&cpu_bench);
    write_outputs(session, bench.dir.clone(), cpu_bench, profile, &title, pass)
}

/// The flamegraph title: workload and parameters.
fn title_of(bench: &BenchResult) -> String {
    format!("{} — CPU ({})", bench.workload, bench.plan)
}

/// The flamegraph subtitle: samples, effective rate, duration.
pub fn subtitle_of(profile: &CpuProfile) -> String {
    format!(
        "{} samples, {:.0} Hz effective ({} Hz asked), {:.2} s CPU in {:.2} s wall",
        profile.samples,
        profile.effective_rate(),
        profile.frequency,
        profile.cpu_time.as_secs_f64(),
        profile.wall_time.as_secs_f64()
    )
}

fn write_outputs(
    session: &Session,
    dir: RunDir,
    bench: BenchResult,
    profile: CpuProfile,
    title: &str,
    pass: &CpuPassOptions,
) -> anyhow::Result<CpuOutcome> {
    let report = analyze(&profile, &bench.workload, pass.top);
    let folded = render::folded::to_folded(&profile);
    store::write_atomic(&dir.file(files::CPU_FOLDED), folded.as_bytes())?;
    let pb = render::pprof::to_pprof_gz(&profile).context("encoding cpu.pb.gz")?;
    store::write_atomic(&dir.file(files::CPU_PPROF), &pb)?;
    store::write_json(&dir.file(files::CPU_JSON), &report)?;

    let mut flamegraphs = Vec::new();
    let no_flamegraph = match profile.check_enough() {
        Err(e) => Some(e.to_string()),
        Ok(()) => {
            let subtitle = subtitle_of(&profile);
            let mut draw =
                |suffix: &str, lines: &str, inverted: bool, title: &str| -> anyhow::Result<()> {
                    let path = session.flamegraph_path(&dir.id, &format!("cpu{suffix}"));
                    let svg = render::flamegraph::render_folded(
                        lines,
                        &render::flamegraph::SvgOptions {
                            title: title.to_string(),
                            subtitle: Some(subtitle.clone()),
                            inverted,
                            count_name: "samples".to_string(),
                            memory: false,
                        },
                    )?;
                    store::write_atomic(&path, &svg)?;
                    flamegraphs.push(path);
                    Ok(())
                };
            draw("", &folded, false, title)?;
            if pass.inverted {
                draw("-icicle", &folded, true, title)?;
            }
            if pass.per_thread {
                for (thread, _) in profile.threads() {
                    let one = render::folded::to_folded(&profile.only_thread(&thread));
                    let safe: String = thread
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    draw(
                        &format!("-{safe}"),
                        &one,
                        false,
                        &format!("{title} — thread {thread}"),
                    )?;
                }
            }
            None
        }
    };
    Ok(CpuOutcome {
        dir,
        bench,
        profile,
        report,
        flamegraphs,
        no_flamegraph,
    })
}
