//! Measured runs: drives a set-up [`Workload`] from T threads for a number
//! of operations or a duration, after a warm-up, and records every
//! operation's latency in an HDR histogram together with CPU time, memory,
//! pool and SQL statistics.

pub mod breakdown;
#[cfg(test)]
pub(crate) mod fixture;
pub mod open_loop;
mod plan;
mod progress;
pub mod sys;

pub use plan::{defaults, PlanError, RunOptions, RunPlan, Stop, Warmup};
pub use progress::Progress;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::db::pool::PoolStats;
use crate::db::{trace, waits};
use crate::units::{Bytes, Nanos, OpsPerSec};
use crate::workload::{Metrics, WorkerCtx, Workload};
use breakdown::LatencyBreakdown;

/// Version of the JSON written for a [`BenchResult`]; bumped on any
/// incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency statistics of the measured operations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Mean.
    pub mean: Nanos,
    /// Standard deviation.
    pub stdev: Nanos,
    /// Fastest.
    pub min: Nanos,
    /// Median.
    pub p50: Nanos,
    /// 90th percentile.
    pub p90: Nanos,
    /// 95th percentile.
    pub p95: Nanos,
    /// 99th percentile.
    pub p99: Nanos,
    /// 99.9th percentile.
    pub p999: Nanos,
    /// Slowest.
    pub max: Nanos,
    /// The histogram itself: (latency upper bound in ns, count) per
    /// non-empty bucket, 3 significant digits. Comparisons resample it.
    pub histogram: Vec<(u64, u64)>,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |p: f64| Nanos(h.value_at_quantile(p));
        LatencySummary {
            mean: Nanos(h.mean().round() as u64),
            stdev: Nanos(h.stdev().round() as u64),
            min: Nanos(h.min()),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: Nanos(h.max()),
            histogram: h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }
}

/// CPU time the process used during the measured phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// User time.
    pub user: Nanos,
    /// System time.
    pub system: Nanos,
    /// (user + system) ÷ wall time: 1.0 is one core busy.
    pub cores_busy: f64,
    /// `cores_busy` as a percentage of all the machine's cores.
    pub percent_of_machine: f64,
}

impl CpuUsage {
    /// The CPU used between two readings `wall_secs` apart.
    pub fn between(before: sys::CpuTimes, after: sys::CpuTimes, wall_secs: f64) -> CpuUsage {
        let total = after.total().0.saturating_sub(before.total().0);
        let cores_busy = total as f64 / 1e9 / wall_secs.max(1e-9);
        CpuUsage {
            user: Nanos(after.user.0.saturating_sub(before.user.0)),
            system: Nanos(after.system.0.saturating_sub(before.system.0)),
            cores_busy,
            percent_of_machine: 100.0 * cores_busy / sys::cores() as f64,
        }
    }
}

/// Memory of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryUsage {
    /// Peak resident set size over the measured phase (where the kernel
    /// allows resetting the peak; otherwise the process's peak so far).
    pub peak_rss: Bytes,
    /// Resident set size when the measured phase ended.
    pub rss_end: Bytes,
    /// Change of resident set size over the measured phase.
    pub rss_growth: i64,
}

impl MemoryUsage {
    /// The peak since the last reset, the RSS now, and its growth since `rss_before`.
    pub fn since(rss_before: Bytes) -> MemoryUsage {
        let rss_end = sys::current_rss();
        MemoryUsage {
            peak_rss: sys::peak_rss(),
            rss_end,
            rss_growth: rss_end.0 as i64 - rss_before.0 as i64,
        }
    }
}

/// SQL statement figures of the measured phase (when the trace hook was on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlSummary {
    /// Statements SQLite ran.
    pub statements: u64,
    /// Statements per operation.
    pub per_op: f64,
    /// Time SQLite reported for them.
    pub db_time: Nanos,
    /// Share of the summed operation latency spent inside SQLite.
    pub db_time_share: f64,
}

