use super::*;
use crate::analyze::findings::Severity;
use crate::profile::cpu::Stack;
use crate::profile::cpu_fixture::{profile, stack};

fn cpu(stacks: Vec<Stack>) -> CpuReport {
    super::super::cpu::analyze(&profile(stacks), "w", 10)
}

/// One statement of a SQL report, as `sql.json` holds it.
fn stmt(shape: &str, per_op: f64, mean: u64, rows: f64, share: f64, scan: bool) -> String {
    format!(
        r#"{{"shape":"{shape}","example":"{shape}","executions":{},"per_op":{per_op},
        "total":{},"mean":{mean},"p95":{mean},"max":{mean},"rows":0,"rows_per_exec":{rows},
        "share_of_db_time":{share},"share_of_latency":{share},"plan":[],"slowest":null,
        "full_scans":{},"temp_btrees":[]}}"#,
        (per_op * 100.0) as u64,
        (per_op * 100.0) as u64 * mean,
        if scan { r#"["emails"]"# } else { "[]" }
    )
}

fn sql(statements: &[String], per_op: f64, n_plus_one: &str) -> SqlReport {
    serde_json::from_str(&format!(
        r#"{{"schema_version":1,"workload":"w","ops":100,"statements_per_op":{per_op},
        "db_time_per_op":230000,"db_time_share":0.8,
        "operations":[{{"operation":"w","statements_per_op":{per_op},"db_time_per_op":230000,
        "statements":[{}]}}],"n_plus_one":[{n_plus_one}]}}"#,
        statements.join(",")
    ))
    .unwrap()
}

fn finding(kind: FindingKind, title: &str) -> Finding {
    Finding {
        kind,
        severity: Severity::Critical,
        score: 1.0,
        workload: "w".into(),
        title: title.into(),
        evidence: vec![],
        hint: String::new(),
    }
}

const CHILD: &str = "SELECT subject FROM emails WHERE id = ?";

fn n_plus_one_sql() -> SqlReport {
    sql(
        &[
            stmt(CHILD, 100.0, 2_300, 1.0, 0.8, false),
            stmt(
                "SELECT id FROM emails LIMIT ?",
                1.0,
                17_000,
                100.0,
                0.06,
                false,
            ),
        ],
        101.0,
        &format!(
            r#"{{"operation":"w","shape":"{CHILD}","per_op":100.0,
            "parent":"SELECT id FROM emails LIMIT ?","share_of_latency":0.8}}"#
        ),
    )
}

#[test]
fn per_statement_work_is_read_from_the_stacks() {
    let c = cpu(vec![
        stack("main;app::get;rusqlite::Statement::query_row;sqlite3_step;sqlite3VdbeExec;sqlite3BtreeBeginTrans;sqlite3PagerSharedLock;unixShmLock;fcntl", 30),
        stack("main;app::get;rusqlite::Statement::query_row;sqlite3_reset;sqlite3VdbeReset;sqlite3VdbeHalt", 10),
        stack("main;app::get;rusqlite::Connection::prepare_cached;rusqlite::cache::StatementCache::get", 2),
        // The pooled connection taken and given back around each statement.
        stack("main;app::get;r2d2::Pool<M>::get;r2d2::Pool<M>::get_inner;std::sync::Mutex::lock", 5),
        stack("main;app::get;core::ptr::drop_in_place<r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager>>;r2d2::Pool<M>::put_back", 3),
        // Reading the row and binding stay with a batch.
        stack("main;app::get;rusqlite::Statement::query_row;sqlite3_step;sqlite3VdbeExec;sqlite3VdbeMemFromBtree", 40),
        stack("main;app::get;rusqlite::Statement::bind_parameters;sqlite3_bind_int64", 8),
        stack("main;app::render", 10),
    ]);
    assert_eq!(c.samples, 108);
    assert_eq!(c.statement_work, 50);
}

