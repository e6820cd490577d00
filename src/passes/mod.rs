//! The one place that runs things. Each pass sets a workload up through a
//! [`Session`], runs it (under a profiler when it is a profiling pass),
//! hands the data to [`crate::analyze`], renders it with [`crate::render`]
//! and keeps it with [`crate::store`]:
//!
//! - [`session`]: sessions, preparing and measuring; the bench pass
//!   ([`Session::run`]);
//! - [`load`]: open loop at a fixed rate;
//! - [`cpu`], [`heap`] (in a child process for `profile`), [`sql`],
//!   [`leaks`]: the profiling passes;
//! - [`sweep`], [`stress`]: many runs of one workload;
//! - [`compare`]: comparisons and their differential flamegraphs;
//! - [`profile`]: the main job, every pass over every workload, and its index.

pub mod advise;
#[cfg(feature = "service")]
pub mod attach;
#[cfg(feature = "service")]
mod attach_heap;
#[cfg(feature = "service")]
mod attach_locust;
#[cfg(feature = "service")]
mod attach_out;
pub mod bisect;
pub mod compare;
pub mod cpu;
pub mod heap;
pub mod leaks;
pub mod load;
#[cfg(feature = "service")]
pub mod load_locust;
#[cfg(feature = "service")]
pub mod locust;
#[cfg(feature = "service")]
pub mod locust_load;
pub mod noise;
pub mod probe;
pub mod profile;
pub mod session;
pub mod sql;
pub mod stress;
pub mod sweep;
pub mod writes;

use std::path::Path;

pub use probe::{Probe, Probes, Watch};
pub use session::{Prepared, RunOutcome, Session, SessionConfig};

use crate::analyze::findings::{self, Findings};
use crate::analyze::observed::{self, Observed};
use crate::analyze::waits;
use crate::measure::BenchResult;
use crate::store::{self, files};

/// Ranked findings from every analysis a run folder holds (`sql.json`,
/// `cpu.json`, `leaks.json`, the latency breakdown of `bench.json`,
/// whichever are there, joined with a probe's `observed.json`), written to
/// `findings.json`.
pub fn rank_findings(dir: &Path, workload: &str) -> anyhow::Result<Findings> {
    let sql = store::read_opt_json(&dir.join(files::SQL_JSON), "SQL report")?;
    let cpu = store::read_opt_json(&dir.join(files::CPU_JSON), "CPU report")?;
    let leaks = store::read_opt_json(&dir.join(files::LEAKS), "leak report")?;
    let bench: Option<BenchResult> = store::read_opt_json(&dir.join(files::BENCH), "bench result")?;
    let observed: Option<Observed> =
        store::read_opt_json(&dir.join(files::OBSERVED), "probe observations")?;
    let mut ranked = findings::rank(workload, sql.as_ref(), cpu.as_ref(), leaks.as_ref());
    let mean = bench.as_ref().map(|b| b.latency.mean);
    let blocking = bench
        .as_ref()
        .and_then(|b| crate::analyze::blocking::finding(b, cpu.as_ref()));
    if let Some(waiting) = bench.and_then(|b| waits::finding(&b, crate::measure::sys::cores())) {
        ranked.findings.push(waiting);
        ranked = Findings::new(workload, ranked.findings);
    }
    if let Some(blocking) = blocking {
        ranked.findings.push(blocking);
        ranked = Findings::new(workload, ranked.findings);
    }
    if let Some(observed) = &observed {
        ranked = observed::join(ranked, observed);
    }
    let advice = store::read_opt_json(&dir.join(files::ADVICE), "advice file")?;
    let predict = |f: &findings::Finding| {
        crate::analyze::predict::for_finding(f, sql.as_ref(), cpu.as_ref(), leaks.as_ref(), mean)
    };
    ranked.advice =
        crate::analyze::advice_plan::plan(workload, &ranked.findings, advice.as_ref(), &predict);
    store::write_json(&dir.join(files::FINDINGS), &ranked)?;
    Ok(ranked)
}
