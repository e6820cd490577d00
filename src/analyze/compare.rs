//! Comparison of a current run (or session) against a base: per metric the
//! relative change with a bootstrap confidence interval and a verdict, the
//! CPU frames whose share of samples changed most, the allocation sites
//! whose bytes changed most and the SQL statements whose count or time per
//! operation changed most.
//!
//! Latency metrics (mean, p50, p95, p99) are bootstrapped: each side's
//! per-operation latencies are resampled with replacement from the HDR
//! histogram in `bench.json` (`latency.histogram`, a list of
//! `[upper bound ns, count]`), with a seeded RNG, so the same inputs give the
//! same interval. Throughput's interval is the mean's, inverted (closed
//! loop: throughput × mean latency ≈ threads). The verdict follows criterion: a change is only called
//! when the whole confidence interval lies beyond the noise threshold
//! (default 5 %); otherwise "no change". Other metrics have one value per
//! run and are judged by the noise threshold alone.
//!
//! Baselines are saved and read by [`crate::store::baseline`]; here both
//! sides are plain run data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::bootstrap::LatencyBootstrap;
use super::budget::Metric;
pub use super::pairing::{check_workloads, pair, DifferentWorkloads};
use super::rundata::{LoadedRun, RunSet};
use super::shares::share_change_significant;
use super::stacks::Folded;

/// Version of a comparison's JSON.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// Defaults of a comparison, defined once.
pub mod defaults {
    /// Changes smaller than this (relative) are no change.
    pub const NOISE: f64 = 0.05;
    /// Confidence level of the intervals.
    pub const CONFIDENCE: f64 = 0.95;
    /// Most bootstrap resamples.
    pub const RESAMPLES: usize = 1000;
    /// Fewest bootstrap resamples (large runs use fewer, to bound the work).
    pub const MIN_RESAMPLES: usize = 100;
    /// Seed of the bootstrap.
    pub const SEED: u64 = 0x5eed;
    /// Rows in each "top changes" list.
    pub const TOP: usize = 10;
}

/// How to compare.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompareOptions {
    /// Noise threshold, relative ([`defaults::NOISE`]).
    pub noise: f64,
    /// Confidence level ([`defaults::CONFIDENCE`]).
    pub confidence: f64,
    /// Most resamples ([`defaults::RESAMPLES`]).
    pub resamples: usize,
    /// RNG seed ([`defaults::SEED`]).
    pub seed: u64,
    /// Length of top lists ([`defaults::TOP`]).
    pub top: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            noise: defaults::NOISE,
            confidence: defaults::CONFIDENCE,
            resamples: defaults::RESAMPLES,
            seed: defaults::SEED,
            top: defaults::TOP,
        }
    }
}

/// The verdict of a metric's change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Better (faster, or less memory/statements).
    Improved,
    /// Worse.
    Regressed,
    /// Within noise.
    NoChange,
    /// One side lacks the data.
    NotMeasured,
}

impl Verdict {
    /// The word for this verdict on `metric`: faster/slower for times,
    /// better/worse otherwise.
    pub fn label(self, metric: Metric) -> &'static str {
        match (self, metric.is_speed()) {
            (Verdict::Improved, true) => "faster",
            (Verdict::Regressed, true) => "slower",
            (Verdict::Improved, false) => "better",
            (Verdict::Regressed, false) => "worse",
            (Verdict::NoChange, _) => "no change",
            (Verdict::NotMeasured, _) => "not measured",
        }
    }
}

/// One metric's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    /// Metric.
    pub metric: Metric,
    /// Base value.
    pub base: Option<f64>,
    /// Current value.
    pub current: Option<f64>,
    /// current ÷ base − 1 (None when the base is 0 or a side is missing).
    pub change: Option<f64>,
    /// Confidence interval of `change`, when bootstrapped.
    pub ci: Option<(f64, f64)>,
    /// Verdict.
    pub verdict: Verdict,
}

