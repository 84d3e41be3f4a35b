//! A reduced `kith-testnet scale` run: many nodes on the in-process memory
//! transport, every random lookup must find its peer and every small file
//! must come back identical from another node.

use kith_testnet::Transport;
use kith_testnet::dht::{self, DhtBenchConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_nodes_in_memory_find_every_peer_and_every_file() {
    let config = DhtBenchConfig {
        nodes: 100,
        lookups: 300,
        transport: Transport::Memory,
        seeds: 4,
        files: 10,
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
