//! The running node: one cloneable handle over the data folder and the
//! network, started with a config and stopped with [`Node::shutdown`].
//!
//! The API server, the command line and the tests all drive this handle,
//! never the layers below it directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_base::{Identity, PeerId};
use kith_net::{Client, Multiaddr, NetConfig, NetError, NetEvent};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use kith_store::{Store, StoreConfig, StoreError};

use crate::config::{GatewayLimits, NodeConfig};
use crate::data_dir::{DataDir, DataDirError, DirLock};
use crate::feeds::Feeds;
use crate::files::{OWNED_FILE, Shares, UpkeepRunner};
use crate::friends::Friends;
use crate::handles::{
    Feeds as FeedsHandle, Files, Friends as FriendsHandle, Names as NamesHandle, Upkeep,
};
use crate::lifecycle::{Lifecycle, SHUTDOWN_GRACE};
use crate::names::Names;
use crate::peer_table::{self, PEER_TABLE_FILE};
pub use crate::status::{NodeStatus, PeerInfo};

/// How often the peer table is saved while the node runs (it is also saved
/// at shutdown, so this only matters after a crash).
const PEER_TABLE_SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// The share store's folder inside the data folder.
pub const STORE_DIR: &str = "store";

/// Why the node could not start or do what was asked. Callers branch on
/// the variant (the API gives each its HTTP status); the message is one
/// sentence for a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A problem with the data folder (lock, identity, files).
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// A problem on the network.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The share store could not be opened.
    #[error("cannot open the share store: {0}")]
    OpenStore(Box<StoreError>),
    /// Reading or writing the node's database (inbox, mail, owned files)
    /// failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A database could not be opened (a damaged old side database is
    /// moved aside; this is anything else).
    #[error(transparent)]
    Database(Box<kith_store::OpenDbError>),
    /// An old side database could not be imported into the store.
    #[error(transparent)]
    Import(Box<kith_store::ImportError>),
    /// The metrics could not be written out.
    #[error("cannot format the metrics: {0}")]
    Metrics(std::fmt::Error),
}

impl From<StoreError> for NodeError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

impl From<kith_store::OpenDbError> for NodeError {
    fn from(error: kith_store::OpenDbError) -> Self {
        Self::Database(Box::new(error))
    }
}

/// A running kith node. Clone it freely: all clones drive the same node.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: Identity,
    data_dir: DataDir,
    net: Client,
    store: Store,
    shares: Shares,
    upkeep: UpkeepRunner,
    friends: Friends,
    names: Names,
    feeds: Feeds,
    started: Instant,
    lifecycle: Lifecycle,
    /// The gateway's settings in force: the gateway reads them for each
    /// request, a reload (`SIGHUP`) replaces them.
    gateway_limits: std::sync::RwLock<GatewayLimits>,
    /// Background tasks: servers, upkeep, mail checks, peer table saves.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The network's own task, stopped last.
    net_task: Mutex<Option<JoinHandle<()>>>,
    _lock: DirLock,
}

