//! How a node's network is set up: where it listens, whom it knows at
//! start, which discovery and relay services it runs, and its limits.
//!
//! There are no built-in peers. A node learns of others only from what it
//! is given here (bootstrap addresses, the peer table it persisted last
//! time) and from mDNS on its LAN — kith has no centre to fall back on.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

use crate::NetError;

/// Identify's protocol-version string. Peers announcing anything else are
/// not kith nodes and are kept out of the routing table.
pub const IDENTIFY_PROTOCOL: &str = "/kith/id/1.0.0";

/// kith's own Kademlia protocol id. It differs from IPFS's `/ipfs/kad/1.0.0`
/// so that kith's DHT never merges with another network's.
pub const KAD_PROTOCOL: &str = "/kith/kad/1.0.0";

/// Limits of the relay server (circuit relay v2). A relayed connection
/// carries a friend-to-friend file of a few hundred megabytes (1 GiB and
/// an hour by default: libp2p's own 128 KiB and 2 minutes, and the 1 MiB
/// kith had, cut `kith send` of a photo short), while the counts of
/// circuits and reservations, at once and per peer, are capped. The relay
/// sees only ciphertext: both ends' Noise session runs through it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayLimits {
    /// Reservations (peers listening through us) at once.
    pub max_reservations: usize,
    /// Reservations per peer.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before it must be renewed.
    pub reservation_duration: Duration,
    /// Relayed connections at once.
    pub max_circuits: usize,
    /// Relayed connections per peer.
    pub max_circuits_per_peer: usize,
    /// How long one relayed connection may last.
    pub max_circuit_duration: Duration,
    /// How many bytes one relayed connection may carry (both directions).
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 16,
            max_reservations_per_peer: 2,
            reservation_duration: Duration::from_secs(60 * 60),
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration: Duration::from_secs(60 * 60),
            max_circuit_bytes: 1 << 30,
        }
    }
}

/// Connection limits, enforced by libp2p's `connection_limits` behaviour
/// before a connection is accepted or dialed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Established connections the node keeps: once seven eighths of this
    /// are open it closes idle ones (least recently used first) down to
    /// three quarters. Inbound connections beyond it are refused; the
    /// node's own dials may go past it, up to twice it in all.
    pub max_established: u32,
    /// Established connections to one peer (TCP, QUIC, relayed and
    /// hole-punched connections can coexist for a while).
    pub max_established_per_peer: u32,
    /// Inbound connections still in their handshake.
    pub max_pending_incoming: u32,
    /// Inbound connections still in their handshake from one IP address
    /// (one /64 for IPv6), once half of
    /// [`ConnectionLimits::max_pending_incoming`] are taken: one host
    /// cannot take every slot, while many honest nodes behind one address
    /// (a NAT, a test network on 127.0.0.1) can still join at once when
    /// the node is not under pressure. Loopback counts like any address.
    pub max_pending_incoming_per_ip: u32,
    /// How long an inbound TCP connection may take from being accepted to
    /// its finished handshake (multistream, Noise, Yamux); a socket that
    /// stays silent is closed then. A handshake takes milliseconds on a LAN
    /// and well under a second across the internet.
    pub handshake_timeout: Duration,
    /// Outbound connections still in their handshake.
    pub max_pending_outgoing: u32,
    /// Refuse new connections once the process uses more than this share of
    /// the machine's physical memory (0.0–1.0).
    pub max_memory_fraction: f64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_established: 256,
            max_established_per_peer: 4,
            max_pending_incoming: 64,
            max_pending_incoming_per_ip: 8,
            handshake_timeout: Duration::from_secs(5),
            max_pending_outgoing: 64,
            max_memory_fraction: 0.9,
        }
    }
}

