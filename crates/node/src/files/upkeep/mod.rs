//! What every node does in the background to keep files alive, owned by
//! one [`UpkeepRunner`]:
//!
//! - [`leases`]: renew this node's own files at half-time, drop expired
//!   shares it holds for others;
//! - [`repair`]: rebuild the missing shares of the stripes it holds;
//! - [`scrub`]: re-read its shares to find damage;
//! - [`counters`]: what upkeep did, for `kith status`;
//! - [`pacing`]: the byte-rate limiter repair and scrub run under.
//!
//! The runner is given what it needs when the node starts
//! ([`super::assemble`]): the store, the share client, the locator and the
//! [`StripeFetcher`] it shares with get. It never calls into put or get.

pub(crate) mod counters;
pub(crate) mod leases;
pub(crate) mod pacing;
pub(crate) mod repair;
pub(crate) mod scrub;

use std::sync::Arc;

use kith_net::{Client, PeerId};
use kith_store::Store;

use super::fetch::StripeFetcher;
use super::locate::Locator;
use super::{OwnedFiles, UpkeepSettings};
use crate::protocols::share::client::ShareClient;
use counters::{Counters, UpkeepCounters};
use leases::LeaseSigner;
use repair::RepairState;

/// Leases, repair and scrub: the node's background upkeep and its state.
/// Cheap to clone. Built by [`super::assemble`], which fills in the fields.
#[derive(Clone, Debug)]
pub(crate) struct UpkeepRunner {
    pub(super) me: PeerId,
    pub(super) leases: LeaseSigner,
    pub(super) settings: Arc<UpkeepSettings>,
    pub(super) counters: Arc<Counters>,
    pub(super) owned: OwnedFiles,
    pub(super) repair: Arc<RepairState>,
    pub(super) net: Client,
    pub(super) store: Store,
    pub(super) client: ShareClient,
    pub(super) locator: Locator,
    pub(super) fetcher: StripeFetcher,
}

impl UpkeepRunner {
    /// The upkeep counters since start.
    pub(crate) fn counters(&self) -> UpkeepCounters {
        self.counters.snapshot()
    }

    /// The background tasks: leases, scrub, and repair unless switched off.
    pub(crate) fn tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(self.clone().lease_loop()),
            tokio::spawn(self.clone().scrub_loop()),
        ];
        if self.settings.repair {
            tasks.push(tokio::spawn(self.clone().repair_loop(self.net.events())));
        }
        tasks
    }

    /// Runs a store call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        super::on_blocking_pool(&self.store, work).await
    }
}
