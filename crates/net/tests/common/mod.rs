//! Helpers shared by the integration tests: start nodes on loopback.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use kith_base::Identity;
use kith_net::{Client, Multiaddr, NetConfig, parse_multiaddr};
use tokio::task::JoinHandle;

/// A node started for a test.
pub struct TestNode {
    pub client: Client,
    pub task: JoinHandle<()>,
    /// Its first TCP listen address, with `/p2p/<id>`.
    pub addr: Multiaddr,
}

/// A config for loopback tests: TCP only on 127.0.0.1, no mDNS.
pub fn loopback_config() -> NetConfig {
    NetConfig::default()
        .with_listen([parse_multiaddr("/ip4/127.0.0.1/tcp/0").unwrap()])
        .with_mdns(false)
}

/// Starts a node and returns it with its dialable address.
pub async fn start(config: NetConfig) -> TestNode {
    let (client, task) = kith_net::spawn(&Identity::generate(), config)
        .await
        .expect("node starts");
    let addr = client
        .listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a listen address")
        .with_p2p(client.local_peer_id())
        .unwrap();
    TestNode { client, task, addr }
}

/// Retries `check` until it returns `Ok`, or panics with its last error
/// after `limit`. Polls every 200 ms: the tests wait for a condition, never
/// for a fixed time.
pub async fn eventually<F, Fut, T>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(error) if start.elapsed() > limit => {
                panic!("condition not met after {limit:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The sum of a metric's samples (the lines starting with `name`) in a
/// node's Prometheus text.
pub fn metric(node: &TestNode, name: &str) -> u64 {
    let mut text = String::new();
    node.client.write_metrics(&mut text).unwrap();
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Shuts nodes down and waits for their event loops to end.
pub async fn stop_all(nodes: Vec<TestNode>) {
    for node in nodes {
        node.client.shutdown().await.unwrap();
        node.task.await.unwrap();
    }
}

/// Starts `count` nodes; every node but the first bootstraps from the first.
pub async fn start_network(count: usize) -> Vec<TestNode> {
    let first = start(loopback_config()).await;
    let seed = first.addr.clone();
    let mut nodes = vec![first];
    for _ in 1..count {
        nodes.push(start(loopback_config().with_bootstrap(seed.clone())).await);
    }
    nodes
}
