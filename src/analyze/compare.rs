//! Comparison of a current side against a base, each one or more runs of
//! each workload: per metric the change with an interval and a verdict,
//! the CPU call chains whose share of samples changed, the allocation
//! sites whose bytes changed most and the SQL statements whose count or
//! time per operation changed most.
//!
//! The run is the unit of replication ([`super::replicates`]): intervals
//! come from the spread between runs (paired when both sides have as many
//! runs, interleaved), or, with one run a side, from a noise model
//! measured on this machine — never from resampling one run's operations.
//! A metric is called regressed or improved when its interval excludes no
//! change *and* its point estimate is beyond the noise threshold (default
//! 5 %); every metric that can decide a verdict carries its interval.
//! Comparing runs with themselves says so and decides nothing.
//!
//! Baselines are saved and read by [`crate::store::baseline`]; here both
//! sides are plain run data.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::budget::Metric;
use super::changes::{frame_changes, site_changes, statement_changes};
pub use super::changes::{FrameChange, SiteChange, StatementChange};
pub use super::pairing::{check_workloads, pair, pair_groups, DifferentWorkloads};
use super::replicates::change_interval;
pub use super::replicates::{Basis, NoiseModel, Scale};
use super::rundata::{LoadedRun, RunSet};
use super::stacks::Folded;

/// Version of a comparison's JSON.
pub const COMPARE_SCHEMA_VERSION: u32 = 2;

/// Defaults of a comparison, defined once.
pub mod defaults {
    /// Changes smaller than this (relative) are no change.
    pub const NOISE: f64 = 0.05;
    /// Confidence level of the intervals.
    pub const CONFIDENCE: f64 = 0.95;
    /// Rows in each "top changes" list.
    pub const TOP: usize = 10;
}

/// How to compare.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareOptions {
    /// Noise threshold, relative ([`defaults::NOISE`]).
    pub noise: f64,
    /// Confidence level ([`defaults::CONFIDENCE`]).
    pub confidence: f64,
    /// Run-to-run spread for sides of one run ([`NoiseModel::default`]:
    /// measured on the development machine).
    pub noise_model: NoiseModel,
    /// Length of top lists ([`defaults::TOP`]).
    pub top: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            noise: defaults::NOISE,
            confidence: defaults::CONFIDENCE,
            noise_model: NoiseModel::default(),
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
    /// Base value (geometric mean over runs; arithmetic for
    /// [`Scale::Absolute`]).
    pub base: Option<f64>,
    /// Current value (likewise).
    pub current: Option<f64>,
    /// The change on `scale`: current ÷ base − 1, or current − base.
    pub change: Option<f64>,
    /// Interval of `change`, on the same scale; always contains it.
    pub ci: Option<(f64, f64)>,
    /// How `change` is measured.
    #[serde(default = "relative")]
    pub scale: Scale,
    /// Where the interval's spread came from.
    #[serde(default)]
    pub basis: Option<Basis>,
    /// Runs on each side.
    #[serde(default)]
    pub runs: (usize, usize),
    /// Verdict.
    pub verdict: Verdict,
}

fn relative() -> Scale {
    Scale::Relative
}

/// The comparison of one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadComparison {
    /// Workload (current side).
    pub workload: String,
    /// Workload of the base, when it differs (twins compared directly).
    pub base_workload: String,
    /// Base run id (the first, with several).
    pub base_run: String,
    /// Current run id (the first, with several).
    pub current_run: String,
    /// Every base run id, in run order.
    #[serde(default)]
    pub base_runs: Vec<String>,
    /// Every current run id, in run order.
    #[serde(default)]
    pub current_runs: Vec<String>,
    /// Base git revision.
    pub base_git: Option<String>,
    /// Current git revision.
    pub current_git: Option<String>,
    /// Both sides are the same runs: nothing was compared.
    #[serde(default)]
    pub same_runs: bool,
    /// Per metric.
    pub metrics: Vec<MetricChange>,
    /// CPU call chains whose share changed beyond run-to-run variation,
    /// one row per chain.
    pub cpu_frames: Vec<FrameChange>,
    /// Frames whose share changed within that variation (not listed).
    #[serde(default)]
    pub cpu_frames_in_noise: usize,
    /// CPU samples of each side, (base, current), summed over runs.
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

    /// The metrics that decided its verdict (regressed or improved).
    pub fn deciding(&self) -> impl Iterator<Item = &MetricChange> {
        self.metrics
            .iter()
            .filter(|m| matches!(m.verdict, Verdict::Regressed | Verdict::Improved))
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
    /// Where the spread of one-run sides came from ([`NoiseModel::source`]).
    #[serde(default)]
    pub noise_model: String,
    /// Both sides are the same runs: nothing was compared.
    #[serde(default)]
    pub same_runs: bool,
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

    /// (regressed, improved, unchanged) workloads.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for w in &self.workloads {
            match w.worst() {
                Verdict::Regressed => c.0 += 1,
                Verdict::Improved => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }
}

