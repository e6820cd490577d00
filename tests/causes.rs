//! Known CPU causes named as findings, on small data, through the real
//! binary: WAL read-lock churn on `point-read`, SQLite's memory statistics
//! on `fts-search`, statement preparation (with the statement) on the
//! `fresh-statements` fixture, and none of them on `search-like`, whose CPU
//! goes to `LIKE` matching. Runs are serial: samples suffer when profiled
//! runs compete for the cores.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// The run folder `args` made under `out/profiles` (the one new folder).
fn run(out: &Path, args: &[&str]) -> PathBuf {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let profiles = out.join("profiles");
    let before: Vec<PathBuf> = std::fs::read_dir(&profiles)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let output = common::profkit(out)
        .args(args)
        .arg("--out")
        .arg(&profiles)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "profkit {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_dir(&profiles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !before.contains(p) && p.join("findings.json").is_file())
        .expect("a new run folder with findings.json")
}

/// (title, evidence joined) of the CPU-cause findings of a run folder.
fn causes(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("findings.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "cpu-cause")
        .map(|f| {
            let evidence: Vec<&str> = f["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e.as_str())
                .collect();
            (
                format!("{} | fix: {}", f["title"].as_str().unwrap(), f["hint"]),
                evidence.join(" / "),
            )
        })
        .collect()
}

/// About a second of CPU time each (the sampler counts CPU time, so a
/// busy machine does not thin the samples out; a duration would).
fn cpu(out: &Path, workload: &str, ops: &str) -> Vec<(String, String)> {
    let dir = run(out, &["cpu", workload, "--rows", "3000", "--ops", ops]);
    causes(&dir)
}

#[test]
fn point_read_names_wal_read_lock_churn() {
    let out = tempfile::tempdir().unwrap();
    let found = cpu(out.path(), "point-read", "200000");
    let lock = found
        .iter()
        .find(|(t, _)| t.contains("read lock"))
        .unwrap_or_else(|| panic!("no read-lock finding: {found:?}"));
    assert!(lock.0.contains("transaction"), "{lock:?}");
    assert!(lock.1.contains("named past 10 %"), "{lock:?}");
    assert!(lock.1.contains("get_email"), "{lock:?}");
}

#[test]
fn fts_search_names_the_memory_mutex() {
    let out = tempfile::tempdir().unwrap();
    let found = cpu(out.path(), "fts-search", "30000");
    let mem = found
        .iter()
        .find(|(t, _)| t.contains("memory mutex"))
        .unwrap_or_else(|| panic!("no memory-statistics finding: {found:?}"));
    assert!(mem.0.contains("SQLITE_CONFIG_MEMSTATUS, 0"), "{mem:?}");
}

#[test]
fn fresh_statement_per_operation_names_preparation_and_the_statement() {
    let out = tempfile::tempdir().unwrap();
    // The main job on the fixture: CPU and SQL passes in one run folder.
    let dir = run(
        out.path(),
        &[
            "profile",
            "--workloads",
            "fresh-statements",
            "--no-heap",
            "--ops",
            "4000",
        ],
    );
    let found = causes(&dir);
    let prep = found
        .iter()
        .find(|(t, _)| t.contains("prepared afresh"))
        .unwrap_or_else(|| panic!("no preparation finding: {found:?}"));
    assert!(
        prep.0.contains("JOIN mailboxes"),
        "names the statement: {prep:?}"
    );
    assert!(prep.0.contains("prepare_cached"), "{prep:?}");
    assert!(prep.1.contains("prepared afresh"), "{prep:?}");
}

#[test]
fn search_like_gets_none_of_these_causes() {
    let out = tempfile::tempdir().unwrap();
    let found = cpu(out.path(), "search-like", "400");
    assert!(found.is_empty(), "{found:?}");
}