/// A frame whose share of CPU samples changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameChange {
    /// Function name.
    pub frame: String,
    /// Share of samples with the frame on the stack, base, %.
    pub base_total: f64,
    /// …current, %.
    pub current_total: f64,
    /// Share of samples with the frame on top, base, %.
    pub base_self: f64,
    /// …current, %.
    pub current_self: f64,
}

impl FrameChange {
    /// Change of the total share, percentage points.
    pub fn delta(&self) -> f64 {
        self.current_total - self.base_total
    }
}

/// An allocation site whose bytes changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteChange {
    /// The site (last frame of its stacks in `heap.folded`).
    pub site: String,
    /// Bytes allocated there, base.
    pub base_bytes: u64,
    /// …current.
    pub current_bytes: u64,
}

impl SiteChange {
    /// current − base.
    pub fn delta(&self) -> i64 {
        self.current_bytes as i64 - self.base_bytes as i64
    }
}

/// A SQL statement whose count or time per operation changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatementChange {
    /// Normalized statement.
    pub shape: String,
    /// Executions per operation, base.
    pub base_per_op: f64,
    /// …current.
    pub current_per_op: f64,
    /// Time per operation in ns, base.
    pub base_time_per_op: f64,
    /// …current.
    pub current_time_per_op: f64,
}

/// The comparison of one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadComparison {
    /// Workload (current side).
    pub workload: String,
    /// Workload of the base, when it differs (twins compared directly).
    pub base_workload: String,
    /// Base run id.
    pub base_run: String,
    /// Current run id.
    pub current_run: String,
    /// Base git revision.
    pub base_git: Option<String>,
    /// Current git revision.
    pub current_git: Option<String>,
    /// Per metric.
    pub metrics: Vec<MetricChange>,
    /// CPU frames whose total share changed most, among those whose
    /// change is beyond the noise of the two sample counts.
    pub cpu_frames: Vec<FrameChange>,
    /// Frames whose share changed within that noise (not listed).
    #[serde(default)]
    pub cpu_frames_in_noise: usize,
    /// CPU samples of each side, (base, current); 0 without a profile.
    #[serde(default)]
    pub cpu_samples: (u64, u64),
    /// Allocation sites whose bytes changed most.
    pub heap_sites: Vec<SiteChange>,
    /// SQL statements whose time per operation changed most.
    pub sql_statements: Vec<StatementChange>,
    /// Differential flamegraphs written for it (filled in by the writer).
    pub flamegraphs: Vec<PathBuf>,
}

impl WorkloadComparison {
    /// The worst verdict over its metrics.
    pub fn worst(&self) -> Verdict {
        let v: Vec<_> = self.metrics.iter().map(|m| m.verdict).collect();
        if v.contains(&Verdict::Regressed) {
            Verdict::Regressed
        } else if v.contains(&Verdict::Improved) {
            Verdict::Improved
        } else {
            Verdict::NoChange
        }
    }
}

/// A whole comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What the base was named.
    pub base: String,
    /// What the current side was named.
    pub current: String,
    /// Noise threshold used.
    pub noise: f64,
    /// Confidence level used.
    pub confidence: f64,
    /// Per matched workload.
    pub workloads: Vec<WorkloadComparison>,
    /// Workloads only the base has.
    pub only_in_base: Vec<String>,
    /// Workloads only the current side has.
    pub only_in_current: Vec<String>,
}

impl Comparison {
    /// Whether any metric regressed.
    pub fn regressed(&self) -> bool {
        self.workloads
            .iter()
            .any(|w| w.worst() == Verdict::Regressed)
    }
}

/// Compares two run sets.
pub fn compare(base: &RunSet, current: &RunSet, opt: &CompareOptions) -> Comparison {
    let pairs = pair(base, current);
    let matched_b: HashSet<_> = pairs.iter().map(|(b, _)| b.workload.clone()).collect();
    let matched_c: HashSet<_> = pairs.iter().map(|(_, c)| c.workload.clone()).collect();
    Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        base: base.label.clone(),
        current: current.label.clone(),
        noise: opt.noise,
        confidence: opt.confidence,
        workloads: pairs.iter().map(|(b, c)| compare_runs(b, c, opt)).collect(),
        only_in_base: base
            .runs
            .iter()
            .filter(|r| !matched_b.contains(&r.workload))
            .map(|r| r.workload.clone())
            .collect(),
        only_in_current: current
            .runs
            .iter()
            .filter(|r| !matched_c.contains(&r.workload))
            .map(|r| r.workload.clone())
            .collect(),
    }
}

