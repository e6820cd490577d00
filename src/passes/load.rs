//! The open-loop pass: a workload driven at a fixed rate (corrected for
//! coordinated omission), written as `load.json`.

use std::time::SystemTime;

use anyhow::Context as _;

use super::session::Session;
use crate::analyze::rundata::Pass;
use crate::measure::open_loop::{self, LoadResult};
use crate::measure::{RunOptions, Stop};
use crate::store::{self, files, RunDir};
use crate::units::OpsPerSec;
use crate::workload::Workload;

/// Sets up `workload`, drives it at `rate` (for
/// [`open_loop::defaults::DURATION`] unless a length is given) and writes
/// `load.json` and `manifest.json` into a new run folder.
pub fn run(
    session: &mut Session,
    workload: Box<dyn Workload>,
    options: &RunOptions,
    rate: OpsPerSec,
) -> anyhow::Result<(RunDir, LoadResult)> {
    let mut options = options.clone();
    if options.stop.is_none() {
        options.stop = Some(Stop::Duration(open_loop::defaults::DURATION.into()));
    }
    let started = SystemTime::now();
    let sql_trace = session.config().sql_trace;
    let prepared = session.prepare(workload, &options, sql_trace)?;
    let name = prepared.workload.name().to_string();
    let result = open_loop::measure_open_loop(prepared.workload.as_ref(), &prepared.plan, rate)
        .with_context(|| format!("running workload '{name}' open loop"))?;
    let dir = session.run_dir(&name, started)?;
    session.write_manifest(&dir, &prepared, &[Pass::Load], started)?;
    store::write_json(&dir.file(files::LOAD), &result)?;
    session.discard(prepared);
    Ok((dir, result))
}
