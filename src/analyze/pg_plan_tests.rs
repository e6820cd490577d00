//! On real `EXPLAIN (FORMAT JSON)` output, captured from a cluster of
//! scripts/postgres.sh (PostgreSQL 15) holding `customers` (2,000 rows,
//! primary key only), `orders` (50,000 rows, indexed on customer_id only)
//! and `statuses` (3 rows): tests/data/postgres/*.json.

use super::*;

const SEQ_SCAN_FILTER: &str = include_str!("../../tests/data/postgres/seq_scan_filter.json");
const SORT_ORDER_BY: &str = include_str!("../../tests/data/postgres/sort_order_by.json");
const INDEX_SCAN: &str = include_str!("../../tests/data/postgres/index_scan.json");
const SMALL_TABLE: &str = include_str!("../../tests/data/postgres/small_table.json");
const JOIN: &str = include_str!("../../tests/data/postgres/join_customer_email.json");
const PK_LOOKUP: &str = include_str!("../../tests/data/postgres/pk_lookup.json");

/// `pg_class.reltuples` of that cluster ([`TABLE_SIZES_SQL`]).
fn sizes() -> TableSizes {
    [("customers", 2000), ("orders", 50_000), ("statuses", 3)]
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect()
}

fn planned(context: &str, sql: &str, json: &str) -> PlannedStatement {
    PlannedStatement {
        context: context.into(),
        shape: crate::analyze::sql::normalize(sql),
        plan: parse(json).unwrap(),
        executions: 0,
        share_of_latency: 0.0,
    }
}

#[test]
fn a_seq_scan_on_a_big_table_names_the_table_and_its_filter_without_literals() {
    let plan = parse(SEQ_SCAN_FILTER).unwrap();
    let scans = full_scans(&plan, &sizes(), defaults::FULL_SCAN_MIN_ROWS);
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(scans[0].relation, "orders");
    assert_eq!((scans[0].table_rows, scans[0].size_known), (50_000, true));
    assert_eq!(
        scans[0].filter.as_deref(),
        Some("((total_cents > ?) AND (status = ?::text))")
    );
    assert_eq!(scans[0].rows_kept, 164.0);
    let f = findings(
        &[planned(
            "GET /orders/big",
            "SELECT id, customer_id, total_cents FROM orders WHERE total_cents > 99000 AND status = 'paid'",
            SEQ_SCAN_FILTER,
        )],
        &sizes(),
        &Thresholds::default(),
    );
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FindingKind::FullScan);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        f[0].title.contains("Seq Scan on orders (50000 rows")
            && f[0].title.contains("GET /orders/big"),
        "{}",
        f[0].title
    );
    assert_eq!(
        f[0].hint,
        "CREATE INDEX ON orders (status, total_cents) — equality columns first"
    );
    let all = format!("{} {:?}", f[0].title, f[0].evidence);
    assert!(
        !all.contains("paid") && !all.contains("99000"),
        "literals leak: {all}"
    );
}

#[test]
fn index_scans_and_small_tables_give_no_finding() {
    for (name, json) in [
        ("bitmap index scan", INDEX_SCAN),
        ("primary key lookup", PK_LOOKUP),
        ("3-row table", SMALL_TABLE),
    ] {
        let f = findings(
            &[planned("w", "SELECT 1", json)],
            &sizes(),
            &Thresholds::default(),
        );
        assert!(f.is_empty(), "{name}: {f:?}");
    }
    // The 3-row table is a Seq Scan all the same: only the size spares it.
    let plan = parse(SMALL_TABLE).unwrap();
    assert_eq!(full_scans(&plan, &sizes(), 0).len(), 1);
}

