//! Files on the network: put, get, stat and rm, over the share protocol
//! (its room is [`crate::protocols::share`]).
//!
//! - [`placement`]: which peers hold which shares (XOR distance, extents);
//! - [`put`], [`get`], [`stat`], [`rm`]: the operations, driven by [`Shares`];
//!   [`owned`] remembers the files this node stored;
//! - [`upkeep`], running in the background on every node: leases, repair
//!   and scrub;
//! - [`swarm`]: downloaders of one file at one time serve each other;
//! - [`faults`]: misbehaviour tests switch on.
//!
//! `docs/storage.md` describes the whole flow; `docs/threat-model.md` what
//! each kind of peer can learn and do.

mod faults;
pub(crate) mod get;
pub(crate) mod owned;
pub(crate) mod placement;
pub(crate) mod put;
mod rm;
pub(crate) mod stat;
pub(crate) mod swarm;
pub(crate) mod upkeep;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_base::{ContentId, Identity};
use kith_net::{Client, PeerId};
use kith_store::Store;
use tracing::debug;

pub use faults::Faults;
pub use get::{CorruptShareReport, Detected, Download, GetError, GetReport};
pub use owned::OWNED_FILE;
pub use put::{PutError, PutReport};
pub use rm::RmReport;
pub use stat::{Health, StatReport, StripeStat};
pub use upkeep::counters::UpkeepCounters;
pub use upkeep::leases::MAX_LEASE;

pub(crate) use crate::protocols::share::server::Server;
pub(crate) use owned::OwnedFiles;
pub(crate) use upkeep::repair::RepairState;

use crate::protocols::share::client::ShareClient;
use crate::protocols::share::wire::{self, Answer, OutRequest};
use get::Caching;
use upkeep::counters::Counters;

/// How long a `have` round may wait for one peer.
const HAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider lookup may take before a get goes on without it.
const PROVIDERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers a reader that found too few holders asks beyond the first round
/// (see [`Shares::locate_more`]).
const WIDER: usize = 40;
/// Provider announcements running at once (each is a DHT lookup); more
/// wait their turn.
const ANNOUNCING_AT_ONCE: usize = 4;
/// Provider keys remembered as announced; beyond this the set starts over
/// (a repeated announcement is harmless, only wasted work).
const ANNOUNCED_MEMORY: usize = 4096;

/// How the node keeps what it holds: lease length, repair and scrub pace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpkeepSettings {
    /// How long holders keep a put's shares unless the owner renews them
    /// (the owner's node renews at half-time while it runs).
    pub lease: Duration,
    /// Whether the node repairs on its own (every repair interval and soon
    /// after a peer disconnects). Off, it repairs only when asked
    /// (`kith repair`).
    pub repair: bool,
    /// How often this node checks the stripes it holds (it also checks
    /// soon after a peer disconnects).
    pub repair_interval: Duration,
    /// Most bytes per second of repair traffic (fetched plus sent).
    pub repair_rate: u64,
    /// Most bytes per second the background scrub reads.
    pub scrub_rate: u64,
}

impl Default for UpkeepSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30 * 24 * 3600),
            repair: true,
            repair_interval: Duration::from_secs(600),
            repair_rate: 32 << 20,
            scrub_rate: 4 << 20,
        }
    }
}

/// Why one share did not land on one peer; put and repair then try the
/// next peer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShareNotPlaced {
    /// This node's own store did not take it.
    #[error("this node: {0}")]
    Local(#[from] kith_store::StoreError),
    /// The peer refused, saying why.
    #[error("peer {peer}: {message}")]
    Refused { peer: PeerId, message: String },
    /// The peer answered something other than "stored".
    #[error("peer {peer} answered {answer}")]
    Unexpected { peer: PeerId, answer: String },
    /// The exchange with the peer failed.
    #[error("peer {peer}: {source}")]
    Failed {
        peer: PeerId,
        source: crate::protocols::share::client::CallError,
    },
}

impl ShareNotPlaced {
    /// What `peer` answered to a put, as a placement outcome.
    pub(crate) fn from_answer(
        peer: PeerId,
        answer: Result<Answer, crate::protocols::share::client::CallError>,
    ) -> Result<(), Self> {
        match answer {
            Ok(Answer::Stored { .. }) => Ok(()),
            Ok(Answer::Refused { message, .. }) => Err(Self::Refused { peer, message }),
            Ok(other) => Err(Self::Unexpected {
                peer,
                answer: format!("{other:?}"),
            }),
            Err(source) => Err(Self::Failed { peer, source }),
        }
    }
}

