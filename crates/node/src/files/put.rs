//! Put: encode a file and place every share of every stripe on distinct
//! peers, or fail saying why.
//!
//! The codec runs on a blocking thread and hands stripes over a channel of
//! [`ENCODED_AHEAD`] stripes; up to [`STRIPES_IN_FLIGHT`] stripes are being
//! sent at once, each to its n peers in parallel. Memory is therefore
//! bounded by the codec's window plus those stripes, whatever the file size.
//!
//! A put succeeds only when every stripe, the manifest's included, has all n
//! shares accepted by n distinct peers (the "happy" count is n: a file
//! reported stored has its full redundancy). A peer that refuses (store
//! full) or fails is replaced by the next closest one; when no peer is left
//! the put fails with how many peers it found and how many it needs. A
//! peer that refused a share because its store is full, or because this
//! node's part of it (the holder's `quota_per_peer`) is used up, is asked
//! last for [`FULL_PAUSE`] ([`FullPeers`]): its refusal costs a share's
//! transfer each time.

use std::io::Read;
use std::sync::{Arc, Mutex};

use kith_base::{Capability, ContentId, FileKey, Lease};
use kith_codec::{EncodeError, EncodedStripe, Encoder, FileMeta, Params};
use kith_net::PeerId;
use kith_store::Store;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use super::owned::OwnedFile;
use super::placement::{EXTENT_STRIPES, ExtentPlacement};
use super::{ShareNotPlaced, Shares};
use crate::protocols::share::wire::{OutRequest, RefuseReason};

/// Stripes the codec may run ahead of the network.
const ENCODED_AHEAD: usize = 4;
/// Stripes being sent at once.
const STRIPES_IN_FLIGHT: usize = 6;
/// How long a peer that refused a share as full is asked last.
pub(crate) const FULL_PAUSE: std::time::Duration = std::time::Duration::from_secs(600);
/// Most peers remembered as full.
const FULL_PEERS_KEPT: usize = 1024;

/// Peers that lately refused a share as full, until when. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct FullPeers(Arc<Mutex<std::collections::HashMap<PeerId, std::time::Instant>>>);

impl FullPeers {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PeerId, std::time::Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `peer` refused a share as full: ask it last for [`FULL_PAUSE`].
    pub(crate) fn refused(&self, peer: PeerId) {
        let now = std::time::Instant::now();
        let mut full = self.lock();
        if full.len() >= FULL_PEERS_KEPT {
            full.retain(|_, until| *until > now);
        }
        if full.len() < FULL_PEERS_KEPT {
            full.insert(peer, now + FULL_PAUSE);
        }
    }

    /// Moves the peers that refused lately to the end of `candidates`,
    /// keeping the order within each part.
    pub(crate) fn ask_last(&self, candidates: &mut [PeerId]) {
        let now = std::time::Instant::now();
        let full = self.lock();
        if full.is_empty() {
            return;
        }
        candidates.sort_by_key(|peer| full.get(peer).is_some_and(|until| *until > now));
    }
}

/// What a successful put stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PutReport {
    /// The read capability.
    pub capability: Capability,
    /// Bytes in the file.
    pub file_size: u64,
    /// Data stripes (the manifest stripe not counted).
    pub stripes: usize,
    /// The code used.
    pub params: Params,
    /// Distinct peers that received shares (this node included if it did).
    pub peers: usize,
}

