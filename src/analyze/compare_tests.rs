//! Unit tests of [`super::metric_change`]'s branches: leak slope and error
//! rate as differences, a zero base, throughput (higher is better), and an
//! interval against the noise threshold.

use super::*;
use crate::analyze::leaks::LeakReport;
use crate::measure::fixture::BenchFixture;
use crate::measure::SqlSummary;

/// A run of 1,000 operations with the given p50 (ns) and throughput.
fn run(p50: u64, throughput: f64) -> LoadedRun {
    LoadedRun::of(
        BenchFixture {
            throughput,
            latency: p50,
            ..BenchFixture::default()
        }
        .build(),
    )
}

fn with_leak(bytes_per_op: f64) -> LoadedRun {
    let mut r = run(1000, 1000.0);
    let mut leaks = LeakReport::skipped("w");
    leaks.leaked_bytes_per_op = bytes_per_op;
    r.leaks = Some(leaks);
    r
}

fn with_statements(per_op: f64) -> LoadedRun {
    let mut r = run(1000, 1000.0);
    r.bench.sql = Some(SqlSummary {
        statements: (per_op * 1000.0) as u64,
        per_op,
        db_time: Default::default(),
        db_time_share: 0.0,
    });
    r
}

/// Options whose noise model gives `metric` a run-to-run spread of `sd`.
fn options(metric: Metric, sd: f64) -> CompareOptions {
    let mut opt = CompareOptions::default();
    opt.noise_model.sd.insert(metric.name().to_string(), sd);
    opt
}

fn change(
    metric: Metric,
    base: &[LoadedRun],
    current: &[LoadedRun],
    opt: &CompareOptions,
) -> MetricChange {
    let base: Vec<&LoadedRun> = base.iter().collect();
    let current: Vec<&LoadedRun> = current.iter().collect();
    metric_change(metric, &base, &current, opt)
}

fn assert_contains_point(c: &MetricChange) {
    let (lo, hi) = c.ci.expect("an interval");
    let p = c.change.expect("a point");
    assert!(lo <= p && p <= hi, "{p} outside [{lo}, {hi}]");
}

#[test]
fn a_leak_slope_is_a_difference_in_bytes_per_op_against_the_noise_model() {
    let opt = CompareOptions::default();
    // A new 60 B/op leak: 60 bytes more per operation, not "+inf %".
    let c = change(
        Metric::LeakSlope,
        &[with_leak(0.0)],
        &[with_leak(60.0)],
        &opt,
    );
    assert_eq!(c.scale, Scale::Absolute);
    assert_eq!(c.change, Some(60.0));
    assert_eq!(c.verdict, Verdict::Regressed);
    assert_contains_point(&c);
    // Fixed: the other way round.
    let c = change(
        Metric::LeakSlope,
        &[with_leak(60.0)],
        &[with_leak(0.0)],
        &opt,
    );
    assert_eq!(c.verdict, Verdict::Improved);
    // 2 B/op lies within one run's spread of the slope (4 B/op).
    let c = change(
        Metric::LeakSlope,
        &[with_leak(0.0)],
        &[with_leak(2.0)],
        &opt,
    );
    assert_eq!(c.verdict, Verdict::NoChange);
    assert_contains_point(&c);
}

#[test]
fn a_zero_base_is_compared_as_a_difference_not_a_ratio() {
    let opt = CompareOptions::default();
    let c = change(
        Metric::SqlPerOp,
        &[with_statements(0.0)],
        &[with_statements(3.0)],
        &opt,
    );
    assert_eq!(c.scale, Scale::Absolute, "ln(0) would be -inf");
    assert_eq!(c.change, Some(3.0));
    assert!(c.change.unwrap().is_finite());
    assert_eq!(c.verdict, Verdict::Regressed);
    assert_contains_point(&c);
    // Zero on both sides: no change, not NaN.
    let c = change(
        Metric::SqlPerOp,
        &[with_statements(0.0)],
        &[with_statements(0.0)],
        &opt,
    );
    assert_eq!(c.change, Some(0.0));
    assert_eq!(c.verdict, Verdict::NoChange);
}

#[test]
fn throughput_falling_is_a_regression_and_its_interval_holds_its_point() {
    let opt = options(Metric::Throughput, 0.02);
    let base: Vec<_> = [1000.0, 1010.0, 990.0].map(|t| run(1000, t)).into();
    let slower: Vec<_> = [700.0, 710.0, 690.0].map(|t| run(1000, t)).into();
    let c = change(Metric::Throughput, &base, &slower, &opt);
    assert_eq!(c.basis, Some(Basis::Paired));
    assert!((c.change.unwrap() + 0.3).abs() < 0.01, "{:?}", c.change);
    assert_contains_point(&c);
    assert!(c.ci.unwrap().1 < 0.0);
    assert_eq!(c.verdict, Verdict::Regressed, "less throughput is worse");
    let c = change(Metric::Throughput, &slower, &base, &opt);
    assert_eq!(c.verdict, Verdict::Improved);
    assert_contains_point(&c);
}

#[test]
fn a_change_is_a_verdict_only_when_its_interval_excludes_zero_and_it_passes_the_threshold() {
    let base: Vec<_> = [1000u64; 5].map(|p| run(p, 1000.0)).into();
    let slower = |f: f64| -> Vec<LoadedRun> {
        [1000u64; 5]
            .map(|p| run((p as f64 * f) as u64, 1000.0))
            .into()
    };
    // +10 % with a tight spread: regressed.
    let c = change(
        Metric::P50,
        &base,
        &slower(1.10),
        &options(Metric::P50, 0.01),
    );
    assert_eq!(c.verdict, Verdict::Regressed);
    // +10 % but runs that spread ±20 %: the interval straddles 0.
    let c = change(
        Metric::P50,
        &base,
        &slower(1.10),
        &options(Metric::P50, 0.2),
    );
    let (lo, hi) = c.ci.unwrap();
    assert!(lo < 0.0 && hi > 0.0, "[{lo}, {hi}]");
    assert_eq!(c.verdict, Verdict::NoChange);
    // +3 %, surely above 0 but under the 5 % threshold: no change.
    let c = change(
        Metric::P50,
        &base,
        &slower(1.03),
        &options(Metric::P50, 0.01),
    );
    assert!(c.ci.unwrap().0 > 0.0, "{:?}", c.ci);
    assert!(c.change.unwrap() < opt_noise());
    assert_eq!(c.verdict, Verdict::NoChange);
}

fn opt_noise() -> f64 {
    CompareOptions::default().noise
}

#[test]
fn a_metric_missing_on_a_side_is_not_measured() {
    let opt = CompareOptions::default();
    let c = change(
        Metric::LeakSlope,
        &[run(1000, 1000.0)],
        &[with_leak(60.0)],
        &opt,
    );
    assert_eq!(c.verdict, Verdict::NotMeasured);
    assert_eq!(c.change, None);
}