impl Node {
    /// Starts a node on `data_dir`: takes the folder's lock (one node per
    /// folder), creates the identity if missing, starts the network on the
    /// configured addresses, and rejoins peers from the saved peer table.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn start(data_dir: DataDir, config: NodeConfig) -> Result<Self, NodeError> {
        let lock = data_dir.lock()?;
        let (identity, created) = data_dir.init()?;
        if created {
            info!(peer = %identity.peer_id(), "created a new identity");
        }
        let known_peers = load_peer_table(&data_dir);
        let rejoin = !known_peers.is_empty();
        let mut net_config = NetConfig::default()
            .with_listen(config.listen.clone())
            .with_mdns(config.mdns)
            .with_relay_server(config.relay);
        net_config.bootstrap = config.bootstrap.clone();
        net_config.known_peers = known_peers;
        net_config.external_addrs = config.external.clone();
        net_config.timing = config.timing;
        net_config.simulated_latency = config.simulated_latency;
        net_config.relay_limits = config.relay_limits.clone();
        net_config.reachability = config.reachability;
        net_config.rate_limits = config.rate_limits;
        if let Some(max) = config.max_connections {
            net_config.limits.max_established = max;
        }
        net_config.limits.max_established_per_peer = config.peer_limits.max_connections_per_peer;
        let store_dir = data_dir.path(STORE_DIR);
        let quota_bytes = match config.quota {
            Some(quota) => quota.0,
            None => kith_store::default_quota(&store_dir)?,
        };
        let store = {
            let dir = store_dir.clone();
            crate::files::blocking(move || Store::open(dir, StoreConfig { quota_bytes }))
                .await
                .map_err(|error| NodeError::OpenStore(Box::new(error)))?
        };
        warn_if_quota_exceeds_disk(&store, &store_dir);
        let owned = {
            let path = data_dir.path(OWNED_FILE);
            let store = store.clone();
            crate::files::blocking(move || {
                crate::side_db::import_or_move_aside(
                    &path,
                    "the list of files this node stored on the network, whose leases it renews; \
                     their shares expire on their holders when the leases end unless those \
                     files are put again",
                    |path| store.import_owned(path),
                )?;
                Ok::<_, NodeError>(store.owned_files())
            })
            .await?
        };
        let (net, net_task) = kith_net::spawn(&identity, net_config).await?;
        let (shares, upkeep) = crate::files::assemble(
            identity.clone(),
            net.clone(),
            store.clone(),
            owned,
            config.upkeep.clone(),
        );
        shares.set_peer_cap(config.peer_limits.quota_per_peer.of(quota_bytes));
        let lifecycle = Lifecycle::default();
        let server = tokio::spawn(shares.server(lifecycle.clone()).run(net.streams()));
        let friends = Friends::open(
            identity.clone(),
            data_dir.clone(),
            store.clone(),
            net.clone(),
            shares.clone(),
            config.friends.clone(),
        )
        .await?;
        let names = Names::new(
            identity.clone(),
            net.clone(),
            store.clone(),
            shares.clone(),
            config.names.clone(),
        );
        let mut tasks = vec![server];
        tasks.extend(friends.tasks(&lifecycle));
        tasks.extend(names.tasks(&lifecycle));
        let feeds = Feeds::new(
            identity.clone(),
            net.clone(),
            store.clone(),
            shares.clone(),
            config.feeds.clone(),
        );
        tasks.extend(feeds.tasks(&lifecycle));
        tasks.extend(upkeep.tasks());
        let node = Self {
            inner: Arc::new(Inner {
                identity,
                data_dir,
                net,
                store,
                shares,
                upkeep,
                friends,
                names,
                feeds,
                started: Instant::now(),
                lifecycle,
                gateway_limits: std::sync::RwLock::new(config.gateway_limits),
                tasks: Mutex::new(tasks),
                net_task: Mutex::new(Some(net_task)),
                _lock: lock,
            }),
        };
        if rejoin || !config.bootstrap.is_empty() {
            // Join the DHT through the peers we know (a lookup of our own
            // id; Kademlia's periodic refresh fills the distant buckets).
            // Runs in the background: a lookup can take seconds and
            // start-up must not wait.
            let net = node.inner.net.clone();
            node.spawn(async move {
                if let Err(error) = net.join().await {
                    debug!(%error, "joining the DHT did not complete");
                }
            })
            .await;
        }
        for relay in &config.relays {
            node.spawn(listen_via_relay(node.inner.net.clone(), relay.clone()))
                .await;
        }
        node.spawn(save_peer_table_periodically(node.clone())).await;
        node.spawn(log_network_events(node.inner.net.events()))
            .await;
        Ok(node)
    }

    async fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.lock().await.push(tokio::spawn(task));
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.identity.peer_id()
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The data folder.
    pub fn data_dir(&self) -> &DataDir {
        &self.inner.data_dir
    }

    /// The network client, for layers built on the node.
    pub fn net(&self) -> &Client {
        &self.inner.net
    }

    /// What the gateway serves and allows each client now (from
    /// `config.toml`, replaced by a reload).
    pub fn gateway_limits(&self) -> GatewayLimits {
        *self
            .inner
            .gateway_limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the gateway's settings in force (a reload).
    pub(crate) fn set_gateway_limits(&self, limits: GatewayLimits) {
        *self
            .inner
            .gateway_limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// How long the node has been running.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>` so
    /// that they can be given to `kith connect` or `--bootstrap` as they are.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let peer = self.peer_id();
        Ok(self
            .inner
            .net
            .listen_addrs()
            .await?
            .into_iter()
            .map(|addr| addr.with_p2p(peer).unwrap_or_else(|addr| addr))
            .collect())
    }

    /// The peers this node is connected to, sorted by id.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        let connected = self.inner.net.connected_peers().await?;
        let known = self.inner.net.known_peers().await?;
        let connections = self.inner.net.connections().await?;
        let mut peers: Vec<PeerInfo> = connected
            .into_iter()
            .map(|peer| PeerInfo {
                peer,
                addrs: known
                    .iter()
                    .find(|(id, _)| *id == peer)
                    .map(|(_, addrs)| addrs.clone())
                    .unwrap_or_default(),
                connections: connections
                    .iter()
                    .filter(|(id, _)| *id == peer)
                    .map(|(_, addr)| addr.clone())
                    .collect(),
            })
            .collect();
        peers.sort_by_key(|info| info.peer.to_string());
        Ok(peers)
    }

    /// Dials a peer by address and waits until connected.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        let peer = self.inner.net.dial(addr.clone()).await?;
        if let Some(without_p2p) = strip_p2p(&addr) {
            let _ = self.inner.net.add_known_peer(peer, without_p2p).await;
        }
        Ok(peer)
    }

    /// The local share store (shares this node holds for the network).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Files on the network: put, get, stat, rm.
    pub fn files(&self) -> Files<'_> {
        Files(self)
    }

    /// Messages and files to and from friends, and mail held for others.
    pub fn friends(&self) -> FriendsHandle<'_> {
        FriendsHandle(self)
    }

    /// Names: publish, resolve, and mirrors.
    pub fn names(&self) -> NamesHandle<'_> {
        NamesHandle(self)
    }

    /// Feeds: post, follow, the timeline.
    pub fn feeds(&self) -> FeedsHandle<'_> {
        FeedsHandle(self)
    }

    /// Leases, repair and scrub: what the node does in the background.
    pub fn upkeep(&self) -> Upkeep<'_> {
        Upkeep(self)
    }

    pub(crate) fn shares(&self) -> &Shares {
        &self.inner.shares
    }

    pub(crate) fn upkeep_runner(&self) -> &UpkeepRunner {
        &self.inner.upkeep
    }

    pub(crate) fn names_inner(&self) -> &Names {
        &self.inner.names
    }

    pub(crate) fn feeds_inner(&self) -> &Feeds {
        &self.inner.feeds
    }

    pub(crate) fn friends_inner(&self) -> &Friends {
        &self.inner.friends
    }

    /// What the node holds and what its upkeep (repair, scrub, leases) did
    /// since it started.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let peers = self.inner.net.connected_peers().await?.len();
        let usage = self.inner.store.usage();
        Ok(NodeStatus {
            peer_id: self.peer_id().to_string(),
            uptime_secs: self.uptime().as_secs(),
            peers,
            shares_held: usage.shares,
            bytes_held: usage.bytes,
            quota: usage.quota,
            rate_limits: self.inner.net.rate_limits().into(),
            upkeep: self.upkeep().counters(),
        })
    }

    /// The node's metrics in the Prometheus / OpenMetrics text format
    /// (`GET /v1/metrics`): store, peers, repair, scrub, leases, serving
    /// and swarming, then libp2p's connection, bandwidth and DHT metrics.
    pub async fn metrics(&self) -> Result<String, NodeError> {
        let status = self.status().await?;
        let records = self.inner.store.usage().records;
        let names = self.inner.names.figures().await;
        let reachability = self.inner.net.reachability().await?;
        // Other peers' leases only: this node's own shares are not capped.
        let me = self.inner.identity.public_key();
        let held: Vec<_> = self
            .inner
            .store
            .owners_usage()
            .into_iter()
            .filter(|(owner, _)| *owner != me)
            .collect();
        let limits = crate::metrics::LimitFigures {
            refusals: self.inner.lifecycle.refusals().snapshot(),
            peer_cap: self.inner.shares.peer_cap(),
            peer_bytes_max: held.first().map_or(0, |(_, bytes)| *bytes),
            peers_holding: held.len() as u64,
        };
        crate::metrics::render(
            &status,
            records,
            names,
            &limits,
            &reachability,
            &self.inner.net,
        )
        .map_err(NodeError::Metrics)
    }

    /// Measures the round trip to a peer, connecting to it first (found
    /// by id in the DHT, or through the record a node behind NAT keeps
    /// there) when not connected.
    pub async fn ping(&self, peer: PeerId) -> Result<Duration, NodeError> {
        let net = &self.inner.net;
        if !net.connected_peers().await?.contains(&peer) {
            let lookup = net.find_peer(peer).await?;
            if !net.connected_peers().await?.contains(&peer) {
                let mut failure = None;
                for addr in lookup.addrs {
                    let addr = addr.clone().with_p2p(peer).unwrap_or(addr);
                    match net.dial(addr).await {
                        Ok(_) => {
                            failure = None;
                            break;
                        }
                        Err(error) => failure = Some(error),
                    }
                }
                if let Some(error) = failure {
                    return Err(error.into());
                }
            }
        }
        Ok(net.ping(peer).await?)
    }

    /// Whether peers can reach this node directly (AutoNAT's verdict), why,
    /// and the relays it listens through.
    pub async fn reachability(&self) -> Result<kith_net::ReachabilityReport, NodeError> {
        Ok(self.inner.net.reachability().await?)
    }

    /// Stops in stages: takes no new streams or requests from peers, lets
    /// the requests under way finish (up to 10 s; every share
    /// they store is committed before they answer), stops the background
    /// tasks (upkeep, mail checks), saves the peer table, and closes the
    /// network. Calling it again does nothing more. The data folder's lock
    /// is released when the last clone is dropped.
    pub async fn shutdown(&self) {
        let left = self.inner.lifecycle.finish(SHUTDOWN_GRACE).await;
        if left > 0 {
            warn!(
                left,
                "requests from peers still running after {SHUTDOWN_GRACE:?}; closing them"
            );
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().await);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        save_peer_table(self).await;
        if let Err(error) = self.inner.net.shutdown().await {
            debug!(%error, "network already stopped");
        }
        if let Some(net_task) = self.inner.net_task.lock().await.take() {
            let _ = net_task.await;
        }
        info!("node stopped");
    }

    /// Requests from peers being served now (for tests of the stop).
    #[cfg(feature = "testing")]
    pub fn requests_running(&self) -> usize {
        self.inner.lifecycle.requests_running()
    }
}

