//! The routes: `/debug/pprof/profile`, `/debug/pprof/heap`,
//! `/debug/profkit/sql`, `/debug/profkit/endpoints`,
//! `/debug/profkit/flamegraph` and `/metrics`, behind [`super::Access`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, RawQuery};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::access::{self, Access};
use super::collect;
use super::cpu::{self, LabelledProfile};
use super::defaults;
use super::endpoints::{self, EndpointsReport};
use crate::alloc::sampler::{SampledHeap, SiteStats};
use crate::profile::sampled;
use crate::render::pprof::{heap_to_pprof_gz, to_pprof_labelled_gz};
use crate::units::Nanos;

/// An error as the routes answer it: a status and
/// `{"error": "…", "parameter": "…"}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One line: what is wrong and what to do.
    pub error: String,
    /// The query parameter at fault, if one is.
    pub parameter: Option<&'static str>,
}

impl ApiError {
    fn bad(parameter: &'static str, error: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error,
            parameter: Some(parameter),
        }
    }

    fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: error.to_string(),
            parameter: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            parameter: Option<&'static str>,
        }
        (
            self.status,
            Json(Body {
                error: self.error,
                parameter: self.parameter,
            }),
        )
            .into_response()
    }
}

/// `seconds` of a query string: default [`defaults::WINDOW_SECONDS`],
/// 1 to [`defaults::MAX_WINDOW_SECONDS`].
pub fn window(query: Option<&str>) -> Result<Duration, ApiError> {
    let params: HashMap<String, String> = match query {
        Some(q) => serde_urlencoded_pairs(q),
        None => HashMap::new(),
    };
    let Some(raw) = params.get("seconds") else {
        return Ok(Duration::from_secs(defaults::WINDOW_SECONDS));
    };
    let n: u64 = raw.trim().parse().map_err(|_| {
        ApiError::bad(
            "seconds",
            format!(
                "seconds={raw:?} is not a whole number of seconds (1 to {})",
                defaults::MAX_WINDOW_SECONDS
            ),
        )
    })?;
    match n {
        0 => Err(ApiError::bad(
            "seconds",
            "seconds=0: a window must last at least 1 second".into(),
        )),
        n if n > defaults::MAX_WINDOW_SECONDS => Err(ApiError::bad(
            "seconds",
            format!(
                "seconds={n} is more than the maximum, {}",
                defaults::MAX_WINDOW_SECONDS
            ),
        )),
        n => Ok(Duration::from_secs(n)),
    }
}

/// `a=1&b=x%20y` as pairs (percent-decoded; the last of a repeated key).
fn serde_urlencoded_pairs(q: &str) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .unwrap_or_else(|_| "/".parse().unwrap()),
    )
    .map(|Query(m)| m)
    .unwrap_or_default()
}

/// One CPU profile at a time in the process.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// Holds [`PROFILING`] while alive (also when the request is cancelled).
pub(super) struct ProfileSlot(());

impl ProfileSlot {
    /// The slot, or `None` when a profile is being taken.
    pub(super) fn take() -> Option<ProfileSlot> {
        PROFILING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| ProfileSlot(()))
    }
}

impl Drop for ProfileSlot {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::Release);
    }
}

fn busy() -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        error: "a CPU profile is already being taken in this process; try again when it ends"
            .into(),
        parameter: None,
    }
}

