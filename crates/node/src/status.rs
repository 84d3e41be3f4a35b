//! What `kith status` and `kith peers` show of a running node: plain data,
//! filled in by [`crate::Node`] and rendered by the API and the metrics.

use kith_net::{Multiaddr, PeerId};

use crate::files::UpkeepCounters;

/// A connected peer, as `kith peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's id.
    pub peer: PeerId,
    /// Addresses we know for it.
    pub addrs: Vec<Multiaddr>,
    /// The remote address of each open connection to it (a relayed one
    /// contains `/p2p-circuit`).
    pub connections: Vec<Multiaddr>,
}

/// Bytes per second a node sends and receives at most; `None`: no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateCaps {
    /// All bytes sent (`max_upload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload: Option<u64>,
    /// All bytes received (`max_download`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_download: Option<u64>,
    /// Bytes sent to any one peer (`max_upload_per_peer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_per_peer: Option<u64>,
    /// Bytes received from any one peer (`max_download_per_peer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_download_per_peer: Option<u64>,
}

impl From<kith_net::RateLimits> for RateCaps {
    fn from(limits: kith_net::RateLimits) -> Self {
        Self {
            max_upload: limits.upload,
            max_download: limits.download,
            max_upload_per_peer: limits.upload_per_peer,
            max_download_per_peer: limits.download_per_peer,
        }
    }
}

/// `kith status`: what a node holds and what its upkeep did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's peer id.
    pub peer_id: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Connected peers.
    pub peers: usize,
    /// Shares in its store.
    pub shares_held: u64,
    /// Bytes in its store (shares and records).
    pub bytes_held: u64,
    /// Its store's quota in bytes.
    pub quota: u64,
    /// The caps on bytes per second in force (`max_upload`, …; absent:
    /// no cap). They change live when `config.toml` is reloaded.
    #[serde(default)]
    pub rate_limits: RateCaps,
    /// Repair, scrub and lease counters since start.
    #[serde(flatten)]
    pub upkeep: UpkeepCounters,
}
