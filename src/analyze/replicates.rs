//! The run as the unit of replication: intervals of a change between two
//! sides measured as several runs each, from the spread *between* runs.
//!
//! On a shared machine two runs of the same code differ by far more than
//! the operations of one run suggest (consecutive operations and CPU
//! samples of one loop are not independent draws), so a change is judged
//! against the run-to-run spread:
//! - both sides with the same number (≥ 2) of runs: paired by order
//!   (interleaved A B A B … runs share the machine's drift), a t interval
//!   of the mean paired difference;
//! - otherwise, with ≥ 2 runs on some side: Welch's t interval (a side of
//!   one run borrows the other side's spread);
//! - one run per side: the spread of a [`NoiseModel`] measured on this
//!   machine (`profkit noise`, [`super::noise`]; else the built-in figures
//!   of the development machine), never the within-run resampling alone.
//!
//! Times, rates and sizes are compared on a log scale (a ratio), so the
//! interval of the relative change `exp(d) − 1` always contains its point
//! estimate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::budget::Metric;

/// Run-to-run spread of identical code on one machine: what one run per
/// side is judged against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseModel {
    /// Where the figures come from.
    pub source: String,
    /// Per metric (its JSON name): the standard deviation between runs of
    /// ln(value), or of the value itself for [`Scale::Absolute`] metrics.
    pub sd: BTreeMap<String, f64>,
    /// Standard deviation between runs of a frame's share of CPU samples,
    /// percentage points, for a share of 50 % (scaled by √(p(1−p)) / 0.5).
    pub share_sd_pp: f64,
    /// Degrees of freedom the figures rest on (runs − 1, summed).
    pub df: f64,
    /// Metrics (and `share`) a measured model did not measure (no data in
    /// its runs): their figures are the built-in model's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_builtin: Vec<String>,
}

impl Default for NoiseModel {
    /// Measured on the development machine (2 cores shared by several
    /// builds, 2026-12-07): see BENCHMARKS.md, "Comparisons that do not
    /// cry wolf".
    fn default() -> Self {
        let sd = [
            (Metric::Mean, 0.45),
            (Metric::P50, 0.03),
            (Metric::P95, 0.08),
            (Metric::P99, 0.30),
            (Metric::Throughput, 0.45),
            (Metric::CpuPerOp, 0.10),
            (Metric::PeakHeap, 0.05),
            (Metric::AllocPerOp, 0.02),
            (Metric::SqlPerOp, 0.005),
            (Metric::FullScans, 0.005),
            (Metric::ErrorRate, 0.001),
            (Metric::LeakSlope, 4.0),
        ]
        .into_iter()
        .map(|(m, s)| (m.name().to_string(), s))
        .collect();
        NoiseModel {
            source: "built-in: identical-code runs on the 2-core development machine".into(),
            sd,
            share_sd_pp: 4.0,
            df: 50.0,
            from_builtin: Vec::new(),
        }
    }
}

impl NoiseModel {
    /// The spread of a metric between runs (0 when the model lacks it).
    pub fn sd(&self, metric: Metric) -> f64 {
        self.sd.get(metric.name()).copied().unwrap_or(0.0)
    }
}

/// How a metric's change is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    /// current ÷ base − 1 (times, rates, sizes, counts).
    Relative,
    /// current − base, in the metric's unit (a rate that may be 0 or
    /// negative: error rate, leak slope).
    Absolute,
}

impl Scale {
    /// The scale of a metric.
    pub fn of(metric: Metric) -> Scale {
        match metric {
            Metric::ErrorRate | Metric::LeakSlope => Scale::Absolute,
            _ => Scale::Relative,
        }
    }
}

/// Where an interval's spread came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Runs paired in order (interleaved).
    Paired,
    /// Welch's t over the runs of both sides.
    Runs,
    /// One run per side: the machine's noise model.
    NoiseModel,
}

/// A change with its interval, on the metric's [`Scale`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Point estimate.
    pub point: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Where its spread came from.
    pub basis: Basis,
}

