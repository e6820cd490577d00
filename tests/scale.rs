//! Sweeps, open-loop load and stress, through the real binary on small data.

mod common;

use std::path::{Path, PathBuf};

// These tests measure time: run them one at a time (`serial`) so that they
// do not disturb each other's timings on a small machine.
use common::{profkit, serial};
use serde_json::Value;

/// Runs profkit with `args` and `--json`, returns the parsed result.
fn json(out: &Path, args: &[&str]) -> Value {
    let assert = profkit(out).args(args).arg("--json").assert().success();
    serde_json::from_slice(&assert.get_output().stdout).expect("stdout is JSON")
}

/// The single run folder under `out/profiles` whose name contains `part`.
fn run_folder(out: &Path, part: &str) -> PathBuf {
    let found: Vec<_> = std::fs::read_dir(out.join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(part))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// A timing assertion that did not hold: the one kind of failure
/// [`measured`] measures again. Every other assertion fails at once.
struct Timing(String);

/// Asserts something about measured time: on failure, returns [`Timing`]
/// from the test body instead of panicking.
macro_rules! timing {
    ($cond:expr, $($msg:tt)+) => {
        let held: bool = $cond;
        if !held {
            return Err(Timing(format!("{}: {}", stringify!($cond), format!($($msg)+))));
        }
    };
}

/// Runs a test body that measures real time. On a shared 2-core VM a
/// scheduler stall of tens of milliseconds can spoil one measurement, so a
/// failed *timing* assertion (and only that: a panic fails at once) is
/// measured once more; the test fails if it fails again, naming both
/// failures, the first one first.
fn measured(body: impl Fn() -> Result<(), Timing>) {
    if let Err(Timing(first)) = body() {
        eprintln!("timing assertion failed on the first attempt: {first}; measuring once more");
        if let Err(Timing(second)) = body() {
            panic!("timing assertion failed twice: first {first}; then {second}");
        }
    }
}

#[test]
fn thread_sweep_has_one_result_per_level_and_efficiency_from_its_throughputs() {
    let _serial = serial();
    {
        let dir = tempfile::tempdir().unwrap();
        let r = json(
            dir.path(),
            &[
                "sweep",
                "point-read",
                "--rows",
                "2000",
                "--threads",
                "1,2",
                "--ops",
                "20000",
                "--warmup",
                "1000",
            ],
        );
        assert_eq!(r["kind"], "threads");
        let levels = r["levels"].as_array().unwrap();
        assert_eq!(levels.len(), 2);
        for (l, t) in levels.iter().zip([1, 2]) {
            assert_eq!(l["threads"], t);
            assert_eq!(l["bench"]["plan"]["threads"], t);
            assert_eq!(l["bench"]["ops"], 20000);
            assert_eq!(l["bench"]["errors"], 0);
        }
        // Efficiency is per-thread throughput relative to one thread's.
        let x: Vec<f64> = levels
            .iter()
            .map(|l| f(&l["bench"]["throughput"]))
            .collect();
        assert!(x[0] > 0.0 && x[1] > 0.0, "{x:?}");
        assert_eq!(f(&levels[0]["efficiency"]), 1.0);
        let e = f(&levels[1]["efficiency"]);
        let expected = (x[1] / 2.0) / x[0];
        assert!(
            (e - expected).abs() <= 1e-9 * expected,
            "efficiency {e} vs (x₂ ÷ 2) ÷ x₁ = {expected}"
        );
        assert!(r["cores"].as_u64().unwrap() >= 1);
        let folder = run_folder(dir.path(), "sweep-point-read");
        for file in [
            "sweep.json",
            "throughput-vs-threads.svg",
            "latency-vs-threads.svg",
        ] {
            assert!(folder.join(file).exists(), "{file} missing");
        }
        let svg = std::fs::read_to_string(folder.join("throughput-vs-threads.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("threads"));
    }
}

#[test]
fn complexity_fit_flags_linear_growth_and_not_flat_data() {
    let _serial = serial();
    measured(|| {
        let dir = tempfile::tempdir().unwrap();
        // Cost proportional to rows.
        let r = json(
            dir.path(),
            &[
                "sweep",
                "linear-scan",
                "--rows",
                "20k,80k,320k",
                "--ops",
                "300",
                "--warmup",
                "30",
            ],
        );
        assert_eq!(r["kind"], "rows");
        assert_eq!(r["levels"].as_array().unwrap().len(), 3);
        // Which growth model wins on real timings is not asserted: the
        // 320k level (2.5 MB of integers) falls out of the caches a loaded
        // shared machine leaves it, and then quadratic fits best. What holds:
        // 16× the rows cost at least 8× the time, and that growth is flagged.
        let p50: Vec<f64> = r["levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| f(&l["bench"]["latency"]["p50"]))
            .collect();
        timing!(p50[2] >= 8.0 * p50[0], "linear-scan p50 by rows: {p50:?}");
        let best = r["fit"]["best"].as_str().unwrap();
        timing!(
            ["linear", "linearithmic", "quadratic"].contains(&best),
            "{}",
            r["fit"]
        );
        timing!(r["fit"]["flagged"] == true, "{}", r["fit"]);
        assert!(run_folder(dir.path(), "sweep-linear-scan")
            .join("cost-vs-rows.svg")
            .exists());
        // Cost independent of rows.
        let r = json(
            dir.path(),
            &[
                "sweep",
                "hot-loop",
                "--rows",
                "1k,10k,100k",
                "--ops",
                "2000",
                "--warmup",
                "200",
            ],
        );
        // The data is flat: cost per operation moves less than 1.5× over 100×
        // the rows, and the growth verdict (log–log slope and size of the
        // change) does not cry wolf, whichever model fits best.
        timing!(r["fit"]["flagged"] == false, "{}", r["fit"]);
        let p50: Vec<f64> = r["levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| f(&l["bench"]["latency"]["p50"]))
            .collect();
        let (lo, hi) = p50
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(lo > 0.0, "hot-loop p50 by rows: {p50:?}");
        timing!(hi / lo < 1.5, "hot-loop p50 by rows: {p50:?}");
        assert_eq!(
            r["fit"]["models"].as_array().unwrap().len(),
            5,
            "{}",
            r["fit"]
        );
        Ok(())
    });
}

#[test]
fn search_like_grows_linearly_with_the_data() {
    let _serial = serial();
    measured(|| {
        let dir = tempfile::tempdir().unwrap();
        let r = json(
            dir.path(),
            &[
                "sweep",
                "search-like",
                "--rows",
                "1k,4k,16k",
                "--ops",
                "12",
                "--warmup",
                "2",
            ],
        );
        // The verdict is the log–log slope: a scan's cost is proportional
        // to the rows (k near 1): neither flat nor quadratic. Which model of
        // five fits three noisy points best is not asserted (measured it
        // swings between log n and n² on a loaded VM).
        let k = f(&r["fit"]["exponent"]);
        timing!(
            (0.7..=1.5).contains(&k),
            "search-like grows as n^{k}: {}",
            r["fit"]
        );
        timing!(r["fit"]["flagged"] == true, "{}", r["fit"]);
        Ok(())
    });
}

#[test]
fn open_loop_holds_its_target_rate() {
    let _serial = serial();
    measured(|| {
        let dir = tempfile::tempdir().unwrap();
        let r = json(
            dir.path(),
            &["run", "noop", "--rate", "2000/s", "--duration", "1s"],
        );
        // 2000/s for 1 s schedules 2000 operations; whatever a stall on a
        // shared machine delays is caught up (open loop), so at most the
        // last few are left as backlog.
        assert_eq!(r["scheduled"], 2000);
        let (ops, backlog) = (r["ops"].as_u64().unwrap(), r["backlog"].as_u64().unwrap());
        assert_eq!(ops + backlog, 2000, "{r}");
        timing!(backlog <= 100, "{r}");
        let achieved = f(&r["achieved_rate"]);
        let expected = ops as f64 / (f(&r["elapsed"]) / 1e9);
        assert!(
            (achieved - expected).abs() <= 1e-9 * expected,
            "achieved {achieved} vs ops ÷ elapsed {expected}"
        );
        assert!(run_folder(dir.path(), "noop").join("load.json").exists());
        Ok(())
    });
}

#[test]
fn corrected_percentiles_expose_an_injected_stall() {
    let _serial = serial();
    measured(|| {
        let dir = tempfile::tempdir().unwrap();
        // `stall` pauses 50 ms every 200 operations; at 1000/s each pause
        // delays the next ~50 scheduled operations.
        let r = json(
            dir.path(),
            &[
                "run",
                "stall",
                "--rate",
                "1000/s",
                "--duration",
                "1s",
                "--warmup",
                "0",
            ],
        );
        let corrected = f(&r["corrected"]["p99"]);
        let uncorrected = f(&r["uncorrected"]["p99"]);
        timing!(corrected > 10e6, "corrected p99 {corrected} ns");
        timing!(
            corrected > 10.0 * uncorrected,
            "corrected p99 {corrected} ns vs uncorrected {uncorrected} ns"
        );
        timing!(
            f(&r["corrected"]["p95"]) > f(&r["uncorrected"]["p95"]),
            "{r}"
        );
        Ok(())
    });
}

#[test]
fn stress_finds_the_breaking_point_and_recovers() {
    let _serial = serial();
    measured(|| {
        let dir = tempfile::tempdir().unwrap();
        // `capacity` is a FIFO server with 1 ms service: with T threads
        // latency is about T ms, so p95 < 3ms holds at 1 and 2 threads.
        let r = json(
            dir.path(),
            &[
                "stress",
                "capacity",
                "--slo",
                "p95<3ms",
                "--duration",
                "500ms",
                "--max-threads",
                "32",
            ],
        );
        // Which level breaks depends on how a shared machine schedules
        // 1 ms sleeps (p95 at one thread can come near 3 ms); what must hold
        // is the search: levels double from 1, each verdict follows from its
        // own figures, the search stops at the first level that broke, and
        // a FIFO server with 1 ms service cannot meet p95 < 3 ms at 4 threads
        // or more, so some level breaks.
        let levels = r["levels"].as_array().unwrap();
        let limit = 3_000_000;
        for (i, l) in levels.iter().enumerate() {
            assert_eq!(l["threads"], 1u64 << i, "{r}");
            let p95 = l["bench"]["latency"]["p95"].as_u64().unwrap();
            let errors = f(&l["bench"]["error_rate"]);
            assert_eq!(l["held"], p95 < limit && errors <= 0.01, "{l}");
            if l["held"] == false {
                assert_eq!(i, levels.len() - 1, "the search stops at the first break");
                let why = l["broke_because"].as_str().unwrap();
                assert!(why.starts_with("p95 "), "{why}");
            }
        }
        let last = levels.last().unwrap();
        timing!(last["held"] == false, "{r}");
        timing!(last["threads"].as_u64().unwrap() <= 4, "{r}");
        assert_eq!(r["first_broke"], last["threads"]);
        let held = levels.iter().rev().find(|l| l["held"] == true);
        assert_eq!(
            r["last_held"],
            held.map_or(Value::Null, |l| l["threads"].clone())
        );
        // Recovery: back at one thread, no errors, and a verdict that follows
        // from its figures. Its p99 is the 4th-worst of ~400 operations of 1 ms
        // sleeps, which a shared VM's scheduler can double on its own, so the
        // test bounds the ratio loosely and checks the verdict's arithmetic
        // (the 1.5× rule itself is unit-tested in analyze::stress).
        let rec = &r["recovery"];
        assert_eq!(rec["threads"], 1);
        assert_eq!(rec["errors"], 0, "{rec}");
        let ratio = f(&rec["ratio"]);
        let (before, after) = (f(&rec["p99_before"]), f(&rec["p99_after"]));
        assert!(
            ratio > 0.0 && (ratio - after / before).abs() <= 1e-9 * ratio,
            "p99 after ÷ before = {ratio}: {rec}"
        );
        assert_eq!(rec["recovered"], ratio <= 1.5, "{rec}");
        assert!(run_folder(dir.path(), "stress-capacity")
            .join("stress-latency.svg")
            .exists());
        Ok(())
    });
}

#[test]
fn bad_scale_flags_exit_2_with_one_line() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "noop", "--rate", "fast"][..],
        &["stress", "noop", "--slo", "p99>5ms"],
        &["stress", "noop", "--max-errors", "150%"],
        &["sweep", "noop", "--threads", "1,2", "--rows", "1k,2k"],
        &["sweep", "noop", "--threads", "0,2"],
        &["stress", "noop", "--threads", "8", "--max-threads", "4"],
    ] {
        let out = profkit(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--rate")
                || err.contains("--slo")
                || err.contains("--max-errors")
                || err.contains("one dimension")
                || err.contains("--threads"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn profile_ends_with_a_small_thread_sweep() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    profkit(dir.path())
        .args([
            "profile",
            "--workloads",
            "point-read",
            "--rows",
            "2000",
            "--ops",
            "2000",
        ])
        .assert()
        .success();
    let index = run_folder(dir.path(), "-profile");
    let md = std::fs::read_to_string(index.join("index.md")).unwrap();
    assert!(md.contains("## Thread sweep"), "{md}");
    assert!(md.contains("| 2 |"), "{md}");
    assert!(run_folder(dir.path(), "sweep-point-read")
        .join("sweep.json")
        .exists());
}
