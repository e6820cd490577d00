//! A [`NoiseModel`] measured on this machine: the spread between repeated
//! runs of identical code (`profkit noise` runs each workload several
//! times, interleaved), which a comparison with one run a side is judged
//! against instead of the built-in figures of the development machine.
//!
//! Per metric, per workload: the sample variance between runs of ln(value)
//! (of the value itself for [`Scale::Absolute`] metrics), pooled over the
//! workloads by their degrees of freedom (runs − 1). Frame shares: per
//! workload, the variance between runs of each frame's share of CPU
//! samples, less the binomial noise of its sample counts (which a
//! comparison adds back at its own counts), scaled to a share of 50 %,
//! averaged over the frames of 5–95 % and pooled over workloads likewise.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::budget::Metric;
use super::replicates::{variance, NoiseModel, Scale};
use super::rundata::LoadedRun;
use super::stacks::Folded;

/// Frames whose mean share lies outside this range (%) tell little of a
/// share's run-to-run spread (sampling noise or a constant).
const SHARE_RANGE: (f64, f64) = (5.0, 95.0);

/// Measures the model from `runs` (each workload's runs are replicates of
/// identical code). `when` names the date of the measurement for its
/// source line. `None` when no workload has two runs.
pub fn measure(runs: &[&LoadedRun], when: &str) -> Option<NoiseModel> {
    let mut groups: BTreeMap<&str, Vec<&LoadedRun>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.workload.as_str()).or_default().push(r);
    }
    groups.retain(|_, v| v.len() >= 2);
    if groups.is_empty() {
        return None;
    }
    let builtin = NoiseModel::default();
    let mut model = NoiseModel {
        source: String::new(),
        sd: BTreeMap::new(),
        share_sd_pp: builtin.share_sd_pp,
        df: 0.0,
        from_builtin: Vec::new(),
    };
    for metric in Metric::ALL {
        let pooled = pool(groups.values().filter_map(|g| metric_variance(metric, g)));
        let sd = match pooled {
            Some((var, _)) => var.sqrt(),
            None => {
                model.from_builtin.push(metric.name().to_string());
                builtin.sd(metric)
            }
        };
        model.sd.insert(metric.name().to_string(), sd);
    }
    match pool(groups.values().filter_map(|g| share_variance(g))) {
        Some((var, _)) => model.share_sd_pp = var.sqrt(),
        None => model.from_builtin.push("share".into()),
    }
    model.df = groups.values().map(|g| g.len() as f64 - 1.0).sum();
    let most = groups.values().map(Vec::len).max().unwrap_or(0);
    let fewest = groups.values().map(Vec::len).min().unwrap_or(0);
    let runs = match most == fewest {
        true => format!("{most} runs"),
        false => format!("{fewest}–{most} runs"),
    };
    let n = groups.len();
    model.source = format!(
        "measured on this machine, {when}, {runs} × {n} workload{} ({})",
        if n == 1 { "" } else { "s" },
        groups.keys().copied().collect::<Vec<_>>().join(", ")
    );
    if !model.from_builtin.is_empty() {
        model.source += &format!("; built-in for {}", model.from_builtin.join(", "));
    }
    Some(model)
}

/// Pools (variance, df) pairs by their degrees of freedom.
fn pool(parts: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (sum, df) = parts.fold((0.0, 0.0), |(s, d), (v, n)| (s + v * n, d + n));
    (df > 0.0).then(|| (sum / df, df))
}

/// The variance between one workload's runs of a metric, with its df;
/// `None` when a run lacks it (or, on a relative scale, it is ≤ 0).
fn metric_variance(metric: Metric, runs: &[&LoadedRun]) -> Option<(f64, f64)> {
    let values: Vec<f64> = runs
        .iter()
        .map(|r| metric.value(r))
        .collect::<Option<_>>()?;
    let values: Vec<f64> = match Scale::of(metric) {
        Scale::Relative => values
            .iter()
            .map(|&v| (v > 0.0 && v.is_finite()).then(|| v.ln()))
            .collect::<Option<_>>()?,
        Scale::Absolute => values.into_iter().filter(|v| v.is_finite()).collect(),
    };
    (values.len() >= 2).then(|| (variance(&values), values.len() as f64 - 1.0))
}

