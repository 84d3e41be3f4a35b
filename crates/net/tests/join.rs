//! A node joins with lookups of its own id, not with a lookup per bucket.
//!
//! libp2p starts a full bootstrap by itself whenever a peer enters a table
//! of fewer than 20 peers: a lookup of the node's own id, then one random
//! lookup per more distant bucket. In a network of a thousand nodes joining
//! at once those refreshes were most of the lookups and kept two cores
//! busy for ten minutes (`docs/scale.md`, "Churn found and fixed"). kith
//! keeps the first step and stops there; the table fills from the lookups
//! that reach the node anyway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestNode, eventually, loopback_config, metric, start, start_network, stop_all};

/// FIND_NODE requests the nodes have answered.
fn find_node_requests(nodes: &[TestNode]) -> u64 {
    nodes
        .iter()
        .map(|node| {
            metric(
                node,
                "libp2p_kad_inbound_requests_total{request=\"FindNode\"}",
            )
        })
        .sum()
}

/// The FIND_NODE count once it has not changed for a second.
async fn settled_count(nodes: &[TestNode]) -> u64 {
    let mut last = (find_node_requests(nodes), std::time::Instant::now());
    eventually(Duration::from_secs(60), || {
        let now = find_node_requests(nodes);
        let result = if now != last.0 {
            last = (now, std::time::Instant::now());
            Err(format!("still answering FIND_NODE requests ({now} so far)"))
        } else if last.1.elapsed() < Duration::from_secs(1) {
            Err("not quiet for a second yet".to_owned())
        } else {
            Ok(now)
        };
        async move { result }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_looks_up_its_own_id_and_no_bucket_refreshes() {
    const NETWORK: usize = 24;
    let nodes = start_network(NETWORK).await;
    for node in &nodes {
        let _ = node.client.join().await;
    }
    // Settled: every table holds at least 20 peers, so nobody's automatic
    // bootstrap starts again.
    eventually(Duration::from_secs(60), || async {
        for node in &nodes {
            let known = node.client.known_peers().await.map_err(|e| e.to_string())?;
            if known.len() < 20 {
                return Err(format!("a table holds {} peers", known.len()));
            }
        }
        Ok(())
    })
    .await;
    // And quiet: the nodes' own joins and automatic bootstraps have ended
    // (no FIND_NODE answered for a second).
    let before = settled_count(&nodes).await;

    let newcomer = start(loopback_config().with_bootstrap(nodes[0].addr.clone())).await;
    newcomer.client.join().await.unwrap();
    // libp2p's automatic bootstrap ran its self-lookup and was cut.
    eventually(Duration::from_secs(30), || async {
        match metric(&newcomer, "kith_net_bootstraps_cut_total") {
            0 => Err("no automatic bootstrap was cut yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
    let table = newcomer.client.known_peers().await.unwrap().len();
    assert!(table >= 20, "the newcomer's table holds only {table} peers");

    // Every lookup asks each peer at most once: kith's join is one, each
    // automatic bootstrap cut after its self-lookup one more, and one may
    // still be under way (its requests sent, its cut not yet counted).
    // The bucket refreshes of an uncut bootstrap would add a lookup per
    // distant bucket, four or five more here.
    let asked = settled_count(&nodes).await - before;
    let cuts = metric(&newcomer, "kith_net_bootstraps_cut_total");
    let lookups = 2 + cuts;
    assert!(
        asked <= lookups * NETWORK as u64,
        "joining cost {asked} FIND_NODE requests in a network of {NETWORK}: more than \
         {lookups} lookups' worth ({cuts} automatic bootstrap(s) cut)"
    );

    let mut all = nodes;
    all.push(newcomer);
    stop_all(all).await;
}

/// A node whose bootstrap peer is not up when it starts joins once the
/// peer is: its first dials fail, Kademlia keeps the peer in the table,
/// and the rejoin (a table short after a bootstrap gets another, 10 s
/// later) dials it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_down_at_start_is_dialled_again_until_it_answers() {
    // The seed's identity and port, known before it starts.
    let seed_identity = kith_base::Identity::generate();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seed_addr: kith_net::Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", seed_identity.peer_id())
            .parse()
            .unwrap();
    let newcomer = start(loopback_config().with_bootstrap(seed_addr)).await;
    // Its first dial, and the one libp2p's automatic bootstrap makes,
    // have failed: nobody listens there yet.
    eventually(Duration::from_secs(20), || async {
        let errors = metric(&newcomer, "libp2p_swarm_outgoing_connection_error_total");
        if errors >= 2 {
            Ok(())
        } else {
            Err("the dials have not failed yet".to_owned())
        }
    })
    .await;

    let config =
        loopback_config().with_listen([format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()]);
    let (client, task) = kith_net::spawn(&seed_identity, config).await.unwrap();
    // The seed has no bootstrap address: it learns of the newcomer only
    // when the newcomer dials it.
    let newcomer_id = newcomer.client.local_peer_id();
    eventually(Duration::from_secs(60), || async {
        let known = client.known_peers().await.map_err(|e| e.to_string())?;
        if known.iter().any(|(peer, _)| *peer == newcomer_id) {
            Ok(())
        } else {
            Err(format!(
                "the seed knows {} peers, not the newcomer",
                known.len()
            ))
        }
    })
    .await;
    client.shutdown().await.unwrap();
    task.await.unwrap();
    stop_all(vec![newcomer]).await;
}
