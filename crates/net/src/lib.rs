//! kith's network layer: libp2p behind a cloneable handle.
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | (this file) | [`spawn`]: builds the swarm, listens, starts the event loop |
//! | `config` | [`NetConfig`]: listen addresses, bootstrap peers, services, limits; [`parse_multiaddr`] |
//! | `client` | [`Client`]: the cloneable handle that sends commands to the event loop |
//! | `event_loop` | the one task that owns the libp2p `Swarm` |
//! | `behaviour` | the composed libp2p behaviour: every protocol a node speaks |
//! | `pending_per_ip` | a cap on inbound handshakes per remote IP address |
//! | `reachability` | [`Reachability`]: AutoNAT's verdict, and the relays a node behind NAT picks for itself |
//! | `throttle` | [`RateLimits`]: caps on bytes per second sent and received, per node and per peer |
//! | `address_book` | addresses of peers learned from lookups, for dials by peer id |
//! | `streams` | [`Control`], [`Stream`]: kith's byte streams, counted so that idle connections are closed first |
//! | [`frames`] | the one frame format of every kith protocol: tag, length, payload, bounded and timed |
//! | `latency` | simulated link latency for the in-process memory transport (tests) |
//! | `error` | [`NetError`], in words an operator can act on |
//!
//! # What it does
//!
//! [`spawn`] builds a libp2p swarm from the node's [`Identity`] and a
//! [`NetConfig`], starts listening, and moves the swarm into one event-loop
//! task that alone owns it. Everything else talks to that task through a
//! [`Client`]: a cheap, cloneable handle whose async methods send a command
//! over a bounded channel and await the answer. [`Client::events`] streams
//! what happens (peers connecting, new listen addresses).
//!
//! The stack: TCP (Noise, Yamux) and QUIC transports, plus the circuit-relay
//! transport; identify, ping, Kademlia under kith's own protocol id
//! ([`KAD_PROTOCOL`]), mDNS, AutoNAT, a relay server and client, DCUtR hole
//! punching, and connection and memory limits. `docs/network.md` lists the
//! protocols, their ids and every limit.
//!
//! Bulk bytes (share transfer and the like) do not go through the event
//! loop: [`Client::streams`] gives a [`Control`] that opens and accepts
//! [`Stream`]s on kith's own versioned protocols directly.
//!
//! There is no built-in peer, relay or DNS name: a node finds others on its
//! LAN (mDNS), through bootstrap addresses it is given, and through the peer
//! table it saved last time ([`Client::known_peers`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kith_net::NetError> {
//! use kith_base::Identity;
//! use kith_net::{NetConfig, parse_multiaddr};
//!
//! let config = NetConfig::default()
//!     .with_listen([parse_multiaddr("/ip4/127.0.0.1/tcp/0")?])
//!     .with_mdns(false);
//! let (client, task) = kith_net::spawn(&Identity::generate(), config).await?;
//! for addr in client.listen_addrs().await? {
//!     println!("{addr}/p2p/{}", client.local_peer_id());
//! }
//! client.shutdown().await?;
//! task.await.ok();
//! # Ok(())
//! # }
//! ```

mod address_book;
mod behaviour;
mod client;
mod config;
mod error;
mod event_loop;
pub mod frames;
mod latency;
mod pending_per_ip;
mod reachability;
mod streams;
mod throttle;

use std::collections::HashMap;
use std::time::Duration;

use kith_base::Identity;
use libp2p::{SwarmBuilder, kad, noise, tcp, yamux};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, warn};

pub use client::{Client, NetEvent, PeerLookup};
pub use config::{
    ConnectionLimits, IDENTIFY_PROTOCOL, KAD_PROTOCOL, NetConfig, RelayLimits, Timing, is_relayed,
    parse_multiaddr, peer_id_of, relay_of,
};
pub use error::NetError;
pub use libp2p::{Multiaddr, PeerId, StreamProtocol};
pub use reachability::{Reachability, ReachabilityReport, ReachabilitySettings};
pub use streams::{AlreadyRegistered, Control, IncomingStreams, OpenStreamError, Stream};
pub use throttle::RateLimits;

use crate::error::describe;
use crate::event_loop::EventLoop;

/// How long [`spawn`] waits for its listeners to report their addresses.
const LISTEN_STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// Time beyond the lookup and dial timeouts that a stream's fallback
/// lookup (see [`Control::open_stream`]) may take.
const FIND_GRACE: Duration = Duration::from_secs(5);

