//! Request and answer bodies, shared by the server and its clients.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the node answers.
    pub status: String,
    /// The node's peer id.
    pub peer_id: String,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Connected peers.
    pub peers: usize,
}

/// `GET /v1/id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Id {
    /// The node's peer id.
    pub peer_id: String,
    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
}

/// One peer in `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's id.
    pub peer_id: String,
    /// Addresses known for it.
    pub addrs: Vec<String>,
}

/// `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peers {
    /// Connected peers, sorted by id.
    pub peers: Vec<Peer>,
}

/// `POST /v1/connect` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// A multiaddr, usually ending in `/p2p/<peer id>`.
    pub addr: String,
}

/// `POST /v1/connect` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    /// The peer now connected.
    pub peer_id: String,
}

/// `POST /v1/ping` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingRequest {
    /// The peer to ping (must be connected).
    pub peer_id: String,
}

/// `POST /v1/ping` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    /// The peer pinged.
    pub peer_id: String,
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
}

/// Every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One sentence saying what went wrong.
    pub error: String,
}
