//! Deleting a file this node stored: `kith rm CAP`.
//!
//! Every holder records which node stored each share (its owner: the peer
//! on the other end of the authenticated connection that put it, or this
//! node for its own shares). A drop request names a share and comes over
//! the owner's own connection, so it is as good as signed by the owner's
//! key; from any other peer it is refused and nothing is deleted. The data
//! stripes go first and the manifest's stripe last, so an interrupted `rm`
//! can be run again with the same capability.
//!
//! Copies that other nodes cached when they fetched the file have no owner
//! of their own, but a fetcher keeps the stripe's lease, which the owner
//! signed and which names the owner's key. So a cache deletes its copy when
//! the drop request comes over the connection of the key the lease names:
//! the owner's `rm` reaches the caches it finds (holders and the providers
//! that announced a cached copy). What an honest node does, that is: a
//! modified node can keep whatever it fetched, and a capability that was
//! shared cannot be taken back from someone who saved the file itself.

use std::time::Duration;

use futures::StreamExt;
use kith_base::{Capability, ContentId};
use kith_net::PeerId;
use tracing::debug;

use super::{Caching, GetError, Shares};
use crate::protocols::share::wire::{Answer, DropResult, OutRequest};

/// Drop requests in flight at once.
const IN_FLIGHT: usize = 16;
/// How long one holder may take to answer a drop.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `rm` did; also the API's answer to `POST /v1/rm`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RmReport {
    /// Shares deleted.
    pub dropped: usize,
    /// Shares a holder no longer had by the time it was asked.
    pub not_held: usize,
    /// Shares whose holder refused: this node did not store them.
    pub refused: usize,
    /// Copies other nodes cached without a lease of this owner to check
    /// the request against; they stay.
    pub cached: usize,
    /// Shares whose holder did not answer.
    pub unreachable: usize,
    /// Distinct holders asked.
    pub peers: usize,
}

enum Outcome {
    Dropped,
    NotHeld,
    Cached,
    Refused,
    Unreachable,
}

impl Shares {
    /// Deletes every share of `capability`'s file that this node stored.
    pub(crate) async fn remove(&self, capability: &Capability) -> Result<RmReport, GetError> {
        // Without caching: the manifest shares fetched to read the file's
        // layout would otherwise land in this node's store after the drops.
        let stat = self.stat_with(capability, Caching::Off).await?;
        let mut report = RmReport::default();
        let mut peers = std::collections::HashSet::new();
        // Data first, the manifest last: a second `rm` can still find the data.
        for stripes in [
            stat.stripes.as_slice(),
            std::slice::from_ref(&stat.manifest_stripe),
        ] {
            let work: Vec<(ContentId, u8, PeerId)> = stripes
                .iter()
                .flat_map(|stripe| {
                    stripe
                        .holders
                        .iter()
                        .map(move |(index, holder)| (stripe.id, *index, *holder))
                })
                .collect();
            peers.extend(work.iter().map(|(_, _, holder)| *holder));
            let outcomes: Vec<Outcome> = futures::stream::iter(work)
                .map(|(stripe, index, holder)| self.drop_one(stripe, index, holder))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome {
                    Outcome::Dropped => report.dropped += 1,
                    Outcome::NotHeld => report.not_held += 1,
                    Outcome::Cached => report.cached += 1,
                    Outcome::Refused => report.refused += 1,
                    Outcome::Unreachable => report.unreachable += 1,
                }
            }
        }
        report.peers = peers.len();
        // Stop renewing: what is left (cached copies, unreachable holders)
        // ends with its lease.
        let owned = self.owned.clone();
        let manifest = capability.manifest();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || owned.remove(&manifest)).await {
            tracing::warn!(%error, "cannot forget a removed file");
        }
        Ok(report)
    }

    async fn drop_one(&self, stripe: ContentId, index: u8, holder: PeerId) -> Outcome {
        let answer = if holder == self.me {
            let owner = kith_base::identity::ed25519_key(&self.me).unwrap_or_default();
            self.blocking(move |store| {
                crate::protocols::share::server::drop_share(store, stripe, index, owner)
            })
            .await
        } else {
            let call = self
                .client
                .call(holder, OutRequest::Drop { stripe, index }, 1);
            match tokio::time::timeout(DROP_TIMEOUT, call).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => {
                    debug!(%holder, %error, "drop failed");
                    return Outcome::Unreachable;
                }
                Err(_) => return Outcome::Unreachable,
            }
        };
        match answer {
            Answer::Dropped(DropResult::Deleted) => Outcome::Dropped,
            Answer::Dropped(DropResult::NotHeld) => Outcome::NotHeld,
            Answer::Dropped(DropResult::KeptCache) => Outcome::Cached,
            Answer::Refused { message, .. } => {
                debug!(%holder, %stripe, index, %message, "drop refused");
                Outcome::Refused
            }
            other => {
                debug!(%holder, ?other, "unexpected answer to drop");
                Outcome::Unreachable
            }
        }
    }
}
