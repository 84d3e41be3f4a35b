//! Get: find the holders, fetch k verified shares of each stripe from
//! several peers in parallel, decrypt, and hand the plaintext out in order.
//!
//! 1. The manifest stripe is located around its own id (which the
//!    capability carries), fetched and opened: a capability no peer knows is
//!    a clear "not found" once the closest peers have answered.
//! 2. Each extent of stripes is located with one lookup and one `have`
//!    round, when its first stripe is needed.
//! 3. Up to [`STRIPES_IN_FLIGHT`] stripes are fetched at once. For each,
//!    k shares are asked of different peers at once (data shares first: no
//!    erasure decoding when they are all there). Every share is checked
//!    against the stripe record, itself checked against the stripe id from
//!    the manifest. A share that is missing, late or bad is replaced by
//!    another (index, peer) at once; a peer that served a bad share gets a
//!    strike, is reported, and is asked last from then on.
//! 4. As soon as k good shares are in, the stripe is decoded on a blocking
//!    thread; stripes come out in file order.
//!
//! Memory: [`STRIPES_IN_FLIGHT`] stripes of shares and plaintext, plus what
//! the reader of [`Download::into_stream`] has not taken yet (a channel of
//! [`STRIPES_AHEAD`] segments), whatever the file size.
//!
//! Swarming: every share is asked for with "get, or say where", so a holder
//! that gave it to another downloader moments ago may send this node there
//! instead (see [`super::swarm`]); a redirected ask that finds nothing, or a
//! bad share, goes back to the holder without redirect. Each share fetched
//! is passed on from memory to downloaders sent here, and kept in this
//! node's store (within its quota, best effort, off the download's path),
//! so this node answers `have` for it and later downloads draw from it too.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kith_base::{Capability, ContentId, Lease};
use kith_codec::{DecodeError, Manifest, StripeRecord, decode_stripe_checked, open_manifest};
use kith_net::PeerId;
use tokio::sync::{OnceCell, mpsc};
use tracing::{debug, warn};

use super::Shares;
use super::placement::{EXTENT_STRIPES, extent_count, extent_key, extent_of, extent_stripes};
use super::swarm::{HeldShare, REDIRECTED_ANSWER_WAIT};
use super::upkeep::counters::bump;
use crate::protocols::share::client::CallError;
use crate::protocols::share::server::LocalShare;
use crate::protocols::share::wire::{Answer, OutRequest, WireError};

/// A failed redirect that took this long counts against the holder and the
/// peer it named (see [`super::swarm`]'s breakers).
const SLOW_REDIRECT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a holder asked directly may take to start answering a get
/// (the bytes then get a time scaled by their size). An honest holder
/// answers from memory or disk at once, or after waiting up to 8 s for a
/// share it is fetching itself; one that hangs is given up on after this
/// and asked last for [`SLOW_PEER_PAUSE`].
const ANSWER_START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a holder that did not start answering in time is asked last.
pub(super) const SLOW_PEER_PAUSE: std::time::Duration = std::time::Duration::from_secs(600);
/// Rounds in which a stripe asks again the holders it could not reach
/// (a dial that failed, a connection closed under the request) before it
/// counts as lost: in a busy network connections come and go, and a
/// holder unreachable for a moment is not gone.
const UNREACHED_ROUNDS: u32 = 2;
/// The pause before such a round; the second waits twice as long.
const UNREACHED_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// Stripes fetched at once.
const STRIPES_IN_FLIGHT: usize = 8;
/// Decoded segments waiting for the reader.
const STRIPES_AHEAD: usize = 4;
/// Stripes waiting to be cached; more are not cached.
const CACHE_QUEUE: usize = 8;

/// The holders of one extent, found once on first need: per stripe of the
/// extent, the `(share index, peer)` pairs that said they hold a share, and
/// the peers asked; then, found once if a stripe turns out lost with those,
/// the pairs of a search further out ([`Shares::locate_more`]).
type ExtentHolders = (
    OnceCell<(Vec<Vec<(u8, PeerId)>>, Vec<PeerId>)>,
    OnceCell<Vec<Vec<(u8, PeerId)>>>,
);

