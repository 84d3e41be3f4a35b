//! Many real kith nodes in one process, for tests, benchmarks and the demo.
//!
//! A [`Testnet`] starts `n` full [`kith_node::Node`]s on the current tokio
//! runtime, each with its own data folder inside one temporary folder and
//! listening on `127.0.0.1` over TCP. Node 0 starts first; every other node
//! bootstraps from it, so the network forms the way a real one does: from a
//! single address, through the Kademlia DHT. By default nodes talk over real
//! sockets, so what passes here passes on a LAN; [`Transport::Memory`]
//! (in [`TestnetConfig::transport`]) swaps in libp2p's in-process memory
//! transport, with the same handshakes and protocols, for runs of a
//! thousand nodes.
//!
//! Nodes can be stopped ([`Testnet::kill`]) and started again on the same
//! folder ([`Testnet::restart`]), with or without a bootstrap address, to
//! test that a node rejoins from the peer table it saved. Tests wait for
//! conditions with [`wait_for`], never for a fixed time.
//!
//! The [`names`] module is the benchmark behind `kith-testnet names` (name
//! resolves, first, fresh and cached), [`feeds`] the one behind
//! `kith-testnet feeds` (post delivery, initial sync). The [`dht`] module is the benchmark
//! behind `kith-testnet dht`: it starts
//! a network, lets it settle and measures random peer lookups.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kith_testnet::TestnetError> {
//! use std::time::Duration;
//! use kith_testnet::{Testnet, TestnetConfig};
//!
//! let net = Testnet::start(10, TestnetConfig::default()).await?;
//! let target = net.peer_id(9);
//! net.wait_for("node 1 finds node 9", Duration::from_secs(30), || async {
//!     net.node(1).net().find_peer(target).await.is_ok()
//! })
//! .await?;
//! net.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod dht;
mod error;
pub mod feeds;
pub mod greedy;
pub mod names;
pub mod repair;
pub mod stats;
mod testnet;
mod wait;

pub use error::TestnetError;
pub use testnet::{Testnet, TestnetConfig, Transport, raise_fd_limit};
pub use wait::{POLL_INTERVAL, wait_for};
