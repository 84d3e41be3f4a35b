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
//! - `GET /v1/inbox/file?arrival=N` — the bytes of the received file of
//!   inbox entry N, as a download (`Content-Disposition: attachment`),
//!   for the web app.
//! - `GET /v1/friends` — the address book ([`FriendList`]); `POST
//!   /v1/friends` — [`Friend`]: adds a petname; `POST /v1/friends/rm` —
//!   `{"name"}`: removes one. The same file (`DIR/friends.txt`) and the
//!   same [`AddressBook`] functions as `kith friend add|ls|rm`, which edit
//!   it with no node running; the node reads it when it needs it.

use std::time::Duration;

use std::io::Read as _;
use std::path::Path;
use std::sync::Mutex;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use kith_node::{AddressBook, Content, Delivery, FileState, FriendError, Node, PeerId, SendError};
use serde::Deserialize;

use crate::error::{ApiError, ErrorKind};
use crate::types::{
    Friend, FriendAdded, FriendList, FriendRemove, HeldMail, InboxAnswer, MailChecked,
    MessageRequest,
};

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
        .route("/v1/inbox/file", get(inbox_file))
        .route("/v1/friends", get(list_friends).post(add_friend))
        .route("/v1/friends/rm", post(remove_friend))
        .with_state(node)
}

/// Bytes read from a received file per chunk of the answer.
const FILE_CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the connection.
const FILE_CHUNKS_AHEAD: usize = 4;

/// Serialises the API's own edits of the address book (load, change,
/// save); the file itself is replaced atomically.
static BOOK: Mutex<()> = Mutex::new(());

fn book_error(error: FriendError) -> ApiError {
    let kind = match &error {
        FriendError::DataDir(_) | FriendError::Damaged { .. } => ErrorKind::Internal,
        FriendError::Unknown(_) => ErrorKind::NotFound,
        _ => ErrorKind::BadRequest,
    };
    ApiError::new(kind, error.to_string())
}

fn friends_of(book: &AddressBook) -> FriendList {
    FriendList {
        friends: book
            .iter()
            .map(|(name, peer)| Friend {
                name: name.to_owned(),
                peer_id: peer.to_string(),
            })
            .collect(),
    }
}

async fn list_friends(State(node): State<Node>) -> Result<Json<FriendList>, ApiError> {
    let book = AddressBook::load(node.data_dir()).map_err(book_error)?;
    Ok(Json(friends_of(&book)))
}

async fn add_friend(
    State(node): State<Node>,
    Json(request): Json<Friend>,
) -> Result<Json<FriendAdded>, ApiError> {
    let name = request.name.trim();
    let peer: PeerId = request
        .peer_id
        .trim()
        .parse()
        .map_err(|_| book_error(FriendError::NotAPeerId(request.peer_id.trim().to_owned())))?;
    if peer == node.peer_id() {
        return Err(ApiError::bad_request(format!(
            "{peer} is this node's own id; add a friend's"
        )));
    }
    let _edit = BOOK.lock().unwrap_or_else(|e| e.into_inner());
    let mut book = AddressBook::load(node.data_dir()).map_err(book_error)?;
    let added = book.add(name, peer).map_err(book_error)?;
    book.save(node.data_dir()).map_err(book_error)?;
    Ok(Json(FriendAdded {
        name: name.to_owned(),
        peer_id: peer.to_string(),
        added,
    }))
}

async fn remove_friend(
    State(node): State<Node>,
    Json(request): Json<FriendRemove>,
) -> Result<Json<Friend>, ApiError> {
    let name = request.name.trim();
    let _edit = BOOK.lock().unwrap_or_else(|e| e.into_inner());
    let mut book = AddressBook::load(node.data_dir()).map_err(book_error)?;
    let peer = book.remove(name).map_err(book_error)?;
    book.save(node.data_dir()).map_err(book_error)?;
    Ok(Json(Friend {
        name: name.to_owned(),
        peer_id: peer.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
struct InboxFileQuery {
    arrival: u64,
}

/// `GET /v1/inbox/file?arrival=N`: the received file of entry N, read from
/// the inbox folder by its own name there (never a path taken from
/// elsewhere), streamed.
async fn inbox_file(
    State(node): State<Node>,
    Query(query): Query<InboxFileQuery>,
) -> Result<Response, ApiError> {
    let entries = node
        .friends()
        .inbox(query.arrival.saturating_sub(1), None)
        .await
        .map_err(ApiError::internal)?;
    let no_file = || ApiError::not_found(format!("inbox entry {} holds no file", query.arrival));
    let item = entries
        .into_iter()
        .find(|item| item.entry.arrival == query.arrival)
        .ok_or_else(no_file)?;
    let Content::File {
        name, path, state, ..
    } = item.entry.content
    else {
        return Err(no_file());
    };
    let path = match (state, path) {
        (FileState::Received, Some(path)) => path,
        (FileState::Failed(why), _) => {
            return Err(ApiError::not_found(format!(
                "{name} could not be fetched yet: {why}"
            )));
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "{name} has not arrived yet: try again in a moment"
            )));
        }
    };
    let inbox = node.friends().inbox_dir();
    let file_name = Path::new(&path)
        .file_name()
        .filter(|_| Path::new(&path).parent() == Some(inbox))
        .ok_or_else(|| ApiError::internal(format!("{path} is not in the inbox folder")))?;
    let file = std::fs::File::open(inbox.join(file_name)).map_err(|error| {
        ApiError::not_found(format!("{name} is no longer in the inbox folder ({error})"))
    })?;
    let size = file.metadata().map_err(ApiError::internal)?.len();
    let mut response = Response::new(body_of_file(file));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let media = crate::files::media_type_of(&name)
        .and_then(|media| HeaderValue::from_str(&media).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, media);
    let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// A body that streams `file`, read on a blocking thread.
fn body_of_file(mut file: std::fs::File) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel(FILE_CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0u8; FILE_CHUNK];
            let item = match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(Bytes::from(chunk))
                }
                Err(error) => Err(error),
            };
            let failed = item.is_err();
            if sender.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Body::from_stream(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            let item = receiver.recv().await?;
            Some((item, receiver))
        },
    ))
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
