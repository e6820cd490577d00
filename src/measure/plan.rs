//! What a run is asked to do: options, their defaults, and the concrete
//! plan after defaults.

use serde::{Deserialize, Serialize};

use crate::units::Nanos;
use crate::workload::WorkloadDefaults;

/// When a measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// After this many operations in total (over all threads).
    Ops(u64),
    /// After this long.
    Duration(Nanos),
}

impl std::fmt::Display for Stop {
    /// `2000 ops` or `1.5s`: how the run's length is written everywhere.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Ops(n) => write!(f, "{n} ops"),
            Stop::Duration(d) => write!(f, "{d}"),
        }
    }
}

/// How much warm-up runs before measuring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    /// A tenth of the measured work, at most one second.
    Auto,
    /// This many operations.
    Ops(u64),
    /// This long.
    Duration(Nanos),
}

/// What a user may set for a run; unset fields take the workload's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// Data volume.
    pub rows: Option<u64>,
    /// Worker threads (an async workload's runtime workers).
    pub threads: Option<usize>,
    /// Operations an async workload keeps in flight (default: the
    /// workload's, [`crate::workload::defaults::CONCURRENCY`] for an async one).
    pub concurrency: Option<usize>,
    /// Measured operations or duration.
    pub stop: Option<Stop>,
    /// Warm-up (default [`Warmup::Auto`]).
    pub warmup: Option<Warmup>,
    /// Seed (default [`defaults::SEED`]).
    pub seed: Option<u64>,
}

/// Defaults of a run, defined once.
pub mod defaults {
    /// Seed of the data generator and the workers' random streams.
    pub const SEED: u64 = 42;
    /// Most threads a run may ask for.
    pub const MAX_THREADS: usize = 1024;
    /// Most operations in flight a run may ask for (each waits on a
    /// thread of the runner's).
    pub const MAX_CONCURRENCY: usize = 1024;
    /// Largest data volume a run may ask for.
    pub const MAX_ROWS: u64 = 100_000_000;
    /// Most operations a run (or its warm-up) may ask for: hours even for
    /// the cheapest workload.
    pub const MAX_OPS: u64 = 10_000_000_000;
    /// Longest a run (or its warm-up) may ask to last: 24 hours.
    pub const MAX_DURATION: crate::units::Nanos = crate::units::Nanos(24 * 3600 * 1_000_000_000);
}

/// Errors in run options.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// Zero threads.
    #[error("--threads must be at least 1")]
    ZeroThreads,
    /// Absurd thread count.
    #[error("--threads {0} is more than the limit of {max}", max = defaults::MAX_THREADS)]
    TooManyThreads(usize),
    /// Zero operations in flight.
    #[error("--concurrency must be at least 1")]
    ZeroConcurrency,
    /// Absurd concurrency.
    #[error("--concurrency {0} is more than the limit of {max}", max = defaults::MAX_CONCURRENCY)]
    TooMuchConcurrency(usize),
    /// Zero rows asked for.
    #[error("--rows must be at least 1")]
    ZeroRows,
    /// Zero operations or duration.
    #[error("--ops and --duration must be greater than zero")]
    EmptyRun,
    /// Absurd data volume.
    #[error("--rows {0} is more than the limit of {max}", max = defaults::MAX_ROWS)]
    TooManyRows(u64),
    /// Absurd operation count (`--ops` or `--warmup`).
    #[error("{flag} {ops} is more than the limit of {max} operations", max = defaults::MAX_OPS)]
    TooManyOps {
        /// The flag.
        flag: &'static str,
        /// What was asked.
        ops: u64,
    },
    /// Absurd duration (`--duration` or `--warmup`).
    #[error("{flag} {asked} is more than the limit of {max}", max = defaults::MAX_DURATION)]
    TooLong {
        /// The flag.
        flag: &'static str,
        /// What was asked.
        asked: Nanos,
    },
}

/// The concrete parameters of a run, after defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlan {
    /// Data volume.
    pub rows: u64,
    /// Worker threads.
    pub threads: usize,
    /// When the measured phase ends.
    pub stop: Stop,
    /// Warm-up before it.
    pub warmup: Warmup,
    /// Seed.
    pub seed: u64,
}

