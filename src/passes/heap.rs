//! The heap pass: a run under the heap profiler (every allocation recorded
//! by profkit's allocator, by default; sampled; or dhat-rs's profiler when
//! the process switched that on), written as `heap.json` (dhat's format),
//! folded allocation stacks, allocation flamegraphs and `alloc.json`.
//! `profkit heap` runs it in this process ([`run`]);
//! `profkit profile` runs it, with a leak check, in a child process
//! ([`spawn_child`] → [`child`]), because heap tracking would distort the
//! timing and CPU passes of the parent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::leaks;
use super::session::{Prepared, Session};
use crate::analyze::alloc::{heap_stacks, summarize, AllocSummary, Weight};
use crate::analyze::leaks::{defaults as leak_defaults, LeakOptions, LeakReport};
use crate::analyze::rundata::Pass;
use crate::analyze::stacks::Folded;
use crate::measure::{RunOptions, Stop, Warmup};
use crate::profile::dhat::DhatFile;
use crate::profile::heap::HeapProfiler;
use crate::profile::sampled::{self, SampledProfiler};
use crate::render::{flamegraph, folded, pprof};
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::{Make, Workload};

/// Sizes of the heap and leak passes of `profkit profile`, defined once.
pub mod defaults {
    /// Seconds of dhat-tracked work in the heap pass.
    pub const HEAP_PASS_SECS: f64 = 0.2;
    /// Allocations tracked by the leak check (about 0.5 s in a release
    /// build): the least it checks, as before it was sized by time.
    pub const LEAK_BLOCKS: f64 = 100_000.0;
    /// Seconds of tracked work the leak check may take (its N, 2N, 4N
    /// points and a warm-up of N before each), from the heap pass's time
    /// per operation: a budget in blocks alone left a workload allocating
    /// 1,000 blocks per operation at N = 20, too few for a 60 B/op leak
    /// to pass the growth threshold (2N × 60 B ≥ 16 KiB needs N ≥ 137).
    pub const LEAK_SECS: f64 = 3.0;
    /// Largest N the time budget buys: enough for a 16 B/op leak to pass
    /// the growth threshold (2N × 16 B = 16 KiB).
    pub const LEAK_MAX_N: u64 = 512;
    /// The heap pass's operations: this share of the bench pass's.
    pub const HEAP_SHARE: f64 = 1.0 / 20.0;
    /// N of the leak check: this share of the bench pass's operations
    /// (≈ 19N operations with its warm-up).
    pub const LEAK_SHARE: f64 = 1.0 / 50.0;
    /// Fewest operations' worth of tracked allocations that make a leak
    /// check (N = 1, no warm-up).
    pub const MIN_LEAK_BUDGET: u64 = crate::analyze::leaks::defaults::MEASURED_PER_N;
    /// RAM a heap child's scratch databases may need (two run at once;
    /// populate's copy and its inserts take about 0.5 GB): below this much
    /// free in `/dev/shm` they stay in the system's temporary folder.
    pub const RAM_SCRATCH_FREE: u64 = 2 << 30;
}

/// The files a heap pass leaves in a run folder.
#[derive(Clone, Debug)]
pub struct HeapOutputs {
    /// `heap.json` (dhat's file; estimates when sampled).
    pub heap_json: PathBuf,
    /// `heap.pb.gz` (pprof's heap format).
    pub heap_pb: PathBuf,
    /// `heap.folded` (bytes allocated per stack).
    pub folded: PathBuf,
    /// `flamegraphs/<run-id>-heap.svg`.
    pub svg: PathBuf,
    /// `flamegraphs/<run-id>-heap-live.svg`.
    pub live_svg: PathBuf,
    /// `alloc.json`.
    pub alloc_json: PathBuf,
    /// What `alloc.json` holds.
    pub summary: AllocSummary,
    /// Operations profiled, warm-up included (0 when unknown).
    pub ops: u64,
}

/// Turns the `heap.json` of a run folder into `heap.pb.gz`,
/// `heap.folded`, `heap-blocks.folded`, `heap-live.folded`, the two
/// flamegraphs and `alloc.json`.
pub fn write_outputs(dir: &RunDir, session: &Session) -> anyhow::Result<HeapOutputs> {
    let file = DhatFile::read(&dir.file(files::HEAP_JSON))?;
    write_outputs_of(dir, session, &file, None)
}

