//! `GET /v1/openapi.json`: the API described in OpenAPI 3.0
//! (`crates/api/openapi.json`, compiled into the binary).
//!
//! The description is written by hand, beside the routes it describes;
//! `crates/api/tests/openapi.rs` fails when a route in the code is missing
//! from it or one in it is missing from the code, when it does not parse
//! as OpenAPI, and when a running node answers otherwise than it says.
//! Token-guarded like every API route.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The description, as checked in.
const SPEC: &str = include_str!("../openapi.json");

/// The route that serves the description.
pub(crate) fn router() -> Router {
    Router::new().route("/v1/openapi.json", get(spec))
}

async fn spec() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC)
}
