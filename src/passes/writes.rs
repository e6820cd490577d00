//! Where the main job's disk writes go: with `PROFKIT_LOG_WRITES=1` set,
//! every pass of `profkit profile` (and each heap child) prints the bytes
//! it had written to storage, `profkit: writes: <workload> <pass>: N MB`,
//! read from [`crate::measure::sys::written_bytes`] before and after.
//! `scripts/bench-writes.sh` sums these lines into the table in
//! BENCHMARKS.md ("What the main job writes to disk").

use std::sync::Mutex;

/// The prefix of every line this module prints.
pub const PREFIX: &str = "profkit: writes: ";

/// The environment variable that turns the lines on.
pub const ENV: &str = "PROFKIT_LOG_WRITES";

/// The reading of the last [`log`] (none yet: count from the start).
static LAST: Mutex<Option<u64>> = Mutex::new(None);

/// Whether the lines are on.
pub fn enabled() -> bool {
    std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Prints what the process wrote since the last call (or since it
/// started) as `what`'s share, when [`enabled`].
pub fn log(what: &str) {
    if !enabled() {
        return;
    }
    let Some(now) = crate::measure::sys::written_bytes() else {
        return;
    };
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let since = now.saturating_sub(last.unwrap_or(0));
    *last = Some(now);
    eprintln!("{PREFIX}{what}: {:.1} MB", since as f64 / 1e6);
}
