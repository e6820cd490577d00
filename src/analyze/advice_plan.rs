//! The "advice" section of a run's findings, summary and report: per
//! finding, what `profkit advise` would try on a scratch copy (cheap: read
//! from the findings, nothing is run), or what it measured when the run
//! folder holds an `advice.json`.

use serde::{Deserialize, Serialize};

use super::advice::{Advice, Trial, TrialKind};
use super::findings::{Finding, FindingKind};
use super::predict::Prediction;

/// One line of advice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdviceLine {
    /// The finding it answers (its title), or the trial's name for a
    /// measured result.
    pub finding: String,
    /// What to do, or what was measured.
    pub action: String,
    /// Measured by `profkit advise` (an interval from paired runs), not only
    /// proposed.
    #[serde(default)]
    pub measured: bool,
    /// Where no fix can be tried, the gain predicted from the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<super::predict::Prediction>,
}

/// What `advise` tries for a finding, `None` when it has no mechanical fix.
fn would_try(f: &Finding) -> Option<&'static str> {
    let t = f.title.as_str();
    match f.kind {
        FindingKind::FullScan | FindingKind::TempBtree => Some(
            "an index from the statement's plan (equality columns, then one range or ORDER BY column, as SQLite's .expert does), created on a scratch copy and kept only if the rerun is faster beyond the noise",
        ),
        FindingKind::CpuCause if t.contains("memory statistics") => {
            Some("SQLITE_CONFIG_MEMSTATUS = 0, measured in child processes against the default")
        }
        FindingKind::CpuCause if t.contains("prepares a statement again") => {
            Some("the query planner stability guarantee (SQLITE_DBCONFIG_ENABLE_QPSG) on the workload's connections")
        }
        FindingKind::CpuCause if t.contains("fsync") => {
            Some("PRAGMA synchronous = NORMAL on a scratch copy")
        }
        FindingKind::CpuCause if t.contains("pages copied in") => {
            Some("PRAGMA cache_size and PRAGMA mmap_size, each its own trial on a scratch copy")
        }
        _ => None,
    }
}

/// The advice for `findings` (most important first): measured results of
/// `advice` when given (kept fixes first, then what was tried and did not
/// help), then for every finding not covered what `profkit advise` would
/// try, or that it has no mechanical fix (N+1, leaks, hot functions: the
/// finding's own hint says what to change).
pub fn plan(
    workload: &str,
    findings: &[Finding],
    advice: Option<&Advice>,
    predict: &dyn Fn(&Finding) -> Option<Prediction>,
) -> Vec<AdviceLine> {
    let mut out = Vec::new();
    if let Some(a) = advice {
        let mut trials: Vec<&Trial> = a.kept();
        trials.extend(a.trials.iter().filter(|t| !t.keep));
        for t in trials {
            out.push(AdviceLine {
                finding: t.candidate.name.clone(),
                action: measured(t),
                measured: t.change.is_some(),
                predicted: None,
            });
        }
    }
    let tried =
        |kind: TrialKind| advice.is_some_and(|a| a.trials.iter().any(|t| t.candidate.kind == kind));
    for f in findings {
        let predicted = predict(f);
        let with_prediction = |action: String| match &predicted {
            Some(p) => format!("{action}; {}", p.line()),
            None => action,
        };
        let action = match would_try(f) {
            Some(_) if f.kind == FindingKind::FullScan && tried(TrialKind::Index) => continue,
            Some(what) if advice.is_none() => {
                with_prediction(format!("`profkit advise {workload}` would try {what}"))
            }
            Some(_) => continue,
            None => match f.kind {
                FindingKind::NPlusOne | FindingKind::Leak | FindingKind::CpuHotspot => {
                    with_prediction(
                        "no mechanical fix to try: change the code as the finding says".to_string(),
                    )
                }
                _ => continue,
            },
        };
        out.push(AdviceLine {
            finding: f.title.clone(),
            action,
            measured: false,
            predicted,
        });
    }
    out
}

/// A trial's outcome in one line: the SQL and the measured change.
fn measured(t: &Trial) -> String {
    match (&t.change, &t.error) {
        (Some(c), _) => format!(
            "`{}`: {} {:.3} ms → {:.3} ms ({:+.0} %, 95 % interval {:+.0} to {:+.0} %, {} pairs of runs): {}",
            t.candidate.sql,
            c.metric,
            c.original / 1e6,
            c.trial / 1e6,
            100.0 * c.change,
            100.0 * c.low,
            100.0 * c.high,
            c.pairs,
            if t.keep { "apply it" } else { "no gain beyond the noise" }
        ),
        (None, Some(e)) => format!("`{}`: not measured: {e}", t.candidate.sql),
        (None, None) => format!("`{}`: not measured", t.candidate.sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::advice::{Candidate, Change};
    use crate::analyze::findings::Severity;

    fn finding(kind: FindingKind, title: &str) -> Finding {
        Finding {
            kind,
            severity: Severity::Warning,
            score: 0.5,
            workload: "w".into(),
            title: title.into(),
            evidence: vec![],
            hint: "h".into(),
        }
    }

    #[test]
    fn without_advice_each_finding_says_what_advise_would_try() {
        let f = [
            finding(FindingKind::FullScan, "full scan of emails"),
            finding(FindingKind::NPlusOne, "N+1"),
            finding(FindingKind::Waiting, "waits"),
            finding(
                FindingKind::CpuCause,
                "30 % of CPU: SQLite's memory statistics (…)",
            ),
        ];
        let lines = plan("w", &f, None, &|_| None);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0]
            .action
            .contains("profkit advise w` would try an index"));
        assert!(lines[1].action.contains("no mechanical fix"));
        assert!(lines[2].action.contains("MEMSTATUS"));
        assert!(lines.iter().all(|l| !l.measured));
    }

    #[test]
    fn with_advice_the_measured_results_come_first() {
        let trial = |name: &str, change: f64, keep: bool| Trial {
            candidate: Candidate {
                kind: TrialKind::Index,
                name: name.into(),
                sql: format!("CREATE INDEX {name}"),
                reason: String::new(),
            },
            change: Some(Change {
                metric: "mean".into(),
                original: 4e6,
                trial: 4e6 * (1.0 + change),
                change,
                low: change - 0.1,
                high: change + 0.1,
                pairs: 5,
                runs: vec![],
            }),
            error: None,
            keep,
        };
        let advice = Advice {
            schema_version: 1,
            workload: "w".into(),
            trials: vec![trial("a", 0.01, false), trial("b", -0.6, true)],
            notes: vec![],
        };
        let f = [finding(FindingKind::FullScan, "full scan of emails")];
        let lines = plan("w", &f, Some(&advice), &|_| None);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0]
            .action
            .starts_with("`CREATE INDEX b`: mean 4.000 ms → 1.600 ms (-60 %"));
        assert!(lines[0].action.ends_with("apply it") && lines[0].measured);
        assert!(lines[1].action.ends_with("no gain beyond the noise"));
    }
}
