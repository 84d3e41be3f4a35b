//! Leases on the node: checking the ones peers send, renewing this node's
//! own, and dropping shares whose lease ended.
//!
//! - Every share put carries its owner's signed [`Lease`] (see
//!   `kith_base::lease`). A holder stores the share under the lease's owner
//!   and expiry, and keeps the lease bytes per stripe so that it can find the
//!   stripe's peers (the lease names the placement key) and hand the lease
//!   on when it repairs the stripe.
//! - The owner's node remembers what it stored ([`super::owned`]) and, once
//!   half a lease has passed, signs the same leases with a later expiry and
//!   sends them to every holder it finds (`renew` frames). A node that is
//!   off for longer than half a lease risks its files; the default lease is
//!   30 days.
//! - Every node drops the shares whose lease ended (and the stripe's record
//!   and lease once no share of it is left). Copies cached by a getter are
//!   stored without an expiry and are not dropped this way.

use std::time::Duration;

use kith_base::{ContentId, Identity, Lease};
use kith_net::PeerId;
use kith_store::Store;
use tracing::{debug, info, warn};

use super::UpkeepRunner;
use super::counters::bump;
use crate::files::unix_now;
use crate::protocols::share::wire::{Answer, MAX_RENEW, OutRequest};

/// The longest lease a holder accepts, so no one can pin shares forever.
pub const MAX_LEASE: Duration = Duration::from_secs(400 * 24 * 3600);
/// Expired shares dropped per store call.
const EXPIRE_BATCH: usize = 256;
/// How long one holder may take to answer a renewal.
const RENEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks a lease sent with share(s) of `stripe`: well formed, signed by
/// its owner, for this stripe, not over, not too long.
pub(crate) fn check_lease(bytes: &[u8], stripe: Option<ContentId>) -> Result<Lease, BadLease> {
    let lease = Lease::from_bytes(bytes)?;
    if let Some(stripe) = stripe
        && lease.stripe() != stripe
    {
        return Err(BadLease::OtherStripe {
            lease: lease.stripe(),
            stripe,
        });
    }
    let now = unix_now();
    if lease.expires_at() <= now {
        return Err(BadLease::Ended);
    }
    if lease.expires_at() > now + MAX_LEASE.as_secs() {
        return Err(BadLease::TooLong {
            days: MAX_LEASE.as_secs() / 86_400,
        });
    }
    Ok(lease)
}

/// Why a holder does not accept a lease.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadLease {
    /// Not a lease, or not signed by its owner.
    #[error(transparent)]
    Malformed(#[from] kith_base::LeaseError),
    /// A lease of another stripe.
    #[error("the lease is for stripe {lease}, not {stripe}")]
    OtherStripe { lease: ContentId, stripe: ContentId },
    /// Over already.
    #[error("the lease has already ended")]
    Ended,
    /// Longer than a holder accepts.
    #[error("the lease runs longer than the {days} days a holder accepts")]
    TooLong { days: u64 },
}

/// Keeps `lease` as the stripe's lease unless the store has one that ends
/// later.
pub(crate) fn keep_lease(store: &Store, lease: &Lease) -> kith_store::Result<()> {
    let newer = match store.stripe_lease(&lease.stripe())? {
        Some(old) => {
            Lease::from_bytes(&old).map_or(true, |old| old.expires_at() < lease.expires_at())
        }
        None => true,
    };
    if newer {
        store.set_stripe_lease(&lease.stripe(), lease.as_bytes())?;
    }
    Ok(())
}

/// The lease this node keeps for `stripe`, if any (and valid).
pub(crate) fn kept_lease(store: &Store, stripe: &ContentId) -> Option<Lease> {
    let bytes = store.stripe_lease(stripe).ok()??;
    Lease::from_bytes(&bytes).ok()
}

/// A holder's side of a `renew` request: extends the shares each lease
/// covers, if they are the lease owner's. Returns how many were extended.
pub(crate) fn renew_held(store: &Store, leases: &[Vec<u8>]) -> usize {
    let mut renewed = 0;
    for bytes in leases {
        let lease = match check_lease(bytes, None) {
            Ok(lease) => lease,
            Err(error) => {
                debug!(%error, "ignoring a lease in a renewal");
                continue;
            }
        };
        match store.renew_stripe(&lease.stripe(), lease.owner(), lease.expires_at()) {
            Ok(0) => {}
            Ok(count) => {
                renewed += count;
                if let Err(error) = keep_lease(store, &lease) {
                    warn!(%error, "cannot keep a renewed lease");
                }
            }
            Err(error) => warn!(%error, "cannot renew a lease"),
        }
    }
    renewed
}

/// Signs this node's leases: its identity and how long a new lease runs.
#[derive(Clone, Debug)]
pub(crate) struct LeaseSigner {
    identity: Identity,
    length: Duration,
}

impl LeaseSigner {
    pub(crate) fn new(identity: Identity, length: Duration) -> Self {
        Self { identity, length }
    }

    /// When a lease signed now ends (Unix seconds).
    pub(crate) fn end(&self) -> u64 {
        unix_now() + self.length.as_secs().max(1)
    }

