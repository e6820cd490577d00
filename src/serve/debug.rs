//! What `profkit serve` answers beyond [`crate::service`]'s routes:
//! `/debug/profkit/sql` as the SQL report of its own database over a
//! window (per operation, with query plans), and the pool gauges of
//! `/metrics`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::api::ApiError;
use super::defaults;
use super::state::{AppState, Busy, Shared, SqlWindow};
use crate::analyze::sql::{self, SqlReport};
use crate::measure::{BenchResult, CpuUsage, LatencySummary, MemoryUsage, RunPlan, Stop, Warmup};
use crate::profile::sql::Planner;
use crate::units::{Nanos, OpsPerSec};

/// Sets the pool gauges (read at each `/metrics` scrape).
pub(super) fn pool_gauges(state: &AppState) {
    let pool = state.db.pool_stats();
    metrics::gauge!("profkit_pool_size").set(f64::from(pool.size));
    metrics::counter!("profkit_pool_acquires_total").absolute(pool.acquires);
    // Cumulative, fractional: a gauge that only grows.
    metrics::gauge!("profkit_pool_wait_seconds").set(pool.total_wait.as_secs_f64());
    metrics::gauge!("profkit_pool_wait_max_seconds").set(pool.max_wait.as_secs_f64());
    metrics::counter!("profkit_pool_timeouts_total").absolute(pool.timeouts);
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