/// Whether some stripe shows fewer than `need` distinct share indexes.
fn short(holders: &[Vec<(u8, PeerId)>], need: usize) -> bool {
    holders.iter().any(|pairs| {
        let mut indexes: Vec<u8> = pairs.iter().map(|(index, _)| *index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes.len() < need
    })
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What [`Shares::locate_live`] found.
struct Located {
    /// Per stripe asked, the (share index, holder) pairs.
    holders: Vec<Vec<(u8, PeerId)>>,
    /// The peers asked.
    asked_peers: Vec<PeerId>,
    /// Placement candidates that answered, closest first.
    live: Vec<PeerId>,
}

/// Everything put, get, stat and the upkeep need. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Shares {
    me: PeerId,
    identity: Identity,
    settings: Arc<UpkeepSettings>,
    counters: Arc<Counters>,
    owned: OwnedFiles,
    repair: Arc<RepairState>,
    net: Client,
    store: Store,
    client: ShareClient,
    bad: BadPeers,
    cache_slots: Arc<tokio::sync::Semaphore>,
    swarm: swarm::Swarm,
    /// Provider keys this node has announced (cached content).
    announced: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Turns for provider announcements ([`ANNOUNCING_AT_ONCE`]).
    announcing: Arc<tokio::sync::Semaphore>,
    /// Misbehaviour a test switched on (none by default).
    faults: Faults,
}

impl Shares {
    pub(crate) fn new(
        identity: Identity,
        net: Client,
        store: Store,
        owned: OwnedFiles,
        settings: UpkeepSettings,
    ) -> Self {
        let client = ShareClient::new(net.streams());
        Self {
            me: identity.peer_id(),
            repair: Arc::new(RepairState::new(settings.repair_rate)),
            identity,
            settings: Arc::new(settings),
            counters: Arc::default(),
            owned,
            net,
            store,
            client,
            bad: BadPeers::default(),
            cache_slots: get::cache_slots(),
            swarm: swarm::Swarm::default(),
            announced: Arc::default(),
            announcing: Arc::new(tokio::sync::Semaphore::new(ANNOUNCING_AT_ONCE)),
            faults: Faults::default(),
        }
    }

    /// The share protocol's server for this node's store.
    pub(crate) fn server(&self, lifecycle: crate::lifecycle::Lifecycle) -> Server {
        Server::new(crate::protocols::share::server::ServerParts {
            store: self.store.clone(),
            repair: self.repair.clone(),
            swarm: self.swarm.clone(),
            counters: self.counters.clone(),
            faults: self.faults.clone(),
            shares: self.clone(),
            lifecycle,
        })
    }

    /// Misbehaviour a test switched on.
    #[cfg(feature = "testing")]
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The upkeep counters since start.
    pub(crate) fn counters(&self) -> UpkeepCounters {
        self.counters.snapshot()
    }

    /// The background upkeep tasks: leases, repair, scrub.
    pub(crate) fn upkeep_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(self.clone().lease_loop()),
            tokio::spawn(self.clone().scrub_loop()),
        ];
        if self.settings.repair {
            tasks.push(tokio::spawn(self.clone().repair_loop(self.net.events())));
        }
        tasks
    }

    /// The peers to place around (or look for) `key`, closest first: the
    /// DHT's closest peers and this node, with peers that served bad data
    /// moved to the end.
    async fn candidates(&self, key: [u8; 32]) -> Vec<PeerId> {
        let mut peers = match self.net.closest_peers(key).await {
            Ok(peers) => peers,
            Err(error) => {
                debug!(%error, "no closest peers");
                Vec::new()
            }
        };
        peers.retain(|peer| *peer != self.me);
        peers.push(self.me);
        kith_net::sort_by_distance(&key, &mut peers);
        // Stable: distance order stays among the good and among the bad.
        peers.sort_by_key(|peer| self.bad.strikes(peer));
        peers
    }

    /// Where shares keyed by `key` may be: the placement candidates, then
    /// the peers that announced they cached them (provider records).
    /// Returns them, and how many of them are placement candidates (the
    /// first ones).
    async fn holder_candidates(&self, key: [u8; 32]) -> (Vec<PeerId>, usize) {
        let providers = async {
            match tokio::time::timeout(PROVIDERS_TIMEOUT, self.net.providers(key)).await {
                Ok(Ok(providers)) => providers,
                Ok(Err(error)) => {
                    debug!(%error, "no providers");
                    Vec::new()
                }
                Err(_) => {
                    debug!("provider lookup timed out");
                    Vec::new()
                }
            }
        };
        let (mut peers, providers) = tokio::join!(self.candidates(key), providers);
        let placed = peers.len();
        for provider in providers {
            if !peers.contains(&provider) {
                peers.push(provider);
            }
        }
        (peers, placed)
    }

    /// Announces this node as a provider of `key` in the DHT, once per key:
    /// a holder of a placed share for its placement key, a getter that
    /// cached shares for their extent key. At most [`ANNOUNCING_AT_ONCE`]
    /// run at once. Best effort: a failure is logged, and the next stripe
    /// of the same key does not retry (the node re-announces what it
    /// provides every 12 hours anyway).
    pub(super) async fn announce(&self, key: [u8; 32]) {
        {
            let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
            if announced.len() >= ANNOUNCED_MEMORY {
                announced.clear();
            }
            if !announced.insert(key) {
                return;
            }
        }
        let Ok(_turn) = self.announcing.acquire().await else {
            return;
        };
        if let Err(error) = self.net.start_providing(key).await {
            debug!(%error, "could not announce held content");
        }
    }

    /// Asks the candidates around `key`, and the peers that announced they
    /// hold them, which shares of `stripes` they hold. Returns, per stripe,
    /// the (share index, holder) pairs found, and how many peers were asked.
    /// Searches further out (see [`Shares::locate_more`]) when a stripe
    /// shows no holder at all.
    async fn locate(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
    ) -> (Vec<Vec<(u8, PeerId)>>, usize) {
        self.locate_at_least(key, stripes, 1).await
    }

    /// [`Shares::locate`], searching further out when a stripe shows fewer
    /// than `need` distinct share indexes (a reader passes k). Returns the
    /// holders and the peers asked.
    async fn locate_with_peers(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        need: usize,
    ) -> (Vec<Vec<(u8, PeerId)>>, Vec<PeerId>) {
        let located = self.locate_live(key, stripes).await;
        if short(&located.holders, need) {
            return self
                .locate_more(key, stripes, &located.asked_peers, located.holders)
                .await;
        }
        (located.holders, located.asked_peers)
    }

    /// [`Shares::locate_with_peers`], counting the peers asked.
    async fn locate_at_least(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        need: usize,
    ) -> (Vec<Vec<(u8, PeerId)>>, usize) {
        let (holders, asked) = self.locate_with_peers(key, stripes, need).await;
        (holders, asked.len())
    }

    /// The search beyond the first round, for a reader that found fewer
    /// holders than it needs (with poor routing tables, or holders that
    /// did not answer the writer's lookup, the writer's closest peers and
    /// the reader's differ): asks the peers not asked yet among this node's
    /// own routing table's [`WIDER`] closest to `key`, a second lookup's
    /// result, and the providers of `key` (holders announce what they
    /// store), and adds what they hold to `holders`. Returns the merged
    /// holders and every peer asked.
    async fn locate_more(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        asked: &[PeerId],
        mut holders: Vec<Vec<(u8, PeerId)>>,
    ) -> (Vec<Vec<(u8, PeerId)>>, Vec<PeerId>) {
        let mut asked: Vec<PeerId> = asked.to_vec();
        let known = async {
            let mut peers: Vec<PeerId> = self
                .net
                .known_peers()
                .await
                .map(|peers| peers.into_iter().map(|(peer, _)| peer).collect())
                .unwrap_or_default();
            kith_net::sort_by_distance(&key, &mut peers);
            peers
        };
        let (known, (again, _)) = tokio::join!(known, self.holder_candidates(key));
        let mut more = Vec::new();
        for peer in again.into_iter().chain(known) {
            if more.len() >= WIDER {
                break;
            }
            if !asked.contains(&peer) && !more.contains(&peer) {
                more.push(peer);
            }
        }
        debug!(
            more = more.len(),
            "too few holders found; asking further out"
        );
        for (_, peer, bitmaps) in self.have_round(more.clone(), stripes).await {
            let Some(bitmaps) = bitmaps else { continue };
            for (stripe, bitmap) in bitmaps.iter().enumerate() {
                for index in 0..=u8::MAX {
                    if wire::bit(bitmap, index) && !holders[stripe].contains(&(index, peer)) {
                        holders[stripe].push((index, peer));
                    }
                }
            }
        }
        asked.extend(more);
        (holders, asked)
    }

    /// [`Shares::locate`], also saying which placement candidates answered
    /// (alive and speaking the protocol), closest to `key` first: where
    /// repair places rebuilt shares.
    async fn locate_live(&self, key: [u8; 32], stripes: &[ContentId]) -> Located {
        let (peers, placed) = self.holder_candidates(key).await;
        let asked_peers = peers.clone();
        let answers = self.have_round(peers, stripes).await;
        let mut holders = vec![Vec::new(); stripes.len()];
        let mut live = Vec::new();
        for (at, peer, bitmaps) in answers {
            let Some(bitmaps) = bitmaps else { continue };
            if at < placed {
                live.push(peer);
            }
            for (stripe, bitmap) in bitmaps.iter().enumerate() {
                for index in 0..=u8::MAX {
                    if wire::bit(bitmap, index) {
                        holders[stripe].push((index, peer));
                    }
                }
            }
        }
        kith_net::sort_by_distance(&key, &mut live);
        Located {
            holders,
            asked_peers,
            live,
        }
    }

    /// One `have` request to each of `peers` (in parallel, [`HAVE_TIMEOUT`]
    /// each): per peer, its position in `peers`, and its bitmaps (`None`
    /// when it did not answer).
    async fn have_round(
        &self,
        peers: Vec<PeerId>,
        stripes: &[ContentId],
    ) -> Vec<(usize, PeerId, Option<Vec<[u8; 32]>>)> {
        futures::future::join_all(peers.into_iter().enumerate().map(|(at, peer)| {
            let this = self.clone();
            let stripes = stripes.to_vec();
            async move {
                let bitmaps = if peer == this.me {
                    Some(this.local_have(stripes).await)
                } else {
                    let ask = this.client.call(
                        peer,
                        OutRequest::Have { stripes: &stripes },
                        32 * stripes.len(),
                    );
                    match tokio::time::timeout(HAVE_TIMEOUT, ask).await {
                        Ok(Ok(Answer::Holding(bitmaps))) if bitmaps.len() == stripes.len() => {
                            Some(bitmaps)
                        }
                        Ok(Ok(other)) => {
                            debug!(%peer, ?other, "unexpected answer to have");
                            None
                        }
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "have failed");
                            None
                        }
                        Err(_) => {
                            debug!(%peer, "have timed out");
                            None
                        }
                    }
                };
                (at, peer, bitmaps)
            }
        }))
        .await
    }

    async fn local_have(&self, stripes: Vec<ContentId>) -> Vec<[u8; 32]> {
        self.blocking(move |store| {
            stripes
                .iter()
                .map(|stripe| {
                    let mut bitmap = [0u8; 32];
                    for (index, _) in store.shares_of_stripe(stripe).unwrap_or_default() {
                        wire::set_bit(&mut bitmap, index);
                    }
                    bitmap
                })
                .collect()
        })
        .await
    }

    /// Runs a store call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        on_blocking_pool(&self.store, work).await
    }
}

