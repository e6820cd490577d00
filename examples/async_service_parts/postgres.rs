//! The shop on PostgreSQL (`serve-app --database-url postgres://…`): the
//! same routes through sqlx's Postgres driver, with the N+1 and the
//! blocking report planted as on SQLite, and one more: `orders.customer`
//! has no index here, so `GET /customers/{id}` reads the whole orders
//! table (a Seq Scan).
//!
//! `GET /debug/profkit/plans?seconds=N` (loopback peers only, like
//! profkit's routes) records the statements the service runs for N
//! seconds (profkit's layer), asks Postgres for their plans through the
//! service's own pool — `EXPLAIN (FORMAT JSON)` of a generic plan,
//! never `ANALYZE`, so nothing is run — and answers profkit's findings
//! (full scans over 10,000 rows, large sorts). `profkit attach` pulls it.
//!
//! The blocking report still reads a local SQLite extract (`reports.db`
//! beside the working folder), through the synchronous connection.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use profkit::analyze::pg_plan::{self, PlannedStatement, TableSizes, Thresholds};
use serde::Deserialize;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row as _;

use super::{parse_id, AppError, Customer, Forecast, OrderLine, Page, FORECAST_MONTHS, PAGE};

#[derive(Clone)]
struct Shop {
    pool: PgPool,
    reports: Arc<Mutex<rusqlite::Connection>>,
}

/// Planted N+1, as on SQLite.
async fn recent_orders(
    State(shop): State<Shop>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<OrderLine>>, AppError> {
    let from = page.from.unwrap_or(0);
    let orders: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, customer, total FROM orders WHERE id >= $1 ORDER BY id LIMIT $2",
    )
    .bind(from)
    .bind(PAGE)
    .fetch_all(&shop.pool)
    .await?;
    let mut lines = Vec::with_capacity(orders.len());
    for (id, customer, total) in orders {
        let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
            .bind(customer)
            .fetch_one(&shop.pool)
            .await?;
        lines.push(OrderLine {
            id,
            customer: name,
            total,
        });
    }
    Ok(Json(lines))
}

/// Planted full scan: no index on `orders.customer` in this schema.
async fn customer(
    State(shop): State<Shop>,
    Path(id): Path<String>,
) -> Result<Json<Customer>, AppError> {
    let id = parse_id("customer id", &id)?;
    let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&shop.pool)
        .await?
        .ok_or_else(|| AppError(StatusCode::NOT_FOUND, format!("no customer {id}")))?;
    let orders: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, total FROM orders WHERE customer = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&shop.pool)
            .await?;
    Ok(Json(Customer { id, name, orders }))
}