/// Compares two runs.
pub fn compare_runs(
    base: &LoadedRun,
    current: &LoadedRun,
    opt: &CompareOptions,
) -> WorkloadComparison {
    let boot = LatencyBootstrap::new(base, current, opt);
    let metrics = Metric::ALL
        .into_iter()
        .map(|m| metric_change(m, base, current, boot.as_ref(), opt))
        .collect();
    let samples = |f: &Option<Folded>| f.as_ref().map_or(0, |f| f.values().sum());
    let (cpu_frames, cpu_frames_in_noise) = match (&base.cpu_folded, &current.cpu_folded) {
        (Some(b), Some(c)) => frame_changes(b, c, opt.top),
        _ => (Vec::new(), 0),
    };
    WorkloadComparison {
        workload: current.workload.clone(),
        base_workload: base.workload.clone(),
        base_run: base.id.clone(),
        current_run: current.id.clone(),
        base_git: base.git_revision(),
        current_git: current.git_revision(),
        metrics,
        cpu_frames,
        cpu_frames_in_noise,
        cpu_samples: (samples(&base.cpu_folded), samples(&current.cpu_folded)),
        heap_sites: match (&base.heap_folded, &current.heap_folded) {
            (Some(b), Some(c)) => site_changes(b, c, opt.top),
            _ => Vec::new(),
        },
        sql_statements: statement_changes(base, current, opt.top),
        flamegraphs: Vec::new(),
    }
}

fn metric_change(
    metric: Metric,
    base: &LoadedRun,
    current: &LoadedRun,
    boot: Option<&LatencyBootstrap>,
    opt: &CompareOptions,
) -> MetricChange {
    let (b, c) = (metric.value(base), metric.value(current));
    let mut out = MetricChange {
        metric,
        base: b,
        current: c,
        change: None,
        ci: None,
        verdict: Verdict::NotMeasured,
    };
    let (Some(b), Some(c)) = (b, c) else {
        return out;
    };
    // Sign: +1 when an increase is worse.
    let worse_up = if metric.higher_is_better() { -1.0 } else { 1.0 };
    let judge = |x: f64| {
        if x * worse_up > opt.noise {
            Verdict::Regressed
        } else if x * worse_up < -opt.noise {
            Verdict::Improved
        } else {
            Verdict::NoChange
        }
    };
    if metric == Metric::LeakSlope {
        // A slope may be 0 or negative: judge the absolute difference, with
        // 1 B/op as the floor of the noise.
        let d = c - b;
        out.change = (b.abs() > 0.0).then(|| d / b.abs());
        out.verdict = if d.abs() <= (opt.noise * b.abs()).max(1.0) {
            Verdict::NoChange
        } else if d > 0.0 {
            Verdict::Regressed
        } else {
            Verdict::Improved
        };
        return out;
    }
    if b == 0.0 {
        out.change = (c == 0.0).then_some(0.0);
        out.verdict = match (c == 0.0, metric.higher_is_better()) {
            (true, _) => Verdict::NoChange,
            (false, false) => Verdict::Regressed,
            (false, true) => Verdict::Improved,
        };
        return out;
    }
    let change = c / b - 1.0;
    out.change = Some(change);
    let ci = match metric {
        // Closed loop: throughput moves inversely to the mean latency, so
        // its interval is the mean's, transformed.
        Metric::Throughput => boot
            .and_then(|bt| bt.interval(Metric::Mean))
            .filter(|(lo, _)| *lo > -1.0)
            .map(|(lo, hi)| (1.0 / (1.0 + hi) - 1.0, 1.0 / (1.0 + lo) - 1.0)),
        _ => boot.and_then(|bt| bt.interval(metric)),
    };
    out.verdict = match ci {
        Some((lo, hi)) => {
            // criterion: the whole interval beyond the threshold.
            let (lo_w, hi_w) = if worse_up > 0.0 { (lo, hi) } else { (-hi, -lo) };
            if lo_w > opt.noise {
                Verdict::Regressed
            } else if hi_w < -opt.noise {
                Verdict::Improved
            } else {
                Verdict::NoChange
            }
        }
        None => judge(change),
    };
    out.ci = ci;
    out
}