/// [`write_outputs`] of a dhat file in hand; `sample_interval` when its
/// values are estimates from sampling.
pub fn write_outputs_of(
    dir: &RunDir,
    session: &Session,
    file: &DhatFile,
    sample_interval: Option<u64>,
) -> anyhow::Result<HeapOutputs> {
    let heap_json = dir.file(files::HEAP_JSON);
    let heap_pb = dir.file(files::HEAP_PB);
    store::write_atomic(
        &heap_pb,
        &pprof::heap_to_pprof_gz(file, sample_interval.unwrap_or(0))?,
    )?;
    let write_folded = |name: &str, stacks: &Folded| -> anyhow::Result<PathBuf> {
        let path = dir.file(name);
        store::write_atomic(&path, folded::to_text(stacks).as_bytes())?;
        Ok(path)
    };
    let keep = session.config().keep_runtime_frames;
    let bytes = heap_stacks(file, Weight::Bytes, keep);
    let live = heap_stacks(file, Weight::LiveBytes, keep);
    let folded = write_folded(files::HEAP_FOLDED, &bytes)?;
    write_folded(
        files::HEAP_BLOCKS_FOLDED,
        &heap_stacks(file, Weight::Blocks, keep),
    )?;
    write_folded(files::HEAP_LIVE_FOLDED, &live)?;
    let svg = session.flamegraph_path(&dir.id, "heap");
    let title = format!("{}: bytes allocated", dir.id);
    store::write_atomic(&svg, &flamegraph::heap_svg(&title, &bytes))?;
    let live_svg = session.flamegraph_path(&dir.id, "heap-live");
    let title = format!("{}: bytes live at the end", dir.id);
    store::write_atomic(&live_svg, &flamegraph::heap_svg(&title, &live))?;
    let mut summary = summarize(file);
    summary.sampled = sample_interval.is_some();
    summary.sample_interval = sample_interval;
    let alloc_json = dir.file(files::ALLOC);
    store::write_json(&alloc_json, &summary)?;
    Ok(HeapOutputs {
        heap_json,
        heap_pb,
        folded,
        svg,
        live_svg,
        alloc_json,
        summary,
        ops: 0,
    })
}

/// Where a heap pass puts its files.
#[derive(Clone, Debug, Default)]
pub struct HeapRunOptions {
    /// Profile the workload's setup (database population) too, not just
    /// its warm-up and measured operations.
    pub include_setup: bool,
    /// Write into this existing run folder (no manifest) instead of a new one.
    pub into: Option<RunDir>,
    /// Sample allocations, one per this many bytes on average, instead of
    /// recording every one (needs sampled profiling switched on in this
    /// process).
    pub sampled: Option<u64>,
}

/// A running heap profiler: dhat-rs's when this process switched it on,
/// else profkit's allocator recording every allocation or a sample.
pub(super) enum Running {
    Dhat(HeapProfiler),
    Table(SampledProfiler),
}

impl Running {
    /// Starts: sampling with `sampled`'s interval, else every allocation
    /// (dhat-rs's profiler when it is the one switched on).
    pub(super) fn start(path: &Path, sampled: Option<u64>) -> anyhow::Result<Running> {
        Ok(match sampled {
            None if crate::alloc::heap_profiling_enabled() => {
                Running::Dhat(HeapProfiler::start(path)?)
            }
            _ => Running::Table(SampledProfiler::start_with(
                sampled.unwrap_or(crate::alloc::sampler::EXACT),
            )?),
        })
    }

    /// Stops; profkit's records are turned into a dhat file and written
    /// (dhat-rs writes its own, returned as `None`).
    pub(super) fn finish(self, path: &Path) -> anyhow::Result<Option<DhatFile>> {
        match self {
            Running::Dhat(p) => {
                p.finish()?;
                Ok(None)
            }
            Running::Table(p) => {
                let file = sampled::to_dhat(&p.finish());
                store::write_json(path, &file)?;
                Ok(Some(file))
            }
        }
    }
}

