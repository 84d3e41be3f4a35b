//! Files on the network: put, get, stat and rm, over the share protocol
//! (its room is [`crate::protocols::share`]).
//!
//! - [`placement`]: which peers hold which shares (XOR distance, extents);
//! - [`locate`]: finding who holds the shares of stripes ([`locate::Locator`]);
//! - [`announce`]: provider announcements of what this node holds;
//! - [`fetch`]: k verified shares of one stripe, for get and repair;
//! - [`put`], [`get`], [`stat`], [`rm`]: the operations, driven by [`Shares`];
//! - [`folder`]: folders, stored as listings, and paths inside them;
//!   `copy`: a full copy of a tree in this node's store (mirrors);
//!   [`owned`] remembers the files this node stored;
//! - [`upkeep`], running in the background on every node: leases, repair
//!   and scrub;
//! - [`swarm`]: downloaders of one file at one time serve each other;
//! - [`faults`]: misbehaviour tests switch on.
//!
//! `docs/storage.md` describes the whole flow; `docs/threat-model.md` what
//! each kind of peer can learn and do.

pub(crate) mod announce;
mod copy;
mod faults;
pub(crate) mod fetch;
pub(crate) mod folder;
pub(crate) mod get;
pub(crate) mod locate;
pub(crate) mod owned;
pub(crate) mod placement;
#[cfg(feature = "testing")]
mod probe;
pub(crate) mod put;
mod rm;
pub(crate) mod stat;
pub(crate) mod swarm;
pub(crate) mod upkeep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_base::Identity;
use kith_net::{Client, PeerId};
use kith_store::Store;

pub use copy::CopyReport;
pub use faults::Faults;
pub use folder::PathError;
pub use get::{CorruptShareReport, Detected, Download, GetError, GetReport};
pub use owned::OWNED_FILE;
#[cfg(feature = "testing")]
pub use probe::{ProbeError, ProbeShare};
pub use put::{PutError, PutReport};
pub use rm::RmReport;
pub use stat::{Health, StatReport, StripeStat};
pub use upkeep::counters::UpkeepCounters;
pub use upkeep::leases::MAX_LEASE;

pub(crate) use crate::protocols::share::server::Server;
pub(crate) use owned::OwnedFiles;
pub(crate) use upkeep::UpkeepRunner;
use upkeep::leases::LeaseSigner;
pub(crate) use upkeep::repair::RepairState;

use crate::protocols::share::client::ShareClient;
use crate::protocols::share::wire::Answer;
use announce::Announcer;
use fetch::StripeFetcher;
pub(crate) use get::Caching;
use locate::Locator;
use upkeep::counters::Counters;

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
    Refused {
        peer: PeerId,
        reason: crate::protocols::share::wire::RefuseReason,
        message: String,
    },
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
            Ok(Answer::Refused { reason, message }) => Err(Self::Refused {
                peer,
                reason,
                message,
            }),
            Ok(other) => Err(Self::Unexpected {
                peer,
                answer: format!("{other:?}"),
            }),
            Err(source) => Err(Self::Failed { peer, source }),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What put, get, stat and rm need. Cheap to clone. The upkeep has its own
/// owner, [`UpkeepRunner`]; both fetch stripes through a shared
/// [`StripeFetcher`], and neither calls into the other.
#[derive(Clone, Debug)]
pub(crate) struct Shares {
    me: PeerId,
    leases: LeaseSigner,
    counters: Arc<Counters>,
    owned: OwnedFiles,
    /// Repair's state: told of new shares, asked what it is repairing.
    repair: Arc<RepairState>,
    net: Client,
    store: Store,
    client: ShareClient,
    fetcher: StripeFetcher,
    cache_slots: Arc<tokio::sync::Semaphore>,
    swarm: swarm::Swarm,
    /// Where shares are.
    locator: Locator,
    /// Provider announcements.
    announcer: Announcer,
    /// Misbehaviour a test switched on (none by default).
    faults: Faults,
    /// Folder listings read lately.
    listings: folder::ListingCache,
    /// The per-peer part of the quota, which the server enforces.
    peer_cap: crate::protocols::share::server::PeerCap,
    /// Peers that lately refused a share as full (or this node's part of
    /// theirs used up): asked last when placing (see `put::place`).
    full_peers: put::FullPeers,
}

/// Builds the two owners of a node's files from one set of parts: the
/// operations ([`Shares`]) and the background upkeep ([`UpkeepRunner`]).
pub(crate) fn assemble(
    identity: Identity,
    net: Client,
    store: Store,
    owned: OwnedFiles,
    settings: UpkeepSettings,
) -> (Shares, UpkeepRunner) {
    let me = identity.peer_id();
    let client = ShareClient::new(net.streams());
    let bad = BadPeers::default();
    let counters: Arc<Counters> = Arc::default();
    let swarm = swarm::Swarm::default();
    let repair = Arc::new(RepairState::new(settings.repair_rate));
    let leases = LeaseSigner::new(identity, settings.lease);
    let locator = Locator::new(me, net.clone(), client.clone(), store.clone(), bad.clone());
    let fetcher = StripeFetcher {
        me,
        store: store.clone(),
        client: client.clone(),
        bad,
        swarm: swarm.clone(),
        counters: counters.clone(),
    };
    let upkeep = UpkeepRunner {
        me,
        leases: leases.clone(),
        settings: Arc::new(settings),
        counters: counters.clone(),
        owned: owned.clone(),
        repair: repair.clone(),
        net: net.clone(),
        store: store.clone(),
        client: client.clone(),
        locator: locator.clone(),
        fetcher: fetcher.clone(),
    };
    let shares = Shares {
        me,
        leases,
        counters,
        owned,
        repair,
        announcer: Announcer::new(net.clone()),
        net,
        store,
        client,
        fetcher,
        cache_slots: get::cache_slots(),
        swarm,
        locator,
        faults: Faults::default(),
        listings: folder::ListingCache::default(),
        peer_cap: crate::protocols::share::server::PeerCap::new(
            kith_base::identity::ed25519_key(&me).unwrap_or_default(),
        ),
        full_peers: put::FullPeers::default(),
    };
    (shares, upkeep)
}

impl Shares {
    /// The share protocol's server for this node's store.
    pub(crate) fn server(&self, lifecycle: crate::lifecycle::Lifecycle) -> Server {
        Server::new(crate::protocols::share::server::ServerParts {
            store: self.store.clone(),
            repair: self.repair.clone(),
            swarm: self.swarm.clone(),
            counters: self.counters.clone(),
            faults: self.faults.clone(),
            announcer: self.announcer.clone(),
            lifecycle,
            peer_cap: self.peer_cap.clone(),
        })
    }

    /// Sets the most bytes the shares leased by any one other peer may
    /// take in this node's store (`u64::MAX`: no cap); it applies to the
    /// next share a peer sends.
    pub(crate) fn set_peer_cap(&self, bytes: u64) {
        self.peer_cap.set(bytes);
    }

    /// The cap [`Shares::set_peer_cap`] set.
    pub(crate) fn peer_cap(&self) -> u64 {
        self.peer_cap.get()
    }

    /// Misbehaviour a test switched on.
    #[cfg(feature = "testing")]
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
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
/// answering a get in time (for [`fetch::SLOW_PEER_PAUSE`]). Both are asked
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
            state.slow_until.insert(peer, now + fetch::SLOW_PEER_PAUSE);
        }
    }

    fn is_slow(&self, peer: &PeerId) -> bool {
        self.lock()
            .slow_until
            .get(peer)
            .is_some_and(|until| *until > std::time::Instant::now())
    }
}
