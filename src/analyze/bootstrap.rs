//! Bootstrap confidence intervals of latency changes: each side's
//! per-operation latencies are resampled with replacement from its HDR
//! histogram with a seeded RNG, so the same inputs give the same interval.

use std::collections::HashMap;

use rand::{Rng as _, SeedableRng as _};

use super::budget::Metric;
use super::compare::{defaults, CompareOptions};
use super::rundata::LoadedRun;

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
}

impl Sampler {
    fn new(hist: &[(u64, u64)]) -> Option<Sampler> {
        let mut values = Vec::with_capacity(hist.len());
        let mut cumulative = Vec::with_capacity(hist.len());
        let mut total = 0u64;
        for &(v, n) in hist {
            if n == 0 {
                continue;
            }
            total += n;
            values.push(v);
            cumulative.push(total);
        }
        (total > 1).then_some(Sampler {
            values,
            cumulative,
            total,
        })
    }

    /// One resample of `total` operations: counts per bucket.
    fn resample(&self, rng: &mut rand_chacha::ChaCha8Rng, counts: &mut [u64]) {
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..self.total {
            let u = rng.random_range(0..self.total);
            let i = self.cumulative.partition_point(|&c| c <= u);
            counts[i] += 1;
        }
    }

    /// Mean and quantiles of bucket counts.
    fn stats(&self, counts: &[u64]) -> [f64; 4] {
        let n = counts.iter().sum::<u64>().max(1);
        let mean = counts
            .iter()
            .zip(&self.values)
            .map(|(&c, &v)| c as f64 * v as f64)
            .sum::<f64>()
            / n as f64;
        let q = |p: f64| {
            let rank = ((p * n as f64).ceil() as u64).max(1);
            let mut acc = 0;
            for (&c, &v) in counts.iter().zip(&self.values) {
                acc += c;
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
        let per = (sb.total + sc.total).max(1) as usize;
        let resamples = (4_000_000 / per).clamp(defaults::MIN_RESAMPLES, opt.resamples.max(1));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opt.seed);
        let mut cb = vec![0u64; sb.values.len()];
        let mut cc = vec![0u64; sc.values.len()];
        let mut ratios: HashMap<Metric, Vec<f64>> = HashMap::new();
        for _ in 0..resamples {
            sb.resample(&mut rng, &mut cb);
            sc.resample(&mut rng, &mut cc);
            let (xb, xc) = (sb.stats(&cb), sc.stats(&cc));
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
}
