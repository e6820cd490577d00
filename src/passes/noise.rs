//! `profkit noise`: measures this machine's run-to-run noise. The main job
//! ([`super::profile`]) runs several times over the same workloads, so
//! each workload's runs interleave with the others' (a b c a b c …), into
//! a scratch folder; the spread between each workload's runs is the
//! [`NoiseModel`] ([`crate::analyze::noise`]) that `compare` judges a side
//! of one run against.

use std::time::SystemTime;

use super::profile::{self, ProfileOptions};
use super::session::SessionConfig;
use crate::analyze::noise;
use crate::analyze::replicates::NoiseModel;
use crate::measure;
use crate::store;
use crate::workload::Registry;

/// Defaults of `profkit noise`, defined once.
pub mod defaults {
    /// Runs of each workload.
    pub const RUNS: usize = 5;
}

/// What to measure the noise of.
#[derive(Clone, Debug)]
pub struct NoiseOptions {
    /// Runs of each workload (≥ 2; [`defaults::RUNS`]).
    pub runs: usize,
    /// One round: the main job's workloads, scale and run options (its
    /// baseline is ignored).
    pub profile: ProfileOptions,
}

/// Why no model came out.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// Fewer than two runs asked for.
    #[error("--runs {0}: a spread between runs needs at least 2")]
    TooFewRuns(usize),
    /// Interrupted before the last round ended.
    #[error("interrupted: no noise model written")]
    Interrupted,
    /// No workload ran twice.
    #[error("no workload ran twice: no noise model written")]
    NothingMeasured,
}

/// Runs the rounds into a scratch folder (removed after) and measures the
/// model. `config`'s output folders are replaced by the scratch folder.
pub fn measure(
    registry: &Registry,
    config: SessionConfig,
    options: &NoiseOptions,
) -> anyhow::Result<NoiseModel> {
    if options.runs < 2 {
        return Err(NoiseError::TooFewRuns(options.runs).into());
    }
    let scratch = tempfile::Builder::new().prefix("profkit-noise").tempdir()?;
    let config = SessionConfig {
        out_dir: scratch.path().join("runs"),
        flamegraph_dir: scratch.path().join("flamegraphs"),
        ..config
    };
    let round = ProfileOptions {
        baseline: None,
        ..options.profile.clone()
    };
    let mut runs = Vec::new();
    for i in 1..=options.runs {
        eprintln!("profkit: noise: round {i} of {} ...", options.runs);
        let out = profile::run(registry, config.clone(), &round)?;
        runs.extend(store::load_set(&out.index.path)?.runs);
        // A half round measures less than it says: write nothing.
        if measure::interrupted() {
            return Err(NoiseError::Interrupted.into());
        }
    }
    let refs: Vec<_> = runs.iter().collect();
    let today = store::rfc3339(SystemTime::now());
    let model = noise::measure(&refs, today.get(..10).unwrap_or(today.as_str()));
    model.ok_or_else(|| NoiseError::NothingMeasured.into())
}