/// Why a put failed. Nothing is reported stored after any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// Not enough peers are known to place n shares on distinct peers.
    #[error(
        "only {found} peer(s) are available to hold shares (this node included), but {k}-of-{n} \
         needs {n} distinct peers; connect more peers or choose fewer shares with --shares"
    )]
    NotEnoughPeers {
        /// Peers found, this node included.
        found: usize,
        /// k.
        k: u8,
        /// n.
        n: u8,
    },
    /// Peers refused or failed until too few were left for a stripe.
    #[error(
        "could not place share {index} of stripe {stripe}: {failed} of the {found} peers found \
         refused or failed, and {n} distinct peers are needed; last error: {last}"
    )]
    Placement {
        /// The stripe.
        stripe: ContentId,
        /// The share that found no home.
        index: u8,
        /// Peers found for the stripe's extent.
        found: usize,
        /// Of which refused or failed.
        failed: usize,
        /// Shares per stripe.
        n: u8,
        /// What the last peer said.
        last: String,
    },
    /// Reading or encoding the file failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Something inside the node failed.
    #[error("internal error: {0}")]
    Internal(String),
}

enum Encoded {
    Stripe(EncodedStripe),
    Done(kith_codec::EncodedFile),
    Failed(EncodeError),
}

impl Shares {
    /// Stores the file read from `reader`. See the module docs.
    pub(crate) async fn put(
        &self,
        reader: Box<dyn Read + Send>,
        params: Params,
        meta: FileMeta,
    ) -> Result<PutReport, PutError> {
        let (k, n) = (params.k(), params.n());
        // Fail before reading anything when the network is plainly too small.
        let known = self.net.known_peers().await.map(|p| p.len()).unwrap_or(0);
        let connected = self
            .net
            .connected_peers()
            .await
            .map(|p| p.len())
            .unwrap_or(0);
        let found = known.max(connected) + 1;
        if found < usize::from(n) {
            return Err(PutError::NotEnoughPeers { found, k, n });
        }

        let (sender, mut encoded) = mpsc::channel(ENCODED_AHEAD);
        let encoder = tokio::task::spawn_blocking(move || encode(reader, params, meta, sender));
        // Each stripe's sending task is aborted when its handle is dropped:
        // dropping this future (a client that went away) stops every share
        // transfer it started.
        let mut sending: std::collections::VecDeque<Sending> = std::collections::VecDeque::new();
        let mut peers = std::collections::HashSet::new();
        let mut placement = None;
        let mut stripes = 0usize;
        // Every share carries the same lease end; renewal moves it later.
        let ends = self.leases.end();
        let mut extent_key = [0u8; 32];
        let mut groups: Vec<([u8; 32], Vec<ContentId>)> = Vec::new();
        let result = 'put: loop {
            while sending.len() >= STRIPES_IN_FLIGHT {
                match join(sending.pop_front()).await {
                    Ok(used) => peers.extend(used),
                    Err(error) => break 'put Err(error),
                }
            }
            let Some(message) = encoded.recv().await else {
                break Err(PutError::Internal("the encoder stopped".into()));
            };
            match message {
                Encoded::Stripe(stripe) => {
                    if stripes.is_multiple_of(EXTENT_STRIPES) {
                        extent_key = *stripe.id().as_bytes();
                        groups.push((extent_key, Vec::new()));
                        match self.place(extent_key, k, n).await {
                            Ok(new) => placement = Some(new),
                            Err(error) => break Err(error),
                        }
                    }
                    if let Some((_, ids)) = groups.last_mut() {
                        ids.push(stripe.id());
                    }
                    let lease = self.leases.sign(stripe.id(), extent_key, ends);
                    let Some(placement) = placement.clone() else {
                        break Err(PutError::Internal("no placement".into()));
                    };
                    let this = self.clone();
                    let gauge = InFlight::enter(self.counters.clone());
                    sending.push_back(AbortOnDropHandle::new(tokio::spawn(async move {
                        let _gauge = gauge;
                        this.send_stripe(Arc::new(stripe), lease, placement).await
                    })));
                    stripes += 1;
                }
                Encoded::Failed(error) => break Err(error.into()),
                Encoded::Done(file) => {
                    while let Some(task) = sending.pop_front() {
                        match join(Some(task)).await {
                            Ok(used) => peers.extend(used),
                            Err(error) => break 'put Err(error),
                        }
                    }
                    let manifest = Arc::new(file.manifest_stripe);
                    let manifest_key = *manifest.id().as_bytes();
                    let placement = match self.place(manifest_key, k, n).await {
                        Ok(placement) => placement,
                        Err(error) => break Err(error),
                    };
                    let lease = self.leases.sign(manifest.id(), manifest_key, ends);
                    match self.send_stripe(manifest.clone(), lease, placement).await {
                        Ok(used) => peers.extend(used),
                        Err(error) => break Err(error),
                    }
                    groups.push((manifest_key, vec![manifest.id()]));
                    self.remember(
                        manifest.id(),
                        OwnedFile {
                            expires_at: ends,
                            groups: std::mem::take(&mut groups),
                        },
                    )
                    .await;
                    break Ok(PutReport {
                        capability: file.capability,
                        file_size: file.manifest.file_size(),
                        stripes,
                        params,
                        peers: peers.len(),
                    });
                }
            }
        };
        for task in &sending {
            task.abort();
        }
        drop(encoded);
        let _ = encoder.await;
        match &result {
            Ok(report) => info!(
                size = report.file_size,
                stripes = report.stripes,
                peers = report.peers,
                "stored a file"
            ),
            Err(error) => info!(%error, "put failed"),
        }
        result
    }

    /// Chooses the n peers of an extent around `key`.
    async fn place(
        &self,
        key: [u8; 32],
        k: u8,
        n: u8,
    ) -> Result<Arc<Mutex<ExtentPlacement>>, PutError> {
        let mut candidates = self.locator.candidates(key).await;
        self.full_peers.ask_last(&mut candidates);
        let found = candidates.len();
        debug!(found, "placing an extent");
        ExtentPlacement::new(candidates, usize::from(n))
            .map(|placement| Arc::new(Mutex::new(placement)))
            .ok_or(PutError::NotEnoughPeers { found, k, n })
    }

    /// Records a stored file, so that this node renews its leases. A
    /// failure is logged: the file is stored, but its leases will end
    /// unless it is put again.
    async fn remember(&self, manifest: ContentId, file: OwnedFile) {
        let owned = self.owned.clone();
        let saved = tokio::task::spawn_blocking(move || owned.insert(&manifest, &file)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "cannot record a stored file for lease renewal"),
            Err(error) => warn!(%error, "cannot record a stored file for lease renewal"),
        }
    }

    /// Sends the n shares of a stripe to their peers, each with `lease`;
    /// returns the peers.
    async fn send_stripe(
        &self,
        stripe: Arc<EncodedStripe>,
        lease: Lease,
        placement: Arc<Mutex<ExtentPlacement>>,
    ) -> Result<Vec<PeerId>, PutError> {
        let record = Arc::new(stripe.record().to_bytes());
        let n = stripe.record().n();
        let sends = (0..n).map(|index| {
            let this = self.clone();
            let stripe = stripe.clone();
            let record = record.clone();
            let placement = placement.clone();
            async move {
                this.send_share(&stripe, &record, &lease, index, &placement)
                    .await
            }
        });
        futures::future::try_join_all(sends).await
    }

    async fn send_share(
        &self,
        stripe: &Arc<EncodedStripe>,
        record: &[u8],
        lease: &Lease,
        index: u8,
        placement: &Mutex<ExtentPlacement>,
    ) -> Result<PeerId, PutError> {
        let lock = || placement.lock().unwrap_or_else(|e| e.into_inner());
        let mut peer = lock().target(usize::from(index));
        loop {
            let outcome = if peer == self.me {
                self.store_locally(stripe.clone(), *lease, index).await
            } else {
                let request = OutRequest::Put {
                    stripe: stripe.id(),
                    index,
                    record,
                    lease: lease.as_bytes(),
                    share: stripe.share(usize::from(index)),
                };
                ShareNotPlaced::from_answer(peer, self.client.call(peer, request, 1).await)
            };
            match outcome {
                Ok(()) => return Ok(peer),
                Err(last) => {
                    debug!(%last, index, "share not placed; trying the next peer");
                    if let ShareNotPlaced::Refused {
                        peer,
                        reason: RefuseReason::Full | RefuseReason::PeerShare,
                        ..
                    } = &last
                    {
                        self.full_peers.refused(*peer);
                    }
                    let mut placement = lock();
                    match placement.replace(usize::from(index), peer) {
                        Some(next) => peer = next,
                        None => {
                            let (found, failed) = placement.counts();
                            return Err(PutError::Placement {
                                stripe: stripe.id(),
                                index,
                                found,
                                failed,
                                n: stripe.record().n(),
                                last: last.to_string(),
                            });
                        }
                    }
                }
            }
        }
    }

    async fn store_locally(
        &self,
        stripe: Arc<EncodedStripe>,
        lease: Lease,
        index: u8,
    ) -> Result<(), ShareNotPlaced> {
        self.repair.new_shares();
        let key = lease.placement();
        let stored = self
            .blocking(move |store| {
                store_leased(
                    store,
                    stripe.record(),
                    index,
                    stripe.share(usize::from(index)),
                    &lease,
                )
                .map(|_| ())
                .map_err(ShareNotPlaced::from)
            })
            .await;
        if stored.is_ok() {
            // As a holder asked by a peer does (see `Server::answer`).
            let this = self.clone();
            tokio::spawn(async move { this.announcer.announce(key).await });
        }
        stored
    }
}

