//! The JSON API: the operations the workloads use, scoped to a tenant in
//! the path (`/api/tenants/{tenant}/…`). `random-emails` is the one
//! unscoped read, as [`DatabaseManager::query_random_emails`] is.

use std::time::Instant;

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};

use tracing::Instrument as _;

use super::debug;
use super::state::Shared;
use crate::db::data::{random_email, rare_code};
use crate::db::{DatabaseManager, Email, Scope, SenderStats};
use crate::service::Access;

/// Most rows one request may ask for.
const MAX_LIMIT: usize = 1000;

/// Every route of the server.
pub(super) fn router(state: Shared) -> Router {
    let routes: [(&'static str, MethodRouter<Shared>); 11] = [
        ("/api/info", get(info)),
        ("/api/random-emails", get(random_emails)),
        ("/api/tenants/{tenant}/emails", post(insert)),
        ("/api/tenants/{tenant}/emails/{id}", get(read_email)),
        ("/api/tenants/{tenant}/search/sender", get(search_sender)),
        ("/api/tenants/{tenant}/search/like", get(search_like)),
        ("/api/tenants/{tenant}/search/fts", get(search_fts)),
        ("/api/tenants/{tenant}/senders/top", get(top_senders)),
        (
            "/api/tenants/{tenant}/recent/n-plus-one",
            get(recent_n_plus_one),
        ),
        ("/api/tenants/{tenant}/recent/batched", get(recent_batched)),
        (
            "/debug/profkit/sql",
            get(debug::sql_window).route_layer(middleware::from_fn_with_state(
                std::sync::Arc::new(Access::default()),
                crate::service::guard,
            )),
        ),
    ];
    // /debug/pprof/*, /debug/profkit/endpoints and /flamegraph, /metrics:
    // profkit::service's, for loopback peers. Built first: it installs the
    // metrics recorder the counters below are declared in.
    let debug = crate::service::routes(Access::default(), false);
    let mut router = Router::new();
    for (path, handler) in routes {
        // Declared at 0 from the start, as Prometheus clients expect: a
        // scrape before the first 5xx still finds the series.
        metrics::counter!("profkit_http_errors_total", "route" => path).absolute(0);
        router = router.route(path, handler);
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state.clone())
        // /debug/pprof/*, /debug/profkit/endpoints and /flamegraph, /metrics:
        // profkit::service's, for loopback peers.
        .merge(debug)
        .layer(middleware::from_fn_with_state(state, pool_gauges))
}

/// Sets the pool gauges before `/metrics` renders them.
async fn pool_gauges(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/metrics" {
        debug::pool_gauges(&state);
    }
    next.run(req).await
}

/// Counts and times every request by its route, in a root span naming it
/// (the request profkit::service's layer follows).
async fn track(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", method = method.as_str(), route = route.as_str());
    let response = next.run(req).instrument(span).await;
    let status = response.status();
    state.count_request();
    metrics::counter!("profkit_http_requests_total", "route" => route.clone(), "method" => method, "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("profkit_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        metrics::counter!("profkit_http_errors_total", "route" => route).increment(1);
    }
    response
}

/// An error as the API answers it: a status and `{"error": "…"}`.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a database call on tokio's blocking pool, traced under `label`.
async fn blocking<T: Send + 'static>(
    state: &Shared,
    label: &'static str,
    f: impl FnOnce(&DatabaseManager) -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    let out = crate::service::spawn_blocking(move || state.traced(label, f))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(out))
}

fn tenant_scope(db: &DatabaseManager, tenant: i64) -> Result<Scope, ApiError> {
    let tenants = db.shape().tenants as i64;
    if !(1..=tenants).contains(&tenant) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no tenant {tenant}: tenants are 1 to {tenants}"),
        ));
    }
    Ok(Scope::Tenant(tenant))
}

fn limit(asked: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match asked.unwrap_or(default) {
        0 => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "limit must be at least 1".into(),
        )),
        n if n > MAX_LIMIT => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit {n} is more than {MAX_LIMIT}"),
        )),
        n => Ok(n),
    }
}

/// What `/api/info` answers: enough for a load generator to make valid
/// requests.
#[derive(Serialize)]
struct Info {
    rows: u64,
    tenants: u64,
    max_id: i64,
    /// A few sender addresses that exist, most frequent first.
    senders: Vec<String>,
    /// A few reference codes the bodies hold (for full-text and LIKE search).
    codes: Vec<String>,
    /// Up to [`IDS_PER_TENANT`] email ids of each tenant, tenant 1 first
    /// (the generator decides an id's tenant, so a client cannot).
    ids_by_tenant: Vec<Vec<i64>>,
}

