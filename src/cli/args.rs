//! The command line: clap definitions, and their conversion into the
//! library's option structs. Nothing here does work of its own; every
//! default is the library's constant.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use super::args_advise::AdviseArgs;
pub use super::args_budget::{BudgetArgs, BudgetCommand};
pub use super::args_cpu::{CpuArgs, SamplerArg};
pub use super::args_reports::{
    BaselineArgs, BaselineCommand, CheckArgs, CompareArgs, CompareFormat, ReportArgs, ReportFormat,
};
use crate::analyze::leaks::{self, LeakOptions};
use crate::analyze::stress::{self, Slo};
use crate::measure::open_loop::parse_rate;
use crate::measure::{RunOptions, Stop, Warmup};
use crate::passes::leaks::LeakCheck;
use crate::passes::SessionConfig;
use crate::store;
use crate::units::{parse_count, parse_duration, Nanos, OpsPerSec};

/// profkit: profile database-backed Rust code — CPU, heap and SQL profiles,
/// load runs, flamegraphs and regression reports.
#[derive(Debug, Parser)]
#[command(name = "profkit", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered workloads.
    List,
    /// Run one workload and measure it (latency histogram, throughput, CPU, memory).
    Run(RunArgs),
    /// The main job: profile every registered workload (bench, CPU, SQL, heap, leaks) and write run folders and an index.
    Profile(ProfileArgs),
    /// Profile one workload's CPU use: pprof, folded stacks, flamegraph, hot-frame report.
    Cpu(CpuArgs),
    /// Render a folded-stacks or pprof (.pb/.pb.gz) file into an SVG flamegraph.
    Flamegraph(FlamegraphArgs),
    /// Profile a workload's SQL: per-statement times, query plans, N+1 and full scans, findings.
    Sql(SqlArgs),
    /// Heap-profile one workload (dhat, or --sampled): heap.json, heap.pb.gz, allocation flamegraphs, alloc.json.
    Heap(HeapArgs),
    /// Try each mechanical fix (an index, a PRAGMA) on a scratch copy of the database and measure it against the original: the gain with its interval and the SQL to paste.
    Advise(AdviseArgs),
    /// Look for memory leaks: live heap growth over N, 2N, 4N operations, or an RSS soak run.
    Leaks(LeaksArgs),
    /// Heap and leak passes of `profkit profile`, run in a child process.
    #[command(hide = true)]
    HeapPass(HeapPassArgs),
    /// Measure a workload at several thread counts or data volumes (sweep.json, plots).
    Sweep(SweepArgs),
    /// Step concurrency up until an objective breaks, then check recovery (stress.json).
    Stress(StressArgs),
    /// Check runs against the budgets in profkit.toml (exit 1 when a critical threshold breaks).
    Check(CheckArgs),
    /// Write a budget file calibrated from a measured session (`budget init`).
    Budget(BudgetArgs),
    /// Save or list baselines (named copies of runs or profile sessions).
    Baseline(BaselineArgs),
    /// Compare a current run or session against a base: changes with confidence intervals, differential flamegraphs.
    Compare(CompareArgs),
    /// Write a report of a run or session (RUN) or of a comparison (BASE..CURRENT) as Markdown, HTML or JSON.
    Report(ReportArgs),
    /// Serve the email store over HTTP/JSON with /metrics and /debug/pprof endpoints.
    #[cfg(feature = "service")]
    Serve(super::serve::ServeArgs),
    /// Export a run's CPU profile for speedscope or the Firefox Profiler.
    Export(super::export::ExportArgs),
    /// Find the first commit that made a workload significantly slower.
    Bisect(super::bisect::BisectArgs),
    /// Measure this machine's run-to-run noise (noise.json), which compare judges one-run sides by.
    Noise(super::noise::NoiseArgs),
    /// Drive `profkit serve` with Locust in distributed mode (master + workers): bench.json, locust.json and Locust's CSVs in a run folder.
    #[cfg(feature = "service")]
    Load(super::serve::LoadArgs),
    #[cfg(feature = "service")]
    /// Load a running service with Locust while pulling its /debug profiles (CPU, heap, SQL, endpoints) into a run folder.
    Attach(super::attach::AttachArgs),
}