/// Stores share `index` of `record`'s stripe under `lease` (its owner and
/// expiry), with the record and the lease, in one metadata commit that
/// concurrent puts share: a refused share leaves nothing behind.
pub(crate) fn store_leased(
    store: &Store,
    record: &kith_codec::StripeRecord,
    index: u8,
    share: &[u8],
    lease: &Lease,
) -> kith_store::Result<kith_store::PutOutcome> {
    store.put_stripe_share(record, index, share, kith_store::Holding::Leased(lease))
}

/// Awaits one sending task.
/// A stripe being sent: its task, aborted if dropped.
type Sending = AbortOnDropHandle<Result<Vec<PeerId>, PutError>>;

/// Counts a stripe send in `stripes_sending` while it lives (finished or
/// aborted, the count goes down).
struct InFlight(Arc<super::upkeep::counters::Counters>);

impl InFlight {
    fn enter(counters: Arc<super::upkeep::counters::Counters>) -> Self {
        counters
            .stripes_sending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .stripes_sending
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn join(task: Option<Sending>) -> Result<Vec<PeerId>, PutError> {
    match task {
        None => Ok(Vec::new()),
        // Aborted only when the put itself is dropped; a panic is resumed.
        Some(task) => match task.await {
            Ok(result) => result,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        },
    }
}

/// The codec's side: runs on a blocking thread.
fn encode(
    reader: Box<dyn Read + Send>,
    params: Params,
    meta: FileMeta,
    sender: mpsc::Sender<Encoded>,
) {
    let mut encoder = Encoder::new(reader, params, FileKey::random(), meta);
    for stripe in &mut encoder {
        let message = match stripe {
            Ok(stripe) => Encoded::Stripe(stripe),
            Err(error) => {
                let _ = sender.blocking_send(Encoded::Failed(error));
                return;
            }
        };
        if sender.blocking_send(message).is_err() {
            return;
        }
    }
    let _ = sender.blocking_send(match encoder.finish() {
        Ok(file) => Encoded::Done(file),
        Err(error) => Encoded::Failed(error),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_that_refused_as_full_are_asked_last_in_order() {
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let full = FullPeers::default();
        let mut candidates = peers.clone();
        full.ask_last(&mut candidates);
        assert_eq!(candidates, peers);
        full.refused(peers[0]);
        full.refused(peers[2]);
        full.ask_last(&mut candidates);
        assert_eq!(
            candidates,
            vec![peers[1], peers[3], peers[4], peers[0], peers[2]]
        );
    }
}