/// Why a get failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// No peer holds the manifest.
    #[error(
        "not found: none of the {asked} peer(s) asked holds this file (is the capability from \
         this network, and are its holders online?)"
    )]
    NotFound {
        /// Peers asked, this node included.
        asked: usize,
    },
    /// Too few good shares of a stripe could be fetched.
    #[error(
        "stripe {stripe} is lost: only {found} good share(s) could be fetched and {needed} are \
         needed ({holders} holder(s) found)"
    )]
    Lost {
        /// The stripe.
        stripe: ContentId,
        /// Good shares fetched.
        found: usize,
        /// k.
        needed: usize,
        /// (index, peer) pairs that claimed to hold a share.
        holders: usize,
    },
    /// The manifest or a stripe did not decode (wrong key, tampering).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Something inside the node failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A share that failed verification, and who served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptShareReport {
    /// The peer that served it (or held it).
    pub peer: PeerId,
    /// The stripe.
    pub stripe: ContentId,
    /// The share's index in the stripe.
    pub index: u8,
    /// Who noticed.
    pub detected: Detected,
}

/// Who noticed a bad share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// The holder, reading it from its own disk: it dropped the share and
    /// said so instead of serving it. An honest peer with a bad disk.
    OnHolderDisk,
    /// This node: the share the peer sent failed verification against the
    /// stripe record. The peer is avoided from then on.
    ByVerification,
}

/// A share as one peer served it (not yet checked).
struct Served {
    record: Vec<u8>,
    lease: Option<Vec<u8>>,
    share: Bytes,
    /// Who sent it: the holder asked, or the peer it sent this node to.
    from: PeerId,
    /// Bytes the frame it came in keeps alive (`share` is a view into it).
    retained: usize,
}

/// What one get exchange brought other than a share.
enum Asked {
    /// "Ask that peer instead."
    Elsewhere(PeerId),
    /// The stream broke after the request went out (or the peer closed it
    /// without an answer): what a node from before swarming does with a
    /// "get, or say where".
    Dropped(FetchFailure),
    /// Any other failure.
    Failed(FetchFailure),
}

impl Asked {
    fn into_failure(self) -> FetchFailure {
        match self {
            Self::Elsewhere(other) => {
                FetchFailure::Other(format!("sent to {other} when no redirect was asked for"))
            }
            Self::Dropped(failure) | Self::Failed(failure) => failure,
        }
    }
}

impl std::fmt::Debug for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Elsewhere(other) => write!(f, "sent on to {other}"),
            Self::Dropped(FetchFailure::Damaged) | Self::Failed(FetchFailure::Damaged) => {
                f.write_str("damaged")
            }
            Self::Dropped(
                FetchFailure::Other(reason)
                | FetchFailure::Late(reason)
                | FetchFailure::Unreached(reason),
            )
            | Self::Failed(
                FetchFailure::Other(reason)
                | FetchFailure::Late(reason)
                | FetchFailure::Unreached(reason),
            ) => f.write_str(reason),
        }
    }
}

/// Reads the answer to a get sent to `peer` (with or without `redirect`).
fn served_or_why(
    peer: PeerId,
    answer: Result<Answer, CallError>,
    redirect: bool,
) -> Result<Served, Asked> {
    let other = |reason: String| Asked::Failed(FetchFailure::Other(reason));
    match answer {
        Ok(Answer::Share {
            record,
            lease,
            share,
        }) => Ok(Served {
            retained: share.len() + record.len() + lease.as_ref().map_or(0, Vec::len) + 3,
            record,
            lease,
            share,
            from: peer,
        }),
        Ok(Answer::Elsewhere(other)) if redirect => Err(Asked::Elsewhere(other)),
        Ok(Answer::NotFound) => Err(other("not found".into())),
        Ok(Answer::Damaged) => Err(Asked::Failed(FetchFailure::Damaged)),
        Ok(answer) => Err(other(format!("unexpected answer {answer:?}"))),
        Err(error) if matches!(&error, CallError::Wire(wire) if wire.is_gone()) => {
            Err(Asked::Dropped(FetchFailure::Unreached(error.to_string())))
        }
        Err(error @ (CallError::Open(_) | CallError::OpenTimeout(_))) => {
            Err(Asked::Failed(FetchFailure::Unreached(error.to_string())))
        }
        Err(error @ CallError::Wire(WireError::Timeout(_))) => {
            Err(Asked::Failed(FetchFailure::Late(error.to_string())))
        }
        Err(error) => Err(other(error.to_string())),
    }
}

