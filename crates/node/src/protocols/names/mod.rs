//! `/kith/name/1.0.0`: signed name records kept on the peers closest to a
//! name's DHT key ([`kith_base::Name::dht_key`]).
//!
//! - `wire`: the frames, their bounds, the protocol id;
//! - `server`: keeping records for others (verified, newest kept, a bounded
//!   number of names) and handing them out;
//! - `client`: storing a record on a peer, fetching one from it.
//!
//! What is published, resolved, republished and mirrored is decided in
//! `crate::names`, which calls into this room.

pub(crate) mod client;
pub(crate) mod server;
pub mod wire;

pub use wire::PROTOCOL;
