//! The gain predicted where no fix can be tried, checked against the
//! built-in twins at small sizes, through the real binary: the slow twin's
//! profile alone gives the prediction (findings.json's advice section); the
//! measured gain comes from alternating runs of both twins on one database.
//!
//! The band is wider than the benchmark's ±25 % (`scripts/bench-predict.sh`,
//! BENCHMARKS.md): the test runs a debug build on 3,000 rows with a few
//! hundred operations per run, alongside other tests, where three short
//! pairs of runs carry more noise. It holds the prediction to a factor of
//! two of the measured gain (ratio 0.5–2). The N+1 pair is left out: its
//! debug runs of a few hundred operations are too noisy beside other tests
//! (three pairs at 3,000 rows under load: the batched twin's mean from
//! 1.2 ms to 8.1 ms, the N+1's from 1.0 ms to 6.2 ms); the benchmark
//! records the pair in release over 12 pairs with a trimmed mean, the unit
//! tests of `analyze::predict` check its arithmetic, and `tests/sql.rs`
//! that the batched twin is planned once and sorts nothing.

mod common;

use std::path::Path;

/// The predicted change in the advice section of the slow twin's run
/// folder made by `profkit profile`.
fn predicted(out: &Path, workload: &str, extra: &[&str]) -> (f64, String) {
    let mut args = vec!["profile", "--workloads", workload, "--rows", "3000"];
    args.extend_from_slice(extra);
    let output = common::profkit(out)
        .args(&args)
        .arg("--out")
        .arg(out.join("profiles"))
        .output()
        .unwrap();
    common::assert_success(&output);
    let v = common::json(&common::run_dir(out, workload).join("findings.json"));
    let line = v["advice"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.get("predicted").is_some())
        .unwrap_or_else(|| panic!("no prediction in {}", v["advice"]))
        .clone();
    (
        common::f(&line, &["predicted", "change"]),
        line["action"].as_str().unwrap().to_string(),
    )
}

/// Measured change of mean latency, `fast` against `slow`: geometric mean
/// of the ratios of three alternating pairs of runs on one database.
fn measured(out: &Path, slow: (&str, &str), fast: (&str, &str)) -> f64 {
    let db = out.join("twins.sqlite");
    let db = db.to_str().unwrap();
    let mean = |(w, ops): (&str, &str)| {
        common::f(
            &common::run_json(out, &[w, "--rows", "3000", "--ops", ops, "--db", db]),
            &["latency", "mean"],
        )
    };
    let logs: Vec<f64> = (0..3).map(|_| (mean(fast) / mean(slow)).ln()).collect();
    (logs.iter().sum::<f64>() / logs.len() as f64).exp() - 1.0
}

fn within_factor_two(pair: &str, predicted: f64, measured: f64, line: &str) {
    let ratio = predicted / measured;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "{pair}: predicted {:.0} %, measured {:.0} % (ratio {ratio:.2}): {line}",
        100.0 * predicted,
        100.0 * measured
    );
}

#[test]
fn scan_prediction_is_near_the_indexed_twin() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let (p, line) = predicted(out.path(), "random-emails-naive", &["--no-heap"]);
    assert!(line.contains("the scan's"), "{line}");
    let m = measured(
        out.path(),
        ("random-emails-naive", "30"),
        ("random-emails", "300"),
    );
    within_factor_two("random-emails-naive → random-emails", p, m, &line);
}

/// The live heap's slope (bytes retained per operation) of `profkit leaks`,
/// run in a folder of its own under `out`.
fn retained(out: &Path, workload: &str) -> f64 {
    let dir = out.join(workload);
    std::fs::create_dir_all(&dir).unwrap();
    let output = common::profkit(&dir)
        .args(["leaks", workload, "--ops", "500", "--out"])
        .arg(dir.join("profiles"))
        .output()
        .unwrap();
    common::assert_success(&output);
    let v = common::json(&common::run_dir(&dir, workload).join("leaks.json"));
    common::f(&v, &["total_slope_bytes_per_op"])
}

#[test]
fn leak_prediction_is_near_the_bounded_twin() {
    let _serial = common::serial();
    let out = tempfile::tempdir().unwrap();
    let (p, line) = predicted(out.path(), "leaky-cache", &["--ops", "5000"]);
    assert!(line.contains("bytes retained per op −100 %"), "{line}");
    let slow = retained(out.path(), "leaky-cache");
    let fast = retained(out.path(), "bounded-cache");
    assert!(slow > 50.0, "leaky-cache keeps {slow} B/op");
    within_factor_two("leaky-cache → bounded-cache", p, fast / slow - 1.0, &line);
}
