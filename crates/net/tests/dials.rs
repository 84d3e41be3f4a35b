//! Dialling a peer by its id opens one connection, however many ways the
//! node learned the peer's address.
//!
//! The swarm drops duplicate addresses before it appends `/p2p/<peer>` to
//! them, so an address learned bare (identify) and the same address learned
//! with `/p2p/<peer>` (Kademlia, a dial) were dialled at once: two
//! handshakes for one connection, the loser dropped mid-handshake on the
//! listener. At 400 nodes that was a third of all handshakes
//! (`docs/scale.md`, "Churn found and fixed").

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually, loopback_config, metric, start, stop_all};
use kith_net::StreamProtocol;

/// A protocol nobody serves: opening a stream of it dials the peer by id.
const NOBODY: StreamProtocol = StreamProtocol::new("/kith/test-nobody/1.0.0");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_known_by_several_routes_is_dialled_once() {
    // Connections close after a second idle, so that the second dial below
    // is a dial by peer id with every address the node has learned.
    let mut quick = loopback_config();
    quick.timing.idle_timeout = Duration::from_secs(1);
    let listener = start(loopback_config()).await;
    let dialer = start(quick).await;
    let peer = listener.client.local_peer_id();

    // First contact by full address; identify then tells the dialer the
    // listener's addresses again, without `/p2p/<peer>`.
    dialer.client.dial(listener.addr.clone()).await.unwrap();
    eventually(Duration::from_secs(20), || async {
        let table = dialer
            .client
            .known_peers()
            .await
            .map_err(|e| e.to_string())?;
        if table.iter().any(|(known, _)| *known == peer) {
            Ok(())
        } else {
            Err("the listener is not in the dialer's routing table yet".to_owned())
        }
    })
    .await;
    eventually(Duration::from_secs(30), || async {
        let connected = dialer
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if connected.contains(&peer) {
            Err("still connected".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let incoming = "libp2p_swarm_connections_incoming_total";
    let failed = "libp2p_swarm_connections_incoming_error_total";
    assert_eq!(metric(&listener, incoming), 1);

    // The second contact: by peer id alone.
    let _ = dialer.client.streams().open_stream(peer, NOBODY).await;
    eventually(Duration::from_secs(10), || async {
        let seen = metric(&listener, incoming);
        if seen >= 2 {
            Ok(())
        } else {
            Err(format!("{seen} incoming connections"))
        }
    })
    .await;
    // One more connection, and no handshake abandoned half-way.
    assert_eq!(metric(&listener, incoming), 2);
    assert_eq!(metric(&listener, failed), 0);

    stop_all(vec![listener, dialer]).await;
}
