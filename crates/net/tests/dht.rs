//! Many nodes in one process over loopback TCP: the Kademlia DHT forms from
//! a single bootstrap node, every node finds every other, and closest-peer
//! lookups agree between nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{eventually, loopback_config, start, start_network, stop_all};
use futures::future::join_all;
use kith_net::{PeerId, sort_by_distance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_find_each_other_from_one_bootstrap() {
    const NODES: usize = 30;
    let started = Instant::now();
    let nodes = start_network(NODES).await;
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.client.local_peer_id()).collect();
    eprintln!("started {NODES} nodes in {:?}", started.elapsed());

    // Every (querier, target) pair must succeed once; pairs that failed are
    // retried until the network has settled or the limit is reached.
    let lookups = Instant::now();
    let mut missing: Vec<(usize, usize)> = (0..NODES)
        .flat_map(|q| (0..NODES).filter(move |&t| t != q).map(move |t| (q, t)))
        .collect();
    let mut rounds = 0;
    let mut total_requests = 0u64;
    let mut found = 0u64;
    while !missing.is_empty() {
        rounds += 1;
        assert!(
            lookups.elapsed() < Duration::from_secs(60),
            "{} of {} lookups still fail after 60 s, e.g. {:?}",
            missing.len(),
            NODES * (NODES - 1),
            &missing[..missing.len().min(5)]
        );
        // One task per querying node, each running its lookups in turn, so
        // at most NODES lookups run at once.
        let per_node = (0..NODES)
            .map(|q| {
                let client = nodes[q].client.clone();
                let targets: Vec<usize> = missing
                    .iter()
                    .filter(|(querier, _)| *querier == q)
                    .map(|(_, t)| *t)
                    .collect();
                let ids = ids.clone();
                async move {
                    let mut failed = Vec::new();
                    let mut requests = 0u64;
                    for t in targets {
                        match client.find_peer(ids[t]).await {
                            Ok(lookup) => {
                                assert!(!lookup.addrs.is_empty(), "found without address");
                                requests += u64::from(lookup.requests);
                            }
                            Err(_) => failed.push((q, t)),
                        }
                    }
                    (failed, requests)
                }
            })
            .collect::<Vec<_>>();
        let before = missing.len();
        missing.clear();
        for (failed, requests) in join_all(per_node).await {
            missing.extend(failed);
            total_requests += requests;
        }
        found += (before - missing.len()) as u64;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    eprintln!(
        "all {} lookups succeeded in {:?} ({rounds} rounds, {:.1} requests per lookup)",
        NODES * (NODES - 1),
        lookups.elapsed(),
        total_requests as f64 / found as f64
    );

    // The routing tables together hold every node, with addresses.
    let mut seen = HashSet::new();
    for node in &nodes {
        for (peer, addrs) in node.client.known_peers().await.unwrap() {
            assert!(!addrs.is_empty());
            seen.insert(peer);
        }
    }
    assert_eq!(seen.len(), NODES);
    eprintln!("30-node test took {:?} in total", started.elapsed());

    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closest_peers_are_ordered_and_agree_between_nodes() {
    const NODES: usize = 10;
    let nodes = start_network(NODES).await;
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.client.local_peer_id()).collect();
    let key = *blake3::hash(b"a stripe id").as_bytes();

    // The true order of all nodes by distance to the key.
    let mut everyone = ids.clone();
    sort_by_distance(&key, &mut everyone);

    // With fewer nodes than k = 20, a settled lookup returns every other
    // node, in distance order; each querier is missing only itself.
    for querier in [3, 7] {
        let client = nodes[querier].client.clone();
        let me = ids[querier];
        let expected: Vec<PeerId> = everyone.iter().copied().filter(|p| *p != me).collect();
        eventually(Duration::from_secs(30), || {
            let client = client.clone();
            let expected = expected.clone();
            async move {
                let got = client.closest_peers(key).await.map_err(|e| e.to_string())?;
                if got == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "got {} peers, not in the expected order",
                        got.len()
                    ))
                }
            }
        })
        .await;
    }

    // The answer is consistent with the XOR metric, checked by hand.
    let got = nodes[0].client.closest_peers(key).await.unwrap();
    let mut resorted = got.clone();
    sort_by_distance(&key, &mut resorted);
    assert_eq!(got, resorted);

    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rejoins_from_its_saved_peer_table() {
    let nodes = start_network(5).await;
    let target = nodes[4].client.local_peer_id();
    nodes[1].client.bootstrap().await.unwrap();

    // Node 1's routing table, as the node layer would persist it.
    let table = eventually(Duration::from_secs(20), || async {
        let table = nodes[1]
            .client
            .known_peers()
            .await
            .map_err(|e| e.to_string())?;
        if table.len() >= 4 {
            Ok(table)
        } else {
            Err(format!("only {} peers known", table.len()))
        }
    })
    .await;

    // A new node given only that table (no bootstrap address) joins.
    let mut config = loopback_config();
    config.known_peers = table
        .into_iter()
        .flat_map(|(peer, addrs)| addrs.into_iter().map(move |addr| (peer, addr)))
        .collect();
    let newcomer = start(config).await;
    let lookup = eventually(Duration::from_secs(30), || async {
        newcomer
            .client
            .find_peer(target)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(lookup.peer, target);
    // Found by asking the peers of the table, or already connected through
    // one of them: either way with an address to dial.
    assert!(!lookup.addrs.is_empty());
    newcomer.client.bootstrap().await.unwrap();

    // And can be added to by hand.
    let extra = start(loopback_config()).await;
    assert!(
        newcomer
            .client
            .add_known_peer(extra.client.local_peer_id(), extra.addr.clone())
            .await
            .unwrap()
    );

    let mut all = nodes;
    all.push(newcomer);
    all.push(extra);
    stop_all(all).await;
}

/// A peer that stopped stays in the others' routing tables (Kademlia keeps
/// a peer whose addresses fail), but a lookup for it must not say it is
/// found from that entry alone: the dial that confirms it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_left_in_the_routing_table_is_not_found() {
    let mut nodes = start_network(4).await;
    let gone = nodes.pop().unwrap();
    let gone_id = gone.client.local_peer_id();
    let querier = nodes[1].client.clone();
    eventually(Duration::from_secs(30), || async {
        querier
            .find_peer(gone_id)
            .await
            .map_err(|e| e.to_string())?;
        // A lookup answers as soon as it reaches the peer; the peer enters
        // the table once it has answered a Kademlia request.
        let known = querier.known_peers().await.map_err(|e| e.to_string())?;
        if known.iter().any(|(peer, _)| *peer == gone_id) {
            Ok(())
        } else {
            Err("found, but not in the routing table yet".to_owned())
        }
    })
    .await;
    stop_all(vec![gone]).await;
    // Once the querier has noticed the connection close (a peer still
    // connected is found from the connection).
    eventually(Duration::from_secs(30), || async {
        let connected = querier.connected_peers().await.map_err(|e| e.to_string())?;
        if connected.contains(&gone_id) {
            Err("still connected to the stopped peer".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let known = querier.known_peers().await.unwrap();
    assert!(
        known.iter().any(|(peer, _)| *peer == gone_id),
        "the stopped peer should still be in the table for this test to mean anything"
    );
    let error = querier.find_peer(gone_id).await.unwrap_err();
    assert!(
        matches!(error, kith_net::NetError::PeerNotFound { .. }),
        "{error:?}"
    );
    stop_all(nodes).await;
}
