//! Integration tests of the testnet: real kith nodes talking over
//! 127.0.0.1 TCP (or the in-process memory transport) in one process.
//!
//! One test binary (so it links once). Where new tests go:
//! - `dht.rs`: the network forming and lookups across it;
//! - `friends.rs`: messages, files and mailboxes between nodes;
//! - `restart.rs`: nodes stopping and coming back;
//! - `rm.rs`: deleting a stored file, by its owner only;
//! - `scale.rs`: a reduced `kith-testnet scale` run on the memory transport.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dht;
mod friends;
mod restart;
mod rm;
mod scale;

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

/// Waits until every node knows at least `peers` others in its routing
/// table.
pub(crate) async fn wait_joined(net: &Testnet, peers: usize) {
    net.wait_for(
        "every node knows its peers",
        Duration::from_secs(90),
        || async {
            for (_, node) in net.nodes() {
                if node.net().known_peers().await.unwrap_or_default().len() < peers {
                    return false;
                }
            }
            true
        },
    )
    .await
    .unwrap();
}
