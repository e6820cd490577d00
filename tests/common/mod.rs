//! Helpers shared by the CLI tests: run the real `profkit` binary on small data.

#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;

/// A `profkit` command writing its run folders under `out`.
pub fn profkit(out: &Path) -> Command {
    let mut cmd = Command::cargo_bin("profkit").expect("the profkit binary is built");
    cmd.current_dir(out);
    cmd
}

/// Runs `profkit run <args> --json` on small data and returns the parsed result.
pub fn run_json(out: &Path, args: &[&str]) -> serde_json::Value {
    let output = profkit(out)
        .arg("run")
        .args(args)
        .args(["--json", "--out"])
        .arg(out.join("profiles"))
        .output()
        .expect("profkit runs");
    assert!(
        output.status.success(),
        "profkit run {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// A field as u64.
pub fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a u64 in {v}"))
}

/// A field as f64.
pub fn f(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

/// Runs `profkit sql <args> --out <dir>/profiles` and returns the run
/// folder it created.
pub fn sql_run(dir: &Path, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join("profiles");
    let before: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    profkit(dir)
        .arg("sql")
        .args(args)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !before.contains(p))
        .expect("a new run folder")
}

/// Whether an external tool a test needs is here. One switch for every
/// tool (chromium, Locust, go, node, PostgreSQL): with `CI` set, a missing
/// tool fails the test, since `.ci/run` installs them all and a skipped
/// test there would let CI go green without it; elsewhere the test says
/// what it skips and why.
pub fn tool_available(tool: &str, present: bool, install: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing and CI is set: tool-dependent tests must run in CI ({install})"
        );
        eprintln!("NOTICE: {tool} is missing; skipping this test ({install})");
    }
    present
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub mod cdp;
pub mod example;
pub mod locust;
pub mod pg;
pub mod runs;

pub use runs::*;
