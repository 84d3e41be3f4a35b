//! The web app: one page at `/dashboard`, with its scripts and stylesheet
//! compiled into the binary. Its pages (tabs, each with an address such as
//! `/dashboard#files`): Home (the node's state at a glance, live charts,
//! and the feed: the timeline and a post box), Files (upload files and
//! folders by picker or drag and drop, with progress; each capability as
//! text, with a copy button, and as a QR code; download by capability),
//! Friends (the address book; a message or a file to a friend), Inbox
//! (messages and received files, live), Names (publish a capability under
//! a name, the names and mirrors, add a mirror) and Network (peers,
//! reachability and relays, serving, upkeep).
//!
//! # Why plain files, and no build step
//!
//! The app is hand-written HTML, CSS and JavaScript, shipped as they are in
//! the binary (`include_str!`), with no framework, no npm and no CDN:
//!
//! - **it works offline**, on a community server with no internet or a
//!   laptop on a train: everything it needs comes from the node itself,
//!   and the QR codes are drawn by the node (`GET /v1/qr`), not by a
//!   script from elsewhere;
//! - **nothing to build**: `cargo build` is the whole build, with no
//!   Node.js tool chain, no lock file of hundreds of packages, and nothing
//!   generated to keep in step with its sources;
//! - **auditable**: what runs in the user's browser, with their token, is
//!   these few files as they read in the repository, small enough to read
//!   in an afternoon. Every value from the API is written with
//!   `textContent`, never parsed as HTML.
//!
//! The script is split by page, each file small: `dashboard.js` (the
//! token, the API helper, Home, Network, the names and mirrors tables and
//! the feed), `app.js` (the tabs, uploads with progress, downloads, QR
//! codes, copying), `files.js`, `friends.js` (Friends and Inbox),
//! `names.js` and `charts.js`. They are classic scripts loaded in that
//! order, sharing one global scope.
//!
//! # Security
//!
//! The page carries no data. Its script reads the API token from the
//! address's fragment (`#token=…`, which a browser never sends to a server)
//! and asks the token-guarded API, as any client does; `kith dashboard`
//! prints that address. So these files are served without a token,
//! but after the same host and origin checks as every route, and with a
//! content security policy that allows only this origin's own script,
//! style and API, and no framing. Images (a post's attachments) come from
//! the gateway, which listens on its own port of this machine: the policy
//! allows images, and only images, from loopback addresses, and from
//! `blob:` URLs (a QR code the script fetched with its token).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page, then every file it loads: (path, content type, body).
const FILES: [(&str, &str, &str); 9] = [
    (
        "/dashboard",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/dashboard.css"),
    ),
    ("/dashboard.js", JS, include_str!("dashboard/dashboard.js")),
    ("/dashboard/app.js", JS, include_str!("dashboard/app.js")),
    (
        "/dashboard/files.js",
        JS,
        include_str!("dashboard/files.js"),
    ),
    (
        "/dashboard/friends.js",
        JS,
        include_str!("dashboard/friends.js"),
    ),
    (
        "/dashboard/names.js",
        JS,
        include_str!("dashboard/names.js"),
    ),
    (
        "/dashboard/charts.js",
        JS,
        include_str!("dashboard/charts.js"),
    ),
    (
        "/dashboard/favicon.svg",
        "image/svg+xml",
        include_str!("dashboard/favicon.svg"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The paths served without a token (see the module docs).
pub(crate) const PUBLIC_PATHS: [&str; FILES.len()] = {
    let mut paths = [""; FILES.len()];
    let mut i = 0;
    while i < FILES.len() {
        paths[i] = FILES[i].0;
        i += 1;
    }
    paths
};

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' blob: http://127.0.0.1:* http://localhost:*; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The web app's routes.
pub(crate) fn router() -> Router {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { serve(content_type, body) }))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_that_are_served() {
        let page = FILES[0].2;
        for (attribute, end) in [("src=\"", '"'), ("href=\"/", '"')] {
            for part in page.split(attribute).skip(1) {
                let path = part.split(end).next().unwrap_or_default();
                let path = if attribute.ends_with('/') {
                    format!("/{path}")
                } else {
                    path.to_owned()
                };
                assert!(
                    PUBLIC_PATHS.contains(&path.as_str()),
                    "the page loads {path}, which is not served"
                );
            }
        }
        assert!(
            PUBLIC_PATHS
                .iter()
                .all(|path| path.starts_with("/dashboard"))
        );
    }
}
