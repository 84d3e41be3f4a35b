//! Integration tests of the testnet: real kith nodes talking over
//! 127.0.0.1 TCP (or the in-process memory transport) in one process.
//!
//! One test binary (so it links once); the 200-node scale run is
//! `tests/scale.rs`, a binary of its own so that it runs alone. Where new
//! tests go:
//! - `dht.rs`: the network forming and lookups across it;
//! - `feeds.rs`: bad feed entries refused, forks kept, catching up;
//! - `friends.rs`: messages, files and mailboxes between nodes;
//! - `lifecycle.rs`: cancelled puts and stopping nodes leave nothing behind;
//! - `liars.rs`: peers that serve bad bytes are caught and avoided;
//! - `names.rs`: name records replayed, forged or expired are refused;
//! - `restart.rs`: nodes stopping and coming back;
//! - `rm.rs`: deleting a stored file, by its owner only;
//! - `swarm.rs`: downloaders of one file serving each other;
//! - `upkeep.rs`: repair, scrub and leases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dht;
mod feeds;
mod friends;
mod liars;
mod lifecycle;
mod names;
mod restart;
mod rm;
mod swarm;
mod upkeep;

use std::time::Duration;

use kith_testnet::Testnet;

/// Deterministic pseudo-random bytes (BLAKE3 as a stream).
pub(crate) fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Reads a whole file, and the download's report once it is done.
pub(crate) async fn read_with_report(
    node: &kith_node::Node,
    cap: &kith_node::Capability,
) -> Result<(Vec<u8>, kith_node::GetReport), kith_node::GetError> {
    let download = node.files().get(cap).await?;
    let report = download.report_handle();
    let mut segments = download.into_stream();
    let mut out = Vec::new();
    while let Some(segment) = segments.recv().await {
        out.extend_from_slice(&segment?);
    }
    Ok((out, report()))
}

/// Waits until every node knows at least `peers` others in its routing
/// table.
pub(crate) async fn wait_joined(net: &Testnet, peers: usize) {
    net.wait_joined(peers, Duration::from_secs(90))
        .await
        .unwrap();
}
