//! `/kith/share/1.0.0`: the shares of stored files move between peers.
//!
//! - `wire`: the frames and their size limits;
//! - `server`: what this node answers (store, fetch, "which do you hold",
//!   drop, renew), behind per-peer stream slots;
//! - `client`: asking a peer, over a pool of reusable streams.

pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod wire;

pub use wire::PROTOCOL;
