//! `profkit budget init`: a budget calibrated from a measured session —
//! the `bless` habit of snapshot testing. Targets are the measured value
//! with headroom; critical thresholds are looser, and much looser for
//! timings (a shared machine's run-to-run noise reaches ±30 % on p50),
//! while counts (statements, full scans per operation) are deterministic
//! and stay close to what was measured.

use std::collections::BTreeMap;

use super::budget::{Budget, Limit, Metric, Unit};
use super::rundata::LoadedRun;

/// Defaults of budget calibration, defined once.
pub mod defaults {
    /// Target = measured × headroom (÷ for throughput).
    pub const HEADROOM: f64 = 1.5;
    /// Critical = target × this for timings (latency, throughput, CPU).
    pub const TIMING_SLACK: f64 = 4.0;
    /// Critical = target × this for sizes and counts.
    pub const SLACK: f64 = 2.0;
    /// Smallest critical leak slope, bytes per operation: below it, slopes
    /// are allocator noise.
    pub const LEAK_FLOOR: f64 = 64.0;
    /// Critical = target + this for statement counts per operation.
    pub const COUNT_SLACK: f64 = 0.5;
    /// Critical error rate when none were measured.
    pub const ERROR_RATE: f64 = 0.01;
}

/// Metrics a calibrated budget sets.
pub const CALIBRATED: [Metric; 9] = [
    Metric::P95,
    Metric::P99,
    Metric::Throughput,
    Metric::ErrorRate,
    Metric::PeakHeap,
    Metric::AllocPerOp,
    Metric::LeakSlope,
    Metric::SqlPerOp,
    Metric::FullScans,
];

/// The limit for one measured value.
pub fn limit(metric: Metric, measured: f64, headroom: f64) -> Limit {
    let slack = match metric.unit() {
        Unit::Nanos | Unit::PerSec => defaults::TIMING_SLACK,
        _ => defaults::SLACK,
    };
    let (target, critical) = match metric {
        Metric::Throughput => (measured / headroom, measured / headroom / slack),
        Metric::ErrorRate => (
            measured * headroom,
            (measured * headroom * slack).max(defaults::ERROR_RATE),
        ),
        Metric::LeakSlope => {
            let t = measured.max(0.0) * headroom;
            (t.max(1.0), (t * slack).max(defaults::LEAK_FLOOR))
        }
        // Counts are deterministic: 5 % for a mix's jitter, and half a
        // statement more per operation breaks the budget.
        Metric::SqlPerOp | Metric::FullScans => {
            let t = (measured * 1.05 * 100.0).ceil() / 100.0;
            (t, t + defaults::COUNT_SLACK)
        }
        _ => (measured * headroom, measured * headroom * slack),
    };
    Limit {
        target: Some(target),
        critical: Some(critical),
    }
}

/// A budget with one section per workload, from one or more measurements
/// of it (several sessions of unchanged code): each metric is calibrated
/// from its worst value — the highest latency, size or count, the lowest
/// throughput — so a target set from one lucky run does not warn on the
/// next (criterion's habit of judging against run-to-run noise, not one run).
pub fn calibrate<'a>(runs: impl IntoIterator<Item = &'a LoadedRun>, headroom: f64) -> Budget {
    let mut worst: BTreeMap<String, BTreeMap<Metric, f64>> = BTreeMap::new();
    for run in runs {
        let seen = worst.entry(run.workload.clone()).or_default();
        for &m in &CALIBRATED {
            let Some(v) = m.value(run).filter(|v| v.is_finite()) else {
                continue;
            };
            seen.entry(m)
                .and_modify(|w| {
                    *w = if m.higher_is_better() {
                        w.min(v)
                    } else {
                        w.max(v)
                    }
                })
                .or_insert(v);
        }
    }
    let mut budget = Budget::default();
    for (workload, values) in worst {
        let limits = values
            .into_iter()
            .map(|(m, v)| (m, limit(m, v, headroom)))
            .collect();
        budget.workloads.insert(workload, limits);
    }
    budget
}

/// How far apart the sessions were on each timing, per workload: the
/// largest ratio worst ÷ best over p95, p99 and throughput (1.0 for one
/// measurement), so `budget init` can say how noisy its input was.
pub fn timing_spread<'a>(runs: impl IntoIterator<Item = &'a LoadedRun>) -> Option<(String, f64)> {
    let mut range: BTreeMap<(String, Metric), (f64, f64)> = BTreeMap::new();
    for run in runs {
        for m in [Metric::P95, Metric::P99, Metric::Throughput] {
            if let Some(v) = m.value(run).filter(|v| v.is_finite() && *v > 0.0) {
                let r = range.entry((run.workload.clone(), m)).or_insert((v, v));
                *r = (r.0.min(v), r.1.max(v));
            }
        }
    }
    range
        .into_iter()
        .map(|((w, m), (lo, hi))| (format!("{w} {}", m.name()), hi / lo))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_leave_headroom_and_counts_stay_tight() {
        let l = limit(Metric::P95, 100.0, 1.5);
        assert_eq!((l.target, l.critical), (Some(150.0), Some(600.0)));
        let l = limit(Metric::Throughput, 1200.0, 1.5);
        assert_eq!((l.target, l.critical), (Some(800.0), Some(200.0)));
        let l = limit(Metric::SqlPerOp, 2.0, 1.5);
        assert_eq!((l.target, l.critical), (Some(2.1), Some(2.6)));
        let l = limit(Metric::FullScans, 0.0, 1.5);
        assert_eq!((l.target, l.critical), (Some(0.0), Some(0.5)));
        let l = limit(Metric::LeakSlope, 0.3, 1.5);
        assert_eq!(l.critical, Some(defaults::LEAK_FLOOR));
        let l = limit(Metric::ErrorRate, 0.0, 1.5);
        assert_eq!((l.target, l.critical), (Some(0.0), Some(0.01)));
    }

    /// A run of the fixture's workload with this latency and throughput.
    fn run(latency: u64, throughput: f64) -> LoadedRun {
        use crate::measure::fixture::BenchFixture;
        LoadedRun::of(
            BenchFixture {
                throughput,
                latency,
                ..BenchFixture::default()
            }
            .build(),
        )
    }

    #[test]
    fn several_sessions_calibrate_from_the_worst_of_each_timing() {
        let runs = [run(100, 900.0), run(130, 1200.0), run(110, 1000.0)];
        let budget = calibrate(&runs, 1.5);
        let limits = &budget.workloads[&runs[0].workload];
        let p95 = Metric::P95.value(&runs[1]).unwrap();
        assert_eq!(limits[&Metric::P95].target, Some(p95 * 1.5));
        assert_eq!(limits[&Metric::Throughput].target, Some(900.0 / 1.5));
        // Throughput differed most: 1,200 ÷ 900.
        let (what, ratio) = timing_spread(&runs).unwrap();
        assert!((ratio - 4.0 / 3.0).abs() < 1e-9, "{what} {ratio}");
        assert!(what.ends_with(Metric::Throughput.name()), "{what}");
        assert_eq!(timing_spread(&runs[..1]).unwrap().1, 1.0);
    }
}
