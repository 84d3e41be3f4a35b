//! Integration tests of the testnet: real kith nodes talking over
//! 127.0.0.1 TCP in one process.
//!
//! One test binary (so it links once). Where new tests go:
//! - `dht.rs`: the network forming and lookups across it;
//! - `restart.rs`: nodes stopping and coming back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dht;
mod restart;
