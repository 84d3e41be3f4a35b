//! What every node does in the background to keep files alive:
//!
//! - [`leases`]: renew this node's own files at half-time, drop expired
//!   shares it holds for others;
//! - [`repair`]: rebuild the missing shares of the stripes it holds;
//! - [`scrub`]: re-read its shares to find damage;
//! - [`counters`]: what upkeep did, for `kith status`;
//! - [`pacing`]: the byte-rate limiter repair and scrub run under.

pub(crate) mod counters;
pub(crate) mod leases;
pub(crate) mod pacing;
pub(crate) mod repair;
pub(crate) mod scrub;
