//! `examples/async_service.rs`, an axum + sqlx service profkit has never
//! seen, profiled in place at small sizes: its planted problems come out
//! as findings of their own endpoints, its clean endpoints get none, and
//! it also runs as a plain server.

#![cfg(feature = "service")]

mod common;

use common::{findings, run_dir};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The example binary (built when a narrow run did not build it).
fn example() -> PathBuf {
    common::example::example("async_service")
}

const LEAK_SITE: &str = "async_service::remember_render (examples/async_service.rs:";

/// The finding kinds planted in the example.
const PLANTED: [&str; 3] = ["leak", "n-plus-one", "blocking"];

#[test]
fn profile_names_the_n_plus_one_the_leaking_cache_and_the_blocking_call_by_endpoint_and_nothing_on_clean_ones(
) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(example())
        .args([
            "profile",
            "--workloads",
            "orders-recent,customers-id,reports-forecast,orders-id,health",
            "--rows",
            "2000",
            "--scale",
            "0.25",
        ])
        .current_dir(out.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The N+1 over sqlx, which only the service layer sees: its endpoint
    // and the repeated statement.
    let n1 = findings(&run_dir(out.path(), "orders-recent"));
    let top = &n1[0];
    assert_eq!(top["kind"], "n-plus-one", "{n1:#?}");
    let title = top["title"].as_str().unwrap();
    assert!(
        title.starts_with("GET /orders/recent: ")
            && title.contains("`SELECT name FROM customers WHERE id = ?`"),
        "{title}"
    );
    let leaky = findings(&run_dir(out.path(), "customers-id"));
    let top = &leaky[0];
    assert_eq!(top["kind"], "leak", "{leaky:#?}");
    let title = top["title"].as_str().unwrap();
    assert!(
        title.starts_with("GET /customers/{id}: ") && title.contains(LEAK_SITE),
        "{leaky:#?}"
    );
    assert_eq!(top["workload"], "customers-id");
    // The blocking call: its endpoint, the poll, and frames of the call.
    let blocking = findings(&run_dir(out.path(), "reports-forecast"));
    let top = &blocking[0];
    assert_eq!(top["kind"], "blocking", "{blocking:#?}");
    let title = top["title"].as_str().unwrap();
    assert!(
        title.starts_with("GET /reports/forecast: one poll held a runtime worker for "),
        "{title}"
    );
    // The title names one frame of the poll (which of the frames that
    // hold nearly all its samples comes last varies from run to run);
    // the evidence lists them, the blocking call among them.
    let evidence = top["evidence"].to_string();
    let named = title.split('`').nth(1).unwrap_or_default();
    assert!(
        !named.is_empty() && evidence.contains(named),
        "{title} / {evidence}"
    );
    assert!(
        evidence.contains("async_service::run_forecast"),
        "{evidence}"
    );
    // Each planted problem on its own endpoint only.
    for (workload, own) in [
        ("orders-recent", "n-plus-one"),
        ("customers-id", "leak"),
        ("reports-forecast", "blocking"),
        ("orders-id", ""),
        ("health", ""),
    ] {
        let found = findings(&run_dir(out.path(), workload));
        let others: Vec<_> = found
            .iter()
            .filter(|f| {
                let kind = f["kind"].as_str().unwrap();
                PLANTED.contains(&kind) && kind != own
            })
            .collect();
        assert!(others.is_empty(), "{workload}: {others:#?}");
    }
}

#[test]
fn serve_app_answers_over_http_on_loopback_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shop.db").display());
    let mut child = Command::new(example())
        .args([
            "serve-app",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let health = get("/health");
    let orders = get("/orders/recent?from=5");
    let bad = get("/orders/abc");
    // profkit's router is mounted: its endpoints answer a loopback peer.
    let endpoints = get("/debug/profkit/endpoints?seconds=1");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
        "{health}"
    );
    assert!(
        endpoints.starts_with("HTTP/1.1 200") && endpoints.contains("\"endpoints\""),
        "{endpoints}"
    );
    assert!(
        orders.starts_with("HTTP/1.1 200") && orders.contains("\"customer\":\"customer "),
        "{orders}"
    );
    assert!(
        bad.starts_with("HTTP/1.1 400")
            && bad.contains("{\"error\":\"order id must be a number, got 'abc'\"}"),
        "{bad}"
    );

    for (args, message) in [
        (
            &["serve-app", "--listen", "0.0.0.0:0"][..],
            "not a loopback address",
        ),
        (
            &["serve-app", "--listen", "here"][..],
            "--listen 'here' is not an address",
        ),
        (
            // postgres:// runs the shop on PostgreSQL (tests/attach_service.rs).
            &["serve-app", "--database-url", "mysql://x"][..],
            "is not a URL like sqlite:shop.db or postgres://",
        ),
        (
            &["serve-app", "--database-url", "postgres://127.0.0.1:1/shop"][..],
            "cannot connect to 127.0.0.1:1",
        ),
        (
            &[
                "serve-app",
                "--database-url",
                "postgres://nosuchhost.invalid",
            ][..],
            "cannot connect to nosuchhost.invalid:5432",
        ),
        (&["serve-app", "--bogus"][..], "unknown argument '--bogus'"),
        // A Postgres URL that refuses: host and port named, never the password.
        (
            &[
                "serve-app",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                "postgres://shop:secret@127.0.0.1:1/shop",
            ][..],
            "cannot connect to 127.0.0.1:1",
        ),
    ] {
        let out = Command::new(example()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("Error: ") && stderr.contains(message),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}
