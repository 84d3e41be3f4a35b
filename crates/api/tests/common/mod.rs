//! What the API's integration tests share: the settings of a node alone on
//! 127.0.0.1.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use kith_node::NodeConfig;

/// A node that listens on a free loopback port, with no mDNS and no
/// relay: alone, as an API test wants it.
pub fn lone_node_config() -> NodeConfig {
    NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        relay: false,
        ..NodeConfig::default()
    }
}