/// Compares two run sets: the runs of each workload on a side are its
/// replicates.
pub fn compare(base: &RunSet, current: &RunSet, opt: &CompareOptions) -> Comparison {
    let groups = pair_groups(base, current);
    let matched_b: HashSet<_> = groups.iter().map(|(b, _)| b[0].workload.clone()).collect();
    let matched_c: HashSet<_> = groups.iter().map(|(_, c)| c[0].workload.clone()).collect();
    let workloads: Vec<WorkloadComparison> = groups
        .iter()
        .map(|(b, c)| compare_runs(b, c, opt))
        .collect();
    let unmatched = |set: &RunSet, matched: &HashSet<String>| {
        let mut names: Vec<String> = Vec::new();
        for r in &set.runs {
            if !matched.contains(&r.workload) && !names.contains(&r.workload) {
                names.push(r.workload.clone());
            }
        }
        names
    };
    Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        base: base.label.clone(),
        current: current.label.clone(),
        noise: opt.noise,
        confidence: opt.confidence,
        noise_model: opt.noise_model.source.clone(),
        same_runs: !workloads.is_empty() && workloads.iter().all(|w| w.same_runs),
        workloads,
        only_in_base: unmatched(base, &matched_b),
        only_in_current: unmatched(current, &matched_c),
    }
}

/// Whether two sides are the same runs: the same run ids with the same
/// measurements (a folder given twice, or a copy of it).
fn same_runs(base: &[&LoadedRun], current: &[&LoadedRun]) -> bool {
    let key = |r: &&LoadedRun| {
        let l = &r.bench.latency;
        (
            r.id.clone(),
            r.bench.ops,
            l.mean.0,
            l.p99.0,
            r.bench.cpu.user.0,
        )
    };
    let mut b: Vec<_> = base.iter().map(key).collect();
    let mut c: Vec<_> = current.iter().map(key).collect();
    b.sort();
    c.sort();
    b == c
}

/// Compares the runs of one workload (each side one or more runs, in run
/// order).
pub fn compare_runs(
    base: &[&LoadedRun],
    current: &[&LoadedRun],
    opt: &CompareOptions,
) -> WorkloadComparison {
    let same = same_runs(base, current);
    let metrics = Metric::ALL
        .into_iter()
        .map(|m| {
            let mut c = metric_change(m, base, current, opt);
            if same && c.verdict != Verdict::NotMeasured {
                c.verdict = Verdict::NoChange;
            }
            c
        })
        .collect();
    let folded = |side: &[&'_ LoadedRun], f: fn(&LoadedRun) -> &Option<Folded>| -> Vec<Folded> {
        side.iter().filter_map(|r| f(r).clone()).collect()
    };
    let (bc, cc) = (
        folded(base, |r| &r.cpu_folded),
        folded(current, |r| &r.cpu_folded),
    );
    let (bh, ch) = (
        folded(base, |r| &r.heap_folded),
        folded(current, |r| &r.heap_folded),
    );
    let samples = |v: &[Folded]| v.iter().map(|f| f.values().sum::<u64>()).sum();
    let (cpu_frames, cpu_frames_in_noise) = if same || bc.is_empty() || cc.is_empty() {
        (Vec::new(), 0)
    } else {
        frame_changes(
            &refs(&bc),
            &refs(&cc),
            &opt.noise_model,
            opt.confidence,
            opt.top,
        )
    };
    let ids = |side: &[&LoadedRun]| side.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    WorkloadComparison {
        workload: current[0].workload.clone(),
        base_workload: base[0].workload.clone(),
        base_run: base[0].id.clone(),
        current_run: current[0].id.clone(),
        base_runs: ids(base),
        current_runs: ids(current),
        base_git: base[0].git_revision(),
        current_git: current[0].git_revision(),
        same_runs: same,
        metrics,
        cpu_frames,
        cpu_frames_in_noise,
        cpu_samples: (samples(&bc), samples(&cc)),
        heap_sites: if same || bh.is_empty() || ch.is_empty() {
            Vec::new()
        } else {
            site_changes(&refs(&bh), &refs(&ch), opt.top)
        },
        sql_statements: if same {
            Vec::new()
        } else {
            statement_changes(base, current, opt.top)
        },
        flamegraphs: Vec::new(),
    }
}