#[test]
fn an_n_plus_one_predicts_the_per_statement_work_of_the_statements_removed() {
    let c = cpu(vec![
        stack("main;app::get;sqlite3_step;sqlite3PagerSharedLock", 300),
        stack("main;app::get;sqlite3_step;sqlite3VdbeExec", 700),
    ]);
    let f = finding(FindingKind::NPlusOne, "n-plus-one: 101 statements");
    let sql = n_plus_one_sql();
    let p = for_finding(&f, Some(&sql), Some(&c), None, Some(Nanos(300_000))).unwrap();
    // 30 % of samples are per-statement work, 99 of 101 statements go.
    assert!((p.change + 0.30 * 99.0 / 101.0).abs() < 1e-9, "{p:?}");
    let line = p.line();
    assert!(
        line.starts_with("predicted: mean −29 % (0.300 ms → 0.212 ms; removing 99 of 101 statements per operation × 0.9 µs each"),
        "{line}"
    );
    // Without a CPU profile: the statements' measured time, an upper bound.
    let p = for_finding(&f, Some(&sql), None, None, Some(Nanos(300_000))).unwrap();
    assert!(
        (p.change + 99.0 * 2_300.0 / 300_000.0).abs() < 1e-9,
        "{p:?}"
    );
    assert!(
        p.basis.contains("removing 99 statements × 2.3 µs"),
        "{}",
        p.basis
    );
    // Too few samples to read a share from: the upper bound too.
    let few = cpu(vec![stack("main;sqlite3PagerSharedLock", 10)]);
    let p = for_finding(&f, Some(&sql), Some(&few), None, Some(Nanos(300_000))).unwrap();
    assert!(p.basis.contains("an upper bound"), "{}", p.basis);
}

#[test]
fn a_scan_predicts_its_share_of_latency_a_leak_its_slope() {
    let shape = "SELECT id FROM emails ORDER BY RANDOM() LIMIT ?";
    let sql = sql(&[stmt(shape, 1.0, 5_000_000, 100.0, 0.97, true)], 1.0, "");
    let f = finding(
        FindingKind::FullScan,
        &format!("`{shape}` runs SCAN emails (no usable index)"),
    );
    let p = for_finding(&f, Some(&sql), None, None, None).unwrap();
    assert!((p.change + 0.97).abs() < 1e-9, "{p:?}");
    assert!(p
        .line()
        .starts_with("predicted: mean −97 % (the scan's 5000.0 µs per run"));
    let leaks: LeakReport = serde_json::from_str(
        r#"{"schema_version":1,"workload":"w","warmup_ops":10,"ops":[10,20,40],
        "total_live_end":[1,2,3],"total_slope_bytes_per_op":150.0,"total_r2":1.0,
        "leaks":[{"site":"cache::preview","stack":[],"live_end":[1,2,3],
        "slope_bytes_per_op":96.0,"r2":1.0,"growth":2880}],
        "leaked_bytes_per_op":96.0,"bounded":[],"verdict":"leak","soak":null}"#,
    )
    .unwrap();
    let f = finding(
        FindingKind::Leak,
        "w: live heap grows 96 B/op at cache::preview",
    );
    let p = for_finding(&f, None, None, Some(&leaks), None).unwrap();
    assert_eq!(p.change, -1.0);
    assert_eq!(
        p.line(),
        "predicted: bytes retained per op −100 % (150 → 0; bounding or releasing what cache::preview keeps takes the live heap's growth to 0: 96 B/op at the site, 150 B/op in all (what holds its entries grows with it))"
    );
    // Findings it does not read get none.
    assert!(for_finding(
        &finding(FindingKind::Waiting, "x"),
        Some(&sql),
        None,
        None,
        None
    )
    .is_none());
}

#[test]
fn a_hot_function_predicts_at_most_its_self_share() {
    let c = cpu(vec![
        stack("main;app::handle;app::render", 600),
        stack("main;app::handle;sqlite3_step", 400),
    ]);
    let f = finding(
        FindingKind::CpuHotspot,
        "app::render holds 60 % of CPU samples (self time)",
    );
    let p = for_finding(&f, None, Some(&c), None, Some(Nanos(1_000_000))).unwrap();
    assert!((p.change + 0.6).abs() < 1e-9, "{p:?}");
    assert!(
        p.line().starts_with(
            "predicted: mean −60 % (1.000 ms → 0.400 ms; at most, were app::render free"
        ),
        "{}",
        p.line()
    );
    // SQLite's share as a whole is no function of the program's.
    let f = finding(
        FindingKind::CpuHotspot,
        "55 % of CPU samples in SQLite's C code",
    );
    assert!(for_finding(&f, None, Some(&c), None, None).is_none());
}
