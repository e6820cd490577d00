//! The SQL pass: a measured run with SQLite's trace hook on, analysed into
//! per-statement figures, query plans, N+1 candidates and findings, written
//! as `sql.json`, `sql.folded`, `findings.json` and a flamegraph of
//! database time by statement.

use std::path::PathBuf;
use std::time::SystemTime;

use super::session::{Prepared, Session};
use crate::analyze::findings::{self, Findings};
use crate::analyze::observed::{self, Observed};
use crate::analyze::rundata::Pass;
use crate::analyze::sql::{self, SqlReport};
use crate::measure::{self, BenchResult, RunOptions};
use crate::profile::sql::Planner;
use crate::render::flamegraph::{render_folded, SvgOptions};
use crate::render::folded;
use crate::store::{self, files, RunDir};
use crate::workload::Workload;

/// What the SQL pass produced.
#[derive(Clone, Debug)]
pub struct SqlRun {
    /// The measured run (with the hook on).
    pub bench: BenchResult,
    /// Per-statement analysis.
    pub report: SqlReport,
    /// Findings drawn from it (joined with what the probes saw).
    pub findings: Findings,
    /// What the session's probes saw during the run.
    pub observed: Option<Observed>,
}

/// Measures a prepared workload with statement tracing and analyses it.
/// The workload must have been prepared with `sql_trace` on.
pub(super) fn measure_traced(prepared: &Prepared, session: &Session) -> anyhow::Result<SqlRun> {
    anyhow::ensure!(
        prepared.env.sql_trace,
        "the SQL pass needs a workload prepared with the trace hook on"
    );
    let progress = session.progress(prepared.workload.name());
    // Probes watch this pass: it counts, so their cost distorts no timing.
    let watches = session.config().probes.start();
    let measured = measure::measure_detailed(prepared.workload.as_ref(), &prepared.plan, &progress);
    let observed = watches.finish(prepared.workload.name());
    let (bench, tallies) = measured?;
    // The run's database first (the file the workload opened: readers
    // share one, see `SetupEnv::open_shared_db`), then any file a workload
    // traced itself.
    let traced = crate::db::trace::traced_files();
    let opened = prepared.workload.database().map(|db| db.path());
    let planner = Planner::open_all(
        opened
            .into_iter()
            .chain(std::iter::once(prepared.env.db_path.as_path()))
            .chain(traced.iter().map(|p| p.as_path())),
    );
    let report = sql::analyze(&bench, &tallies, &|s: &str| planner.plan(s));
    let mut findings = Findings::new(&bench.workload, findings::from_sql(&report));
    if let Some(o) = &observed {
        findings = observed::join(findings, o);
    }
    Ok(SqlRun {
        bench,
        report,
        findings,
        observed,
    })
}

/// Writes `sql.json`, `sql.folded` and `findings.json` into a run folder,
/// and `<run-id>-sql.svg` (database time per workload → operation →
/// statement → plan). Returns the SVG's path, if any statement took
/// measurable time.
fn write(dir: &RunDir, run: &SqlRun, session: &Session) -> anyhow::Result<Option<PathBuf>> {
    store::write_json(&dir.file(files::SQL_JSON), &run.report)?;
    let stacks = sql::folded(&run.report);
    let text = folded::to_text(&stacks);
    store::write_atomic(&dir.file(files::SQL_FOLDED), text.as_bytes())?;
    store::write_json(&dir.file(files::FINDINGS), &run.findings)?;
    if let Some(o) = &run.observed {
        store::write_json(&dir.file(files::OBSERVED), o)?;
    }
    if stacks.is_empty() {
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
    let svg = render_folded(&text, &options)?;
    let path = session.flamegraph_path(&dir.id, "sql");
    store::write_atomic(&path, &svg)?;
    Ok(Some(path))
}

/// The SQL pass over one workload, into `dir` (a new run folder with its
/// own `bench.json` and manifest when `None`).
pub fn run(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    dir: Option<&RunDir>,
) -> anyhow::Result<(RunDir, SqlRun)> {
    let started = SystemTime::now();
    let prepared = session.prepare(workload, options, true)?;
    let run = measure_traced(&prepared, session)?;
    let dir = match dir {
        Some(d) => {
            store::add_passes(&d.path, &[Pass::Sql])?;
            d.clone()
        }
        None => {
            let d = session.run_dir(prepared.workload.name(), started)?;
            let passes = [Pass::Bench, Pass::Sql];
            session.write_manifest_of(&d, &prepared, &passes, started, Some(&run.bench))?;
            store::write_json(&d.file(files::BENCH), &run.bench)?;
            d
        }
    };
    write(&dir, &run, session)?;
    session.discard(prepared);
    Ok((dir, run))
}
