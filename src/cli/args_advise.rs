//! `profkit advise` arguments.

use clap::Args;

use super::args::RunFlags;
use crate::analyze::advice::defaults;
use crate::passes::advise::AdviseOptions;

/// `profkit advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Workload name (see `profkit list`).
    pub workload: String,
    /// Run options (`--db` names the database to advise on; it is only
    /// read, once, into a scratch copy).
    #[command(flatten)]
    pub run: RunFlags,
    /// Pairs of runs (original, trial) per trial.
    #[arg(long, default_value_t = defaults::PAIRS as u64, value_parser = clap::value_parser!(u64).range(2..=50))]
    pub pairs: u64,
    /// Wall-clock budget of all trials: trials that would start past it are skipped and listed (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub budget: std::time::Duration,
    /// Print advice.json on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

impl From<&AdviseArgs> for AdviseOptions {
    fn from(a: &AdviseArgs) -> AdviseOptions {
        AdviseOptions {
            pairs: a.pairs as usize,
            budget: a.budget,
        }
    }
}
