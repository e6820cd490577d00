//! Commands and options that no other test runs, each on small data: the
//! soak mode, heap --include-setup, cpu --per-thread, profile --no-heap,
//! check's default session, single-run HTML reports, flamegraphs of dhat
//! files, the low-capture warning, --seed, and the workloads the other
//! tests leave out.

mod common;

use std::path::{Path, PathBuf};

use common::{f, json as read_json, ok, run_json, u};

/// The run folders under `dir/out` whose names end with `suffix`.
fn runs(dir: &Path, out: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(out))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn leaks_soak_samples_rss_without_the_exact_heap_profiler() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        d,
        &[
            "leaks",
            "leaky-cache",
            "--soak",
            "1s",
            "--rows",
            "200",
            "--out",
            "s",
        ],
    );
    // RSS is sampled throughout; the sampled heap profiler (not dhat)
    // names growing sites when it has seen enough of them.
    assert!(out.contains("soak: ") && out.contains("RSS grew"), "{out}");
    let run = &runs(d, "s", "-leaky-cache")[0];
    assert!(
        !run.join("heap.json").exists(),
        "no heap profiler in a soak"
    );
    let leaks = read_json(&run.join("leaks.json"));
    let soak = &leaks["soak"];
    assert!(u(soak, &["elapsed"]) >= 1_000_000_000, "{soak}");
    let samples = soak["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "{soak}");
    // Samples start before the first operation and follow the run.
    assert_eq!(samples[0][0], 0);
    let ops: Vec<u64> = samples.iter().map(|s| s[0].as_u64().unwrap()).collect();
    assert!(ops.windows(2).all(|w| w[0] <= w[1]), "{ops:?}");
    assert_eq!(u(soak, &["ops"]), *ops.last().unwrap());
    assert!(u(soak, &["ops"]) > 0);
    let rss = |i: usize| samples[i][2].as_u64().unwrap();
    assert_eq!(u(soak, &["rss_start"]), rss(0));
    assert_eq!(u(soak, &["rss_end"]), rss(samples.len() - 1));
    let growth = (rss(samples.len() - 1) as f64 - rss(0) as f64) / 1e6;
    assert!((f(soak, &["growth_mb"]) - growth).abs() < 1e-6, "{soak}");
    // The leaky cache keeps ~100 B per operation: RSS grows.
    assert!(growth > 0.0, "{soak}");
    assert_eq!(leaks["ops"].as_array().unwrap().len(), 0, "no growth check");
}

#[test]
fn heap_include_setup_profiles_the_population_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["heap", "point-read", "--rows", "1000", "--ops", "100"];
    ok(d, &[&args[..], &["--out", "plain"]].concat());
    ok(
        d,
        &[&args[..], &["--out", "setup", "--include-setup"]].concat(),
    );
    let populate = |out: &str| {
        let run = &runs(d, out, "-point-read")[0];
        std::fs::read_to_string(run.join("heap.folded"))
            .unwrap()
            .lines()
            .filter(|l| {
                // `DatabaseManager::populate` or, from an impl block in a
                // submodule, `<impl ...DatabaseManager>::populate`.
                l.split(';').any(|frame| {
                    frame.contains("DatabaseManager")
                        && frame.rsplit("::").next() == Some("populate")
                })
            })
            .count()
    };
    assert_eq!(populate("plain"), 0, "setup is left out by default");
    assert!(populate("setup") > 0, "--include-setup profiles populate");
}

#[test]
fn cpu_per_thread_draws_one_flamegraph_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        d,
        &[
            "cpu",
            "hot-loop",
            "--ops",
            "3000",
            "--threads",
            "2",
            "--per-thread",
            "--out",
            "c",
        ],
    );
    let run = &runs(d, "c", "-hot-loop")[0];
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    for worker in ["pk-worker-0", "pk-worker-1"] {
        let svg = d.join("flamegraphs").join(format!("{id}-cpu-{worker}.svg"));
        assert!(svg.is_file(), "{} missing: {out}", svg.display());
        let svg = std::fs::read_to_string(svg).unwrap();
        assert!(svg.contains("profkit_hot_function"), "{worker}");
        let other = if worker.ends_with('0') {
            "pk-worker-1"
        } else {
            "pk-worker-0"
        };
        assert!(
            !svg.contains(other),
            "{worker}'s graph holds only its thread"
        );
    }
    assert!(d
        .join("flamegraphs")
        .join(format!("{id}-cpu.svg"))
        .is_file());
}

