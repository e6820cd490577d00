//! What a probe saw while a pass ran a workload: instrumentation outside
//! the passes' own data (the service layer's per-endpoint figures, for one)
//! names the *subjects* the workload's operations reached — endpoints like
//! `GET /orders/recent` — and findings about them. [`join`] merges that
//! into a run's ranked findings, so `findings.json` speaks of endpoints,
//! not of workload names. Stored as `observed.json` in the run folder.

use serde::{Deserialize, Serialize};

use super::findings::{Finding, Findings};

/// Version of `observed.json`.
pub const OBSERVED_SCHEMA_VERSION: u32 = 1;

/// A subject names the whole run when it took at least this share of the
/// requests the probe saw.
pub const SUBJECT_SHARE: f64 = 0.9;

/// One thing the workload's operations reached (an endpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Its name in the user's terms: `GET /orders/{id}`.
    pub name: String,
    /// Requests to it the probe saw end.
    pub requests: u64,
}

/// What `observed.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// [`OBSERVED_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Who saw it (`service layer`).
    pub source: String,
    /// Subjects, most requests first.
    pub subjects: Vec<Subject>,
    /// Findings about the subjects (each titled with its subject).
    pub findings: Vec<Finding>,
}

impl Observed {
    /// The subject that took (nearly) every request, if one did.
    pub fn main_subject(&self) -> Option<&str> {
        let total: u64 = self.subjects.iter().map(|s| s.requests).sum();
        self.subjects
            .iter()
            .find(|s| total > 0 && s.requests as f64 >= SUBJECT_SHARE * total as f64)
            .map(|s| s.name.as_str())
    }
}

/// A run's findings joined with what a probe saw: when one subject took
/// the run's requests, every finding of the run names it (the run's
/// `"{workload}: "` title prefix becomes `"{subject}: "`, other titles
/// gain it); the probe's findings are added, except those of a kind the
/// run already found (the run's own is richer: intervals, CPU frames).
pub fn join(run: Findings, observed: &Observed) -> Findings {
    let workload = run.workload.clone();
    let mut findings = run.findings;
    if let Some(subject) = observed.main_subject() {
        let prefix = format!("{workload}: ");
        for f in &mut findings {
            f.title = match f.title.strip_prefix(&prefix) {
                Some(rest) => format!("{subject}: {rest}"),
                None if f.title.starts_with(subject) => f.title.clone(),
                None => format!("{subject}: {}", f.title),
            };
        }
    }
    let extra: Vec<Finding> = observed
        .findings
        .iter()
        .filter(|o| !findings.iter().any(|f| f.kind == o.kind))
        .cloned()
        .map(|mut f| {
            f.workload = workload.clone();
            f
        })
        .collect();
    findings.extend(extra);
    Findings::new(&workload, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::findings::{FindingKind, Severity};

    fn finding(kind: FindingKind, severity: Severity, title: &str) -> Finding {
        Finding {
            kind,
            severity,
            score: 0.5,
            workload: "w".into(),
            title: title.into(),
            evidence: vec![],
            hint: String::new(),
        }
    }

    fn observed(subjects: &[(&str, u64)], findings: Vec<Finding>) -> Observed {
        Observed {
            schema_version: OBSERVED_SCHEMA_VERSION,
            source: "test".into(),
            subjects: subjects
                .iter()
                .map(|(n, r)| Subject {
                    name: n.to_string(),
                    requests: *r,
                })
                .collect(),
            findings,
        }
    }

    #[test]
    fn one_subject_names_every_finding_and_the_probes_findings_join_unless_the_run_has_the_kind() {
        let run = Findings::new(
            "w",
            vec![
                finding(FindingKind::Leak, Severity::Warning, "w: live heap grows"),
                finding(FindingKind::CpuHotspot, Severity::Info, "f holds 10 %"),
            ],
        );
        let seen = observed(
            &[("GET /a", 95), ("GET /b", 5)],
            vec![
                finding(FindingKind::NPlusOne, Severity::Critical, "GET /a: N+1"),
                finding(FindingKind::Leak, Severity::Critical, "GET /a: leak"),
            ],
        );
        let joined = join(run, &seen);
        let titles: Vec<&str> = joined.findings.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "GET /a: N+1",
                "GET /a: live heap grows",
                "GET /a: f holds 10 %"
            ]
        );
        assert!(joined.findings.iter().all(|f| f.workload == "w"));
    }

    #[test]
    fn no_main_subject_leaves_titles_alone() {
        let run = Findings::new(
            "w",
            vec![finding(FindingKind::Leak, Severity::Warning, "w: grows")],
        );
        let seen = observed(&[("GET /a", 50), ("GET /b", 50)], vec![]);
        assert_eq!(seen.main_subject(), None);
        assert_eq!(join(run.clone(), &seen), run);
        assert_eq!(observed(&[], vec![]).main_subject(), None);
    }
}
