//! Scaling: how a workload behaves as users (threads) and data (rows) grow.
//!
//! - A **thread sweep** measures one run per thread count, each with its own
//!   warm-up, on one set-up database, and reports the scaling efficiency
//!   `throughput(T) ÷ (T × throughput(1))` (relative to the smallest level
//!   when 1 is not among them) next to the cores actually available: past
//!   the core count, efficiency measures oversubscription, not scaling.
//! - A **rows sweep** sets the workload up at each data volume and fits the
//!   median cost per operation to constant, log n, n, n log n and n² growth
//!   (least squares with an intercept) and names the best fit with its
//!   goodness. The verdict comes from the log–log slope instead (cost ∝
//!   n^k, with a 95 % interval): a straight line with a big intercept fits
//!   any nearly flat series, so growth is flagged only when k is near 1 or
//!   above *and* the cost grows materially over the range swept.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fit::{Line, PowerLaw};
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
    /// Growth is flagged from this log–log slope up: linear growth on top
    /// of a fixed cost bends the slope below 1 at small sizes, and k = 0.7
    /// still means 1.6× the cost for 2× the data.
    pub const FLAG_EXPONENT: f64 = 0.7;
    /// … and only when the fitted cost grows at least this much over the
    /// range swept (1.5: +50 %).
    pub const MATERIAL_GROWTH: f64 = 1.5;
    /// Below this log–log exponent (point estimate, so also whenever its
    /// whole interval lies below) the printed model is never O(n) or worse:
    /// a cost that grows less than √ of the data is not linear over the
    /// range measured, whatever fits its residuals.
    pub const SUBLINEAR_EXPONENT: f64 = 0.5;
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
    /// Where the added thread's time goes, when efficiency at the second
    /// level is below [`super::scaling_cause::POOR_EFFICIENCY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_cause: Option<super::scaling_cause::ScalingCause>,
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
    /// Whether the growth is linear or worse and material: exponent at
    /// least [`defaults::FLAG_EXPONENT`] and growth at least
    /// [`defaults::MATERIAL_GROWTH`].
    pub flagged: bool,
    /// Log–log slope k of cost ∝ n^k.
    #[serde(default)]
    pub exponent: f64,
    /// Lower end of k's 95 % interval.
    #[serde(default)]
    pub exponent_low: f64,
    /// Upper end of k's 95 % interval.
    #[serde(default)]
    pub exponent_high: f64,
    /// Fitted cost at the largest size ÷ at the smallest.
    #[serde(default)]
    pub growth: f64,
    /// Every model's fit, simplest first.
    pub models: Vec<ModelFit>,
    /// The model the residuals alone chose when it was linear or worse but
    /// the exponent said the cost grew sublinearly over the range (an O(n)
    /// term on a large fixed cost): `best` is then the closest sublinear
    /// model, so the label agrees with the exponent.
    #[serde(default)]
    pub relabelled_from: Option<Complexity>,
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
    let mut chosen = *models
        .iter()
        .find(|m| m.nrmse <= best_residual * defaults::FIT_SLACK + defaults::FIT_TOLERANCE)
        .unwrap_or(&models[0]);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    // Zero or negative costs have no logarithm: no growth to speak of.
    let power = PowerLaw::fit(&xs, &ys);
    let (lo, hi) = (sizes[0], sizes[sizes.len() - 1]);
    let growth = power.map_or(1.0, |p| p.ratio(lo, hi));
    let exponent = power.map_or(0.0, |p| p.k);
    let mut relabelled_from = None;
    if chosen.model.is_linear_or_worse()
        && power.is_some_and(|p| p.k < defaults::SUBLINEAR_EXPONENT)
    {
        // The closest sublinear model by the same rule: O(1) while it fits
        // nearly as well as O(log n), else O(log n).
        let sub = &models[..2];
        let best_sub = sub.iter().map(|m| m.nrmse).fold(f64::INFINITY, f64::min);
        relabelled_from = Some(chosen.model);
        chosen = *sub
            .iter()
            .find(|m| m.nrmse <= best_sub * defaults::FIT_SLACK + defaults::FIT_TOLERANCE)
            .unwrap_or(&sub[1]);
    }
    Some(ComplexityFit {
        best: chosen.model,
        nrmse: chosen.nrmse,
        r_squared: chosen.r_squared,
        flagged: exponent >= defaults::FLAG_EXPONENT && growth >= defaults::MATERIAL_GROWTH,
        exponent,
        exponent_low: power.map_or(0.0, |p| p.low),
        exponent_high: power.map_or(0.0, |p| p.high),
        growth,
        models,
        relabelled_from,
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
            // O(n log n) over 100× the data is k > 1: flagged with O(n) and O(n²).
            assert_eq!(fit.flagged, want.is_linear_or_worse(), "{fit:?}");
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
    fn the_label_agrees_with_the_exponent() {
        // The sweep: 1,000 → 100,000 rows, cost 1.9× (n^0.14): a
        // fixed cost with a small linear term fits best, yet "O(n)" would
        // mislead.
        let pts: Vec<_> = [1e3, 1e4, 1e5]
            .iter()
            .map(|&n| (n, 4000.0 * (1.0 + 9.17e-6 * n)))
            .collect();
        let fit = fit_complexity(&pts).unwrap();
        assert!(fit.exponent < 0.2, "{fit:?}");
        assert!(!fit.best.is_linear_or_worse(), "{fit:?}");
        assert_eq!(fit.relabelled_from, Some(Complexity::Linear), "{fit:?}");
        assert!(!fit.flagged);
        // Logarithmic growth with jitter, its whole interval below 0.5.
        let jitter = [1.0, 1.03, 0.98, 1.01, 0.97];
        let pts: Vec<_> = points(|n| 1000.0 + 300.0 * n.ln())
            .into_iter()
            .zip(jitter)
            .map(|((n, c), j)| (n, c * j))
            .collect();
        let fit = fit_complexity(&pts).unwrap();
        assert!(fit.exponent_high < 0.5, "{fit:?}");
        assert!(!fit.best.is_linear_or_worse(), "{fit:?}");
        // Linear growth keeps its label.
        let fit = fit_complexity(&points(|n| 300.0 + 2.0 * n)).unwrap();
        assert_eq!((fit.best, fit.relabelled_from), (Complexity::Linear, None));
    }

    /// Row ranges a user might sweep: short and long, small and large data.
    const RANGES: [&[f64]; 6] = [
        &[1e3, 4e3, 16e3],
        &[2e3, 8e3, 32e3],
        &[1e4, 2e4, 4e4, 8e4],
        &[1e3, 1e4, 1e5],
        &[5e4, 1e5, 2e5],
        &[1e3, 2e3, 4e3, 8e3, 16e3],
    ];

    /// Jitter patterns of a shared VM, the worst rising with the data.
    const JITTERS: [&[f64]; 4] = [
        &[1.0, 1.0, 1.0, 1.0, 1.0],
        &[0.85, 1.0, 1.15, 1.15, 1.15],
        &[1.1, 0.9, 1.12, 0.95, 1.15],
        &[1.15, 1.0, 0.85, 1.0, 0.9],
    ];

    fn sampled(range: &[f64], jitter: &[f64], cost: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        range
            .iter()
            .zip(jitter)
            .map(|(&n, j)| (n, cost(n) * j))
            .collect()
    }

    #[test]
    fn a_nearly_flat_indexed_cost_is_never_flagged() {
        // The sweep: 21.9 → 22.1 → 25.3 µs over 16× the data.
        let fit = fit_complexity(&[(1e3, 21_900.0), (4e3, 22_100.0), (16e3, 25_300.0)]).unwrap();
        assert!(!fit.flagged, "{fit:?}");
        assert!(fit.exponent < 0.1, "{fit:?}");
        // An index lookup: a fixed cost plus a B-tree descent (log n).
        for range in RANGES {
            for jitter in JITTERS {
                let pts = sampled(range, jitter, |n| 20_000.0 + 300.0 * n.ln());
                let fit = fit_complexity(&pts).unwrap();
                assert!(!fit.flagged, "indexed {pts:?} flagged: {fit:?}");
            }
        }
    }

    #[test]
    fn a_scan_is_always_flagged() {
        // A full scan: 0.6 µs per row on top of a fixed 15 µs.
        for range in RANGES {
            for jitter in JITTERS {
                let pts = sampled(range, jitter, |n| 15_000.0 + 600.0 * n);
                let fit = fit_complexity(&pts).unwrap();
                assert!(fit.flagged, "scan {pts:?} not flagged: {fit:?}");
                assert!(fit.exponent >= defaults::FLAG_EXPONENT, "{fit:?}");
                assert!(fit.exponent_high >= fit.exponent, "{fit:?}");
                assert!(fit.exponent_low <= fit.exponent, "{fit:?}");
            }
        }
    }

    #[test]
    fn growth_must_be_material_to_flag() {
        // Proportional to the data, but the range is narrow: +20 %.
        let pts = [(1e4, 1000.0), (1.1e4, 1100.0), (1.2e4, 1200.0)];
        let fit = fit_complexity(&pts).unwrap();
        assert!((fit.exponent - 1.0).abs() < 1e-6, "{fit:?}");
        assert!(!fit.flagged, "{fit:?}");
        assert!(fit.growth < defaults::MATERIAL_GROWTH, "{fit:?}");
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
