//! Profiling your own async service in place: a small axum + sqlx
//! (SQLite) shop that profkit has never seen, with three problems planted
//! for profkit to find:
//!
//! - `GET /orders/recent`: an N+1, one sqlx query per order for its
//!   customer's name instead of a join;
//! - `GET /reports/forecast`: a blocking call on the runtime, a heavy
//!   report run through a synchronous rusqlite connection inside the async
//!   handler (it should go to `spawn_blocking`);
//! - `GET /customers/{id}`: a request-scoped cache that only grows (its key
//!   holds the request's number, so no entry is ever hit or dropped).
//!
//! `GET /orders/{id}` and `GET /health` are clean.
//!
//! `cargo run --release --example async_service` (or `-- profile`) runs
//! profkit's main job over one async workload per endpoint, each calling
//! the handlers in process through the router (`tower::ServiceExt::oneshot`);
//! every other profkit command works too (`-- run orders-recent
//! --concurrency 32 --threads 4`). `-- serve-app --listen 127.0.0.1:3000
//! [--database-url sqlite:shop.db]` runs it as a plain server instead;
//! `--database-url postgres://…` runs the same shop on PostgreSQL
//! (`async_service_parts/postgres.rs`), with profkit's
//! `/debug/profkit/plans` route when built with `--features postgres`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use profkit::workload::{from_async_fn, AsyncFnWorkload, SetupEnv, WorkerCtx};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tower::ServiceExt as _;

#[path = "async_service_parts/postgres.rs"]
mod postgres;

#[global_allocator]
static PROFKIT_ALLOC: profkit::alloc::ProfkitAlloc = profkit::alloc::ProfkitAlloc;

/// Orders per page of `GET /orders/recent`.
const PAGE: i64 = 20;
/// Months the forecast runs over: enough work to hold a worker for tens
/// of milliseconds.
const FORECAST_MONTHS: i64 = 50_000;

/// The service's state, shared by its handlers.
#[derive(Clone)]
pub(crate) struct App {
    pool: SqlitePool,
    /// A synchronous connection for reports (the planted blocking call).
    reports: Arc<Mutex<rusqlite::Connection>>,
    /// Planted leak (see [`remember_render`]).
    rendered: Renders,
    customers: i64,
    pub(crate) orders: i64,
}

/// A handler's error, as JSON.
struct AppError(StatusCode, String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 });
        (self.0, Json(body)).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> AppError {
        AppError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// A numeric path id, or a JSON error naming it.
fn parse_id(name: &str, text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| {
        AppError(
            StatusCode::BAD_REQUEST,
            format!("{name} must be a number, got '{text}'"),
        )
    })
}

#[derive(Serialize)]
struct OrderLine {
    id: i64,
    customer: String,
    total: i64,
}

#[derive(Deserialize)]
struct Page {
    from: Option<i64>,
}