/// Why a share could not be fetched from one holder.
enum FetchFailure {
    /// The holder found it damaged and dropped it.
    Damaged,
    /// The holder did not start answering in time.
    Late(String),
    /// The holder could not be reached, or the connection broke under the
    /// request: worth asking again a little later.
    Unreached(String),
    /// Anything else: not held, unreachable, unexpected answer.
    Other(String),
}

fn report_bad(
    report: &Mutex<ReportState>,
    peer: PeerId,
    stripe: ContentId,
    index: u8,
    detected: Detected,
) {
    report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .corrupt
        .push(CorruptShareReport {
            peer,
            stripe,
            index,
            detected,
        });
}

/// What a download met on its way.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GetReport {
    /// Bad shares detected (and not used).
    pub corrupt: Vec<CorruptShareReport>,
    /// Distinct peers that served good shares.
    pub peers: usize,
    /// Shares fetched and verified.
    pub shares: usize,
}

/// A download whose manifest is open; [`Download::into_stream`] fetches the
/// file.
#[derive(Debug)]
pub struct Download {
    shares: Shares,
    capability: Capability,
    manifest: Arc<Manifest>,
    report: Arc<Mutex<ReportState>>,
}

#[derive(Debug, Default)]
pub(super) struct ReportState {
    corrupt: Vec<CorruptShareReport>,
    peers: HashSet<PeerId>,
    shares: usize,
}

impl Download {
    /// The file's manifest: size, name, stripes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What the download met so far.
    pub fn report(&self) -> GetReport {
        report_of(&self.report)
    }

    /// A handle on the report that stays valid after
    /// [`Download::into_stream`].
    pub fn report_handle(&self) -> impl Fn() -> GetReport + Send + Sync + 'static {
        let report = self.report.clone();
        move || report_of(&report)
    }

    /// Fetches the file in the background; its segments come out of the
    /// returned channel in order. An error ends the stream. Dropping the
    /// receiver stops the fetching at once, requests under way included.
    pub fn into_stream(self) -> mpsc::Receiver<Result<Vec<u8>, GetError>> {
        let (sender, receiver) = mpsc::channel(STRIPES_AHEAD);
        tokio::spawn(async move {
            let closed = sender.clone();
            tokio::select! {
                () = closed.closed() => debug!("the reader went away; download stopped"),
                () = self.fetch_into(sender) => {}
            }
        });
        receiver
    }

    /// Fetches every segment in order into `sender`, until the end, an
    /// error, or the receiver going away.
    async fn fetch_into(self, sender: mpsc::Sender<Result<Vec<u8>, GetError>>) {
        let count = self.manifest.stripes().len();
        let extents: Arc<Vec<ExtentHolders>> = Arc::new(
            (0..extent_count(count))
                .map(|_| (OnceCell::new(), OnceCell::new()))
                .collect(),
        );
        let this = Arc::new(self);
        let mut segments = futures::stream::iter(0..count)
            .map(|index| {
                let this = this.clone();
                let extents = extents.clone();
                async move { this.segment(index, &extents).await }
            })
            .buffered(STRIPES_IN_FLIGHT);
        while let Some(segment) = segments.next().await {
            let failed = segment.is_err();
            if sender.send(segment).await.is_err() || failed {
                return;
            }
        }
    }

    async fn segment(&self, index: usize, extents: &[ExtentHolders]) -> Result<Vec<u8>, GetError> {
        let stripes = self.manifest.stripes();
        let extent = extent_of(index);
        let k = usize::from(self.manifest.params().k());
        let key = extent_key(stripes, extent);
        let ids = extent_stripes(stripes, extent);
        let (first, wider) = &extents[extent];
        let holders = first
            .get_or_init(|| async { self.shares.locator.locate_with_peers(key, ids, k).await })
            .await;
        let stripe = stripes[index];
        let at = index - extent * EXTENT_STRIPES;
        let fetched = match self
            .shares
            .fetch_stripe(stripe, &holders.0[at], Some(k), &self.report)
            .await
        {
            Err(GetError::Lost { .. }) => {
                // Holders that did not answer, or too few found: once per
                // extent, search further out, then try again.
                let more = wider
                    .get_or_init(|| async {
                        self.shares
                            .locator
                            .locate_more(key, ids, &holders.1, holders.0.clone())
                            .await
                            .0
                    })
                    .await;
                self.shares
                    .fetch_stripe(stripe, &more[at], Some(k), &self.report)
                    .await
            }
            other => other,
        };
        let Fetched {
            record,
            shares,
            lease,
        } = fetched?;
        let key = self.capability.clone();
        let manifest = self.manifest.clone();
        let (plaintext, record, shares) = super::blocking(move || {
            let refs: Vec<Option<&[u8]>> = shares.iter().map(|s| s.as_deref()).collect();
            let plaintext =
                decode_stripe_checked(key.key(), &manifest, index as u32, &record, &refs);
            (plaintext, record, shares)
        })
        .await;
        let plaintext = plaintext?;
        self.shares
            .cache(record, shares, lease, extent_key(stripes, extent));
        Ok(plaintext)
    }
}

