//! `profkit bisect GOOD BAD --workload NAME [--metric p50]`: arguments and
//! the report (see [`crate::passes::bisect`]).

use std::path::PathBuf;

use clap::Args;

use crate::analyze::budget::Metric;
use crate::passes::bisect::{self, BisectOptions};

fn metric_arg(s: &str) -> Result<Metric, String> {
    Metric::ALL
        .into_iter()
        .find(|m| m.name() == s)
        .filter(|m| {
            matches!(
                m,
                Metric::Mean | Metric::P50 | Metric::P95 | Metric::P99 | Metric::Throughput
            )
        })
        .ok_or_else(|| {
            format!("'{s}' is not a metric bisect reads (mean, p50, p95, p99, throughput)")
        })
}

/// `profkit bisect`.
#[derive(Debug, Args)]
pub struct BisectArgs {
    /// A commit that measures well.
    pub good: String,
    /// A later commit that measures worse.
    pub bad: String,
    /// Workload to run at each probed commit.
    #[arg(long)]
    pub workload: String,
    /// Metric to judge (mean, p50, p95, p99, throughput).
    #[arg(long, default_value = "p50", value_parser = metric_arg)]
    pub metric: Metric,
    /// Runs per probed commit.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Smallest change that makes a commit bad (5%, 0.05): a change must
    /// pass it and lie beyond the runs' noise. Raise it to hunt one large
    /// regression among small ones.
    #[arg(long, default_value_t = crate::analyze::compare::defaults::NOISE, value_parser = super::args_reports::parse_noise)]
    pub noise: f64,
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Build each worktree with this shell command instead of
    /// `cargo build --release --bin profkit` (CARGO_TARGET_DIR is shared).
    #[arg(long)]
    pub build_cmd: Option<String>,
    /// Run the workload once with this shell command, in the worktree; its
    /// last line of output is the metric's value (default: `profkit run
    /// WORKLOAD --json` of the worktree's build).
    #[arg(long)]
    pub run_cmd: Option<String>,
}

pub(super) fn bisect_cmd(a: BisectArgs) -> anyhow::Result<()> {
    let options = BisectOptions {
        repo: a.repo.clone(),
        good: a.good.clone(),
        bad: a.bad.clone(),
        workload: a.workload.clone(),
        metric: a.metric,
        runs: a.runs,
        noise: a.noise,
        build_cmd: a.build_cmd.clone(),
        run_cmd: a.run_cmd.clone(),
    };
    bisect::check(&options)?;
    let scratch = tempfile::Builder::new()
        .prefix("profkit-bisect")
        .tempdir()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| a.repo.join("target"));
    let out = bisect::run(&options, scratch.path(), &target)?;
    for (c, why) in &out.skipped {
        println!("skipped {c}: {why}");
    }
    match &out.first_bad {
        Some(c) => {
            println!("first bad commit: {c} {}", out.subject);
            if let Some((p, lo, hi)) = out.change {
                println!(
                    "{} {:+.1} % [{:+.1} %, {:+.1} %] against {} ({} runs each)",
                    a.metric.name(),
                    p * 100.0,
                    lo * 100.0,
                    hi * 100.0,
                    a.good,
                    a.runs
                );
            }
        }
        None => println!(
            "{} is not significantly worse than {} by {}: nothing to bisect",
            a.bad,
            a.good,
            a.metric.name()
        ),
    }
    Ok(())
}
