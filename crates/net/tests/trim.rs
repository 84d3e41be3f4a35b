//! A node at its connection limit: it closes idle connections before busy
//! ones, gets back under the limit by itself after a burst, and can be
//! dialled by peer id alone once a lookup found the peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestNode, eventually, loopback_config, start, stop_all};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kith_net::{NetConfig, StreamProtocol};

const ECHO: StreamProtocol = StreamProtocol::new("/kith/test-echo/1.0.0");

/// A limit of 8 connections: trimming starts at 7 and goes down to 6.
fn capped(max: u32) -> NetConfig {
    let mut config = loopback_config();
    config.limits.max_established = max;
    config
}

async fn connections_of(node: &TestNode) -> usize {
    node.client.connected_peers().await.unwrap().len()
}

/// Echoes every stream of [`ECHO`] on `node`, one task per stream.
fn serve_echo(node: &TestNode) -> tokio::task::JoinHandle<()> {
    let mut incoming = node.client.streams().accept(ECHO).unwrap();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = (&mut stream).split();
                let _ = futures::io::copy(&mut reader, &mut writer).await;
                let _ = writer.close().await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_outlives_a_crowd_and_the_node_gets_under_its_limit() {
    let hub = start(capped(8)).await;
    let echo = serve_echo(&hub);
    let hub_id = hub.client.local_peer_id();

    // The busy peer connects first: by age it would be the first to go.
    let busy = start(loopback_config()).await;
    busy.client.dial(hub.addr.clone()).await.unwrap();
    let mut stream = busy
        .client
        .streams()
        .open_stream(hub_id, ECHO)
        .await
        .unwrap();
    // Keeps the stream moving: a round trip every 100 ms, for at most a
    // minute (the test is over well before).
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pinger = tokio::spawn(async move {
        let mut round_trips = 0u32;
        for _ in 0..600 {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            stream.write_all(b"ping").await.unwrap();
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"ping");
            round_trips += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        round_trips
    });

    // Wait out the busy connection's youth, so that age alone would not
    // protect it.
    tokio::time::sleep(Duration::from_secs(6)).await;

    // A crowd of idle peers connects at once: the hub reaches its hard
    // limit, where nobody else can connect.
    let mut crowd = Vec::new();
    for _ in 0..9 {
        let peer = start(loopback_config()).await;
        // Refused once the hub is full: that is the point.
        let _ = peer.client.dial(hub.addr.clone()).await;
        crowd.push(peer);
    }

    // By itself (no new connection arrives to set it off) the hub closes
    // idle connections until it is under the limit again: a newcomer gets
    // in.
    let newcomer = start(loopback_config()).await;
    eventually(Duration::from_secs(30), || async {
        newcomer
            .client
            .dial(hub.addr.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    eventually(Duration::from_secs(30), || async {
        let open = connections_of(&hub).await;
        if open <= 7 {
            Ok(())
        } else {
            Err(format!("{open} connections"))
        }
    })
    .await;

    // The busy peer was never cut off: its stream kept working.
    let still = busy.client.connected_peers().await.unwrap();
    assert!(still.contains(&hub_id), "the busy connection was closed");
    stop_tx.send(()).unwrap();
    let round_trips = pinger.await.expect("the busy stream never broke");
    assert!(round_trips > 10, "{round_trips} round trips");

    echo.abort();
    let mut nodes = vec![hub, busy, newcomer];
    nodes.extend(crowd);
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reaches_a_peer_known_only_through_a_lookup() {
    // a knows b; c joins after a by connecting to b, and does not look
    // anything up itself. a has never heard of c: neither its routing
    // table nor its address book has an address for it.
    let b = start(loopback_config()).await;
    let a = start(loopback_config().with_bootstrap(b.addr.clone())).await;
    eventually(Duration::from_secs(30), || async {
        let peers = a
            .client
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?;
        if peers.contains(&b.client.local_peer_id()) {
            Ok(())
        } else {
            // The bootstrap dial is made once, at start; in CI it failed
            // once while the other test of this file crowded the process,
            // and nothing dials again within the wait. What this test is
            // about comes later, so dial again.
            let _ = a.client.dial(b.addr.clone()).await;
            Err("a is not connected to b yet".into())
        }
    })
    .await;
    let mut quiet = loopback_config();
    quiet.timing.dht_refresh = None;
    let c = start(quiet).await;
    c.client.dial(b.addr.clone()).await.unwrap();
    let echo = serve_echo(&c);
    let c_id = c.client.local_peer_id();
    // b must know c for a lookup through b to find it.
    eventually(Duration::from_secs(30), || async {
        let known = b.client.known_peers().await.map_err(|e| e.to_string())?;
        if known.iter().any(|(peer, _)| *peer == c_id) {
            Ok(())
        } else {
            Err("c is not in b's routing table yet".into())
        }
    })
    .await;
    assert!(!a.client.connected_peers().await.unwrap().contains(&c_id));

    // By peer id alone: the dial finds no address, the stream looks c up
    // through b, and opens.
    let mut stream = tokio::time::timeout(
        Duration::from_secs(30),
        a.client.streams().open_stream(c_id, ECHO),
    )
    .await
    .expect("opened in time")
    .expect("a stream to c");
    stream.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    drop(stream);
    echo.abort();
    stop_all(vec![a, b, c]).await;
}
