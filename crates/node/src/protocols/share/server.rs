//! The serving side of `/kith/share/1.0.0`: stores shares peers send, hands
//! out the shares this node holds, and says which it holds.
//!
//! Bounds, so that no peer can exhaust the node:
//!
//! - at most [`MAX_STREAMS`] share streams at once, [`MAX_STREAMS_PER_PEER`]
//!   per peer; more are dropped (the opener sees a reset and tries later);
//! - frame payloads are buffered only after taking their size from a
//!   node-wide memory budget of [`INBOUND_BUDGET`] bytes, so a hundred
//!   streams announcing 64 MiB shares wait for each other instead of
//!   allocating 6 GiB;
//! - an idle stream is closed after [`IDLE`]; every frame has a
//!   size-scaled timeout (see [`super::wire::transfer_timeout`]);
//! - the shares leased by any one owner may hold at most the node's
//!   per-peer part of its quota (`quota_per_peer`, [`PeerCap`]); a put past
//!   it is refused with [`RefuseReason::PeerShare`], and the uploader
//!   places the share on its next peer. This node's own shares are not
//!   capped. Refusals are counted for `/v1/metrics`.
//!
//! A get may be answered from memory (a share this node fetched moments
//! ago for its own download) or with "ask that peer instead" when the
//! asker allows it: see [`super::swarm`].
//!
//! Nothing received is trusted: a stored share must hash to the id its
//! stripe record gives for its index, and the record must hash to the
//! stripe id; the store checks both again on every read.

use std::sync::Arc;
use std::time::Duration;

use kith_base::ContentId;
use kith_codec::StripeRecord;
use kith_net::{Control, PeerId, Stream};
use kith_store::{PutOutcome, Store, StoreError};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::lifecycle::Lifecycle;
use crate::slots::{Refused, StreamSlots};

use super::wire::{self, Answer, DropResult, RefuseReason, Request, WireError};
use crate::files::swarm::{ShareKey, Swarm};
use crate::files::upkeep::counters::{Counters, bump};

/// Most share streams served at once.
pub(crate) const MAX_STREAMS: usize = 256;
/// Most share streams served at once for one peer.
pub(crate) const MAX_STREAMS_PER_PEER: usize = 32;
/// Bytes of inbound frames buffered at once, over all streams.
pub(crate) const INBOUND_BUDGET: usize = 256 << 20;
/// How long a stream may sit between requests.
pub(crate) const IDLE: Duration = Duration::from_secs(120);

/// What the server is given by the node.
pub(crate) struct ServerParts {
    pub(crate) store: Store,
    pub(crate) repair: Arc<crate::files::RepairState>,
    pub(crate) swarm: Swarm,
    pub(crate) counters: Arc<Counters>,
    pub(crate) faults: crate::files::Faults,
    pub(crate) announcer: crate::files::announce::Announcer,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) peer_cap: PeerCap,
}

/// The most bytes the shares leased by any one peer may take in this
/// node's store (`quota_per_peer`), and this node's own key, whose shares
/// are not capped. Cheap to clone; clones share the cap, which can change
/// while the node runs.
#[derive(Clone, Debug)]
pub(crate) struct PeerCap {
    bytes: Arc<std::sync::atomic::AtomicU64>,
    me: [u8; 32],
}

impl PeerCap {
    /// No cap yet, for the node whose key is `me`.
    pub(crate) fn new(me: [u8; 32]) -> Self {
        Self {
            bytes: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            me,
        }
    }

