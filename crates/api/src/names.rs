//! The name and mirror routes.
//!
//! - `POST /v1/names/publish` — [`PublishRequest`]; points this node's
//!   default name, or its name for `label`, at a capability; the answer is
//!   [`NameAnswer`] with how many peers keep the record.
//! - `GET /v1/names/resolve?name=NAME&fresh=true` — [`NameAnswer`]: where
//!   the name points now.
//! - `GET /v1/names` — [`MyNames`]: the names this node publishes.
//! - `POST /v1/mirrors` — [`MirrorRequest`]; starts mirroring a name or a
//!   capability and answers once the first copy is made (or failed:
//!   the answer's `error` says why).
//! - `GET /v1/mirrors` — [`Mirrors`].
//! - `POST /v1/mirrors/rm` — [`MirrorRequest`]; stops mirroring.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kith_node::{Capability, Name, NameRecord, Node};
use serde::Deserialize;

use crate::error::ApiError;
use crate::types::{MirrorRequest, Mirrors, MyNameAnswer, MyNames, NameAnswer, PublishRequest};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The name routes.
pub(crate) fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/names", get(mine))
        .route("/v1/names/publish", post(publish))
        .route("/v1/names/resolve", get(resolve))
        .route("/v1/mirrors", get(mirrors).post(mirror))
        .route("/v1/mirrors/rm", post(unmirror))
        .with_state(node)
}

/// The answer describing `record`.
pub(crate) fn answer_of(record: &NameRecord) -> NameAnswer {
    NameAnswer {
        name: record.name().to_string(),
        capability: record.target().to_string(),
        sequence: record.sequence(),
        published_at: record.published_at(),
        expires_at: record.expires_at(),
        cached: false,
        stored_on: None,
        asked: None,
    }
}

/// Reads a name's text, with a sentence a person understands.
pub(crate) fn parse_name(text: &str) -> Result<Name, ApiError> {
    text.parse::<Name>()
        .map_err(|error| ApiError::bad_request(format!("not a valid name: {error}")))
}

async fn publish(
    State(node): State<Node>,
    Json(request): Json<PublishRequest>,
) -> ApiResult<NameAnswer> {
    let target = request
        .capability
        .parse::<Capability>()
        .map_err(|error| ApiError::bad_request(format!("not a valid capability: {error}")))?;
    let published = node
        .names()
        .publish(&target, request.label.as_deref())
        .await?;
    let mut answer = answer_of(&published.record);
    answer.stored_on = Some(published.stored_on);
    answer.asked = Some(published.asked);
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct ResolveQuery {
    name: String,
    #[serde(default)]
    fresh: bool,
}

async fn resolve(
    State(node): State<Node>,
    Query(query): Query<ResolveQuery>,
) -> ApiResult<NameAnswer> {
    let name = parse_name(&query.name)?;
    let resolved = node.names().resolve(name, query.fresh).await?;
    let mut answer = answer_of(&resolved.record);
    answer.cached = resolved.cached;
    Ok(Json(answer))
}

async fn mine(State(node): State<Node>) -> ApiResult<MyNames> {
    let names = node
        .names()
        .mine()
        .await?
        .into_iter()
        .map(|mine| MyNameAnswer {
            label: mine.label,
            name: mine.name.to_string(),
            capability: mine.record.as_ref().map(|r| r.target().to_string()),
            sequence: mine.record.as_ref().map(NameRecord::sequence),
        })
        .collect();
    Ok(Json(MyNames { names }))
}

async fn mirror(
    State(node): State<Node>,
    Json(request): Json<MirrorRequest>,
) -> ApiResult<kith_node::MirrorInfo> {
    Ok(Json(node.names().mirror(&request.target).await?))
}

async fn mirrors(State(node): State<Node>) -> ApiResult<Mirrors> {
    Ok(Json(Mirrors {
        mirrors: node.names().mirrors().await?,
    }))
}

async fn unmirror(
    State(node): State<Node>,
    Json(request): Json<MirrorRequest>,
) -> ApiResult<serde_json::Value> {
    node.names().unmirror(&request.target).await?;
    Ok(Json(
        serde_json::json!({ "removed": request.target.trim() }),
    ))
}