fn strip_p2p(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut addr = addr.clone();
    if kith_net::peer_id_of(&addr).is_some() {
        addr.pop();
    }
    (!addr.is_empty()).then_some(addr)
}

fn load_peer_table(data_dir: &DataDir) -> Vec<(PeerId, Multiaddr)> {
    let path = data_dir.path(PEER_TABLE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the peer table; starting without it");
            return Vec::new();
        }
    };
    let (peers, bad) = peer_table::parse(&text);
    if bad > 0 {
        warn!(path = %path.display(), bad, "skipped unreadable lines in the peer table");
    }
    info!(count = peers.len(), "loaded the peer table");
    peers
}

async fn save_peer_table(node: &Node) {
    let known = match node.inner.net.known_peers().await {
        Ok(known) => known,
        Err(error) => {
            debug!(%error, "cannot read the routing table to save it");
            return;
        }
    };
    if known.is_empty() {
        return;
    }
    let text = peer_table::render(&known);
    if let Err(error) = node
        .inner
        .data_dir
        .write_replace(PEER_TABLE_FILE, text.as_bytes(), 0o644)
    {
        warn!(%error, "cannot save the peer table");
    }
}

/// Keeps a reservation on `relay`, retrying while the relay is unreachable.
async fn listen_via_relay(net: Client, relay: Multiaddr) {
    const RETRY: Duration = Duration::from_secs(5);
    loop {
        match net.listen_via_relay(relay.clone()).await {
            Ok(addr) => {
                info!(%addr, "reachable through relay");
                return;
            }
            Err(NetError::Stopped) => return,
            Err(error) => {
                warn!(%relay, %error, "cannot listen through relay; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn save_peer_table_periodically(node: Node) {
    let mut interval = tokio::time::interval(PEER_TABLE_SAVE_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        save_peer_table(&node).await;
    }
}

async fn log_network_events(mut events: tokio::sync::broadcast::Receiver<NetEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(NetEvent::PeerConnected(peer)) => info!(%peer, "peer connected"),
            Ok(NetEvent::PeerDisconnected(peer)) => info!(%peer, "peer disconnected"),
            Ok(NetEvent::ListenAddr(addr)) => info!(%addr, "listening"),
            Ok(NetEvent::RelayReservation { relay }) => info!(%relay, "reachable through relay"),
            Ok(NetEvent::ExternalAddr(addr)) => info!(%addr, "confirmed external address"),
            Ok(other) => debug!(?other, "network event"),
            Err(RecvError::Lagged(missed)) => debug!(missed, "missed network events"),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Says so at start when the quota promises more than the disk can hold:
/// `--quota 1G` on a disk with 30 MB free is accepted (the disk may grow,
/// or others may free space), but the store will stop at the disk's
/// reserve, not at the quota, and the operator should know.
fn warn_if_quota_exceeds_disk(store: &Store, dir: &std::path::Path) {
    let usage = store.usage();
    let Ok(free) = kith_store::free_space(dir) else {
        return;
    };
    let room = usage.bytes.saturating_add(free);
    if usage.quota > room {
        tracing::warn!(
            "the store quota ({}) is larger than what the disk holding {} can give it ({} held \
             plus {} free); the store will stop short of the quota, keeping 1% of the disk \
             free; lower --quota to what the disk can hold",
            kith_base::ByteSize(usage.quota),
            dir.display(),
            kith_base::ByteSize(usage.bytes),
            kith_base::ByteSize(free)
        );
    }
}
