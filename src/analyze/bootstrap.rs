//! Bootstrap confidence intervals of latency changes: each side's
//! per-operation latencies are resampled with replacement from its HDR
//! histogram with a seeded RNG, so the same inputs give the same interval.
//!
//! The cost does not grow with the operation count: a side of n operations
//! is resampled with m = min(n, [`MAX_DRAWS`]) draws (inverse CDF over the
//! buckets), and each resampled statistic's distance from the full
//! sample's is scaled by √(m/n) — the m-out-of-n bootstrap, whose spread
//! then matches an n-draw resample's for means and quantiles (both shrink
//! as 1/√n).

use std::collections::HashMap;

use rand::{Rng as _, SeedableRng as _};

use super::budget::Metric;
use super::compare::{defaults, CompareOptions};
use super::rundata::LoadedRun;

/// Most draws of one resample of one side.
pub(crate) const MAX_DRAWS: u64 = 20_000;

/// Resampled latency statistics of both sides.
pub(crate) struct LatencyBootstrap {
    /// Per latency metric: sorted resampled ratios current/base − 1.
    ratios: HashMap<Metric, Vec<f64>>,
    confidence: f64,
}

/// A histogram ready for resampling: bucket values and cumulative counts.
struct Sampler {
    values: Vec<u64>,
    cumulative: Vec<u64>,
    total: u64,
    /// Draws per resample: min(total, [`MAX_DRAWS`]).
    draws: u64,
    /// √(draws ÷ total): how much a resample's deviation is scaled.
    scale: f64,
    /// The statistics of the histogram itself.
    full: [f64; 4],
}

impl Sampler {
    /// `None` with fewer than 2 operations, or counts past 64 bits.
    fn new(hist: &[(u64, u64)]) -> Option<Sampler> {
        let mut values = Vec::with_capacity(hist.len());
        let mut cumulative = Vec::with_capacity(hist.len());
        let mut counts = Vec::with_capacity(hist.len());
        let mut total = 0u64;
        for &(v, n) in hist {
            if n == 0 {
                continue;
            }
            total = total.checked_add(n)?;
            values.push(v);
            counts.push(n);
            cumulative.push(total);
        }
        let draws = total.min(MAX_DRAWS);
        let mut s = Sampler {
            values,
            cumulative,
            total,
            draws,
            scale: (draws as f64 / total.max(1) as f64).sqrt(),
            full: [0.0; 4],
        };
        s.full = s.stats(&counts);
        (total > 1).then_some(s)
    }

    /// One resample of [`Sampler::draws`] operations: counts per bucket.
    fn resample(&self, rng: &mut rand_chacha::ChaCha8Rng, counts: &mut [u64]) {
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..self.draws {
            let u = rng.random_range(0..self.total);
            let i = self.cumulative.partition_point(|&c| c <= u);
            counts[i] += 1;
        }
    }

    /// The statistics of a resample, as if it had drawn all `total`
    /// operations: its deviation from the full sample scaled by √(m/n).
    fn resampled_stats(&self, counts: &[u64]) -> [f64; 4] {
        let x = self.stats(counts);
        std::array::from_fn(|i| self.full[i] + (x[i] - self.full[i]) * self.scale)
    }

    /// Mean and quantiles of bucket counts.
    fn stats(&self, counts: &[u64]) -> [f64; 4] {
        let n = counts.iter().map(|&c| c as f64).sum::<f64>().max(1.0);
        let mean = counts
            .iter()
            .zip(&self.values)
            .map(|(&c, &v)| c as f64 * v as f64)
            .sum::<f64>()
            / n;
        let q = |p: f64| {
            let rank = (p * n).ceil().max(1.0);
            let mut acc = 0.0;
            for (&c, &v) in counts.iter().zip(&self.values) {
                acc += c as f64;
                if acc >= rank {
                    return v as f64;
                }
            }
            *self.values.last().unwrap_or(&0) as f64
        };
        [mean, q(0.50), q(0.95), q(0.99)]
    }
}

const BOOT_METRICS: [Metric; 4] = [Metric::Mean, Metric::P50, Metric::P95, Metric::P99];

impl LatencyBootstrap {
    pub(crate) fn new(base: &LoadedRun, current: &LoadedRun, opt: &CompareOptions) -> Option<Self> {
        Self::from_histograms(
            &base.bench.latency.histogram,
            &current.bench.latency.histogram,
            opt,
        )
    }