/// Samples per frame of a folded profile: (on the stack, on top), and the
/// total.
fn frame_counts(folded: &Folded) -> (HashMap<&str, u64>, HashMap<&str, u64>, u64) {
    let mut incl: HashMap<&str, u64> = HashMap::new();
    let mut own: HashMap<&str, u64> = HashMap::new();
    for (stack, n) in folded {
        let frames: Vec<&str> = stack.split(';').collect();
        let mut seen = HashSet::new();
        for f in &frames {
            if seen.insert(*f) {
                *incl.entry(f).or_default() += n;
            }
        }
        if let Some(leaf) = frames.last() {
            *own.entry(leaf).or_default() += n;
        }
    }
    (incl, own, folded.values().sum())
}

/// The frames whose share of samples changed most, among those whose total
/// or self share changed by more than the noise of the two sample counts
/// ([`share_change_significant`]); with how many changed within it.
pub fn frame_changes(base: &Folded, current: &Folded, top: usize) -> (Vec<FrameChange>, usize) {
    let (bi, bs, nb) = frame_counts(base);
    let (ci, cs, nc) = frame_counts(current);
    let get = |m: &HashMap<&str, u64>, f: &str| m.get(f).copied().unwrap_or(0);
    let pct = |k: u64, n: u64| k as f64 * 100.0 / n.max(1) as f64;
    let names: HashSet<&str> = bi.keys().chain(ci.keys()).copied().collect();
    let mut in_noise = 0;
    let mut out = Vec::new();
    for f in names {
        let (kbi, kci, kbs, kcs) = (get(&bi, f), get(&ci, f), get(&bs, f), get(&cs, f));
        let c = FrameChange {
            frame: f.to_string(),
            base_total: pct(kbi, nb),
            current_total: pct(kci, nc),
            base_self: pct(kbs, nb),
            current_self: pct(kcs, nc),
        };
        if c.delta().abs() <= 1e-9 && (c.current_self - c.base_self).abs() <= 1e-9 {
            continue;
        }
        if share_change_significant(kbi, nb, kci, nc) || share_change_significant(kbs, nb, kcs, nc)
        {
            out.push(c);
        } else {
            in_noise += 1;
        }
    }
    out.sort_by(|a, b| {
        b.delta()
            .abs()
            .total_cmp(&a.delta().abs())
            .then_with(|| a.frame.cmp(&b.frame))
    });
    out.truncate(top);
    (out, in_noise)
}

/// The allocation sites (last frames) whose bytes changed most.
pub fn site_changes(base: &Folded, current: &Folded, top: usize) -> Vec<SiteChange> {
    let by_site = |f: &Folded| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for (stack, n) in f {
            let site = stack.rsplit(';').next().unwrap_or(stack);
            *m.entry(site.to_string()).or_default() += n;
        }
        m
    };
    let (b, c) = (by_site(base), by_site(current));
    let names: HashSet<&String> = b.keys().chain(c.keys()).collect();
    let mut out: Vec<SiteChange> = names
        .into_iter()
        .map(|s| SiteChange {
            site: s.clone(),
            base_bytes: b.get(s).copied().unwrap_or(0),
            current_bytes: c.get(s).copied().unwrap_or(0),
        })
        .filter(|s| s.delta() != 0)
        .collect();
    out.sort_by(|a, b| {
        b.delta()
            .unsigned_abs()
            .cmp(&a.delta().unsigned_abs())
            .then_with(|| a.site.cmp(&b.site))
    });
    out.truncate(top);
    out
}

