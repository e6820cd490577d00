//! `profkit cpu` arguments.

use clap::Args;

use super::args::RunFlags;
use crate::analyze;
use crate::passes::cpu::CpuPassOptions;
use crate::profile::cpu::{self, CpuOptions, SamplerChoice};

/// `profkit cpu`.
#[derive(Debug, Args)]
pub struct CpuArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options.
    #[command(flatten)]
    pub run: RunFlags,
    /// Samples per CPU-second (default 997 with the perf sampler, 199 with
    /// the process timer, which this kernel's tick caps at ~250).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=cpu::defaults::MAX_FREQUENCY as i64))]
    pub frequency: Option<u32>,
    /// Sampler: per-thread `cpu-clock` via perf_event_open (falls back to
    /// the process timer when refused), or the process timer (ITIMER_PROF).
    #[arg(long, value_enum, default_value = "auto")]
    pub sampler: SamplerArg,
    /// Also draw an icicle graph (root at the top).
    #[arg(long)]
    pub inverted: bool,
    /// Also draw one flamegraph per thread name.
    #[arg(long)]
    pub per_thread: bool,
    /// Frames listed in the top-N tables.
    #[arg(long, default_value_t = analyze::cpu::defaults::TOP)]
    pub top: usize,
}

impl From<&CpuArgs> for CpuPassOptions {
    fn from(a: &CpuArgs) -> CpuPassOptions {
        CpuPassOptions {
            cpu: CpuOptions {
                frequency: a.frequency,
                sampler: match a.sampler {
                    SamplerArg::Auto => SamplerChoice::Auto,
                    SamplerArg::Perf => SamplerChoice::Perf,
                    SamplerArg::PerfStack => SamplerChoice::PerfStack,
                    SamplerArg::PerfSignal => SamplerChoice::PerfSignal,
                    SamplerArg::Itimer => SamplerChoice::Itimer,
                },
            },
            inverted: a.inverted,
            per_thread: a.per_thread,
            top: a.top,
        }
    }
}

/// `--sampler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerArg {
    /// perf where the kernel allows it, else itimer.
    Auto,
    /// Per-thread `cpu-clock` (perf_event_open) in its default mode
    /// (perf-stack), or an error.
    Perf,
    /// Per-thread `cpu-clock`, registers and stack copied into ring
    /// buffers and unwound by a watcher thread (no signal), or an error.
    PerfStack,
    /// Per-thread `cpu-clock`, a SIGPROF per sample unwound by pprof-rs in
    /// the sampled thread, or an error.
    PerfSignal,
    /// pprof-rs's process CPU timer.
    Itimer,
}
