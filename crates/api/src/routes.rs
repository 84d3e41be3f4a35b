//! The API's routes: thin translations from HTTP to [`kith_node::Node`] calls.

use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use kith_node::{Node, PeerId, parse_multiaddr};

use crate::error::{ApiError, json_errors};
use crate::security::{self, Guard};
use crate::types::{ConnectRequest, Connected, Health, Id, Peer, Peers, PingRequest, Pong};

/// Largest JSON body the API accepts. Requests are small commands; file
/// bytes never travel in JSON.
const MAX_BODY: usize = 64 * 1024;

/// The API's router for `node`, guarded by `token`. `local` is the address
/// the API listens on, used to refuse requests addressed to other hosts.
pub fn router(node: Node, token: &str, local: SocketAddr) -> Router {
    let guard = Guard {
        token: token.into(),
        local,
    };
    let failures = crate::failures::Failures::default();
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/id", get(id))
        .route("/v1/peers", get(peers))
        .route("/v1/connect", post(connect))
        .route("/v1/ping", post(ping))
        .route("/v1/status", get(status))
        .route("/v1/metrics", get(metrics))
        .route("/v1/repair", post(repair))
        .with_state(node.clone())
        .merge(crate::files::router(node.clone()))
        .merge(crate::friends::router(node.clone()))
        .merge(crate::names::router(node.clone()))
        .merge(crate::feeds::router(node))
        .merge(crate::dashboard::router())
        .merge(crate::qr::router())
        .merge(crate::openapi::router())
        .merge(crate::failures::router(failures.clone()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Inside `remember`, so that it keeps the JSON answer.
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            failures,
            crate::failures::remember,
        ))
        .route_layer(middleware::from_fn_with_state(
            guard.clone(),
            security::check,
        ))
        .layer(middleware::from_fn_with_state(guard, security::check))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn status(State(node): State<Node>) -> ApiResult<kith_node::NodeStatus> {
    Ok(Json(node.status().await?))
}

/// Prometheus / OpenMetrics text. Token-guarded like every route: point
/// Prometheus at it with `authorization: { credentials_file: DIR/api.token }`.
async fn metrics(State(node): State<Node>) -> Result<Response, ApiError> {
    let text = node.metrics().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn repair(State(node): State<Node>) -> ApiResult<crate::types::Repaired> {
    let before = node.upkeep().counters();
    let stripes = node.upkeep().repair_now().await;
    let after = node.upkeep().counters();
    Ok(Json(crate::types::Repaired {
        stripes,
        shares: after.shares_repaired.saturating_sub(before.shares_repaired),
        checked: after.stripes_checked.saturating_sub(before.stripes_checked),
    }))
}

async fn health(State(node): State<Node>) -> ApiResult<Health> {
    Ok(Json(Health {
        status: "ok".to_owned(),
        peer_id: node.peer_id().to_string(),
        uptime_secs: node.uptime().as_secs(),
        peers: node.peers().await?.len(),
    }))
}

async fn id(State(node): State<Node>) -> ApiResult<Id> {
    Ok(Json(Id {
        peer_id: node.peer_id().to_string(),
        listen_addrs: node
            .listen_addrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
        gateway: node
            .data_dir()
            .gateway_addr()
            .ok()
            .map(|addr| format!("http://{addr}/")),
        reachability: Some(node.reachability().await?),
    }))
}

async fn peers(State(node): State<Node>) -> ApiResult<Peers> {
    let peers = node
        .peers()
        .await?
        .into_iter()
        .map(|info| Peer {
            peer_id: info.peer.to_string(),
            addrs: info.addrs.iter().map(ToString::to_string).collect(),
            connections: info.connections.iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(Json(Peers { peers }))
}

async fn connect(
    State(node): State<Node>,
    Json(request): Json<ConnectRequest>,
) -> ApiResult<Connected> {
    let addr = parse_multiaddr(&request.addr)?;
    let peer = node.connect(addr).await?;
    Ok(Json(Connected {
        peer_id: peer.to_string(),
    }))
}

async fn ping(State(node): State<Node>, Json(request): Json<PingRequest>) -> ApiResult<Pong> {
    let peer: PeerId = request.peer_id.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{:?} is not a peer id (they look like 12D3KooW…)",
            request.peer_id
        ))
    })?;
    let rtt = node.ping(peer).await?;
    Ok(Json(Pong {
        peer_id: peer.to_string(),
        rtt_ms: rtt.as_secs_f64() * 1000.0,
    }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}
