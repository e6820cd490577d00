//! The tracing layer on its own: sqlx's query events (short statements
//! in `summary`, long ones in `db.statement`, events missing fields
//! skipped), literals stripped in `/debug/profkit/sql`, rusqlite
//! statements charged to their request, N+1 and blocking-in-async
//! findings on the right endpoints only, and spans used oddly never
//! panicking.

#![cfg(feature = "service")]

use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use profkit::service::{self, EndpointReport, EndpointsReport, FindingKind};
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(service::layer()),
        )
        .unwrap();
    });
}

fn endpoint<'a>(r: &'a EndpointsReport, name: &str) -> &'a EndpointReport {
    r.endpoints
        .iter()
        .find(|e| e.endpoint == name)
        .unwrap_or_else(|| panic!("no endpoint {name} in {r:#?}"))
}

#[test]
fn sqlx_events_short_long_and_missing_fields() {
    init();
    let rec = service::record();
    {
        let span = tracing::info_span!("request", route = "/sqlx-fields");
        let _g = span.enter();
        // Four words or fewer: sqlx leaves db.statement empty.
        tracing::debug!(target: "sqlx::query", summary = "DELETE FROM sessions", db.statement = "", rows_affected = 3u64, rows_returned = 0u64, elapsed_secs = 0.002);
        // Longer: the summary is cut, the statement is pretty-printed.
        tracing::debug!(target: "sqlx::query", summary = "SELECT id, email FROM …", db.statement = "\n\nSELECT\n  id,\n  email\nFROM\n  users\nWHERE\n  id = 42", rows_affected = 0u64, rows_returned = 1u64, elapsed_secs = 0.001);
        // No elapsed_secs; no statement at all; a cut summary only.
        tracing::debug!(target: "sqlx::query", summary = "SELECT 1", rows_returned = 1u64);
        tracing::debug!(target: "sqlx::query", elapsed_secs = 0.1);
        tracing::debug!(target: "sqlx::query", summary = "UPDATE accounts SET balance …", elapsed_secs = 0.1);
    }
    let r = rec.finish();
    let e = endpoint(&r, "/sqlx-fields");
    let texts: Vec<&str> = e.statements.iter().map(|s| s.sql.as_str()).collect();
    assert!(texts.contains(&"DELETE FROM sessions"), "{texts:?}");
    assert!(
        texts.contains(&"SELECT id, email FROM users WHERE id = ?"),
        "{texts:?}"
    );
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(r.skipped_sql_events, 3);
    assert_eq!(e.requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literals_of_hand_formatted_sql_never_reach_the_answer() {
    init();
    let load = tokio::spawn(async {
        let end = Instant::now() + Duration::from_millis(1600);
        while Instant::now() < end {
            async {
                let email = "alice@example.com";
                let sql = format!("SELECT * FROM users WHERE email = '{email}' AND age > 4242424242");
                tracing::debug!(target: "sqlx::query", summary = "SELECT * FROM users …", db.statement = sql.as_str(), rows_returned = 1u64, rows_affected = 0u64, elapsed_secs = 0.0005);
            }
            .instrument(tracing::info_span!("request", route = "/by-email"))
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut req = Request::get("/debug/profkit/sql?seconds=1")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let res = service::router().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    load.await.unwrap();
    assert!(text.contains("/by-email"), "{text}");
    assert!(text.contains("WHERE email = ? AND age > ?"), "{text}");
    assert!(!text.contains("alice"), "{text}");
    // A literal no timing figure of the answer could hold by chance (a
    // window of 1001412515 ns held "41" once).
    assert!(!text.contains("4242424242"), "{text}");
}

#[inline(never)]
fn blocking_checksum(d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut x = 0u64;
    while Instant::now() < end {
        for i in 0..1000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
    }
    std::hint::black_box(x)
}

#[test]
fn n_plus_one_and_blocking_land_on_their_endpoints_only() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("items.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items(name) SELECT 'item' || value FROM generate_series(1, 50);")
            .or_else(|_| c.execute_batch("CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) INSERT INTO items(name) SELECT 'item' || i FROM n;"))
            .unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rec = service::record();
    let (_, cpu) = service::profile_labelled(|| {
        rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let path = path.clone();
                tasks.push(tokio::spawn(
                    async move {
                        let c = rusqlite::Connection::open(&path).unwrap();
                        profkit::db::trace::install(&c);
                        for id in 1..=12 {
                            let _: String = c
                                .query_row("SELECT name FROM items WHERE id = ?1", [id], |r| {
                                    r.get(0)
                                })
                                .unwrap();
                        }
                        tokio::task::yield_now().await;
                    }
                    .instrument(tracing::info_span!(
                        "request",
                        method = "GET",
                        route = "/n-plus-one"
                    )),
                ));
                tasks.push(tokio::spawn(
                    async {
                        blocking_checksum(Duration::from_millis(100));
                        tokio::task::yield_now().await;
                    }
                    .instrument(tracing::info_span!(
                        "request",
                        method = "GET",
                        route = "/blocking"
                    )),
                ));
                tasks.push(tokio::spawn(
                    async {
                        service::spawn_blocking(|| std::thread::sleep(Duration::from_millis(40)))
                            .await
                            .unwrap();
                    }
                    .instrument(tracing::info_span!(
                        "request",
                        method = "GET",
                        route = "/fine"
                    )),
                ));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    })
    .unwrap();
    let r = rec.finish_with_cpu(&cpu);
    let n1 = endpoint(&r, "GET /n-plus-one");
    let blocking = endpoint(&r, "GET /blocking");
    let fine = endpoint(&r, "GET /fine");
    assert_eq!((n1.requests, blocking.requests, fine.requests), (3, 3, 3));
    // N+1: named with its endpoint and statement, nowhere else.
    let f = n1
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::NPlusOne)
        .unwrap_or_else(|| panic!("{n1:#?}"));
    assert_eq!(
        f.statement.as_deref(),
        Some("SELECT name FROM items WHERE id = ?")
    );
    assert!(f.message.contains("GET /n-plus-one"), "{}", f.message);
    assert_eq!(n1.statements_per_request, 12.0);
    // Blocking: named with its endpoint and a frame of the blocking call.
    let b = blocking
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Blocking)
        .unwrap_or_else(|| panic!("{blocking:#?}"));
    assert!(b.message.contains("GET /blocking"), "{}", b.message);
    assert!(b.poll.unwrap().0 >= 40_000_000, "{b:?}");
    assert!(
        b.frames.iter().any(|f| f.contains("blocking_checksum")),
        "{b:?} (cpu: {:?})",
        r.cpu
    );
    // The endpoints that did neither get neither finding; the one that
    // moved its wait to spawn_blocking spent it idle, not busy.
    assert!(fine.findings.is_empty(), "{:?}", fine.findings);
    assert!(blocking
        .findings
        .iter()
        .all(|f| f.kind != FindingKind::NPlusOne));
    assert!(
        n1.findings.iter().all(|f| f.kind != FindingKind::Blocking),
        "{:?}",
        n1.findings
    );
    assert!(fine.idle.0 > fine.busy.0, "{fine:#?}");
    assert!(blocking.busy.0 > blocking.idle.0, "{blocking:#?}");
}

#[test]
fn odd_spans_never_panic() {
    init();
    let rec = service::record();
    // A root span without fields: the endpoint is its name.
    tracing::info_span!("bare").in_scope(|| {});
    // Entered on one thread, exited on another, closed on a third.
    let span = tracing::info_span!("request", route = "/wandering");
    let id = span.id().unwrap();
    tracing::dispatcher::get_default(|d| d.enter(&id));
    let id2 = id.clone();
    std::thread::spawn(move || tracing::dispatcher::get_default(|d| d.exit(&id2)))
        .join()
        .unwrap();
    std::thread::spawn(move || drop(span)).join().unwrap();
    // An exit never entered.
    let other = tracing::info_span!("never-entered");
    let oid = other.id().unwrap();
    tracing::dispatcher::get_default(|d| d.exit(&oid));
    drop(other);
    let r = rec.finish();
    assert_eq!(endpoint(&r, "bare").requests, 1);
    assert_eq!(endpoint(&r, "/wandering").requests, 1);
}

#[test]
fn a_runtime_shut_down_mid_profile_does_not_panic() {
    init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async {
        let mut req = Request::get("/debug/profkit/endpoints?seconds=1")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
        let _ = service::router().oneshot(req).await;
    });
    std::thread::sleep(Duration::from_millis(200));
    rt.shutdown_timeout(Duration::from_millis(0));
    // The profile's blocking thread finishes on its own and frees the slot.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, p) =
        service::profile_labelled(|| blocking_checksum(Duration::from_millis(50))).unwrap();
    assert!(p.profile.samples > 0);
}
