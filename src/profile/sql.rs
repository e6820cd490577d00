//! The SQL pass: a measured run with SQLite's trace hook on, analysed into
//! per-statement figures, query plans, N+1 candidates and findings.

use std::path::Path;

use crate::analyze::findings::{self, Findings};
use crate::analyze::sql::{self, SqlReport};
use crate::measure::{self, BenchResult, Progress};
use crate::rundir::{self, RunDir};
use crate::session::Prepared;

/// What the SQL pass produced.
#[derive(Clone, Debug)]
pub struct SqlRun {
    /// The measured run (with the hook on).
    pub bench: BenchResult,
    /// Per-statement analysis.
    pub report: SqlReport,
    /// Findings drawn from it.
    pub findings: Findings,
}

/// Measures a prepared workload with statement tracing and analyses it.
/// The workload must have been prepared with `sql_trace` on.
pub fn profile_prepared(prepared: &Prepared, progress: &Progress) -> anyhow::Result<SqlRun> {
    anyhow::ensure!(
        prepared.env.sql_trace,
        "the SQL pass needs a workload prepared with the trace hook on"
    );
    let (bench, tallies) =
        measure::measure_detailed(prepared.workload.as_ref(), &prepared.plan, progress)?;
    let report = sql::analyze(&bench, &tallies, &prepared.env.db_path);
    let findings = Findings::new(&bench.workload, findings::from_sql(&report));
    Ok(SqlRun {
        bench,
        report,
        findings,
    })
}

/// Writes `sql.json`, `sql.folded` and `findings.json` into a run folder.
pub fn write(dir: &RunDir, run: &SqlRun) -> anyhow::Result<()> {
    rundir::write_json(&dir.file("sql.json"), &run.report)?;
    let mut folded = sql::folded(&run.report).join("\n");
    folded.push('\n');
    rundir::write_atomic(&dir.file("sql.folded"), folded.as_bytes())?;
    rundir::write_json(&dir.file("findings.json"), &run.findings)?;
    Ok(())
}

/// Reads a run folder's `sql.json`.
pub fn read_report(dir: &Path) -> anyhow::Result<SqlReport> {
    Ok(rundir::read_json(&dir.join("sql.json"), "SQL report")?)
}
