//! Provider records: a node announces that it holds a key, another node
//! finds it through the DHT; an unknown key has no providers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestNode, eventually, loopback_config, start, start_network, stop_all};
use kith_net::{NetError, PeerId};

/// Waits until every node knows at least `min` peers, bootstrapping the
/// ones that know fewer.
async fn wait_tables(nodes: &[TestNode], min: usize) {
    for (index, node) in nodes.iter().enumerate() {
        let client = node.client.clone();
        eventually(Duration::from_secs(30), || {
            let client = client.clone();
            async move {
                let known = client.known_peers().await.map_err(|e| e.to_string())?;
                if known.len() >= min {
                    return Ok(());
                }
                // A failed bootstrap is said, and the next round retries.
                let bootstrap = client.bootstrap().await;
                let connected = client.connected_peers().await.map_err(|e| e.to_string())?;
                Err(format!(
                    "node {index} knows only {} peers ({} connected; its last bootstrap: {:?})",
                    known.len(),
                    connected.len(),
                    bootstrap
                ))
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_found_by_another_node() {
    const NODES: usize = 10;
    let nodes = start_network(NODES).await;
    wait_tables(&nodes, 3).await;
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.client.local_peer_id()).collect();
    let key = *blake3::hash(b"stripe 42").as_bytes();

    // Node 3 announces; retried until its lookup reaches peers.
    eventually(Duration::from_secs(30), || async {
        nodes[3]
            .client
            .start_providing(key)
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    // Node 7 finds node 3, and only node 3.
    let found = eventually(Duration::from_secs(30), || async {
        let found = nodes[7]
            .client
            .providers(key)
            .await
            .map_err(|e| e.to_string())?;
        if found.contains(&ids[3]) {
            Ok(found)
        } else {
            Err(format!("providers: {found:?}"))
        }
    })
    .await;
    assert_eq!(found, vec![ids[3]]);

    // The provider itself is never in its own answer.
    let own = nodes[3].client.providers(key).await.unwrap();
    assert!(!own.contains(&ids[3]), "{own:?}");

    // A second provider shows up too, once.
    nodes[5].client.start_providing(key).await.unwrap();
    let found = eventually(Duration::from_secs(30), || async {
        let found = nodes[0]
            .client
            .providers(key)
            .await
            .map_err(|e| e.to_string())?;
        if found.len() >= 2 {
            Ok(found)
        } else {
            Err(format!("providers: {found:?}"))
        }
    })
    .await;
    let mut found = found;
    found.sort();
    let mut expected = vec![ids[3], ids[5]];
    expected.sort();
    assert_eq!(found, expected);

    // Stopping is local: node 3 no longer answers for itself, though peers
    // keep its record until it expires.
    nodes[3].client.stop_providing(key).await.unwrap();

    // An unknown key: an empty answer, not an error, in bounded time.
    let unknown = *blake3::hash(b"nobody has this").as_bytes();
    let asked = Instant::now();
    let none = tokio::time::timeout(Duration::from_secs(35), nodes[7].client.providers(unknown))
        .await
        .expect("the lookup ends by itself")
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    eprintln!("unknown key answered in {:?}", asked.elapsed());

    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lonely_node_cannot_provide_or_look_up() {
    let node = start(loopback_config()).await;
    let key = [7; 32];
    assert!(matches!(
        node.client.start_providing(key).await,
        Err(NetError::NoKnownPeers)
    ));
    assert!(matches!(
        node.client.providers(key).await,
        Err(NetError::NoKnownPeers)
    ));
    node.client.stop_providing(key).await.unwrap();
    stop_all(vec![node]).await;
}