/// What the shop's N+1 handler asks of its database, one implementation
/// per driver (SQLite here, PostgreSQL in `async_service_parts/postgres.rs`):
/// the handler is written once, the SQL dialects stay with their drivers.
trait OrdersDb: Clone + Send + Sync + 'static {
    /// `limit` orders from id `from` on: (id, customer, total).
    fn orders_from(
        &self,
        from: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<Vec<(i64, i64, i64)>>> + Send;
    /// A customer's name.
    fn customer_name(
        &self,
        id: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<String>> + Send;
}

impl OrdersDb for App {
    fn orders_from(
        &self,
        from: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<Vec<(i64, i64, i64)>>> + Send {
        let pool = self.pool.clone();
        async move {
            sqlx::query_as(
                "SELECT id, customer, total FROM orders WHERE id >= ? ORDER BY id LIMIT ?",
            )
            .bind(from)
            .bind(limit)
            .fetch_all(&pool)
            .await
        }
    }

    fn customer_name(
        &self,
        id: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<String>> + Send {
        let pool = self.pool.clone();
        async move {
            sqlx::query_scalar("SELECT name FROM customers WHERE id = ?")
                .bind(id)
                .fetch_one(&pool)
                .await
        }
    }
}

/// Planted N+1, on either database: a page of orders, then one query per
/// order for its customer's name.
async fn recent_orders<D: OrdersDb>(
    State(db): State<D>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<OrderLine>>, AppError> {
    let orders = db.orders_from(page.from.unwrap_or(0), PAGE).await?;
    let mut lines = Vec::with_capacity(orders.len());
    for (id, customer, total) in orders {
        lines.push(OrderLine {
            id,
            customer: db.customer_name(customer).await?,
            total,
        });
    }
    Ok(Json(lines))
}

#[derive(Serialize)]
struct Forecast {
    months: i64,
    revenue: f64,
}

/// Planted blocking call: a heavy report on a synchronous rusqlite
/// connection, run on the runtime's worker inside the async handler.
async fn forecast(State(app): State<App>) -> Result<Json<Forecast>, AppError> {
    let conn = app
        .reports
        .lock()
        .map_err(|e| AppError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let revenue = run_forecast(&conn)?;
    Ok(Json(Forecast {
        months: FORECAST_MONTHS,
        revenue,
    }))
}

/// The forecast's query: revenue compounding month by month.
#[inline(never)]
fn run_forecast(conn: &rusqlite::Connection) -> rusqlite::Result<f64> {
    conn.query_row(
        "WITH RECURSIVE month(n, revenue) AS (
             SELECT 0, (SELECT coalesce(sum(total), 0) FROM orders WHERE id < 100)
             UNION ALL
             SELECT n + 1, revenue * 1.0001 FROM month WHERE n < ?1)
         SELECT sum(revenue) FROM month",
        [FORECAST_MONTHS],
        |r| r.get(0),
    )
}

#[derive(Serialize)]
struct Customer {
    id: i64,
    name: String,
    orders: Vec<(i64, i64)>,
}

/// One customer with their orders (two queries); the rendered page goes
/// to the leaking cache.
async fn customer(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Customer>, AppError> {
    let id = parse_id("customer id", &id)?;
    let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = ?")
        .bind(id)
        .fetch_optional(&app.pool)
        .await?
        .ok_or_else(|| AppError(StatusCode::NOT_FOUND, format!("no customer {id}")))?;
    let orders: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, total FROM orders WHERE customer = ? ORDER BY id")
            .bind(id)
            .fetch_all(&app.pool)
            .await?;
    remember_render(&app.rendered, &name, &orders);
    Ok(Json(Customer { id, name, orders }))
}

/// Rendered customer pages by request number (the planted leak), shared by
/// the shop on SQLite and on PostgreSQL.
#[derive(Clone, Default)]
struct Renders {
    pages: Arc<Mutex<HashMap<u64, String>>>,
    requests: Arc<AtomicU64>,
}

impl Renders {
    /// Pages held.
    fn len(&self) -> usize {
        self.pages.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// Planted leak: the rendered page, keyed by the request's number, so
/// never hit and never dropped.
#[inline(never)]
fn remember_render(renders: &Renders, name: &str, orders: &[(i64, i64)]) {
    use std::fmt::Write as _;
    let request = renders.requests.fetch_add(1, Ordering::Relaxed);
    let mut page = String::with_capacity(400 * (orders.len() + 1));
    let _ = writeln!(
        page,
        "<h1>{name}</h1><p>rendered for request {request}</p><table>"
    );
    for (id, total) in orders {
        let _ = writeln!(
            page,
            "<tr class=\"order\"><td>order {id}</td><td>{total} EUR</td><td>shipped</td><td>paid by card</td><td>delivered to the address on file</td><td><a href=\"/orders/{id}\">details</a></td><td><a href=\"/orders/{id}/invoice\">invoice</a></td><td><a href=\"/orders/{id}/return\">return</a></td></tr>"
        );
    }
    if let Ok(mut cache) = renders.pages.lock() {
        cache.insert(request, page);
    }
}

/// Clean: one order with its customer, in one query.
async fn order(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<OrderLine>, AppError> {
    let id = parse_id("order id", &id)?;
    let (customer, total): (String, i64) = sqlx::query_as(
        "SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer WHERE o.id = ?",
    )
    .bind(id)
    .fetch_optional(&app.pool)
    .await?
    .ok_or_else(|| AppError(StatusCode::NOT_FOUND, format!("no order {id}")))?;
    Ok(Json(OrderLine {
        id,
        customer,
        total,
    }))
}

/// Clean: no database.
async fn health() -> &'static str {
    "ok"
}

/// The service's routes, each request in a root span (method, route)
/// that profkit's tracing layer follows.
pub(crate) fn routes(app: App) -> Router {
    Router::new()
        .route("/orders/recent", get(recent_orders::<App>))
        .route("/orders/{id}", get(order))
        .route("/customers/{id}", get(customer))
        .route("/reports/forecast", get(forecast))
        .route("/health", get(health))
        .route_layer(axum::middleware::from_fn(root_span))
        .with_state(app)
}

/// Runs a request in a root span naming its endpoint.
async fn root_span(request: Request<Body>, next: axum::middleware::Next) -> Response {
    use tracing::Instrument as _;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("request", method = %request.method(), http.route = %route);
    next.run(request).instrument(span).await
}

/// Creates the shop's tables and fills them with `orders` orders, ten per
/// customer, unless they are there already.
fn seed(conn: &rusqlite::Connection, orders: i64) -> anyhow::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, total INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer);",
    )?;
    let have: i64 = conn.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?;
    if have >= orders {
        return Ok(());
    }
    let customers = (orders / 10).max(1);
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("DELETE FROM orders; DELETE FROM customers;")?;
    for c in 0..customers {
        tx.execute(
            "INSERT INTO customers VALUES (?1, ?2)",
            (c, format!("customer {c}")),
        )?;
    }
    for o in 0..orders {
        tx.execute(
            "INSERT INTO orders VALUES (?1, ?2, ?3)",
            (o, o % customers, o * 7 % 500),
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Opens (and seeds) the shop at `path` with `orders` orders; `trace`
/// attaches profkit's statement tracing to the report connection.
pub(crate) async fn open_app(
    path: &std::path::Path,
    orders: i64,
    trace: impl Fn(&rusqlite::Connection),
) -> anyhow::Result<App> {
    let reports = rusqlite::Connection::open(path)?;
    seed(&reports, orders)?;
    trace(&reports);
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    let (customers, orders): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders)")
            .fetch_one(&pool)
            .await?;
    Ok(App {
        pool,
        reports: Arc::new(Mutex::new(reports)),
        rendered: Renders::default(),
        customers,
        orders,
    })
}

/// What a workload's operations call: the router and the state.
struct Service {
    router: Router,
    app: App,
}

async fn setup(env: SetupEnv) -> anyhow::Result<Service> {
    anyhow::ensure!(
        env.rows >= 100,
        "needs --rows 100 or more, got {}",
        env.rows
    );
    let app = open_app(&env.db_path, env.rows as i64, |c| env.trace_sql(c)).await?;
    Ok(Service {
        router: routes(app.clone()),
        app,
    })
}

/// One request through the router, in process; an answer other than 200
/// is an error of the operation.
async fn call(router: Router, uri: String) -> anyhow::Result<()> {
    let request = Request::builder().uri(&uri).body(Body::empty())?;
    let response = router.oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "GET {uri}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// An async workload over one endpoint: `uri` picks the request.
fn endpoint(
    name: &str,
    route: &str,
    ops: u64,
    uri: fn(&App, &mut WorkerCtx) -> String,
) -> AsyncFnWorkload<Service> {
    from_async_fn(name, setup, move |s: Arc<Service>, ctx| {
        let uri = uri(&s.app, ctx);
        let router = s.router.clone();
        call(router, uri)
    })
    .describe(&format!("GET {route} of the example shop (axum + sqlx)"))
    .rows(20_000)
    .ops(ops)
    .on_finish(|s| {
        let cached = s.app.rendered.len();
        Ok(profkit::workload::Metrics::from([(
            "cached renders".to_string(),
            cached as f64,
        )]))
    })
}

/// The example's workloads, with the service layer as a probe: the
/// endpoint each run served names its findings, and the layer's own (the
/// N+1 over sqlx, which profkit's rusqlite hook cannot see) join them.
fn harness() -> profkit::Harness {
    profkit::Harness::new()
        .probe(profkit::cli::ServiceProbe)
        .register(endpoint(
            "orders-recent",
            "/orders/recent",
            1000,
            |app, ctx| {
                let from = ctx.rng.random_range(0..(app.orders - PAGE).max(1));
                format!("/orders/recent?from={from}")
            },
        ))
        .register(endpoint(
            "reports-forecast",
            "/reports/forecast",
            100,
            |_, _| "/reports/forecast".to_string(),
        ))
        .register(endpoint(
            "customers-id",
            "/customers/{id}",
            4000,
            |app, ctx| format!("/customers/{}", ctx.rng.random_range(0..app.customers)),
        ))
        .register(endpoint("orders-id", "/orders/{id}", 4000, |app, ctx| {
            format!("/orders/{}", ctx.rng.random_range(0..app.orders))
        }))
        .register(endpoint("health", "/health", 4000, |_, _| {
            "/health".to_string()
        }))
}

/// `serve-app [--listen ADDR] [--database-url URL] [--heap-sample BYTES]
/// [--allow-remote]`.
struct ServeArgs {
    listen: SocketAddr,
    /// Mean bytes between heap samples (Go's default, 512 KiB): smaller
    /// catches a slow leak in a shorter window, at more backtraces.
    heap_sample: u64,
    database: std::path::PathBuf,
    /// A `postgres://` URL: the shop on PostgreSQL instead.
    postgres: Option<String>,
    allow_remote: bool,
}

/// `host:port` of a database URL, for errors (never the password).
fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    // PostgreSQL's default port, said when the URL leaves it out.
    match host.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => host.to_string(),
        _ => format!("{host}:5432"),
    }
}

fn serve_args(args: &[String]) -> anyhow::Result<ServeArgs> {
    let mut out = ServeArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        heap_sample: 512 * 1024,
        database: std::path::PathBuf::from("async_service.db"),
        postgres: None,
        allow_remote: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                out.listen = v.parse().map_err(|_| {
                    anyhow::anyhow!("--listen '{v}' is not an address like 127.0.0.1:3000")
                })?;
            }
            "--database-url" => {
                let v = value()?;
                if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                    out.postgres = Some(v.clone());
                    continue;
                }
                let path = v
                    .strip_prefix("sqlite://")
                    .or(v.strip_prefix("sqlite:"))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--database-url '{v}' is not a URL like sqlite:shop.db or postgres://user@host:port/db"
                        )
                    })?;
                out.database = path.into();
            }
            "--heap-sample" => {
                let v = value()?;
                out.heap_sample = v.parse().ok().filter(|b| *b >= 1024).ok_or_else(|| {
                    anyhow::anyhow!("--heap-sample '{v}' is not a number of bytes, 1024 or more")
                })?;
            }
            "--allow-remote" => out.allow_remote = true,
            other => anyhow::bail!("unknown argument '{other}' of serve-app"),
        }
    }
    if !out.listen.ip().is_loopback() && !out.allow_remote {
        anyhow::bail!(
            "--listen {} is not a loopback address: pass --allow-remote to listen there",
            out.listen
        );
    }
    Ok(out)
}

/// Runs the shop as a plain server until Ctrl-C.
fn serve_app(args: ServeArgs) -> anyhow::Result<()> {
    // Sample the heap (a backtrace per 512 KiB allocated, on average,
    // unless --heap-sample says), so /debug/pprof/heap answers as it does
    // under `profkit serve`.
    profkit::alloc::enable_sampled_heap_profiling(args.heap_sample)?;
    let _heap = profkit::profile::sampled::SampledProfiler::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shop = match &args.postgres {
            Some(url) => postgres::routes(url, 20_000).await?,
            None => routes(open_app(&args.database, 20_000, |_| {}).await?),
        };
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        // profkit's /debug routes, answering loopback peers only.
        let routes = shop.merge(profkit::service::router());
        axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}

fn main() {
    use tracing_subscriber::layer::SubscriberExt as _;
    // profkit's layer: idle (no cost past one branch) until a profile or
    // a recording reads it.
    let subscriber = tracing_subscriber::registry().with(profkit::service::layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve-app") {
        if let Err(e) = serve_args(&args[2..]).and_then(serve_app) {
            eprintln!("Error: {e:#}");
            std::process::exit(2);
        }
        return;
    }
    harness().run()
}