fn report_of(report: &Mutex<ReportState>) -> GetReport {
    let state = report.lock().unwrap_or_else(|e| e.into_inner());
    GetReport {
        corrupt: state.corrupt.clone(),
        peers: state.peers.len(),
        shares: state.shares,
    }
}

impl Shares {
    /// Finds and opens the manifest of `capability`, keeping a cached copy
    /// of the manifest's shares (see [`Shares::cache`]).
    pub(crate) async fn open(&self, capability: &Capability) -> Result<Download, GetError> {
        self.open_with(capability, Caching::Keep).await
    }

    /// [`Shares::open`], saying whether the fetched manifest shares are
    /// cached: not when the file is about to be deleted.
    pub(crate) async fn open_with(
        &self,
        capability: &Capability,
        caching: Caching,
    ) -> Result<Download, GetError> {
        let manifest_id = capability.manifest();
        let key = *manifest_id.as_bytes();
        let (holders, asked) = self.locator.locate_with_peers(key, &[manifest_id], 1).await;
        if holders[0].is_empty() {
            return Err(GetError::NotFound { asked: asked.len() });
        }
        let report = Arc::new(Mutex::new(ReportState::default()));
        let fetched = match self
            .fetch_stripe(manifest_id, &holders[0], None, &report)
            .await
        {
            // Fewer than k holders answered: search further out, once.
            Err(GetError::Lost { .. }) => {
                let (more, _) = self
                    .locator
                    .locate_more(key, &[manifest_id], &asked, holders)
                    .await;
                self.fetch_stripe(manifest_id, &more[0], None, &report)
                    .await
            }
            other => other,
        };
        let Fetched {
            record,
            shares,
            lease,
        } = fetched?;
        let cap = capability.clone();
        let (manifest, record, shares) = super::blocking(move || {
            let refs: Vec<Option<&[u8]>> = shares.iter().map(|s| s.as_deref()).collect();
            (open_manifest(&cap, &record, &refs), record, shares)
        })
        .await;
        let manifest = manifest?;
        if caching == Caching::Keep {
            self.cache(record, shares, lease, *manifest_id.as_bytes());
        }
        Ok(Download {
            shares: self.clone(),
            capability: capability.clone(),
            manifest: Arc::new(manifest),
            report,
        })
    }

