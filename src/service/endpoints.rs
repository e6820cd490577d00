//! The per-endpoint report of a window: what `/debug/profkit/endpoints`
//! answers (JSON) and what [`super::Recording::finish`] returns in process.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::collect::{EndpointAcc, RecData, Recording, StmtAcc};
use super::cpu::{EndpointCpu, LabelledProfile};
use super::defaults;
use crate::analyze::sql::N_PLUS_ONE_MIN_PER_OP;
use crate::units::Nanos;

/// Version of the report's JSON.
pub const ENDPOINTS_SCHEMA_VERSION: u32 = 1;

/// Top frames kept per endpoint.
const TOP_FRAMES: usize = 5;

/// Per endpoint, over one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointsReport {
    /// [`ENDPOINTS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Length of the window.
    pub window: Nanos,
    /// The CPU profile taken over the window, when one was.
    pub cpu: Option<CpuSummary>,
    /// Endpoints, most requests first.
    pub endpoints: Vec<EndpointReport>,
    /// Statements run outside any request.
    pub outside_requests: Vec<StatementStat>,
    /// sqlx events that lacked the statement or `elapsed_secs`.
    pub skipped_sql_events: u64,
    /// Every endpoint's findings, worst first.
    pub findings: Vec<ServiceFinding>,
}

/// The CPU profile behind a report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CpuSummary {
    /// Samples taken in the process.
    pub samples: u64,
    /// Samples matched to a request.
    pub attributed: u64,
    /// The sampler.
    pub sampler: String,
    /// Why samples were not matched to requests, or why no profile was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One endpoint over a window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointReport {
    /// `GET /orders/{id}`, or the root span's name.
    pub endpoint: String,
    /// Requests that ended in the window.
    pub requests: u64,
    /// Request latency (root span life), median.
    pub p50: Nanos,
    /// 95th percentile.
    pub p95: Nanos,
    /// 99th percentile.
    pub p99: Nanos,
    /// Time polled (the root span entered), summed over requests.
    pub busy: Nanos,
    /// Time awaiting (alive, not polled), summed over requests.
    pub idle: Nanos,
    /// Polls.
    pub polls: u64,
    /// Polls longer than the blocking threshold.
    pub long_polls: u64,
    /// CPU samples matched to this endpoint.
    pub cpu_samples: u64,
    /// Busiest self frames: (function, samples).
    pub top_frames: Vec<(String, u64)>,
    /// SQL statements per request.
    pub statements_per_request: f64,
    /// Time in SQL, summed over requests.
    pub sql_time: Nanos,
    /// Statements by shape (literals stripped), most run first.
    pub statements: Vec<StatementStat>,
    /// This endpoint's findings.
    pub findings: Vec<ServiceFinding>,
}

/// One statement shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatementStat {
    /// The statement with literals and parameters as `?`.
    pub sql: String,
    /// Runs.
    pub count: u64,
    /// Runs per request of its endpoint.
    pub per_request: f64,
    /// Most runs in one request.
    pub most_in_one_request: u64,
    /// Time in it.
    pub time: Nanos,
    /// Rows returned or changed.
    pub rows: u64,
}

/// What kind of problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The same statement many times per request.
    NPlusOne,
    /// One poll held a runtime worker too long.
    Blocking,
}

/// A problem of one endpoint, in the user's terms, with what to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceFinding {
    /// What kind.
    pub kind: FindingKind,
    /// The endpoint.
    pub endpoint: String,
    /// One line: the cause and the fix.
    pub message: String,
    /// The repeated statement (N+1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// The longest poll (blocking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<Nanos>,
    /// Frames sampled during the long polls (blocking), most sampled first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
    /// Time at stake: the repeated statement's, or the long polls'.
    pub time: Nanos,
}

fn stats(
    statements: &HashMap<String, StmtAcc>,
    most: &HashMap<String, u64>,
    requests: u64,
) -> Vec<StatementStat> {
    let mut v: Vec<StatementStat> = statements
        .iter()
        .map(|(sql, s)| StatementStat {
            sql: sql.clone(),
            count: s.count,
            per_request: s.count as f64 / requests.max(1) as f64,
            most_in_one_request: most.get(sql).copied().unwrap_or(0),
            time: Nanos(s.nanos),
            rows: s.rows,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.sql.cmp(&b.sql)));
    v
}

