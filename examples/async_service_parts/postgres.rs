//! The shop on PostgreSQL (`serve-app --database-url postgres://…`): the
//! same routes through sqlx's Postgres driver, with the N+1, the blocking
//! report and the leaking cache planted as on SQLite, and one more:
//! `orders.customer` has no index here, so `GET /customers/{id}` reads the
//! whole orders table (a Seq Scan).
//!
//! Built with `--features postgres`, it serves profkit's
//! `GET /debug/profkit/plans?seconds=N` (`profkit::service::pg_plans`, on
//! the shop's own pool; same access rules as profkit's other routes):
//! `EXPLAIN (FORMAT JSON)` of the statements run, never `ANALYZE`, as
//! profkit's findings. `profkit attach` pulls it.
//!
//! The blocking report still reads a local SQLite extract (`reports.db`
//! beside the working folder), through the synchronous connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{
    parse_id, remember_render, AppError, Customer, Forecast, OrderLine, Renders, FORECAST_MONTHS,
};

#[derive(Clone)]
struct Shop {
    pool: PgPool,
    reports: Arc<Mutex<rusqlite::Connection>>,
    /// Planted leak, as on SQLite.
    rendered: Renders,
}

/// The planted N+1 runs the shop's one handler
/// ([`super::recent_orders`]), over these statements.
impl super::OrdersDb for Shop {
    fn orders_from(
        &self,
        from: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<Vec<(i64, i64, i64)>>> + Send {
        let pool = self.pool.clone();
        async move {
            sqlx::query_as(
                "SELECT id, customer, total FROM orders WHERE id >= $1 ORDER BY id LIMIT $2",
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
            sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
        }
    }
}

/// Planted full scan: no index on `orders.customer` in this schema; and
/// the rendered page goes to the leaking cache, as on SQLite.
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
    remember_render(&shop.rendered, &name, &orders);
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

/// The shop's routes on PostgreSQL at `url`, with profkit's plans route
/// when built with `--features postgres`.
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
        pool: pool.clone(),
        reports: Arc::new(Mutex::new(reports)),
        rendered: Renders::default(),
    };
    let routes = Router::new()
        .route("/orders/recent", get(super::recent_orders::<Shop>))
        .route("/orders/{id}", get(order))
        .route("/customers/{id}", get(customer))
        .route("/reports/forecast", get(forecast))
        .route("/health", get(super::health))
        .route_layer(axum::middleware::from_fn(super::root_span))
        .with_state(shop);
    #[cfg(feature = "postgres")]
    let routes = routes.merge(profkit::service::pg_plans(pool));
    #[cfg(not(feature = "postgres"))]
    {
        drop(pool);
        eprintln!("note: no /debug/profkit/plans in this build (cargo build --features postgres --example async_service)");
    }
    Ok(routes)
}
