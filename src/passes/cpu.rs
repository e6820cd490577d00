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
use crate::analyze::rundata::{CpuSampling, Pass};
use crate::measure::{BenchResult, RunOptions, Stop, Warmup};
use crate::profile::cpu::{profile, CpuError, CpuOptions, CpuProfile, SamplerChoice};
use crate::render;
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::Workload;

/// Defaults of the CPU pass, defined once.
pub mod defaults {
    /// Samples the CPU pass of `profkit profile` aims at per workload: a
    /// 30 % share is then known within ±3 points (95 %). The warm-up is
    /// sampled too, so the passes got 1,550–2,750 at 1,200 here.
    pub const PROFILE_PASS_SAMPLES: f64 = 1_100.0;
    /// Share of the asked rate the pass counts on getting (the perf
    /// sampler delivered 88–95 % in the main job here; the warm-up's
    /// samples make up the rest).
    pub const EXPECTED_CAPTURE: f64 = 1.0;
    /// Longest CPU pass, in seconds of the workload's measured throughput
    /// (a workload that burns little CPU per second gets fewer samples).
    pub const PROFILE_PASS_MAX_SECONDS: f64 = 3.0;
    /// Shortest CPU pass, in the same seconds.
    pub const PROFILE_PASS_MIN_SECONDS: f64 = 0.3;
    /// Sampling rate of the main job's CPU pass of a workload that writes
    /// to disk ([`WRITES_PER_OP`] or more per operation in its bench
    /// pass): the same samples in a quarter of the operations, so a
    /// quarter of the writes (BENCHMARKS.md, "What the main job writes to
    /// disk"). The per-thread `cpu-clock` keeps up: side by side with 997
    /// Hz on concurrent-write it delivered 90–91 % of the asked rate
    /// either way, with the same top frames; the sampler then costs ~10 %
    /// more CPU time. A prime, as 997 is.
    pub const WRITER_FREQUENCY: u32 = 3989;
    /// Bytes written to disk per operation of the bench pass from which a
    /// workload counts as a writer: a page (readers write none).
    pub const WRITES_PER_OP: f64 = 4096.0;
    /// Fewest operations a CPU pass at [`WRITER_FREQUENCY`] must still
    /// run: a profile of a few large operations depends on which ones they
    /// were (populate's CPU pass of 5 transactions of 1,000 rows instead
    /// of 16 showed FTS5's merge at 5–6 % instead of 3–4 %), one of
    /// hundreds does not (mixed, concurrent-write: the same top frames).
    pub const WRITER_MIN_OPS: u64 = 100;
}

