//! `profkit attach` against `examples/async_service.rs` running as a plain
//! server (`serve-app`, SQLite): 2 Locust workers for a few seconds, the
//! planted N+1, blocking and leaking endpoints named by the run's findings and
//! `profkit report` rendering the folder; two replicas; and a target
//! without profkit's /debug routes, whose 404s are named in the report.

#![cfg(feature = "service")]

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::example::ExampleServer;
use common::locust::{assert_loaded_without_failures, json, one_at_a_time, the_attach_run};
use common::profkit;

/// The shop on SQLite, in `dir/name.db`, on a free loopback port; its
/// heap sampled every 4 KiB on average (not Go's 512 KiB), so that a few
/// seconds of load show the planted leak.
fn shop(dir: &Path, name: &str) -> ExampleServer {
    let url = format!("sqlite:{}", dir.join(format!("{name}.db")).display());
    ExampleServer::start(
        "async_service",
        &[
            "serve-app",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--heap-sample",
            "4096",
        ],
        dir,
    )
}

/// Every route of the shop, the planted ones included.
fn mix(dir: &Path) -> PathBuf {
    let path = dir.join("mix.json");
    std::fs::write(
        &path,
        r#"{"GET /orders/recent": 4, "GET /orders/{id}": 4, "GET /customers/{id}": 2,
            "GET /reports/forecast": 2, "GET /health": 1}"#,
    )
    .unwrap();
    path
}

/// `profkit attach URL args…` into `dir/runs` for `duration`; the run
/// folder.
fn attach_for(dir: &Path, url: &str, duration: &str, args: &[&str]) -> PathBuf {
    let out = profkit(dir)
        .args(["attach", url])
        .arg("--mix")
        .arg(mix(dir))
        .args(["--workers", "2", "--users", "4", "--spawn-rate", "4"])
        .args(["--duration", duration, "--out", "runs"])
        .args(args)
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    the_attach_run(&dir.join("runs"))
}

/// [`attach_for`] 4 seconds.
fn attach(dir: &Path, url: &str, args: &[&str]) -> PathBuf {
    attach_for(dir, url, "4s", args)
}

fn report(dir: &Path, run: &Path) -> String {
    let out = profkit(dir)
        .arg("report")
        .arg(run)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{md}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    md
}

/// (kind, endpoint) of every finding in the run.
fn findings(run: &Path) -> Vec<(String, String)> {
    json(&run.join("findings.json"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["workload"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The title of the run's leak finding on `endpoint`.
fn leak_title(run: &Path, endpoint: &str) -> String {
    json(&run.join("findings.json"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "leak" && f["workload"] == endpoint)
        .and_then(|f| f["title"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn attach_names_the_shops_n_plus_one_and_blocking_endpoints_and_report_renders() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), "shop");
    // Long enough for six heap snapshots after a warm-up on a loaded
    // machine.
    let run = attach_for(dir.path(), &shop.url, "8s", &[]);
    let summary = json(&run.join("attach.json"));
    assert_loaded_without_failures(&summary);
    let found = findings(&run);
    let has = |kind: &str, endpoint: &str| found.iter().any(|(k, e)| k == kind && e == endpoint);
    assert!(has("n-plus-one", "GET /orders/recent"), "{found:?}");
    assert!(has("blocking", "GET /reports/forecast"), "{found:?}");
    // The growing cache, from live-heap snapshots over the window.
    assert!(has("leak", "GET /customers/{id}"), "{found:?}");
    let leak = leak_title(&run, "GET /customers/{id}");
    assert!(leak.contains("remember_render"), "{leak}");
    // The clean endpoints get none.
    for clean in ["GET /orders/{id}", "GET /health"] {
        assert!(!found.iter().any(|(_, e)| e == clean), "{clean}: {found:?}");
    }
    let md = report(dir.path(), &run);
    assert!(md.contains("| attach |"), "{md}");
    assert!(md.contains("GET /orders/recent"), "{md}");
}

#[test]
fn two_replicas_of_the_shop_give_per_instance_and_merged_profiles() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (shop(dir.path(), "a"), shop(dir.path(), "b"));
    let run = attach(
        dir.path(),
        &a.url,
        &["--target", &a.url, "--target", &b.url],
    );
    let summary = json(&run.join("attach.json"));
    assert_eq!(summary["aggregated"]["failures"].as_u64(), Some(0));
    let samples = |folded: &Path| -> u64 {
        std::fs::read_to_string(folded)
            .unwrap_or_else(|e| panic!("{folded:?}: {e}"))
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let instances = summary["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{summary}");
    let mut per_instance = Vec::new();
    for inst in instances {
        let sub = run.join("instances").join(inst["name"].as_str().unwrap());
        for f in [
            "cpu.pb.gz",
            "heap.pb.gz",
            "service-sql.json",
            "endpoints.json",
        ] {
            assert!(sub.join(f).exists(), "{sub:?}/{f} missing");
        }
        // An idle replica may give a profile without samples: no
        // cpu.folded then, and the run's notes say why.
        let folded = sub.join("cpu.folded");
        if folded.exists() {
            per_instance.push(samples(&folded));
        } else {
            let cpu = format!("{}/debug/pprof/profile", inst["url"].as_str().unwrap());
            assert!(
                summary["notes"].to_string().contains(&cpu),
                "{folded:?} missing and no note: {summary}"
            );
            per_instance.push(0);
        }
    }
    // Locust loads the first; the second idles but is profiled all the same.
    assert!(per_instance[0] > 0, "{per_instance:?}");
    assert_eq!(
        samples(&run.join("cpu.folded")),
        per_instance.iter().sum::<u64>()
    );
}

/// A loopback HTTP server answering 404 to everything (a service without
/// profkit's /debug routes), until the test ends.
fn not_found_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            });
        }
    });
    url
}