/// One workload's run-to-run variance of a frame's share (pp², at a share
/// of 50 %, sampling noise removed), averaged over its frames of
/// [`SHARE_RANGE`], with its df.
fn share_variance(runs: &[&LoadedRun]) -> Option<(f64, f64)> {
    let profiles: Vec<&Folded> = runs.iter().filter_map(|r| r.cpu_folded.as_ref()).collect();
    if profiles.len() < 2 {
        return None;
    }
    let shares: Vec<(HashMap<&str, f64>, u64)> = profiles.iter().map(|f| inclusive(f)).collect();
    let frames: BTreeSet<&str> = shares.iter().flat_map(|(s, _)| s.keys().copied()).collect();
    let mut scaled = Vec::new();
    for f in frames {
        let v: Vec<f64> = shares
            .iter()
            .map(|(s, _)| s.get(f).copied().unwrap_or(0.0))
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        if !(SHARE_RANGE.0..=SHARE_RANGE.1).contains(&mean) {
            continue;
        }
        let p = mean / 100.0;
        let binomial = shares
            .iter()
            .map(|(_, n)| 1e4 * p * (1.0 - p) / (*n).max(1) as f64)
            .sum::<f64>()
            / shares.len() as f64;
        let excess = (variance(&v) - binomial).max(0.0);
        scaled.push(excess * 0.25 / (p * (1.0 - p)));
    }
    if scaled.is_empty() {
        return None;
    }
    let avg = scaled.iter().sum::<f64>() / scaled.len() as f64;
    Some((avg, profiles.len() as f64 - 1.0))
}

/// Each frame's share (%) of the samples with it on the stack, and the
/// sample count.
fn inclusive(folded: &Folded) -> (HashMap<&str, f64>, u64) {
    let total: u64 = folded.values().sum();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (stack, n) in folded {
        let mut seen = BTreeSet::new();
        for f in stack.split(';') {
            if seen.insert(f) {
                *counts.entry(f).or_default() += n;
            }
        }
    }
    let shares = counts
        .into_iter()
        .map(|(f, k)| (f, k as f64 * 100.0 / total.max(1) as f64))
        .collect();
    (shares, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::fixture::BenchFixture;

    fn run(workload: &str, p50: u64, cpu: &[(&str, u64)]) -> LoadedRun {
        let mut run = LoadedRun::of(
            BenchFixture {
                workload: workload.into(),
                latency: p50,
                ..BenchFixture::default()
            }
            .build(),
        );
        let folded: Folded = cpu.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        run.cpu_folded = (!cpu.is_empty()).then_some(folded);
        run
    }

    #[test]
    fn pools_the_spread_of_ln_over_workloads_with_their_df() {
        let a: Vec<LoadedRun> = [1000, 1100, 900]
            .iter()
            .map(|&p| run("a", p, &[("main;x", 500), ("main;y", 500)]))
            .collect();
        let b: Vec<LoadedRun> = [2000, 2000]
            .iter()
            .map(|&p| run("b", p, &[("main;x", 300), ("main;y", 700)]))
            .collect();
        let lone = run("c", 5, &[]);
        let all: Vec<&LoadedRun> = a.iter().chain(&b).chain([&lone]).collect();
        let m = measure(&all, "2026-12-07").unwrap();
        // a: 2 df, b: 1 df; c (one run) tells nothing.
        assert_eq!(m.df, 3.0);
        let ln: Vec<f64> = [1000f64, 1100.0, 900.0].iter().map(|x| x.ln()).collect();
        let want = (variance(&ln) * 2.0 / 3.0).sqrt();
        assert!((m.sd(Metric::P50) - want).abs() < 1e-12, "{m:?}");
        assert!(m.source.contains("2026-12-07") && m.source.contains("2–3 runs × 2 workloads"));
        // No heap data in these runs: those figures are the built-in ones.
        assert!(m.from_builtin.contains(&"peak_heap".to_string()), "{m:?}");
        assert_eq!(
            m.sd(Metric::PeakHeap),
            NoiseModel::default().sd(Metric::PeakHeap)
        );
        // Identical shares: no spread beyond sampling.
        assert_eq!(m.share_sd_pp, 0.0);
        assert!(measure(&[&lone], "today").is_none());
    }

    #[test]
    fn a_share_that_moves_between_runs_has_a_spread() {
        let shares = [400, 600, 500, 450];
        let runs: Vec<LoadedRun> = shares
            .iter()
            .map(|&k| run("a", 1000, &[("main;x", k), ("main;y", 100_000 - k)]))
            .collect();
        let refs: Vec<&LoadedRun> = runs.iter().collect();
        // x below 5 %, y above 95 %, main at 100 %: nothing to measure.
        assert!(share_variance(&refs).is_none());
        let runs: Vec<LoadedRun> = shares
            .iter()
            .map(|&k| {
                run(
                    "a",
                    1000,
                    &[("main;x", k * 100), ("main;y", 100_000 - k * 100)],
                )
            })
            .collect();
        let refs: Vec<&LoadedRun> = runs.iter().collect();
        let (var, df) = share_variance(&refs).unwrap();
        assert_eq!(df, 3.0);
        // Shares 40, 60, 50, 45 %: sd 8.5 pp, next to no sampling noise.
        assert!((var.sqrt() - 8.5).abs() < 0.3, "{}", var.sqrt());
    }
}
