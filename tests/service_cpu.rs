//! The key test of the tracing layer: a CPU profile taken through
//! `/debug/pprof/profile` while two endpoints are loaded concurrently on a
//! multi-thread runtime with more tasks than workers (so tasks move
//! between worker threads): each endpoint's samples hold its own handler's
//! frames and never the other's, and `go tool pprof -tags` lists both.

#![cfg(feature = "service")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[inline(never)]
fn alpha_handler_work() -> u64 {
    let mut x = 1u64;
    for i in 0..150_000u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    std::hint::black_box(x)
}

#[inline(never)]
fn beta_handler_work() -> u64 {
    let mut x = 7u64;
    for i in 0..150_000u64 {
        x ^= x.rotate_left(13).wrapping_add(i * 3);
    }
    std::hint::black_box(x)
}

/// One request: a root span naming its route, polled several times (it
/// yields between chunks of work, so the runtime may move it).
async fn request(route: &'static str) {
    let span = tracing::info_span!("request", route);
    async move {
        for _ in 0..4 {
            if route == "/alpha" {
                alpha_handler_work();
            } else {
                beta_handler_work();
            }
            tokio::task::yield_now().await;
        }
    }
    .instrument(span)
    .await
}

/// (endpoint label, functions of the sample, samples) of a pprof profile.
fn labelled_samples(bytes: &[u8]) -> Vec<(Option<String>, Vec<String>, i64)> {
    let p = profkit::render::input::decode(bytes, Path::new("profile.pb.gz")).unwrap();
    let s = |i: i64| p.string_table[i as usize].clone();
    let functions: HashMap<u64, String> = p.function.iter().map(|f| (f.id, s(f.name))).collect();
    let locations: HashMap<u64, Vec<String>> = p
        .location
        .iter()
        .map(|l| {
            (
                l.id,
                l.line
                    .iter()
                    .map(|x| functions[&x.function_id].clone())
                    .collect(),
            )
        })
        .collect();
    p.sample
        .iter()
        .map(|smp| {
            let endpoint = smp
                .label
                .iter()
                .find(|l| s(l.key) == profkit::service::ENDPOINT_LABEL)
                .map(|l| s(l.str));
            let frames = smp
                .location_id
                .iter()
                .flat_map(|id| locations[id].clone())
                .collect();
            (endpoint, frames, smp.value[0])
        })
        .collect()
}

#[test]
fn samples_follow_requests_across_worker_threads() {
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(profkit::service::layer()),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = rt.block_on(async {
        // Eight tasks on two workers: four per endpoint.
        let mut load = Vec::new();
        for i in 0..8 {
            let stop = stop.clone();
            let route = if i % 2 == 0 { "/alpha" } else { "/beta" };
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    request(route).await;
                }
            }));
        }
        let mut req = Request::get("/debug/pprof/profile?seconds=2")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        let res = profkit::service::router().oneshot(req).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    });
    let samples = labelled_samples(&bytes);
    let mut per: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for (endpoint, frames, n) in &samples {
        let Some(e) = endpoint.as_deref() else {
            continue;
        };
        let has = |f: &str| frames.iter().any(|x| x.contains(f));
        let t = per.entry(e).or_default();
        t.0 += n;
        if has("alpha_handler_work") {
            t.1 += n;
        }
        if has("beta_handler_work") {
            t.2 += n;
        }
    }
    let alpha = per.get("/alpha").copied().unwrap_or_default();
    let beta = per.get("/beta").copied().unwrap_or_default();
    eprintln!("alpha (samples, alpha frames, beta frames) = {alpha:?}, beta = {beta:?}");
    assert!(
        alpha.1 >= 20,
        "too few /alpha samples in its handler: {alpha:?}"
    );
    assert!(
        beta.2 >= 20,
        "too few /beta samples in its handler: {beta:?}"
    );
    assert_eq!(alpha.2, 0, "/alpha samples hold /beta's handler: {alpha:?}");
    assert_eq!(beta.1, 0, "/beta samples hold /alpha's handler: {beta:?}");

    let go = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if common::tool_available("go", go, ".ci/run installs golang-go") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("profile.pb.gz");
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new("go")
            .args(["tool", "pprof", "-tags"])
            .arg(&file)
            .env("HOME", dir.path())
            .env("GOCACHE", dir.path().join("gocache"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("endpoint"), "{text}");
        assert!(text.contains("/alpha") && text.contains("/beta"), "{text}");
    }
}
