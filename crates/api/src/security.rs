//! Who may call the API: the token check, and the refusal of browsers.
//!
//! The token is compared in constant time. Browsers are kept out twice:
//! a request with an `Origin` header other than the API's own is refused
//! (a page on another site cannot make the user's browser call us), and so is
//! a request whose `Host` is not a loopback name for our port (a rebound DNS
//! name pointing at 127.0.0.1 cannot either). Only the dashboard's static
//! files (no data in them) are served without the token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorKind};

/// What the guard needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) token: Arc<str>,
    pub(crate) local: SocketAddr,
}

/// The middleware: checks host, origin and token, in that order.
pub(crate) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !host_allowed(headers, guard.local) {
        return ApiError::new(
            ErrorKind::Forbidden,
            "requests must be addressed to the API's own loopback address",
        )
        .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if origin.to_str().ok() != Some(&format!("http://{host}")) {
            return ApiError::new(
                ErrorKind::Forbidden,
                "requests from other web origins are refused",
            )
            .into_response();
        }
    }
    // The dashboard's page, script and stylesheet carry no data; the
    // page's script sends the token with every API call.
    if crate::dashboard::PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.trim().as_bytes(), guard.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(
            ErrorKind::Unauthorized,
            "wrong API token: use the one in the node's data folder (api.token)",
        )
        .into_response(),
        None => ApiError::new(
            ErrorKind::Unauthorized,
            "missing API token: send `Authorization: Bearer <token from api.token>`",
        )
        .into_response(),
    }
}

fn host_allowed(headers: &HeaderMap, local: SocketAddr) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        // HTTP/1.1 requires Host; a client that leaves it out is not a browser.
        return true;
    };
    let port = local.port();
    if host == local.to_string() {
        return true;
    }
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn only_loopback_hosts_for_our_port() {
        let local: SocketAddr = "127.0.0.1:5050".parse().unwrap();
        let with_host = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, host.parse().unwrap());
            host_allowed(&headers, local)
        };
        assert!(with_host("127.0.0.1:5050"));
        assert!(with_host("localhost:5050"));
        assert!(!with_host("evil.example:5050"));
        assert!(!with_host("127.0.0.1:80"));
    }
}