/// Starts the network: builds the swarm, listens on every configured
/// address (waiting until each reports its actual address, so port 0
/// works), dials the bootstrap peers, and spawns the event loop on the
/// current tokio runtime.
///
/// Returns the client and the event loop's task, which ends after
/// [`Client::shutdown`] or once every client is dropped.
///
/// # Errors
///
/// - [`NetError::MissingPeerId`] if a bootstrap address lacks `/p2p/<peer id>`;
/// - [`NetError::Listen`] naming the address if one cannot be listened on
///   (e.g. the port is in use);
/// - [`NetError::Setup`] if the libp2p stack cannot be assembled.
///
/// # Panics
///
/// If called outside a tokio runtime.
///
/// A `/memory/<port>` listen address (libp2p's in-process transport) turns
/// on the memory transport, for simulations of many nodes in one process
/// that need no sockets; real nodes never list one, and then it is off.
pub async fn spawn(
    identity: &Identity,
    config: NetConfig,
) -> Result<(Client, tokio::task::JoinHandle<()>), NetError> {
    // Validate everything the caller gave before touching the network.
    let mut bootstrap = Vec::with_capacity(config.bootstrap.len());
    for addr in &config.bootstrap {
        let peer =
            peer_id_of(addr).ok_or_else(|| NetError::MissingPeerId { addr: addr.clone() })?;
        bootstrap.push((peer, addr.clone()));
    }

    // libp2p's own metrics (connections, bytes per protocol, DHT queries,
    // pings, identify, relay, hole punching), for `GET /v1/metrics`.
    let mut registry = prometheus_client::registry::Registry::default();
    let rate_waits = throttle::WaitCounters::registered(&mut registry);
    let throttle = throttle::Throttle::new(config.rate_limits, rate_waits);
    let behaviour_config = config.clone();
    let in_memory = config.listen.iter().any(is_memory_addr);
    let mut swarm = SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        // The memory transport first: the DNS transport around QUIC and
        // TCP takes every address and fails it later, so nothing after it
        // would ever be tried; the memory transport refuses other
        // addresses at once.
        .with_other_transport(|keypair| {
            memory_transport(keypair, in_memory, config.simulated_latency)
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|error| NetError::Setup(describe(&error)))?
        .with_other_transport(|keypair| {
            ip_transport(keypair, config.limits.handshake_timeout, throttle.clone())
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|error| NetError::Setup(describe(&error)))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|error| NetError::Setup(describe(&error)))?
        .with_bandwidth_metrics(&mut registry)
        .with_behaviour(|keypair, relay_client| {
            behaviour::build(keypair, relay_client, &behaviour_config)
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|error| NetError::Setup(describe(&error)))?
        .with_swarm_config(|swarm_config| {
            swarm_config.with_idle_connection_timeout(config.timing.idle_timeout)
        })
        .build();

    let mut listeners = HashMap::new();
    for addr in &config.listen {
        check_port_free(addr)?;
        let listener = swarm
            .listen_on(addr.clone())
            .map_err(|error| NetError::Listen {
                addr: addr.clone(),
                reason: describe(&error),
            })?;
        listeners.insert(listener, addr.clone());
    }
    for addr in &config.external_addrs {
        swarm.add_external_address(addr.clone());
    }

    let (event_tx, _) = broadcast::channel(config.event_capacity.max(1));
    let local_peer_id = *swarm.local_peer_id();
    let activity = streams::Activity::new();
    let (command_tx, command_rx) = mpsc::channel(config.command_capacity.max(1));
    let streams = Control::new(
        swarm.behaviour().streams.new_control(),
        activity.clone(),
        streams::PeerFinder::new(
            &command_tx,
            config.query_timeout + config.dial_timeout + FIND_GRACE,
        ),
    );
    let metrics = libp2p::metrics::Metrics::new(&mut registry);
    let bootstraps_cut = prometheus_client::metrics::counter::Counter::default();
    registry.register(
        "kith_net_bootstraps_cut",
        "libp2p automatic bootstraps stopped after their self-lookup",
        bootstraps_cut.clone(),
    );
    let mut event_loop = EventLoop::new(
        swarm,
        command_rx,
        event_tx.clone(),
        metrics,
        activity,
        config.reachability,
        event_loop::Upkeep {
            max_established: config.limits.max_established,
            refresh_every: config.timing.dht_refresh,
            bootstraps_cut,
        },
    );
    event_loop
        .wait_listening(listeners, LISTEN_STARTUP_LIMIT)
        .await?;

    let swarm = event_loop.swarm_mut();
    for (peer, addr) in &config.known_peers {
        behaviour::add_to_routing_table(&mut swarm.behaviour_mut().kad, peer, addr.clone());
    }
    for (peer, addr) in bootstrap {
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        if let Err(error) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %describe(&error), "cannot dial bootstrap peer");
        }
    }
    debug!(%local_peer_id, "network started");

    // With `RUST_LOG=kith_net::node=debug` (or `kith_net=debug`) every line
    // the event loop logs names the node: many nodes share a process in
    // tests and the testnet. Off otherwise, so a node's own log is as it was.
    let span = tracing::debug_span!(target: "kith_net::node", "net", me = %local_peer_id);
    let task = tokio::spawn(tracing::Instrument::instrument(event_loop.run(), span));
    let client = Client::new(
        command_tx,
        event_tx,
        local_peer_id,
        config.dial_timeout,
        config.query_timeout,
        streams,
        (std::sync::Arc::new(registry), throttle),
    );
    Ok((client, task))
}

