//! The harness over code profkit has never seen: `examples/own_code.rs`
//! (its own rusqlite connection, a planted N+1 and a planted leak) and the
//! built-in examples, each a binary of its own running `profile`.
//!
//! The examples are built when a narrow run did not build them.

mod common;

use common::example::example;
use common::{findings, run_dir};

use std::process::Command;

#[test]
fn own_code_profile_names_the_planted_n_plus_one_and_leak() {
    let out = tempfile::tempdir().unwrap();
    // No subcommand: `profile` of the example's workload.
    let output = Command::new(example("own_code"))
        .args(["--rows", "2000", "--scale", "0.2"])
        .current_dir(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    common::assert_success(&output);
    let run = run_dir(out.path(), "shop-orders");
    let found = findings(&run);
    let top: Vec<(&str, &str)> = found
        .iter()
        .take(2)
        .map(|f| (f["kind"].as_str().unwrap(), f["title"].as_str().unwrap()))
        .collect();
    assert!(
        top.iter()
            .any(|(k, t)| *k == "leak" && t.contains("own_code::remember (examples/own_code.rs:")),
        "{top:?}"
    );
    assert!(
        top.iter()
            .any(|(k, t)| *k == "n-plus-one" && t.contains("FROM customers WHERE id = ?")),
        "{top:?}"
    );
    assert!(stdout.contains("live heap grows"), "{stdout}");
    // The SQL pass saw the example's own connection, statement by statement.
    let sql: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("sql.json")).unwrap()).unwrap();
    let per_op = sql["statements_per_op"].as_f64().unwrap();
    assert!((per_op - 21.0).abs() < 0.01, "{per_op}");
    // Every pass wrote its outputs.
    for f in [
        "bench.json",
        "cpu.pb.gz",
        "cpu.folded",
        "heap.json",
        "leaks.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    for kind in ["cpu", "heap", "sql"] {
        let svg = out.path().join(format!("flamegraphs/{id}-{kind}.svg"));
        let text = std::fs::read_to_string(&svg).unwrap_or_else(|_| panic!("{svg:?}"));
        assert!(text.contains("<svg"), "{svg:?}");
    }
    let cpu = std::fs::read_to_string(run.join("cpu.folded")).unwrap();
    assert!(cpu.contains("own_code::recent_orders"), "{cpu}");
    // profkit's own binary reads the run like any other.
    let report = common::profkit(out.path())
        .args(["report", "--format", "md"])
        .arg(&run)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&report.stdout);
    assert!(
        report.status.success() && md.contains("shop-orders"),
        "{md}"
    );
}

#[test]
fn own_code_setup_failure_and_unknown_names() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(example("own_code"))
        .args(["run", "--rows", "10"])
        .current_dir(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("'shop-orders'") && stderr.contains("needs --rows 100 or more"),
        "{stderr}"
    );
    let profiles = out.path().join("profiles");
    let left = std::fs::read_dir(&profiles).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "a failed setup left run folders");

    let output = Command::new(example("own_code"))
        .args(["run", "point-read"])
        .current_dir(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("valid names: shop-orders"), "{stderr}");
}

/// Every built-in example profiles its own workload, at a small size.
#[test]
fn every_builtin_example_profiles_its_workload() {
    let out = tempfile::tempdir().unwrap();
    let names: Vec<String> = profkit::workload::Registry::builtins().profiled_names();
    assert_eq!(names.len(), 15);
    for name in &names {
        let output = Command::new(example(name))
            .args(["--rows", "500", "--scale", "0.02"])
            .current_dir(out.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "example {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let run = run_dir(out.path(), name);
        let manifest = std::fs::read_to_string(run.join("manifest.json")).unwrap();
        for pass in ["\"cpu\"", "\"sql\"", "\"heap\""] {
            assert!(
                manifest.contains(pass),
                "{name}: no {pass} pass: {manifest}"
            );
        }
    }
}
