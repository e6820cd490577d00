//! Scaling: how a workload behaves as users (threads) and data (rows) grow.
//!
//! - A **thread sweep** measures one run per thread count, each with its own
//!   warm-up, on one set-up database, and reports the scaling efficiency
//!   `throughput(T) ÷ (T × throughput(1))` (relative to the smallest level
//!   when 1 is not among them) next to the cores actually available: past
//!   the core count, efficiency measures oversubscription, not scaling.
//! - A **rows sweep** sets the workload up at each data volume and fits the
//!   median cost per operation to constant, log n, n, n log n and n² growth
//!   (least squares with an intercept), names the best fit with its
//!   goodness and flags growth that is linear or worse.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fit::Line;
use crate::measure::BenchResult;
use crate::units::Nanos;

/// Version of `sweep.json`.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// Defaults of sweeps, defined once.
pub mod defaults {
    use std::time::Duration;

    /// Measured time per level when neither `--ops` nor `--duration` is given.
    pub const LEVEL_DURATION: Duration = Duration::from_secs(1);
    /// Thread levels of `profkit sweep` when none are given.
    pub const THREADS: &[usize] = &[1, 2, 4, 8];
    /// A model is preferred over a more complex one while its normalised
    /// residual is at most `FIT_SLACK ×` the best one's `+ FIT_TOLERANCE`
    /// (a share of the mean cost): noise must not pick a fancier model.
    pub const FIT_TOLERANCE: f64 = 0.02;
    /// See [`FIT_TOLERANCE`].
    pub const FIT_SLACK: f64 = 1.5;
    /// Fewest data volumes a growth fit needs.
    pub const MIN_FIT_POINTS: usize = 3;
}

/// Errors in sweep options.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SweepError {
    /// No levels.
    #[error("--{0} needs at least one level (e.g. --threads 1,2,4,8)")]
    NoLevels(&'static str),
    /// Both dimensions have several levels.
    #[error("sweep one dimension at a time: give several --threads or several --rows, not both")]
    TwoDimensions,
    /// A level of zero.
    #[error("--{0} levels must be at least 1")]
    ZeroLevel(&'static str),
}

/// What a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    /// Worker threads.
    Threads,
    /// Data volume.
    Rows,
}

/// One level of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepLevel {
    /// Worker threads.
    pub threads: usize,
    /// Data volume.
    pub rows: u64,
    /// Scaling efficiency (thread sweeps only).
    pub efficiency: Option<f64>,
    /// The measured run.
    pub bench: BenchResult,
}

/// The result of a sweep: what `sweep.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// [`SWEEP_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// What was varied.
    pub kind: SweepKind,
    /// Logical cores available to the process.
    pub cores: usize,
    /// One entry per level, in ascending order.
    pub levels: Vec<SweepLevel>,
    /// Growth fit of the median cost per operation (rows sweeps with at
    /// least three levels).
    pub fit: Option<ComplexityFit>,
}

/// A growth model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// O(1).
    Constant,
    /// O(log n).
    Logarithmic,
    /// O(n).
    Linear,
    /// O(n log n).
    Linearithmic,
    /// O(n²).
    Quadratic,
}

impl Complexity {
    /// All models, simplest first.
    pub const ALL: [Complexity; 5] = [
        Complexity::Constant,
        Complexity::Logarithmic,
        Complexity::Linear,
        Complexity::Linearithmic,
        Complexity::Quadratic,
    ];

    /// The model's shape at `n`.
    pub fn shape(self, n: f64) -> f64 {
        let n = n.max(1.0);
        match self {
            Complexity::Constant => 1.0,
            Complexity::Logarithmic => n.ln(),
            Complexity::Linear => n,
            Complexity::Linearithmic => n * n.ln(),
            Complexity::Quadratic => n * n,
        }
    }

    /// Whether growth this fast deserves a flag.
    pub fn is_linear_or_worse(self) -> bool {
        matches!(
            self,
            Complexity::Linear | Complexity::Linearithmic | Complexity::Quadratic
        )
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Complexity::Constant => "O(1)",
            Complexity::Logarithmic => "O(log n)",
            Complexity::Linear => "O(n)",
            Complexity::Linearithmic => "O(n log n)",
            Complexity::Quadratic => "O(n²)",
        })
    }
}

/// One model fitted to the points: `cost ≈ intercept + slope × shape(n)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    /// The model.
    pub model: Complexity,
    /// Fixed cost (ns).
    pub intercept: f64,
    /// Cost per unit of the model's shape (ns); never negative (a falling
    /// cost is fitted as constant).
    pub slope: f64,
    /// Coefficient of determination (0 for the constant model).
    pub r_squared: f64,
    /// Root-mean-square residual ÷ mean cost: 0 is a perfect fit.
    pub nrmse: f64,
}

impl ModelFit {
    /// The fitted cost at `n` (ns).
    pub fn predict(&self, n: f64) -> f64 {
        self.intercept + self.slope * self.model.shape(n)
    }
}

/// The growth of cost with data volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComplexityFit {
    /// The simplest model that fits nearly as well as the best (see
    /// [`defaults::FIT_TOLERANCE`]).
    pub best: Complexity,
    /// Goodness of the chosen model: normalised RMS residual.
    pub nrmse: f64,
    /// Goodness of the chosen model: R².
    pub r_squared: f64,
    /// Whether the growth is linear or worse.
    pub flagged: bool,
    /// Every model's fit, simplest first.
    pub models: Vec<ModelFit>,
}

