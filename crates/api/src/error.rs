//! Every error answer of the API, in one place.
//!
//! An error answer is JSON, `{"error": KIND, "message": SENTENCE}`
//! ([`ErrorBody`]), with the one HTTP status of its kind. [`KINDS`] is the
//! table of kinds and statuses; the `From` conversions below decide the kind
//! of each of the node's typed errors; [`json_errors`] turns the answers
//! that axum makes itself (a body that is not valid JSON, a wrong method, a
//! body over the limit) into the same shape.
//!
//! This module is a leaf: the handlers use it, it uses none of them.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kith_node::{
    FeedOpError, FriendError, GetError, NameOpError, NetError, NodeError, PathError, PutError,
    SendError, StoreError,
};

use crate::types::ErrorBody;

/// What went wrong, as far as a client needs to know to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The request is malformed: a bad capability, address, peer id,
    /// parameter or body.
    BadRequest,
    /// No API token, or the wrong one.
    Unauthorized,
    /// Refused: a foreign host or web origin, or a friend that refused.
    Forbidden,
    /// No such endpoint, file, download or remembered failure.
    NotFound,
    /// The endpoint exists but not for this method.
    MethodNotAllowed,
    /// The request body is over the limit.
    TooLarge,
    /// The request body is not of a type the endpoint takes.
    UnsupportedMediaType,
    /// Well-formed, but its content cannot be used (a body of the wrong
    /// shape, data that does not decode).
    Unprocessable,
    /// A fault inside the node.
    Internal,
    /// The network or a peer failed (unreachable, lost, refused to answer).
    Network,
    /// Not possible right now: too few peers to place the shares on.
    Unavailable,
    /// The network did not answer in time.
    Timeout,
    /// This node's disk or store quota is full.
    StorageFull,
    /// A transfer to a peer broke off part way; the peer kept nothing
    /// (the CLI sends such a file again, by the mailbox).
    Interrupted,
}

/// Each kind, in the order of [`ErrorKind`]: its name in the JSON body, its
/// HTTP status, and the sentence used when an answer axum made itself
/// carries none.
const KINDS: [(ErrorKind, &str, StatusCode, &str); 14] = [
    (
        ErrorKind::BadRequest,
        "bad_request",
        StatusCode::BAD_REQUEST,
        "the request is not valid",
    ),
    (
        ErrorKind::Unauthorized,
        "unauthorized",
        StatusCode::UNAUTHORIZED,
        "the request needs the API token",
    ),
    (
        ErrorKind::Forbidden,
        "forbidden",
        StatusCode::FORBIDDEN,
        "the request was refused",
    ),
    (
        ErrorKind::NotFound,
        "not_found",
        StatusCode::NOT_FOUND,
        "not found",
    ),
    (
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        StatusCode::METHOD_NOT_ALLOWED,
        "this API endpoint does not take that method",
    ),
    (
        ErrorKind::TooLarge,
        "too_large",
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
    ),
    (
        ErrorKind::UnsupportedMediaType,
        "unsupported_media_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the request body is not of a type this endpoint takes",
    ),
    (
        ErrorKind::Unprocessable,
        "unprocessable",
        StatusCode::UNPROCESSABLE_ENTITY,
        "the request's content cannot be used",
    ),
    (
        ErrorKind::Internal,
        "internal",
        StatusCode::INTERNAL_SERVER_ERROR,
        "the node failed inside",
    ),
    (
        ErrorKind::Network,
        "network",
        StatusCode::BAD_GATEWAY,
        "the network failed",
    ),
    (
        ErrorKind::Unavailable,
        "unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "the node cannot do this now",
    ),
    (
        ErrorKind::Timeout,
        "timeout",
        StatusCode::GATEWAY_TIMEOUT,
        "the network did not answer in time",
    ),
    (
        ErrorKind::StorageFull,
        "storage_full",
        StatusCode::INSUFFICIENT_STORAGE,
        "this node's storage is full",
    ),
    (
        ErrorKind::Interrupted,
        "interrupted",
        StatusCode::FAILED_DEPENDENCY,
        "a transfer to a peer broke off",
    ),
];

impl ErrorKind {
    fn row(self) -> &'static (ErrorKind, &'static str, StatusCode, &'static str) {
        // The table lists the kinds in their order; the test below checks it.
        &KINDS[self as usize]
    }

    /// The kind's name in the JSON body.
    pub(crate) fn name(self) -> &'static str {
        self.row().1
    }

    /// The kind's HTTP status.
    pub(crate) fn status(self) -> StatusCode {
        self.row().2
    }

    /// The kind of an error answer axum made with `status`: the kind of
    /// that status, or by its class (a client's or the node's fault) if the
    /// table has none (the answer then gets that kind's status).
    pub(crate) fn of_status(status: StatusCode) -> Self {
        KINDS
            .iter()
            .find(|row| row.2 == status)
            .map(|row| row.0)
            .unwrap_or(if status.is_client_error() {
                ErrorKind::BadRequest
            } else {
                ErrorKind::Internal
            })
    }
}