/// `profkit sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Statements to show in the table.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// How much warm-up: an operation count (`500`) or a duration (`1s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmupArg(pub Warmup);

fn parse_warmup(s: &str) -> Result<WarmupArg, String> {
    let t = s.trim();
    if t.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return parse_count(t).map(|n| WarmupArg(Warmup::Ops(n)));
    }
    parse_duration(t)
        .map(|d| WarmupArg(Warmup::Duration(d.into())))
        .map_err(|_| {
            format!("'{s}' is neither an operation count (500) nor a duration (1s, 200ms)")
        })
}

pub(super) fn parse_count_arg(s: &str) -> Result<u64, String> {
    parse_count(s)
}

pub(super) fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn parse_rate_arg(s: &str) -> Result<OpsPerSec, String> {
    parse_rate(s).map_err(|e| e.to_string())
}

fn parse_error_limit_arg(s: &str) -> Result<f64, String> {
    stress::parse_error_limit(s).map_err(|e| e.to_string())
}

/// Options shared by every command that runs a workload.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// Data volume: emails in the store (default: the workload's, usually 100k).
    #[arg(long, value_parser = parse_count_arg, allow_negative_numbers = true)]
    pub rows: Option<u64>,
    /// Worker threads (default: the workload's, usually 1).
    #[arg(long, short = 't', allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Operations in flight at once, for an async workload (default: the
    /// workload's, usually 16); --threads is then its runtime's workers.
    #[arg(long, allow_negative_numbers = true)]
    pub concurrency: Option<usize>,
    /// Measured operations over all threads (e.g. 5000, 100k).
    #[arg(long, value_parser = parse_count_arg, conflicts_with = "duration", allow_negative_numbers = true)]
    pub ops: Option<u64>,
    /// Measure for this long instead of a number of operations (e.g. 10s).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Warm-up before measuring: operations (500) or a duration (1s); default a tenth of the run.
    #[arg(long, value_parser = parse_warmup)]
    pub warmup: Option<WarmupArg>,
    /// Seed of the data generator and the workers' random streams.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use this SQLite file instead of a fresh temporary one (created if missing).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Where run folders go.
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// Count SQL statements during measured runs with SQLite's trace hook
    /// (off by default: it costs time; runs are then marked instrumented).
    #[arg(long)]
    pub trace_sql: bool,
    /// Keep runtime plumbing frames (thread start, panic guards, closure
    /// shims) in CPU and heap stacks; by default they are folded.
    #[arg(long)]
    pub keep_runtime_frames: bool,
}

/// `--ops N` or `--duration D` as a [`Stop`] (clap keeps them exclusive).
fn stop_of(ops: Option<u64>, duration: Option<Duration>) -> Option<Stop> {
    ops.map(Stop::Ops)
        .or(duration.map(|d| Stop::Duration(Nanos::from(d))))
}

/// A session writing under `out`, with a progress bar when stderr is a terminal.
pub(super) fn session_config(
    out: &std::path::Path,
    db: Option<PathBuf>,
    sql_trace: bool,
) -> SessionConfig {
    use std::io::IsTerminal;
    SessionConfig {
        out_dir: out.to_path_buf(),
        db_path: db,
        sql_trace,
        progress: std::io::stderr().is_terminal(),
        ..SessionConfig::default()
    }
}

impl From<&RunFlags> for RunOptions {
    fn from(f: &RunFlags) -> RunOptions {
        RunOptions {
            rows: f.rows,
            threads: f.threads,
            concurrency: f.concurrency,
            stop: stop_of(f.ops, f.duration),
            warmup: f.warmup.map(|w| w.0),
            seed: f.seed,
        }
    }
}

impl From<&RunFlags> for SessionConfig {
    fn from(f: &RunFlags) -> SessionConfig {
        SessionConfig {
            keep_runtime_frames: f.keep_runtime_frames,
            ..session_config(&f.out, f.db.clone(), f.trace_sql)
        }
    }
}

/// `profkit run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Open loop: issue operations at this fixed rate (5000/s, 5k/s, 300/min)
    /// and report latency corrected for coordinated omission (default duration 5s).
    #[arg(long, value_parser = parse_rate_arg)]
    pub rate: Option<OpsPerSec>,
}

