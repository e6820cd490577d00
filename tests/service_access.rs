//! The mounted router's security and bad-input rules: strangers get 404
//! (not 403), a token or the allow-list opens it, the app's own routes
//! are untouched; `seconds` out of range or not a number is a 400 naming
//! the parameter; a second CPU profile while one runs is a 409.

#![cfg(feature = "service")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt as _;
use profkit::service::{self, Access};
use tower::ServiceExt as _;

fn app(access: Access) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hi" }))
        .merge(service::router_with(access))
}

/// GET `uri` from `peer` (none: served without ConnectInfo), with a token.
async fn get_from(
    app: Router,
    uri: &str,
    peer: Option<[u8; 4]>,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(ip) = peer {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    }
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const FAR: [u8; 4] = [203, 0, 113, 9];
const LOCAL: [u8; 4] = [127, 0, 0, 1];

#[tokio::test]
async fn strangers_get_404_and_a_token_or_the_allow_list_opens_it() {
    let plain = Access::default();
    // A remote peer: 404, as if the route did not exist; the app's own
    // route still answers it.
    assert_eq!(
        get_from(app(plain.clone()), "/metrics", Some(FAR), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_from(
            app(plain.clone()),
            "/debug/pprof/profile?seconds=1",
            Some(FAR),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_from(app(plain.clone()), "/hello", Some(FAR), None).await,
        (StatusCode::OK, "hi".into())
    );
    // Without ConnectInfo the peer is unknown: treated as remote.
    assert_eq!(
        get_from(app(plain.clone()), "/metrics", None, None).await.0,
        StatusCode::NOT_FOUND
    );
    // Loopback gets in.
    assert_eq!(
        get_from(app(plain.clone()), "/metrics", Some(LOCAL), None)
            .await
            .0,
        StatusCode::OK
    );
    // A token opens it to anyone who has it, and only to them.
    let token = Access::default().token("s3cret");
    assert_eq!(
        get_from(app(token.clone()), "/metrics", Some(FAR), Some("s3cret"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get_from(app(token.clone()), "/metrics", None, Some("s3cret"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get_from(app(token.clone()), "/metrics", Some(FAR), Some("guess"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_from(app(plain.clone()), "/metrics", Some(FAR), Some("s3cret"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The allow-list.
    let listed = Access::default().allow(FAR.into());
    assert_eq!(
        get_from(app(listed.clone()), "/metrics", Some(FAR), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get_from(app(listed), "/metrics", Some([203, 0, 113, 10]), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_seconds_are_400_json_naming_the_parameter() {
    for uri in [
        "/debug/pprof/profile?seconds=0",
        "/debug/pprof/profile?seconds=301",
        "/debug/pprof/profile?seconds=abc",
        "/debug/profkit/sql?seconds=0",
        "/debug/profkit/endpoints?seconds=9999",
        "/debug/pprof/heap?seconds=x",
        "/debug/profkit/flamegraph?seconds=-3&endpoint=a",
    ] {
        let (status, body) = get_from(app(Access::default()), uri, Some(LOCAL), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{uri}: not JSON: {body}"));
        assert_eq!(v["parameter"], "seconds", "{uri}: {body}");
        assert!(
            v["error"].as_str().unwrap().contains("seconds"),
            "{uri}: {body}"
        );
    }
    // A stranger learns nothing, not even that the parameter is bad.
    let (status, _) = get_from(
        app(Access::default()),
        "/debug/pprof/profile?seconds=0",
        Some(FAR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cpu_profile_while_one_runs_is_409() {
    let first = tokio::spawn(get_from(
        app(Access::default()),
        "/debug/pprof/profile?seconds=2",
        Some(LOCAL),
        None,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = get_from(
        app(Access::default()),
        "/debug/pprof/profile?seconds=1",
        Some(LOCAL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("already"), "{body}");
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty());
    // The slot is free again.
    let (status, _) = get_from(
        app(Access::default()),
        "/debug/pprof/profile?seconds=1",
        Some(LOCAL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn the_side_port_is_loopback_unless_asked() {
    let e = service::spawn("0.0.0.0:0".parse().unwrap()).err().unwrap();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    let side = service::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = side.local_addr();
    let body = ureq::get(&format!("http://{addr}/debug/pprof/profile?seconds=0"))
        .call()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(body.contains("400"), "{body}");
    side.shutdown();
}
