//! Circuit relay: a node reachable only through a relay is dialed through
//! it by a peer that never learnt its direct address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually, loopback_config, start, stop_all};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kith_net::{NetEvent, StreamProtocol, peer_id_of};
use libp2p::multiaddr::Protocol;

/// A protocol for bytes through the circuit.
const BULK: StreamProtocol = StreamProtocol::new("/kith/test-bulk/1.0.0");

/// A node with no listen address of its own (a node behind NAT, as far
/// as its peers can tell).
async fn start_unlistening() -> common::TestNode {
    start_unlistening_with(|config| config).await
}

/// [`start_unlistening`], with its config changed by `change` first.
async fn start_unlistening_with(
    change: impl FnOnce(kith_net::NetConfig) -> kith_net::NetConfig,
) -> common::TestNode {
    let config = change(
        loopback_config()
            .with_listen(Vec::new())
            .with_relay_server(false),
    );
    let (client, task) = kith_net::spawn(&kith_base::Identity::generate(), config)
        .await
        .expect("node starts");
    let addr = kith_net::parse_multiaddr(&format!("/p2p/{}", client.local_peer_id())).unwrap();
    common::TestNode { client, task, addr }
}

/// Sends `len` bytes from `from` to `to` on a stream of [`BULK`] and checks
/// they arrive whole.
async fn send_bytes(from: &common::TestNode, to: &common::TestNode, len: u32) {
    let mut incoming = to.client.streams().accept(BULK).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut outgoing = from
        .client
        .streams()
        .open_stream(to.client.local_peer_id(), BULK)
        .await
        .unwrap();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        outgoing.write_all(&sent).await.unwrap();
        outgoing.close().await.unwrap();
    });
    let (sender, mut stream) = tokio::time::timeout(Duration::from_secs(30), incoming.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sender, from.client.local_peer_id());
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(
        received == data,
        "{} of {} bytes",
        received.len(),
        data.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_connects_through_a_relay() {
    // A: the relay. It must know itself reachable to offer relaying; on
    // loopback nothing can confirm that, so it is told.
    let relay = start(loopback_config().with_relay_server(true)).await;
    let relay_listen = relay.client.listen_addrs().await.unwrap()[0].clone();
    relay.client.add_external_addr(relay_listen).await.unwrap();

    // C: listens through A, and nowhere else.
    let hidden = start_unlistening().await;
    let mut hidden_events = hidden.client.events();
    let circuit = hidden
        .client
        .listen_via_relay(relay.addr.clone())
        .await
        .unwrap();
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
    assert_eq!(peer_id_of(&circuit), Some(hidden.client.local_peer_id()));
    let reserved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let NetEvent::RelayReservation { relay } = hidden_events.recv().await.unwrap() {
                return relay;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(reserved, relay.client.local_peer_id());

    // B: knows only the relayed address of C, and listens nowhere: the
    // circuit is the only way between them (no hole punching on loopback).
    let dialer = start_unlistening().await;
    let peer = dialer.client.dial(circuit.clone()).await.unwrap();
    assert_eq!(peer, hidden.client.local_peer_id());

    let hidden_id = hidden.client.local_peer_id();
    let dialer_id = dialer.client.local_peer_id();
    eventually(Duration::from_secs(10), || async {
        let on_dialer = dialer
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        let on_hidden = hidden
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if on_dialer.contains(&hidden_id) && on_hidden.contains(&dialer_id) {
            Ok(())
        } else {
            Err(format!(
                "dialer sees {on_dialer:?}, hidden sees {on_hidden:?}"
            ))
        }
    })
    .await;
    // The connection carries traffic: a ping, and 4 MiB on a stream,
    // more than the 1 MiB a circuit carried before (a photo sent to a
    // friend behind NAT was cut short).
    dialer.client.ping(hidden_id).await.unwrap();
    send_bytes(&dialer, &hidden, 4 << 20).await;

    stop_all(vec![dialer, hidden, relay]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_without_reachable_address_refuses_clearly() {
    // A relay that has no external address does not offer relaying.
    let relay = start(loopback_config().with_relay_server(true)).await;
    let hidden = start(loopback_config()).await;
    let error = hidden
        .client
        .listen_via_relay(relay.addr.clone())
        .await
        .unwrap_err();
    eprintln!("{error}");
    assert!(
        error.to_string().contains(&relay.addr.to_string()),
        "{error}"
    );
    stop_all(vec![hidden, relay]).await;
}

/// A node behind NAT (told so: on loopback AutoNAT has no verdict to give)
/// picks a relay among its peers by itself, serves no DHT requests, and
/// announces its relayed address; a peer that knows only the relay finds
/// it by peer id and streams to it through the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_node_picks_a_relay_by_itself_and_is_found_by_peer_id() {
    let relay = start(loopback_config().with_relay_server(true)).await;
    let relay_listen = relay.client.listen_addrs().await.unwrap()[0].clone();
    relay.client.add_external_addr(relay_listen).await.unwrap();
    let relay_id = relay.client.local_peer_id();

    let relay_addr = relay.addr.clone();
    let hidden = start_unlistening_with(|mut config| {
        config.reachability.assume_private = true;
        config.with_bootstrap(relay_addr)
    })
    .await;
    let hidden_id = hidden.client.local_peer_id();
    let report = eventually(Duration::from_secs(30), || async {
        let report = hidden
            .client
            .reachability()
            .await
            .map_err(|e| e.to_string())?;
        if report.relays.contains(&relay_id.to_string()) {
            Ok(report)
        } else {
            Err(format!("{report:?}"))
        }
    })
    .await;
    assert_eq!(report.reachability, kith_net::Reachability::Private);
    assert!(!report.dht_server, "a private node only asks the DHT");
    assert!(!report.relaying_for_others);
    assert!(
        hidden
            .client
            .listen_addrs()
            .await
            .unwrap()
            .iter()
            .any(|addr| addr.iter().any(|p| p == Protocol::P2pCircuit)),
        "it listens through the relay"
    );
    let on_relay = relay.client.reachability().await.unwrap();
    assert!(on_relay.dht_server);

    // The finder knows the relay only, and no address of the hidden node.
    let relay_addr = relay.addr.clone();
    let finder = start_unlistening_with(|config| config.with_bootstrap(relay_addr)).await;
    let lookup = eventually(Duration::from_secs(30), || async {
        finder
            .client
            .find_peer(hidden_id)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert!(
        lookup
            .addrs
            .iter()
            .any(|addr| addr.iter().any(|p| p == Protocol::P2pCircuit)),
        "found through its relayed address: {:?}",
        lookup.addrs
    );
    // Nobody's routing table holds it.
    let known = relay.client.known_peers().await.unwrap();
    assert!(
        !known.iter().any(|(peer, _)| *peer == hidden_id),
        "{known:?}"
    );

    send_bytes(&finder, &hidden, 1 << 20).await;
    let connections = finder.client.connections().await.unwrap();
    assert!(
        connections.iter().any(
            |(peer, addr)| *peer == hidden_id && addr.iter().any(|p| p == Protocol::P2pCircuit)
        ),
        "{connections:?}"
    );

    stop_all(vec![finder, hidden, relay]).await;
}

/// A private node keeps the number of relays it wants: when its relay goes
/// away, it picks another among its peers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_node_replaces_a_relay_that_goes_away() {
    let mut relays = Vec::new();
    for _ in 0..2 {
        let relay = start(loopback_config().with_relay_server(true)).await;
        let listen = relay.client.listen_addrs().await.unwrap()[0].clone();
        relay.client.add_external_addr(listen).await.unwrap();
        relays.push(relay);
    }
    let bootstrap: Vec<_> = relays.iter().map(|relay| relay.addr.clone()).collect();
    let hidden = start_unlistening_with(|mut config| {
        config.reachability.assume_private = true;
        config.reachability.auto_relays = 1;
        bootstrap
            .into_iter()
            .fold(config, |config, addr| config.with_bootstrap(addr))
    })
    .await;
    let ids: Vec<String> = relays
        .iter()
        .map(|relay| relay.client.local_peer_id().to_string())
        .collect();
    let reserved_on = |wanted: Vec<String>| {
        let client = hidden.client.clone();
        async move {
            let report = client.reachability().await.map_err(|e| e.to_string())?;
            match report.relays.as_slice() {
                [only] if wanted.contains(only) => Ok(only.clone()),
                _ => Err(format!("{report:?}")),
            }
        }
    };
    let first = eventually(Duration::from_secs(30), || reserved_on(ids.clone())).await;
    let gone = ids.iter().position(|id| *id == first).unwrap();
    let other = ids[1 - gone].clone();
    let gone = relays.remove(gone);
    gone.client.shutdown().await.unwrap();
    let second = eventually(Duration::from_secs(60), || reserved_on(vec![other.clone()])).await;
    assert_eq!(second, other);
    let mut rest = relays;
    rest.push(hidden);
    stop_all(rest).await;
}
