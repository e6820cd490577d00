//! Helpers for the tests that drive Locust through `profkit attach` or
//! `profkit load --locust`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Locust present, or (with `CI` set) a failure: the distributed run is
/// never silently untested there.
pub fn available() -> bool {
    super::tool_available("locust", super::runs("locust"), "pip install locust")
}

/// One Locust run at a time in a test binary: a master and two workers
/// start slowly on a 2-core machine.
static LOCUST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the Locust lock until dropped (a test that panicked holding it
/// does not poison the others).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LOCUST.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run folder under `out` that holds an `attach.json`.
pub fn the_attach_run(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("attach.json").exists())
        .expect("a run folder with attach.json")
}

#[allow(unused_imports)] // re-exported for the tests that import it from here
pub use super::json;

/// The run's aggregated figures: some requests, none failed.
pub fn assert_loaded_without_failures(summary: &Value) {
    assert!(
        summary["aggregated"]["requests"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(
        summary["aggregated"]["failures"].as_u64(),
        Some(0),
        "{summary}"
    );
}
