//! `profkit noise [--workloads a,b] [--runs 5] [--scale S]`: measures this
//! machine's run-to-run noise and writes it where `compare` reads it (see
//! [`crate::passes::noise`]).

use std::path::PathBuf;

use clap::Args;

use super::args::RunFlags;
use crate::analyze::budget::Metric;
use crate::analyze::replicates::NoiseModel;
use crate::measure::RunOptions;
use crate::passes::noise::{self, NoiseOptions};
use crate::passes::profile::ProfileOptions;
use crate::passes::SessionConfig;
use crate::store::{self, noise::NOISE_FILE};
use crate::workload::Registry;

/// `profkit noise`.
#[derive(Debug, Args)]
pub struct NoiseArgs {
    /// Only these workloads (comma separated; default: every profiled one).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Runs of each workload, interleaved (a b c a b c …); at least 2.
    #[arg(long, default_value_t = noise::defaults::RUNS)]
    pub runs: usize,
    /// Scale every workload's default operation count by this factor (as
    /// `profile --scale`: measure at the size you compare at).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Also run the heap passes (peak heap, allocations per op, leak
    /// slope); without, those keep the built-in figures.
    #[arg(long)]
    pub heap: bool,
    /// Write the model here (default: <out>/noise.json, where `compare`,
    /// `profile --baseline` and `bisect` look for it).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Run options (override every workload's defaults).
    #[command(flatten)]
    pub run: RunFlags,
}

pub(super) fn noise_cmd(a: NoiseArgs, registry: &Registry) -> anyhow::Result<()> {
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| a.run.out.join(NOISE_FILE));
    // Refuse a file in the way before minutes of runs, not after.
    store::noise::check_writable(&path)?;
    let options = NoiseOptions {
        runs: a.runs,
        profile: ProfileOptions {
            workloads: a.workloads.clone(),
            scale: a.scale,
            heap: a.heap,
            run: RunOptions::from(&a.run),
            baseline: None,
            noise_model: NoiseModel::default(),
        },
    };
    let model = noise::measure(registry, SessionConfig::from(&a.run), &options)?;
    let previous = store::noise::write_noise_model(&path, &model)?;
    print!("{}", summary(&model));
    if let Some(p) = previous {
        println!("replaced the previous model ({})", p.source);
    }
    println!("wrote {}", path.display());
    if a.output.is_some() {
        println!("compare reads it with --noise-model {}", path.display());
    } else {
        println!("compare, profile --baseline and bisect read it from there");
    }
    Ok(())
}

/// The model's figures beside the built-in ones.
fn summary(m: &NoiseModel) -> String {
    use std::fmt::Write as _;
    let builtin = NoiseModel::default();
    let mut s = format!("noise model: {} (df {})\n", m.source, m.df);
    let _ = writeln!(s, "  {:<13} {:>9} {:>9}", "metric", "sd", "built-in");
    for metric in Metric::ALL {
        let mark = match m.from_builtin.iter().any(|n| n == metric.name()) {
            true => "  (not measured)",
            false => "",
        };
        let _ = writeln!(
            s,
            "  {:<13} {:>9.4} {:>9.4}{mark}",
            metric.name(),
            m.sd(metric),
            builtin.sd(metric)
        );
    }
    let _ = writeln!(
        s,
        "  {:<13} {:>9.2} {:>9.2}  (frame share, pp at 50 %)",
        "share", m.share_sd_pp, builtin.share_sd_pp
    );
    s
}
