//! The feed routes.
//!
//! - `POST /v1/post` — [`PostRequest`]: a post (text, a reply, attachments)
//!   or the deletion of an earlier post; the answer is [`Posted`].
//! - `POST /v1/follow`, `POST /v1/unfollow` — [`FollowRequest`] (a petname
//!   or a peer id); follow answers once the feed is fetched.
//! - `GET /v1/feed?who=WHO&limit=N` — [`Timeline`]: the newest posts of one
//!   feed, or of this node and everyone it follows, and the feeds held.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kith_base::feed::{Body, EntryId, Post};
use kith_node::{AddressBook, Capability, Node, PeerId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::types::{FollowRequest, PostRequest, Posted, Timeline};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Most posts one timeline answer holds.
const MAX_LIMIT: usize = 1000;

/// The feed routes.
pub(crate) fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/post", post(post_entry))
        .route("/v1/follow", post(follow))
        .route("/v1/unfollow", post(unfollow))
        .route("/v1/feed", get(timeline))
        .with_state(node)
}

/// The peer a petname or a peer id names.
fn who(node: &Node, text: &str) -> Result<PeerId, ApiError> {
    let book = AddressBook::load(node.data_dir())
        .map_err(|error| ApiError::internal(error.to_string()))?;
    book.resolve(text)
        .map_err(|error| ApiError::bad_request(error.to_string()))
}

fn entry_id(text: &str) -> Result<EntryId, ApiError> {
    text.parse::<EntryId>()
        .map_err(|error| ApiError::bad_request(error.to_string()))
}

async fn post_entry(
    State(node): State<Node>,
    Json(request): Json<PostRequest>,
) -> ApiResult<Posted> {
    let body = match &request.delete {
        Some(id) => Body::Deletion(entry_id(id)?),
        None => {
            let mut attachments = Vec::with_capacity(request.attachments.len());
            for attachment in &request.attachments {
                let capability = attachment
                    .capability
                    .parse::<Capability>()
                    .map_err(|error| {
                        ApiError::bad_request(format!("not a valid capability: {error}"))
                    })?;
                attachments.push((attachment.name.clone(), capability));
            }
            Body::Post(Post {
                text: request.text.clone().unwrap_or_default(),
                reply_to: request.reply_to.as_deref().map(entry_id).transpose()?,
                attachments,
            })
        }
    };
    let entry = node.feeds().post(body).await?;
    Ok(Json(Posted {
        id: entry.id().to_string(),
        sequence: entry.sequence(),
    }))
}

async fn follow(
    State(node): State<Node>,
    Json(request): Json<FollowRequest>,
) -> ApiResult<kith_node::Followed> {
    let author = who(&node, &request.who)?;
    Ok(Json(node.feeds().follow(author).await?))
}

async fn unfollow(
    State(node): State<Node>,
    Json(request): Json<FollowRequest>,
) -> ApiResult<serde_json::Value> {
    let author = who(&node, &request.who)?;
    node.feeds().unfollow(author).await?;
    Ok(Json(
        serde_json::json!({ "unfollowed": author.to_string() }),
    ))
}

#[derive(Deserialize)]
struct TimelineQuery {
    who: Option<String>,
    limit: Option<usize>,
}

async fn timeline(
    State(node): State<Node>,
    Query(query): Query<TimelineQuery>,
) -> ApiResult<Timeline> {
    let author = query
        .who
        .as_deref()
        .map(|text| who(&node, text))
        .transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    Ok(Json(Timeline {
        items: node.feeds().timeline(author, limit).await?,
        feeds: node.feeds().list().await?,
    }))
}
