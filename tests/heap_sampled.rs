//! Heap profiling through the real binary: the sampled estimates against
//! the exact profile of the same workload, the exact mode (profkit's
//! allocator) against dhat-rs's, and their files.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::json as read;
use serde_json::Value;

fn heap(dir: &Path, extra: &[&str]) -> (PathBuf, String) {
    let mut c = Command::cargo_bin("profkit").unwrap();
    c.current_dir(dir).args([
        "heap",
        "random-emails",
        "--rows",
        "2000",
        "--ops",
        "300",
        "--seed",
        "7",
        "--threads",
        "1",
    ]);
    let out = c.args(extra).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let runs: Vec<_> = std::fs::read_dir(dir.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    (runs[0].clone(), stdout)
}

/// The top five sites by bytes, each named by its short stack (several
/// sites share their first frame, e.g. `rusqlite::row::Row::get`).
fn top5(alloc: &Value) -> Vec<String> {
    alloc["top_by_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|s| s["stack"].to_string())
        .collect()
}

#[test]
fn sampled_estimates_match_the_exact_profile() {
    let exact_dir = tempfile::tempdir().unwrap();
    let (exact_run, _) = heap(exact_dir.path(), &[]);
    let sampled_dir = tempfile::tempdir().unwrap();
    let (run, stdout) = heap(
        sampled_dir.path(),
        &["--sampled", "--sample-interval", "16KiB"],
    );
    assert!(
        stdout.contains("sampled: one sample per 16.0 KiB"),
        "{stdout}"
    );
    let exact = read(&exact_run.join("alloc.json"));
    let sampled = read(&run.join("alloc.json"));
    assert_eq!(exact["sampled"], false);
    assert_eq!(sampled["sampled"], true);
    assert_eq!(sampled["sample_interval"], 16 * 1024);
    let e = exact["total_bytes"].as_f64().unwrap();
    let s = sampled["total_bytes"].as_f64().unwrap();
    assert!(
        (s / e - 1.0).abs() <= 0.10,
        "sampled total {s} vs exact {e}: {:.3}",
        s / e
    );
    let (te, ts) = (top5(&exact), top5(&sampled));
    let common = te
        .iter()
        .collect::<BTreeSet<_>>()
        .intersection(&ts.iter().collect())
        .count();
    assert!(
        common >= 4,
        "top-5 sites agree {common} of 5:\n{te:#?}\n{ts:#?}"
    );
    // The same files as the exact mode, plus heap.pb.gz.
    for f in [
        "heap.json",
        "heap.pb.gz",
        "heap.folded",
        "heap-live.folded",
        "heap-blocks.folded",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    assert!(exact_run.join("heap.pb.gz").exists());
    let folded = std::fs::read_to_string(run.join("heap.folded")).unwrap();
    assert!(
        !folded.contains("profkit::alloc::sampler"),
        "the sampler's own frames are left out"
    );
    let id = run.file_name().unwrap().to_string_lossy().to_string();
    for suffix in ["heap", "heap-live"] {
        let svg = sampled_dir
            .path()
            .join(format!("flamegraphs/{id}-{suffix}.svg"));
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }
    // pprof's heap format, as `go tool pprof` reads it.
    let svg = sampled_dir.path().join("from-pprof.svg");
    Command::cargo_bin("profkit")
        .unwrap()
        .arg("flamegraph")
        .arg(run.join("heap.pb.gz"))
        .arg("-o")
        .arg(&svg)
        .assert()
        .success();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

/// Bytes and blocks of the top five sites by bytes, by short stack.
fn top5_figures(alloc: &Value) -> Vec<(String, f64, f64)> {
    alloc["top_by_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|s| {
            (
                s["stack"].to_string(),
                s["total_bytes"].as_f64().unwrap(),
                s["total_blocks"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_exact_mode_counts_what_dhat_counts() {
    // The default: every allocation recorded by profkit's allocator.
    let exact_dir = tempfile::tempdir().unwrap();
    let (exact_run, stdout) = heap(exact_dir.path(), &[]);
    assert!(!stdout.contains("sampled"), "{stdout}");
    let dhat_dir = tempfile::tempdir().unwrap();
    let (dhat_run, _) = heap(dhat_dir.path(), &["--dhat"]);
    let exact = read(&exact_run.join("alloc.json"));
    let dhat = read(&dhat_run.join("alloc.json"));
    assert_eq!(exact["sampled"], false);
    assert_eq!(dhat["sampled"], false);
    for key in ["total_bytes", "total_blocks"] {
        let (e, d) = (exact[key].as_f64().unwrap(), dhat[key].as_f64().unwrap());
        assert!(
            (e / d - 1.0).abs() <= 0.02,
            "{key}: exact {e} vs dhat {d}: {:.4}",
            e / d
        );
    }
    let (te, td) = (top5(&exact), top5(&dhat));
    let common = te
        .iter()
        .collect::<BTreeSet<_>>()
        .intersection(&td.iter().collect())
        .count();
    assert!(
        common >= 4,
        "top-5 sites agree {common} of 5:\n{te:#?}\n{td:#?}"
    );
    // The same figures at the sites both name.
    let dhat_sites = top5_figures(&dhat);
    for (stack, bytes, blocks) in top5_figures(&exact) {
        let Some((_, b, k)) = dhat_sites.iter().find(|s| s.0 == stack) else {
            continue;
        };
        assert!((bytes / b - 1.0).abs() <= 0.02, "{stack}: {bytes} vs {b} B");
        assert!((blocks / k - 1.0).abs() <= 0.02, "{stack}: {blocks} vs {k}");
    }
    for key in ["peak_bytes", "end_bytes"] {
        let (e, d) = (exact[key].as_f64().unwrap(), dhat[key].as_f64().unwrap());
        assert!((e - d).abs() <= 0.02 * d.max(1.0), "{key}: {e} vs {d}");
    }
    // DHAT's file, without the recorder's own frames.
    let file = read(&exact_run.join("heap.json"));
    assert_eq!(file["mode"], "rust-heap");
    assert!(!file["cmd"].as_str().unwrap().contains("estimates"));
    let folded = std::fs::read_to_string(exact_run.join("heap.folded")).unwrap();
    assert!(!folded.contains("profkit::alloc::"), "own frames left out");
    assert!(!folded.contains("profkit::unwind::"), "own frames left out");
}

#[test]
fn bad_sample_intervals_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "12parsecs", "x"] {
        Command::cargo_bin("profkit")
            .unwrap()
            .current_dir(dir.path())
            .args(["heap", "alloc-churn", "--sampled", "--sample-interval", bad])
            .assert()
            .code(2);
    }
}

fn soak(workload: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("profkit")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "leaks",
            workload,
            "--soak",
            "3s",
            "--sample-interval",
            "4KiB",
        ])
        .args(["--rows", "2000", "--seed", "7"])
        .assert()
        .success();
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    read(&runs[0].join("leaks.json"))["soak"].clone()
}

#[test]
fn sampled_soak_names_the_leaking_site_and_its_slope() {
    let s = soak("leaky-cache");
    assert_eq!(s["sample_interval"], 4096);
    let top = &s["growing_sites"][0];
    assert!(
        top["site"]
            .as_str()
            .unwrap()
            .contains("workload::cache::preview"),
        "{s:#}"
    );
    let slope = top["slope_bytes_per_op"].as_f64().unwrap();
    assert!(
        (slope / 96.0 - 1.0).abs() <= 0.20,
        "slope {slope} B/op, not within 20 % of 96"
    );
    assert!(
        s["verdict"].as_str().unwrap().starts_with("leak: "),
        "{s:#}"
    );
}

#[test]
fn sampled_soak_finds_no_growing_site_in_a_bounded_cache() {
    let s = soak("bounded-cache");
    assert_eq!(s["growing_sites"].as_array().unwrap().len(), 0, "{s:#}");
    assert!(s["verdict"]
        .as_str()
        .unwrap()
        .starts_with("no growing site"));
}