/// Runs a store call on the blocking pool (every store call may wait on
/// the disk); a panic in it is resumed here.
pub(crate) async fn on_blocking_pool<T: Send + 'static>(
    store: &Store,
    work: impl FnOnce(&Store) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    blocking(move || work(&store)).await
}

/// Runs `work` on the blocking pool (it may wait on the disk); a panic in
/// it is resumed here, as if it had run inline.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Peers that served data that failed verification, with a count of
/// strikes (kept for the node's life), and peers that did not start
/// answering a get in time (for [`get::SLOW_PEER_PAUSE`]). Both are asked
/// last: struck peers after slow ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct BadPeers(Arc<Mutex<BadState>>);

#[derive(Debug, Default)]
struct BadState {
    strikes: HashMap<PeerId, u32>,
    slow_until: HashMap<PeerId, std::time::Instant>,
}

/// Most slow peers remembered; past it, the ones whose pause ended go.
const SLOW_PEERS_KEPT: usize = 1024;

impl BadPeers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BadState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn strike(&self, peer: PeerId) {
        *self.lock().strikes.entry(peer).or_default() += 1;
    }

    fn strikes(&self, peer: &PeerId) -> u32 {
        self.lock().strikes.get(peer).copied().unwrap_or(0)
    }

    /// `peer` did not start answering in time: ask it last for a while.
    fn slow(&self, peer: PeerId) {
        let now = std::time::Instant::now();
        let mut state = self.lock();
        if state.slow_until.len() >= SLOW_PEERS_KEPT {
            state.slow_until.retain(|_, until| *until > now);
        }
        if state.slow_until.len() < SLOW_PEERS_KEPT {
            state.slow_until.insert(peer, now + get::SLOW_PEER_PAUSE);
        }
    }

    fn is_slow(&self, peer: &PeerId) -> bool {
        self.lock()
            .slow_until
            .get(peer)
            .is_some_and(|until| *until > std::time::Instant::now())
    }
}