#[test]
fn profile_no_heap_skips_the_heap_passes_and_check_reads_the_newest_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let session = |w: &str| {
        ok(
            d,
            &[
                "profile",
                "--no-heap",
                "--workloads",
                w,
                "--rows",
                "1000",
                "--scale",
                "0.01",
            ],
        )
    };
    session("point-read");
    let run = &runs(d, "profiles", "-point-read")[0];
    let manifest = read_json(&run.join("manifest.json"));
    let passes: Vec<&str> = manifest["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        passes.contains(&"bench") && passes.contains(&"sql"),
        "{passes:?}"
    );
    assert!(
        !passes.contains(&"heap") && !passes.contains(&"leaks"),
        "{passes:?}"
    );
    for file in ["heap.json", "alloc.json", "leaks.json"] {
        assert!(!run.join(file).exists(), "{file} written with --no-heap");
    }
    // Run ids have one-second resolution: the second session is newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    session("n-plus-one-batched");
    std::fs::write(
        d.join("b.toml"),
        "[default]\nerror_rate = { critical = \"1%\" }\n",
    )
    .unwrap();
    let out = ok(d, &["check", "--budget", "b.toml"]);
    assert!(out.contains("n-plus-one-batched error_rate"), "{out}");
    assert!(!out.contains("point-read"), "the older session: {out}");
}

#[test]
fn a_single_run_reports_as_html_and_a_dhat_file_renders_as_a_flamegraph() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "sql",
            "n-plus-one",
            "--rows",
            "1000",
            "--ops",
            "10",
            "--out",
            "q",
        ],
    );
    let run = &runs(d, "q", "-n-plus-one")[0];
    let html = ok(
        d,
        &[
            "report",
            run.to_str().unwrap(),
            "--format",
            "html",
            "-o",
            "r.html",
        ],
    );
    assert!(
        html.is_empty() || !html.contains("<html"),
        "written to the file"
    );
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("<h1>profkit report"), "a run report");
    assert!(html.contains("<td>n-plus-one</td>"));
    assert!(html.contains("SQL statements"));
    assert!(
        html.contains("critical</span> <b>n-plus-one</b>"),
        "its finding"
    );

    ok(d, &["heap", "alloc-churn", "--ops", "2000", "--out", "h"]);
    let heap = runs(d, "h", "-alloc-churn")[0].join("heap.json");
    ok(d, &["flamegraph", heap.to_str().unwrap(), "-o", "heap.svg"]);
    let svg = std::fs::read_to_string(d.join("heap.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml") || svg.starts_with("<svg"),
        "{}",
        &svg[..60]
    );
    assert!(
        svg.contains("profkit::workload::synthetic::churn"),
        "its frames"
    );
    assert!(svg.contains(" bytes, "), "sized in bytes");
}

#[test]
fn a_frequency_above_the_kernel_tick_warns_of_low_capture() {
    let dir = tempfile::tempdir().unwrap();
    // The kernel's timer tick (100–1000 Hz) cannot deliver 4000 samples
    // per CPU-second: the profile says so.
    let out = ok(
        dir.path(),
        &[
            "cpu",
            "hot-loop",
            "--ops",
            "3000",
            "--frequency",
            "4000",
            "--sampler",
            "itimer",
            "--out",
            "c",
        ],
    );
    assert!(
        out.contains("warning: CPU sampling: asked for 4000 Hz, got")
            && out.contains("the kernel's timer tick")
            && out.contains("--frequency 199."),
        "{out}"
    );
}

