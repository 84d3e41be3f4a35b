//! The one task that owns the libp2p [`Swarm`].
//!
//! Long because: the Swarm's one owner handles every command and every behaviour's events.
//!
//! It waits on two things at once: the swarm's next event and the next
//! [`Command`] from a [`Client`](crate::Client). Commands that need the
//! network to answer (a dial, a lookup, a relay reservation) leave a
//! oneshot sender in a `pending_*` map keyed by the id libp2p gave the
//! operation; the swarm event that completes the operation takes it out and
//! answers. Nothing else holds the swarm, so nothing needs a lock.
//!
//! Every map here is bounded: dials and relay listens end with a libp2p
//! event (success, failure or libp2p's own timeout), Kademlia queries end by
//! their query timeout and are capped at [`MAX_INFLIGHT_QUERIES`], ping
//! waiters and round-trip times are kept only for connected peers.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat,
    core::{ConnectedPoint, transport::ListenerId},
    identify,
    kad::{self, store::RecordStore},
    multiaddr::Protocol,
    ping, relay,
    swarm::{
        ConnectionId, DialError, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, trace, warn};

use crate::address_book::{full_address, is_loopback};
use crate::behaviour::{
    Behaviour, BehaviourEvent, MAX_ADDRS_PER_PEER, MAX_PROVIDER_ADDRS, MAX_PROVIDER_KEYS,
    add_to_routing_table, most_established,
};
use crate::client::{Command, NetEvent, PeerLookup};
use crate::config::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, is_relayed, peer_id_of};
use crate::error::describe;
use crate::reachability::{
    AutoRelay, RELAY_HOP_PROTOCOL, Reachability, ReachabilityReport, ReachabilitySettings,
    peer_record_key,
};
use crate::streams::Activity;
use crate::{NetError, sort_by_distance};

/// Most Kademlia lookups started by clients that may run at once.
pub(crate) const MAX_INFLIGHT_QUERIES: usize = 256;
/// Most providers one [`Client::providers`](crate::Client::providers) call
/// collects.
pub(crate) const MAX_PROVIDERS_COLLECTED: usize = 64;
/// The tracing target of one line per dial, connection opened or closed
/// (with its cause) and DHT query finished: `RUST_LOG=kith_net::churn=debug`
/// counts where a network's connections go (`docs/scale.md`, "Churn found
/// and fixed").
const CHURN: &str = "kith_net::churn";

/// A providers lookup stops after the step that brings it to this many.
pub(crate) const PROVIDERS_ENOUGH: usize = 20;

type Reply<T> = oneshot::Sender<T>;

/// A peer lookup waiting for a dial to its target: the lookup so far, who
/// waits for it, and whether the peer's record was asked already.
type ConfirmDial = (PeerLookup, Reply<Result<PeerLookup, NetError>>, bool);

/// A client waiting for a Kademlia query.
enum QueryWaiter {
    FindPeer(PeerId, Reply<Result<PeerLookup, NetError>>),
    Closest([u8; 32], Reply<Result<Vec<PeerId>, NetError>>),
    Bootstrap(Reply<Result<(), NetError>>),
    /// A lookup of this node's own id ([`crate::Client::join`]).
    Join(Reply<Result<(), NetError>>),
    StartProviding(Reply<Result<(), NetError>>),
    /// Providers found so far (deduplicated, without this node).
    Providers(Vec<PeerId>, Reply<Result<Vec<PeerId>, NetError>>),
    /// A peer lookup that the DHT's routing tables could not answer, now
    /// asking for the peer's own record (a node behind NAT announces its
    /// relayed addresses there: `reachability.rs`).
    PeerRecord(PeerLookup, Reply<Result<PeerLookup, NetError>>),
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    /// libp2p's metrics, fed every swarm and protocol event.
    metrics: libp2p::metrics::Metrics,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NetEvent>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<Result<PeerId, NetError>>)>,
    pending_queries: HashMap<kad::QueryId, QueryWaiter>,
    pending_pings: HashMap<PeerId, Vec<Reply<Result<Duration, NetError>>>>,
    pending_relays: HashMap<ListenerId, (Multiaddr, Reply<Result<Multiaddr, NetError>>)>,
    /// Latest round-trip time per connected peer.
    rtts: HashMap<PeerId, Duration>,
    /// Pings in a row that failed, per connection.
    ping_failures: HashMap<ConnectionId, u32>,
    /// The remote address of the first open connection to each connected
    /// peer (one entry per connected peer, so bounded by the connection
    /// limits): how to reach a peer that a lookup connected to but that
    /// did not answer the query in time.
    connected_addrs: HashMap<PeerId, Multiaddr>,
    /// Peer lookups that ended without their target while the routing
    /// table still had its addresses, waiting for a dial to them (at most
    /// one per lookup, so bounded by [`MAX_INFLIGHT_QUERIES`]). `true` once
    /// the peer record was asked too: a failed dial then ends the lookup.
    confirm_dials: HashMap<ConnectionId, ConfirmDial>,
    /// The remote address of every established connection (bounded by the
    /// connection limits).
    connection_addrs: HashMap<ConnectionId, Multiaddr>,
    /// AutoNAT's latest verdict, and why.
    reachability: (Reachability, String),
    /// Whether AutoNAT tests private addresses too (for the reason given
    /// while there is no verdict).
    autonat_private_addresses: bool,
    /// Private by the settings: AutoNAT's verdicts are only logged.
    assume_private: bool,
    /// The relays this node picks for itself while private.
    auto_relay: AutoRelay,
    /// Whether another bootstrap is planned because the routing table is
    /// still short (see [`REJOIN_BELOW`]); `rejoin_timer` says when.
    rejoin_planned: bool,
    /// The timer for a planned rejoin, kept across loop turns (reset, not
    /// rebuilt, each time a rejoin is planned).
    rejoin_timer: Pin<Box<tokio::time::Sleep>>,
    /// The wait before the next such bootstrap; doubles each time.
    rejoin_backoff: Duration,
    /// The periodic routing-table refresh (a full bootstrap), run here
    /// rather than by libp2p so its queries are known as this node's own
    /// (`None`: no refresh after the join).
    refresh_timer: Option<tokio::time::Interval>,
    /// Full bootstraps this node started (refresh, rejoin): run to their
    /// end. Any other bootstrap query is libp2p's automatic one and stops
    /// after its first lookup (see [`EventLoop::on_bootstrap_step`]). At
    /// most a few at a time: one per refresh or rejoin, removed when done.
    full_bootstraps: HashSet<kad::QueryId>,
    /// Counts libp2p's automatic bootstraps cut short (a metric).
    bootstraps_cut: prometheus_client::metrics::counter::Counter,
    /// Every established connection: to whom, and since when (bounded by
    /// the connection limits).
    connections: HashMap<ConnectionId, (PeerId, Instant)>,
    /// Connections closed to make room that have not reported closing yet.
    trimming: HashSet<ConnectionId>,
    /// Relays that hold a reservation for this node: never trimmed.
    relays: HashSet<PeerId>,
    /// Established connections at which the least recently used are closed
    /// ([`trim_marks`]).
    trim_at: usize,
    /// How many are left after that.
    trim_to: usize,
    /// Established connections at which libp2p refuses this node's own
    /// dials too ([`most_established`]).
    most: usize,
    /// Checks the limits now and then, not only when a connection opens:
    /// connections spared for their youth or their work must be closed
    /// once they age or idle, even if no new connection comes.
    trim_timer: tokio::time::Interval,
    /// Which peers kith's streams use, and when they last did: what
    /// [`EventLoop::trim_connections`] closes last.
    activity: Arc<Activity>,
}

/// A connection younger than this is never closed to make room: it was
/// opened for a request that is likely still running.
const TRIM_GRACE: Duration = Duration::from_secs(5);