/// The result of one measured run: what `bench.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Workload name.
    pub workload: String,
    /// Parameters it ran with.
    pub plan: RunPlan,
    /// Measured operations (errors included).
    pub ops: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// `errors ÷ ops`.
    pub error_rate: f64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// Wall time of the measured phase.
    pub elapsed: Nanos,
    /// Operations per second.
    pub throughput: OpsPerSec,
    /// Latency per operation.
    pub latency: LatencySummary,
    /// CPU use.
    pub cpu: CpuUsage,
    /// Memory use.
    pub memory: MemoryUsage,
    /// Connection pool statistics, for database workloads.
    pub pool: Option<PoolStats>,
    /// SQL statement figures, when the trace hook was on.
    pub sql: Option<SqlSummary>,
    /// Where the latency went: pool, write lock, SQLite, CPU wait, rest
    /// (absent in files written before it was measured).
    #[serde(default)]
    pub breakdown: Option<LatencyBreakdown>,
    /// Whether the run was measured with an instrument that costs time
    /// (SQLite's trace hook): its latencies include that cost.
    #[serde(default)]
    pub instrumented: bool,
    /// The workload's own figures (rows written, cache size, …).
    pub metrics: Metrics,
    /// Cut short by Ctrl-C: the figures cover only [`BenchResult::elapsed`]
    /// of the plan. Absent (false) in complete runs and older files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every running phase to stop after its current operations (Ctrl-C):
/// runs then end normally, so their results and profiles are still written.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
    // A database being populated stops too.
    crate::db::request_stop();
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// What one worker thread recorded.
struct WorkerTally {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    sql: trace::ThreadSqlCounts,
    statements: trace::Tallies,
    /// Summed latency of its operations.
    latency_sum: u64,
    /// The database's waits during the phase.
    waits: waits::ThreadWaits,
    /// Run-queue delay during the phase, when readable.
    run_queue: Option<u64>,
    /// How an async workload's futures were polled.
    polls: crate::workload::PollTally,
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 1 hour at 3 significant digits; longer operations saturate.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs one phase: T threads perform operations until `stop` (an async
/// workload: [`Workload::concurrency`] threads, each waiting for one
/// operation on the workload's runtime, which has T workers).
fn run_phase(
    workload: &dyn Workload,
    threads: usize,
    stop: Stop,
    seed: u64,
    progress: &Progress,
) -> anyhow::Result<(Vec<WorkerTally>, Duration)> {
    let claimed = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = match stop {
        Stop::Duration(d) => Some(start + Duration::from(d)),
        Stop::Ops(_) => None,
    };
    let finished = AtomicBool::new(false);
    let threads = workload.concurrency().unwrap_or(threads);
    let tallies = std::thread::scope(|scope| -> anyhow::Result<Vec<WorkerTally>> {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let claimed = &claimed;
            let done = &done;
            let handle = std::thread::Builder::new()
                .name(format!("pk-worker-{t}"))
                .spawn_scoped(scope, move || {
                    let mut ctx = WorkerCtx::new(t, seed);
                    let mut tally = WorkerTally {
                        histogram: new_histogram(),
                        errors: 0,
                        first_error: None,
                        sql: trace::ThreadSqlCounts::default(),
                        statements: trace::Tallies::new(),
                        latency_sum: 0,
                        waits: waits::ThreadWaits::default(),
                        run_queue: None,
                        polls: Default::default(),
                    };
                    trace::take_thread_tallies();
                    trace::set_operation("");
                    let sql_before = trace::thread_counts();
                    let waits_before = waits::thread_waits();
                    let runq_before = sys::thread_run_queue_delay();
                    let mut now = Instant::now();
                    loop {
                        if interrupted() {
                            break;
                        }
                        match (stop, deadline) {
                            (Stop::Ops(n), _) => {
                                if claimed.fetch_add(1, Ordering::Relaxed) >= n {
                                    break;
                                }
                            }
                            (_, Some(deadline)) => {
                                if now >= deadline {
                                    break;
                                }
                            }
                            _ => break,
                        }
                        let began = now;
                        let result = workload.operation(&mut ctx);
                        now = Instant::now();
                        let nanos = now.duration_since(began).as_nanos() as u64;
                        tally.histogram.saturating_record(nanos.max(1));
                        tally.latency_sum += nanos;
                        if let Err(e) = result {
                            tally.errors += 1;
                            if tally.first_error.is_none() {
                                tally.first_error = Some(format!("{e:#}"));
                            }
                        }
                        ctx.op += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    tally.waits = waits::thread_waits().since(&waits_before);
                    tally.run_queue = runq_before
                        .zip(sys::thread_run_queue_delay())
                        .map(|(b, a)| a.0.saturating_sub(b.0));
                    let after = trace::thread_counts();
                    tally.sql = trace::ThreadSqlCounts {
                        statements: after.statements - sql_before.statements,
                        nanos: after.nanos - sql_before.nanos,
                        nested: after.nested - sql_before.nested,
                    };
                    tally.statements = trace::take_thread_tallies();
                    tally.polls = ctx.polls;
                    tally
                })?;
            handles.push(handle);
        }
        progress.watch(scope, stop, start, &done, &finished);
        let tallies = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a worker thread panicked"))
            })
            .collect();
        finished.store(true, Ordering::Relaxed);
        tallies
    })?;
    Ok((tallies, start.elapsed()))
}

