//! The friend routes: messages, files, the inbox and the mailbox.
//!
//! - `POST /v1/msg` — `{"to": NAME|PEER_ID, "text": …}`; the answer is the
//!   [`Delivery`]: direct (acknowledged by the friend) or mailbox.
//! - `POST /v1/send?to=NAME|PEER_ID&name=FILE_NAME&size=BYTES` — the body
//!   is the file, streamed to the friend as it arrives (or, for an offline
//!   friend, stored on the network); answered with the [`Delivery`].
//! - `GET /v1/inbox?after=N&wait=SECS` — entries that arrived after
//!   arrival number N; with `wait`, the request waits up to SECS (at most
//!   60) for one, which is how `kith inbox --follow` streams.
//! - `POST /v1/mail/check` — check the mailbox now.
//! - `GET /v1/mail/held?peer=PEER_ID` — mail this node holds for others
//!   (for one peer's mailbox, or in all).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use kith_node::{Delivery, FriendError, Node, PeerId, SendError};
use serde::Deserialize;

use crate::routes::error_response;
use crate::types::{HeldMail, InboxAnswer, MailChecked, MessageRequest};

/// Longest a `wait` on the inbox may be.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The friend routes, with their state.
pub(crate) fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/msg", post(message))
        .route("/v1/send", post(send))
        .route("/v1/inbox", get(inbox))
        .route("/v1/mail/check", post(check_mail))
        .route("/v1/mail/held", get(held_mail))
        .with_state(node)
}

fn send_status(error: &SendError) -> StatusCode {
    match error {
        SendError::Friend(FriendError::DataDir(_)) | SendError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        SendError::Friend(_) | SendError::ToSelf(_) | SendError::Letter(_) => {
            StatusCode::BAD_REQUEST
        }
        SendError::Source(_) => StatusCode::BAD_REQUEST,
        SendError::Refused { .. } => StatusCode::FORBIDDEN,
        SendError::Put { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn delivered(result: Result<Delivery, SendError>) -> Response {
    match result {
        Ok(delivery) => Json(delivery).into_response(),
        Err(error) => error_response(send_status(&error), error.to_string()),
    }
}

async fn message(State(node): State<Node>, Json(request): Json<MessageRequest>) -> Response {
    delivered(node.send_message(&request.to, request.text).await)
}

#[derive(Debug, Deserialize)]
struct SendQuery {
    to: String,
    name: String,
    size: u64,
}

async fn send(
    State(node): State<Node>,
    Query(query): Query<SendQuery>,
    request: Request,
) -> Response {
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .into_async_read();
    let result = node
        .send_file(&query.to, &query.name, query.size, Box::new(body))
        .await;
    delivered(result)
}

#[derive(Debug, Deserialize)]
struct InboxQuery {
    #[serde(default)]
    after: u64,
    wait: Option<u64>,
}

async fn inbox(State(node): State<Node>, Query(query): Query<InboxQuery>) -> Response {
    let wait = query
        .wait
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT));
    match node.inbox(query.after, wait).await {
        Ok(entries) => Json(InboxAnswer { entries }).into_response(),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn check_mail(State(node): State<Node>) -> Response {
    Json(MailChecked {
        new: node.check_mail().await,
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
struct HeldQuery {
    peer: Option<String>,
}

async fn held_mail(State(node): State<Node>, Query(query): Query<HeldQuery>) -> Response {
    let peer = match query.peer.as_deref() {
        None => None,
        Some(text) => match text.trim().parse::<PeerId>() {
            Ok(peer) => Some(peer),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    FriendError::NotAPeerId(text.to_owned()).to_string(),
                );
            }
        },
    };
    match node.held_mail(peer).await {
        Ok((letters, bytes)) => Json(HeldMail { letters, bytes }).into_response(),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}
