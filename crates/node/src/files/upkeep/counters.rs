//! Counters of the node's storage upkeep (repair, scrub, leases) and of the
//! shares it served to downloaders, shown by `kith status` and
//! `GET /v1/status`. They count since the node started.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) repair_rounds: AtomicU64,
    pub(crate) stripes_checked: AtomicU64,
    pub(crate) stripes_repaired: AtomicU64,
    pub(crate) shares_repaired: AtomicU64,
    pub(crate) repair_bytes_fetched: AtomicU64,
    pub(crate) repair_bytes_sent: AtomicU64,
    pub(crate) repairs_running: AtomicU64,
    pub(crate) repair_failures: AtomicU64,
    pub(crate) scrub_checked: AtomicU64,
    pub(crate) scrub_bytes: AtomicU64,
    pub(crate) scrub_damaged: AtomicU64,
    pub(crate) scrub_passes: AtomicU64,
    pub(crate) leases_renewed: AtomicU64,
    pub(crate) shares_expired: AtomicU64,
    pub(crate) shares_served: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) served_from_memory: AtomicU64,
    pub(crate) swarm_redirects: AtomicU64,
    pub(crate) swarm_redirects_failed: AtomicU64,
    pub(crate) stripes_sending: AtomicU64,
}

/// Adds `by` to a counter.
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// A snapshot of the counters, as `kith status --json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct UpkeepCounters {
    /// Repair rounds run (a round checks every stripe this node holds).
    pub repair_rounds: u64,
    /// Stripes checked by those rounds.
    pub stripes_checked: u64,
    /// Stripes brought back to full redundancy by this node.
    pub stripes_repaired: u64,
    /// Shares this node rebuilt and placed.
    pub shares_repaired: u64,
    /// Bytes of shares fetched to rebuild stripes.
    pub repair_bytes_fetched: u64,
    /// Bytes of rebuilt shares sent to new holders (or stored here).
    pub repair_bytes_sent: u64,
    /// Stripe repairs under way now.
    pub repairs_running: u64,
    /// Repairs that could not finish (too few shares reachable, no peer
    /// took a share); they are tried again next round.
    pub repair_failures: u64,
    /// Shares the background scrub re-read and checked.
    pub scrub_checked: u64,
    /// Bytes it read.
    pub scrub_bytes: u64,
    /// Shares it found damaged (dropped, and their stripes repaired).
    pub scrub_damaged: u64,
    /// Full passes over the store it completed.
    pub scrub_passes: u64,
    /// Shares whose lease this node renewed (its own files, on every
    /// holder that answered).
    pub leases_renewed: u64,
    /// Shares dropped here because their lease ended.
    pub shares_expired: u64,
    /// Shares this node sent to peers that asked for them (downloads,
    /// repairs).
    #[serde(default)]
    pub shares_served: u64,
    /// Their bytes.
    #[serde(default)]
    pub bytes_served: u64,
    /// Of those shares, how many came from memory: fetched moments ago by
    /// this node's own download and passed on (swarming).
    #[serde(default)]
    pub served_from_memory: u64,
    /// Requests this node answered with "ask that peer instead", a peer it
    /// had just given the share to (swarming).
    #[serde(default)]
    pub swarm_redirects: u64,
    /// Redirects this node followed that led nowhere (the peer it was sent
    /// to failed, had nothing or sent bad bytes; the holder was asked again).
    #[serde(default)]
    pub swarm_redirects_failed: u64,
    /// Stripes whose shares this node's puts are sending now.
    #[serde(default)]
    pub stripes_sending: u64,
}

impl Counters {
    /// Reads every counter.
    pub(crate) fn snapshot(&self) -> UpkeepCounters {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        UpkeepCounters {
            repair_rounds: get(&self.repair_rounds),
            stripes_checked: get(&self.stripes_checked),
            stripes_repaired: get(&self.stripes_repaired),
            shares_repaired: get(&self.shares_repaired),
            repair_bytes_fetched: get(&self.repair_bytes_fetched),
            repair_bytes_sent: get(&self.repair_bytes_sent),
            repairs_running: get(&self.repairs_running),
            repair_failures: get(&self.repair_failures),
            scrub_checked: get(&self.scrub_checked),
            scrub_bytes: get(&self.scrub_bytes),
            scrub_damaged: get(&self.scrub_damaged),
            scrub_passes: get(&self.scrub_passes),
            leases_renewed: get(&self.leases_renewed),
            shares_expired: get(&self.shares_expired),
            shares_served: get(&self.shares_served),
            bytes_served: get(&self.bytes_served),
            served_from_memory: get(&self.served_from_memory),
            swarm_redirects: get(&self.swarm_redirects),
            swarm_redirects_failed: get(&self.swarm_redirects_failed),
            stripes_sending: get(&self.stripes_sending),
        }
    }
}
