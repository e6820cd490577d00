//! The main job's leak check is sized by time, not only by a block count:
//! the `churn-leak` fixture (allocation churn around a 60-byte string kept
//! per operation) is found by `profile`, and `bounded-cache` stays clean.
//! Small sizes: one churned block per operation (this debug build tracks
//! a block in ~0.2 ms), the main job's budget scaled by `--scale`.

mod common;

use std::path::{Path, PathBuf};

fn profile(dir: &Path, args: &[&str]) -> PathBuf {
    let out = dir.join("profiles");
    let output = common::profkit(dir)
        .arg("profile")
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    common::assert_success(&output);
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("leaks.json").is_file())
        .expect("a run folder with leaks.json")
}

fn leaks(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("leaks.json")).unwrap()).unwrap()
}

#[test]
fn profile_finds_a_small_leak_under_allocation_churn() {
    let dir = tempfile::tempdir().unwrap();
    let run = profile(
        dir.path(),
        &["--workloads", "churn-leak", "--rows", "1", "--scale", "3"],
    );
    let r = leaks(&run);
    let verdict = r["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("leak: "), "{r:#}");
    let top = &r["leaks"][0];
    let slope = top["slope_bytes_per_op"].as_f64().unwrap();
    assert!((56.0..=80.0).contains(&slope), "slope {slope} B/op: {top}");
    assert!(
        top["site"].as_str().unwrap().contains("fixtures.rs"),
        "{top}"
    );
    // Sized by time: more than the 40 operations the bench share allowed.
    assert!(r["ops"][0].as_u64().unwrap() > 120, "{}", r["ops"]);
}

#[test]
fn bounded_cache_stays_clean_under_the_time_sized_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = profile(
        dir.path(),
        &[
            "--workloads",
            "bounded-cache",
            "--rows",
            "2000",
            "--scale",
            "0.2",
        ],
    );
    let r = leaks(&run);
    assert_eq!(r["verdict"], "no growth found", "{r:#}");
}
