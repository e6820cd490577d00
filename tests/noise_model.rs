//! A noise model measured on this machine (`profkit noise`): the command
//! writes one with finite spreads and the right degrees of freedom;
//! `compare` reads it from `<out>/noise.json` or `--noise-model`, judges
//! sides of one run by it and names its source; a bad or missing named
//! file is one line, exit 2.
//!
//! The comparison cases use the committed runs of tests/data/github (one
//! run a side; the current point-read ran with a planted slowdown,
//! `PROFKIT_TEST_SLOWDOWN=1.0`).

mod common;

use std::path::{Path, PathBuf};

use profkit::analyze::replicates::NoiseModel;
use profkit::store::noise::{write_noise_model, NOISE_FILE};
use serde_json::Value;

fn side(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/github")
        .join(name);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `profkit compare` of the committed sides with `extra` arguments.
fn compare(dir: &Path, extra: &[&str]) -> std::process::Output {
    common::profkit(dir)
        .arg("compare")
        .arg(side("base"))
        .arg(side("current"))
        .args(["--flamegraphs", "fg"])
        .args(extra)
        .output()
        .unwrap()
}

fn compare_json(dir: &Path, extra: &[&str]) -> Value {
    let out = compare(dir, &[extra, &["--json"]].concat());
    common::assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The verdicts of point-read's metrics that are not "no-change".
fn point_read_calls(c: &Value) -> Vec<String> {
    let w = c["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == "point-read")
        .expect("point-read compared");
    w["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["verdict"] == "regressed" || m["verdict"] == "improved")
        .map(|m| format!("{} {}", m["metric"], m["verdict"]))
        .collect()
}

fn one_line_exit_2(out: &std::process::Output, names: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(names), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn compare_judges_one_run_sides_by_the_model_it_finds_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Built-in model: the planted slowdown is flagged.
    let builtin = compare_json(d, &[]);
    assert!(
        builtin["noise_model"]
            .as_str()
            .unwrap()
            .starts_with("built-in"),
        "{}",
        builtin["noise_model"]
    );
    assert!(!point_read_calls(&builtin).is_empty());
    // A machine ten times noisier than the slowdown: no change.
    let mut huge = NoiseModel {
        source: "a very noisy machine, for a test".into(),
        share_sd_pp: 50.0,
        ..NoiseModel::default()
    };
    for v in huge.sd.values_mut() {
        *v = 3.0;
    }
    let path = d.join("profiles").join(NOISE_FILE);
    write_noise_model(&path, &huge).unwrap();
    let noisy = compare_json(d, &[]);
    assert!(point_read_calls(&noisy).is_empty(), "{noisy:#}");
    let source = noisy["noise_model"].as_str().unwrap();
    assert!(
        source.starts_with("a very noisy machine") && source.contains("noise.json"),
        "{source}"
    );
    let text = compare(d, &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("noise model: a very noisy machine, for a test, from profiles/noise.json"),
        "{text}"
    );
    // The same file named from elsewhere; another --out without one is
    // the built-in model again.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let named = compare_json(
        d,
        &["--out", "elsewhere", "--noise-model", "profiles/noise.json"],
    );
    assert!(point_read_calls(&named).is_empty(), "{named:#}");
    let other = compare_json(d, &["--out", "elsewhere"]);
    assert!(!point_read_calls(&other).is_empty());
}

#[test]
fn a_bad_or_missing_model_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    one_line_exit_2(
        &compare(d, &["--noise-model", "nosuch.json"]),
        "nosuch.json",
    );
    std::fs::write(d.join("cut.json"), "{\"noise_model_version\": 1, \"sd\": {").unwrap();
    one_line_exit_2(&compare(d, &["--noise-model", "cut.json"]), "cut.json");
    std::fs::write(d.join("mine.json"), "{\"notes\": \"mine\"}").unwrap();
    one_line_exit_2(&compare(d, &["--noise-model", "mine.json"]), "mine.json");
    // A corrupt model where compare looks by itself is no silent fallback.
    std::fs::create_dir(d.join("profiles")).unwrap();
    std::fs::write(d.join("profiles").join(NOISE_FILE), "not json").unwrap();
    one_line_exit_2(&compare(d, &[]), "noise.json");
    // `profkit noise` refuses a file in its way that is not a model, and
    // fewer than 2 runs, before running anything.
    let out = common::profkit(d)
        .args(["noise", "--workloads", "point-read", "-o", "mine.json"])
        .output()
        .unwrap();
    one_line_exit_2(&out, "mine.json");
    assert_eq!(
        std::fs::read_to_string(d.join("mine.json")).unwrap(),
        "{\"notes\": \"mine\"}"
    );
    let out = common::profkit(d)
        .args([
            "noise",
            "--workloads",
            "point-read",
            "--runs",
            "1",
            "--out",
            "fresh",
        ])
        .output()
        .unwrap();
    one_line_exit_2(&out, "--runs 1");
}

#[test]
fn noise_writes_a_model_measured_here_that_compare_picks_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = common::profkit(d)
        .args([
            "noise",
            "--workloads",
            "point-read,n-plus-one",
            "--runs",
            "3",
            "--rows",
            "2000",
            "--ops",
            "400",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    common::assert_success(&out);
    assert!(stdout.contains("wrote profiles/noise.json"), "{stdout}");
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("profiles/noise.json")).unwrap())
            .unwrap();
    // 3 runs of 2 workloads: 2 + 2 degrees of freedom.
    assert_eq!(model["df"], 4.0, "{model:#}");
    let source = model["source"].as_str().unwrap();
    assert!(
        source.starts_with("measured on this machine, 20")
            && source.contains("3 runs × 2 workloads (n-plus-one, point-read)"),
        "{source}"
    );
    let sd = model["sd"].as_object().unwrap();
    for (k, v) in sd {
        let v = v.as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{k}: {v}");
    }
    for k in ["mean", "p50", "p95", "throughput"] {
        let v = sd[k].as_f64().unwrap();
        assert!(v > 0.0 && v < 5.0, "{k}: {v} ({model:#})");
    }
    let share = model["share_sd_pp"].as_f64().unwrap();
    assert!(share.is_finite() && share >= 0.0, "{share}");
    // No heap passes: the heap figures are the built-in ones, and named so.
    let builtin: Vec<&str> = model["from_builtin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(builtin.contains(&"peak_heap"), "{builtin:?}");
    assert!(!builtin.contains(&"p50"), "{builtin:?}");
    // No run of the measurement is left behind: only the model.
    let left: Vec<_> = std::fs::read_dir(d.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [NOISE_FILE], "{left:?}");
    // compare finds it and says so.
    let c = compare_json(d, &[]);
    let named = c["noise_model"].as_str().unwrap();
    assert!(named.starts_with("measured on this machine"), "{named}");
    // Measuring again replaces the model, and says what it replaced.
    let again = common::profkit(d)
        .args([
            "noise",
            "--workloads",
            "point-read",
            "--runs",
            "2",
            "--rows",
            "2000",
            "--ops",
            "200",
        ])
        .output()
        .unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout);
    common::assert_success(&again);
    assert!(
        again_out.contains("replaced the previous model (measured on this machine"),
        "{again_out}"
    );
}