/// Ids per tenant `/api/info` hands out.
const IDS_PER_TENANT: usize = 200;

async fn info(State(state): State<Shared>) -> ApiResult<Info> {
    blocking(&state, "info", |db| {
        let shape = db.shape();
        let senders = (0..10)
            .map(|i| shape.sender_for(f64::from(i) / 10.0))
            .collect();
        let mut ids_by_tenant = vec![Vec::new(); shape.tenants as usize];
        // Generated rows only: an inserted email's tenant is the caller's.
        let generated = (shape.rows as i64).min(db.max_id());
        for id in 1..=generated.min(100 * IDS_PER_TENANT as i64) {
            let t = shape.tenant_of(id).clamp(1, shape.tenants as i64);
            let t = &mut ids_by_tenant[(t - 1) as usize];
            if t.len() < IDS_PER_TENANT {
                t.push(id);
            }
        }
        Ok(Info {
            rows: db.count_emails()?,
            tenants: shape.tenants,
            max_id: db.max_id(),
            senders,
            codes: (0..20).map(rare_code).collect(),
            ids_by_tenant,
        })
    })
    .await
}

#[derive(Deserialize)]
struct Params {
    k: Option<usize>,
    q: Option<String>,
    limit: Option<usize>,
}

async fn random_emails(
    State(state): State<Shared>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<Email>> {
    let k = limit(p.k, 100)?;
    blocking(&state, "random-emails", move |db| {
        Ok(db.query_random_emails(&mut rand::rng(), k)?)
    })
    .await
}

async fn read_email(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(i64, i64)>,
) -> Result<Json<Email>, ApiError> {
    let scope = tenant_scope(&state.db, tenant)?;
    let found = blocking(&state, "read-email", move |db| Ok(db.get_email(scope, id)?)).await?;
    found.0.map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no email {id} in tenant {tenant}"),
        )
    })
}

fn query(p: &Params) -> Result<String, ApiError> {
    p.q.clone()
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "missing query parameter q".into()))
}

async fn search_sender(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<Email>> {
    let scope = tenant_scope(&state.db, tenant)?;
    let (q, n) = (query(&p)?, limit(p.limit, 50)?);
    blocking(&state, "search-indexed", move |db| {
        Ok(db.search_by_sender(scope, &q, n)?)
    })
    .await
}

async fn search_like(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<i64>> {
    let scope = tenant_scope(&state.db, tenant)?;
    let (q, n) = (query(&p)?, limit(p.limit, 100)?);
    blocking(&state, "search-like", move |db| {
        Ok(db.search_like(scope, &q, n)?)
    })
    .await
}

async fn search_fts(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<i64>> {
    let scope = tenant_scope(&state.db, tenant)?;
    let (q, n) = (query(&p)?, limit(p.limit, 100)?);
    blocking(&state, "fts-search", move |db| {
        Ok(db.search_fts(scope, &q, n)?)
    })
    .await
}

async fn top_senders(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<SenderStats>> {
    let scope = tenant_scope(&state.db, tenant)?;
    let n = limit(p.limit, 10)?;
    blocking(&state, "aggregate", move |db| {
        Ok(db.sender_report(scope, n)?)
    })
    .await
}

async fn recent_n_plus_one(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<Email>> {
    tenant_scope(&state.db, tenant)?;
    let n = limit(p.limit, 100)?;
    blocking(&state, "recent-n-plus-one", move |db| {
        Ok(db.recent_emails_n_plus_one(tenant, n)?)
    })
    .await
}

async fn recent_batched(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
    Query(p): Query<Params>,
) -> ApiResult<Vec<Email>> {
    tenant_scope(&state.db, tenant)?;
    let n = limit(p.limit, 100)?;
    blocking(&state, "recent-batched", move |db| {
        Ok(db.recent_emails_batched(tenant, n)?)
    })
    .await
}

#[derive(Serialize)]
struct Inserted {
    id: i64,
}

/// Inserts a generated email into the tenant's first user's inbox
/// (the body of the request is not read: the data is the generator's).
async fn insert(
    State(state): State<Shared>,
    Path(tenant): Path<i64>,
) -> Result<Response, ApiError> {
    tenant_scope(&state.db, tenant)?;
    let Json(id) = blocking(&state, "insert", move |db| {
        let shape = db.shape();
        let mut rng = rand::rng();
        let mut email = random_email(&shape, &mut rng, db.max_id() + 1);
        let user = rng.random_range(0..shape.users_per_tenant.max(1));
        email.tenant_id = tenant;
        email.mailbox_id = 2 * (shape.user_id(tenant, user) - 1) + 1;
        Ok(db.insert_email(&email)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(Inserted { id })).into_response())
}