/// Operations that give the CPU pass about [`defaults::PROFILE_PASS_SAMPLES`]
/// × `scale` samples at `frequency`, from the bench pass's CPU time per
/// operation, within the pass's time bounds (× `scale` too: the main job's
/// `--scale`).
pub fn pass_ops(bench: &BenchResult, frequency: u32, scale: f64) -> u64 {
    let ops = bench.ops.max(1) as f64;
    let throughput = bench.throughput.0.max(1e-9);
    let cpu_per_op = ((bench.cpu.user.0 + bench.cpu.system.0) as f64 / 1e9 / ops).max(1e-9);
    let cpu_needed = scale * defaults::PROFILE_PASS_SAMPLES
        / (f64::from(frequency) * defaults::EXPECTED_CAPTURE);
    let for_samples = cpu_needed / cpu_per_op;
    let lo = scale * throughput * defaults::PROFILE_PASS_MIN_SECONDS;
    let hi = scale * throughput * defaults::PROFILE_PASS_MAX_SECONDS;
    for_samples.clamp(lo, hi.max(lo)).round().max(1.0) as u64
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
    let (bench, mut profile) = profile(options, || session.measure(prepared))?;
    if !session.config().keep_runtime_frames {
        profile.fold_runtime_frames();
    }
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
/// bench pass `bench`, sized by [`pass_ops`] to give about
/// [`defaults::PROFILE_PASS_SAMPLES`] samples, and adds the CPU files to the
/// bench pass's folder.
pub fn after_bench(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    bench: &RunOutcome,
    pass: &CpuPassOptions,
    scale: f64,
) -> anyhow::Result<CpuOutcome> {
    let mut options = options.clone();
    let stop = |frequency: u32| {
        let ops = pass_ops(&bench.bench, frequency, scale);
        match bench.bench.plan.stop {
            Stop::Duration(_) => Stop::Duration(Nanos(
                (ops as f64 / bench.bench.throughput.0.max(1e-9) * 1e9) as u64,
            )),
            Stop::Ops(_) => Stop::Ops(ops),
        }
    };
    let writer = writer_sampling(bench, &pass.cpu, scale);
    options.stop = Some(stop(writer.as_ref().unwrap_or(&pass.cpu).frequency()));
    if options.warmup.is_none() {
        options.warmup = Some(Warmup::Auto);
    }
    let mut prepared = session.prepare(workload, &options, session.config().sql_trace)?;
    let measured = match &writer {
        Some(fast) => match measure_profiled(session, &prepared, fast) {
            // The per-thread clock refused (it failed before measuring):
            // the default sampler, sized for its own rate.
            Err(e) if matches!(e.downcast_ref(), Some(CpuError::Start(_))) => {
                prepared.plan.stop = stop(pass.cpu.frequency());
                measure_profiled(session, &prepared, &pass.cpu)
            }
            other => other,
        },
        None => measure_profiled(session, &prepared, &pass.cpu),
    };
    session.discard(prepared);
    let (cpu_bench, profile) = measured?;
    store::add_passes(&bench.dir.path, &[Pass::Cpu])?;
    let title = title_of(&cpu_bench);
    write_outputs(session, bench.dir.clone(), cpu_bench, profile, &title, pass)
}

/// How the main job samples a workload whose bench pass wrote
/// [`defaults::WRITES_PER_OP`] or more to disk per operation, when no
/// sampler or frequency was asked for: the per-thread clock at
/// [`defaults::WRITER_FREQUENCY`] (or an error, never the process timer
/// at that rate), if the pass then still runs [`defaults::WRITER_MIN_OPS`]
/// operations. `None`: the pass's own options.
fn writer_sampling(bench: &RunOutcome, asked: &CpuOptions, scale: f64) -> Option<CpuOptions> {
    let per_op = bench.written? as f64 / bench.bench.ops.max(1) as f64;
    let default = asked.frequency.is_none() && asked.sampler == SamplerChoice::Auto;
    let ops = pass_ops(&bench.bench, defaults::WRITER_FREQUENCY, scale);
    let enough = ops >= defaults::WRITER_MIN_OPS;
    (default && enough && per_op >= defaults::WRITES_PER_OP).then_some(CpuOptions {
        frequency: Some(defaults::WRITER_FREQUENCY),
        sampler: SamplerChoice::Perf,
    })
}

/// The flamegraph title: workload and parameters.
fn title_of(bench: &BenchResult) -> String {
    format!("{} — CPU ({})", bench.workload, bench.plan)
}

/// The flamegraph subtitle: samples, effective rate, duration.
pub fn subtitle_of(profile: &CpuProfile) -> String {
    format!(
        "{} samples, {:.0} Hz effective ({} Hz asked of the {} sampler), {:.2} s CPU in {:.2} s wall",
        profile.samples,
        profile.effective_rate(),
        profile.frequency,
        profile.sampler,
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
    store::set_cpu_sampling(
        &dir.path,
        CpuSampling {
            sampler: profile.sampler,
            frequency: profile.frequency,
            effective_rate: profile.effective_rate(),
            samples: profile.samples,
            note: profile.sampler_note.clone(),
        },
    )?;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::fixture::BenchFixture;

    fn bench(ops: u64, cpu_ms: u64, throughput: f64) -> BenchResult {
        BenchFixture {
            ops,
            elapsed: 1,
            throughput,
            cpu_user: cpu_ms * 1_000_000,
            ..BenchFixture::default()
        }
        .build()
    }

    #[test]
    fn the_profile_pass_is_sized_for_its_samples_within_bounds() {
        // 1 ms of CPU per op: 1,100 samples at 997 Hz need 1.103 s.
        assert_eq!(pass_ops(&bench(1000, 1000, 1000.0), 997, 1.0), 1103);
        // The main job's --scale scales it.
        assert_eq!(pass_ops(&bench(1000, 1000, 1000.0), 997, 0.5), 552);
        // Cheap ops: capped at 3 s of throughput.
        assert_eq!(pass_ops(&bench(1000, 1, 1000.0), 997, 1.0), 3000);
        // Costly ops (100 ms of CPU each): never under 0.3 s of throughput.
        assert_eq!(pass_ops(&bench(1000, 100_000, 1000.0), 997, 1.0), 300);
    }

    #[test]
    fn a_workload_that_writes_to_disk_is_sampled_faster_unless_asked_otherwise() {
        let outcome = |written: Option<u64>| RunOutcome {
            dir: RunDir {
                id: "x".into(),
                path: PathBuf::from("x"),
            },
            bench: bench(1000, 1000, 1000.0),
            written,
        };
        let default = CpuOptions::default();
        // A page per operation or more: a writer, at the writer's rate of
        // the per-thread clock (never the process timer at that rate).
        let fast = writer_sampling(&outcome(Some(4096 * 1000)), &default, 1.0).unwrap();
        assert_eq!(fast.frequency(), defaults::WRITER_FREQUENCY);
        assert_eq!(fast.sampler, SamplerChoice::Perf);
        // It takes a quarter of the operations for the same samples.
        let b = bench(1000, 1000, 1000.0);
        assert!(pass_ops(&b, fast.frequency(), 1.0) * 3 < pass_ops(&b, default.frequency(), 1.0));
        // Readers (nothing written), a little written, or nothing known:
        // the default.
        for written in [Some(0), Some(4095 * 1000), None] {
            assert_eq!(
                writer_sampling(&outcome(written), &default, 1.0),
                None,
                "{written:?}"
            );
        }
        // A frequency or sampler the user asked for wins.
        let asked = CpuOptions {
            frequency: Some(499),
            ..CpuOptions::default()
        };
        assert_eq!(writer_sampling(&outcome(Some(1 << 30)), &asked, 1.0), None);
        let itimer = CpuOptions {
            sampler: SamplerChoice::Itimer,
            ..CpuOptions::default()
        };
        assert_eq!(writer_sampling(&outcome(Some(1 << 30)), &itimer, 1.0), None);
        // A pass that would run too few operations at that rate keeps the
        // default (1 ms of CPU per op: 276 ops at 3989 Hz, 27 at --scale 0.1).
        assert!(writer_sampling(&outcome(Some(1 << 30)), &default, 0.5).is_some());
        assert_eq!(
            writer_sampling(&outcome(Some(1 << 30)), &default, 0.1),
            None
        );
    }
}
