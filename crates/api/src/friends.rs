//! The friend routes: messages, files, the inbox and the mailbox.
//!
//! - `POST /v1/msg` — `{"to": NAME|PEER_ID, "text": …}`; the answer is the
//!   [`Delivery`]: direct (acknowledged by the friend) or mailbox.
//! - `POST /v1/send?to=NAME|PEER_ID&name=FILE_NAME&size=BYTES` — the body
//!   is the file, streamed to the friend as it arrives (or, for an offline
//!   friend, stored on the network); answered with the [`Delivery`]. A
//!   transfer that breaks off part way is answered `interrupted` (424):
//!   the friend kept nothing, and the same request with `&via=mailbox`
//!   stores the file for its mailbox without trying it directly again.
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
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use kith_node::{Delivery, FriendError, Node, PeerId, SendError};
use serde::Deserialize;

use crate::error::{ApiError, ErrorKind};
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

async fn message(
    State(node): State<Node>,
    Json(request): Json<MessageRequest>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(
        node.friends()
            .send_message(&request.to, request.text)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct SendQuery {
    to: String,
    name: String,
    size: u64,
    /// `mailbox`: straight to the mailbox (a direct transfer of this file
    /// broke off; the CLI sends it again so).
    #[serde(default)]
    via: Option<String>,
}

async fn send(
    State(node): State<Node>,
    Query(query): Query<SendQuery>,
    request: Request,
) -> Result<Json<Delivery>, ApiError> {
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .into_async_read();
    let friends = node.friends();
    let delivery: Result<Delivery, SendError> = match query.via.as_deref() {
        None | Some("direct") => {
            friends
                .send_file(&query.to, &query.name, query.size, Box::new(body))
                .await
        }
        Some("mailbox") => {
            friends
                .send_file_by_mailbox(
                    &query.to,
                    &query.name,
                    query.size,
                    Box::new(body),
                    "a direct transfer of this file broke off".to_owned(),
                )
                .await
        }
        Some(other) => {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                format!("via={other:?}: the ways are \"direct\" (first) and \"mailbox\""),
            ));
        }
    };
    Ok(Json(delivery?))
}

#[derive(Debug, Deserialize)]
struct InboxQuery {
    #[serde(default)]
    after: u64,
    wait: Option<u64>,
}

async fn inbox(
    State(node): State<Node>,
    Query(query): Query<InboxQuery>,
) -> Result<Json<InboxAnswer>, ApiError> {
    let wait = query
        .wait
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT));
    let entries = node
        .friends()
        .inbox(query.after, wait)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(InboxAnswer { entries }))
}

async fn check_mail(State(node): State<Node>) -> Response {
    Json(MailChecked {
        new: node.friends().check_mail().await,
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
struct HeldQuery {
    peer: Option<String>,
}

async fn held_mail(
    State(node): State<Node>,
    Query(query): Query<HeldQuery>,
) -> Result<Json<HeldMail>, ApiError> {
    let peer = match query.peer.as_deref() {
        None => None,
        Some(text) => Some(text.trim().parse::<PeerId>().map_err(|_| {
            ApiError::bad_request(FriendError::NotAPeerId(text.to_owned()).to_string())
        })?),
    };
    let (letters, bytes) = node
        .friends()
        .held_mail(peer)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(HeldMail { letters, bytes }))
}