/// How often the connection limits are checked besides when a connection
/// opens.
const TRIM_CHECK: Duration = Duration::from_secs(1);

/// What a connection is doing, as the trimmer ranks it: idle ones are
/// closed first, then those busy with peers' requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Busy {
    Idle,
    /// A stream a peer opened moved a byte lately.
    Theirs,
    /// A stream this node opened moved a byte lately.
    Ours,
}

/// When to close connections to make room, and down to how many, for a
/// node allowed `max` established connections: at seven eighths of it,
/// down to three quarters. libp2p refuses every connection, inbound and
/// outbound, once `max` are open; a node that reached it could neither
/// be reached (by lookups, newcomers, readers of the shares it holds) nor
/// reach anyone new, and the DHT routes around it as if it were gone. So,
/// as go-libp2p's connection manager does, the node keeps under its limit
/// by closing its least recently used connections (those still needed
/// reopen on use; see `streams.rs` for what counts as use).
fn trim_marks(max: u32) -> (usize, usize) {
    let max = max as usize;
    let at = max.saturating_sub(max / 8).max(2);
    let to = max.saturating_sub(max / 4).clamp(1, at - 1);
    (at, to)
}

/// A routing table with fewer peers than this (Kademlia's k) after a
/// bootstrap gets another bootstrap after [`REJOIN_FIRST`], then after
/// twice as long each time, up to [`REJOIN_LONGEST`]. libp2p bootstraps
/// again on its own only when a new peer enters the table, or at the
/// periodic refresh (5 min): a node whose first bootstrap timed out (its
/// bootstrap peer busy, a network still joining) would otherwise wait that
/// long knowing almost nobody, and almost nobody knowing it.
const REJOIN_BELOW: usize = 20;
/// The first wait before bootstrapping again with a short table.
const REJOIN_FIRST: Duration = Duration::from_secs(10);
/// The longest wait before bootstrapping again with a short table.
const REJOIN_LONGEST: Duration = Duration::from_secs(300);

/// Pings in a row that may fail before the connection is closed. libp2p
/// no longer closes a connection whose pings fail, and over a silent
/// partition (no reset, no FIN) TCP would keep it for a quarter of an hour,
/// so the node would neither notice the peer is gone nor repair for it.
/// With a ping every 15 s (the default [`Timing`](crate::Timing)) and a 20 s timeout, two failures close a dead
/// connection within about a minute.
const PING_FAILURES_TO_CLOSE: u32 = 2;

/// How the event loop keeps its connections and routing table: the
/// connection limit it trims to, the table's refresh, and the count of
/// libp2p's bootstraps it cut short.
pub(crate) struct Upkeep {
    /// Most established connections (the trim starts below it).
    pub(crate) max_established: u32,
    /// A full bootstrap this often (`None`: none after the join).
    pub(crate) refresh_every: Option<Duration>,
    /// Incremented for each automatic bootstrap cut after its first step.
    pub(crate) bootstraps_cut: prometheus_client::metrics::counter::Counter,
}

