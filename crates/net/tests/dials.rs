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

/// A protocol the listeners below accept (nobody reads the streams: the
/// open completes once the protocol is agreed).
const HELD: StreamProtocol = StreamProtocol::new("/kith/test-held/1.0.0");

/// Streams opened at once to peers this node is not connected to each get
/// their dial. libp2p-stream asks its behaviour for a dial through a
/// channel of one slot and drops the request when the slot is taken
/// (rust-libp2p#6157): of eight opens made in one go, one dialled and the
/// others waited for a connection that nothing opened — a `have` round
/// asking a stripe's 20 candidates at once heard from those it was already
/// connected to and timed out on the rest (`docs/scale.md`, "Reads lost to
/// dials never made").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_at_once_to_unconnected_peers_all_open() {
    const PEERS: usize = 8;
    let mut listeners = Vec::with_capacity(PEERS);
    let mut accepting = Vec::with_capacity(PEERS);
    for _ in 0..PEERS {
        let listener = start(loopback_config()).await;
        accepting.push(listener.client.streams().accept(HELD).unwrap());
        listeners.push(listener);
    }
    // The opener meets every listener once, then idles until it is
    // connected to none: it knows their addresses, and must dial each.
    let mut quick = loopback_config();
    quick.timing.idle_timeout = Duration::from_secs(1);
    let opener = start(quick).await;
    for listener in &listeners {
        opener.client.dial(listener.addr.clone()).await.unwrap();
    }
    eventually(Duration::from_secs(60), || async {
        let connected = opener
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if connected.is_empty() {
            Ok(())
        } else {
            Err(format!("still connected to {}", connected.len()))
        }
    })
    .await;

    // One task, every open polled in turn, as `join_all` does.
    let opens = listeners.iter().map(|listener| {
        let mut streams = opener.client.streams();
        let peer = listener.client.local_peer_id();
        async move {
            tokio::time::timeout(Duration::from_secs(10), streams.open_stream(peer, HELD)).await
        }
    });
    let results = futures::future::join_all(opens).await;
    let opened = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let hung = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        opened, PEERS,
        "{opened} of {PEERS} opened, {hung} never dialled"
    );

    drop(results);
    drop(accepting);
    let mut nodes = listeners;
    nodes.push(opener);
    stop_all(nodes).await;
}

/// A node whose own dials filled it to twice its limit (where libp2p
/// refuses even its own dials) still reaches a peer it opens a stream to:
/// it closes its least recently used connection that carries no busy
/// stream, young or not. Without that, a reader that had just opened a
/// burst of connections for its lookups could not dial the holders they
/// found for the five seconds young connections are spared
/// (`docs/scale.md`, "Reads lost to dials never made").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_own_limit_still_dials_for_a_stream() {
    // A limit of 4: at most 8 connections in all.
    const MOST: usize = 8;
    let mut config = loopback_config();
    config.limits.max_established = 4;
    config.timing.idle_timeout = Duration::from_secs(1);
    let opener = start(config).await;

    // The opener learns the target's address, then lets the connection
    // idle away.
    let target = start(loopback_config()).await;
    let _target_accepts = target.client.streams().accept(HELD).unwrap();
    let target_id = target.client.local_peer_id();
    opener.client.dial(target.addr.clone()).await.unwrap();
    eventually(Duration::from_secs(30), || async {
        let connected = opener
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if connected.contains(&target_id) {
            Err("still connected to the target".to_owned())
        } else {
            Ok(())
        }
    })
    .await;

    // Fill the opener to its most with young connections, each held open
    // by a stream kept idle (as a pool keeps one). Quickly: Kademlia
    // bootstraps half a second after its table last grew, and would dial
    // the target itself.
    let mut fillers = Vec::with_capacity(MOST);
    let mut accepting = Vec::with_capacity(MOST);
    for _ in 0..MOST {
        let filler = start(loopback_config()).await;
        accepting.push(filler.client.streams().accept(HELD).unwrap());
        fillers.push(filler);
    }
    let mut held = Vec::with_capacity(MOST);
    let mut streams = opener.client.streams();
    for filler in &fillers {
        opener.client.dial(filler.addr.clone()).await.unwrap();
        let mut stream = streams
            .open_stream(filler.client.local_peer_id(), HELD)
            .await
            .unwrap();
        stream.set_idle(true);
        held.push(stream);
    }
    let connected = opener.client.connected_peers().await.unwrap().len();
    assert_eq!(connected, MOST, "the opener is at its most");

    let opened = tokio::time::timeout(
        Duration::from_secs(10),
        streams.open_stream(target_id, HELD),
    )
    .await;
    assert!(
        matches!(opened, Ok(Ok(_))),
        "a stream to a new peer at the limit: {opened:?}"
    );
    let connected = opener.client.connected_peers().await.unwrap().len();
    assert!(connected <= MOST, "{connected} connections");

    drop(opened);
    drop(held);
    drop(accepting);
    let mut nodes = fillers;
    nodes.push(target);
    nodes.push(opener);
    stop_all(nodes).await;
}