#[test]
fn a_target_without_the_debug_routes_is_named_in_the_report_and_the_rest_is_collected() {
    if !common::locust::available() {
        return;
    }
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let shop = shop(dir.path(), "shop");
    let bare = not_found_server();
    let run = attach(
        dir.path(),
        &shop.url,
        &["--target", &shop.url, "--target", &bare],
    );
    let summary = json(&run.join("attach.json"));
    let status = |i: usize| -> Vec<String> {
        summary["instances"][i]["pulls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["status"].as_str().unwrap().to_string())
            .collect()
    };
    // The SQLite shop serves no plans (an optional pull: no finding); the
    // live-heap snapshots are a sixth pull, which the bare target lacks.
    assert_eq!(
        status(0),
        ["ok", "ok", "ok", "ok", "missing", "ok"],
        "{summary}"
    );
    assert_eq!(status(1), ["missing"; 5], "{summary}");
    let missing = findings(&run)
        .into_iter()
        .filter(|(k, _)| k == "missing")
        .count();
    assert_eq!(missing, 4, "one finding per missing endpoint but plans");
    let md = report(dir.path(), &run);
    let named = format!("{bare}/debug/pprof/profile");
    assert!(md.contains(&named) && md.contains("404"), "{md}");
}

/// The plans route is profkit::service::pg_plans, behind the `postgres`
/// feature: this test is part of `cargo test --features postgres`, which
/// `.ci/run` runs after the README's plain `cargo test`.
#[cfg(feature = "postgres")]
#[test]
fn on_postgres_attach_names_the_same_three_findings_and_the_planted_seq_scan() {
    if !common::locust::available() {
        return;
    }
    // Fails, not skips, under CI when PostgreSQL is missing.
    let Some(cluster) = common::pg::start() else {
        return;
    };
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let shop = ExampleServer::start(
        "async_service",
        &[
            "serve-app",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &cluster.url,
            "--heap-sample",
            "4096",
        ],
        dir.path(),
    );
    let run = attach_for(dir.path(), &shop.url, "8s", &[]);
    let summary = json(&run.join("attach.json"));
    assert_eq!(
        summary["aggregated"]["failures"].as_u64(),
        Some(0),
        "{summary}"
    );
    let plans = &summary["instances"][0]["pulls"][4];
    assert_eq!(plans["status"], "ok", "{summary}");
    // Every statement seen was planned (a PREPARE name left on a pooled
    // connection once made the second plan there fail).
    let answer = json(&run.join("plans.json"));
    assert_eq!(answer["errors"], serde_json::json!([]), "{answer}");
    assert!(answer["statements_planned"].as_u64() >= Some(4), "{answer}");
    let all = json(&run.join("findings.json"));
    let found = findings(&run);
    // The same three findings as on SQLite.
    let has = |kind: &str, endpoint: &str| found.iter().any(|(k, e)| k == kind && e == endpoint);
    assert!(has("n-plus-one", "GET /orders/recent"), "{found:?}");
    assert!(has("blocking", "GET /reports/forecast"), "{found:?}");
    assert!(has("leak", "GET /customers/{id}"), "{found:?}");
    let leak = leak_title(&run, "GET /customers/{id}");
    assert!(leak.contains("remember_render"), "{leak}");
    assert!(!found.iter().any(|(_, e)| e == "GET /health"), "{found:?}");
    let scan = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "full-scan")
        .unwrap_or_else(|| panic!("no full-scan finding: {all}"));
    assert_eq!(scan["workload"], "GET /customers/{id}", "{scan}");
    let title = scan["title"].as_str().unwrap();
    assert!(title.contains("Seq Scan on orders"), "{title}");
    assert!(
        scan["hint"]
            .as_str()
            .unwrap()
            .contains("CREATE INDEX ON orders (customer)"),
        "{scan}"
    );
    // The clean order lookup (primary key) gets no full scan.
    assert!(
        !found.contains(&("full-scan".into(), "GET /orders/{id}".into())),
        "{found:?}"
    );
    let md = report(dir.path(), &run);
    assert!(md.contains("Seq Scan on orders"), "{md}");
}
