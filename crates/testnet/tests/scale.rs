//! A reduced `kith-testnet scale` run: 200 nodes on the in-process memory
//! transport, every random lookup must find its peer and every small file
//! must come back identical from another node.
//!
//! A test binary of its own, so that it runs alone (cargo runs test
//! binaries one after another): 200 nodes fill both cores of a CI machine,
//! and sharing them with the other testnet tests measures the machine, not
//! the DHT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_testnet::Transport;
use kith_testnet::dht::{self, DhtBenchConfig, JoinMode, SCALE_MAIL_CHECK, SCALE_TIMING};

/// What `kith-testnet scale` runs, at a fifth of its size: 200 nodes
/// joining in waves of 50, the scale run's stretched clocks, no extra
/// bootstrap rounds; 16 lookups in flight rather than 32, so that a debug
/// build on two busy cores answers within Kademlia's 10 s per request (a
/// target that answers later is dropped from its own lookup: the misses
/// seen with a core taken by another process were all that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_nodes_in_memory_find_every_peer_and_every_file() {
    let config = DhtBenchConfig {
        nodes: 200,
        lookups: 400,
        concurrency: 16,
        transport: Transport::Memory,
        seeds: 4,
        files: 10,
        join: JoinMode::Waves(50),
        max_settle_rounds: 0,
        timing: SCALE_TIMING,
        mail_check: SCALE_MAIL_CHECK,
        ..DhtBenchConfig::default()
    };
    let report = dht::run(&config).await.unwrap();
    eprintln!("{report}");
    assert_eq!(report.found, config.lookups, "{report}");
    assert_eq!(report.puts_ok, config.files, "{report}");
    assert_eq!(report.gets_ok, config.files, "{report}");
    // No sockets: the memory transport needs no file descriptor per link.
    assert!(report.open_files.unwrap_or(0) < 1000, "{report}");
}
