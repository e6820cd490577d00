//! Async workloads (`workload::from_async_fn`): operations are futures on a
//! tokio runtime of the workload's own, `--threads` its workers and
//! `--concurrency` the operations in flight. Latency is one figure per
//! operation; time awaiting is told apart from time polled; every pass
//! runs on the built-in `async-sleep`.

#![cfg(feature = "service")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{json, ok, only_run, profkit, u};
use profkit::measure::{measure, Progress, RunOptions, RunPlan, Stop, Warmup};
use profkit::workload::{from_async_fn, SetupEnv, Workload};

fn env(threads: usize, concurrency: usize) -> SetupEnv {
    SetupEnv {
        rows: 10,
        seed: 1,
        threads,
        concurrency,
        db_path: std::env::temp_dir().join("profkit-async-unused.db"),
        template_dir: None,
        sql_trace: false,
    }
}

fn plan(ops: u64, threads: usize) -> RunPlan {
    RunPlan::resolve(
        &RunOptions {
            threads: Some(threads),
            stop: Some(Stop::Ops(ops)),
            warmup: Some(Warmup::Ops(0)),
            ..Default::default()
        },
        Default::default(),
    )
    .unwrap()
}

#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
    started: AtomicUsize,
}

#[test]
fn concurrency_n_keeps_n_operations_in_flight_on_fewer_workers() {
    const N: usize = 6;
    // Each operation waits at a barrier of N: the run completes only if N
    // operations are in flight at once (on 2 workers), and never more.
    let mut w = from_async_fn(
        "barrier",
        |_env| async { Ok((InFlight::default(), tokio::sync::Barrier::new(N))) },
        |s: Arc<(InFlight, tokio::sync::Barrier)>, _ctx| async move {
            let (f, barrier) = &*s;
            f.started.fetch_add(1, Ordering::SeqCst);
            let now = f.now.fetch_add(1, Ordering::SeqCst) + 1;
            f.most.fetch_max(now, Ordering::SeqCst);
            let waited = tokio::time::timeout(Duration::from_secs(20), barrier.wait()).await;
            f.now.fetch_sub(1, Ordering::SeqCst);
            waited
                .map(|_| ())
                .map_err(|_| anyhow::anyhow!("fewer than {N} in flight"))
        },
    );
    w.setup(&env(2, N)).unwrap();
    assert_eq!(Workload::concurrency(&w), Some(N));
    let r = measure(&w, &plan(4 * N as u64, 2), &Progress::default()).unwrap();
    assert_eq!((r.ops, r.errors), (4 * N as u64, 0), "{:?}", r.first_error);
    let probe = from_async_fn(
        "probe",
        |_env| async { Ok(()) },
        |_s: Arc<()>, _ctx| async { Ok(()) },
    );
    assert_eq!(
        Workload::concurrency(&probe),
        Some(16),
        "default concurrency"
    );
    let b = r.breakdown.unwrap();
    assert_eq!(b.polled.unwrap().in_flight, N);
}

#[test]
fn at_most_n_in_flight_and_latency_is_one_figure_per_operation() {
    let mut w = from_async_fn(
        "count",
        |_env| async { Ok(InFlight::default()) },
        |f: Arc<InFlight>, _ctx| async move {
            f.started.fetch_add(1, Ordering::SeqCst);
            let now = f.now.fetch_add(1, Ordering::SeqCst) + 1;
            f.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_micros(200)).await;
            tokio::task::yield_now().await;
            f.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        },
    );
    w.setup(&env(1, 3)).unwrap();
    let r = measure(&w, &plan(300, 1), &Progress::default()).unwrap();
    assert_eq!(r.ops, 300);
    let recorded: u64 = r.latency.histogram.iter().map(|(_, c)| c).sum();
    assert_eq!(recorded, 300, "one latency per operation");
    let b = r.breakdown.unwrap();
    let p = b.polled.unwrap();
    // A sleep and a yield: at least three polls per operation, all counted.
    assert!(p.polls >= 900, "{p:?}");
    // Latency runs from spawn to end: at least the sleep.
    assert!(r.latency.min.0 >= 200_000, "{:?}", r.latency.min);
    let state = w.clone();
    assert!(
        state.operation(&mut profkit::WorkerCtx::new(0, 1)).is_err(),
        "a clone is not set up"
    );
    drop(state);
    // `most` is private to the workload's state: read it through finish.
    let w = w.on_finish(|f| {
        Ok(profkit::workload::Metrics::from([
            ("most".to_string(), f.most.load(Ordering::SeqCst) as f64),
            (
                "started".to_string(),
                f.started.load(Ordering::SeqCst) as f64,
            ),
        ]))
    });
    let mut w2 = w.clone();
    w2.setup(&env(1, 3)).unwrap();
    let r = measure(&w2, &plan(120, 1), &Progress::default()).unwrap();
    assert_eq!(r.metrics["started"], 120.0);
    assert_eq!(
        r.metrics["most"], 3.0,
        "never more than --concurrency in flight"
    );
}

