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
//! so this node answers `have` for it and later downloads draw from it too
//! — unless the download was opened with [`Caching::Off`] (`kith get
//! --no-cache`), which keeps nothing and only passes shares on from memory.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use kith_base::{Capability, ContentId, Lease};
use kith_codec::{DecodeError, Manifest, StripeRecord, decode_stripe_checked, open_manifest};
use kith_net::PeerId;
use tokio::sync::{OnceCell, mpsc};
use tracing::debug;

use super::Shares;
use super::fetch::{Fetched, ReportState};
use super::locate::Asked;
use super::placement::{EXTENT_STRIPES, extent_count, extent_key, extent_of, extent_stripes};

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
    OnceCell<(Vec<Vec<(u8, PeerId)>>, Asked)>,
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
    caching: Caching,
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
        let segments = 0..self.manifest.stripes().len();
        self.stream_segments(segments, None)
    }

    /// Like [`Download::into_stream`], for the bytes `range` of the file
    /// only (an HTTP Range request): only the segments that hold them are
    /// fetched, and the first and last are cut to the range. A range past
    /// the end is cut at the end; an empty one yields nothing.
    pub fn into_range_stream(
        self,
        range: std::ops::Range<u64>,
    ) -> mpsc::Receiver<Result<Vec<u8>, GetError>> {
        let size = self.manifest.file_size();
        let range = range.start.min(size)..range.end.min(size);
        if range.is_empty() {
            return self.stream_segments(0..0, None);
        }
        let segment = u64::from(self.manifest.params().segment_size());
        let first = range.start / segment;
        let end = range.end.div_ceil(segment);
        // Both at most the stripe count, which fits a usize.
        self.stream_segments(first as usize..end as usize, Some(range))
    }

    fn stream_segments(
        self,
        segments: std::ops::Range<usize>,
        cut_to: Option<std::ops::Range<u64>>,
    ) -> mpsc::Receiver<Result<Vec<u8>, GetError>> {
        let (sender, receiver) = mpsc::channel(STRIPES_AHEAD);
        tokio::spawn(async move {
            let closed = sender.clone();
            tokio::select! {
                () = closed.closed() => debug!("the reader went away; download stopped"),
                () = self.fetch_into(sender, segments, cut_to) => {}
            }
        });
        receiver
    }

    /// Fetches the segments `wanted` in order into `sender`, each cut to
    /// `cut_to` (file offsets) if given, until the end, an error, or the
    /// receiver going away.
    async fn fetch_into(
        self,
        sender: mpsc::Sender<Result<Vec<u8>, GetError>>,
        wanted: std::ops::Range<usize>,
        cut_to: Option<std::ops::Range<u64>>,
    ) {
        let count = self.manifest.stripes().len();
        let segment_size = u64::from(self.manifest.params().segment_size());
        let extents: Arc<Vec<ExtentHolders>> = Arc::new(
            (0..extent_count(count))
                .map(|_| (OnceCell::new(), OnceCell::new()))
                .collect(),
        );
        let this = Arc::new(self);
        let mut segments = futures::stream::iter(wanted)
            .map(|index| {
                let this = this.clone();
                let extents = extents.clone();
                async move { (index, this.segment(index, &extents).await) }
            })
            .buffered(STRIPES_IN_FLIGHT);
        while let Some((index, segment)) = segments.next().await {
            let segment = match (&cut_to, segment) {
                (Some(range), Ok(mut plain)) => {
                    let begins = index as u64 * segment_size;
                    // Within the segment: both below its length.
                    let from = range.start.saturating_sub(begins).min(plain.len() as u64) as usize;
                    let to = (range.end - begins).min(plain.len() as u64) as usize;
                    plain.truncate(to);
                    plain.drain(..from);
                    Ok(plain)
                }
                (_, segment) => segment,
            };
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
            .fetcher
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
                    .fetcher
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
        let provider_key = extent_key(stripes, extent);
        match self.caching {
            Caching::Keep => self.shares.cache(record, shares, lease, provider_key),
            Caching::Mirror => {
                self.shares
                    .keep(record, shares, lease, provider_key)
                    .await?;
            }
            Caching::Off => {}
        }
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

    /// [`Shares::open`], saying what is kept of what is fetched
    /// ([`Caching`]): the manifest's shares, and the stripes the
    /// [`Download`] reads after it.
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
            .fetcher
            .fetch_stripe(manifest_id, &holders[0], None, &report)
            .await
        {
            // Fewer than k holders answered: search further out, once.
            Err(GetError::Lost { .. }) => {
                let (more, _) = self
                    .locator
                    .locate_more(key, &[manifest_id], &asked, holders)
                    .await;
                self.fetcher
                    .fetch_stripe(manifest_id, &more[0], None, &report)
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
        let provider_key = *manifest_id.as_bytes();
        match caching {
            Caching::Keep => self.cache(record, shares, lease, provider_key),
            Caching::Mirror => self.keep(record, shares, lease, provider_key).await?,
            Caching::Off => {}
        }
        Ok(Download {
            shares: self.clone(),
            capability: capability.clone(),
            manifest: Arc::new(manifest),
            report,
            caching,
        })
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

    /// Stores fetched, verified shares as ownerless copies that no lease
    /// ends (as [`Shares::cache`], but waited for and never skipped), then
    /// announces them. A share the store refuses (the quota, the disk)
    /// fails the call.
    async fn keep(
        &self,
        record: StripeRecord,
        shares: Vec<Option<Bytes>>,
        lease: Option<Lease>,
        provider_key: [u8; 32],
    ) -> Result<(), GetError> {
        self.blocking(move |store| {
            let holding = kith_store::Holding::Cached(lease.as_ref());
            for (index, share) in shares.iter().enumerate() {
                let Some(share) = share else { continue };
                store
                    .put_stripe_share(&record, index as u8, share, holding)
                    .map_err(|error| {
                        GetError::Internal(format!("cannot keep a copy of a share: {error}"))
                    })?;
            }
            Ok::<(), GetError>(())
        })
        .await?;
        // Announced in the background: a copy of a thousand files must not
        // wait for a thousand DHT announcements one after another.
        let announcer = self.announcer.clone();
        tokio::spawn(async move { announcer.announce(provider_key).await });
        Ok(())
    }
}

/// Whether opening a file keeps a cached copy of what it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// Cache the fetched shares and announce them (reading a file), best
    /// effort: skipped when the cache queue is full.
    Keep,
    /// Store every fetched stripe before going on, and announce it; a
    /// stripe the store refuses fails the read (a mirror, which must hold
    /// all of what it copies).
    Mirror,
    /// Fetch only, the manifest and every stripe read after it (`kith get
    /// --no-cache`: a restore that should not take the file's size a second
    /// time in the store; `kith rm`: a fresh cache would outlive the
    /// deletion). What is fetched is still passed on to other
    /// downloaders from memory while the download runs (swarming,
    /// [`super::swarm`]); it is just not kept, so this node serves none of
    /// it later.
    Off,
}

/// The queue of stripes waiting to be cached.
pub(crate) fn cache_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(CACHE_QUEUE))
}
