//! Addresses of peers this node learned of but may not have in its routing
//! table, handed to the swarm whenever it dials one of them by peer id.
//!
//! Kademlia offers a dial the addresses in its k-buckets and those of the
//! queries still running, nothing more: once a closest-peers lookup ends,
//! the addresses it found for peers that did not fit in a full bucket are
//! forgotten. A put places shares on exactly such peers (the closest to a
//! key), and a reader that found holders by a lookup dials them after it
//! ended; in a network where nobody is connected to everyone, those dials
//! failed with "no addresses" and stored files could not be fetched back
//! (`docs/scale.md`, "Files lost at 400 nodes"). This behaviour keeps what
//! lookups, connections and libp2p's own discoveries taught, bounded (least
//! recently used out first), and answers the swarm's question "where is
//! this peer?" with it.
//!
//! Written here rather than taken from a crate: libp2p-identify's cache
//! keeps only peers it has been connected to, and no behaviour keeps the
//! addresses a DHT lookup found.

use std::convert::Infallible;
use std::task::{Context, Poll};

use hashlink::LruCache;
use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

use crate::behaviour::MAX_ADDRS_PER_PEER;

/// Peers whose addresses are kept: beyond this the least recently used
/// peer is forgotten (about 1 MiB at most).
pub(crate) const ADDRESS_BOOK_PEERS: usize = 4096;

/// The behaviour; see the module documentation.
pub(crate) struct AddressBook {
    peers: LruCache<PeerId, Vec<Multiaddr>>,
}

impl AddressBook {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            peers: LruCache::new(capacity.max(1)),
        }
    }

    /// Notes that `peer` may be reached at `addrs` (newest first; at most
    /// [`MAX_ADDRS_PER_PEER`] are kept per peer). Addresses are kept in
    /// their full form, ending in `/p2p/<peer>` ([`full_address`]); one that
    /// names another peer is ignored.
    pub(crate) fn remember<'a>(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = &'a Multiaddr>,
    ) {
        let mut known = self.peers.remove(&peer).unwrap_or_default();
        for addr in addrs {
            let Some(addr) = full_address(peer, addr) else {
                continue;
            };
            if let Some(at) = known.iter().position(|a| *a == addr) {
                known.remove(at);
            }
            known.insert(0, addr);
        }
        known.truncate(MAX_ADDRS_PER_PEER);
        // Inserted again: the most recently used.
        if !known.is_empty() {
            self.peers.insert(peer, known);
        }
    }

    /// What is known of `peer`'s addresses.
    pub(crate) fn addresses(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers.get(peer).cloned().unwrap_or_default()
    }

    /// Drops addresses that a dial found wrong (refused, or another peer).
    fn forget(&mut self, peer: &PeerId, failed: impl IntoIterator<Item = Multiaddr>) {
        if let Some(known) = self.peers.get_mut(peer) {
            for addr in failed {
                let Some(addr) = full_address(*peer, &addr) else {
                    continue;
                };
                known.retain(|a| *a != addr);
            }
            if known.is_empty() {
                self.peers.remove(peer);
            }
        }
    }
}

/// `addr` ending in `/p2p/<peer>`, the form Kademlia keeps and the swarm
/// dials; `None` if it names another peer.
///
/// The swarm drops duplicate addresses of a dial *before* it appends
/// `/p2p/<peer>` to each, so `/ip4/…/tcp/4001` from one behaviour and
/// `/ip4/…/tcp/4001/p2p/<peer>` from another were both dialled, at once:
/// two handshakes for one connection, the loser abandoned mid-handshake on
/// the listener. At 400 nodes that was a third of all handshakes
/// (`docs/scale.md`, "Where the 400-node lookups spend their time").
pub(crate) fn full_address(peer: PeerId, addr: &Multiaddr) -> Option<Multiaddr> {
    addr.clone().with_p2p(peer).ok()
}

impl NetworkBehaviour for AddressBook {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(maybe_peer
            .map(|peer| self.addresses(&peer))
            .unwrap_or_default())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // An address that was dialled and answered as `peer`: the best.
        self.remember(peer, [addr]);
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            // Kademlia reports the address of every peer it adds to its
            // routing table; identify, those a peer listens on, loopback
            // ones too. A peer's 127.0.0.1 reaches it only from its own
            // machine, where the event loop's table has it anyway; from
            // anywhere else it reaches this node itself or a stranger, and
            // one such address fails a whole dial by peer id (libp2p takes
            // the first connection that opens, then finds the wrong peer).
            FromSwarm::NewExternalAddrOfPeer(found) if !is_loopback(found.addr) => {
                self.remember(found.peer_id, [found.addr]);
            }
            FromSwarm::DialFailure(failure) => match (failure.peer_id, failure.error) {
                (Some(peer), DialError::Transport(errors)) => {
                    self.forget(&peer, errors.iter().map(|(addr, _)| addr.clone()));
                }
                // Someone else answered there.
                (Some(peer), DialError::WrongPeerId { address, .. }) => {
                    self.forget(&peer, [address.clone()]);
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Whether an address is on the loopback interface (127.0.0.0/8, ::1).
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    /// `addr(port)` as the book keeps it for `peer`.
    fn full(peer: PeerId, port: u16) -> Multiaddr {
        full_address(peer, &addr(port)).unwrap()
    }

    #[test]
    fn an_address_with_and_without_its_peer_id_is_one_address() {
        let mut book = AddressBook::new(8);
        let peer = PeerId::random();
        book.remember(peer, &[addr(1), full(peer, 1)]);
        assert_eq!(book.addresses(&peer), vec![full(peer, 1)]);
        // An address naming another peer is not this peer's.
        book.remember(peer, &[full(PeerId::random(), 2)]);
        assert_eq!(book.addresses(&peer), vec![full(peer, 1)]);
        book.forget(&peer, [addr(1)]);
        assert!(book.peers.is_empty());
    }

    #[test]
    fn keeps_the_newest_addresses_of_a_peer_without_duplicates() {
        let mut book = AddressBook::new(8);
        let peer = PeerId::random();
        book.remember(peer, &[addr(1), addr(2)]);
        book.remember(peer, &[addr(1)]);
        assert_eq!(book.addresses(&peer), vec![full(peer, 1), full(peer, 2)]);
        let many: Vec<Multiaddr> = (10..30).map(addr).collect();
        book.remember(peer, &many);
        assert_eq!(book.addresses(&peer).len(), MAX_ADDRS_PER_PEER);
        assert_eq!(book.addresses(&peer)[0], full(peer, 29));
    }

    #[test]
    fn forgets_the_least_recently_used_peer_when_full() {
        let mut book = AddressBook::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        book.remember(a, &[addr(1)]);
        book.remember(b, &[addr(2)]);
        // `a` is used, so `b` is the one to go.
        assert_eq!(book.addresses(&a), vec![full(a, 1)]);
        book.remember(c, &[addr(3)]);
        assert_eq!(book.addresses(&b), Vec::<Multiaddr>::new());
        assert_eq!(book.addresses(&a), vec![full(a, 1)]);
        assert_eq!(book.addresses(&c), vec![full(c, 3)]);
    }

    #[test]
    fn a_failed_address_is_dropped_and_an_empty_peer_forgotten() {
        let mut book = AddressBook::new(8);
        let peer = PeerId::random();
        book.remember(peer, &[addr(1), addr(2)]);
        book.forget(&peer, [addr(1)]);
        assert_eq!(book.addresses(&peer), vec![full(peer, 2)]);
        book.forget(&peer, [addr(2)]);
        assert!(book.peers.is_empty());
    }
}