    /// Signs this node's lease on `stripe`, placed around `placement`.
    pub(crate) fn sign(&self, stripe: ContentId, placement: [u8; 32], ends: u64) -> Lease {
        Lease::sign(&self.identity, stripe, placement, ends)
    }
}

impl UpkeepRunner {
    /// Renews, then expires, forever: every tick renews this node's files
    /// that passed half their lease and drops the shares whose lease ended.
    pub(crate) async fn lease_loop(self) {
        let lease = self.settings.lease;
        let mut ticks = tokio::time::interval(
            (lease / 8).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.renew_due().await;
            self.expire().await;
        }
    }

    /// Renews the leases of this node's files that have less than half a
    /// lease left.
    pub(crate) async fn renew_due(&self) {
        let half = self.settings.lease.as_secs() / 2;
        let owned = self.owned.clone();
        let due = match tokio::task::spawn_blocking(move || owned.due(unix_now() + half)).await {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => {
                warn!(%error, "cannot read the files to renew");
                return;
            }
            Err(error) => {
                warn!(%error, "cannot read the files to renew");
                return;
            }
        };
        for (manifest, mut file) in due {
            let ends = self.leases.end();
            let mut renewed = 0;
            for (placement, stripes) in &file.groups {
                renewed += self.renew_group(*placement, stripes, ends).await;
            }
            file.expires_at = ends;
            let owned = self.owned.clone();
            let saved = tokio::task::spawn_blocking(move || owned.insert(&manifest, &file)).await;
            if !matches!(saved, Ok(Ok(()))) {
                warn!(%manifest, "cannot record a renewed lease");
            }
            info!(%manifest, renewed, "renewed the leases of a stored file");
        }
    }

    /// Renews the leases on `stripes` (placed around `placement`) until
    /// `ends`, here and on every holder found. Returns shares extended.
    async fn renew_group(&self, placement: [u8; 32], stripes: &[ContentId], ends: u64) -> usize {
        let leases: Vec<Lease> = stripes
            .iter()
            .map(|stripe| self.leases.sign(*stripe, placement, ends))
            .collect();
        let mut renewed = 0;
        for (ids, leases) in stripes.chunks(MAX_RENEW).zip(leases.chunks(MAX_RENEW)) {
            let (holders, _) = self.locator.locate(placement, ids).await;
            let mut per_peer: std::collections::HashMap<PeerId, Vec<[u8; kith_base::LEASE_LEN]>> =
                std::collections::HashMap::new();
            for (lease, holders) in leases.iter().zip(&holders) {
                let mut peers: Vec<PeerId> = holders.iter().map(|(_, peer)| *peer).collect();
                peers.dedup();
                for peer in peers {
                    let entry = per_peer.entry(peer).or_default();
                    if entry.last() != Some(lease.as_bytes()) {
                        entry.push(*lease.as_bytes());
                    }
                }
            }
            let calls = per_peer.into_iter().map(|(peer, leases)| async move {
                if peer == self.me {
                    let bytes: Vec<Vec<u8>> = leases.iter().map(|l| l.to_vec()).collect();
                    return self.blocking(move |store| renew_held(store, &bytes)).await;
                }
                let call = self
                    .client
                    .call(peer, OutRequest::Renew { leases: &leases }, 4);
                match tokio::time::timeout(RENEW_TIMEOUT, call).await {
                    Ok(Ok(Answer::Renewed(count))) => count as usize,
                    Ok(Ok(other)) => {
                        debug!(%peer, ?other, "unexpected answer to renew");
                        0
                    }
                    Ok(Err(error)) => {
                        debug!(%peer, %error, "renew failed");
                        0
                    }
                    Err(_) => {
                        debug!(%peer, "renew timed out");
                        0
                    }
                }
            });
            renewed += futures::future::join_all(calls)
                .await
                .into_iter()
                .sum::<usize>();
        }
        bump(&self.counters.leases_renewed, renewed as u64);
        renewed
    }

    /// Drops the shares whose lease ended, and the records and leases of
    /// stripes left with no share.
    pub(crate) async fn expire(&self) -> usize {
        let dropped = self
            .blocking(|store| {
                let now = unix_now();
                let mut dropped = 0usize;
                loop {
                    let ids = match store.expired(now, EXPIRE_BATCH) {
                        Ok(ids) => ids,
                        Err(error) => {
                            warn!(%error, "cannot list expired shares");
                            break;
                        }
                    };
                    let batch = ids.len();
                    for id in ids {
                        let stripe = store.share_info(&id).ok().flatten().map(|info| info.stripe);
                        if store.remove_share(&id).unwrap_or(false) {
                            dropped += 1;
                        }
                        if let Some(stripe) = stripe
                            && store
                                .shares_of_stripe(&stripe)
                                .is_ok_and(|left| left.is_empty())
                        {
                            let _ = store.remove_record(&stripe);
                        }
                    }
                    if batch < EXPIRE_BATCH {
                        break;
                    }
                }
                dropped
            })
            .await;
        if dropped > 0 {
            info!(dropped, "dropped shares whose lease ended");
            bump(&self.counters.shares_expired, dropped as u64);
        }
        dropped
    }
}