/// Runs one workload under the heap profiler (warm-up and measured
/// operations; setup too with [`HeapRunOptions::include_setup`]) and writes
/// `heap.json`, the folded stacks, flamegraphs and `alloc.json`. Returns the
/// run folder and the outputs. The profiler stops on every path, so
/// `heap.json` is written even when the run fails.
pub fn run(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    heap: &HeapRunOptions,
) -> anyhow::Result<(RunDir, HeapOutputs)> {
    let started = SystemTime::now();
    let name = workload.name().to_string();
    let dir = match &heap.into {
        Some(d) => d.clone(),
        None => session.run_dir(&name, started)?,
    };
    let path = dir.file(files::HEAP_JSON);
    // The manifest first (outside the profile where it can be): a folder
    // cut short by a second Ctrl-C still says what it is.
    let manifest_first = |session: &Session, prepared: &Prepared| match heap.into {
        None => session.write_manifest(&dir, prepared, &[Pass::Heap], started),
        Some(_) => Ok(()),
    };
    let (prepared, profiler) = if heap.include_setup {
        let profiler = Running::start(&path, heap.sampled)?;
        let prepared = session.prepare(workload, options, false)?;
        manifest_first(session, &prepared)?;
        (prepared, profiler)
    } else {
        let prepared = session.prepare(workload, options, false)?;
        manifest_first(session, &prepared)?;
        (prepared, Running::start(&path, heap.sampled)?)
    };
    // The result goes before the profiler stops, so that what is live at
    // the end is the workload's own memory.
    let measured = session.measure(&prepared).map(|b| {
        b.ops
            + match b.plan.warmup {
                Warmup::Ops(n) => n,
                _ => 0,
            }
    });
    let finished = profiler.finish(&path);
    if heap.into.is_none() {
        session.write_manifest(&dir, &prepared, &[Pass::Heap], started)?;
    }
    session.discard(prepared);
    let ops = measured?;
    let mut outputs = match finished? {
        Some(file) => write_outputs_of(&dir, session, &file, heap.sampled)?,
        None => write_outputs(&dir, session)?,
    };
    outputs.ops = ops;
    if ops > 0 {
        outputs.summary.ops = Some(ops);
        outputs.summary.bytes_per_op = Some(outputs.summary.total_bytes.0 as f64 / ops as f64);
        store::write_json(&outputs.alloc_json, &outputs.summary)?;
    }
    Ok((dir, outputs))
}

/// What the parent asks of the heap child: the hidden `heap-pass`
/// subcommand's arguments.
#[derive(Clone, Debug)]
pub struct ChildArgs {
    /// The workload.
    pub workload: String,
    /// The run folder to add to.
    pub into: PathBuf,
    /// The parent session's templates (populated databases).
    pub templates: PathBuf,
    /// Most operations of the heap pass.
    pub heap_ops: u64,
    /// N of the leak check.
    pub leak_ops: u64,
    /// Seconds the leak check may take ([`defaults::LEAK_SECS`] × the
    /// main job's `--scale`).
    pub leak_secs: f64,
    /// Root of run folders.
    pub out: PathBuf,
    /// Run flags passed on.
    pub rows: Option<u64>,
    /// Run flags passed on.
    pub threads: Option<usize>,
    /// Run flags passed on.
    pub concurrency: Option<usize>,
    /// Run flags passed on.
    pub seed: Option<u64>,
    /// Run flags passed on.
    pub keep_runtime_frames: bool,
}

impl ChildArgs {
    /// Sizes the passes from the bench pass's planned operations.
    pub fn sized(workload: &str, bench_ops: f64, session: &Session, into: &Path) -> ChildArgs {
        ChildArgs {
            workload: workload.to_string(),
            into: into.to_path_buf(),
            templates: session.temp_dir().to_path_buf(),
            heap_ops: ((bench_ops * defaults::HEAP_SHARE).round() as u64).max(1),
            leak_ops: ((bench_ops * defaults::LEAK_SHARE).round() as u64).max(1),
            leak_secs: defaults::LEAK_SECS,
            out: session.config().out_dir.clone(),
            rows: None,
            threads: None,
            concurrency: None,
            seed: None,
            keep_runtime_frames: session.config().keep_runtime_frames,
        }
    }
}

/// Runs the heap and leak passes in a child process: the current binary
/// (profkit's or a user's harness) with the hidden `heap-pass` subcommand.
/// Returns the child's one-line summary.
pub fn spawn_child(args: &ChildArgs) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the current executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("heap-pass")
        .arg(&args.workload)
        .arg("--into")
        .arg(&args.into)
        .arg("--templates")
        .arg(&args.templates)
        .arg("--heap-ops")
        .arg(args.heap_ops.to_string())
        .arg("--leak-ops")
        .arg(args.leak_ops.to_string())
        .arg("--leak-secs")
        .arg(args.leak_secs.to_string())
        .arg("--out")
        .arg(&args.out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(r) = args.rows {
        cmd.arg("--rows").arg(r.to_string());
    }
    if let Some(t) = args.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if let Some(c) = args.concurrency {
        cmd.arg("--concurrency").arg(c.to_string());
    }
    if let Some(s) = args.seed {
        cmd.arg("--seed").arg(s.to_string());
    }
    if args.keep_runtime_frames {
        cmd.arg("--keep-runtime-frames");
    }
    // Allocation counts do not depend on where the database file lives:
    // the child's scratch copies go to RAM when there is room, so the heap
    // lane writes nothing to the disk (BENCHMARKS.md, "Disk writes").
    if let Some(dir) = crate::measure::sys::ram_scratch(defaults::RAM_SCRATCH_FREE) {
        cmd.env("TMPDIR", dir);
    }
    let out = cmd.output().context("starting the heap pass")?;
    // The child's own lines of the write breakdown (PROFKIT_LOG_WRITES).
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with(super::writes::PREFIX))
        .for_each(|l| eprintln!("{l} (heap child)"));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rfind(|l| l.starts_with("Error:"))
            .unwrap_or("no error message");
        anyhow::bail!("heap pass failed ({}): {line}", out.status);
    }
    store::add_passes(&args.into, &[Pass::Heap, Pass::Leaks])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// N of the leak check, its operations with warm-ups, and the heap pass's
