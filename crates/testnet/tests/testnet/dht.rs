//! The DHT forms from one bootstrap node: every node finds every other.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_testnet::{Testnet, TestnetConfig};

/// 30 nodes, each given only node 0's address: every one of the 870
/// (querier, target) pairs must succeed with `find_peer`. Pairs that fail
/// are retried in rounds until all have succeeded, within 90 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_find_each_other() {
    const NODES: usize = 30;
    const LIMIT: Duration = Duration::from_secs(90);
    const IN_FLIGHT: usize = 16;

    let started = Instant::now();
    let net = Testnet::start(NODES, TestnetConfig::default())
        .await
        .unwrap();
    eprintln!("started {NODES} nodes in {:?}", started.elapsed());

    let lookups = Instant::now();
    let mut missing: Vec<(usize, usize)> = (0..NODES)
        .flat_map(|q| (0..NODES).filter(move |&t| t != q).map(move |t| (q, t)))
        .collect();
    let total = missing.len();
    let mut rounds = 0;
    let mut requests = 0u64;
    while !missing.is_empty() {
        assert!(
            lookups.elapsed() < LIMIT,
            "{} of {total} lookups still fail after {LIMIT:?}, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        rounds += 1;
        let results: Vec<_> = futures::stream::iter(missing)
            .map(|(q, t)| {
                let net = &net;
                async move {
                    let result = net.node(q).net().find_peer(net.peer_id(t)).await;
                    ((q, t), result)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        missing = Vec::new();
        for (pair, result) in results {
            match result {
                Ok(lookup) => {
                    assert_eq!(lookup.peer, net.peer_id(pair.1));
                    assert!(!lookup.addrs.is_empty(), "{pair:?} found without address");
                    requests += u64::from(lookup.requests);
                }
                Err(_) => missing.push(pair),
            }
        }
        if !missing.is_empty() {
            eprintln!("round {rounds}: {} lookups failed; retrying", missing.len());
        }
    }
    eprintln!(
        "all {total} lookups succeeded in {:?} ({rounds} rounds, {:.1} requests per lookup); \
         {:?} in total",
        lookups.elapsed(),
        requests as f64 / total as f64,
        started.elapsed()
    );
    net.shutdown().await;
}
