//! PostgreSQL plans for real: a cluster from scripts/postgres.sh, a planted
//! unindexed query, `EXPLAIN (FORMAT JSON)` through the `postgres` crate
//! (never ANALYZE), and profkit's plan analysis on what comes back.

mod common;

use postgres::{Client, NoTls};
use profkit::analyze::findings::FindingKind;
use profkit::analyze::pg_plan::{self, PlannedStatement, TableSizes, Thresholds};

const SCHEMA: &str = "
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL,
                     total_cents bigint NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX orders_customer_id ON orders (customer_id);
INSERT INTO customers (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, status, total_cents, created_at)
  SELECT 1 + g % 500, (ARRAY['new','paid','shipped'])[1 + g % 3], (g * 37) % 100000,
         timestamptz '2026-01-01' + g * interval '1 minute'
  FROM generate_series(1, 20000) g;
ANALYZE;
";

/// The planted query: orders by status and amount, with no index on either
/// (the equality column comes first in the index the hint names).
const UNINDEXED: &str =
    "SELECT id, total_cents FROM orders WHERE status = 'paid' AND total_cents > 99000";
const INDEXED: &str = "SELECT id, status FROM orders WHERE customer_id = 42";

fn plan(client: &mut Client, context: &str, sql: &str) -> PlannedStatement {
    let explain = pg_plan::explain_statement(sql).expect("a plannable statement");
    assert!(!explain.to_ascii_uppercase().contains("ANALYZE"));
    let row = client
        .query_one(explain.as_str(), &[])
        .expect("EXPLAIN runs");
    let json: serde_json::Value = row.get(0);
    PlannedStatement {
        context: context.into(),
        shape: profkit::analyze::sql::normalize(sql),
        plan: pg_plan::parse(&json.to_string()).expect("EXPLAIN JSON parses"),
        executions: 0,
        share_of_latency: 0.0,
    }
}

fn sizes(client: &mut Client) -> TableSizes {
    client
        .query(pg_plan::TABLE_SIZES_SQL, &[])
        .expect("pg_class reads")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

#[test]
fn a_planted_unindexed_query_is_a_seq_scan_finding_and_an_index_removes_it() {
    let Some(cluster) = common::pg::start() else {
        return;
    };
    let mut client = Client::connect(&cluster.url, NoTls).expect("the cluster accepts");
    client.batch_execute(SCHEMA).expect("schema and data");
    let sizes = sizes(&mut client);
    assert_eq!(sizes.get("orders"), Some(&20_000), "{sizes:?}");
    let thresholds = Thresholds::default();
    let statements = [
        plan(&mut client, "GET /orders/big", UNINDEXED),
        plan(&mut client, "GET /customers/{id}/orders", INDEXED),
    ];
    let found = pg_plan::findings(&statements, &sizes, &thresholds);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind, FindingKind::FullScan);
    assert_eq!(found[0].workload, "GET /orders/big");
    assert!(
        found[0].title.contains("Seq Scan on orders (20000 rows"),
        "{}",
        found[0].title
    );
    assert!(
        found[0]
            .hint
            .starts_with("CREATE INDEX ON orders (status, total_cents)"),
        "{}",
        found[0].hint
    );
    // Postgres may plan a big sort the same way: ORDER BY an unindexed column.
    let sorted = plan(
        &mut client,
        "GET /orders/recent",
        "SELECT id FROM orders ORDER BY total_cents DESC LIMIT 10",
    );
    let found = pg_plan::findings(&[sorted], &sizes, &thresholds);
    assert!(
        found
            .iter()
            .any(|f| f.kind == FindingKind::TempBtree && f.title.contains("by total_cents DESC")),
        "{found:#?}"
    );
    // The fix the hint names, applied: the finding goes.
    client
        .batch_execute(
            "CREATE INDEX orders_status_total ON orders (status, total_cents); ANALYZE orders;",
        )
        .expect("index");
    let again = pg_plan::findings(
        &[plan(&mut client, "GET /orders/big", UNINDEXED)],
        &sizes,
        &thresholds,
    );
    assert!(again.is_empty(), "{again:#?}");
}