impl RunPlan {
    /// The plan for `options` over a workload's `defaults`; rejects
    /// zero or absurd sizes.
    pub fn resolve(options: &RunOptions, defaults: WorkloadDefaults) -> Result<RunPlan, PlanError> {
        let plan = RunPlan {
            rows: options.rows.unwrap_or(defaults.rows),
            threads: options.threads.unwrap_or(defaults.threads),
            stop: options.stop.unwrap_or(Stop::Ops(defaults.ops)),
            warmup: options.warmup.unwrap_or(Warmup::Auto),
            seed: options.seed.unwrap_or(defaults::SEED),
        };
        if options.rows == Some(0) {
            return Err(PlanError::ZeroRows);
        }
        match options.concurrency.unwrap_or(defaults.concurrency) {
            0 => return Err(PlanError::ZeroConcurrency),
            n if n > defaults::MAX_CONCURRENCY => return Err(PlanError::TooMuchConcurrency(n)),
            _ => {}
        }
        match plan {
            RunPlan { threads: 0, .. } => Err(PlanError::ZeroThreads),
            RunPlan { threads, .. } if threads > defaults::MAX_THREADS => {
                Err(PlanError::TooManyThreads(threads))
            }
            RunPlan { rows, .. } if rows > defaults::MAX_ROWS => Err(PlanError::TooManyRows(rows)),
            RunPlan {
                stop: Stop::Ops(0) | Stop::Duration(Nanos(0)),
                ..
            } => Err(PlanError::EmptyRun),
            plan => plan.check_length().map(|()| plan),
        }
    }

    /// Rejects a run or warm-up longer than [`defaults::MAX_OPS`] or
    /// [`defaults::MAX_DURATION`].
    fn check_length(&self) -> Result<(), PlanError> {
        let check = |flag: &'static str, stop: Stop| match stop {
            Stop::Ops(ops) if ops > defaults::MAX_OPS => Err(PlanError::TooManyOps { flag, ops }),
            Stop::Duration(asked) if asked > defaults::MAX_DURATION => {
                Err(PlanError::TooLong { flag, asked })
            }
            _ => Ok(()),
        };
        check(
            match self.stop {
                Stop::Ops(_) => "--ops",
                Stop::Duration(_) => "--duration",
            },
            self.stop,
        )?;
        match self.warmup_stop() {
            Some(w) => check("--warmup", w),
            None => Ok(()),
        }
    }

    pub(super) fn warmup_stop(&self) -> Option<Stop> {
        match (self.warmup, self.stop) {
            (Warmup::Ops(0) | Warmup::Duration(Nanos(0)), _) => None,
            (Warmup::Ops(n), _) => Some(Stop::Ops(n)),
            (Warmup::Duration(d), _) => Some(Stop::Duration(d)),
            (Warmup::Auto, Stop::Ops(n)) => Some(Stop::Ops((n / 10).max(1))),
            (Warmup::Auto, Stop::Duration(d)) => {
                Some(Stop::Duration(Nanos((d.0 / 10).min(1_000_000_000))))
            }
        }
    }
}

impl std::fmt::Display for RunPlan {
    /// `20000 rows, 4 threads, 2000 ops, seed 42`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows, {} thread{}, {}, seed {}",
            self.rows,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.stop,
            self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_lengths_are_refused_naming_the_flag() {
        let plan = |stop, warmup| {
            let options = RunOptions {
                stop: Some(stop),
                warmup: Some(warmup),
                ..Default::default()
            };
            RunPlan::resolve(&options, WorkloadDefaults::default())
        };
        let ok = Warmup::Ops(0);
        let e = plan(Stop::Ops(u64::MAX), ok).unwrap_err().to_string();
        assert!(e.starts_with("--ops") && e.contains("limit"), "{e}");
        let e = plan(Stop::Duration(Nanos(u64::MAX)), ok)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--duration"), "{e}");
        let e = plan(Stop::Ops(10), Warmup::Ops(u64::MAX))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--warmup"), "{e}");
        let e = plan(Stop::Ops(10), Warmup::Duration(Nanos(u64::MAX)))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--warmup"), "{e}");
        assert!(plan(Stop::Ops(defaults::MAX_OPS), Warmup::Auto).is_ok());
        // Auto warm-up of the longest run stays within the limits.
        let longest = Stop::Duration(defaults::MAX_DURATION);
        assert!(plan(longest, Warmup::Auto).is_ok());
    }
}
