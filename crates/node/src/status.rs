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
    /// Repair, scrub and lease counters since start.
    #[serde(flatten)]
    pub upkeep: UpkeepCounters,
}