#[test]
fn a_sort_under_a_limit_is_a_top_n_sort_of_the_scanned_table() {
    let plan = parse(SORT_ORDER_BY).unwrap();
    assert_eq!(
        plan_text(&plan),
        "Limit → Sort (total_cents DESC) → Seq Scan on orders filter (status = ?::text)"
    );
    let s = sorts(&plan, defaults::SORT_MIN_ROWS);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].keys, ["total_cents DESC"]);
    assert_eq!(s[0].relation.as_deref(), Some("orders"));
    assert!(s[0].limited);
    assert_eq!(s[0].rows, 16662.0);
    let f = findings(
        &[planned(
            "GET /orders/top",
            "SELECT id, total_cents FROM orders WHERE status = 'new' ORDER BY total_cents DESC LIMIT 20",
            SORT_ORDER_BY,
        )],
        &sizes(),
        &Thresholds::default(),
    );
    let kinds: Vec<_> = f.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [FindingKind::FullScan, FindingKind::TempBtree]);
    assert!(f[1].title.contains("by total_cents DESC"), "{}", f[1].title);
}

#[test]
fn a_join_flags_only_the_unindexed_side_when_it_is_big_enough() {
    let plan = parse(JOIN).unwrap();
    // customers (2,000 rows) is read in full to find one email.
    let scans = full_scans(&plan, &sizes(), 1000);
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(scans[0].relation, "customers");
    assert_eq!(scans[0].filter.as_deref(), Some("(email = ?::text)"));
    assert!(full_scans(&plan, &sizes(), defaults::FULL_SCAN_MIN_ROWS).is_empty());
    // 25 rows sorted: no sort finding at the default threshold.
    assert!(sorts(&plan, defaults::SORT_MIN_ROWS).is_empty());
    assert_eq!(sorts(&plan, 10).len(), 1);
}

#[test]
fn unknown_table_sizes_count_the_rows_the_scan_puts_out() {
    let plan = parse(SORT_ORDER_BY).unwrap();
    let scans = full_scans(&plan, &TableSizes::new(), defaults::FULL_SCAN_MIN_ROWS);
    assert_eq!(scans.len(), 1);
    assert_eq!((scans[0].table_rows, scans[0].size_known), (16662, false));
}

#[test]
fn measured_statements_rank_by_their_share() {
    let mut s = planned("GET /orders/big", "SELECT 1", SEQ_SCAN_FILTER);
    s.executions = 120;
    s.share_of_latency = 0.8;
    let f = findings(&[s], &sizes(), &Thresholds::default());
    assert_eq!(f[0].severity, Severity::Critical);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.starts_with("120 runs, 80 %")),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn literals_are_stripped_and_identifiers_kept() {
    assert_eq!(
        strip_literals("((name)::text = 'O''Brien'::text) AND (t2.col1 > 1.5e3) AND (id = $1)"),
        "((name)::text = ?::text) AND (t2.col1 > ?) AND (id = $1)"
    );
}

#[test]
fn only_plannable_single_statements_are_explained_and_never_analyzed() {
    assert_eq!(
        explain_statement(" SELECT 1 ;").as_deref(),
        Some("EXPLAIN (FORMAT JSON) SELECT 1")
    );
    assert!(explain_statement("delete from orders where id = $1").is_some());
    for sql in [
        "",
        "BEGIN",
        "CREATE INDEX ON orders (status)",
        "SET search_path = x",
        "EXPLAIN ANALYZE DELETE FROM orders",
        "SELECT 1; DELETE FROM orders",
    ] {
        assert_eq!(explain_statement(sql), None, "{sql}");
    }
}

#[test]
fn output_that_is_not_explain_json_is_an_error() {
    assert!(matches!(
        parse("Seq Scan on orders"),
        Err(PlanError::NotJson(_))
    ));
    assert!(matches!(parse("[{\"Rows\": 1}]"), Err(PlanError::NoPlan)));
    assert!(matches!(parse("[]"), Err(PlanError::NoPlan)));
    // A driver that hands the element, not the array.
    let element = serde_json::from_str::<Value>(PK_LOOKUP).unwrap()[0].to_string();
    assert_eq!(parse(&element).unwrap().node_type, "Index Scan");
}