    /// Fetches k verified shares of `stripe` from `holders` ((index, peer)
    /// pairs). `k` is `None` when not known yet (the manifest stripe): then
    /// one share is fetched first, and its record tells.
    pub(super) async fn fetch_stripe(
        &self,
        stripe: ContentId,
        holders: &[(u8, PeerId)],
        k: Option<usize>,
        report: &Mutex<ReportState>,
    ) -> Result<Fetched, GetError> {
        let mut options = self.order(stripe, holders, k);
        let mut record: Option<StripeRecord> = None;
        // The record's and lease's bytes as checked, for passing shares on.
        let mut record_bytes: Option<Bytes> = None;
        let mut lease_bytes: Option<Bytes> = None;
        let mut good: BTreeMap<u8, Bytes> = BTreeMap::new();
        let mut lease: Option<Lease> = None;
        let mut asking: HashSet<u8> = HashSet::new();
        // Holders to ask without redirect: where a redirect led to bad bytes.
        let mut direct: HashSet<(u8, PeerId)> = HashSet::new();
        // Holders not reached this round, asked again in the next.
        let mut unreached: Vec<(u8, PeerId)> = Vec::new();
        let mut rounds = 0;
        let mut pending = FuturesUnordered::new();
        loop {
            let want = record
                .as_ref()
                .map(|r| usize::from(r.k()))
                .or(k)
                .unwrap_or(1);
            if record.is_some() && good.len() >= want {
                break;
            }
            while good.len() + asking.len() < want {
                let Some(at) = options
                    .iter()
                    .position(|(index, _)| !good.contains_key(index) && !asking.contains(index))
                else {
                    break;
                };
                let (index, peer) = options.remove(at);
                asking.insert(index);
                let redirect =
                    !direct.contains(&(index, peer)) && self.swarm.takes_redirects_from(&peer);
                let guard = self.swarm.begin((stripe, index));
                let this = self.clone();
                pending.push(async move {
                    let result = this.fetch_share(peer, stripe, index, redirect).await;
                    (index, peer, result, guard)
                });
            }
            let Some((index, peer, result, guard)) = pending.next().await else {
                unreached.retain(|(index, _)| !good.contains_key(index));
                if rounds < UNREACHED_ROUNDS && !unreached.is_empty() {
                    rounds += 1;
                    debug!(%stripe, holders = unreached.len(), rounds, "asking unreached holders again");
                    tokio::time::sleep(UNREACHED_PAUSE * rounds).await;
                    options.append(&mut unreached);
                    continue;
                }
                return Err(GetError::Lost {
                    stripe,
                    found: good.len(),
                    needed: want,
                    holders: holders.len(),
                });
            };
            asking.remove(&index);
            let served = match result {
                Ok(served) => served,
                Err(FetchFailure::Damaged) => {
                    warn!(%peer, %stripe, index, "the holder found its share damaged on disk");
                    report_bad(report, peer, stripe, index, Detected::OnHolderDisk);
                    continue;
                }
                Err(FetchFailure::Late(reason)) => {
                    debug!(%peer, %stripe, index, %reason, "holder too slow; asking it last for a while");
                    self.bad.slow(peer);
                    continue;
                }
                Err(FetchFailure::Unreached(reason)) => {
                    debug!(%peer, %stripe, index, %reason, "holder not reached; asking it again later");
                    unreached.push((index, peer));
                    continue;
                }
                Err(FetchFailure::Other(reason)) => {
                    debug!(%peer, %stripe, index, %reason, "share not fetched");
                    continue;
                }
            };
            let from = served.from;
            // Bad bytes from a peer this node was sent to: strike that peer
            // and ask the holder again, straight.
            let retry_direct = |options: &mut Vec<(u8, PeerId)>, direct: &mut HashSet<_>| {
                if from != peer {
                    self.redirect_failed(peer, from, true);
                    direct.insert((index, peer));
                    options.insert(0, (index, peer));
                }
            };
            if record.is_none() {
                match StripeRecord::from_bytes(&served.record) {
                    Ok(parsed) if parsed.id() == stripe => {
                        record = Some(parsed);
                        record_bytes = Some(Bytes::from(served.record));
                    }
                    _ => {
                        self.strike(report, from, stripe, index);
                        retry_direct(&mut options, &mut direct);
                        continue;
                    }
                }
            }
            let Some(checked) = record.as_ref() else {
                continue;
            };
            if checked
                .verify_share(usize::from(index), &served.share)
                .is_ok()
            {
                if lease.is_none()
                    && let Some(bytes) = served.lease
                    && let Ok(valid) = super::upkeep::leases::check_lease(&bytes, Some(stripe))
                {
                    lease = Some(valid);
                    lease_bytes = Some(Bytes::from(bytes));
                }
                if from != peer {
                    self.swarm.redirect_worked(&peer, &from);
                }
                if let (Some(guard), Some(record_bytes)) = (guard, &record_bytes) {
                    guard.done(HeldShare {
                        record: record_bytes.clone(),
                        lease: lease_bytes.clone(),
                        share: served.share.clone(),
                        retained: served.retained,
                    });
                }
                good.insert(index, served.share);
                let mut state = report.lock().unwrap_or_else(|e| e.into_inner());
                state.peers.insert(from);
                state.shares += 1;
            } else {
                self.strike(report, from, stripe, index);
                retry_direct(&mut options, &mut direct);
            }
        }
        let Some(record) = record else {
            return Err(GetError::Internal("no record".into()));
        };
        let mut shares: Vec<Option<Bytes>> = vec![None; usize::from(record.n())];
        for (index, share) in good {
            if let Some(slot) = shares.get_mut(usize::from(index)) {
                *slot = Some(share);
            }
        }
        Ok(Fetched {
            record,
            shares,
            lease,
        })
    }