fn refs(v: &[Folded]) -> Vec<&Folded> {
    v.iter().collect()
}

/// The smallest absolute change that counts, for [`Scale::Absolute`]
/// metrics: 1 B/op of leak slope, 0.1 point of error rate.
fn absolute_floor(metric: Metric) -> f64 {
    match metric {
        Metric::LeakSlope => 1.0,
        Metric::ErrorRate => 0.001,
        // Counts per operation: a twentieth of a statement.
        _ => 0.05,
    }
}

fn metric_change(
    metric: Metric,
    base: &[&LoadedRun],
    current: &[&LoadedRun],
    opt: &CompareOptions,
) -> MetricChange {
    let values = |side: &[&LoadedRun]| -> Option<Vec<f64>> {
        side.iter().map(|r| metric.value(r)).collect()
    };
    let mut out = MetricChange {
        metric,
        base: None,
        current: None,
        change: None,
        ci: None,
        scale: Scale::of(metric),
        basis: None,
        runs: (base.len(), current.len()),
        verdict: Verdict::NotMeasured,
    };
    let (Some(b), Some(c)) = (values(base), values(current)) else {
        return out;
    };
    // Counts that may be 0 on a side (statements, full scans) are compared
    // as differences; times, rates and sizes as ratios.
    if out.scale == Scale::Relative && b.iter().chain(&c).any(|&x| x <= 0.0) {
        out.scale = Scale::Absolute;
    }
    let centre = |v: &[f64]| match out.scale {
        Scale::Relative => (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp(),
        Scale::Absolute => v.iter().sum::<f64>() / v.len() as f64,
    };
    out.base = Some(centre(&b));
    out.current = Some(centre(&c));
    let sd = match out.scale {
        Scale::Relative => opt.noise_model.sd(metric),
        // A relative metric read as a difference: its relative spread at
        // the base's size.
        Scale::Absolute if Scale::of(metric) == Scale::Relative => {
            opt.noise_model.sd(metric) * out.base.unwrap_or(0.0).abs()
        }
        Scale::Absolute => opt.noise_model.sd(metric),
    };
    let Some(i) = change_interval(
        &b,
        &c,
        out.scale,
        sd,
        opt.noise_model.df,
        opt.confidence,
        0.0,
    ) else {
        return out;
    };
    out.change = Some(i.point);
    out.ci = Some((i.lo, i.hi));
    out.basis = Some(i.basis);
    let floor = match out.scale {
        Scale::Relative => opt.noise,
        Scale::Absolute => absolute_floor(metric),
    };
    // Sign: +1 when an increase is worse.
    let worse_up = if metric.higher_is_better() { -1.0 } else { 1.0 };
    let (lo, hi, p) = if worse_up > 0.0 {
        (i.lo, i.hi, i.point)
    } else {
        (-i.hi, -i.lo, -i.point)
    };
    out.verdict = if lo > 0.0 && p > floor {
        Verdict::Regressed
    } else if hi < 0.0 && p < -floor {
        Verdict::Improved
    } else {
        Verdict::NoChange
    };
    out
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