fn endpoint_report(
    name: &Arc<str>,
    e: &EndpointAcc,
    cpu: Option<&LabelledProfile>,
    cpu_by: &HashMap<Arc<str>, EndpointCpu>,
) -> EndpointReport {
    let statements = stats(&e.statements, &e.most_per_request, e.requests);
    let q = |p: f64| Nanos(e.latency.value_at_quantile(p));
    let mut findings = Vec::new();
    if let Some(s) = statements
        .iter()
        .filter(|s| e.requests > 0 && s.per_request >= N_PLUS_ONE_MIN_PER_OP)
        .max_by(|a, b| a.per_request.total_cmp(&b.per_request))
    {
        findings.push(ServiceFinding {
            kind: FindingKind::NPlusOne,
            endpoint: name.to_string(),
            message: format!(
                "{name}: N+1 — `{}` runs {:.0} times per request ({:.1} ms per request); fetch the rows in one query (a JOIN or `IN (…)`)",
                s.sql,
                s.per_request,
                s.time.0 as f64 / e.requests as f64 / 1e6
            ),
            statement: Some(s.sql.clone()),
            poll: None,
            frames: Vec::new(),
            time: s.time,
        });
    }
    let blocking = e.long_polls.len() >= defaults::BLOCKING_MIN_POLLS
        && e.long_polls.len() as f64 >= defaults::BLOCKING_MIN_SHARE * e.polls as f64;
    if let Some(longest) = e
        .long_polls
        .iter()
        .filter(|_| blocking)
        .max_by_key(|p| p.end - p.start)
    {
        let length = longest.end - longest.start;
        let (samples, frames) = cpu.map_or((0, Vec::new()), |c| c.poll_frames(&e.long_polls, 3));
        let during = match (cpu, frames.first()) {
            (_, Some(f)) => format!(" in `{f}`"),
            (Some(_), None) if samples == 0 => {
                " with no CPU sample taken in any long poll: they waited (a sleep, a lock or blocking I/O)".to_string()
            }
            _ => String::new(),
        };
        let total: u64 = e.long_polls.iter().map(|p| p.end - p.start).sum();
        findings.push(ServiceFinding {
            kind: FindingKind::Blocking,
            endpoint: name.to_string(),
            message: format!(
                "{name}: one poll held a runtime worker for {:.0} ms{during} ({} of {} polls over the threshold); move the blocking call to `spawn_blocking`",
                length as f64 / 1e6,
                e.long_polls.len(),
                e.polls
            ),
            statement: None,
            poll: Some(Nanos(length)),
            frames,
            time: Nanos(total),
        });
    }
    let (cpu_samples, top_frames) = cpu_by.get(name).cloned().unwrap_or_default();
    EndpointReport {
        endpoint: name.to_string(),
        requests: e.requests,
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        busy: Nanos(e.busy),
        idle: Nanos(e.idle),
        polls: e.polls,
        long_polls: e.long_polls.len() as u64,
        cpu_samples,
        top_frames,
        statements_per_request: e.statements.values().map(|s| s.count).sum::<u64>() as f64
            / e.requests.max(1) as f64,
        sql_time: Nanos(e.statements.values().map(|s| s.nanos).sum()),
        statements,
        findings,
    }
}

/// The report of a recording's data, with the CPU profile taken over it.
pub(super) fn build(
    data: &RecData,
    window: Nanos,
    cpu: Option<&LabelledProfile>,
    cpu_note: Option<String>,
) -> EndpointsReport {
    let cpu_by = cpu.map(|c| c.per_endpoint(TOP_FRAMES)).unwrap_or_default();
    let mut endpoints: Vec<EndpointReport> = data
        .endpoints
        .iter()
        .map(|(name, e)| endpoint_report(name, e, cpu, &cpu_by))
        .collect();
    endpoints.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    let mut findings: Vec<ServiceFinding> = endpoints
        .iter()
        .flat_map(|e| e.findings.iter().cloned())
        .collect();
    findings.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.message.cmp(&b.message)));
    EndpointsReport {
        schema_version: ENDPOINTS_SCHEMA_VERSION,
        window,
        cpu: match cpu {
            Some(c) => Some(CpuSummary {
                samples: c.profile.samples,
                attributed: c.attributed,
                sampler: c.profile.sampler.to_string(),
                note: c.note.clone(),
            }),
            None => cpu_note.map(|note| CpuSummary {
                samples: 0,
                attributed: 0,
                sampler: String::new(),
                note: Some(note),
            }),
        },
        endpoints,
        outside_requests: stats(&data.outside, &HashMap::new(), 1),
        skipped_sql_events: data.skipped_events,
        findings,
    }
}

impl Recording {
    /// Ends the recording: the per-endpoint report of the requests that
    /// ended while it was open (no CPU figures: see
    /// [`Recording::finish_with_cpu`]).
    pub fn finish(self) -> EndpointsReport {
        let window = Nanos::from(self.started.elapsed());
        let data = self.data.lock();
        build(&data, window, None, None)
    }

    /// Ends the recording with a labelled CPU profile taken over it (CPU
    /// samples and top frames per endpoint, frames of long polls).
    pub fn finish_with_cpu(self, cpu: &LabelledProfile) -> EndpointsReport {
        let window = Nanos::from(self.started.elapsed());
        let data = self.data.lock();
        build(&data, window, Some(cpu), None)
    }
}
