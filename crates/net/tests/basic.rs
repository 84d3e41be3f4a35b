//! Two-node tests over real loopback sockets: dialing, pinging, errors.
//!
//! Where new tests go: single- and two-node behaviour here; many-node DHT
//! behaviour in `dht.rs`; relays in `relay.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually, loopback_config, start, stop_all};
use kith_base::Identity;
use kith_net::{NetError, NetEvent, parse_multiaddr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_dial_see_each_other_and_ping() {
    let a = start(loopback_config()).await;
    let b = start(loopback_config()).await;
    let mut a_events = a.client.events();

    let peer = b.client.dial(a.addr.clone()).await.unwrap();
    assert_eq!(peer, a.client.local_peer_id());

    let a_id = a.client.local_peer_id();
    let b_id = b.client.local_peer_id();
    eventually(Duration::from_secs(10), || async {
        let on_a = a
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        let on_b = b
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if on_a.contains(&b_id) && on_b.contains(&a_id) {
            Ok(())
        } else {
            Err(format!("a sees {on_a:?}, b sees {on_b:?}"))
        }
    })
    .await;

    // The connection was announced to a's subscribers.
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let NetEvent::PeerConnected(peer) = a_events.recv().await.unwrap() {
                return peer;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(connected, b_id);

    let rtt = b.client.ping(a_id).await.unwrap();
    assert!(rtt < Duration::from_secs(5), "loopback rtt {rtt:?}");
    let rtt = a.client.ping(b_id).await.unwrap();
    assert!(rtt < Duration::from_secs(5), "loopback rtt {rtt:?}");

    // Dialing an already-connected peer reuses the connection.
    assert_eq!(b.client.dial(a.addr.clone()).await.unwrap(), a_id);

    stop_all(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_over_quic_without_peer_id() {
    let config = || {
        loopback_config().with_listen([parse_multiaddr("/ip4/127.0.0.1/udp/0/quic-v1").unwrap()])
    };
    let a = start(config()).await;
    let b = start(config()).await;
    assert!(a.addr.to_string().contains("/quic-v1/"), "{}", a.addr);

    // Without /p2p the peer id is learnt from the handshake.
    let bare: kith_net::Multiaddr = a
        .addr
        .iter()
        .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
        .collect();
    let peer = b.client.dial(bare).await.unwrap();
    assert_eq!(peer, a.client.local_peer_id());
    b.client.ping(peer).await.unwrap();

    stop_all(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_a_taken_port_names_the_address() {
    let a = start(loopback_config()).await;
    let taken = a.client.listen_addrs().await.unwrap()[0].clone();

    let error = kith_net::spawn(
        &Identity::generate(),
        loopback_config().with_listen([taken.clone()]),
    )
    .await
    .expect_err("second listener on the same port fails");
    assert!(matches!(error, NetError::Listen { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot listen on {taken}: address already in use")),
        "{message}"
    );

    // The same for QUIC's UDP port.
    let quic = start(
        loopback_config().with_listen([parse_multiaddr("/ip4/127.0.0.1/udp/0/quic-v1").unwrap()]),
    )
    .await;
    let taken = quic.client.listen_addrs().await.unwrap()[0].clone();
    let error = kith_net::spawn(
        &Identity::generate(),
        loopback_config().with_listen([taken.clone()]),
    )
    .await
    .expect_err("second QUIC listener on the same port fails");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen on {taken}: address already in use")),
        "{error}"
    );

    stop_all(vec![a, quic]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_explained() {
    let error = parse_multiaddr("127.0.0.1:4001").unwrap_err();
    assert!(matches!(error, NetError::InvalidAddr { .. }));
    assert!(error.to_string().contains("127.0.0.1:4001"), "{error}");

    // A bootstrap address must say which peer it expects.
    let no_peer = parse_multiaddr("/ip4/127.0.0.1/tcp/4001").unwrap();
    let error = kith_net::spawn(
        &Identity::generate(),
        loopback_config().with_bootstrap(no_peer.clone()),
    )
    .await
    .expect_err("bootstrap address without /p2p is rejected");
    assert!(matches!(error, NetError::MissingPeerId { .. }), "{error:?}");
    assert!(error.to_string().contains("/p2p/"), "{error}");

    // Dialing a closed port fails with the address in the message.
    let a = start(loopback_config()).await;
    let taken = a.client.listen_addrs().await.unwrap()[0].clone();
    stop_all(vec![a]).await;
    let b = start(loopback_config()).await;
    let error = b.client.dial(taken.clone()).await.unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, NetError::Dial { .. }), "{error:?}");
    assert!(error.to_string().contains(&taken.to_string()), "{error}");

    // Lookups without any known peer say what to do.
    let error = b
        .client
        .find_peer(Identity::generate().peer_id())
        .await
        .unwrap_err();
    assert!(matches!(error, NetError::NoKnownPeers), "{error:?}");

    stop_all(vec![b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_clone() {
    let a = start(loopback_config()).await;
    let clone = a.client.clone();
    a.client.shutdown().await.unwrap();
    a.task.await.unwrap();
    assert!(matches!(
        clone.connected_peers().await,
        Err(NetError::Stopped)
    ));
}

/// `/dns4/…` addresses are resolved with the system's resolver (here
/// `localhost` from `/etc/hosts`) and dialled: as a bootstrap address and
/// as a dial. Before, they were taken and never dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_addresses_are_resolved_and_dialled() {
    let a = start(loopback_config()).await;
    let port = a
        .addr
        .iter()
        .find_map(|part| match part {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let a_id = a.client.local_peer_id();
    let by_name = parse_multiaddr(&format!("/dns4/localhost/tcp/{port}/p2p/{a_id}")).unwrap();
    let b = start(loopback_config().with_bootstrap(by_name.clone())).await;
    eventually(Duration::from_secs(20), || async {
        let on_b = b
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if on_b.contains(&a_id) {
            Ok(())
        } else {
            Err(format!("b sees {on_b:?}"))
        }
    })
    .await;
    let c = start(loopback_config()).await;
    assert_eq!(c.client.dial(by_name).await.unwrap(), a_id);
    stop_all(vec![a, b, c]).await;
}