/// The next tick of an optional interval; never, without one.
async fn next_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What the loop should do after a command.
enum Flow {
    Continue,
    Stop(Option<Reply<()>>),
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<NetEvent>,
        metrics: libp2p::metrics::Metrics,
        activity: Arc<Activity>,
        reachability: ReachabilitySettings,
        upkeep: Upkeep,
    ) -> Self {
        let max_established = upkeep.max_established;
        let (trim_at, trim_to) = trim_marks(max_established);
        let mut event_loop = Self {
            swarm,
            metrics,
            commands,
            events,
            pending_dials: HashMap::new(),
            pending_queries: HashMap::new(),
            pending_pings: HashMap::new(),
            pending_relays: HashMap::new(),
            rtts: HashMap::new(),
            ping_failures: HashMap::new(),
            connected_addrs: HashMap::new(),
            confirm_dials: HashMap::new(),
            connection_addrs: HashMap::new(),
            reachability: (
                Reachability::Unknown,
                no_verdict_yet(reachability.private_addresses),
            ),
            autonat_private_addresses: reachability.private_addresses,
            assume_private: reachability.assume_private,
            auto_relay: AutoRelay::new(reachability.auto_relays),
            rejoin_planned: false,
            rejoin_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            rejoin_backoff: REJOIN_FIRST,
            refresh_timer: upkeep.refresh_every.map(|period| {
                let first = tokio::time::Instant::now() + period;
                let mut timer = tokio::time::interval_at(first, period);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                timer
            }),
            full_bootstraps: HashSet::new(),
            bootstraps_cut: upkeep.bootstraps_cut,
            connections: HashMap::new(),
            trimming: HashSet::new(),
            relays: HashSet::new(),
            trim_at,
            trim_to,
            most: most_established(max_established) as usize,
            trim_timer: {
                let mut timer = tokio::time::interval(TRIM_CHECK);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                timer
            },
            activity,
        };
        // External addresses given in the config are already on the swarm.
        event_loop.update_relay_status();
        if reachability.assume_private {
            event_loop.reachability = (
                Reachability::Private,
                "set as private in the settings (reachability = \"private\"); reachable \
                 through relays"
                    .to_owned(),
            );
            event_loop
                .swarm
                .behaviour_mut()
                .kad
                .set_mode(Some(kad::Mode::Client));
        }
        event_loop
    }

    /// Peers in the routing table.
    fn table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|bucket| bucket.num_entries())
            .sum()
    }

    /// After any bootstrap (this node's, a client's, libp2p's own): plans
    /// another while the table is short (see [`REJOIN_BELOW`]).
    fn after_bootstrap(&mut self) {
        let size = self.table_size();
        if size >= REJOIN_BELOW {
            self.rejoin_backoff = REJOIN_FIRST;
            self.rejoin_planned = false;
        } else if size > 0 {
            self.plan_rejoin(size);
        }
    }

    /// Plans a rejoin after the current back-off, which then doubles.
    fn plan_rejoin(&mut self, size: usize) {
        if self.rejoin_planned {
            return;
        }
        debug!(peers = size, after = ?self.rejoin_backoff, "routing table short; bootstrapping again later");
        self.rejoin_planned = true;
        self.rejoin_timer
            .as_mut()
            .reset(tokio::time::Instant::now() + self.rejoin_backoff);
        self.rejoin_backoff = (self.rejoin_backoff * 2).min(REJOIN_LONGEST);
    }

    /// Keeps the node under its connection limit (see [`trim_marks`]): once
    /// [`EventLoop::trim_at`] connections are open, closes the least
    /// recently used ones, idle before busy (none younger than
    /// [`TRIM_GRACE`], none to a relay holding a reservation), until
    /// [`EventLoop::trim_to`] are left.
    fn trim_connections(&mut self) {
        let open = self.connections.len() - self.trimming.len();
        if open < self.trim_at {
            return;
        }
        let now = Instant::now();
        // (busy, last used, id): idle before busy, least recently used
        // first. A connection counts as used when it opened and whenever
        // one of kith's streams with its peer moved a byte.
        let mut candidates: Vec<(Busy, Instant, ConnectionId)> = self
            .connections
            .iter()
            .filter(|(id, (peer, opened))| {
                !self.trimming.contains(id)
                    && !self.relays.contains(peer)
                    && now.duration_since(*opened) >= TRIM_GRACE
            })
            .map(|(id, (peer, opened))| {
                let usage = self.activity.usage(peer, now);
                let last = usage.last.map_or(*opened, |last| last.max(*opened));
                let busy = if usage.busy_outbound {
                    Busy::Ours
                } else if usage.busy_inbound {
                    Busy::Theirs
                } else {
                    Busy::Idle
                };
                (busy, last, *id)
            })
            .collect();
        candidates.sort_unstable();
        // Connections carrying this node's own requests are spared: their
        // number is bounded by its own work. Those busy with a peer's
        // requests are spared too, the most recently used first, but never
        // more than half of those kept: peers that keep a stream busy on
        // every connection cannot lock newcomers out.
        let ours = candidates
            .iter()
            .filter(|(busy, ..)| *busy == Busy::Ours)
            .count();
        let theirs = candidates
            .iter()
            .filter(|(busy, ..)| *busy == Busy::Theirs)
            .count();
        let candidates_len = candidates.len();
        let closable = candidates.len() - ours - theirs.min(self.trim_to / 2);
        let excess = open - self.trim_to;
        let mut closed_busy = 0;
        for (busy, _, id) in candidates.into_iter().take(excess.min(closable)) {
            if self.swarm.close_connection(id) {
                self.trimming.insert(id);
                closed_busy += usize::from(busy != Busy::Idle);
            }
        }
        debug!(
            open,
            closing = self.trimming.len(),
            closed_busy,
            young = open - candidates_len,
            ours,
            theirs,
            "closing the least recently used connections to make room"
        );
    }

    /// Bootstraps again if the table is still short.
    fn rejoin(&mut self) {
        self.rejoin_planned = false;
        if self.table_size() < REJOIN_BELOW {
            // NoKnownPeers: the table emptied; the next peer that connects
            // sets off libp2p's own bootstrap.
            self.full_bootstrap();
        }
    }

    /// Starts a full bootstrap (a lookup of this node's id, then one per
    /// more distant bucket) that runs to its end.
    fn full_bootstrap(&mut self) {
        if let Ok(id) = self.swarm.behaviour_mut().kad.bootstrap() {
            self.full_bootstraps.insert(id);
        }
    }

    /// One step of a bootstrap query ended. libp2p starts a full bootstrap
    /// by itself whenever a peer enters a table of fewer than k = 20
    /// peers, which is every new node's table, and its switch is private
    /// to the crate. In a network joining a thousand nodes at once those
    /// are most of the lookups: one per distant bucket of every node. Such
    /// a bootstrap keeps its first step (a lookup of this node's own id,
    /// which tells its neighbours about it) and stops there; the tables
    /// fill from the lookups that reach the node anyway, and a table that
    /// stays short gets a full bootstrap of this node's own (`rejoin`).
    fn on_bootstrap_step(&mut self, id: kad::QueryId, step: &kad::ProgressStep) {
        if step.last {
            self.full_bootstraps.remove(&id);
            return;
        }
        if self.full_bootstraps.contains(&id) || self.pending_queries.contains_key(&id) {
            return;
        }
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            // Finishing a step starts the next, which is finished here in
            // turn before it sends anything; the first one counts.
            if step.count.get() == 1 {
                debug!(target: CHURN, ?id, "libp2p's automatic bootstrap cut after its self-lookup");
                self.bootstraps_cut.inc();
            }
            query.finish();
        }
    }

    pub(crate) fn swarm_mut(&mut self) -> &mut Swarm<Behaviour> {
        &mut self.swarm
    }

    /// Drives the swarm until every listener in `listeners` reported an
    /// address, or fails with the first listener that closed or errored.
    /// Used by [`spawn`](crate::spawn) before it hands out the client, so
    /// that [`Client::listen_addrs`](crate::Client::listen_addrs) is never
    /// empty right after start.
    pub(crate) async fn wait_listening(
        &mut self,
        mut listeners: HashMap<ListenerId, Multiaddr>,
        limit: Duration,
    ) -> Result<(), NetError> {
        let deadline = tokio::time::Instant::now() + limit;
        while !listeners.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| NetError::Timeout {
                    what: "starting to listen",
                    after: limit,
                })?;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    listeners.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    if let Some(addr) = listeners.remove(listener_id) {
                        let reason = match reason {
                            Ok(()) => "the listener closed".to_owned(),
                            Err(error) => describe(error),
                        };
                        return Err(NetError::Listen { addr, reason });
                    }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = listeners.remove(listener_id) {
                        return Err(NetError::Listen {
                            addr,
                            reason: describe(error),
                        });
                    }
                }
                _ => {}
            }
            self.on_swarm_event(event);
        }
        Ok(())
    }

    /// Runs until shutdown or until every client is gone.
    pub(crate) async fn run(mut self) {
        let shutdown_reply = loop {
            let rejoin_planned = self.rejoin_planned;
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                () = &mut self.rejoin_timer, if rejoin_planned => self.rejoin(),
                () = next_tick(&mut self.refresh_timer) => {
                    self.full_bootstrap();
                }
                _ = self.trim_timer.tick() => {
                    self.trim_connections();
                    self.seek_relays();
                }
                command = self.commands.recv() => match command {
                    Some(command) => match self.on_command(command) {
                        Flow::Continue => {}
                        Flow::Stop(reply) => break reply,
                    },
                    None => break None,
                },
            }
        };
        info!("network event loop stopping");
        // Dropping the swarm closes every connection and listener; dropping
        // the pending maps answers every waiter with `Stopped`.
        drop(self);
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn emit(&self, event: NetEvent) {
        // No subscribers is fine: events are advisory.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Connections(reply) => {
                let mut open: Vec<(PeerId, Multiaddr)> = self
                    .connections
                    .iter()
                    .filter_map(|(id, (peer, _))| {
                        Some((*peer, self.connection_addrs.get(id)?.clone()))
                    })
                    .collect();
                open.sort();
                let _ = reply.send(open);
            }
            Command::Reachability(reply) => {
                let _ = reply.send(self.reachability_report());
            }
            Command::CloseRelayedIfDirect { peer, reply } => {
                let _ = reply.send(self.close_relayed_if_direct(peer));
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::DialForStream { peer } => self.dial_for_stream(peer),
            Command::FindPeer { peer, reply } => {
                if peer == *self.swarm.local_peer_id() {
                    let addrs = self.swarm.listeners().cloned().collect();
                    let _ = reply.send(Ok(answered_at_once(peer, addrs)));
                } else if let Some(addrs) = self.connected_with_known_addrs(&peer) {
                    // Connected now, with an address to give: nothing to
                    // look up.
                    let _ = reply.send(Ok(answered_at_once(peer, addrs)));
                } else if let Err(error) = self.check_can_query() {
                    let _ = reply.send(Err(error));
                } else {
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.pending_queries
                        .insert(id, QueryWaiter::FindPeer(peer, reply));
                }
            }
            Command::ClosestPeers { key, reply } => {
                if let Err(error) = self.check_can_query() {
                    let _ = reply.send(Err(error));
                } else {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .get_closest_peers(key.to_vec());
                    self.pending_queries
                        .insert(id, QueryWaiter::Closest(key, reply));
                }
            }
            Command::StartProviding { key, reply } => {
                if let Err(error) = self.check_can_query() {
                    let _ = reply.send(Err(error));
                } else {
                    let kad = &mut self.swarm.behaviour_mut().kad;
                    match kad.start_providing(kad::RecordKey::new(&key)) {
                        Ok(id) => {
                            self.pending_queries
                                .insert(id, QueryWaiter::StartProviding(reply));
                        }
                        Err(error) => {
                            debug!(?error, "cannot record a provided key");
                            let _ = reply.send(Err(NetError::ProviderStoreFull(MAX_PROVIDER_KEYS)));
                        }
                    }
                }
            }
            Command::StopProviding { key, reply } => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&kad::RecordKey::new(&key));
                let _ = reply.send(());
            }
            Command::Providers { key, reply } => {
                if let Err(error) = self.check_can_query() {
                    let _ = reply.send(Err(error));
                } else {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .get_providers(kad::RecordKey::new(&key));
                    self.pending_queries
                        .insert(id, QueryWaiter::Providers(Vec::new(), reply));
                }
            }
            Command::Bootstrap(reply) => {
                if self.pending_queries.len() >= MAX_INFLIGHT_QUERIES {
                    let _ = reply.send(Err(NetError::Busy(self.pending_queries.len())));
                } else {
                    match self.swarm.behaviour_mut().kad.bootstrap() {
                        Ok(id) => {
                            self.pending_queries
                                .insert(id, QueryWaiter::Bootstrap(reply));
                        }
                        Err(_) => {
                            let _ = reply.send(Err(NetError::NoKnownPeers));
                        }
                    }
                }
            }
            Command::Join(reply) => {
                if self.pending_queries.len() >= MAX_INFLIGHT_QUERIES {
                    let _ = reply.send(Err(NetError::Busy(self.pending_queries.len())));
                } else if let Err(error) = self.check_can_query() {
                    let _ = reply.send(Err(error));
                } else {
                    let local = *self.swarm.local_peer_id();
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(local);
                    self.pending_queries.insert(id, QueryWaiter::Join(reply));
                }
            }
            Command::KnownPeers(reply) => {
                let mut peers = Vec::new();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    for entry in bucket.iter() {
                        peers.push((
                            *entry.node.key.preimage(),
                            entry.node.value.iter().cloned().collect(),
                        ));
                    }
                }
                let _ = reply.send(peers);
            }
            Command::AddKnownPeer { peer, addr, reply } => {
                let update = self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                let _ = reply.send(!matches!(update, kad::RoutingUpdate::Failed));
            }
            Command::AddExternalAddr { addr, reply } => {
                // The swarm reports no event for an address added by hand.
                self.swarm.add_external_address(addr);
                self.update_relay_status();
                let _ = reply.send(());
            }
            Command::Ping { peer, reply } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(NetError::NotConnected(peer)));
                } else if let Some(rtt) = self.rtts.get(&peer) {
                    let _ = reply.send(Ok(*rtt));
                } else {
                    self.pending_pings.entry(peer).or_default().push(reply);
                }
            }
            Command::ListenViaRelay { relay, reply } => self.listen_via_relay(relay, reply),
            Command::Shutdown(reply) => return Flow::Stop(Some(reply)),
        }
        Flow::Continue
    }

    /// Whether a new client lookup may start.
    fn check_can_query(&mut self) -> Result<(), NetError> {
        if self.pending_queries.len() >= MAX_INFLIGHT_QUERIES {
            return Err(NetError::Busy(self.pending_queries.len()));
        }
        if self.swarm.behaviour_mut().kad.kbuckets().next().is_none() {
            return Err(NetError::NoKnownPeers);
        }
        Ok(())
    }

    fn dial(&mut self, addr: Multiaddr, reply: Reply<Result<PeerId, NetError>>) {
        let opts = match peer_id_of(&addr) {
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Disconnected)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(connection, (addr, reply));
            }
            Err(error) => {
                let _ = reply.send(Err(dial_error(addr, &error)));
            }
        }
    }

    /// Dials `peer` by id, with the addresses Kademlia and the address
    /// book give, for a stream waiting in libp2p-stream (see
    /// `Control::open_dialling`). Nothing is answered: the stream learns
    /// the outcome from libp2p-stream.
    fn dial_for_stream(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        self.make_room_for_own_dial();
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => debug!(target: CHURN, %peer, "dial for a stream"),
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(error) => debug!(%peer, error = %describe(&error), "cannot dial for a stream"),
        }
    }

    /// Closes one connection if the one a stream is about to dial would
    /// not fit under [`EventLoop::most`] (with the dials under way): at
    /// that many libp2p refuses this node's own dials, and a node that
    /// opened a burst of connections for its lookups (a get's two lookups
    /// dial 50 to 100 peers) could not reach the holders they found for
    /// the five seconds [`trim_connections`](EventLoop::trim_connections)
    /// spares a young connection (`docs/scale.md`, "Reads lost to dials
    /// never made"). The connection closed carries no kith stream busy
    /// either way and was used least recently; unlike the trimmer this
    /// closes a young one too — most often one a lookup opened for a
    /// single request, long answered. Nothing is closed when every
    /// connection is busy: the dial is refused, as before.
    fn make_room_for_own_dial(&mut self) {
        let open = self.connections.len() - self.trimming.len();
        let dialling = self
            .swarm
            .network_info()
            .connection_counters()
            .num_pending_outgoing() as usize;
        if open + dialling < self.most {
            return;
        }
        let now = Instant::now();
        let least_used = self
            .connections
            .iter()
            .filter(|(id, (peer, _))| !self.trimming.contains(id) && !self.relays.contains(peer))
            .filter_map(|(id, (peer, opened))| {
                let usage = self.activity.usage(peer, now);
                let idle = !usage.busy_outbound && !usage.busy_inbound;
                idle.then(|| (usage.last.map_or(*opened, |last| last.max(*opened)), *id))
            })
            .min();
        if let Some((_, id)) = least_used
            && self.swarm.close_connection(id)
        {
            self.trimming.insert(id);
            debug!(target: CHURN, open, dialling, "closed a connection to make room for a stream's dial");
        }
    }

    fn listen_via_relay(&mut self, relay: Multiaddr, reply: Reply<Result<Multiaddr, NetError>>) {
        if peer_id_of(&relay).is_none() {
            let _ = reply.send(Err(NetError::MissingPeerId { addr: relay }));
            return;
        }
        match self
            .swarm
            .listen_on(relay.clone().with(Protocol::P2pCircuit))
        {
            Ok(listener) => {
                self.pending_relays.insert(listener, (relay, reply));
            }
            Err(error) => {
                let _ = reply.send(Err(NetError::Relay {
                    relay,
                    reason: describe(&error),
                }));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record_metrics(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                info!(%address, "listening");
                if let Some((_, reply)) = self.pending_relays.remove(&listener_id) {
                    let local = *self.swarm.local_peer_id();
                    let full = address.clone().with_p2p(local).unwrap_or_else(|a| a);
                    let _ = reply.send(Ok(full));
                }
                self.emit(NetEvent::ListenAddr(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                debug!(%address, "no longer listening");
                self.emit(NetEvent::ListenAddrExpired(address));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.auto_relay.closed(listener_id, Instant::now()) {
                    info!(%relay, ?reason, "no longer listening through a relay picked for us");
                }
                if let Some((relay, reply)) = self.pending_relays.remove(&listener_id) {
                    let mut reason = match reason {
                        Ok(()) => "the relay closed the reservation".to_owned(),
                        Err(error) => describe(&error),
                    };
                    if reason.contains("does not support") {
                        reason.push_str(
                            " (that peer does not offer relaying: its relay server is off \
                             or it has no reachable external address)",
                        );
                    }
                    let _ = reply.send(Err(NetError::Relay { relay, reason }));
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                warn!(?listener_id, error = %describe(&error), "listener error");
                if let Some(relay) = self.auto_relay.closed(listener_id, Instant::now()) {
                    // The relay's listener may stay open, retrying; ours
                    // to replace it is picked on the next check.
                    self.swarm.remove_listener(listener_id);
                    info!(%relay, "a relay picked for us failed");
                }
                if let Some((relay, reply)) = self.pending_relays.remove(&listener_id) {
                    let _ = reply.send(Err(NetError::Relay {
                        relay,
                        reason: describe(&error),
                    }));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                concurrent_dial_errors,
                established_in,
            } => {
                debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                debug!(
                    target: CHURN,
                    %peer_id,
                    dialer = endpoint.is_dialer(),
                    n = num_established.get(),
                    failed_addrs = concurrent_dial_errors.as_ref().map_or(0, Vec::len),
                    in_ms = established_in.as_millis() as u64,
                    open = self.connections.len(),
                    "open"
                );
                self.connections
                    .insert(connection_id, (peer_id, Instant::now()));
                self.connection_addrs
                    .insert(connection_id, endpoint.get_remote_address().clone());
                self.trim_connections();
                self.connected_addrs
                    .entry(peer_id)
                    .or_insert_with(|| endpoint.get_remote_address().clone());
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if let Some((mut lookup, reply, _)) = self.confirm_dials.remove(&connection_id) {
                    let addr = endpoint.get_remote_address().clone();
                    // For the next dial by peer id too (a peer found by its
                    // record is in no routing table).
                    self.swarm
                        .behaviour_mut()
                        .addresses
                        .remember(peer_id, [&addr]);
                    lookup.addrs = vec![addr];
                    let _ = reply.send(Ok(lookup));
                }
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    self.answer_find_peer_early(peer_id, address);
                }
                if num_established.get() == 1 {
                    self.emit(NetEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                cause,
            } => {
                debug!(
                    target: CHURN,
                    %peer_id,
                    dialer = endpoint.is_dialer(),
                    n = num_established,
                    trimmed = self.trimming.contains(&connection_id),
                    lived_ms = self
                        .connections
                        .get(&connection_id)
                        .map_or(0, |(_, opened)| opened.elapsed().as_millis() as u64),
                    cause = cause.as_ref().map(|c| describe(c)).unwrap_or_default(),
                    "close"
                );
                self.ping_failures.remove(&connection_id);
                self.connections.remove(&connection_id);
                self.connection_addrs.remove(&connection_id);
                self.trimming.remove(&connection_id);
                if num_established == 0 {
                    self.relays.remove(&peer_id);
                    self.auto_relay.withdraw(&peer_id);
                    self.activity.forget_if_unused(&peer_id);
                    debug!(%peer_id, "disconnected");
                    self.rtts.remove(&peer_id);
                    self.connected_addrs.remove(&peer_id);
                    for reply in self.pending_pings.remove(&peer_id).unwrap_or_default() {
                        let _ = reply.send(Err(NetError::NotConnected(peer_id)));
                    }
                    self.emit(NetEvent::PeerDisconnected(peer_id));
                }
                if let ConnectedPoint::Dialer { address, .. } = endpoint {
                    trace!(%peer_id, %address, "outbound connection closed");
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(?peer_id, error = %describe(&error), "dial failed");
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(dial_error(addr, &error)));
                }
                if let Some((lookup, reply, record_asked)) =
                    self.confirm_dials.remove(&connection_id)
                {
                    if record_asked {
                        let _ = reply.send(Err(not_found(&lookup)));
                    } else {
                        // The addresses the routing table had are dead;
                        // the peer may be behind NAT now, listening
                        // through relays.
                        self.find_by_peer_record(lookup, reply);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                debug!(%send_back_addr, error = %describe(&error), "inbound connection failed");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                info!(%address, "external address confirmed");
                self.update_relay_status();
                if is_relayed(&address) {
                    self.announce_peer_record();
                }
                self.emit(NetEvent::ExternalAddr(address));
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                debug!(%address, "external address expired");
                self.update_relay_status();
            }
            SwarmEvent::Dialing { peer_id, .. } => {
                let connected = peer_id.is_some_and(|peer| self.swarm.is_connected(&peer));
                debug!(target: CHURN, connected, "dialing");
            }
            other => trace!(?other, "swarm event"),
        }
    }

    /// Feeds libp2p's metrics with an event (before it is handled).
    fn record_metrics(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        self.metrics.record(event);
        if let SwarmEvent::Behaviour(event) = event {
            match event {
                BehaviourEvent::Identify(event) => self.metrics.record(event),
                BehaviourEvent::Ping(event) => self.metrics.record(event),
                BehaviourEvent::Kad(event) => self.metrics.record(event),
                BehaviourEvent::RelayServer(event) => self.metrics.record(event),
                BehaviourEvent::Dcutr(event) => self.metrics.record(event),
                _ => {}
            }
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.note_relay_offer(peer_id, &info);
                // Only kith peers that serve kith's DHT enter the routing
                // table, with a bounded number of their announced addresses.
                let serves_kad = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
                if info.protocol_version == IDENTIFY_PROTOCOL && serves_kad {
                    // A peer's loopback address only reaches it from its own
                    // machine; unless we reached it over loopback (then it
                    // shares our machine), it would only make us, or
                    // whoever we hand it to, dial itself or nothing. (A
                    // node listening on 0.0.0.0 kept the 127.0.0.1 of
                    // peers on other machines, and a peer looking one up
                    // dialled itself: `cli/tests/nat.rs`.)
                    let keep_loopback = self.connected_addrs.get(&peer_id).is_some_and(is_loopback);
                    let kad = &mut self.swarm.behaviour_mut().kad;
                    for addr in info
                        .listen_addrs
                        .into_iter()
                        .filter(|addr| keep_loopback || !is_loopback(addr))
                        .take(MAX_ADDRS_PER_PEER)
                    {
                        add_to_routing_table(kad, &peer_id, addr);
                    }
                } else {
                    trace!(%peer_id, version = %info.protocol_version, "not a kith DHT peer");
                    // A peer that served the DHT and stopped (AutoNAT found
                    // it behind NAT; identify tells us so at once) leaves
                    // the table: Kademlia itself would only mark it
                    // disconnected and keep handing its addresses out.
                    if self
                        .swarm
                        .behaviour_mut()
                        .kad
                        .remove_peer(&peer_id)
                        .is_some()
                    {
                        debug!(%peer_id, "no longer serves the DHT: out of the routing table");
                    }
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, addr) in found {
                    let addrs = by_peer.entry(peer).or_default();
                    // In the form Kademlia hands the same dial, so that the
                    // swarm sees one address, not two (`full_address`).
                    if let Some(addr) = full_address(peer, &addr)
                        && addrs.len() < MAX_ADDRS_PER_PEER
                        && !addrs.contains(&addr)
                    {
                        addrs.push(addr);
                    }
                }
                for (peer, addrs) in by_peer {
                    debug!(%peer, "found on the LAN");
                    for addr in &addrs {
                        add_to_routing_table(
                            &mut self.swarm.behaviour_mut().kad,
                            &peer,
                            addr.clone(),
                        );
                    }
                    if !self.swarm.is_connected(&peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(addrs)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        if let Err(error) = self.swarm.dial(opts) {
                            debug!(%peer, error = %describe(&error), "cannot dial LAN peer");
                        }
                    }
                }
            }
            BehaviourEvent::Mdns(_) => {}
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            }) => {
                let result = match result {
                    Ok(rtt) => {
                        self.rtts.insert(peer, rtt);
                        self.ping_failures.remove(&connection);
                        Ok(rtt)
                    }
                    Err(failure) => {
                        if !matches!(failure, ping::Failure::Unsupported) {
                            let failures = self.ping_failures.entry(connection).or_insert(0);
                            *failures += 1;
                            if *failures >= PING_FAILURES_TO_CLOSE {
                                info!(%peer, %failure, "closing a connection whose pings fail");
                                self.ping_failures.remove(&connection);
                                self.swarm.close_connection(connection);
                            }
                        }
                        Err(NetError::Ping {
                            peer,
                            reason: failure.to_string(),
                        })
                    }
                };
                for reply in self.pending_pings.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(result.clone());
                }
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                info!(?old, ?new, "reachability changed");
                self.on_reachability(new);
            }
            BehaviourEvent::Autonat(_) => {}
            BehaviourEvent::RelayServer(event) => debug!(?event, "relay server"),
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                self.relays.insert(relay_peer_id);
                if !renewal {
                    info!(relay = %relay_peer_id, "reachable through relay");
                    self.emit(NetEvent::RelayReservation {
                        relay: relay_peer_id,
                    });
                }
            }
            BehaviourEvent::RelayClient(event) => debug!(?event, "relay client"),
            BehaviourEvent::Dcutr(event) => debug!(?event, "hole punching"),
            // Streams are handed to clients directly, not reported here.
            BehaviourEvent::Streams(()) => {}
            BehaviourEvent::Limits(never)
            | BehaviourEvent::Memory(never)
            | BehaviourEvent::Addresses(never) => match never {},
        }
    }

    /// Applies AutoNAT's new verdict: the DHT mode, the relays picked for
    /// this node (see `reachability.rs`).
    fn on_reachability(&mut self, status: autonat::NatStatus) {
        if self.assume_private {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        self.reachability = match status {
            autonat::NatStatus::Public(addr) => {
                kad.set_mode(Some(kad::Mode::Server));
                for listener in self.auto_relay.drain() {
                    self.swarm.remove_listener(listener);
                }
                (
                    Reachability::Public,
                    format!("AutoNAT: a peer dialled it back at {addr}"),
                )
            }
            autonat::NatStatus::Private => {
                kad.set_mode(Some(kad::Mode::Client));
                (
                    Reachability::Private,
                    "AutoNAT: peers could not dial it back at any of its addresses, so it \
                     is behind a NAT or a firewall; reachable through relays"
                        .to_owned(),
                )
            }
            autonat::NatStatus::Unknown => {
                kad.set_mode(Some(kad::Mode::Server));
                (
                    Reachability::Unknown,
                    no_verdict_yet(self.autonat_private_addresses),
                )
            }
        };
        self.seek_relays();
        self.announce_peer_record();
    }

    /// Notes whether `peer` offers relaying, from what it told identify,
    /// with the address to reach it at: the one of its listen addresses
    /// that this node's connection to it uses, else the first it could
    /// dial (not relayed; loopback only if this node listens there too, or
    /// reached it there).
    fn note_relay_offer(&mut self, peer: PeerId, info: &identify::Info) {
        let offers = info
            .protocols
            .iter()
            .any(|protocol| protocol.as_ref() == RELAY_HOP_PROTOCOL);
        if !offers {
            self.auto_relay.withdraw(&peer);
            return;
        }
        let keep_loopback = self.swarm.listeners().any(is_loopback)
            || self.connected_addrs.get(&peer).is_some_and(is_loopback);
        let dialable: Vec<&Multiaddr> = info
            .listen_addrs
            .iter()
            .filter(|addr| !is_relayed(addr) && (keep_loopback || !is_loopback(addr)))
            .collect();
        let connected_ip = self
            .connected_addrs
            .get(&peer)
            .and_then(|addr| addr.iter().next());
        let addr = dialable
            .iter()
            .find(|addr| addr.iter().next() == connected_ip)
            .or_else(|| dialable.first());
        if let Some(addr) = addr {
            self.auto_relay.offer(peer, (*addr).clone());
            self.seek_relays();
        }
    }

    /// Closes the relayed connections to `peer` when a direct one is open
    /// (see [`crate::Client::prefer_direct`]); answers whether one is.
    fn close_relayed_if_direct(&mut self, peer: PeerId) -> bool {
        let mut direct = false;
        let mut relayed = Vec::new();
        for (id, (other, _)) in &self.connections {
            if *other != peer {
                continue;
            }
            match self.connection_addrs.get(id) {
                Some(addr) if is_relayed(addr) => relayed.push(*id),
                Some(_) => direct = true,
                None => {}
            }
        }
        if direct {
            for id in relayed {
                if self.swarm.close_connection(id) {
                    debug!(%peer, "closed a relayed connection: a direct one is open");
                }
            }
        }
        direct
    }

    /// While private, listens through enough of the peers that offer
    /// relaying to make up the number wanted.
    fn seek_relays(&mut self) {
        if self.reachability.0 != Reachability::Private {
            return;
        }
        let rtts = &self.rtts;
        let picks = self
            .auto_relay
            .picks(Instant::now(), |peer| rtts.get(peer).copied());
        for (relay, addr) in picks {
            match self
                .swarm
                .listen_on(addr.clone().with(Protocol::P2pCircuit))
            {
                Ok(listener) => {
                    info!(%relay, %addr, "listening through a relay picked for us");
                    self.auto_relay.opened(listener, relay);
                }
                Err(error) => {
                    debug!(%relay, error = %describe(&error), "cannot listen through a relay");
                }
            }
        }
    }

    /// While private with a relayed address, announces it under this
    /// node's peer record so that others can find it by peer id (the
    /// provider record carries this node's confirmed external addresses).
    fn announce_peer_record(&mut self) {
        if self.reachability.0 != Reachability::Private
            || !self.swarm.external_addresses().any(is_relayed)
        {
            return;
        }
        let key = peer_record_key(self.swarm.local_peer_id());
        match self.swarm.behaviour_mut().kad.start_providing(key) {
            Ok(_) => debug!("announcing this node's relayed addresses"),
            Err(error) => warn!(?error, "cannot announce this node's relayed addresses"),
        }
    }

    fn reachability_report(&mut self) -> ReachabilityReport {
        let (mut reachability, mut reason) = self.reachability.clone();
        let direct: Vec<&Multiaddr> = self
            .swarm
            .external_addresses()
            .filter(|addr| !is_relayed(addr))
            .collect();
        if reachability == Reachability::Unknown && !direct.is_empty() {
            reachability = Reachability::Public;
            reason = format!(
                "given as reachable at {} (--external), not tested",
                direct
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let mut relays: Vec<String> = self.relays.iter().map(ToString::to_string).collect();
        relays.sort();
        ReachabilityReport {
            reachability,
            reason,
            dht_server: self.swarm.behaviour_mut().kad.mode() == kad::Mode::Server,
            relays,
            relaying_for_others: offers_relay(self.swarm.external_addresses())
                && self.swarm.behaviour().relay_server.is_enabled(),
        }
    }

    /// Switches the relay server's advertisement on while the node has a
    /// confirmed external address that is not itself relayed, off otherwise.
    fn update_relay_status(&mut self) {
        let serve = offers_relay(self.swarm.external_addresses());
        if let Some(server) = self.swarm.behaviour_mut().relay_server.as_mut() {
            let status = if serve {
                relay::Status::Enable
            } else {
                relay::Status::Disable
            };
            // Only a change reaches the connection handlers.
            server.set_status(Some(status));
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        let (id, result, stats, step) = match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => (id, result, stats, step),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(mut record),
                    },
            } => {
                // Filtered inserts come to us; keep a bounded record.
                // libp2p has already checked that the announcing peer is
                // the provider named in the record.
                record.addresses.truncate(MAX_PROVIDER_ADDRS);
                let provider = record.provider;
                if let Err(error) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(record)
                {
                    debug!(%provider, ?error, "provider record not stored");
                }
                return;
            }
            kad::Event::RoutablePeer { peer, address } => {
                // A peer connected and has an address Kademlia can give out
                // (`BucketInserts::Manual`).
                add_to_routing_table(&mut self.swarm.behaviour_mut().kad, &peer, address);
                return;
            }
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                // Kept beyond the routing table, which may evict the peer.
                self.swarm
                    .behaviour_mut()
                    .addresses
                    .remember(peer, addresses.iter());
                return;
            }
            other => {
                trace!(event = ?other, "kademlia");
                return;
            }
        };
        if step.last {
            debug!(
                target: CHURN,
                kind = query_kind(&result),
                waited = self.pending_queries.contains_key(&id),
                requests = stats.num_requests(),
                "query done"
            );
        }
        match result {
            kad::QueryResult::GetClosestPeers(result) => {
                let Some(waiter) = self.pending_queries.remove(&id) else {
                    return;
                };
                let (peers, timed_out) = match result {
                    Ok(ok) => (ok.peers, false),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, true),
                };
                // Kademlia forgets these addresses when the query ends;
                // the caller is about to dial some of these peers.
                let book = &mut self.swarm.behaviour_mut().addresses;
                for info in &peers {
                    book.remember(info.peer_id, &info.addrs);
                }
                match waiter {
                    QueryWaiter::FindPeer(target, reply) => {
                        let found = peers
                            .into_iter()
                            .find(|info| info.peer_id == target)
                            .map(|info| info.addrs)
                            .or_else(|| self.connected_fallback(&target));
                        let mut lookup = PeerLookup {
                            peer: target,
                            addrs: Vec::new(),
                            requests: stats.num_requests(),
                            successes: stats.num_successes(),
                            duration: stats.duration(),
                        };
                        match found {
                            Some(addrs) => {
                                lookup.addrs = if addrs.is_empty() {
                                    self.routing_addrs(&target)
                                } else {
                                    addrs
                                };
                                let _ = reply.send(Ok(lookup));
                            }
                            None => {
                                // The target did not answer in time (busy, or
                                // its connection was closed under load), but
                                // someone knew it: try its addresses from the
                                // routing table, or the address book (where a
                                // connection made during the lookup and since
                                // closed left its address).
                                lookup.addrs = self.known_addrs(&target);
                                if lookup.addrs.is_empty() {
                                    // No routing table holds it: it may be
                                    // a node behind NAT (a DHT client),
                                    // reachable through its relays.
                                    self.find_by_peer_record(lookup, reply);
                                } else {
                                    self.confirm_by_dial(lookup, reply);
                                }
                            }
                        }
                    }
                    QueryWaiter::Closest(key, reply) => {
                        let answer = if peers.is_empty() && timed_out {
                            Err(NetError::Timeout {
                                what: "looking up the closest peers",
                                after: stats.duration().unwrap_or_default(),
                            })
                        } else {
                            let mut ids: Vec<PeerId> =
                                peers.into_iter().map(|info| info.peer_id).collect();
                            sort_by_distance(&key, &mut ids);
                            Ok(ids)
                        };
                        let _ = reply.send(answer);
                    }
                    QueryWaiter::Join(reply) => {
                        self.after_bootstrap();
                        let answer = if peers.is_empty() && timed_out {
                            Err(NetError::Timeout {
                                what: "joining the DHT",
                                after: stats.duration().unwrap_or_default(),
                            })
                        } else {
                            Ok(())
                        };
                        let _ = reply.send(answer);
                    }
                    QueryWaiter::Bootstrap(reply) => {
                        // Not reachable: bootstrap queries report as Bootstrap.
                        let _ = reply.send(Ok(()));
                    }
                    // Not reachable either: provider queries report as
                    // such. Dropping the reply tells the caller the node
                    // gave no answer.
                    QueryWaiter::StartProviding(_)
                    | QueryWaiter::Providers(..)
                    | QueryWaiter::PeerRecord(..) => {}
                }
            }
            kad::QueryResult::Bootstrap(result) => {
                self.on_bootstrap_step(id, &step);
                if !step.last {
                    return;
                }
                self.after_bootstrap();
                if let Some(QueryWaiter::Bootstrap(reply)) = self.pending_queries.remove(&id) {
                    let answer = match result {
                        Ok(_) => Ok(()),
                        Err(kad::BootstrapError::Timeout { .. }) => Err(NetError::Timeout {
                            what: "bootstrapping",
                            after: stats.duration().unwrap_or_default(),
                        }),
                    };
                    let _ = reply.send(answer);
                }
            }
            kad::QueryResult::StartProviding(result) => {
                let Some(QueryWaiter::StartProviding(reply)) = self.pending_queries.remove(&id)
                else {
                    return;
                };
                // ADD_PROVIDER has no answer: a success is a peer that
                // answered the lookup and was then sent the record.
                let reached = stats.num_successes() > 0;
                let answer = match result {
                    Ok(_) if reached => Ok(()),
                    Ok(_) => Err(NetError::NotAnnounced),
                    Err(kad::AddProviderError::Timeout { .. }) if reached => Ok(()),
                    Err(kad::AddProviderError::Timeout { .. }) => Err(NetError::Timeout {
                        what: "announcing a provider record",
                        after: stats.duration().unwrap_or_default(),
                    }),
                };
                let _ = reply.send(answer);
            }
            kad::QueryResult::GetProviders(result) => {
                if let Some(QueryWaiter::PeerRecord(lookup, _)) = self.pending_queries.get(&id) {
                    let target = lookup.peer;
                    let found = matches!(
                        &result,
                        Ok(kad::GetProvidersOk::FoundProviders { providers, .. })
                            if providers.contains(&target)
                    );
                    if (found || step.last)
                        && let Some(QueryWaiter::PeerRecord(mut lookup, reply)) =
                            self.pending_queries.remove(&id)
                    {
                        lookup.requests += stats.num_requests();
                        lookup.successes += stats.num_successes();
                        if found {
                            // Dialled while the query still runs: Kademlia
                            // gives a dial by peer id the addresses its
                            // running queries learned, here the record's.
                            self.dial_found_by_record(lookup, reply);
                            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                                query.finish();
                            }
                        } else {
                            let _ = reply.send(Err(not_found(&lookup)));
                        }
                    }
                    return;
                }
                let local = *self.swarm.local_peer_id();
                let Some(QueryWaiter::Providers(found, _)) = self.pending_queries.get_mut(&id)
                else {
                    return;
                };
                let done = match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        for provider in providers {
                            if found.len() >= MAX_PROVIDERS_COLLECTED {
                                break;
                            }
                            if provider != local && !found.contains(&provider) {
                                found.push(provider);
                            }
                        }
                        let enough = found.len() >= PROVIDERS_ENOUGH;
                        if enough
                            && !step.last
                            && let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id)
                        {
                            query.finish();
                        }
                        enough || step.last
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => true,
                    Err(kad::GetProvidersError::Timeout { .. }) => {
                        if found.is_empty() && stats.num_successes() == 0 {
                            if let Some(QueryWaiter::Providers(_, reply)) =
                                self.pending_queries.remove(&id)
                            {
                                let _ = reply.send(Err(NetError::Timeout {
                                    what: "looking up providers",
                                    after: stats.duration().unwrap_or_default(),
                                }));
                            }
                            return;
                        }
                        true
                    }
                };
                if done
                    && let Some(QueryWaiter::Providers(found, reply)) =
                        self.pending_queries.remove(&id)
                {
                    let _ = reply.send(Ok(found));
                }
            }
            other => trace!(?other, "kademlia query result"),
        }
    }

    /// `peer`'s dialable addresses (routing table, else address book) if
    /// this node is connected to it now; `None` if not connected or none is
    /// known (an inbound connection's remote address is not one to dial).
    fn connected_with_known_addrs(&mut self, peer: &PeerId) -> Option<Vec<Multiaddr>> {
        if !self.swarm.is_connected(peer) {
            return None;
        }
        let addrs = self.known_addrs(peer);
        (!addrs.is_empty()).then_some(addrs)
    }

    /// `peer`'s addresses from the routing table, else from the address
    /// book (where a connection since closed, or a lookup since ended, left
    /// them).
    fn known_addrs(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let addrs = self.routing_addrs(peer);
        if addrs.is_empty() {
            self.swarm.behaviour_mut().addresses.addresses(peer)
        } else {
            addrs
        }
    }

    /// Where to reach `target` when a lookup for it ended without its own
    /// answer (it came after the 10 s request timeout, or the request met
    /// a connection closing for idleness) but a connection to it is open:
    /// [`EventLoop::connected_with_known_addrs`], else the open
    /// connection's address; `None` when not connected.
    fn connected_fallback(&mut self, target: &PeerId) -> Option<Vec<Multiaddr>> {
        self.connected_with_known_addrs(target).or_else(|| {
            self.swarm
                .is_connected(target)
                .then(|| self.connected_addrs.get(target).cloned())
                .flatten()
                .map(|addr| vec![addr])
        })
    }

    /// A lookup for `peer` is running and this node just dialled `peer` at
    /// `address`: the lookup has found it (Kademlia dials the closest peers
    /// it hears of, and a peer is the closest to itself). Answers at once
    /// and ends the lookup, rather than waiting until the 20 peers closest
    /// to it have all answered: that wait, behind the slowest of them, was
    /// most of a lookup's time and its only way to fail.
    fn answer_find_peer_early(&mut self, peer: PeerId, address: &Multiaddr) {
        let Some(id) = self
            .pending_queries
            .iter()
            .find_map(|(id, waiter)| match waiter {
                QueryWaiter::FindPeer(target, _) if *target == peer => Some(*id),
                _ => None,
            })
        else {
            return;
        };
        let Some(QueryWaiter::FindPeer(_, reply)) = self.pending_queries.remove(&id) else {
            return;
        };
        let mut lookup = PeerLookup {
            peer,
            addrs: full_address(peer, address).into_iter().collect(),
            requests: 0,
            successes: 0,
            duration: None,
        };
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            let stats = query.stats();
            lookup.requests = stats.num_requests();
            lookup.successes = stats.num_successes();
            lookup.duration = stats.duration();
            query.finish();
        }
        let _ = reply.send(Ok(lookup));
    }

    /// A lookup for `lookup.peer` ended without it, but the routing table
    /// still has addresses for it: dials them, and the lookup's answer
    /// waits for the dial ([`EventLoop::confirm_dials`]). Kademlia keeps a
    /// peer whose every address failed, so the table alone does not say
    /// that it is alive; a connection does.
    fn confirm_by_dial(&mut self, lookup: PeerLookup, reply: Reply<Result<PeerLookup, NetError>>) {
        let opts = DialOpts::peer_id(lookup.peer)
            .addresses(lookup.addrs.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.confirm_dials
                    .insert(connection, (lookup, reply, false));
            }
            Err(error) => {
                debug!(peer = %lookup.peer, error = %describe(&error), "not confirming a lookup");
                let _ = reply.send(Err(not_found(&lookup)));
            }
        }
    }

    /// Asks the DHT for `lookup.peer`'s own record ([`peer_record_key`]):
    /// a node behind NAT is in no routing table, but announces its relayed
    /// addresses there.
    fn find_by_peer_record(
        &mut self,
        lookup: PeerLookup,
        reply: Reply<Result<PeerLookup, NetError>>,
    ) {
        let key = peer_record_key(&lookup.peer);
        let id = self.swarm.behaviour_mut().kad.get_providers(key);
        self.pending_queries
            .insert(id, QueryWaiter::PeerRecord(lookup, reply));
    }

    /// The record of `lookup.peer` was found by the query running now:
    /// dials the peer by id (see the caller) and answers once connected.
    fn dial_found_by_record(
        &mut self,
        mut lookup: PeerLookup,
        reply: Reply<Result<PeerLookup, NetError>>,
    ) {
        let peer = lookup.peer;
        if let Some(addr) = self
            .swarm
            .is_connected(&peer)
            .then(|| self.connected_addrs.get(&peer).cloned())
            .flatten()
        {
            lookup.addrs = vec![addr];
            let _ = reply.send(Ok(lookup));
            return;
        }
        // Even while another dial to it runs: that one may be trying
        // addresses that are dead (the record's are the ones to try now).
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::Disconnected)
            .build();
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.confirm_dials.insert(connection, (lookup, reply, true));
            }
            Err(error) => {
                debug!(%peer, error = %describe(&error), "cannot dial a peer found by its record");
                let _ = reply.send(Err(not_found(&lookup)));
            }
        }
    }

    /// A peer's addresses from our own routing table.
    fn routing_addrs(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let key = kad::KBucketKey::from(*peer);
        self.swarm
            .behaviour_mut()
            .kad
            .kbucket(*peer)
            .and_then(|bucket| {
                bucket
                    .iter()
                    .find(|entry| *entry.node.key == key)
                    .map(|entry| entry.node.value.iter().cloned().collect())
            })
            .unwrap_or_default()
    }
}

