//! `profkit::service::pg_plans` (feature `postgres`) keeps the other debug
//! routes' access rules: strangers get 404, loopback, a token or the
//! allow-list get in; a bad `seconds` is a 400 naming it. No PostgreSQL
//! is needed: the pool is lazy, and neither a refused request nor a bad
//! window touches it (the route with a real cluster is tested through
//! `profkit attach` in tests/attach_service.rs).

#![cfg(feature = "postgres")]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use profkit::service::{self, Access};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt as _;

/// The route over a pool that would refuse (port 1), never connected.
fn plans(access: Access) -> Router {
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://profkit@127.0.0.1:1/profkit")
        .unwrap();
    service::pg_plans_with(pool, access)
}

/// GET `uri` from `peer`, with a bearer token.
async fn get_from(
    app: Router,
    uri: &str,
    peer: [u8; 4],
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((peer, 40000))));
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const FAR: [u8; 4] = [203, 0, 113, 9];
const LOCAL: [u8; 4] = [127, 0, 0, 1];
/// A window the route refuses before it records or plans anything.
const BAD: &str = "/debug/profkit/plans?seconds=0";

#[tokio::test]
async fn strangers_get_404_and_loopback_a_token_or_the_allow_list_get_in() {
    // A stranger: 404 with an empty body, as if the route did not exist.
    let (status, body) = get_from(plans(Access::default()), BAD, FAR, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "");
    // Loopback (the default) gets in: the window is checked, 400 naming it.
    let (status, body) = get_from(plans(Access::default()), BAD, LOCAL, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["parameter"], "seconds", "{body}");
    // Loopback refused when denied.
    let denied = Access::default().deny_loopback();
    assert_eq!(
        get_from(plans(denied), BAD, LOCAL, None).await.0,
        StatusCode::NOT_FOUND
    );
    // A token opens it to any peer; a wrong one does not.
    let token = Access::default().token("s3cret");
    assert_eq!(
        get_from(plans(token.clone()), BAD, FAR, Some("s3cret"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get_from(plans(token), BAD, FAR, Some("s3cre")).await.0,
        StatusCode::NOT_FOUND
    );
    // So does the allow-list.
    let listed = Access::default().allow(FAR.into());
    assert_eq!(
        get_from(plans(listed), BAD, FAR, None).await.0,
        StatusCode::BAD_REQUEST
    );
    // Too long a window: 400 too.
    let (status, body) = get_from(
        plans(Access::default()),
        "/debug/profkit/plans?seconds=301",
        LOCAL,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