/// A labelled CPU profile over `length`, taken on a blocking thread (the
/// runtime keeps serving). Waits with a sleep that a runtime shutting down
/// ends early: the samples taken so far are kept.
async fn labelled_profile(length: Duration) -> Result<LabelledProfile, ApiError> {
    let Some(slot) = ProfileSlot::take() else {
        return Err(busy());
    };
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        cpu::profile_labelled(|| std::thread::sleep(length)).map(|(_, p)| p)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// `GET /debug/pprof/profile?seconds=N`.
async fn pprof_profile(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let length = window(q.as_deref())?;
    let p = labelled_profile(length).await?;
    let bytes = to_pprof_labelled_gz(&p.profile, &p.labels).map_err(ApiError::internal)?;
    Ok(download(bytes, "profile.pb.gz", "application/octet-stream"))
}

/// `GET /debug/profkit/flamegraph?seconds=N&endpoint=E`: one endpoint's
/// CPU flamegraph (SVG) over the window.
async fn flamegraph(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let length = window(q.as_deref())?;
    let params = serde_urlencoded_pairs(q.as_deref().unwrap_or(""));
    let Some(endpoint) = params.get("endpoint").cloned() else {
        return Err(ApiError::bad(
            "endpoint",
            "endpoint is missing: name one as /debug/profkit/endpoints lists it, e.g. endpoint=GET%20/orders/{id}".into(),
        ));
    };
    let p = labelled_profile(length).await?;
    let only = p.only_endpoint(&endpoint);
    if only.samples == 0 {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error: format!(
                "no CPU sample of endpoint {endpoint:?} in {} s: was it loaded, and is the layer installed?",
                length.as_secs()
            ),
            parameter: Some("endpoint"),
        });
    }
    let folded = crate::render::folded::to_folded(&only);
    let options = crate::render::flamegraph::SvgOptions {
        title: format!("CPU: {endpoint}"),
        subtitle: Some(format!(
            "{} samples over {} s",
            only.samples,
            length.as_secs()
        )),
        count_name: "samples".into(),
        ..Default::default()
    };
    let svg =
        crate::render::flamegraph::render_folded(&folded, &options).map_err(ApiError::internal)?;
    Ok(download(svg, "flamegraph.svg", "image/svg+xml"))
}

