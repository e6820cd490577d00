//! Comparisons that do not cry wolf, at small sizes: pairs of sides of
//! identical code (three interleaved runs a side) give (almost) no
//! verdicts and no frame change listed in more than one pair; a planted
//! 15 % slowdown (`PROFKIT_TEST_SLOWDOWN`, read by point-read only) is
//! flagged. The full-size figures are `scripts/bench-compare.sh`'s
//! (BENCHMARKS.md, "Comparisons that do not cry wolf").

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

const RUNS: usize = 3;

/// One `profkit cpu point-read` run into `dir/<side>`; returns its folder.
fn run(dir: &Path, side: &str, slowdown: Option<&str>) -> PathBuf {
    let out = dir.join(side);
    let before: Vec<PathBuf> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let mut cmd = common::profkit(dir);
    cmd.args([
        "cpu",
        "point-read",
        "--rows",
        "2000",
        "--ops",
        "20000",
        "--out",
    ])
    .arg(&out);
    match slowdown {
        Some(s) => cmd.env("PROFKIT_TEST_SLOWDOWN", s),
        None => cmd.env_remove("PROFKIT_TEST_SLOWDOWN"),
    };
    cmd.assert().success();
    let new: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new[0].clone()
}

/// A pair of sides, `RUNS` runs each, interleaved with the order turned
/// each round (A B, B A, A B …) after one run that is thrown away; the
/// comparison's JSON. Always A first made the first run of a pair — the
/// coldest — an A: identical code came out "improved" at p50 and p95 in 2
/// of 4 pairs in a fresh-clone CI run.
fn pair(dir: &Path, n: usize, slowdown: Option<&str>) -> Value {
    let (a, b) = (format!("a{n}"), format!("b{n}"));
    run(dir, &format!("warm{n}"), slowdown);
    let mut sides = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        if i % 2 == 0 {
            sides.0.push(run(dir, &a, None));
            sides.1.push(run(dir, &b, slowdown));
        } else {
            sides.1.push(run(dir, &b, slowdown));
            sides.0.push(run(dir, &a, None));
        }
    }
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let out = common::profkit(dir)
        .arg("compare")
        .arg(list(&sides.0))
        .arg(list(&sides.1))
        .args(["--json", "--flamegraphs"])
        .arg(dir.join("flamegraphs"))
        .output()
        .unwrap();
    common::assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The workload's verdict: regressed if any metric regressed, and so on.
fn verdict(c: &Value) -> (&'static str, Vec<String>) {
    let w = &c["workloads"][0];
    let changed: Vec<String> = w["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["verdict"] == "regressed" || m["verdict"] == "improved")
        .map(|m| format!("{} {}", m["metric"], m["verdict"]))
        .collect();
    let worst = if changed.iter().any(|m| m.ends_with("\"regressed\"")) {
        "regressed"
    } else if changed.is_empty() {
        "no-change"
    } else {
        "improved"
    };
    (worst, changed)
}

#[test]
fn identical_code_is_no_change_and_lists_no_frame_twice() {
    // Alone: interleaving A B A B assumes the machine's load is the same
    // for both sides; the sibling test's runs overlapping some runs of a
    // side and not the other made identical code "change" at p95 (2 of 4
    // pairs in a fresh-clone CI run).
    let _one = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts = Vec::new();
    let mut frames: BTreeMap<String, usize> = BTreeMap::new();
    for n in 0..4 {
        let c = pair(dir.path(), n, None);
        let w = &c["workloads"][0];
        assert_eq!(w["base_runs"].as_array().unwrap().len(), RUNS, "{w}");
        let (v, why) = verdict(&c);
        if v != "no-change" {
            verdicts.push(format!("pair {n}: {v} ({why:?})"));
        }
        for f in w["cpu_frames"].as_array().unwrap() {
            *frames
                .entry(f["frame"].as_str().unwrap().into())
                .or_default() += 1;
        }
        // Every interval contains its point estimate.
        for m in w["metrics"].as_array().unwrap() {
            if let (Some(x), Some(ci)) = (m["change"].as_f64(), m["ci"].as_array()) {
                let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
                assert!(lo <= x && x <= hi, "{m}");
            }
        }
    }
    assert!(
        verdicts.len() <= 1,
        "identical code called changed: {verdicts:?}"
    );
    let twice: Vec<_> = frames.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "frame changes listed in several pairs: {twice:?}"
    );
}

#[test]
fn a_planted_slowdown_is_flagged() {
    let _one = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut flagged = 0;
    let mut seen = Vec::new();
    for n in 0..3 {
        let c = pair(dir.path(), n, Some("0.15"));
        let (v, why) = verdict(&c);
        seen.push(format!("pair {n}: {v} {why:?}"));
        if v == "regressed" {
            flagged += 1;
        }
    }
    assert!(
        flagged >= 2,
        "a 15 % slowdown flagged in {flagged} of 3: {seen:?}"
    );
}
