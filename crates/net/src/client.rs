//! The handle the rest of kith holds: a cheap, cloneable [`Client`] that
//! sends [`Command`]s to the event loop and awaits the answers.
//!
//! The client never touches the swarm. Each call puts one command on a
//! bounded channel (so a flood of calls waits instead of piling up memory)
//! and waits on a oneshot channel for the event loop's answer.
//!
//! # Cancel safety
//!
//! Every method is cancel-safe in the sense that dropping its future leaves
//! the client and the event loop consistent: the event loop notices the
//! closed answer channel and discards the answer. It is *not* an undo: a
//! command already handed over runs to completion (a dial still connects, a
//! lookup still runs until its own timeout).

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::NetError;

/// What happened on the network, for the node layer to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetEvent {
    /// The node now listens on this address.
    ListenAddr(Multiaddr),
    /// The node no longer listens on this address.
    ListenAddrExpired(Multiaddr),
    /// The first connection to a peer opened.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A relay accepted our reservation: we are reachable through it.
    RelayReservation {
        /// The relay's peer id.
        relay: PeerId,
    },
    /// An address at which others can reach us was confirmed.
    ExternalAddr(Multiaddr),
}

/// The outcome of [`Client::find_peer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerLookup {
    /// The peer looked for.
    pub peer: PeerId,
    /// Its addresses, as reported by the peers that know it.
    pub addrs: Vec<Multiaddr>,
    /// Requests the lookup sent (Kademlia does not count hops; each request
    /// is one step of the iterative lookup, several run in parallel).
    pub requests: u32,
    /// Requests that were answered.
    pub successes: u32,
    /// How long the lookup took.
    pub duration: Option<Duration>,
}

