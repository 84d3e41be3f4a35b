//! The composed libp2p behaviour: every protocol a kith node speaks.
//!
//! Each field is one libp2p protocol with its own per-connection handlers;
//! the derive macro wires them into one [`NetworkBehaviour`] whose events
//! arrive in the event loop as [`BehaviourEvent`] variants named after the
//! fields. Optional services (mDNS, the relay server) are wrapped in
//! [`Toggle`] so that switching them off leaves no handler, no socket and
//! no advertised protocol behind.
//!
//! The three limit behaviours come first on purpose: the derive asks fields in
//! order whether to accept a connection, so a denied connection never
//! reaches the protocol behaviours.

use std::time::Duration;

use libp2p::{
    Multiaddr, PeerId, StreamProtocol, autonat, connection_limits, dcutr, identify,
    identity::Keypair,
    kad::{self, store::MemoryStore},
    mdns, memory_connection_limits, ping, relay,
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
};

use crate::config::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, NetConfig};

/// Records the DHT store may hold. kith does not use Kademlia value records
/// (inbound ones are filtered and dropped, see [`build`]); this only bounds
/// the store as a backstop.
const MAX_KAD_RECORDS: usize = 256;
/// Largest Kademlia record value accepted, in bytes (backstop, as above).
const MAX_KAD_RECORD_BYTES: usize = 16 * 1024;
/// Keys the provider store may hold: the keys this node provides *and* the
/// keys other peers announced to it count together. An announcement for a
/// new key beyond this is dropped; [`Client::start_providing`](crate::Client::start_providing)
/// fails with [`NetError::ProviderStoreFull`](crate::NetError::ProviderStoreFull).
pub(crate) const MAX_PROVIDER_KEYS: usize = 2048;
/// Providers remembered per key (Kademlia's k). Further announcements for a
/// full key are ignored, which also blunts floods of fake providers.
pub(crate) const MAX_PROVIDERS_PER_KEY: usize = kad::K_VALUE.get();
/// Addresses kept from one provider announcement.
pub(crate) const MAX_PROVIDER_ADDRS: usize = 4;
/// How long peers keep a provider record after its last announcement.
pub(crate) const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 60 * 60);
/// How often this node re-announces the keys it provides.
pub(crate) const PROVIDER_REPUBLISH_INTERVAL: Duration = Duration::from_secs(12 * 60 * 60);

/// The most connections a node allowed `max_established` keeps in all, its
/// own dials included (see [`build`]): twice the limit. libp2p refuses
/// every connection past it, this node's own dials too.
pub(crate) fn most_established(max_established: u32) -> u32 {
    max_established.saturating_mul(2)
}

/// Every protocol of a kith node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) pending_per_ip: crate::pending_per_ip::Behaviour,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: memory_connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    /// Addresses learned from lookups and connections, for dials by peer
    /// id that Kademlia's routing table cannot answer.
    pub(crate) addresses: crate::address_book::AddressBook,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    /// kith's own byte-stream protocols (share transfer and the like).
    /// Streams are opened and accepted through a [`libp2p_stream::Control`]
    /// held by clients, so bulk bytes never pass through the event loop.
    pub(crate) streams: libp2p_stream::Behaviour,
}