    /// Sets the cap (`u64::MAX`: none).
    pub(crate) fn set(&self, bytes: u64) {
        self.bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The cap in force (`u64::MAX`: none).
    pub(crate) fn get(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cap on `owner`'s shares: none for this node's own.
    pub(crate) fn for_owner(&self, owner: &[u8; 32]) -> u64 {
        if *owner == self.me {
            u64::MAX
        } else {
            self.get()
        }
    }
}

/// Shared state of the server.
#[derive(Clone)]
pub(crate) struct Server {
    store: Store,
    repair: Arc<crate::files::RepairState>,
    swarm: Swarm,
    counters: Arc<Counters>,
    budget: Arc<Semaphore>,
    streams: StreamSlots,
    faults: crate::files::Faults,
    /// To announce what this node holds.
    announcer: crate::files::announce::Announcer,
    /// The node's stop: no new streams or requests once it begins.
    lifecycle: Lifecycle,
    /// The per-peer part of the quota.
    peer_cap: PeerCap,
}

impl Server {
    /// A server of `store`, with the node's swarm (to redirect to fresher
    /// copies), repair state (to pace), counters and faults, and its
    /// announcer (to announce what it holds).
    pub(crate) fn new(parts: ServerParts) -> Self {
        Self {
            store: parts.store,
            repair: parts.repair,
            swarm: parts.swarm,
            counters: parts.counters,
            budget: Arc::new(Semaphore::new(INBOUND_BUDGET)),
            streams: StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER),
            faults: parts.faults,
            announcer: parts.announcer,
            lifecycle: parts.lifecycle,
            peer_cap: parts.peer_cap,
        }
    }

    /// Accepts share streams until the node stops.
    pub(crate) async fn run(self, mut control: Control) {
        let mut incoming = match control.accept(wire::PROTOCOL) {
            Ok(incoming) => incoming,
            Err(error) => {
                warn!(%error, "cannot serve the share protocol");
                return;
            }
        };
        while let Some((peer, stream)) = self.lifecycle.next_incoming(&mut incoming).await {
            // Only hand off here: libp2p-stream drops inbound streams that
            // arrive while this loop is busy.
            let Some(slot) = self.streams.admit_counted(peer, self.lifecycle.refusals()) else {
                debug!(%peer, "too many share streams; dropping one");
                continue;
            };
            let server = self.clone();
            self.lifecycle.spawn_request(async move {
                if let Err(error) = server.serve(peer, stream).await {
                    debug!(%peer, %error, "share stream ended");
                }
                drop(slot);
            });
        }
    }

    async fn serve(&self, peer: PeerId, mut stream: Stream) -> Result<(), WireError> {
        loop {
            // Between requests a stopping node closes the stream; a request
            // that has begun is served to its end.
            let header = tokio::select! {
                biased;
                () = self.lifecycle.stopping() => return Ok(()),
                header = wire::read_header(&mut stream, IDLE) => header?,
            };
            let Some(wire::Header { tag, len }) = header else {
                return Ok(());
            };
            // `len` ≤ the tag's maximum ≤ 64 MiB + a little, so it fits.
            let permits = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
            let _memory = self
                .budget
                .acquire_many(permits)
                .await
                .map_err(|_| WireError::Closed)?;
            let payload = wire::read_payload(&mut stream, len).await?;
            let request = wire::parse_request(tag, payload)?;
            match request {
                Request::Get {
                    stripe,
                    index,
                    redirect,
                } => {
                    self.serve_get(peer, &mut stream, (stripe, index), redirect)
                        .await?
                }
                Request::Put { .. } if self.faults.stalls_stores() => {
                    // Answer nothing; wait for the sender to give up and
                    // close the stream (or for the idle limit).
                    let _ = wire::read_header(&mut stream, IDLE).await;
                    return Err(WireError::Closed);
                }
                other => {
                    let answer = self.answer(peer, other).await;
                    wire::write_answer(&mut stream, &answer).await?;
                }
            }
        }
    }

    /// Answers a get: with "ask that peer" if the asker allows it and a
    /// recent recipient can take it, else from memory (a share this node
    /// fetched lately or is fetching now), else from the store.
    async fn serve_get(
        &self,
        peer: PeerId,
        stream: &mut Stream,
        key: ShareKey,
        redirect: bool,
    ) -> Result<(), WireError> {
        if self.faults.stalls() {
            // Answer nothing; wait for the asker to give up and close the
            // stream (or for the idle limit).
            let _ = wire::read_header(stream, IDLE).await;
            return Err(WireError::Closed);
        }
        if redirect
            && let Some(target) = self
                .swarm
                .redirect(key, peer, |other| self.streams.has_open(other))
        {
            bump(&self.counters.swarm_redirects, 1);
            return wire::write_answer(stream, &Answer::Elsewhere(target)).await;
        }
        if let Some(held) = self.swarm.held(key).await {
            self.count_served(key, peer, held.share.len());
            bump(&self.counters.served_from_memory, 1);
            let share = self.faults.served(&held.share);
            return wire::write_share(stream, &held.record, held.lease.as_deref(), &share).await;
        }
        let (stripe, index) = key;
        match self
            .blocking(move |store| local_share(store, stripe, index))
            .await
        {
            LocalShare::Found {
                record,
                lease,
                share,
            } => {
                self.count_served(key, peer, share.len());
                let share = self.faults.served(&share);
                wire::write_share(stream, &record, lease.as_deref(), &share).await
            }
            LocalShare::Missing => wire::write_answer(stream, &Answer::NotFound).await,
            LocalShare::Damaged => wire::write_answer(stream, &Answer::Damaged).await,
        }
    }

    /// Counts a share about to be sent, and makes its receiver a recipient
    /// from now on (before the bytes are out: a downloader asking while
    /// they travel is sent to it, and waits there for them).
    fn count_served(&self, key: ShareKey, peer: PeerId, len: usize) {
        bump(&self.counters.shares_served, 1);
        bump(&self.counters.bytes_served, len as u64);
        self.swarm.served(key, peer);
    }

    async fn answer(&self, peer: PeerId, request: Request) -> Answer {
        match request {
            Request::Put {
                stripe,
                index,
                record,
                lease,
                share,
            } => {
                let cap = self.peer_cap.clone();
                let (answer, placement) = self
                    .blocking(move |store| {
                        store_share(store, stripe, index, &record, &lease, &share, &cap)
                    })
                    .await;
                // A holder announces itself as a provider of the placement
                // key, so that a reader whose lookup missed this node (its
                // closest peers are not the writer's) still finds it.
                if let (Answer::Stored { .. }, Some(key)) = (&answer, placement) {
                    let announcer = self.announcer.clone();
                    tokio::spawn(async move { announcer.announce(key).await });
                }
                match &answer {
                    Answer::Refused { reason, message } => {
                        if *reason == RefuseReason::PeerShare {
                            self.lifecycle.refusals().count(Refused::QuotaPerPeer);
                        }
                        debug!(%peer, %stripe, index, %message, "refused a share");
                    }
                    Answer::Stored {
                        already_held: false,
                    } => self.repair.new_shares(),
                    _ => {}
                }
                answer
            }
            Request::Have { stripes } => {
                let bitmaps = self
                    .blocking(move |store| {
                        stripes
                            .iter()
                            .map(|stripe| {
                                let mut bitmap = [0u8; 32];
                                for (index, _) in store.shares_of_stripe(stripe).unwrap_or_default()
                                {
                                    wire::set_bit(&mut bitmap, index);
                                }
                                bitmap
                            })
                            .collect()
                    })
                    .await;
                Answer::Holding(bitmaps)
            }
            Request::Drop { stripe, index } => {
                let owner = kith_base::identity::ed25519_key(&peer).unwrap_or_default();
                let answer = self
                    .blocking(move |store| drop_share(store, stripe, index, owner))
                    .await;
                debug!(%peer, %stripe, index, ?answer, "drop request");
                answer
            }
            Request::Renew { leases } => {
                let renewed = self
                    .blocking(move |store| crate::files::upkeep::leases::renew_held(store, &leases))
                    .await;
                debug!(%peer, renewed, "renewed leases");
                Answer::Renewed(u32::try_from(renewed).unwrap_or(u32::MAX))
            }
            Request::Get { .. } => Answer::Refused {
                reason: RefuseReason::Internal,
                message: "get is answered elsewhere".into(),
            },
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        crate::files::on_blocking_pool(&self.store, work).await
    }
}

/// Whether `stripe`'s stored lease is a valid signature of `owner`'s for
/// this stripe (the lease may have ended: the owner may still delete).
fn lease_names_owner(store: &Store, stripe: ContentId, owner: [u8; 32]) -> bool {
    owner != [0; 32]
        && store
            .stripe_lease(&stripe)
            .ok()
            .flatten()
            .and_then(|bytes| kith_base::Lease::from_bytes(&bytes).ok())
            .is_some_and(|lease| lease.stripe() == stripe && lease.owner() == owner)
}

/// Deletes share `index` of `stripe` if `owner` stored it, or if it is a
/// cached copy whose stripe lease names `owner` (see [`lease_names_owner`]).
pub(crate) fn drop_share(store: &Store, stripe: ContentId, index: u8, owner: [u8; 32]) -> Answer {
    let refuse = |reason, message: String| Answer::Refused { reason, message };
    let held = match store.shares_of_stripe(&stripe) {
        Ok(held) => held,
        Err(error) => return refuse(RefuseReason::Internal, error.to_string()),
    };
    let Some((_, id)) = held.into_iter().find(|(i, _)| *i == index) else {
        return Answer::Dropped(DropResult::NotHeld);
    };
    match store.share_info(&id) {
        Ok(Some(info)) if info.owner == owner && owner != [0; 32] => {}
        // A cached copy: deleted when the stripe's lease, signed by the
        // file's owner and kept when the copy was fetched, names the peer
        // asking as that owner. Without such a lease there is no way to
        // tell the owner from anyone else, and the copy stays.
        Ok(Some(info)) if info.owner == [0; 32] => {
            if !lease_names_owner(store, stripe, owner) {
                return Answer::Dropped(DropResult::KeptCache);
            }
        }
        Ok(Some(_)) => {
            return refuse(
                RefuseReason::NotOwner,
                "only the node that stored this share may delete it".into(),
            );
        }
        Ok(None) => return Answer::Dropped(DropResult::NotHeld),
        Err(error) => return refuse(RefuseReason::Internal, error.to_string()),
    }
    match store.remove_share(&id) {
        Ok(was_held) => {
            if store
                .shares_of_stripe(&stripe)
                .is_ok_and(|left| left.is_empty())
            {
                let _ = store.remove_record(&stripe);
            }
            Answer::Dropped(if was_held {
                DropResult::Deleted
            } else {
                DropResult::NotHeld
            })
        }
        Err(error) => refuse(RefuseReason::Internal, error.to_string()),
    }
}

/// Checks and stores a share a peer sent, under the lease it came with,
/// within the lease owner's part of the quota (`cap`). Returns the answer
/// and, once the lease is verified, its placement key (the lease's
/// signature is checked once per share: it is the holder's costliest check
/// after the hash).
pub(crate) fn store_share(
    store: &Store,
    stripe: ContentId,
    index: u8,
    record: &[u8],
    lease: &[u8],
    share: &[u8],
    cap: &PeerCap,
) -> (Answer, Option<[u8; 32]>) {
    let refuse = |reason, message: String| Answer::Refused { reason, message };
    // Refused before the lease is verified: no placement key to announce.
    let invalid = |message: String| (refuse(RefuseReason::Invalid, message), None);
    let record = match StripeRecord::from_bytes(record) {
        Ok(record) => record,
        Err(error) => {
            return invalid(format!("bad stripe record: {error}"));
        }
    };
    if record.id() != stripe {
        return invalid(format!(
            "the stripe record does not hash to stripe {stripe}"
        ));
    }
    if record.share_ids().get(usize::from(index)).is_none() {
        return invalid(format!(
            "share index {index} is outside a {}-share stripe",
            record.n()
        ));
    }
    if share.len() != record.share_len() as usize {
        return invalid(format!(
            "share is {} bytes; the stripe's shares are {}",
            share.len(),
            record.share_len()
        ));
    }
    let lease = match crate::files::upkeep::leases::check_lease(lease, Some(stripe)) {
        Ok(lease) => lease,
        Err(error) => {
            return invalid(format!("bad lease: {error}"));
        }
    };
    let placement = Some(lease.placement());
    // The share, the record and the lease in one commit: if the share is
    // refused (quota, mismatch) nothing is left behind for it. The lease's
    // owner owns the share (a cached copy, which has no owner, is taken
    // over).
    let stored = store.put_stripe_share_capped(
        &record,
        index,
        share,
        kith_store::Holding::Leased(&lease),
        cap.for_owner(&lease.owner()),
    );
    let answer = match stored {
        Ok(outcome) => Answer::Stored {
            already_held: outcome == PutOutcome::AlreadyHad,
        },
        Err(error @ (StoreError::QuotaExceeded { .. } | StoreError::DiskFull { .. })) => {
            refuse(RefuseReason::Full, error.to_string())
        }
        Err(error @ StoreError::PeerShareExceeded { .. }) => {
            refuse(RefuseReason::PeerShare, error.to_string())
        }
        Err(error @ (StoreError::Mismatch { .. } | StoreError::NotInStripe { .. })) => {
            refuse(RefuseReason::Invalid, error.to_string())
        }
        Err(error) => {
            warn!(%error, "cannot store a share");
            refuse(
                RefuseReason::Internal,
                format!("cannot store the share: {error}"),
            )
        }
    };
    (answer, placement)
}

/// What this node's store has of one share.
pub(crate) enum LocalShare {
    /// The stripe record, the lease kept for the stripe (if any) and the
    /// share, verified.
    Found {
        record: Vec<u8>,
        lease: Option<Vec<u8>>,
        share: Vec<u8>,
    },
    /// Not held.
    Missing,
    /// Held, but damaged on disk: the store has just dropped it.
    Damaged,
}

/// The record and share `index` of `stripe`, if this node holds them intact.
pub(crate) fn local_share(store: &Store, stripe: ContentId, index: u8) -> LocalShare {
    let Some(share_id) = store
        .shares_of_stripe(&stripe)
        .ok()
        .and_then(|shares| shares.into_iter().find(|(i, _)| *i == index))
        .map(|(_, id)| id)
    else {
        return LocalShare::Missing;
    };
    let Ok(Some(record)) = store.get_record(&stripe) else {
        return LocalShare::Missing;
    };
    match store.get_share(&share_id) {
        Ok(Some(share)) => LocalShare::Found {
            record: record.to_bytes(),
            lease: store.stripe_lease(&stripe).ok().flatten(),
            share,
        },
        Ok(None) => LocalShare::Missing,
        Err(error) => {
            // The store has dropped the damaged share (repair will notice the
            // stripe is short); the asker hears why it is missing.
            warn!(%error, "not serving a damaged share");
            if matches!(error, kith_store::StoreError::Corrupt { .. }) {
                LocalShare::Damaged
            } else {
                LocalShare::Missing
            }
        }
    }
}
