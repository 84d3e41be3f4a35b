//! The answers of requests whose client may not have heard them.
//!
//! A streamed upload (`kith send`, `kith put`) can fail on the node while
//! the client is still sending: the node answers with its error and closes
//! the connection, and the client, busy writing, sees only a broken pipe.
//! Before this, `kith send` to an unreachable friend said "no kith node is
//! answering" while the node ran fine; the true cause was lost.
//!
//! So a client names its request with the `x-kith-request` header, and this
//! layer keeps the error answer of each named request that failed (at most
//! [`KEPT`], for [`KEPT_FOR`]). The client, after a write error, asks
//! `GET /v1/failures/ID` for the node's own sentence. The ids are chosen by
//! the client at random and the route is behind the token like the rest, so
//! one client cannot read another's answers without the token anyway.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiError, ErrorKind};
use crate::types::{ErrorBody, Failure};

/// The header that names a request.
pub const REQUEST_HEADER: &str = "x-kith-request";
/// Failed answers kept.
const KEPT: usize = 256;
/// How long a failed answer is kept.
const KEPT_FOR: Duration = Duration::from_secs(600);
/// Longest request id accepted.
const MAX_ID: usize = 64;
/// Largest error body read back (error bodies are one sentence).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The failed answers of named requests, newest last.
#[derive(Clone, Default)]
pub(crate) struct Failures(Arc<Mutex<VecDeque<Kept>>>);

struct Kept {
    id: String,
    at: Instant,
    failure: Failure,
}

impl Failures {
    fn remember(&self, id: String, failure: Failure) {
        let mut kept = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        kept.retain(|entry| now.duration_since(entry.at) < KEPT_FOR && entry.id != id);
        while kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back(Kept {
            id,
            at: now,
            failure,
        });
    }

    fn find(&self, id: &str) -> Option<Failure> {
        let kept = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        kept.iter()
            .rev()
            .find(|entry| entry.id == id && entry.at.elapsed() < KEPT_FOR)
            .map(|entry| entry.failure.clone())
    }
}

/// Whether `id` is a usable request id: short, letters, digits and `-`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Middleware: keeps the error answer of every named request that failed.
pub(crate) async fn remember(
    State(failures): State<Failures>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(REQUEST_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| valid_id(id))
        .map(str::to_owned);
    let response = next.run(request).await;
    let Some(id) = id else {
        return response;
    };
    let status = response.status();
    if status.is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Every error answer is an `ErrorBody` (see `error.rs`); one that is
    // not is remembered by its status.
    let kind = ErrorKind::of_status(status);
    let unreadable = || format!("the node answered {status}");
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::new(kind, unreadable()).into_response(),
    };
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
        error: kind.name().to_owned(),
        message: unreadable(),
    });
    failures.remember(
        id,
        Failure {
            status: status.as_u16(),
            error: body.error,
            message: body.message,
        },
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// `GET /v1/failures/ID`.
pub(crate) fn router(failures: Failures) -> Router {
    Router::new()
        .route("/v1/failures/{id}", get(find))
        .with_state(failures)
}

async fn find(
    State(failures): State<Failures>,
    Path(id): Path<String>,
) -> Result<Json<Failure>, ApiError> {
    failures.find(&id).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no failed request {id:?} is remembered (they are kept for 10 minutes)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_bounded_and_found_by_id() {
        let failures = Failures::default();
        for i in 0..KEPT + 10 {
            failures.remember(
                format!("r{i}"),
                Failure {
                    status: 502,
                    error: "network".to_owned(),
                    message: format!("error {i}"),
                },
            );
        }
        assert_eq!(failures.0.lock().unwrap().len(), KEPT);
        assert!(failures.find("r0").is_none(), "the oldest were dropped");
        let last = format!("r{}", KEPT + 9);
        assert_eq!(
            failures.find(&last).unwrap().message,
            format!("error {}", KEPT + 9)
        );
        assert!(valid_id("0123abcd-ef"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(MAX_ID + 1)));
    }
}
