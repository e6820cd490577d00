//! Who may read the debug endpoints: loopback peers by default, requests
//! carrying a configured bearer token, or peers on an explicit allow-list.
//! Anyone else gets 404, as if the routes did not exist (not 403: the
//! endpoints are not advertised).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Access rules of [`super::router_with`] and [`super::spawn_with`],
/// built from [`Access::default`] (loopback peers only):
///
/// ```
/// use profkit::service::Access;
/// let access = Access::default()
///     .token("s3cret")                       // `Authorization: Bearer s3cret` opens it
///     .allow("10.0.0.7".parse().unwrap());   // and so does this peer
/// ```
///
/// The peer address comes from axum's `ConnectInfo<SocketAddr>`: serve the
/// app with `into_make_service_with_connect_info::<SocketAddr>()`. Without
/// it the peer is unknown and treated as remote (404 unless a token
/// matches). Behind a reverse proxy every peer is the proxy: use a token.
#[derive(Clone, Debug)]
pub struct Access {
    /// Loopback peers are let in (default on).
    loopback: bool,
    /// A bearer token that lets any peer in (default none).
    token: Option<Arc<str>>,
    /// Peers let in whatever their address (default none).
    allow: Vec<IpAddr>,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            loopback: true,
            token: None,
            allow: Vec::new(),
        }
    }
}

impl Access {
    /// Lets in requests with `Authorization: Bearer <token>` from any peer.
    /// An empty token is ignored (it would open the routes to everyone).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = (!token.is_empty()).then(|| token.into());
        self
    }

    /// Lets in the peer `ip` (repeat for more).
    pub fn allow(mut self, ip: IpAddr) -> Self {
        self.allow.push(canonical(ip));
        self
    }

    /// Refuses loopback peers too: only the token and the allow-list open
    /// the routes (for a listener a local proxy forwards strangers to).
    pub fn deny_loopback(mut self) -> Self {
        self.loopback = false;
        self
    }

    /// Whether a request from `peer` (when known) with this
    /// `Authorization` header value may read the routes.
    pub fn permits(&self, peer: Option<IpAddr>, authorization: Option<&str>) -> bool {
        if let (Some(want), Some(got)) = (&self.token, authorization) {
            if let Some(got) = got.strip_prefix("Bearer ") {
                if constant_time_eq(want.as_bytes(), got.trim().as_bytes()) {
                    return true;
                }
            }
        }
        match peer.map(canonical) {
            Some(ip) => (self.loopback && ip.is_loopback()) || self.allow.contains(&ip),
            None => false,
        }
    }
}

/// `::ffff:127.0.0.1` is 127.0.0.1.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Compares without stopping at the first difference (the time taken does
/// not tell how much of a guessed token was right).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: 404 with an empty body unless [`Access::permits`].
pub(crate) async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if access.permits(peer, auth) {
        next.run(req).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_token_and_allow_list() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "203.0.113.9".parse().unwrap();
        let a = Access::default();
        assert!(a.permits(Some(lo), None));
        assert!(a.permits(Some(mapped), None));
        assert!(!a.permits(Some(far), None));
        assert!(!a.permits(None, None));
        let a = Access::default()
            .token("t0k")
            .allow("198.51.100.1".parse().unwrap());
        assert!(a.permits(Some(far), Some("Bearer t0k")));
        assert!(!a.permits(Some(far), Some("Bearer t0")));
        assert!(!a.permits(Some(far), Some("t0k")));
        assert!(a.permits(Some("198.51.100.1".parse().unwrap()), None));
        let a = Access::default().deny_loopback();
        assert!(!a.permits(Some(lo), None));
        // An empty token opens nothing.
        assert!(!Access::default()
            .token("")
            .permits(Some(far), Some("Bearer ")));
    }
}
