//! `GET /v1/qr?text=TEXT`: a QR code of TEXT (a capability, a name, a peer
//! id) as an SVG image, for the web app to show beside what it printed as
//! text, so that a phone's camera can take it. Drawn here with the `qrcode`
//! crate: the page loads no library, from the internet or elsewhere.
//!
//! Token-guarded like every API route; the page fetches it with its token
//! and shows it through a `blob:` URL. The answer is data, never markup
//! the page parses: an `<img>` shows it, so nothing in it can run.

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;

use crate::error::ApiError;

/// Longest text encoded: more than any capability or name, less than a
/// QR code's limit (2,953 bytes at the lowest error correction).
pub(crate) const MAX_TEXT: usize = 1024;

/// The QR route.
pub(crate) fn router() -> Router {
    Router::new().route("/v1/qr", get(qr))
}

#[derive(Debug, Deserialize)]
struct QrQuery {
    text: String,
}

async fn qr(Query(query): Query<QrQuery>) -> Result<Response, ApiError> {
    let svg = svg_of(&query.text)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
            // An SVG opened on its own is a document: it gets no rights.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response())
}

/// The SVG of `text`'s QR code: black on white, with the standard quiet
/// zone, at least 256 pixels wide.
pub(crate) fn svg_of(text: &str) -> Result<String, ApiError> {
    if text.is_empty() {
        return Err(ApiError::bad_request("nothing to encode: text is empty"));
    }
    if text.len() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "the text is {} bytes; a QR code here holds at most {MAX_TEXT}",
            text.len()
        )));
    }
    // Medium error correction: a capability (about 100 characters) stays
    // a code a phone reads off a screen at a glance.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|error| ApiError::bad_request(format!("no QR code for this text: {error}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_becomes_an_svg() {
        let svg = svg_of(&format!("kith:{}", "a".repeat(100))).unwrap();
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("<path"), "{svg}");
    }

    #[test]
    fn empty_and_long_texts_are_refused() {
        assert!(svg_of("").is_err());
        assert!(svg_of(&"x".repeat(MAX_TEXT + 1)).is_err());
    }
}
