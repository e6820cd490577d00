//! `profkit export`: speedscope files pass the checks of the `speedscope`
//! npm package's file-format schema (in node; skipped locally without
//! node or the package, a failure under `CI`), Firefox Profiler files have
//! the processed format's shape; a run with no SQL exports; a run without
//! CPU data says what is missing, exit 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use serde_json::Value;

fn cpu_run(dir: &Path) -> PathBuf {
    common::profkit(dir)
        .args([
            "cpu",
            "point-read",
            "--rows",
            "500",
            "--ops",
            "40000",
            "-t",
            "2",
            "--out",
        ])
        .arg(dir.join("profiles"))
        .assert()
        .success();
    std::fs::read_dir(dir.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
}

fn export(dir: &Path, run: &Path, format: &str, out: &str) -> PathBuf {
    let path = dir.join(out);
    common::profkit(dir)
        .arg("export")
        .arg(run)
        .args(["--format", format, "-o"])
        .arg(&path)
        .assert()
        .success();
    path
}

/// The speedscope package's schema, where `npm install -g speedscope` put it.
fn speedscope_schema() -> Option<PathBuf> {
    let root = Std::new("npm").args(["root", "-g"]).output().ok()?;
    let root = String::from_utf8(root.stdout).ok()?;
    let p = Path::new(root.trim()).join("speedscope/dist/release/file-format-schema.json");
    p.is_file().then_some(p)
}

#[test]
fn speedscope_file_passes_the_speedscope_package_checks() {
    let schema = speedscope_schema();
    let present = common::runs("node") && schema.is_some();
    if !common::tool_available(
        "node and the speedscope npm package",
        present,
        "npm install -g speedscope@1.25.0",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = cpu_run(dir.path());
    let file = export(dir.path(), &run, "speedscope", "p.speedscope.json");
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/export/speedscope-check.js");
    let out = Std::new("node")
        .arg(&check)
        .arg(schema.unwrap())
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let names: Vec<&str> = v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("pk-worker")),
        "one profile per worker thread: {names:?}"
    );
    // A broken file is refused by the same check (it checks something).
    std::fs::write(&file, r#"{"profiles":[],"shared":{"frames":[]}}"#).unwrap();
    let out = Std::new("node")
        .arg(&check)
        .arg(speedscope_schema().unwrap())
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn firefox_file_has_the_processed_format_shape() {
    let dir = tempfile::tempdir().unwrap();
    let run = cpu_run(dir.path());
    let file = export(dir.path(), &run, "firefox", "p.firefox.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        v["meta"]["version"].as_u64().unwrap() >= 24,
        "{}",
        v["meta"]
    );
    assert!(v["meta"]["interval"].as_f64().unwrap() > 0.0);
    let threads = v["threads"].as_array().unwrap();
    assert!(threads
        .iter()
        .any(|t| t["name"].as_str().unwrap().starts_with("pk-worker")));
    let mut samples = 0;
    for t in threads {
        let stacks = t["stackTable"]["length"].as_u64().unwrap();
        let frames = t["frameTable"]["length"].as_u64().unwrap();
        let s = &t["samples"];
        let n = s["length"].as_u64().unwrap();
        samples += n;
        assert_eq!(s["stack"].as_array().unwrap().len() as u64, n);
        assert_eq!(
            s["time"].as_array().map(Vec::len).unwrap_or(0) as u64
                + s["timeDeltas"].as_array().map(Vec::len).unwrap_or(0) as u64,
            n
        );
        for st in s["stack"].as_array().unwrap() {
            assert!(st.as_u64().is_none_or(|i| i < stacks), "{st} of {stacks}");
        }
        for f in t["stackTable"]["frame"].as_array().unwrap() {
            assert!(f.as_u64().unwrap() < frames);
        }
    }
    assert!(samples > 0);
    // The stored names survive: a full `<… as …>::operation` frame.
    assert!(String::from_utf8_lossy(&std::fs::read(&file).unwrap())
        .contains(" as profkit::workload::Workload>::operation"));
}

#[test]
fn a_run_without_cpu_data_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    common::profkit(dir.path())
        .args(["run", "point-read", "--rows", "200", "--ops", "50", "--out"])
        .arg(dir.path().join("profiles"))
        .assert()
        .success();
    let run = std::fs::read_dir(dir.path().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let out = common::profkit(dir.path())
        .arg("export")
        .arg(&run)
        .args(["--format", "firefox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no CPU data") && err.contains("cpu.pb.gz") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!run.join("cpu.firefox.json").exists());
}
