//! Your own service, profiled in place: a router of debug endpoints to
//! merge into an axum app (or serve on a side port), and a
//! `tracing_subscriber::Layer` that labels CPU samples with the request
//! running, collects SQL from sqlx's events and profkit's rusqlite hook,
//! and measures busy vs idle time per request.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! # async fn run() -> anyhow::Result<()> {
//! tracing_subscriber::registry().with(profkit::service::layer()).init();
//! let app = axum::Router::new()
//!     // … your routes, with a root span per request naming its route …
//!     .merge(profkit::service::router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Routes (all `GET`, `seconds` from 1 to [`defaults::MAX_WINDOW_SECONDS`],
//! default [`defaults::WINDOW_SECONDS`]; a bad value is a 400 with a JSON
//! error naming the parameter):
//! - `/debug/pprof/profile?seconds=N`: CPU profile (pprof, gzipped), each
//!   sample labelled `endpoint` and `span` (`go tool pprof -tagfocus
//!   endpoint=…`). One profile at a time per process: a second gets 409.
//! - `/debug/pprof/heap[?seconds=N]`: the sampled heap since start, or the
//!   delta over a window.
//! - `/debug/profkit/sql?seconds=N`: statements per endpoint, literals
//!   stripped.
//! - `/debug/profkit/endpoints?seconds=N`: per endpoint requests,
//!   p50/p95/p99, CPU samples and top frames, statements per request, busy
//!   vs idle, findings (N+1, blocking in async).
//! - `/debug/profkit/flamegraph?seconds=N&endpoint=E`: one endpoint's CPU
//!   flamegraph (SVG).
//! - `/metrics`: Prometheus text.
//! - `/debug/profkit/plans?seconds=N` (feature `postgres`, its own router:
//!   `pg_plans(pool)`): `EXPLAIN (FORMAT JSON)` of the statements run,
//!   through the service's sqlx `PgPool`, never `ANALYZE`, as plan findings.
//!
//! Security: only loopback peers, a bearer token or an allow-list get in
//! ([`Access`]); anyone else gets 404.

mod access;
mod collect;
mod cpu;
mod endpoints;
mod layer;
mod metrics;
mod observed;
#[cfg(feature = "postgres")]
mod pg_plans;
mod router;
mod side;
mod slots;

pub(crate) use access::guard;
pub use access::Access;
pub use collect::{record, Recording};
pub use cpu::{profile_labelled, LabelledProfile, ENDPOINT_LABEL, SPAN_LABEL};
pub use endpoints::{
    CpuSummary, EndpointReport, EndpointsReport, FindingKind, ServiceFinding, StatementStat,
    ENDPOINTS_SCHEMA_VERSION,
};
pub use layer::{layer, LayerOptions, ProfkitLayer, SQLX_TARGET};
pub use observed::SOURCE as OBSERVED_SOURCE;
#[cfg(feature = "postgres")]
pub use pg_plans::{pg_plans, pg_plans_with, PLANS_SCHEMA_VERSION};
pub(crate) use router::routes;
pub use router::{router, router_with, window, ApiError};
pub use side::{spawn, spawn_with, ServiceError, SideServer, SpawnOptions};

use std::time::Duration;

/// Defaults, defined once.
pub mod defaults {
    use std::time::Duration;

    /// Window of a profile or report when `seconds` is not given (Go's
    /// `net/http/pprof` default).
    pub const WINDOW_SECONDS: u64 = 30;
    /// Longest window one request may ask for.
    pub const MAX_WINDOW_SECONDS: u64 = 300;
    /// Samples per CPU-second of a profile taken from a running service
    /// (`/debug/pprof/profile`, [`super::profile_labelled`]): Go's runtime
    /// samples at 100 Hz for the same reason — at the 997 Hz of `profkit
    /// cpu` the sampler took 64 % of a saturated 2-core service's
    /// throughput (BENCHMARKS.md, "Layer cost"); a 30 s window still
    /// gives thousands of samples.
    pub const FREQUENCY: u32 = 99;
    /// One poll longer than this is blocking in async.
    pub const BLOCKING_THRESHOLD: Duration = Duration::from_millis(10);
    /// Long polls an endpoint needs, at least, for a blocking finding: on
    /// a loaded machine the OS can preempt a worker mid-poll, and one such
    /// poll is not blocking code.
    pub const BLOCKING_MIN_POLLS: usize = 2;
    /// Share of an endpoint's polls that must be long, at least, for a
    /// blocking finding (see [`BLOCKING_MIN_POLLS`]).
    pub const BLOCKING_MIN_SHARE: f64 = 0.02;
    /// Side port of [`super::spawn`] in examples (Go's habit).
    pub const SIDE_ADDR: &str = "127.0.0.1:6060";
}

/// The per-endpoint report over the next `window` (what
/// `/debug/profkit/endpoints` answers), with a labelled CPU profile when no
/// other profile is being taken. Needs a tokio runtime.
pub async fn endpoints(window: Duration) -> EndpointsReport {
    router::endpoints_window(window).await
}

/// `tokio::task::spawn_blocking`, keeping the request's attribution: the
/// closure runs in a child span of the current one, so its SQL and CPU
/// count for the request, and its length is not taken for a poll that
/// blocked a runtime worker.
pub async fn spawn_blocking<F, R>(f: F) -> Result<R, tokio::task::JoinError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::info_span!("spawn_blocking");
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}