/// Statements per shape: (executions per op, time per op in ns).
fn statement_rates(run: &LoadedRun) -> BTreeMap<String, (f64, f64)> {
    let ops = run.sql.as_ref().map_or(0, |s| s.ops).max(1) as f64;
    let mut m: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for s in run.statements() {
        let e = m.entry(s.shape.clone()).or_default();
        e.0 += s.per_op;
        e.1 += s.total.0 as f64 / ops;
    }
    m
}

/// The SQL statements whose time (then count) per operation changed most.
pub fn statement_changes(
    base: &LoadedRun,
    current: &LoadedRun,
    top: usize,
) -> Vec<StatementChange> {
    if base.sql.is_none() || current.sql.is_none() {
        return Vec::new();
    }
    let (b, c) = (statement_rates(base), statement_rates(current));
    let names: HashSet<&String> = b.keys().chain(c.keys()).collect();
    let mut out: Vec<StatementChange> = names
        .into_iter()
        .map(|s| {
            let (bp, bt) = b.get(s).copied().unwrap_or_default();
            let (cp, ct) = c.get(s).copied().unwrap_or_default();
            StatementChange {
                shape: s.clone(),
                base_per_op: bp,
                current_per_op: cp,
                base_time_per_op: bt,
                current_time_per_op: ct,
            }
        })
        .filter(|s| {
            (s.current_per_op - s.base_per_op).abs() > 1e-9
                || (s.current_time_per_op - s.base_time_per_op).abs() > 0.5
        })
        .collect();
    let key = |s: &StatementChange| (s.current_time_per_op - s.base_time_per_op).abs();
    out.sort_by(|a, b| {
        key(b).total_cmp(&key(a)).then_with(|| {
            (b.current_per_op - b.base_per_op)
                .abs()
                .total_cmp(&(a.current_per_op - a.base_per_op).abs())
        })
    });
    out.truncate(top);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(lines: &[(&str, u64)]) -> Folded {
        lines.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn grown_frames_lead_the_frame_changes() {
        let b = folded(&[("main;work;grow", 10), ("main;work;same", 90)]);
        let c = folded(&[("main;work;grow", 60), ("main;work;same", 90)]);
        let (ch, _) = frame_changes(&b, &c, 5);
        assert_eq!(ch[0].frame, "grow");
        assert!((ch[0].delta() - 30.0).abs() < 1e-9, "10 % → 40 %: {ch:?}");
        let same = ch.iter().find(|f| f.frame == "same").unwrap();
        assert!(same.delta() < 0.0, "its share shrank: {same:?}");
    }

    #[test]
    fn only_frame_changes_beyond_the_noise_of_the_sample_counts_are_listed() {
        // The case: 42.9 % → 85.7 % of 7 samples a side.
        let b = folded(&[("main;step", 3), ("main;other", 4)]);
        let c = folded(&[("main;step", 6), ("main;other", 1)]);
        let (ch, in_noise) = frame_changes(&b, &c, 10);
        assert!(ch.is_empty(), "7 samples a side support no change: {ch:?}");
        assert_eq!(in_noise, 2, "step and other changed within the noise");
        // The same shares from 1,000 samples a side.
        let b = folded(&[("main;step", 429), ("main;other", 571)]);
        let c = folded(&[("main;step", 857), ("main;other", 143)]);
        let (ch, in_noise) = frame_changes(&b, &c, 10);
        let step = ch.iter().find(|f| f.frame == "step").expect("listed");
        assert!((step.delta() - 42.8).abs() < 1e-9, "{step:?}");
        assert_eq!((ch.len(), in_noise), (2, 0), "{ch:?}");
    }

    #[test]
    fn sites_are_ranked_by_absolute_change() {
        let b = folded(&[("main;a;alloc_x", 100), ("main;b;alloc_y", 1000)]);
        let c = folded(&[("main;a;alloc_x", 5000), ("main;b;alloc_y", 900)]);
        let ch = site_changes(&b, &c, 5);
        assert_eq!(ch[0].site, "alloc_x");
        assert_eq!(ch[0].delta(), 4900);
        assert_eq!(ch[1].delta(), -100);
    }
}