#[test]
fn a_future_that_sleeps_is_awaiting_and_one_that_blocks_is_polled() {
    let sleeper = |blocking: bool| {
        from_async_fn(
            if blocking { "blocks" } else { "sleeps" },
            |_env| async { Ok(()) },
            move |_s: Arc<()>, _ctx| async move {
                if blocking {
                    std::thread::sleep(Duration::from_millis(3));
                } else {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                Ok(())
            },
        )
    };
    let mut awaits = sleeper(false);
    awaits.setup(&env(2, 2)).unwrap();
    let r = measure(&awaits, &plan(60, 2), &Progress::default()).unwrap();
    let b = r.breakdown.unwrap();
    let p = b.polled.unwrap();
    assert!(
        b.share(profkit::measure::breakdown::Part::Awaiting) > 0.8,
        "{b:?}"
    );
    assert!(p.longest.0 < 3_000_000, "no poll lasts the sleep: {p:?}");

    let mut blocks = sleeper(true);
    blocks.setup(&env(2, 2)).unwrap();
    let r = measure(&blocks, &plan(60, 2), &Progress::default()).unwrap();
    let b = r.breakdown.unwrap();
    let p = b.polled.unwrap();
    assert!(p.busy.0 as f64 > 0.8 * b.total.0 as f64, "{b:?}");
    assert!(p.longest.0 >= 3_000_000, "one poll holds the sleep: {p:?}");
    assert!(
        b.share(profkit::measure::breakdown::Part::Awaiting) < 0.2,
        "{b:?}"
    );
}

#[test]
fn a_failing_or_panicking_operation_is_an_error_not_a_crash() {
    let mut w = from_async_fn(
        "flaky",
        |_env| async { Ok(()) },
        |_s: Arc<()>, ctx| {
            let op = ctx.op;
            async move {
                match op % 3 {
                    0 => anyhow::bail!("refused {op}"),
                    1 => panic!("boom {op}"),
                    _ => Ok(()),
                }
            }
        },
    );
    w.setup(&env(1, 1)).unwrap();
    let r = measure(&w, &plan(30, 1), &Progress::default()).unwrap();
    assert_eq!((r.ops, r.errors), (30, 20));
    let first = r.first_error.unwrap();
    assert!(first.contains("refused 0"), "{first}");
}

const SMALL: &[&str] = &["--rows", "200", "--concurrency", "4", "--threads", "2"];

#[test]
fn run_counts_every_operation_once_with_the_async_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = common::run_json(
        d,
        &[&["async-sleep", "--ops", "300", "--warmup", "0"], SMALL].concat(),
    );
    assert_eq!(u(&r, &["ops"]), 300);
    let counted: u64 = r["latency"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 300);
    let b = &r["breakdown"];
    assert_eq!(u(b, &["polled", "in_flight"]), 4);
    assert!(u(b, &["polled", "polls"]) >= 600, "{b}");
    assert!(u(b, &["awaiting"]) > u(b, &["polled", "busy"]), "{b}");
    assert_eq!(u(&r, &["plan", "threads"]), 2);
}

#[test]
fn every_pass_runs_on_an_async_workload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = |pass: &str, out: &str, extra: &[&str]| -> Vec<String> {
        [pass, "async-sleep", "--out", out]
            .iter()
            .chain(SMALL)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |pass: &str, out: &str, extra: &[&str]| {
        let args = small(pass, out, extra);
        ok(d, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run("cpu", "cpu", &["--ops", "600"]);
    let cpu = json(&only_run(&d.join("cpu")).join("cpu.json"));
    assert!(u(&cpu, &["samples"]) > 0, "{cpu}");
    let folded = std::fs::read_to_string(only_run(&d.join("cpu")).join("cpu.folded")).unwrap();
    assert!(
        folded.contains("profkit_hot_function"),
        "the futures' work is sampled on the runtime's workers"
    );

    // SQL that futures ran on the runtime's workers is counted, one
    // statement per operation.
    run("sql", "sql", &["--ops", "200"]);
    let sql = json(&only_run(&d.join("sql")).join("sql.json"));
    let per_op = sql["statements_per_op"].as_f64().unwrap();
    assert!((per_op - 1.0).abs() < 0.01, "{sql}");

    run("heap", "heap", &["--ops", "200"]);
    assert!(only_run(&d.join("heap")).join("heap.json").exists());
    run("leaks", "leaks", &["--ops", "200"]);
    assert!(only_run(&d.join("leaks")).join("leaks.json").exists());
    ok(
        d,
        &[
            "sweep",
            "async-sleep",
            "--out",
            "sweep",
            "--rows",
            "200",
            "--threads",
            "1,2",
            "--ops",
            "200",
            "--concurrency",
            "4",
        ],
    );
    assert!(only_run(&d.join("sweep")).join("sweep.json").exists());
    ok(
        d,
        &[
            "stress",
            "async-sleep",
            "--out",
            "stress",
            "--rows",
            "200",
            "--max-levels",
            "2",
            "--ops",
            "200",
            "--concurrency",
            "4",
        ],
    );
    let out = ok(
        d,
        &[
            "profile",
            "--workloads",
            "async-sleep",
            "--out",
            "profile",
            "--scale",
            "0.1",
        ],
    );
    assert!(!out.contains("Error"), "{out}");
}

#[test]
fn concurrency_zero_or_absurd_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (value, message) in [
        ("0", "--concurrency must be at least 1"),
        ("5000", "--concurrency 5000 is more than the limit"),
    ] {
        let a = profkit(dir.path())
            .args(["run", "async-sleep", "--concurrency", value])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(
            stderr.starts_with("Error: ") && stderr.contains(message),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}
