//! `GET /debug/profkit/plans?seconds=N` for a service on PostgreSQL
//! (feature `postgres`): records the statements the service runs over the
//! window (profkit's layer), asks Postgres for their plans through the
//! service's own pool — `PREPARE`, then `EXPLAIN (FORMAT JSON) EXECUTE` of
//! the generic plan with NULL parameters, in a transaction rolled back,
//! never `ANALYZE`, so nothing is run — and answers
//! [`crate::analyze::pg_plan::findings`] (full scans over 10,000 rows,
//! large sorts). `profkit attach` pulls it into `plans.json` and adds its
//! findings to the run's.
//!
//! ```no_run
//! # async fn run(pool: sqlx::PgPool) {
//! let debug = axum::Router::new()
//!     .merge(profkit::service::router())
//!     .merge(profkit::service::pg_plans(pool));
//! # }
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use sqlx::postgres::PgPool;
use sqlx::Row as _;

use super::access::{self, Access};
use super::router::{window, ApiError};
use crate::analyze::pg_plan::{self, PlannedStatement, TableSizes, Thresholds};

/// Schema version of the route's answer.
pub const PLANS_SCHEMA_VERSION: u32 = 1;

/// The plans route over `pool`, with the default [`Access`] (loopback
/// peers only; anyone else gets 404). Merge it into your app beside
/// [`super::router`], served with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn pg_plans(pool: PgPool) -> Router {
    pg_plans_with(pool, Access::default())
}

/// The plans route over `pool`, with access rules of your own (the same
/// as [`super::router_with`]'s).
pub fn pg_plans_with(pool: PgPool, access: Access) -> Router {
    Router::new()
        .route("/debug/profkit/plans", get(plans))
        .with_state(pool)
        .route_layer(middleware::from_fn_with_state(
            Arc::new(access),
            access::guard,
        ))
}

/// `?` (and `$?`, `$1`) placeholders numbered `$1…$n`, and their count:
/// the layer's normalized statements use `?`.
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
/// `None` for a statement that is not a SELECT/INSERT/UPDATE/DELETE.
async fn explain(pool: &PgPool, sql: &str) -> anyhow::Result<Option<pg_plan::PlanNode>> {
    let (sql, params) = numbered(sql);
    if pg_plan::explain_statement(&sql).is_none() {
        return Ok(None);
    }
    // PREPARE is per connection, not per transaction: a fresh name each
    // time, deallocated after (a rollback does not drop it).
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("profkit_plan_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await?;
    // The statement is one the service itself ran (normalized), planned only.
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
        .execute(&mut *tx)
        .await?;
    let execute = if params == 0 {
        format!("EXPLAIN (FORMAT JSON) EXECUTE {name}")
    } else {
        let args = vec!["NULL"; params].join(", ");
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

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: error.to_string(),
        parameter: None,
    }
}

/// `GET /debug/profkit/plans?seconds=N`: the plan findings of the
/// statements run over the next N seconds.
async fn plans(
    State(pool): State<PgPool>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let length = window(q.as_deref())?;
    let recording = super::record();
    tokio::time::sleep(length).await;
    let report = recording.finish();
    let sizes: TableSizes = sqlx::query(pg_plan::TABLE_SIZES_SQL)
        .fetch_all(&pool)
        .await
        .map_err(internal)?
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
            match explain(&pool, &s.sql).await {
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
        "schema_version": PLANS_SCHEMA_VERSION,
        "window_seconds": length.as_secs(),
        "statements_planned": planned.len(),
        "errors": errors,
        "findings": findings,
    })))
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
        assert_eq!(super::numbered("SELECT 1"), ("SELECT 1".to_string(), 0));
    }
}