/// `profkit sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Thread levels, comma separated (default 1,2,4,8; one value with --rows).
    #[arg(long, short = 't', value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Data volumes, comma separated (e.g. 1k,10k,100k): sweep rows instead of threads.
    #[arg(long, value_delimiter = ',', value_parser = parse_count_arg)]
    pub rows: Vec<u64>,
    /// Operations in flight at once, for an async workload (its runtime's
    /// workers are the thread levels).
    #[arg(long, allow_negative_numbers = true)]
    pub concurrency: Option<usize>,
    /// Measured operations per level (default: 1s per level).
    #[arg(long, value_parser = parse_count_arg, conflicts_with = "duration")]
    pub ops: Option<u64>,
    /// Measured time per level (default 1s).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Warm-up before each level: operations (500) or a duration (1s).
    #[arg(long, value_parser = parse_warmup)]
    pub warmup: Option<WarmupArg>,
    /// Seed of the data generator and the workers' random streams.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run folders go.
    #[arg(long, default_value = store::defaults::OUT_DIR)]
    pub out: PathBuf,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Count SQL statements with SQLite's trace hook (costs time; marks the runs instrumented).
    #[arg(long)]
    pub trace_sql: bool,
}

impl SweepArgs {
    /// The options shared by every level (threads and rows are set per level).
    pub fn base_options(&self) -> RunOptions {
        RunOptions {
            rows: None,
            threads: None,
            concurrency: self.concurrency,
            stop: stop_of(self.ops, self.duration),
            warmup: self.warmup.map(|w| w.0),
            seed: self.seed,
        }
    }

    /// Where the sweep's session puts things.
    pub fn session_config(&self) -> SessionConfig {
        session_config(&self.out, None, self.trace_sql)
    }
}

/// `profkit stress`.
#[derive(Debug, Args)]
pub struct StressArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// The objective every level must meet: p50/p90/p95/p99/p999/mean/max < duration.
    #[arg(long, default_value = stress::defaults::SLO)]
    pub slo: Slo,
    /// Share of failed operations a level may have (1%, 0.5%, 0.01).
    #[arg(long, default_value_t = stress::defaults::MAX_ERROR_RATE, value_parser = parse_error_limit_arg)]
    pub max_errors: f64,
    /// Most threads a level may use (levels double from --threads, default 1).
    #[arg(long, default_value_t = stress::defaults::MAX_THREADS)]
    pub max_threads: usize,
    /// Most levels before the recovery check.
    #[arg(long, default_value_t = stress::defaults::MAX_LEVELS)]
    pub max_levels: usize,
    /// Run options: --threads is the first level, --ops/--duration are per level (default 1s).
    #[command(flatten)]
    pub run: RunFlags,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl From<&StressArgs> for stress::StressOptions {
    fn from(a: &StressArgs) -> stress::StressOptions {
        stress::StressOptions {
            base: RunOptions::from(&a.run),
            slo: a.slo,
            max_error_rate: a.max_errors,
            max_threads: a.max_threads,
            max_levels: a.max_levels,
        }
    }
}

/// `profkit profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Only these workloads (comma separated; default: every registered one).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Scale every workload's default operation count by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Skip the heap profile and leak check (they run in a child process).
    #[arg(long)]
    pub no_heap: bool,
    /// Compare the session against this baseline at the end and write reports.
    #[arg(long)]
    pub baseline: Option<String>,
    /// With --baseline: print the comparison as this format (github: the
    /// pull-request comment, also written to the session's comment.md).
    #[arg(long, value_enum, requires = "baseline")]
    pub format: Option<CompareFormat>,
    /// With --baseline: the noise model for sides of one run (default:
    /// <out>/noise.json when `profkit noise` wrote one, else built-in).
    #[arg(long, requires = "baseline")]
    pub noise_model: Option<PathBuf>,
    /// Run options (override every workload's defaults).
    #[command(flatten)]
    pub run: RunFlags,
}