/// A request to the event loop, with the channel for its answer.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
    Connections(oneshot::Sender<Vec<(PeerId, Multiaddr)>>),
    Reachability(oneshot::Sender<crate::ReachabilityReport>),
    /// Close the relayed connections to `peer` if a direct one is open;
    /// answers whether one is.
    CloseRelayedIfDirect {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    /// Dial `peer` for a stream being opened, unless connected or
    /// dialling already (see `Control::open_dialling`).
    DialForStream {
        peer: PeerId,
    },
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<PeerLookup, NetError>>,
    },
    ClosestPeers {
        key: [u8; 32],
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    StartProviding {
        key: [u8; 32],
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    StopProviding {
        key: [u8; 32],
        reply: oneshot::Sender<()>,
    },
    Providers {
        key: [u8; 32],
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    Bootstrap(oneshot::Sender<Result<(), NetError>>),
    Join(oneshot::Sender<Result<(), NetError>>),
    KnownPeers(oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>),
    AddKnownPeer {
        peer: PeerId,
        addr: Multiaddr,
        reply: oneshot::Sender<bool>,
    },
    AddExternalAddr {
        addr: Multiaddr,
        reply: oneshot::Sender<()>,
    },
    Ping {
        peer: PeerId,
        reply: oneshot::Sender<Result<Duration, NetError>>,
    },
    ListenViaRelay {
        relay: Multiaddr,
        reply: oneshot::Sender<Result<Multiaddr, NetError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// A handle to a running network. Clone it freely; all clones drive the
/// same event loop. The event loop stops when [`Client::shutdown`] is
/// called or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NetEvent>,
    local_peer_id: PeerId,
    dial_timeout: Duration,
    query_timeout: Duration,
    streams: crate::Control,
    metrics: Metrics,
    throttle: Arc<crate::throttle::Throttle>,
}

/// libp2p's metrics registry, wrapped so that [`Client`] can keep deriving
/// `Debug` without printing every metric.
#[derive(Clone)]
struct Metrics(Arc<prometheus_client::registry::Registry>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Extra time given to the event loop beyond a libp2p-level timeout, so
/// that libp2p's own, more precise error arrives first.
const GRACE: Duration = Duration::from_secs(5);

impl Client {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        events: broadcast::Sender<NetEvent>,
        local_peer_id: PeerId,
        dial_timeout: Duration,
        query_timeout: Duration,
        streams: crate::Control,
        (metrics, throttle): (
            Arc<prometheus_client::registry::Registry>,
            Arc<crate::throttle::Throttle>,
        ),
    ) -> Self {
        Self {
            commands,
            events,
            local_peer_id,
            dial_timeout,
            query_timeout,
            streams,
            metrics: Metrics(metrics),
            throttle,
        }
    }

    /// The caps on bytes per second in force ([`crate::RateLimits`]).
    pub fn rate_limits(&self) -> crate::RateLimits {
        self.throttle.limits()
    }

    /// New caps on bytes per second, for every stream from now on,
    /// including those open now (`kith up` reloading its settings).
    pub fn set_rate_limits(&self, limits: crate::RateLimits) {
        self.throttle.set_limits(limits);
    }

    /// Appends libp2p's metrics (connections, bytes in and out per
    /// protocol, DHT queries, pings, identify, relay, hole punching) to
    /// `out` in the Prometheus / OpenMetrics text format, without the
    /// closing `# EOF` line, so that a caller can add its own.
    pub fn write_metrics(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.metrics.0)
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Subscribes to network events from now on. A subscriber that lags
    /// more than [`NetConfig::event_capacity`](crate::NetConfig::event_capacity)
    /// events behind gets `RecvError::Lagged` and misses those events.
    pub fn events(&self) -> broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    /// A handle for kith's own byte-stream protocols: open a stream to a
    /// peer with [`Control::open_stream`](crate::Control::open_stream)`(peer,
    /// protocol)` and accept a protocol's inbound streams with
    /// [`Control::accept`](crate::Control::accept)`(protocol)`.
    ///
    /// Streams bypass the event loop: once open, their bytes flow between
    /// the connection and the caller's task without a command per read or
    /// write, so bulk transfers do not queue behind DHT or identify work.
    ///
    /// Rules for protocols built on this (see `docs/network.md`):
    ///
    /// - the protocol id is versioned, `/kith/<name>/<major.minor.patch>`
    ///   (e.g. `/kith/share/1.0.0`);
    /// - every frame read from a stream has a maximum size, checked before
    ///   allocating (a peer must not be able to make us buffer without bound);
    /// - reads and writes carry a timeout: a stalled peer must not hold a
    ///   task forever.
    ///
    /// Opening a stream to a peer without a connection dials it with the
    /// addresses the swarm knows. Each clone of the returned control has one
    /// slot for an open request in flight (back-pressure); clone it per task,
    /// not per stream. Only one [`IncomingStreams`](crate::IncomingStreams)
    /// may exist per protocol at a time, and inbound streams that arrive
    /// while its consumer is not polling are dropped (the opener sees the
    /// stream reset), so accept in a loop and hand streams off to tasks.
    ///
    /// The control stays usable after [`Client::shutdown`], but opening a
    /// stream then fails.
    pub fn streams(&self) -> crate::Control {
        self.streams.clone()
    }

    /// Sends a command and waits for its answer, optionally bounded in time.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
        limit: Option<(&'static str, Duration)>,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        match limit {
            None => answer.await.map_err(|_| NetError::Stopped),
            Some((what, after)) => match tokio::time::timeout(after, answer).await {
                Ok(answer) => answer.map_err(|_| NetError::Stopped),
                Err(_) => Err(NetError::Timeout { what, after }),
            },
        }
    }

    /// The addresses this node listens on right now (the actual ports, also
    /// when port 0 was asked for). Addresses given to others should carry
    /// `/p2p/<local peer id>`; see [`Client::local_peer_id`].
    ///
    /// Cancel-safe.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.request(Command::ListenAddrs, None).await
    }

    /// The peers with at least one open connection.
    ///
    /// Cancel-safe.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.request(Command::ConnectedPeers, None).await
    }

    /// Every open connection: the peer and its remote address (a relayed
    /// connection's address contains `/p2p-circuit`).
    pub async fn connections(&self) -> Result<Vec<(PeerId, Multiaddr)>, NetError> {
        self.request(Command::Connections, None).await
    }

    /// Whether peers can dial this node (AutoNAT's verdict), why, and the
    /// relays it listens through.
    pub async fn reachability(&self) -> Result<crate::ReachabilityReport, NetError> {
        self.request(Command::Reachability, None).await
    }

    /// Before a large transfer to a connected `peer`: when every
    /// connection to it goes through a relay, waits up to `wait` for hole
    /// punching (DCUtR) to open a direct one. Once a direct connection is
    /// open, closes the relayed ones, so that new streams take the direct
    /// path (libp2p-stream opens a stream on any connection to the peer).
    /// Answers whether the peer is reachable directly now.
    pub async fn prefer_direct(&self, peer: PeerId, wait: Duration) -> Result<bool, NetError> {
        /// How often the connections are looked at while waiting.
        const LOOK_EVERY: Duration = Duration::from_millis(50);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let open: Vec<Multiaddr> = self
                .connections()
                .await?
                .into_iter()
                .filter(|(id, _)| *id == peer)
                .map(|(_, addr)| addr)
                .collect();
            let relayed = crate::is_relayed;
            if open.is_empty() {
                return Ok(false);
            }
            if open.iter().all(|addr| !relayed(addr)) {
                return Ok(true);
            }
            if open.iter().any(|addr| !relayed(addr)) {
                return self
                    .request(|reply| Command::CloseRelayedIfDirect { peer, reply }, None)
                    .await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Connects to an address and returns the peer id of whoever answered.
    ///
    /// If the address ends in `/p2p/<peer id>`, the connection is only
    /// accepted from that peer, and an already-open connection to it is
    /// reused. Without it, any peer may answer (the peer id is learnt from
    /// the handshake). Relayed addresses
    /// (`<relay>/p2p/<relay id>/p2p-circuit/p2p/<peer>`) connect through
    /// the relay. Waits at most [`NetConfig::dial_timeout`](crate::NetConfig::dial_timeout).
    ///
    /// Cancel-safe; a cancelled dial may still complete in the background.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let after = self.dial_timeout + GRACE;
        self.request(
            |reply| Command::Dial { addr, reply },
            Some(("connecting", after)),
        )
        .await?
    }

    /// Looks a peer up in the DHT (an iterative Kademlia `FIND_NODE` for its
    /// id) and returns its addresses and the lookup's statistics.
    ///
    /// The peer is found when it answered the lookup, or — its answer came
    /// too late, or met a connection closing for idleness — when the
    /// lookup ends with a connection to it open, or with its addresses in
    /// the routing table and a dial to them succeeding. (go-libp2p's
    /// `FindPeer` likewise returns a peer it is connected to.)
    ///
    /// # Errors
    ///
    /// [`NetError::PeerNotFound`] if no peer knew it, [`NetError::NoKnownPeers`]
    /// if the routing table is empty, [`NetError::Busy`] if too many lookups
    /// are running.
    ///
    /// Cancel-safe; a cancelled lookup still runs to its end.
    pub async fn find_peer(&self, peer: PeerId) -> Result<PeerLookup, NetError> {
        // The lookup, then perhaps a dial to confirm a peer it did not reach.
        let after = self.query_timeout + self.dial_timeout + GRACE;
        self.request(
            |reply| Command::FindPeer { peer, reply },
            Some(("looking up a peer", after)),
        )
        .await?
    }

    /// The peers closest to a 32-byte key in the DHT's XOR metric, closest
    /// first, at most 20 (Kademlia's `k`). This node itself is never in the
    /// list; compare with [`sort_by_distance`](crate::sort_by_distance) to
    /// see where it would rank.
    ///
    /// Distances are measured between SHA-256 images, as Kademlia does:
    /// `sha256(key) XOR sha256(peer id bytes)`.
    ///
    /// Cancel-safe; a cancelled lookup still runs to its end.
    pub async fn closest_peers(&self, key: [u8; 32]) -> Result<Vec<PeerId>, NetError> {
        let after = self.query_timeout + GRACE;
        self.request(
            |reply| Command::ClosestPeers { key, reply },
            Some(("looking up the closest peers", after)),
        )
        .await?
    }

    /// Announces this node as a provider of a 32-byte key (a content or
    /// stripe id): records it locally, then sends a Kademlia `ADD_PROVIDER`
    /// to the 20 peers closest to the key, found by a lookup. Resolves once
    /// the announcement has been sent. Peers keep the record for 48 h; the
    /// node re-announces every key it provides every 12 h until
    /// [`Client::stop_providing`].
    ///
    /// `ADD_PROVIDER` has no answer, so success means the lookup reached
    /// peers and the announcement went out to them, not that each stored it.
    ///
    /// # Errors
    ///
    /// [`NetError::NoKnownPeers`] if the routing table is empty (nothing is
    /// recorded then; call again once the node has peers),
    /// [`NetError::NotAnnounced`] if no peer answered the lookup (the key
    /// stays recorded locally and is re-announced later),
    /// [`NetError::ProviderStoreFull`] if the local provider store holds its
    /// maximum of keys, [`NetError::Busy`] if too many lookups are running.
    ///
    /// Cancel-safe; a cancelled announcement still runs to its end.
    pub async fn start_providing(&self, key: [u8; 32]) -> Result<(), NetError> {
        let after = self.query_timeout * 2 + GRACE;
        self.request(
            |reply| Command::StartProviding { key, reply },
            Some(("announcing a provider record", after)),
        )
        .await?
    }

    /// Stops announcing this node as a provider of `key`. Local only: peers
    /// that stored the record keep answering with it until it expires
    /// (48 h after the last announcement).
    ///
    /// Cancel-safe.
    pub async fn stop_providing(&self, key: [u8; 32]) -> Result<(), NetError> {
        self.request(|reply| Command::StopProviding { key, reply }, None)
            .await
    }

    /// The peers that announced themselves as providers of `key`, found by
    /// a Kademlia `GET_PROVIDERS` lookup: deduplicated, without this node,
    /// at most 64. The lookup stops early once one step has brought the
    /// total to 20 or more. An empty list means no provider was found.
    ///
    /// # Errors
    ///
    /// [`NetError::NoKnownPeers`] if the routing table is empty,
    /// [`NetError::Timeout`] if the lookup timed out without any peer
    /// answering, [`NetError::Busy`] if too many lookups are running.
    ///
    /// Cancel-safe; a cancelled lookup still runs to its end.
    pub async fn providers(&self, key: [u8; 32]) -> Result<Vec<PeerId>, NetError> {
        let after = self.query_timeout + GRACE;
        self.request(
            |reply| Command::Providers { key, reply },
            Some(("looking up providers", after)),
        )
        .await?
    }

    /// Refreshes the routing table: looks up this node's own id, then one
    /// random id per more distant bucket. Kademlia also does this by itself
    /// every five minutes and whenever a new peer enters the routing table;
    /// call it to be sure the table is fresh now.
    ///
    /// Cancel-safe; a cancelled bootstrap still runs to its end.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        // One bootstrap is a series of lookups; give it a few timeouts.
        let after = self.query_timeout * 4 + GRACE;
        self.request(Command::Bootstrap, Some(("bootstrapping", after)))
            .await?
    }

    /// Joins the DHT: looks up this node's own id, which fills the buckets
    /// near it and puts it in the tables of the peers closest to it — all
    /// a Kademlia lookup needs to route to and through this node. The more
    /// distant buckets fill from the peers this node meets, and Kademlia's
    /// own refresh ([`Timing::dht_refresh`](crate::Timing::dht_refresh))
    /// or [`Client::bootstrap`] fills them on purpose.
    ///
    /// One lookup where a bootstrap runs one per bucket (about ten in a
    /// thousand nodes, one after another): a node starting with a thousand
    /// others sent a tenth of the requests and opened a tenth of the
    /// connections (`docs/scale.md`, "Churn found and fixed").
    ///
    /// Cancel-safe; a cancelled join still runs to its end.
    pub async fn join(&self) -> Result<(), NetError> {
        let after = self.query_timeout + GRACE;
        self.request(Command::Join, Some(("joining the DHT", after)))
            .await?
    }

    /// The routing table: every peer Kademlia knows, with its addresses.
    /// Save it and pass it back as [`NetConfig::known_peers`](crate::NetConfig::known_peers)
    /// on the next start so the node can rejoin without a bootstrap address.
    ///
    /// Cancel-safe.
    pub async fn known_peers(&self) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        self.request(Command::KnownPeers, None).await
    }

    /// Adds a peer's address to the routing table, without dialing it.
    /// Returns whether the routing table took it (a full bucket may refuse
    /// a new peer until one of its members goes stale).
    ///
    /// Cancel-safe.
    pub async fn add_known_peer(&self, peer: PeerId, addr: Multiaddr) -> Result<bool, NetError> {
        self.request(|reply| Command::AddKnownPeer { peer, addr, reply }, None)
            .await
    }

    /// Declares an address at which others can reach this node (a public
    /// address, a forwarded port, or a LAN address on a network without
    /// NAT). Peers learn it through identify; while this node has one, its
    /// relay server (if enabled) offers relaying.
    ///
    /// Cancel-safe.
    pub async fn add_external_addr(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.request(|reply| Command::AddExternalAddr { addr, reply }, None)
            .await
    }

    /// The round-trip time to a connected peer. libp2p pings every
    /// connection every 15 s; this returns the latest measurement, or waits
    /// for the first one on a fresh connection.
    ///
    /// # Errors
    ///
    /// [`NetError::NotConnected`] if there is no connection to the peer,
    /// [`NetError::Ping`] if the ping failed.
    ///
    /// Cancel-safe.
    pub async fn ping(&self, peer: PeerId) -> Result<Duration, NetError> {
        let after = Duration::from_secs(20) + GRACE;
        self.request(|reply| Command::Ping { peer, reply }, Some(("ping", after)))
            .await?
    }

    /// Listens through a relay so that peers which cannot reach this node
    /// directly can connect through it. `relay` must end in
    /// `/p2p/<relay id>`. Returns the relayed address to give to others:
    /// `<relay>/p2p/<relay id>/p2p-circuit/p2p/<local id>`. The reservation
    /// is renewed automatically while the connection to the relay lasts.
    ///
    /// Cancel-safe; a cancelled call may still complete the reservation.
    pub async fn listen_via_relay(&self, relay: Multiaddr) -> Result<Multiaddr, NetError> {
        let after = self.dial_timeout + GRACE;
        self.request(
            |reply| Command::ListenViaRelay { relay, reply },
            Some(("reserving a slot on the relay", after)),
        )
        .await?
    }

    /// Stops the event loop: closes every connection and listener. Returns
    /// once the swarm is gone. Calls on any clone fail with
    /// [`NetError::Stopped`] afterwards.
    ///
    /// Cancel-safe; once the command is sent, the shutdown happens.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        self.request(Command::Shutdown, None).await
    }
}
