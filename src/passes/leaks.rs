//! Leak passes: the growth check (the workload at N, 2N, 4N operations
//! under the heap profiler, fitted by [`crate::analyze::leaks`]) and the
//! RSS soak run. `profkit leaks` runs one into a new run folder ([`run`]).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::heap::Running;
use super::session::Session;
use crate::alloc::sampler::TABLE;
use crate::analyze::leaks::{self, defaults, GrowthPoint, LeakOptions, LeakReport, SoakReport};
use crate::analyze::rundata::Pass;
use crate::measure::{sys, PlanError, RunOptions, RunPlan, Stop, Warmup};
use crate::profile::dhat::DhatFile;
use crate::profile::sampled::{self, SampledProfiler};
use crate::store::{self, files, RunDir};
use crate::units::Nanos;
use crate::workload::{Make, Workload};

/// SQLite's default page cache of one connection (`PRAGMA cache_size =
/// -2000`, in KiB).
const SQLITE_DEFAULT_CACHE_BYTES: u64 = 2000 * 1024;

/// Runs the growth check: the workload made by `make` at N, 2N, 4N
/// operations. dhat files go to `scratch` (kept for inspection).
pub fn growth(
    session: &mut Session,
    make: Make<'_>,
    options: &RunOptions,
    leak: LeakOptions,
    scratch: &Path,
) -> anyhow::Result<LeakReport> {
    let mut points = Vec::new();
    let mut name = String::new();
    for (i, k) in defaults::POINTS.iter().enumerate() {
        let ops = leak.ops * k;
        let mut o = options.clone();
        o.stop = Some(Stop::Ops(ops));
        o.warmup = Some(Warmup::Ops(leak.warmup));
        let prepared = session.prepare(make(), &o, false)?;
        name = prepared.workload.name().to_string();
        // A workload on its own connections (sqlx, say) has at least one
        // with SQLite's default page cache: its warm-up is no leak.
        let cache_limit = prepared
            .workload
            .database()
            .map(|db| db.config().cache_kib as u64 * 1024 * db.config().pool_size as u64)
            .unwrap_or(SQLITE_DEFAULT_CACHE_BYTES);
        let path = scratch.join(format!("leak-{}.json", i + 1));
        let profiler = Running::start(&path, None)?;
        // The result goes before the profiler stops: only the workload's
        // own memory should be live at the end.
        let done = session.measure(&prepared).map(|b| b.ops);
        let file = match profiler.finish(&path)? {
            Some(file) => file,
            None => DhatFile::read(&path)?,
        };
        session.discard(prepared);
        let done = done?;
        points.push(GrowthPoint {
            ops: done,
            file,
            cache_limit,
        });
    }
    Ok(leaks::growth(&name, leak.warmup, &points))
}

/// Runs the workload made by `make` for `duration`, sampling RSS
/// [`defaults::SOAK_SAMPLES`] times.
pub fn soak(
    session: &mut Session,
    make: Make<'_>,
    options: &RunOptions,
    duration: Duration,
) -> anyhow::Result<SoakReport> {
    let chunk = duration / defaults::SOAK_SAMPLES;
    let mut o = options.clone();
    o.stop = Some(Stop::Duration(Nanos::from(
        chunk.max(Duration::from_millis(1)),
    )));
    o.warmup = Some(Warmup::Ops(0));
    let prepared = session.prepare(make(), &o, false)?;
    // With sampled heap profiling on, live bytes per site too.
    let profiler = if crate::alloc::sampled_heap_profiling_enabled() {
        Some(SampledProfiler::start()?)
    } else {
        None
    };
    let rss_start = sys::current_rss();
    let start = Instant::now();
    let mut ops = 0;
    let mut samples = vec![(0, 0.0, rss_start.0)];
    let mut live = vec![TABLE.inuse_by_site()];
    let result = (|| -> anyhow::Result<()> {
        // Ctrl-C ends the soak after the chunk it interrupted, with the
        // samples taken so far (the run folder says it was cut short).
        while start.elapsed() < duration && !crate::measure::interrupted() {
            ops += session.measure(&prepared)?.ops;
            samples.push((ops, start.elapsed().as_secs_f64(), sys::current_rss().0));
            if profiler.is_some() {
                live.push(TABLE.inuse_by_site());
            }
        }
        Ok(())
    })();
    let heap = profiler.map(SampledProfiler::finish);
    session.discard(prepared);
    result?;
    let mut report = leaks::soak_report(Nanos::from(start.elapsed()), samples);
    if let Some(heap) = heap {
        let (file, site_pp) = sampled::to_dhat_mapped(&heap);
        // Per program point, the estimated live bytes at every sample.
        let mut by_pp = vec![vec![0.0; live.len()]; file.pps.len()];
        for (i, point) in live.iter().enumerate() {
            for (site, &bytes) in point.iter().enumerate() {
                by_pp[site_pp[site]][i] += bytes;
            }
        }
        let ops: Vec<u64> = report.samples.iter().map(|s| s.0).collect();
        report.growing_sites = leaks::soak_sites(&file, &ops, &by_pp);
        report.sample_interval = Some(heap.interval);
        report.verdict = match report.growing_sites.first() {
            Some(g) => format!(
                "leak: {:.0} B/op at {} (sampled live bytes); {}",
                g.slope_bytes_per_op, g.site, report.verdict
            ),
            None => format!("no growing site (sampled live bytes); {}", report.verdict),
        };
    }
    Ok(report)
}

/// What `profkit leaks` checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LeakCheck {
    /// Live heap growth over N, 2N, 4N operations.
    Growth(LeakOptions),
    /// RSS over a run this long.
    Soak(Duration),
}

/// `profkit leaks`: runs the check on the workload made by `make` and
/// writes `leaks.json` and `manifest.json` into a new run folder.
pub fn run(
    session: &mut Session,
    make: Make<'_>,
    options: &RunOptions,
    check: LeakCheck,
) -> anyhow::Result<(RunDir, LeakReport)> {
    let started = SystemTime::now();
    let probe: Box<dyn Workload> = make();
    let (name, description, defaults) = (
        probe.name().to_string(),
        probe.description().to_string(),
        probe.defaults(),
    );
    drop(probe);
    let plan = RunPlan::resolve(options, defaults)?;
    let mut options = options.clone();
    options.stop = None;
    let (report, pass) = match check {
        LeakCheck::Soak(d) => {
            anyhow::ensure!(!d.is_zero(), PlanError::EmptyRun);
            let soak = soak(session, make, &options, d)?;
            let mut r = LeakReport::skipped(&name);
            r.verdict = soak.verdict.clone();
            r.soak = Some(soak);
            (r, Pass::Soak)
        }
        LeakCheck::Growth(leak) => {
            options.warmup = None;
            let scratch = session.temp_dir().join("leaks");
            (
                growth(session, make, &options, leak, &scratch)?,
                Pass::Leaks,
            )
        }
    };
    let dir = session.run_dir(&name, started)?;
    let manifest = store::manifest(&dir, &name, &description, plan, &[pass], started);
    store::write_json(&dir.file(files::MANIFEST), &manifest)?;
    store::write_json(&dir.file(files::LEAKS), &report)?;
    Ok((dir, report))
}
