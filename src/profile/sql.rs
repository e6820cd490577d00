//! The SQL pass: a measured run with SQLite's trace hook on, analysed into
//! per-statement figures, query plans, N+1 candidates and findings.

use std::path::{Path, PathBuf};

use crate::analyze::findings::{self, Findings};
use crate::analyze::sql::{self, SqlReport};
use crate::measure::{self, BenchResult, Progress};
use crate::render::flamegraph::{render_folded, SvgOptions};
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

/// Writes `sql.json`, `sql.folded` and `findings.json` into a run folder,
/// and `<run-id>-sql.svg` (database time per workload → operation →
/// statement → plan) into `flamegraph_dir`. Returns the SVG's path, if any
/// statement took measurable time.
pub fn write(dir: &RunDir, run: &SqlRun, flamegraph_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    rundir::write_json(&dir.file("sql.json"), &run.report)?;
    let lines = sql::folded(&run.report);
    let mut folded = lines.join("\n");
    folded.push('\n');
    rundir::write_atomic(&dir.file("sql.folded"), folded.as_bytes())?;
    rundir::write_json(&dir.file("findings.json"), &run.findings)?;
    if lines.is_empty() {
        return Ok(None);
    }
    let options = SvgOptions {
        title: format!("{}: database time by statement", run.report.workload),
        subtitle: Some(format!(
            "{} operations, {:.1} statements and {} of database time per operation ({:.0} % of latency)",
            run.report.ops, run.report.statements_per_op, run.report.db_time_per_op, 100.0 * run.report.db_time_share
        )),
        count_name: "µs".to_string(),
        ..SvgOptions::default()
    };
    let svg = render_folded(&folded, &options)?;
    let path = flamegraph_dir.join(format!("{}-sql.svg", dir.id));
    rundir::write_atomic(&path, &svg)?;
    Ok(Some(path))
}

/// Reads a run folder's `sql.json`.
pub fn read_report(dir: &Path) -> anyhow::Result<SqlReport> {
    Ok(rundir::read_json(&dir.join("sql.json"), "SQL report")?)
}