/// Everything [`spawn`](crate::spawn) needs besides the identity.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetConfig {
    /// Addresses to listen on. Port 0 picks a free port; the addresses
    /// actually bound are reported by [`Client::listen_addrs`](crate::Client::listen_addrs).
    /// Default: every interface, a free port, TCP and QUIC.
    pub listen: Vec<Multiaddr>,
    /// Peers to join the network through, each address ending in
    /// `/p2p/<peer id>`. [`spawn`](crate::spawn) rejects an address without
    /// it ([`NetError::MissingPeerId`]) rather than trusting whoever answers
    /// there: the peer id is what authenticates the other end, and Kademlia
    /// needs it to place the peer. They are dialed at start (a bootstrap
    /// peer that is offline is logged, not fatal) and added to the routing table.
    pub bootstrap: Vec<Multiaddr>,
    /// Peers remembered from an earlier run (see
    /// [`Client::known_peers`](crate::Client::known_peers)). Added to the
    /// routing table without dialing; Kademlia contacts them as it needs.
    pub known_peers: Vec<(PeerId, Multiaddr)>,
    /// Addresses at which this node is known to be reachable from outside
    /// (a public address, a forwarded port). Announced to peers; they also
    /// switch the relay server on (see [`NetConfig::relay_server`]).
    pub external_addrs: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Offer to relay for peers that cannot be reached directly. The relay
    /// service is only advertised while this node has a confirmed external
    /// address (given in [`NetConfig::external_addrs`], added with
    /// [`Client::add_external_addr`](crate::Client::add_external_addr), or
    /// confirmed by AutoNAT): a node behind NAT is no use as a relay.
    pub relay_server: bool,
    /// Limits of the relay server.
    pub relay_limits: RelayLimits,
    /// AutoNAT and the relays a private node picks for itself.
    pub reachability: crate::ReachabilitySettings,
    /// Caps on bytes per second over TCP and QUIC (relayed traffic
    /// included); none by default.
    pub rate_limits: crate::RateLimits,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// Connection idle timeout, ping interval and DHT refresh.
    pub timing: Timing,
    /// One-way delay added to every connection of the in-process memory
    /// transport (`/memory/…` addresses), so that a simulated network has
    /// round trips of twice this. Zero (the default) adds none; TCP and QUIC
    /// are never delayed.
    pub simulated_latency: Duration,
    /// How long [`Client::dial`](crate::Client::dial) waits for a connection.
    pub dial_timeout: Duration,
    /// How long one Kademlia lookup may run.
    pub query_timeout: Duration,
    /// Capacity of the command channel from clients to the event loop.
    /// When full, client calls wait (back-pressure) rather than queue without bound.
    pub command_capacity: usize,
    /// Capacity of the event broadcast; a subscriber that falls further
    /// behind than this misses events (it is told how many).
    pub event_capacity: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Tcp(0)),
                Multiaddr::empty()
                    .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Udp(0))
                    .with(Protocol::QuicV1),
            ],
            bootstrap: Vec::new(),
            known_peers: Vec::new(),
            external_addrs: Vec::new(),
            mdns: true,
            relay_server: true,
            relay_limits: RelayLimits::default(),
            reachability: crate::ReachabilitySettings::default(),
            rate_limits: crate::RateLimits::default(),
            limits: ConnectionLimits::default(),
            timing: Timing::default(),
            simulated_latency: Duration::ZERO,
            dial_timeout: Duration::from_secs(20),
            query_timeout: Duration::from_secs(30),
            command_capacity: 64,
            event_capacity: 256,
        }
    }
}

/// The clocks of a node's background work on every connection and on the
/// DHT. The defaults are for a node on its own machine. A simulation that
/// runs hundreds of nodes on two cores stretches them (`kith-testnet
/// scale`), so that the process does no more background work than that
/// many separate machines would each do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Close a connection that no protocol has used for this long.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// How often each connection is pinged; two failed pings in a row close
    /// it. Default 15 s (libp2p's).
    pub ping_interval: Duration,
    /// How often the node refreshes its routing table with a full
    /// Kademlia bootstrap, started by kith's event loop (`None`: never).
    /// Default 5 min (libp2p's own default).
    pub dht_refresh: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(15),
            dht_refresh: Some(Duration::from_secs(5 * 60)),
        }
    }
}

impl NetConfig {
    /// Listens only on the given addresses, e.g. `/ip4/127.0.0.1/tcp/0` in tests.
    pub fn with_listen(mut self, listen: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.listen = listen.into_iter().collect();
        self
    }

    /// Adds a bootstrap peer: an address ending in `/p2p/<peer id>`.
    pub fn with_bootstrap(mut self, addr: Multiaddr) -> Self {
        self.bootstrap.push(addr);
        self
    }

    /// Turns mDNS on or off.
    pub fn with_mdns(mut self, on: bool) -> Self {
        self.mdns = on;
        self
    }

    /// Turns the relay server on or off.
    pub fn with_relay_server(mut self, on: bool) -> Self {
        self.relay_server = on;
        self
    }
}

/// Parses a multiaddr, with an error that shows the text and an example.
///
/// # Errors
///
/// [`NetError::InvalidAddr`] if the text is not a multiaddr.
pub fn parse_multiaddr(text: &str) -> Result<Multiaddr, NetError> {
    text.trim()
        .parse::<Multiaddr>()
        .map_err(|error| NetError::InvalidAddr {
            text: text.to_owned(),
            reason: error.to_string(),
        })
}

/// The relay an address goes through: for
/// `<relay addr>/p2p/<relay id>/p2p-circuit[/p2p/<peer>]`, the relay's id;
/// `None` for an address that is not relayed.
pub fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for part in addr.iter() {
        match part {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// Whether an address goes through a relay (`…/p2p-circuit…`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|part| matches!(part, Protocol::P2pCircuit))
}

/// The peer id an address ends with (`…/p2p/<peer id>`), if any. For a
/// relayed address (`<relay>/p2p/<relay id>/p2p-circuit/p2p/<peer>`) this is
/// the destination, not the relay.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_relay_of_an_address_is_the_peer_before_the_circuit() {
        let relay = PeerId::random();
        let peer = PeerId::random();
        let circuit: Multiaddr =
            format!("/ip4/10.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{peer}")
                .parse()
                .unwrap();
        assert!(is_relayed(&circuit));
        assert_eq!(relay_of(&circuit), Some(relay));
        assert_eq!(peer_id_of(&circuit), Some(peer));
        let direct: Multiaddr = format!("/ip4/10.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        assert!(!is_relayed(&direct));
        assert_eq!(relay_of(&direct), None);
    }
}