/// seconds per operation: the larger of what [`defaults::LEAK_BLOCKS`]
/// (capped by `leak_ops`, as before) and `leak_secs` (capped at
/// [`defaults::LEAK_MAX_N`]) allow.
fn leak_size(heap: &HeapOutputs, leak_ops: u64, leak_secs: f64) -> (u64, u64, f64) {
    let ops_done = heap.ops.max(1) as f64;
    let per_op_blocks = heap.summary.total_blocks as f64 / ops_done;
    let secs_per_op = heap.summary.duration_us as f64 / 1e6 / ops_done;
    let by_blocks = (defaults::LEAK_BLOCKS / per_op_blocks.max(1e-9)).floor() as u64;
    let by_time = if secs_per_op > 0.0 {
        (leak_secs / secs_per_op).floor() as u64
    } else {
        0
    };
    let n_blocks = leak_ops.min(by_blocks / leak_defaults::OPS_PER_N);
    // Sized by time, each point gets a warm-up of N (not 4N): the time
    // goes to measured operations, where a leak shows.
    let time_ops_per_n = leak_defaults::MEASURED_PER_N + leak_defaults::POINTS.len() as u64;
    let n_time = (by_time / time_ops_per_n).min(defaults::LEAK_MAX_N);
    let n = n_blocks.max(n_time).max(1);
    let budget = by_blocks.max(by_time.min(n * time_ops_per_n));
    (n, budget, secs_per_op)
}

/// The child's side: the heap pass (at most `heap_ops` operations and
/// [`defaults::HEAP_PASS_SECS`]), then a leak check sized by the heap
/// pass's allocations and time per operation ([`leak_size`]), both into
/// `into`.
pub fn child(
    session: &mut Session,
    make: Make<'_>,
    options: &RunOptions,
    into: &RunDir,
    heap_ops: u64,
    leak_ops: u64,
    leak_secs: f64,
) -> anyhow::Result<(HeapOutputs, LeakReport)> {
    let name = make().name().to_string();
    let mut options = options.clone();
    options.stop = Some(Stop::Duration(Nanos::from(Duration::from_secs_f64(
        defaults::HEAP_PASS_SECS,
    ))));
    options.warmup = Some(Warmup::Ops((heap_ops / 10).clamp(1, 100)));
    let heap_options = HeapRunOptions {
        include_setup: false,
        into: Some(into.clone()),
        sampled: None,
    };
    let (_, out) = run(session, make(), &options, &heap_options)?;
    super::writes::log(&format!("{name} heap"));
    let ops_done = out.ops.max(1);
    let (n, budget, secs_per_op) = leak_size(&out, leak_ops, leak_secs);
    let report = if budget < defaults::MIN_LEAK_BUDGET {
        let mut r = LeakReport::skipped(&name);
        r.verdict = format!(
            "skipped: one operation takes {:.0} ms and {:.0} blocks under the heap profiler, too much for the profile's budget; run `profkit leaks {name}`",
            1e3 * secs_per_op,
            out.summary.total_blocks as f64 / ops_done as f64
        );
        r
    } else {
        let mut leak = LeakOptions::for_ops(n);
        let measured = leak_defaults::MEASURED_PER_N * n;
        let warmups = leak_defaults::POINTS.len() as u64;
        leak.warmup = leak.warmup.min(budget.saturating_sub(measured) / warmups);
        options.stop = None;
        options.warmup = None;
        let scratch = session.temp_dir().join("leaks");
        leaks::growth(session, make, &options, leak, &scratch)?
    };
    store::write_json(&into.file(files::LEAKS), &report)?;
    super::writes::log(&format!("{name} leaks"));
    Ok((out, report))
}
