//! SQL profiling end to end: statement counts, plans, N+1 and the twins'
//! verdicts, through the real binary on small data.

mod common;

use std::path::{Path, PathBuf};

use common::sql_run;

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn top_kind(run: &Path) -> Option<String> {
    let f = json(run.join("findings.json"));
    f["findings"][0]["kind"].as_str().map(String::from)
}

fn kinds(run: &Path) -> Vec<String> {
    let f = json(run.join("findings.json"));
    f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn statement_counts_equal_executions_and_the_analysis_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let run = sql_run(
        dir.path(),
        &[
            "point-read",
            "--rows",
            "1000",
            "--ops",
            "700",
            "--warmup",
            "0",
        ],
    );
    let sql = json(run.join("sql.json"));
    assert_eq!(sql["schema_version"], 1);
    let statements = sql["operations"][0]["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0]["executions"], 700);
    assert_eq!(statements[0]["rows"], 700);
    assert_eq!(sql["statements_per_op"], 1.0);
    let plan = statements[0]["plan"][0]["detail"].as_str().unwrap();
    assert!(
        plan.starts_with("SEARCH emails USING INTEGER PRIMARY KEY"),
        "{plan}"
    );
    assert!(statements[0]["full_scans"].as_array().unwrap().is_empty());
    let bench = json(run.join("bench.json"));
    assert_eq!(bench["sql"]["statements"], 700);
    let folded = std::fs::read_to_string(run.join("sql.folded")).unwrap();
    assert!(
        folded.starts_with("point-read;point-read;SELECT"),
        "{folded}"
    );
}

#[test]
fn slow_twins_get_their_finding_first_and_fast_twins_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let small = |w: &'static str, ops: &'static str| {
        vec![w, "--rows", "3000", "--ops", ops, "--warmup", "2"]
    };

    let like = sql_run(dir.path(), &small("search-like", "10"));
    assert_eq!(top_kind(&like).as_deref(), Some("full-scan"));
    let fts = sql_run(dir.path(), &small("fts-search", "200"));
    assert!(
        !kinds(&fts).contains(&"full-scan".to_string()),
        "{:?}",
        kinds(&fts)
    );

    let naive = sql_run(dir.path(), &small("random-emails-naive", "10"));
    assert_eq!(top_kind(&naive).as_deref(), Some("full-scan"));
    let naive_findings = json(naive.join("findings.json"));
    let evidence = naive_findings["findings"][0]["evidence"].to_string();
    assert!(evidence.contains("TEMP B-TREE FOR ORDER BY"), "{evidence}");
    let fast = sql_run(dir.path(), &small("random-emails", "50"));
    assert!(
        !kinds(&fast).contains(&"full-scan".to_string()),
        "{:?}",
        kinds(&fast)
    );

    let n1 = sql_run(dir.path(), &small("n-plus-one", "30"));
    assert_eq!(top_kind(&n1).as_deref(), Some("n-plus-one"));
    let n1_sql = json(n1.join("sql.json"));
    assert_eq!(n1_sql["n_plus_one"][0]["per_op"], 100.0);
    let batched = sql_run(dir.path(), &small("n-plus-one-batched", "30"));
    assert!(
        !kinds(&batched).contains(&"n-plus-one".to_string()),
        "{:?}",
        kinds(&batched)
    );
}

#[test]
fn the_batched_twin_is_planned_once_and_sorts_nothing() {
    // The batched twin is profkit's demonstration of the N+1 fix: its one
    // fetch must not be re-prepared by SQLite on each run (a plan that
    // depends on a bound value) nor sort its rows (they come in the ids'
    // order), or it shows a costlier batch than the fix needs to be.
    let dir = tempfile::tempdir().unwrap();
    let run = sql_run(
        dir.path(),
        &[
            "n-plus-one-batched",
            "--rows",
            "3000",
            "--ops",
            "40",
            "--warmup",
            "2",
        ],
    );
    let sql = json(run.join("sql.json"));
    let statements = sql["operations"][0]["statements"].as_array().unwrap();
    let fetch = statements
        .iter()
        .find(|s| s["shape"].as_str().unwrap().contains("json_each"))
        .unwrap_or_else(|| panic!("no batched fetch in {statements:#?}"));
    assert_eq!(fetch["executions"], 40, "{fetch:#}");
    assert_eq!(fetch["rows"], 4000, "{fetch:#}");
    assert_eq!(fetch["reprepares"], 0, "{fetch:#}");
    assert!(
        fetch["prepares"].as_u64().unwrap() <= 1,
        "prepared more than once: {fetch:#}"
    );
    assert_eq!(fetch["temp_btrees"], serde_json::json!([]), "{fetch:#}");
}
