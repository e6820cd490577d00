//! The per-endpoint report as a probe's observation: its endpoints become
//! the subjects of a run and its findings become run findings
//! ([`crate::analyze::observed`]), so a harness's `profile` names the
//! endpoint of an N+1 that only the layer sees (sqlx's statements).

use super::endpoints::{EndpointReport, EndpointsReport, FindingKind, ServiceFinding};
use crate::analyze::findings::{self, Finding, Severity};
use crate::analyze::observed::{Observed, Subject, OBSERVED_SCHEMA_VERSION};

/// `source` of the observations made here.
pub const SOURCE: &str = "profkit service layer";

impl EndpointsReport {
    /// The report as a probe's observation of `workload`'s run; `None`
    /// when no request ended in it.
    pub fn observed(&self, workload: &str) -> Option<Observed> {
        let subjects: Vec<Subject> = self
            .endpoints
            .iter()
            .filter(|e| e.requests > 0)
            .map(|e| Subject {
                name: e.endpoint.clone(),
                requests: e.requests,
            })
            .collect();
        if subjects.is_empty() {
            return None;
        }
        let findings = self
            .endpoints
            .iter()
            .flat_map(|e| e.findings.iter().map(move |f| to_finding(e, f, workload)))
            .collect();
        Some(Observed {
            schema_version: OBSERVED_SCHEMA_VERSION,
            source: SOURCE.to_string(),
            subjects,
            findings,
        })
    }
}

/// One endpoint's finding as a run finding: the message up to its advice
/// is the title (it starts with the endpoint), the advice the hint.
fn to_finding(e: &EndpointReport, f: &ServiceFinding, workload: &str) -> Finding {
    let latency = (e.busy.0 + e.idle.0).max(1) as f64;
    let share = (f.time.0 as f64 / latency).clamp(0.0, 1.0);
    let (title, hint) = match f.message.rsplit_once("; ") {
        Some((title, hint)) => (title.to_string(), hint.to_string()),
        None => (f.message.clone(), String::new()),
    };
    let mut evidence = vec![format!(
        "{} requests seen by the service layer; {:.0} % of their time at stake",
        e.requests,
        100.0 * share
    )];
    let (kind, severity, score) = match f.kind {
        FindingKind::NPlusOne => {
            let stat = e
                .statements
                .iter()
                .find(|s| Some(&s.sql) == f.statement.as_ref());
            if let Some(s) = stat {
                evidence.push(format!(
                    "`{}`: {:.1} per request (at most {} in one), {:.1} statements per request in all",
                    s.sql, s.per_request, s.most_in_one_request, e.statements_per_request
                ));
            }
            // As the SQL pass ranks an N+1: by the statements it adds too.
            let added = stat.map_or(0.0, |s| s.per_request / e.statements_per_request.max(1.0));
            let severity = match share >= 0.1 {
                true => Severity::Critical,
                false => Severity::Warning,
            };
            (findings::FindingKind::NPlusOne, severity, added.max(share))
        }
        FindingKind::Blocking => {
            if !f.frames.is_empty() {
                evidence.push(format!(
                    "frames during the longest poll: {}",
                    f.frames.join(", ")
                ));
            }
            let severity = findings::severity_for(share).max(Severity::Warning);
            (findings::FindingKind::Blocking, severity, share)
        }
    };
    Finding {
        kind,
        severity,
        score,
        workload: workload.to_string(),
        title,
        evidence,
        hint,
    }
}