/// Assembles the behaviour. `relay_client` comes from the swarm builder,
/// which pairs it with the relay transport.
pub(crate) fn build(
    keypair: &Keypair,
    relay_client: relay::client::Behaviour,
    config: &NetConfig,
) -> Result<Behaviour, std::io::Error> {
    let local = keypair.public().to_peer_id();
    let limits = &config.limits;

    // `max_established` binds what peers open to this node; what it dials
    // itself is bounded by its own work (and closed when idle, see
    // `EventLoop::trim_connections`), with twice the limit in all as the
    // backstop. A hard limit on outbound connections too left a busy node
    // unable to reach the very holders a get had just found (its own dials
    // refused: `docs/scale.md`, "Files lost to the node's own limit").
    let connection_limits = connection_limits::ConnectionLimits::default()
        .with_max_established_incoming(Some(limits.max_established))
        .with_max_established(Some(most_established(limits.max_established)))
        .with_max_established_per_peer(Some(limits.max_established_per_peer))
        .with_max_pending_incoming(Some(limits.max_pending_incoming))
        .with_max_pending_outgoing(Some(limits.max_pending_outgoing));

    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
            .with_agent_version(format!("kith/{}", env!("CARGO_PKG_VERSION")))
            .with_push_listen_addr_updates(true),
    );

    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    kad_config
        .set_query_timeout(config.query_timeout)
        // kith keeps its data in its own protocols, not in DHT value
        // records: inbound PUT_VALUE / ADD_PROVIDER are reported to the event
        // loop, which drops the former and stores the latter (with their
        // addresses trimmed). Provider records say who holds what.
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_replication_interval(None)
        .set_publication_interval(None)
        .set_provider_record_ttl(Some(PROVIDER_RECORD_TTL))
        .set_provider_publication_interval(Some(PROVIDER_REPUBLISH_INTERVAL))
        // The event loop runs the periodic refresh itself, so it can tell
        // its own full bootstraps from libp2p's automatic ones.
        .set_periodic_bootstrap_interval(None)
        // The event loop adds peers itself (`add_to_routing_table`), only
        // where a bucket has room: see there.
        .set_kbucket_inserts(kad::BucketInserts::Manual);
    let store = MemoryStore::with_config(
        local,
        kad::store::MemoryStoreConfig {
            max_records: MAX_KAD_RECORDS,
            max_value_bytes: MAX_KAD_RECORD_BYTES,
            max_providers_per_key: MAX_PROVIDERS_PER_KEY,
            max_provided_keys: MAX_PROVIDER_KEYS,
        },
    );
    let mut kad = kad::Behaviour::with_config(local, store, kad_config);
    // Kademlia would stay a client until AutoNAT confirms a public address,
    // which never happens on a LAN or on loopback. Every kith node serves
    // the DHT: a node that cannot be reached is simply never asked.
    kad.set_mode(Some(kad::Mode::Server));

    let mdns = if config.mdns {
        Some(mdns::tokio::Behaviour::new(mdns::Config::default(), local)?)
    } else {
        None
    };

    let relay_server = config.relay_server.then(|| {
        let relay_limits = &config.relay_limits;
        let relay_config = relay::Config {
            max_reservations: relay_limits.max_reservations,
            max_reservations_per_peer: relay_limits.max_reservations_per_peer,
            reservation_duration: relay_limits.reservation_duration,
            max_circuits: relay_limits.max_circuits,
            max_circuits_per_peer: relay_limits.max_circuits_per_peer,
            max_circuit_duration: relay_limits.max_circuit_duration,
            max_circuit_bytes: relay_limits.max_circuit_bytes,
            ..relay::Config::default()
        };
        let mut server = relay::Behaviour::new(local, relay_config);
        // libp2p would switch the service on for any confirmed external
        // address, including a `/p2p-circuit` one: a node reachable only
        // through a relay would offer to relay. The event loop decides
        // instead (`EventLoop::update_relay_status`), counting direct
        // addresses only.
        server.set_status(Some(relay::Status::Disable));
        server
    });

    Ok(Behaviour {
        pending_per_ip: crate::pending_per_ip::Behaviour::new(
            limits.max_pending_incoming_per_ip,
            limits.max_pending_incoming / 2,
        ),
        limits: connection_limits::Behaviour::new(connection_limits),
        memory: memory_connection_limits::Behaviour::with_max_percentage(
            limits.max_memory_fraction.clamp(0.05, 1.0),
        ),
        identify,
        ping: ping::Behaviour::new(ping::Config::new().with_interval(config.timing.ping_interval)),
        kad,
        addresses: crate::address_book::AddressBook::new(crate::address_book::ADDRESS_BOOK_PEERS),
        mdns: Toggle::from(mdns),
        autonat: autonat::Behaviour::new(
            local,
            autonat::Config {
                // Ask few servers, and not too often: this only decides
                // whether we look reachable from the internet.
                confidence_max: 3,
                throttle_clients_global_max: 30,
                throttle_clients_peer_max: 3,
                only_global_ips: !config.reachability.private_addresses,
                ..autonat::Config::default()
            },
        ),
        relay_server: Toggle::from(relay_server),
        relay_client,
        dcutr: dcutr::Behaviour::new(local),
        streams: libp2p_stream::Behaviour::new(),
    })
}

/// Most addresses of one peer taken from what it announces about itself
/// (identify, mDNS). A peer cannot flood our routing table with addresses.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 8;

/// Adds `addr` of `peer` to Kademlia's routing table if the peer is in it
/// already or its bucket has room; a full bucket is left as it is.
///
/// libp2p would instead make the new peer pending and *dial* the bucket's
/// least recently seen peer to check it is alive, for every new peer met
/// while the bucket is full. A node that is not connected to everyone (any
/// network past a few hundred nodes, with connections closed when idle)
/// meets new peers on every lookup and finds its old entries disconnected,
/// so each contact cost one more connection, which pushed other idle
/// connections out: at 400 nodes, as many of these dials as lookup
/// requests (`docs/scale.md`, "Where the 400-node lookups spend their
/// time"). Peers that stopped answering still leave the table: Kademlia
/// drops a peer whose addresses all fail when a lookup dials it.
pub(crate) fn add_to_routing_table(
    kad: &mut kad::Behaviour<MemoryStore>,
    peer: &PeerId,
    addr: Multiaddr,
) -> kad::RoutingUpdate {
    let full = kad.kbucket(*peer).is_some_and(|bucket| {
        bucket.num_entries() >= kad::K_VALUE.get()
            && !bucket.iter().any(|entry| entry.node.key.preimage() == peer)
    });
    if full {
        return kad::RoutingUpdate::Failed;
    }
    kad.add_address(peer, addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A Kademlia behaviour of its own, with `count` peers that all fall in
    /// its most distant bucket (half of all ids do).
    fn far_peers(local: PeerId, count: usize) -> Vec<PeerId> {
        let key = kad::KBucketKey::from(local);
        std::iter::repeat_with(PeerId::random)
            .filter(|peer| key.distance(&kad::KBucketKey::from(*peer)).ilog2() == Some(255))
            .take(count)
            .collect()
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn a_full_bucket_is_left_as_it_is_and_nobody_is_dialled_to_make_room() {
        let local = PeerId::random();
        let mut kad = kad::Behaviour::new(local, MemoryStore::new(local));
        let k = kad::K_VALUE.get();
        let peers = far_peers(local, k + 1);
        for (port, peer) in (1..).zip(&peers[..k]) {
            let update = add_to_routing_table(&mut kad, peer, addr(port));
            assert!(matches!(update, kad::RoutingUpdate::Success));
        }
        // The bucket is full: the newcomer is not added, and not made
        // pending (which would have had libp2p dial the oldest entry).
        let newcomer = peers[k];
        let update = add_to_routing_table(&mut kad, &newcomer, addr(100));
        assert!(matches!(update, kad::RoutingUpdate::Failed));
        let known: Vec<PeerId> = kad
            .kbuckets()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .map(|entry| *entry.node.key.preimage())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(known.len(), k);
        assert!(!known.contains(&newcomer));
        // A peer already in the table still gets a new address.
        let update = add_to_routing_table(&mut kad, &peers[0], addr(200));
        assert!(matches!(update, kad::RoutingUpdate::Success));
    }
}