/// `GET /debug/pprof/heap[?seconds=N]`: the sampled heap since start, or
/// (with `seconds`) what was allocated and is still live from a window.
async fn pprof_heap(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let delta = match q.as_deref() {
        Some(q) if serde_urlencoded_pairs(q).contains_key("seconds") => Some(window(Some(q))?),
        _ => None,
    };
    if let Some(length) = delta {
        if sampled::snapshot().is_none() {
            return Err(heap_off());
        }
        let before = tokio::task::spawn_blocking(sampled::snapshot)
            .await
            .map_err(ApiError::internal)?;
        tokio::time::sleep(length).await;
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
            let after = sampled::snapshot().ok_or_else(heap_off)?;
            let delta = match before {
                Some(before) => heap_delta(&before, after),
                None => after,
            };
            heap_to_pprof_gz(&endpoint_dhat(&delta), delta.interval).map_err(ApiError::internal)
        })
        .await
        .map_err(ApiError::internal)??;
        return Ok(download(bytes, "heap.pb.gz", "application/octet-stream"));
    }
    let bytes = tokio::task::spawn_blocking(|| -> Result<Vec<u8>, ApiError> {
        let heap = sampled::snapshot().ok_or_else(heap_off)?;
        let file = endpoint_dhat(&heap);
        heap_to_pprof_gz(&file, heap.interval).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(download(bytes, "heap.pb.gz", "application/octet-stream"))
}

/// The sampled heap with each site allocated in a request ending in its
/// endpoint's frame ([`sampled::endpoint_frame`]).
fn endpoint_dhat(heap: &SampledHeap) -> crate::profile::dhat::DhatFile {
    sampled::to_dhat_labelled(heap, &|label| {
        let (endpoint, _) = super::collect::label(super::collect::heap_label_id(label)?)?;
        Some(sampled::endpoint_frame(&endpoint))
    })
}

/// What changed between two snapshots of the sampled heap, per site:
/// allocations made and growth of the live bytes (clamped at zero, as a
/// profile's values cannot be negative), as Go's `heap?seconds=N` gives.
fn heap_delta(before: &SampledHeap, mut after: SampledHeap) -> SampledHeap {
    let old: HashMap<(u32, &[usize]), &SiteStats> = before
        .sites
        .iter()
        .map(|s| ((s.label, s.stack.as_slice()), s))
        .collect();
    for s in &mut after.sites {
        if let Some(b) = old.get(&(s.label, s.stack.as_slice())) {
            s.samples = s.samples.saturating_sub(b.samples);
            s.alloc_objects = (s.alloc_objects - b.alloc_objects).max(0.0);
            s.alloc_bytes = (s.alloc_bytes - b.alloc_bytes).max(0.0);
            s.inuse_objects = (s.inuse_objects - b.inuse_objects).max(0.0);
            s.inuse_bytes = (s.inuse_bytes - b.inuse_bytes).max(0.0);
        }
    }
    after
        .sites
        .retain(|s| s.alloc_bytes > 0.0 || s.inuse_bytes > 0.0);
    after.duration_us = after.duration_us.saturating_sub(before.duration_us);
    after
}

fn heap_off() -> ApiError {
    ApiError {
        status: StatusCode::NOT_IMPLEMENTED,
        error: "heap sampling is off in this process: `profkit serve` samples unless --no-heap-profile; your own binary needs profkit::main!, profkit::alloc::enable_sampled_heap_profiling and a running profkit::profile::sampled::SampledProfiler".into(),
        parameter: None,
    }
}

/// A recording over `length`, with a CPU profile when none is being taken.
pub(super) async fn endpoints_window(length: Duration) -> EndpointsReport {
    let recording = collect::record();
    match labelled_profile(length).await {
        Ok(p) => recording.finish_with_cpu(&p),
        Err(e) => {
            // Another profile runs (409) or the sampler failed: the window
            // still counts requests and statements.
            if e.status != StatusCode::CONFLICT {
                tokio::time::sleep(length.saturating_sub(recording.started.elapsed())).await;
            } else {
                tokio::time::sleep(length).await;
            }
            let window = Nanos::from(recording.started.elapsed());
            let data = recording.data.lock();
            endpoints::build(&data, window, None, Some(e.error))
        }
    }
}

/// `GET /debug/profkit/endpoints?seconds=N`.
async fn endpoints_route(RawQuery(q): RawQuery) -> Result<Json<EndpointsReport>, ApiError> {
    let length = window(q.as_deref())?;
    Ok(Json(endpoints_window(length).await))
}

/// What `/debug/profkit/sql` answers: statements per endpoint.
#[derive(Serialize)]
struct SqlAnswer {
    schema_version: u32,
    window: Nanos,
    endpoints: Vec<SqlEndpoint>,
    outside_requests: Vec<endpoints::StatementStat>,
    skipped_sql_events: u64,
}

#[derive(Serialize)]
struct SqlEndpoint {
    endpoint: String,
    requests: u64,
    statements_per_request: f64,
    sql_time: Nanos,
    statements: Vec<endpoints::StatementStat>,
}

/// `GET /debug/profkit/sql?seconds=N`: statements of the window, per
/// endpoint, literals stripped.
async fn sql_route(RawQuery(q): RawQuery) -> Result<Json<serde_json::Value>, ApiError> {
    let length = window(q.as_deref())?;
    let recording = collect::record();
    tokio::time::sleep(length).await;
    let r = recording.finish();
    let answer = SqlAnswer {
        schema_version: r.schema_version,
        window: r.window,
        endpoints: r
            .endpoints
            .into_iter()
            .map(|e| SqlEndpoint {
                endpoint: e.endpoint,
                requests: e.requests,
                statements_per_request: e.statements_per_request,
                sql_time: e.sql_time,
                statements: e.statements,
            })
            .collect(),
        outside_requests: r.outside_requests,
        skipped_sql_events: r.skipped_sql_events,
    };
    serde_json::to_value(answer)
        .map(Json)
        .map_err(ApiError::internal)
}

/// `GET /metrics`: Prometheus text of the process's `metrics` recorder.
async fn metrics_route() -> Response {
    let text = super::metrics::render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn download(bytes: Vec<u8>, name: &str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The routes with the default [`Access`] (loopback peers only). Merge it
/// into your app and serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router() -> Router {
    router_with(Access::default())
}

/// The routes with access rules of your own.
pub fn router_with(access: Access) -> Router {
    routes(access, true)
}

/// The routes, with or without `/debug/profkit/sql` (`profkit serve`
/// answers that one itself, with query plans of its database).
pub(crate) fn routes(access: Access, sql: bool) -> Router {
    super::metrics::install();
    let router = Router::new();
    let router = if sql {
        router.route("/debug/profkit/sql", get(sql_route))
    } else {
        router
    };
    router
        .route("/debug/pprof/profile", get(pprof_profile))
        .route("/debug/pprof/heap", get(pprof_heap))
        .route("/debug/profkit/endpoints", get(endpoints_route))
        .route("/debug/profkit/flamegraph", get(flamegraph))
        .route("/metrics", get(metrics_route))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(access),
            access::guard,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_checked() {
        assert_eq!(window(None).unwrap(), Duration::from_secs(30));
        assert_eq!(window(Some("seconds=5")).unwrap(), Duration::from_secs(5));
        for bad in [
            "seconds=0",
            "seconds=301",
            "seconds=abc",
            "seconds=-1",
            "seconds=",
        ] {
            let e = window(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(e.parameter, Some("seconds"), "{bad}");
        }
    }
}
