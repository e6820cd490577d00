//! JSON reports: the same content as the Markdown and HTML reports, as data.

use serde::Serialize;

use super::report::ReportInput;
use crate::analyze::budget::{CheckLine, Metric};
use crate::analyze::compare::Comparison;
use crate::analyze::findings::Finding;
use crate::analyze::rundata::LoadedRun;
use crate::measure::BenchResult;

/// Version of the report JSON.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// One run in a JSON report.
#[derive(Debug, Serialize)]
pub struct RunJson<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Workload.
    pub workload: &'a str,
    /// Parameters, one line.
    pub parameters: String,
    /// Machine, one line.
    pub machine: Option<String>,
    /// Git revision.
    pub git_revision: Option<String>,
    /// Every metric the run has.
    pub metrics: Vec<(Metric, f64)>,
    /// Its findings.
    pub findings: &'a [Finding],
    /// What `profkit advise` would try per finding, or measured.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub advice: &'a [crate::analyze::advice_plan::AdviceLine],
    /// CPU findings withheld: fewer CPU samples than a finding needs.
    pub withheld_cpu_findings: usize,
    /// `bench.json`.
    pub bench: &'a BenchResult,
}

/// A JSON report.
#[derive(Debug, Serialize)]
pub struct ReportJson<'a> {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `run` or `compare`.
    pub kind: &'static str,
    /// The title.
    pub title: String,
    /// The runs (the current side of a comparison).
    pub runs: Vec<RunJson<'a>>,
    /// The base runs of a comparison.
    pub base_runs: Vec<RunJson<'a>>,
    /// Budget lines, when checked.
    pub budget: Option<&'a [CheckLine]>,
    /// The comparison.
    pub comparison: Option<&'a Comparison>,
}

fn run_json(r: &LoadedRun) -> RunJson<'_> {
    RunJson {
        run_id: &r.id,
        workload: &r.workload,
        parameters: r.parameters(),
        machine: r.machine(),
        git_revision: r.git_revision(),
        metrics: Metric::ALL
            .into_iter()
            .filter_map(|m| m.value(r).map(|v| (m, v)))
            .collect(),
        findings: &r.findings,
        advice: &r.advice,
        withheld_cpu_findings: r.withheld_cpu_findings,
        bench: &r.bench,
    }
}

/// The Json report writer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl super::report::Exporter for Json {
    fn render(&self, input: &ReportInput<'_>) -> String {
        render(input)
    }
}

/// Renders a report as pretty JSON.
pub fn render(input: &ReportInput<'_>) -> String {
    let report = match input {
        ReportInput::Runs { set, check, .. } => ReportJson {
            schema_version: REPORT_SCHEMA_VERSION,
            kind: "run",
            title: input.title(),
            runs: set.runs.iter().map(run_json).collect(),
            base_runs: Vec::new(),
            budget: check.map(|c| c.lines.as_slice()),
            comparison: None,
        },
        ReportInput::Compare {
            base,
            current,
            comparison,
        } => ReportJson {
            schema_version: REPORT_SCHEMA_VERSION,
            kind: "compare",
            title: input.title(),
            runs: current.runs.iter().map(run_json).collect(),
            base_runs: base.runs.iter().map(run_json).collect(),
            budget: None,
            comparison: Some(comparison),
        },
    };
    let mut s = serde_json::to_string_pretty(&report).expect("report types serialise");
    s.push('\n');
    s
}