/// The answer to a peer lookup that did not find its target.
/// Why there is no verdict on reachability yet.
fn no_verdict_yet(private_addresses: bool) -> String {
    if private_addresses {
        "not tested yet: AutoNAT asks connected peers to dial it back".to_owned()
    } else {
        "not tested yet: AutoNAT asks connected peers to dial it back, and only at public \
         addresses (on a LAN it stays unknown; autonat_private_addresses = true tests \
         private ones too)"
            .to_owned()
    }
}

fn not_found(lookup: &PeerLookup) -> NetError {
    NetError::PeerNotFound {
        peer: lookup.peer,
        requests: lookup.requests,
    }
}

/// Whether a node with these confirmed external addresses should offer to
/// relay: only with at least one that is reachable directly. A relayed
/// address means the node itself needs a relay.
fn offers_relay<'a>(external: impl IntoIterator<Item = &'a Multiaddr>) -> bool {
    external.into_iter().any(|addr| !is_relayed(addr))
}

fn dial_error(addr: Multiaddr, error: &DialError) -> NetError {
    let reason = match error {
        DialError::WrongPeerId { obtained, .. } => format!(
            "a different peer answered ({obtained}); the /p2p/ part of the address may be outdated"
        ),
        DialError::LocalPeerId { .. } => "that is this node's own address".to_owned(),
        DialError::Denied { cause } => format!("refused by local limits: {cause}"),
        DialError::NoAddresses => "no address to dial".to_owned(),
        DialError::Transport(attempts) => {
            let mut reasons: Vec<String> = Vec::new();
            for (attempt, error) in attempts {
                let reason = describe(error);
                let reason = if *attempt == addr || attempts.len() == 1 {
                    reason
                } else {
                    format!("{attempt}: {reason}")
                };
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
            reasons.join("; ")
        }
        other => describe(other),
    };
    NetError::Dial { addr, reason }
}

/// A lookup answered without a request: this node itself, or a peer it is
/// connected to now.
fn answered_at_once(peer: PeerId, addrs: Vec<Multiaddr>) -> PeerLookup {
    PeerLookup {
        peer,
        addrs,
        requests: 0,
        successes: 0,
        duration: Some(Duration::ZERO),
    }
}

/// A finished query's kind, for the [`CHURN`] log.
fn query_kind(result: &kad::QueryResult) -> &'static str {
    match result {
        kad::QueryResult::GetClosestPeers(_) => "closest",
        kad::QueryResult::Bootstrap(_) => "bootstrap",
        kad::QueryResult::GetProviders(_) => "providers",
        kad::QueryResult::StartProviding(_) => "start-providing",
        kad::QueryResult::RepublishProvider(_) => "republish",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    const RELAY: &str =
        "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    #[test]
    fn a_relayed_address_does_not_switch_the_relay_server_on() {
        let circuit = addr(&format!("{RELAY}/p2p-circuit"));
        assert!(is_relayed(&circuit));
        assert!(!offers_relay([&circuit]));
        assert!(!offers_relay(std::iter::empty()));
    }

    #[test]
    fn a_direct_address_switches_the_relay_server_on() {
        let direct = addr("/ip4/198.51.100.7/tcp/4001");
        let circuit = addr(&format!("{RELAY}/p2p-circuit"));
        assert!(!is_relayed(&direct));
        assert!(offers_relay([&direct]));
        assert!(offers_relay([&circuit, &direct]));
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        assert!(is_loopback(&addr("/ip4/127.0.0.1/tcp/1")));
        assert!(is_loopback(&addr("/ip4/127.3.2.1/udp/1/quic-v1")));
        assert!(is_loopback(&addr("/ip6/::1/tcp/1")));
        assert!(!is_loopback(&addr("/ip4/10.0.0.1/tcp/1")));
        assert!(!is_loopback(&addr("/ip6/fe80::1/tcp/1")));
        assert!(!is_loopback(&addr("/dns4/localhost/tcp/1")));
    }
}