/// Clean: one order with its customer, in one query.
async fn order(
    State(shop): State<Shop>,
    Path(id): Path<String>,
) -> Result<Json<OrderLine>, AppError> {
    let id = parse_id("order id", &id)?;
    let (customer, total): (String, i64) = sqlx::query_as(
        "SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(&shop.pool)
    .await?
    .ok_or_else(|| AppError(StatusCode::NOT_FOUND, format!("no order {id}")))?;
    Ok(Json(OrderLine {
        id,
        customer,
        total,
    }))
}

/// Planted blocking call, as on SQLite (on the local extract).
async fn forecast(State(shop): State<Shop>) -> Result<Json<Forecast>, AppError> {
    let conn = shop
        .reports
        .lock()
        .map_err(|e| AppError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let revenue = super::run_forecast(&conn)?;
    Ok(Json(Forecast {
        months: FORECAST_MONTHS,
        revenue,
    }))
}

#[derive(Deserialize)]
struct Window {
    seconds: Option<u64>,
}

/// `?` (and `$?`, `$1`) placeholders numbered `$1…$n`, and their count.
fn numbered(sql: &str) -> (String, usize) {
    let mut out = String::with_capacity(sql.len());
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let dollar = c == '$'
            && chars
                .peek()
                .is_some_and(|d| *d == '?' || d.is_ascii_digit());
        if c == '?' || dollar {
            if dollar {
                while chars
                    .peek()
                    .is_some_and(|d| *d == '?' || d.is_ascii_digit())
                {
                    chars.next();
                }
            }
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    (out, n)
}

/// The generic plan of `sql` (parameters unknown), planned and not run:
/// PREPARE, then `EXPLAIN (FORMAT JSON) EXECUTE` with NULLs under
/// `plan_cache_mode = force_generic_plan`, in a transaction rolled back.
async fn explain(pool: &PgPool, sql: &str) -> anyhow::Result<Option<pg_plan::PlanNode>> {
    let (sql, params) = numbered(sql);
    if pg_plan::explain_statement(&sql).is_none() {
        return Ok(None);
    }
    // PREPARE is per connection, not per transaction: a fresh name each
    // time, deallocated after (a rollback does not drop it).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "profkit_plan_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await?;
    // The statement is one the service itself ran (normalized), planned only.
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
        .execute(&mut *tx)
        .await?;
    let args = vec!["NULL"; params].join(", ");
    let execute = if params == 0 {
        format!("EXPLAIN (FORMAT JSON) EXECUTE {name}")
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({args})")
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(execute))
        .fetch_one(&mut *tx)
        .await?;
    let text: String = row.try_get_unchecked(0)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DEALLOCATE {name}")))
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(Some(pg_plan::parse(&text)?))
}

/// `GET /debug/profkit/plans?seconds=N`: the plan findings of the
/// statements run over the next N seconds.
async fn plans(
    State(shop): State<Shop>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(w): Query<Window>,
) -> Result<Json<serde_json::Value>, AppError> {
    if !peer.ip().is_loopback() {
        return Err(AppError(StatusCode::NOT_FOUND, String::new()));
    }
    let seconds = w.seconds.unwrap_or(30);
    if !(1..=300).contains(&seconds) {
        return Err(AppError(
            StatusCode::BAD_REQUEST,
            "seconds must be 1 to 300".into(),
        ));
    }
    let recording = profkit::service::record();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let report = recording.finish();
    let sizes: TableSizes = sqlx::query(pg_plan::TABLE_SIZES_SQL)
        .fetch_all(&shop.pool)
        .await?
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64))
        .collect();
    let mut seen = BTreeSet::new();
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for e in &report.endpoints {
        let life = (e.busy.0 + e.idle.0).max(1) as f64;
        for s in &e.statements {
            if !seen.insert(s.sql.clone()) {
                continue;
            }
            match explain(&shop.pool, &s.sql).await {
                Ok(Some(plan)) => planned.push(PlannedStatement {
                    context: e.endpoint.clone(),
                    shape: s.sql.clone(),
                    plan,
                    executions: s.count,
                    share_of_latency: (s.time.0 as f64 / life).min(1.0),
                }),
                Ok(None) => {}
                Err(err) => errors.push(format!("{}: {err:#}", s.sql)),
            }
        }
    }
    let findings = pg_plan::findings(&planned, &sizes, &Thresholds::default());
    Ok(Json(serde_json::json!({
        "schema_version": 1,
        "window_seconds": seconds,
        "statements_planned": planned.len(),
        "errors": errors,
        "findings": findings,
    })))
}

/// Creates and fills the shop's tables (no index on `orders.customer`),
/// and has Postgres count them (`ANALYZE`: the sizes the plans use).
async fn seed(pool: &PgPool, orders: i64) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        .execute(pool)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, customer BIGINT NOT NULL, total BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await?;
    if have < orders {
        let customers = (orders / 10).max(1);
        sqlx::query("TRUNCATE orders, customers")
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO customers SELECT c, 'customer ' || c FROM generate_series(0, $1 - 1) c",
        )
        .bind(customers)
        .execute(pool)
        .await?;
        sqlx::query(
            "INSERT INTO orders SELECT o, o % $2, o * 7 % 500 FROM generate_series(0, $1 - 1) o",
        )
        .bind(orders)
        .bind(customers)
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE customers").execute(pool).await?;
    sqlx::query("ANALYZE orders").execute(pool).await?;
    Ok(())
}

/// The shop's routes on PostgreSQL at `url`, with the plans route.
pub async fn routes(url: &str, orders: i64) -> anyhow::Result<Router> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", super::host_port(url)))?;
    seed(&pool, orders).await?;
    let reports = rusqlite::Connection::open("reports.db")?;
    super::seed(&reports, 1_000)?;
    let shop = Shop {
        pool,
        reports: Arc::new(Mutex::new(reports)),
    };
    Ok(Router::new()
        .route("/orders/recent", get(recent_orders))
        .route("/orders/{id}", get(order))
        .route("/customers/{id}", get(customer))
        .route("/reports/forecast", get(forecast))
        .route("/health", get(super::health))
        .route_layer(axum::middleware::from_fn(super::root_span))
        .route("/debug/profkit/plans", get(plans))
        .with_state(shop))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND c = $? LIMIT $3"),
            (
                "SELECT a FROM t WHERE b = $1 AND c = $2 LIMIT $3".to_string(),
                3
            )
        );
    }
}