    /// Orders the (index, peer) options of a stripe: data shares (index <
    /// k) before recovery shares, since k data shares decode by copying
    /// while any recovery share costs a Reed–Solomon solve (≈ 7× the CPU of
    /// fetching the share over the network here); among those, this node's
    /// own first (no network), then by index; peers that served bad data
    /// last; among equals, rotated by the stripe so that consecutive stripes
    /// draw from different peers. `k` unknown (the manifest): by index.
    fn order(
        &self,
        stripe: ContentId,
        holders: &[(u8, PeerId)],
        k: Option<usize>,
    ) -> Vec<(u8, PeerId)> {
        let spin = stripe.as_bytes()[0] as usize;
        let mut options: Vec<(usize, (u8, PeerId))> = holders
            .iter()
            .enumerate()
            .map(|(at, pair)| ((at + spin) % holders.len().max(1), *pair))
            .collect();
        options.sort_by_key(|(spun, (index, peer))| {
            let recovery = k.is_some_and(|k| usize::from(*index) >= k);
            (
                self.bad.strikes(peer),
                self.bad.is_slow(peer),
                recovery,
                *peer != self.me,
                *index,
                *spun,
            )
        });
        options.into_iter().map(|(_, pair)| pair).collect()
    }

    fn strike(&self, report: &Mutex<ReportState>, peer: PeerId, stripe: ContentId, index: u8) {
        warn!(%peer, %stripe, index, "a peer served a share that failed verification; avoiding it");
        self.bad.strike(peer);
        self.client.forget(&peer);
        report_bad(report, peer, stripe, index, Detected::ByVerification);
    }

    /// One share and its record, from a peer or from this node's store.
    /// With `redirect`, a holder may send this node to a peer that got the
    /// share from it moments ago; if that peer does not have it after all,
    /// the holder is asked again without redirect.
    async fn fetch_share(
        &self,
        peer: PeerId,
        stripe: ContentId,
        index: u8,
        redirect: bool,
    ) -> Result<Served, FetchFailure> {
        if peer == self.me {
            return match self
                .blocking(move |store| {
                    crate::protocols::share::server::local_share(store, stripe, index)
                })
                .await
            {
                LocalShare::Found {
                    record,
                    lease,
                    share,
                } => Ok(Served {
                    record,
                    lease,
                    retained: share.len(),
                    share: Bytes::from(share),
                    from: peer,
                }),
                LocalShare::Missing => Err(FetchFailure::Other("no longer held here".into())),
                LocalShare::Damaged => Err(FetchFailure::Damaged),
            };
        }
        let straight = || async {
            self.ask_share(peer, (stripe, index), false, ANSWER_START_WAIT)
                .await
                .map_err(Asked::into_failure)
        };
        let elsewhere = match self
            .ask_share(peer, (stripe, index), redirect, ANSWER_START_WAIT)
            .await
        {
            Ok(served) => return Ok(served),
            Err(Asked::Elsewhere(other))
                if other != self.me && other != peer && self.swarm.follows_redirects_to(&other) =>
            {
                other
            }
            Err(Asked::Elsewhere(_)) => return straight().await,
            // A node from before swarming drops a stream that asks with
            // "get, or say where": ask it the old way.
            Err(Asked::Dropped(_)) if redirect => return straight().await,
            Err(Asked::Dropped(failure) | Asked::Failed(failure)) => return Err(failure),
        };
        let asked = std::time::Instant::now();
        match self
            .ask_share(elsewhere, (stripe, index), false, REDIRECTED_ANSWER_WAIT)
            .await
        {
            Ok(served) => Ok(served),
            Err(why) => {
                debug!(%peer, %elsewhere, %stripe, index, ?why, "sent elsewhere in vain; asking the holder");
                self.redirect_failed(peer, elsewhere, asked.elapsed() >= SLOW_REDIRECT);
                straight().await
            }
        }
    }

