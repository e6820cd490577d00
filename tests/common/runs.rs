//! Reading what a `profkit` command left behind: run folders, their JSON
//! files and findings, and the command's own output.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A JSON file, parsed (a panic names the file).
pub fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The one folder under `dir` (a test's `--out`): fails when there is none
/// or more than one.
pub fn only_run(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The one run folder of `workload` under `out/profiles` (its name ends
/// `Z-<workload>`).
pub fn run_dir(out: &Path, workload: &str) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(&format!("Z-{workload}")))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The findings of a run folder's `findings.json`, most important first.
pub fn findings(run: &Path) -> Vec<Value> {
    json(&run.join("findings.json"))["findings"]
        .as_array()
        .unwrap()
        .clone()
}

/// Fails, showing the command's stderr, unless it succeeded.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `profkit <args>` in `dir`, which must succeed; its stdout then its
/// stderr.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = super::profkit(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "profkit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Frames folded out of every default CPU and heap stack.
pub const RUNTIME_FRAMES: [&str; 8] = [
    "clone3",
    "start_thread",
    "thread_start",
    "vtable.shim",
    "catch_unwind",
    "do_call",
    "__rust_begin_short_backtrace",
    "run_phase::{{closure}}",
];

/// One test at a time in a test binary, for tests that sample the CPU or
/// time a run (the two cores are shared); a test that panicked holding it
/// does not poison the others.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends SIGINT (Ctrl-C) to a child process.
pub fn sigint(pid: u32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

/// Ctrl-C to `child`, then its exit status and stderr; fails if it has not
/// stopped within 30 s.
pub fn interrupt(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    sigint(child.id());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "profkit did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}