/// Fits `cost = a + b × shape(n)` (b ≥ 0) for one model.
fn fit_model(model: Complexity, points: &[(f64, f64)]) -> ModelFit {
    let xs: Vec<f64> = points.iter().map(|p| model.shape(p.0)).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mut line = Line::fit(&xs, &ys);
    if model == Complexity::Constant || line.slope < 0.0 {
        line = Line::through_means(&xs, &ys, 0.0);
    }
    let goodness = line.goodness(&xs, &ys);
    let mean_y = ys.iter().sum::<f64>() / ys.len().max(1) as f64;
    ModelFit {
        model,
        intercept: line.intercept,
        slope: line.slope,
        r_squared: goodness.r_squared,
        nrmse: if mean_y > 0.0 {
            goodness.rms / mean_y
        } else {
            0.0
        },
    }
}

/// Fits the growth of `cost` (any unit) with `n` over the points; `None`
/// with fewer than [`defaults::MIN_FIT_POINTS`] distinct sizes.
///
/// Every model is fitted by least squares with an intercept; the answer is
/// the simplest model whose normalised residual is close to the best one's
/// (see [`defaults::FIT_TOLERANCE`]), so noise does not make a flat cost
/// look logarithmic, nor a linear one n·log n.
pub fn fit_complexity(points: &[(f64, f64)]) -> Option<ComplexityFit> {
    let mut sizes: Vec<f64> = points.iter().map(|p| p.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    if sizes.len() < defaults::MIN_FIT_POINTS
        || points.iter().any(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return None;
    }
    let models: Vec<ModelFit> = Complexity::ALL
        .iter()
        .map(|&m| fit_model(m, points))
        .collect();
    let best_residual = models.iter().map(|m| m.nrmse).fold(f64::INFINITY, f64::min);
    let chosen = *models
        .iter()
        .find(|m| m.nrmse <= best_residual * defaults::FIT_SLACK + defaults::FIT_TOLERANCE)
        .unwrap_or(&models[0]);
    Some(ComplexityFit {
        best: chosen.model,
        nrmse: chosen.nrmse,
        r_squared: chosen.r_squared,
        flagged: chosen.model.is_linear_or_worse(),
        models,
    })
}

/// Scaling efficiency of each level relative to the smallest thread count:
/// `(throughput(T) ÷ T) ÷ (throughput(T₀) ÷ T₀)`.
pub fn efficiencies(levels: &[(usize, f64)]) -> Vec<f64> {
    let Some(&(t0, x0)) = levels.iter().min_by_key(|l| l.0) else {
        return Vec::new();
    };
    levels
        .iter()
        .map(|&(t, x)| {
            if x0 > 0.0 && t > 0 {
                (x / t as f64) / (x0 / t0 as f64)
            } else {
                0.0
            }
        })
        .collect()
}

/// The cost per operation a rows sweep fits: the median latency.
pub fn cost_per_op(bench: &BenchResult) -> Nanos {
    bench.latency.p50
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        [1e3, 3e3, 1e4, 3e4, 1e5]
            .iter()
            .map(|&n| (n, f(n)))
            .collect()
    }

    #[test]
    fn exact_shapes_are_named() {
        type Shape = fn(f64) -> f64;
        let cases: [(Complexity, Shape); 5] = [
            (Complexity::Constant, |_| 500.0),
            (Complexity::Logarithmic, |n| 200.0 + 50.0 * n.ln()),
            (Complexity::Linear, |n| 300.0 + 2.0 * n),
            (Complexity::Linearithmic, |n| 300.0 + 2.0 * n * n.ln()),
            (Complexity::Quadratic, |n| 100.0 + 0.01 * n * n),
        ];
        for (want, f) in cases {
            let fit = fit_complexity(&points(f)).unwrap();
            assert_eq!(fit.best, want, "{fit:?}");
            assert_eq!(fit.flagged, want.is_linear_or_worse());
        }
    }

    #[test]
    fn noise_does_not_make_a_flat_cost_grow() {
        // ±4 % jitter around a constant.
        let jitter = [1.0, 1.04, 0.97, 1.02, 0.96];
        let pts: Vec<_> = points(|_| 1000.0)
            .into_iter()
            .zip(jitter)
            .map(|((n, c), j)| (n, c * j))
            .collect();
        assert_eq!(fit_complexity(&pts).unwrap().best, Complexity::Constant);
        // ±4 % jitter on a linear cost is still linear.
        let pts: Vec<_> = points(|n| 50.0 * n)
            .into_iter()
            .zip(jitter)
            .map(|((n, c), j)| (n, c * j))
            .collect();
        let fit = fit_complexity(&pts).unwrap();
        assert_eq!(fit.best, Complexity::Linear, "{fit:?}");
        assert!(fit.r_squared > 0.99);
    }

    #[test]
    fn too_few_points_give_no_fit() {
        assert!(fit_complexity(&[(1e3, 1.0), (1e4, 10.0)]).is_none());
        assert!(fit_complexity(&[(1e3, 1.0), (1e3, 2.0), (1e4, 10.0)]).is_none());
    }

    #[test]
    fn efficiency_is_relative_to_the_smallest_level() {
        let e = efficiencies(&[(1, 100.0), (2, 180.0), (4, 200.0)]);
        assert_eq!(e, vec![1.0, 0.9, 0.5]);
        let e = efficiencies(&[(2, 200.0), (4, 400.0)]);
        assert_eq!(e, vec![1.0, 1.0]);
    }
}