/// Fails if a fixed TCP or UDP port in `addr` is already taken.
///
/// libp2p-tcp sets `SO_REUSEPORT` on every listening socket, so on Linux a
/// second node listening on a port already in use would *succeed* and the
/// kernel would then split incoming connections between the two nodes. A
/// plain bind without `SO_REUSEPORT` fails on a taken port, so probing with
/// one (and closing it at once) turns that silent sharing into a clear
/// error. QUIC's UDP port is probed the same way only for the message:
/// libp2p-quic reports the failure itself, but wrapped beyond recognition.
fn check_port_free(addr: &Multiaddr) -> Result<(), NetError> {
    use libp2p::multiaddr::Protocol;
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    let probe = match parts.next() {
        Some(Protocol::Tcp(port)) if port != 0 => std::net::TcpListener::bind((ip, port)).map(drop),
        Some(Protocol::Udp(port)) if port != 0 => std::net::UdpSocket::bind((ip, port)).map(drop),
        _ => return Ok(()),
    };
    probe.map_err(|error| NetError::Listen {
        addr: addr.clone(),
        reason: describe(&error),
    })
}

/// Sorts peers by their Kademlia distance to a 32-byte key, closest first:
/// the order [`Client::closest_peers`] answers in. Use it to rank this
/// node among the answer, since a lookup never returns the node itself.
pub fn sort_by_distance(key: &[u8; 32], peers: &mut [PeerId]) {
    let target = kad::KBucketKey::new(key.to_vec());
    peers.sort_by_cached_key(|peer| kad::KBucketKey::from(*peer).distance(&target));
}

/// Whether `addr` is on libp2p's in-process memory transport.
pub fn is_memory_addr(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(libp2p::multiaddr::Protocol::Memory(_))
    )
}

/// A boxed transport of authenticated, multiplexed connections.
type BoxedTransport =
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>;

/// QUIC, then TCP, behind a DNS resolver: `/dns4/…`, `/dns6/…` and
/// `/dns/…` addresses (bootstrap, `connect`, relays) are resolved with the
/// system's resolver (`/etc/resolv.conf`, `/etc/hosts`) and dialled over
/// what they name. A machine whose resolver configuration cannot be read
/// runs without it, with a warning: such addresses then fail to dial.
fn ip_transport(
    keypair: &libp2p::identity::Keypair,
    handshake_timeout: Duration,
    throttle: std::sync::Arc<throttle::Throttle>,
) -> Result<BoxedTransport, noise::Error> {
    use libp2p::Transport as _;
    let ip = || -> Result<BoxedTransport, noise::Error> {
        let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(keypair)).map(
            |(peer, connection), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(connection)),
        );
        let throttle = throttle.clone();
        Ok(quic
            .or_transport(tcp_transport(keypair, handshake_timeout)?)
            .map(move |either, _| {
                let (peer, muxer) = either.into_inner();
                (peer, throttle.wrap(peer, muxer))
            })
            .boxed())
    };
    match libp2p::dns::tokio::Transport::system(ip()?) {
        Ok(resolving) => Ok(resolving.boxed()),
        Err(error) => {
            tracing::warn!(
                %error,
                "cannot read the system's DNS configuration: /dns addresses will not be dialled"
            );
            ip()
        }
    }
}

/// TCP with Noise and Yamux, as libp2p's `SwarmBuilder::with_tcp` builds
/// it, plus a tight limit on inbound handshakes: a socket that connects and
/// stays silent holds a pending-connection slot (and a file descriptor)
/// only for `handshake_timeout`, not for the 10 s the swarm builder gives
/// every connection. Outbound dials keep those 10 s: they include the TCP
/// connect across real networks, and this node bounds its own dials.
fn tcp_transport(
    keypair: &libp2p::identity::Keypair,
    handshake_timeout: Duration,
) -> Result<BoxedTransport, noise::Error> {
    use libp2p::Transport as _;
    let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)));
    Ok(
        libp2p::core::transport::timeout::TransportTimeout::with_ingoing_timeout(
            transport,
            handshake_timeout,
        )
        .boxed(),
    )
}

/// The in-process memory transport with Noise and Yamux, as TCP has them,
/// or no transport at all unless `enabled`.
fn memory_transport(
    keypair: &libp2p::identity::Keypair,
    enabled: bool,
    latency: Duration,
) -> Result<
    libp2p::core::transport::OptionalTransport<
        libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    >,
    noise::Error,
> {
    use libp2p::Transport as _;
    if !enabled {
        return Ok(libp2p::core::transport::OptionalTransport::none());
    }
    let transport = libp2p::core::transport::MemoryTransport::default()
        .map(move |channel, _| latency::Delayed::new(channel, latency))
        .upgrade(libp2p::core::upgrade::Version::V1)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
        .boxed();
    Ok(libp2p::core::transport::OptionalTransport::some(transport))
}
