//! `/kith/feed/1.0.0`: feed entries between the nodes that hold a feed
//! (its author and its followers).
//!
//! - `wire`: the frames, their bounds, the protocol id;
//! - `server`: answering "entries after N", taking pushed entries of the
//!   feeds this node follows, and subscriptions to live pushes;
//! - `client`: fetching, pushing and subscribing.
//!
//! What is posted, followed and shown is decided in `crate::feeds`.

pub(crate) mod client;
pub(crate) mod server;
pub mod wire;

pub use wire::PROTOCOL;
