//! The web dashboard: one page at `/dashboard` (what the node holds, its
//! peers, serving, swarming and upkeep, and its feed: the timeline and a
//! post box), with its script and stylesheet compiled into the binary.
//!
//! The page carries no data. Its script reads the API token from the
//! address's fragment (`#token=…`, which a browser never sends to a server)
//! and asks the token-guarded API, as any client does; `kith dashboard`
//! prints that address. So these three files are served without a token,
//! but after the same host and origin checks as every route, and with a
//! content security policy that allows only this origin's own script,
//! style and API, and no framing. Images (a post's attachments) come from
//! the gateway, which listens on its own port of this machine: the policy
//! allows images, and only images, from loopback addresses.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The paths served without a token (see the module docs).
pub(crate) const PUBLIC_PATHS: [&str; 3] = ["/dashboard", "/dashboard.js", "/dashboard.css"];

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src http://127.0.0.1:* http://localhost:*; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes.
pub(crate) fn router() -> Router {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { serve("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { serve("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { serve("text/css; charset=utf-8", STYLE) }),
        )
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