/// Measures a workload that has been set up: a warm-up phase, then the
/// measured phase, then [`Workload::finish`]. Errors of single operations
/// are counted, not fatal; an error from `finish` (a broken invariant) is.
pub fn measure(
    workload: &dyn Workload,
    plan: &RunPlan,
    progress: &Progress,
) -> anyhow::Result<BenchResult> {
    measure_detailed(workload, plan, progress).map(|(bench, _)| bench)
}

/// [`measure`], also returning the per-statement figures of the measured
/// phase (empty unless the database's trace hook is on).
pub fn measure_detailed(
    workload: &dyn Workload,
    plan: &RunPlan,
    progress: &Progress,
) -> anyhow::Result<(BenchResult, trace::Tallies)> {
    let quiet = Progress::default();
    if let Some(warmup) = plan.warmup_stop() {
        run_phase(workload, plan.threads, warmup, plan.seed ^ 0xAAAA, &quiet)?;
    }
    let pool_before = workload.database().map(|db| db.pool_stats());
    sys::reset_peak_rss();
    let cpu_before = sys::cpu_times();
    let rss_before = sys::current_rss();
    let (tallies, elapsed) = run_phase(workload, plan.threads, plan.stop, plan.seed, progress)?;
    let cpu_after = sys::cpu_times();
    let memory = MemoryUsage::since(rss_before);
    let pool = workload
        .database()
        .zip(pool_before)
        .map(|(db, before)| db.pool_stats().since(&before));
    let metrics = workload.finish()?;

    let mut histogram = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut sql = trace::ThreadSqlCounts::default();
    let mut statements = trace::Tallies::new();
    let (mut latency_sum, mut waited) = (0u64, waits::ThreadWaits::default());
    let mut run_queue = Some(0u64);
    let mut polls = crate::workload::PollTally::default();
    for t in tallies {
        polls.add(&t.polls);
        latency_sum += t.latency_sum;
        waited.pool_wait += t.waits.pool_wait;
        waited.lock_wait += t.waits.lock_wait;
        waited.held += t.waits.held;
        run_queue = run_queue.zip(t.run_queue).map(|(a, b)| a + b);
        trace::merge_tallies(&mut statements, &t.statements);
        histogram
            .add(&t.histogram)
            .expect("histograms of one precision merge");
        errors += t.errors;
        first_error = first_error.or(t.first_error);
        sql.statements += t.sql.statements;
        sql.nanos += t.sql.nanos;
    }
    let ops = histogram.len();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let sql_on = workload.database().is_some_and(|db| db.config().sql_trace);
    let latency = LatencySummary::from_histogram(&histogram);
    let summed_latency = latency.mean.0 as f64 * ops as f64;
    let mut breakdown = LatencyBreakdown::with_polls(
        ops,
        latency_sum,
        waited,
        run_queue,
        (polls.ops > 0).then_some(polls),
    );
    if let Some(p) = breakdown.polled.as_mut() {
        p.in_flight = workload.concurrency().unwrap_or(plan.threads);
    }
    let bench = BenchResult {
        schema_version: SCHEMA_VERSION,
        workload: workload.name().to_string(),
        plan: *plan,
        ops,
        errors,
        error_rate: errors as f64 / ops.max(1) as f64,
        first_error,
        elapsed: elapsed.into(),
        throughput: OpsPerSec(ops as f64 / secs),
        latency,
        cpu: CpuUsage::between(cpu_before, cpu_after, secs),
        memory,
        pool,
        sql: sql_on.then(|| SqlSummary {
            statements: sql.statements,
            per_op: sql.statements as f64 / ops.max(1) as f64,
            db_time: Nanos(sql.nanos),
            db_time_share: if summed_latency > 0.0 {
                (sql.nanos as f64 / summed_latency).min(1.0)
            } else {
                0.0
            },
        }),
        breakdown: Some(breakdown),
        instrumented: sql_on,
        metrics,
        interrupted: interrupted(),
    };
    Ok((bench, statements))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{by_name, WorkloadDefaults};

    fn plan(ops: u64, threads: usize) -> RunPlan {
        RunPlan::resolve(
            &RunOptions {
                threads: Some(threads),
                stop: Some(Stop::Ops(ops)),
                warmup: Some(Warmup::Ops(10)),
                ..Default::default()
            },
            WorkloadDefaults::default(),
        )
        .unwrap()
    }

    #[test]
    fn counts_every_operation_once_over_threads() {
        let w = by_name("noop").unwrap();
        for threads in [1, 3] {
            let r = measure(w.as_ref(), &plan(5000, threads), &Progress::default()).unwrap();
            assert_eq!(r.ops, 5000);
            assert_eq!(r.errors, 0);
            let total: u64 = r.latency.histogram.iter().map(|(_, c)| c).sum();
            assert_eq!(total, 5000);
            assert!(r.latency.p50 <= r.latency.p95 && r.latency.p95 <= r.latency.p99);
            assert!(r.latency.p99 <= r.latency.max);
        }
    }

    #[test]
    fn duration_runs_stop_on_time() {
        let w = by_name("hot-loop").unwrap();
        let mut p = plan(1, 2);
        p.stop = Stop::Duration(Nanos(200_000_000));
        let start = Instant::now();
        let r = measure(w.as_ref(), &p, &Progress::default()).unwrap();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(r.ops > 0);
        assert!(r.elapsed.0 >= 200_000_000);
    }

    #[test]
    fn bad_plans_are_rejected() {
        let d = WorkloadDefaults::default();
        let with = |o: RunOptions| RunPlan::resolve(&o, d);
        assert_eq!(
            with(RunOptions {
                threads: Some(0),
                ..Default::default()
            }),
            Err(PlanError::ZeroThreads)
        );
        assert_eq!(
            with(RunOptions {
                stop: Some(Stop::Ops(0)),
                ..Default::default()
            }),
            Err(PlanError::EmptyRun)
        );
        assert!(with(RunOptions {
            rows: Some(u64::MAX),
            ..Default::default()
        })
        .is_err());
        assert!(with(RunOptions {
            threads: Some(1_000_000),
            ..Default::default()
        })
        .is_err());
    }
}