/// The interval of the change from `base` runs to `current` runs (values
/// in run order), at `confidence`, on `scale`. `model_sd` is the noise
/// model's spread for one run per side; `floor_sd` the least spread
/// between runs believed when there are several (a few runs can agree by
/// chance: three runs' shares of one frame often do). `None` without a run
/// on a side or with a value ≤ 0 on a relative scale.
pub fn change_interval(
    base: &[f64],
    current: &[f64],
    scale: Scale,
    model_sd: f64,
    model_df: f64,
    confidence: f64,
    floor_sd: f64,
) -> Option<Interval> {
    if base.is_empty() || current.is_empty() {
        return None;
    }
    let tr = |v: &[f64]| -> Option<Vec<f64>> {
        match scale {
            Scale::Relative => v
                .iter()
                .map(|&x| (x > 0.0 && x.is_finite()).then(|| x.ln()))
                .collect(),
            Scale::Absolute => v.iter().all(|x| x.is_finite()).then(|| v.to_vec()),
        }
    };
    let (b, c) = (tr(base)?, tr(current)?);
    let (nb, nc) = (b.len() as f64, c.len() as f64);
    let d = mean(&c) - mean(&b);
    // Several runs: their own spread, pooled with the noise model's (as
    // many degrees of freedom as the model rests on), so three runs that
    // agree by chance do not make a narrow interval, nor three that
    // disagree by chance a useless one.
    // Never narrower than the runs' own spread, though: runs that disagree
    // more than the model allows (another machine, a debug build) show the
    // model does not hold here, and pooling would still call their
    // difference a change (identical code "improved" at p50 in a debug
    // fresh-clone run).
    let pool = |var: f64, df: f64, model_var: f64| -> (f64, f64) {
        let total = df + model_df.max(0.0);
        if total <= 0.0 {
            return (var, df.max(1.0));
        }
        let pooled = (df * var + model_df.max(0.0) * model_var) / total;
        (pooled.max(var), total)
    };
    let m2 = model_sd * model_sd;
    let (se, df, basis) = if b.len() == c.len() && b.len() >= 2 {
        let diffs: Vec<f64> = c.iter().zip(&b).map(|(x, y)| x - y).collect();
        let floor = 2.0 * floor_sd * floor_sd;
        let (var, df) = pool(variance(&diffs).max(floor), nb - 1.0, 2.0 * m2);
        ((var / nb).sqrt(), df, Basis::Paired)
    } else if b.len() >= 2 || c.len() >= 2 {
        let floor = floor_sd * floor_sd;
        // A side of one run has no spread of its own: it borrows the
        // other side's.
        let (vb, vc) = (variance(&b).max(floor), variance(&c).max(floor));
        let (dfb, dfc) = (nb - 1.0, nc - 1.0);
        let (vb, dfb) = pool(vb, dfb, m2);
        let (vc, dfc) = pool(vc, dfc, m2);
        let (vb, vc, dfb, dfc) = match (b.len(), c.len()) {
            (1, _) => (vc, vc, dfc, dfc),
            (_, 1) => (vb, vb, dfb, dfb),
            _ => (vb, vc, dfb, dfc),
        };
        let (qb, qc) = (vb / nb, vc / nc);
        let se2 = qb + qc;
        let df = if se2 > 0.0 {
            se2 * se2 / (qb * qb / dfb.max(1.0) + qc * qc / dfc.max(1.0))
        } else {
            dfb.min(dfc)
        };
        (se2.sqrt(), df.max(1.0), Basis::Runs)
    } else {
        (
            model_sd * (1.0 / nb + 1.0 / nc).sqrt(),
            model_df.max(1.0),
            Basis::NoiseModel,
        )
    };
    let half = t_quantile(0.5 + confidence / 2.0, df) * se;
    let back = |x: f64| match scale {
        Scale::Relative => x.exp() - 1.0,
        Scale::Absolute => x,
    };
    Some(Interval {
        point: back(d),
        lo: back(d - half),
        hi: back(d + half),
        basis,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample variance (n − 1); 0 for fewer than 2 values.
pub fn variance(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// The standard normal quantile (Acklam's rational approximation,
/// relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student's t quantile: exact for 1 and 2 degrees of freedom, the
/// Cornish–Fisher expansion beyond (error < 0.5 % from 3 df at 0.975).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if df < 1.5 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if df < 2.5 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let z = normal_quantile(p);
    let (z2, v) = (z * z, df);
    z + z * (z2 + 1.0) / (4.0 * v)
        + z * ((5.0 * z2 + 16.0) * z2 + 3.0) / (96.0 * v * v)
        + z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / (384.0 * v.powi(3))
        + z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0)
            / (92160.0 * v.powi(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_the_tables() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        for (df, want) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (9.0, 2.262),
            (30.0, 2.042),
        ] {
            let t = t_quantile(0.975, df);
            assert!((t - want).abs() / want < 0.006, "df {df}: {t} vs {want}");
        }
    }

    #[test]
    fn runs_that_disagree_more_than_the_model_are_not_a_change() {
        // Paired differences +26 %, −5 %, +17 %: the runs' own spread is
        // ~16 %, the model says 1 %. Pooled with the model's 50 degrees of
        // freedom alone the interval was [+9 %, +17 %], a verdict.
        let base = [100.0, 100.0, 100.0];
        let cur = [130.0, 95.0, 118.0];
        let i = change_interval(&base, &cur, Scale::Relative, 0.01, 50.0, 0.95, 0.0).unwrap();
        assert!(i.lo < 0.0 && i.hi > 0.0, "{i:?}");
    }

    #[test]
    fn intervals_contain_their_point_estimates_and_widen_with_spread() {
        let base = [100.0, 104.0, 98.0, 101.0];
        let cur = [115.0, 118.0, 114.0, 117.0];
        let i = change_interval(&base, &cur, Scale::Relative, 0.02, 10.0, 0.95, 0.0).unwrap();
        assert_eq!(i.basis, Basis::Paired);
        assert!(i.lo <= i.point && i.point <= i.hi, "{i:?}");
        assert!(i.lo > 0.05 && (i.point - 0.15).abs() < 0.02, "{i:?}");
        // Identical runs: at 0, as wide as the noise model says (runs
        // that agree exactly are no proof of no noise).
        let same = change_interval(&base, &base, Scale::Relative, 0.1, 10.0, 0.95, 0.0).unwrap();
        assert!(
            same.point.abs() < 1e-12 && same.lo < -0.05 && same.hi > 0.05,
            "{same:?}"
        );
        // Without a model, their own (zero) spread.
        let bare = change_interval(&base, &base, Scale::Relative, 0.0, 0.0, 0.95, 0.0).unwrap();
        assert!(bare.hi - bare.lo < 1e-12, "{bare:?}");
        // One run a side: the noise model decides the width.
        let one =
            change_interval(&[100.0], &[115.0], Scale::Relative, 0.12, 18.0, 0.95, 0.0).unwrap();
        assert_eq!(one.basis, Basis::NoiseModel);
        assert!(one.lo < 0.0 && one.hi > 0.4, "{one:?}");
        // Unequal counts: Welch, and a one-run side borrows the spread.
        let w = change_interval(&base, &[115.0], Scale::Relative, 0.0, 10.0, 0.95, 0.0).unwrap();
        assert_eq!(w.basis, Basis::Runs);
        assert!(w.lo <= w.point && w.point <= w.hi && w.hi > w.lo, "{w:?}");
        // Absolute scale: a difference.
        let a = change_interval(
            &[0.0, 1.0],
            &[5.0, 6.0],
            Scale::Absolute,
            0.0,
            1.0,
            0.95,
            0.0,
        )
        .unwrap();
        assert!((a.point - 5.0).abs() < 1e-12, "{a:?}");
        assert!(change_interval(&[0.0], &[1.0], Scale::Relative, 0.1, 5.0, 0.95, 0.0).is_none());
    }
}