/// Every email in a database, as text.
fn dump(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT id, tenant_id, sender, recipients, subject, body, sent_at FROM emails ORDER BY id")
        .unwrap();
    s.query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{}|{}|{}|{}",
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn the_same_seed_gives_the_same_data_and_the_same_operations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // mixed inserts on 20 % of its operations, chosen by the workers'
    // random streams: equal databases afterwards mean equal data and
    // equal operation sequences.
    let db = |name: &str, seed: &str| {
        let path = d.join(name);
        let r = run_json(
            d,
            &[
                "mixed",
                "--threads",
                "1",
                "--rows",
                "300",
                "--ops",
                "200",
                "--warmup",
                "0",
                "--seed",
                seed,
                "--db",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(r["plan"]["seed"], seed.parse::<u64>().unwrap());
        (dump(&path), f(&r, &["metrics", "rows_written"]))
    };
    let (a, wa) = db("a.db", "7");
    let (b, wb) = db("b.db", "7");
    let (c, _) = db("c.db", "8");
    assert!(wa > 0.0);
    assert_eq!(wa, wb);
    assert_eq!(a.len(), 300 + wa as usize);
    assert!(a == b, "same seed, different databases");
    assert_ne!(a[..300], c[..300], "another seed, other data");
}

#[test]
fn the_remaining_workloads_run_and_report_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // --trace-sql: statement counts (measured runs are uninstrumented by default).
    let run = |w: &str, ops: &str| {
        let r = run_json(
            d,
            &[
                w,
                "--rows",
                "1000",
                "--ops",
                ops,
                "--warmup",
                "0",
                "--trace-sql",
            ],
        );
        assert_eq!(u(&r, &["ops"]), ops.parse::<u64>().unwrap(), "{w}");
        assert_eq!(u(&r, &["errors"]), 0, "{w}: {}", r["first_error"]);
        r
    };
    // populate: 1,000 emails per operation, in one statement each plus the
    // transaction's two.
    let r = run("populate", "2");
    let m = &r["metrics"];
    assert_eq!(f(m, &["rows_written"]), 2000.0);
    assert_eq!(f(m, &["rows_after"]), f(m, &["rows_before"]) + 2000.0);
    // mixed: some inserts, mostly reads.
    let r = run("mixed", "200");
    let m = &r["metrics"];
    let written = f(m, &["rows_written"]);
    assert!(written > 0.0 && written < 100.0, "{m}");
    assert_eq!(f(m, &["rows_after"]), f(m, &["rows_before"]) + written);
    // Read-only workloads write nothing and run one statement per operation.
    for w in ["search-indexed", "aggregate"] {
        let r = run(w, "20");
        assert_eq!(f(&r["metrics"], &["rows_written"]), 0.0, "{w}");
        assert_eq!(f(&r, &["sql", "per_op"]), 1.0, "{w}");
    }
    // tenant-isolation reports scoped ÷ unscoped mean time.
    let r = run("tenant-isolation", "30");
    let m = &r["metrics"];
    let (scoped, unscoped) = (f(m, &["scoped_mean_ns"]), f(m, &["unscoped_mean_ns"]));
    assert!(scoped > 0.0 && unscoped > 0.0, "{m}");
    let ratio = f(m, &["scoping_cost_ratio"]);
    assert!((ratio - scoped / unscoped).abs() <= 1e-9 * ratio, "{m}");
    assert_eq!(f(&r, &["sql", "per_op"]), 6.0, "three reads each way");

    // The SQL pass: the indexed search has no findings, the aggregate
    // sorts through a temp B-tree.
    let findings = |w: &str| {
        ok(
            d,
            &["sql", w, "--rows", "1000", "--ops", "20", "--out", "q"],
        );
        let run = &runs(d, "q", &format!("Z-{w}"))[0];
        let json = read_json(&run.join("findings.json"));
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let kinds = findings("search-indexed");
    assert!(
        !kinds.iter().any(|k| k == "full-scan" || k == "temp-btree"),
        "{kinds:?}"
    );
    let kinds = findings("aggregate");
    assert!(kinds.iter().any(|k| k == "temp-btree"), "{kinds:?}");
}