/// `profkit heap`.
#[derive(Debug, Args)]
pub struct HeapArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Profile the setup (database population) too.
    #[arg(long)]
    pub include_setup: bool,
    /// Sites shown per list in the printed summary.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Sample allocations (a Poisson process over bytes, estimates scaled
    /// back up without bias) instead of recording every one: cheap enough
    /// to leave on.
    #[arg(long)]
    pub sampled: bool,
    /// Record every allocation with dhat-rs's profiler (slower; full
    /// backtraces) instead of profkit's allocator (the default).
    #[arg(long, conflicts_with = "sampled")]
    pub dhat: bool,
    /// Mean bytes between samples with --sampled (e.g. 512KiB, 64k, 1MiB).
    #[arg(long, value_parser = parse_size_arg, default_value = "512KiB", requires = "sampled")]
    pub sample_interval: u64,
}

pub(super) fn parse_size_arg(s: &str) -> Result<u64, String> {
    let b = crate::units::Bytes::parse(s)?;
    if !(1..=1u64 << 40).contains(&b.0) {
        return Err(format!(
            "'{s}': a sample interval must be between 1 byte and 1 TiB"
        ));
    }
    Ok(b.0)
}

/// `profkit leaks`.
#[derive(Debug, Args)]
pub struct LeaksArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options; `--ops` is N of the N, 2N, 4N points (default: the
    /// workload's operations ÷ 10), `--warmup` an operation count (default 4N).
    #[command(flatten)]
    pub run: RunFlags,
    /// Soak mode instead: run this long (e.g. 60s) sampling RSS and, by
    /// sampled heap profiling, live bytes per allocation site.
    #[arg(long, value_parser = parse_duration_arg)]
    pub soak: Option<Duration>,
    /// Mean bytes between heap samples in soak mode.
    #[arg(long, value_parser = parse_size_arg, default_value = "512KiB", requires = "soak")]
    pub sample_interval: u64,
    /// Record the growth check's allocations with dhat-rs's profiler
    /// instead of profkit's allocator (the default).
    #[arg(long, conflicts_with = "soak")]
    pub dhat: bool,
}

impl LeaksArgs {
    /// The check asked for: a soak run, or growth over N, 2N, 4N with N
    /// from `--ops` (default: the workload's `default_ops` ÷
    /// [`leaks::defaults::OPS_DIVISOR`]) and an operation-count warm-up.
    pub fn check(&self, default_ops: u64) -> anyhow::Result<LeakCheck> {
        if let Some(d) = self.soak {
            return Ok(LeakCheck::Soak(d));
        }
        anyhow::ensure!(
            self.run.duration.is_none(),
            "--duration does not apply to `profkit leaks`; use --ops N, or --soak DURATION"
        );
        let ops = self
            .run
            .ops
            .unwrap_or(default_ops / leaks::defaults::OPS_DIVISOR);
        let mut leak = LeakOptions::for_ops(ops);
        match self.run.warmup.map(|w| w.0) {
            None => {}
            Some(Warmup::Ops(n)) => leak.warmup = n,
            Some(_) => anyhow::bail!(
                "--warmup of `profkit leaks` must be an operation count (e.g. 2000), not a duration"
            ),
        }
        Ok(LeakCheck::Growth(leak))
    }
}

/// The hidden child-process pass of `profkit profile`.
#[derive(Debug, Args)]
pub struct HeapPassArgs {
    /// Workload name.
    pub workload: String,
    /// The existing run folder to write into.
    #[arg(long)]
    pub into: PathBuf,
    /// The parent's folder of populated database templates.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Measured operations of the heap profile.
    #[arg(long)]
    pub heap_ops: u64,
    /// N of the leak check.
    #[arg(long)]
    pub leak_ops: u64,
    /// Seconds the leak check may take (default: the main job's; 0 sizes it
    /// by tracked blocks alone, as before it was sized by time).
    #[arg(long)]
    pub leak_secs: Option<f64>,
    /// Run options (rows, threads, seed).
    #[command(flatten)]
    pub run: RunFlags,
}

/// `profkit flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// A folded-stacks file, or a pprof profile (.pb or .pb.gz).
    pub file: PathBuf,
    /// Where the SVG goes (default: the input's name with .svg).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Title (default: the file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Icicle graph: root at the top.
    #[arg(long)]
    pub inverted: bool,
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
