//! Integration tests of the testnet: real kith nodes talking over
//! 127.0.0.1 TCP (or the in-process memory transport) in one process.
//!
//! One test binary (so it links once). Where new tests go:
//! - `dht.rs`: the network forming and lookups across it;
//! - `friends.rs`: messages, files and mailboxes between nodes;
//! - `restart.rs`: nodes stopping and coming back;
//! - `scale.rs`: a reduced `kith-testnet scale` run on the memory transport.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dht;
mod friends;
mod restart;
mod scale;