    /// A redirect from `holder` to `target` led nowhere: counted, and
    /// told to the swarm's breakers if it cost time or brought bad bytes.
    /// A quick "not found" (a peer that passed the share out of its memory
    /// already) costs a round trip and happens in honest swarms.
    fn redirect_failed(&self, holder: PeerId, target: PeerId, costly: bool) {
        bump(&self.counters.swarm_redirects_failed, 1);
        if costly {
            self.swarm.redirect_failed(holder, target);
        }
    }

    /// One get exchange with `peer`, which must start answering within
    /// `wait` (a holder asked directly: [`ANSWER_START_WAIT`]; a peer this
    /// node was sent to: [`REDIRECTED_ANSWER_WAIT`]).
    async fn ask_share(
        &self,
        peer: PeerId,
        (stripe, index): (ContentId, u8),
        redirect: bool,
        wait: std::time::Duration,
    ) -> Result<Served, Asked> {
        let request = OutRequest::Get {
            stripe,
            index,
            redirect,
        };
        let answer = self.client.call_within(peer, request, wait).await;
        served_or_why(peer, answer, redirect)
    }

    /// Keeps fetched, verified shares in this node's store so that it
    /// serves them too, with the stripe's lease when a holder sent one (so
    /// that this node takes part in the stripe's repair; the cached copies
    /// themselves stay ownerless). Best effort: skipped when the queue is
    /// full or the store refuses.
    ///
    /// Once a stripe is cached, the node announces itself in the DHT as a
    /// provider of `provider_key` (the stripe's extent key, or the manifest
    /// id), so that later downloads find it beside the placed holders.
    fn cache(
        &self,
        record: StripeRecord,
        shares: Vec<Option<Bytes>>,
        lease: Option<Lease>,
        provider_key: [u8; 32],
    ) {
        let Ok(permit) = self.cache_slots.clone().try_acquire_owned() else {
            debug!("cache queue full; not caching a stripe");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stored = this
                .blocking(move |store| {
                    // Each share with the record and the lease in one
                    // commit (shared with concurrent puts).
                    let holding = kith_store::Holding::Cached(lease.as_ref());
                    let mut stored = false;
                    for (index, share) in shares.iter().enumerate() {
                        let Some(share) = share else { continue };
                        match store.put_stripe_share(&record, index as u8, share, holding) {
                            Ok(_) => stored = true,
                            Err(error) => {
                                debug!(%error, "not caching a share");
                                break;
                            }
                        }
                    }
                    stored
                })
                .await;
            if stored {
                this.announcer.announce(provider_key).await;
            }
        });
    }
}

/// Whether opening a file keeps a cached copy of what it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// Cache the fetched shares and announce them (reading a file).
    Keep,
    /// Fetch only (deleting a file: a fresh cache would outlive the `rm`).
    Skip,
}

/// What [`Shares::fetch_stripe`] brings back.
pub(super) struct Fetched {
    /// The stripe record, checked against the stripe id.
    pub(super) record: StripeRecord,
    /// n slots, k of them filled with verified shares.
    pub(super) shares: Vec<Option<Bytes>>,
    /// The owner's lease on the stripe, if a holder sent a valid one.
    pub(super) lease: Option<Lease>,
}

/// The queue of stripes waiting to be cached.
pub(crate) fn cache_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(CACHE_QUEUE))
}
