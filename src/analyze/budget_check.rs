//! The check of runs against a [`Budget`]: deterministic figures exactly,
//! timings beyond the run-to-run noise of identical code.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::budget::{Budget, Limit, Metric};
use super::replicates::NoiseModel;
use super::rundata::LoadedRun;

impl Budget {
    /// Checks every run against the budget, timings against the built-in
    /// noise model of this machine kind ([`NoiseModel::default`]).
    pub fn check<'a>(&self, runs: impl IntoIterator<Item = &'a LoadedRun>) -> CheckReport {
        self.check_with(runs, &NoiseModel::default())
    }

    /// Checks every run against the budget. Deterministic figures
    /// (statements and scans per operation, allocation, heap, leak slope,
    /// errors) are judged exactly. A timing (latencies, throughput, CPU per
    /// operation) misses its target or critical threshold only when it lies
    /// beyond it by more than the run-to-run noise of identical code
    /// (`noise`, one-sided 95 %): two runs of unchanged code differ by more
    /// than any one run's operations say. With
    /// `timings_optimised_only = true` in the file (the committed
    /// `profkit.toml`: its targets are calibrated on release builds), a
    /// debug build's timings are not judged at all.
    pub fn check_with<'a>(
        &self,
        runs: impl IntoIterator<Item = &'a LoadedRun>,
        noise: &NoiseModel,
    ) -> CheckReport {
        let mut lines = Vec::new();
        for run in runs {
            let debug = self.timings_optimised_only
                && run.manifest.as_ref().is_some_and(|m| m.tools.debug_build);
            for (metric, limit) in self.limits_for(&run.workload) {
                let measured = metric.value(run);
                let (status, note) = match measured {
                    None => (Status::NotMeasured, None),
                    Some(_) if debug && metric.is_speed() => (
                        Status::NotMeasured,
                        Some("debug build: timings are judged on optimised builds only".into()),
                    ),
                    Some(v) => {
                        let margin = match metric.is_speed() {
                            true => (NOISE_Z * noise.sd(metric)).exp(),
                            false => 1.0,
                        };
                        verdict(metric, v, &limit, margin)
                    }
                };
                lines.push(CheckLine {
                    workload: run.workload.clone(),
                    run_id: run.id.clone(),
                    metric,
                    measured,
                    limit,
                    status,
                    note,
                });
            }
        }
        CheckReport { lines }
    }
}

/// One-sided 95 % normal quantile: how many run-to-run standard deviations
/// a timing must lie beyond its bound to count as missing it.
pub const NOISE_Z: f64 = 1.645;

/// The verdict of value `v` against `limit`, a timing allowed a factor
/// `margin` (≥ 1) of noise beyond each bound; deterministic metrics get 1.
/// Within the margin but past the bound, the verdict is ok with a note.
pub fn verdict(metric: Metric, v: f64, limit: &Limit, margin: f64) -> (Status, Option<String>) {
    let beyond = |bound: Option<f64>, m: f64| {
        bound.is_some_and(|b| match metric.higher_is_better() {
            true => v * m < b,
            false => v > b * m,
        })
    };
    if beyond(limit.critical, margin) {
        (Status::Fail, None)
    } else if beyond(limit.target, margin) {
        (Status::Warn, None)
    } else if margin > 1.0 && (beyond(limit.target, 1.0) || beyond(limit.critical, 1.0)) {
        let note = format!(
            "past the bound, within this machine's run-to-run noise (a factor {margin:.2})"
        );
        (Status::Ok, Some(note))
    } else {
        (Status::Ok, None)
    }
}

/// The verdict of one budget line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The run lacks the data.
    NotMeasured,
    /// Meets its target.
    Ok,
    /// Misses its target, within the critical threshold.
    Warn,
    /// Breaks the critical threshold.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotMeasured => "not measured",
            Status::Ok => "ok",
            Status::Warn => "WARN (target missed)",
            Status::Fail => "FAIL (critical)",
        })
    }
}

/// One metric of one run against its limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckLine {
    /// Workload.
    pub workload: String,
    /// Run.
    pub run_id: String,
    /// Metric.
    pub metric: Metric,
    /// Measured value (None: not measured).
    pub measured: Option<f64>,
    /// Its limit.
    pub limit: Limit,
    /// Verdict.
    pub status: Status,
    /// Why a timing was not judged, or was judged ok past its bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.metric;
        let bound = |b: Option<f64>| b.map(|v| m.format(v)).unwrap_or_else(|| "-".into());
        let measured = self
            .measured
            .map(|v| m.format(v))
            .unwrap_or_else(|| "-".into());
        let rel = if m.higher_is_better() { "≥" } else { "≤" };
        write!(
            f,
            "{} {}: {measured} vs allowed {rel} {} / {} {}",
            self.workload,
            m,
            bound(self.limit.target),
            bound(self.limit.critical),
            self.status
        )?;
        match &self.note {
            Some(n) => write!(f, " ({n})"),
            None => Ok(()),
        }
    }
}

/// The result of a budget check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// One line per workload and metric.
    pub lines: Vec<CheckLine>,
}

impl CheckReport {
    /// The worst verdict (NotMeasured counts as Ok).
    pub fn worst(&self) -> Status {
        self.lines
            .iter()
            .map(|l| l.status)
            .max()
            .unwrap_or(Status::Ok)
            .max(Status::Ok)
    }

    /// Lines with this verdict.
    pub fn count(&self, s: Status) -> usize {
        self.lines.iter().filter(|l| l.status == s).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_judged_beyond_the_noise_and_counts_exactly() {
        let l = Limit {
            target: Some(100.0),
            critical: Some(200.0),
        };
        let noise = NoiseModel::default();
        let m = (NOISE_Z * noise.sd(Metric::P95)).exp();
        assert!(m > 1.05 && m < 1.5, "{m}");
        // 10 % over a p95 target: within the noise, ok with a note.
        let (s, note) = verdict(Metric::P95, 110.0, &l, m);
        assert_eq!(s, Status::Ok);
        assert!(note.unwrap().contains("noise"));
        // Well past it: a warning; past the critical threshold's margin: a failure.
        assert_eq!(verdict(Metric::P95, 150.0, &l, m).0, Status::Warn);
        assert_eq!(verdict(Metric::P95, 300.0, &l, m).0, Status::Fail);
        assert_eq!(verdict(Metric::P95, 90.0, &l, m), (Status::Ok, None));
        // A floor: throughput a little under its target is noise.
        let floor = Limit {
            target: Some(1000.0),
            critical: None,
        };
        let mt = (NOISE_Z * noise.sd(Metric::Throughput)).exp();
        assert_eq!(verdict(Metric::Throughput, 800.0, &floor, mt).0, Status::Ok);
        assert_eq!(
            verdict(Metric::Throughput, 300.0, &floor, mt).0,
            Status::Warn
        );
        // Deterministic: statements per operation exactly.
        let sql = Limit {
            target: Some(2.0),
            critical: Some(2.5),
        };
        assert_eq!(verdict(Metric::SqlPerOp, 2.51, &sql, 1.0).0, Status::Fail);
        assert_eq!(verdict(Metric::SqlPerOp, 2.01, &sql, 1.0).0, Status::Warn);
    }
}