    /// From two latency histograms of (value, count) buckets.
    fn from_histograms(
        base: &[(u64, u64)],
        current: &[(u64, u64)],
        opt: &CompareOptions,
    ) -> Option<Self> {
        let sb = Sampler::new(base)?;
        let sc = Sampler::new(current)?;
        // Bound the work to ~4 million draws.
        let per = (sb.draws + sc.draws).max(1) as usize;
        let resamples = (4_000_000 / per).clamp(defaults::MIN_RESAMPLES, opt.resamples.max(1));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opt.seed);
        let mut cb = vec![0u64; sb.values.len()];
        let mut cc = vec![0u64; sc.values.len()];
        let mut ratios: HashMap<Metric, Vec<f64>> = HashMap::new();
        for _ in 0..resamples {
            sb.resample(&mut rng, &mut cb);
            sc.resample(&mut rng, &mut cc);
            let (xb, xc) = (sb.resampled_stats(&cb), sc.resampled_stats(&cc));
            for (i, m) in BOOT_METRICS.into_iter().enumerate() {
                if xb[i] > 0.0 {
                    ratios.entry(m).or_default().push(xc[i] / xb[i] - 1.0);
                }
            }
        }
        for v in ratios.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        Some(LatencyBootstrap {
            ratios,
            confidence: opt.confidence,
        })
    }

    pub(crate) fn interval(&self, metric: Metric) -> Option<(f64, f64)> {
        let v = self.ratios.get(&metric).filter(|v| !v.is_empty())?;
        let alpha = (1.0 - self.confidence) / 2.0;
        let at = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        Some((at(alpha), at(1.0 - alpha)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A latency histogram: a spread of buckets around `centre` ns.
    fn hist(centre: u64) -> Vec<(u64, u64)> {
        (0..21u64)
            .map(|i| {
                let v = centre * (90 + i) / 100;
                let n = 60 - 5 * i.abs_diff(10);
                (v, n + 1)
            })
            .collect()
    }

    fn boot(base: &[(u64, u64)], current: &[(u64, u64)], seed: u64) -> LatencyBootstrap {
        let opt = CompareOptions {
            seed,
            resamples: 400,
            ..CompareOptions::default()
        };
        LatencyBootstrap::from_histograms(base, current, &opt).unwrap()
    }

    #[test]
    fn resampling_keeps_the_count_and_stats_read_the_buckets() {
        let s = Sampler::new(&[(100, 500), (200, 500)]).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = vec![0; 2];
        s.resample(&mut rng, &mut counts);
        assert_eq!(counts.iter().sum::<u64>(), 1000);
        let st = s.stats(&[500, 500]);
        assert_eq!(st[0], 150.0);
        assert_eq!(st[1], 100.0);
        assert_eq!(st[2], 200.0);
    }

    #[test]
    fn bootstrap_intervals_are_deterministic_and_cover_the_change() {
        let base = hist(1_000_000);
        let slower = hist(1_200_000);
        // The same seed gives the same intervals.
        let (a, b) = (boot(&base, &slower, 7), boot(&base, &slower, 7));
        for m in BOOT_METRICS {
            assert_eq!(a.interval(m), b.interval(m), "{m:?}");
        }
        // A 20 % slowdown: the interval excludes 0 and holds +20 %.
        for m in [Metric::Mean, Metric::P50] {
            let (lo, hi) = a.interval(m).unwrap();
            assert!(lo > 0.0, "{m:?}: [{lo}, {hi}] should exclude 0");
            assert!(
                lo - 1e-9 <= 0.2 && 0.2 <= hi + 1e-9,
                "{m:?}: [{lo}, {hi}] should hold 0.2"
            );
        }
        // Identical inputs: the interval includes 0.
        let same = boot(&base, &base, 7);
        for m in [Metric::Mean, Metric::P50] {
            let (lo, hi) = same.interval(m).unwrap();
            assert!(lo <= 0.0 && 0.0 <= hi, "{m:?}: [{lo}, {hi}] should hold 0");
            assert!(hi - lo < 0.2, "{m:?}: [{lo}, {hi}] is too wide");
        }
    }

    #[test]
    fn huge_histograms_cost_a_fixed_number_of_draws_with_the_same_spread() {
        // 2^62 operations: resampled in MAX_DRAWS draws, not 2^62.
        let huge = Sampler::new(&[(100, 1 << 61), (200, 1 << 61)]).unwrap();
        assert_eq!(huge.draws, MAX_DRAWS);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = vec![0; 2];
        huge.resample(&mut rng, &mut counts);
        assert_eq!(counts.iter().sum::<u64>(), MAX_DRAWS);
        // With 2^62 operations the mean is known almost exactly.
        let mean = huge.resampled_stats(&counts)[0];
        assert!((mean - 150.0).abs() < 1e-3, "{mean}");
        // The spread of a scaled m-out-of-n resample matches an n-draw one.
        let n = 4 * MAX_DRAWS;
        let sd = |s: &Sampler| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let mut c = vec![0; 2];
            let means: Vec<f64> = (0..300)
                .map(|_| {
                    s.resample(&mut rng, &mut c);
                    s.resampled_stats(&c)[0]
                })
                .collect();
            let m = means.iter().sum::<f64>() / means.len() as f64;
            (means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / means.len() as f64).sqrt()
        };
        let scaled = Sampler::new(&[(100, n / 2), (200, n / 2)]).unwrap();
        let mut exact = Sampler::new(&[(100, n / 2), (200, n / 2)]).unwrap();
        exact.draws = n;
        exact.scale = 1.0;
        let (a, b) = (sd(&scaled), sd(&exact));
        assert!((a / b - 1.0).abs() < 0.25, "scaled {a} vs exact {b}");
    }
}
