//! The endpoints other tools read: `/metrics` (Prometheus text),
//! `/debug/pprof/profile` and `/debug/pprof/heap` (Go's `net/http/pprof`
//! paths) and `/debug/profkit/sql` (the SQL report over a window).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

use super::api::ApiError;
use super::defaults;
use super::state::{AppState, Busy, Shared, SqlWindow};
use crate::analyze::sql::{self, SqlReport};
use crate::measure::{BenchResult, CpuUsage, LatencySummary, MemoryUsage, RunPlan, Stop, Warmup};
use crate::profile::cpu::{self, CpuOptions};
use crate::profile::sampled;
use crate::profile::sql::Planner;
use crate::render::pprof::{heap_to_pprof_gz, to_pprof_gz};
use crate::units::{Nanos, OpsPerSec};

/// Latency buckets in seconds: 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder once (every server of the
/// process shares it: `metrics` has one global recorder).
pub(super) fn install_recorder() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("profkit_http_request_duration_seconds".into()),
            BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle).is_ok() {
        metrics::set_global_recorder(recorder)
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    }
    Ok(())
}

/// Drains the exporter's histograms now and then, so they stay small
/// between scrapes.
pub(super) async fn upkeep() {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Some(h) = HANDLE.get() {
            h.run_upkeep();
        }
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Shared>) -> Response {
    let pool = state.db.pool_stats();
    metrics::gauge!("profkit_pool_size").set(f64::from(pool.size));
    metrics::counter!("profkit_pool_acquires_total").absolute(pool.acquires);
    // Cumulative, fractional: a gauge that only grows.
    metrics::gauge!("profkit_pool_wait_seconds").set(pool.total_wait.as_secs_f64());
    metrics::gauge!("profkit_pool_wait_max_seconds").set(pool.max_wait.as_secs_f64());
    metrics::counter!("profkit_pool_timeouts_total").absolute(pool.timeouts);
    let text = HANDLE.get().map(|h| h.render()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct Window {
    seconds: Option<u64>,
}

impl Window {
    fn duration(&self) -> Result<Duration, ApiError> {
        match self.seconds.unwrap_or(defaults::WINDOW_SECONDS) {
            0 => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "seconds must be at least 1".into(),
            )),
            n if n > defaults::MAX_WINDOW_SECONDS => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("seconds={n} is more than {}", defaults::MAX_WINDOW_SECONDS),
            )),
            n => Ok(Duration::from_secs(n)),
        }
    }
}

/// `GET /debug/pprof/profile?seconds=N`: a gzipped pprof CPU profile of
/// the whole server over N seconds. One at a time: a second request while
/// one runs gets 409.
pub(super) async fn pprof_profile(
    State(state): State<Shared>,
    Query(w): Query<Window>,
) -> Result<Response, ApiError> {
    let length = w.duration()?;
    let busy_state = state.clone();
    let Some(_busy) = Busy::take(&busy_state.profiling) else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "a CPU profile is already being taken; try again when it ends".into(),
        ));
    };
    let bytes = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let ((), profile) = cpu::profile(&CpuOptions::default(), || std::thread::sleep(length))?;
        Ok(to_pprof_gz(&profile)?)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(pprof_download(bytes, "profile.pb.gz"))
}

/// A gzipped pprof profile as a download named `name`.
fn pprof_download(bytes: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /debug/pprof/heap`: the sampled heap profile of the server since it
/// started — `inuse_space` (the default view), `inuse_objects`,
/// `alloc_space` and `alloc_objects`, estimates scaled up from one sample
/// per [`crate::alloc::sampler::interval`] bytes on average, as Go's
/// runtime reports them.
pub(super) async fn pprof_heap() -> Result<Response, ApiError> {
    let bytes = tokio::task::spawn_blocking(|| -> anyhow::Result<Option<Vec<u8>>> {
        let Some(heap) = sampled::snapshot() else {
            return Ok(None);
        };
        let file = sampled::to_dhat(&heap);
        Ok(Some(heap_to_pprof_gz(&file, heap.interval)?))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    match bytes {
        Some(bytes) => Ok(pprof_download(bytes, "heap.pb.gz")),
        None => Err(ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "heap sampling is off in this process: `profkit serve` samples by default (not with --no-heap-profile); a server in your own binary needs profkit::main! and alloc::enable_sampled_heap_profiling before it starts".into(),
        )),
    }
}

/// `GET /debug/profkit/sql?seconds=N`: the SQL report (statements, plans,
/// N+1 candidates) of the requests served over the next N seconds.
pub(super) async fn sql_window(
    State(state): State<Shared>,
    Query(w): Query<Window>,
) -> Result<Json<SqlReport>, ApiError> {
    let length = w.duration()?;
    let busy_state = state.clone();
    let Some(_busy) = Busy::take(&busy_state.sql_busy) else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "a SQL window is already open; try again when it ends".into(),
        ));
    };
    state.open_window();
    tokio::time::sleep(length).await;
    let window = state.close_window().ok_or_else(|| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the SQL window was lost".into(),
        )
    })?;
    let report = tokio::task::spawn_blocking(move || window_report(&state, window))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(report))
}

/// The SQL report of a closed window: its statements as if they were one
/// run of a workload named `serve` (per-operation figures are per request
/// of every kind, so N+1 counts are diluted by the other routes).
pub(super) fn window_report(state: &AppState, window: SqlWindow) -> SqlReport {
    let elapsed = window.started.elapsed();
    let ops = window.latency.len();
    let bench = BenchResult {
        schema_version: crate::measure::SCHEMA_VERSION,
        workload: "serve".to_string(),
        plan: RunPlan {
            rows: state.db.shape().rows,
            threads: 1,
            stop: Stop::Duration(elapsed.into()),
            warmup: Warmup::Ops(0),
            seed: defaults::SEED,
        },
        ops,
        errors: 0,
        error_rate: 0.0,
        first_error: None,
        elapsed: Nanos::from(elapsed),
        throughput: OpsPerSec(ops as f64 / elapsed.as_secs_f64().max(1e-9)),
        latency: LatencySummary::from_histogram(&window.latency),
        cpu: CpuUsage::default(),
        memory: MemoryUsage::default(),
        pool: Some(state.db.pool_stats()),
        sql: None,
        metrics: Default::default(),
        breakdown: None,
        instrumented: true,
        interrupted: false,
    };
    let planner = Planner::open(state.db.path());
    sql::analyze(&bench, &window.tallies, &|s: &str| planner.plan(s))
}