/// An error answer: a kind and one sentence.
#[derive(Debug)]
pub(crate) struct ApiError {
    kind: ErrorKind,
    message: String,
}

impl ApiError {
    /// An error of `kind` saying `message`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// Something that is not there.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A fault inside the node.
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, error.to_string())
    }

    /// Its kind.
    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its sentence.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.kind.status(),
            Json(ErrorBody {
                error: self.kind.name().to_owned(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        let kind = match &error {
            NodeError::Net(NetError::InvalidAddr { .. } | NetError::MissingPeerId { .. }) => {
                ErrorKind::BadRequest
            }
            NodeError::Net(NetError::Timeout { .. }) => ErrorKind::Timeout,
            NodeError::Net(_) => ErrorKind::Network,
            NodeError::Store(store)
                if matches!(
                    **store,
                    StoreError::QuotaExceeded { .. } | StoreError::DiskFull { .. }
                ) =>
            {
                ErrorKind::StorageFull
            }
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

impl From<NetError> for ApiError {
    fn from(error: NetError) -> Self {
        NodeError::Net(error).into()
    }
}

impl From<GetError> for ApiError {
    fn from(error: GetError) -> Self {
        let kind = match &error {
            GetError::NotFound { .. } => ErrorKind::NotFound,
            GetError::Lost { .. } => ErrorKind::Network,
            GetError::Decode(_) => ErrorKind::Unprocessable,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

impl From<PathError> for ApiError {
    fn from(error: PathError) -> Self {
        match error {
            PathError::Get(error) => error.into(),
            PathError::NotAFolder { .. } => Self::bad_request(error.to_string()),
            PathError::Missing { .. } => Self::not_found(error.to_string()),
            PathError::ListingTooLarge { .. } | PathError::Listing { .. } => {
                Self::new(ErrorKind::Unprocessable, error.to_string())
            }
            _ => Self::new(ErrorKind::Internal, error.to_string()),
        }
    }
}

impl From<FeedOpError> for ApiError {
    fn from(error: FeedOpError) -> Self {
        let kind = match &error {
            FeedOpError::Invalid(_) | FeedOpError::Own => ErrorKind::BadRequest,
            FeedOpError::NotFollowed(_) | FeedOpError::NoSuchPost(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

impl From<NameOpError> for ApiError {
    fn from(error: NameOpError) -> Self {
        let kind = match &error {
            NameOpError::Invalid(_) | NameOpError::BadTarget(_) => ErrorKind::BadRequest,
            NameOpError::NotFound { .. } | NameOpError::NotMirrored(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

impl From<PutError> for ApiError {
    fn from(error: PutError) -> Self {
        let kind = match &error {
            PutError::NotEnoughPeers { .. } | PutError::Placement { .. } => ErrorKind::Unavailable,
            PutError::Encode(_) => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, error.to_string())
    }
}

impl From<SendError> for ApiError {
    fn from(error: SendError) -> Self {
        let kind = match &error {
            SendError::Friend(FriendError::DataDir(_)) | SendError::Store(_) => ErrorKind::Internal,
            SendError::Friend(_)
            | SendError::ToSelf(_)
            | SendError::Letter(_)
            | SendError::Name(_)
            | SendError::Source(_) => ErrorKind::BadRequest,
            SendError::Refused { .. } => ErrorKind::Forbidden,
            SendError::Put { .. } => ErrorKind::Unavailable,
            SendError::Interrupted { .. } => ErrorKind::Interrupted,
            _ => ErrorKind::Network,
        };
        Self::new(kind, error.to_string())
    }
}

/// Largest body of an answer axum made itself that is read to become the
/// message (they are one line).
const MAX_FOREIGN_BODY: usize = 16 * 1024;

/// Middleware: gives every error answer that is not already JSON (the
/// ones axum makes itself: a rejected body, a wrong method) the shape of
/// [`ApiError`]. Its text, if any, becomes the message; other headers (such
/// as `Allow`) are kept.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_FOREIGN_BODY)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let kind = ErrorKind::of_status(status);
    let message = if text.is_empty() {
        kind.row().3.to_owned()
    } else {
        text
    };
    let answer = ApiError::new(kind, message).into_response();
    let (answer_parts, answer_body) = answer.into_parts();
    parts.status = answer_parts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, answer_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_row_with_its_own_name_and_status() {
        for (i, row) in KINDS.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{:?} is out of order", row.0);
            for other in &KINDS[i + 1..] {
                assert_ne!(row.0, other.0);
                assert_ne!(row.1, other.1);
                assert_ne!(row.2, other.2);
            }
            assert_eq!(ErrorKind::of_status(row.2), row.0);
            assert_eq!(row.0.status(), row.2);
            assert_eq!(row.0.name(), row.1);
        }
        assert_eq!(
            ErrorKind::of_status(StatusCode::IM_A_TEAPOT),
            ErrorKind::BadRequest
        );
    }
}
