//! A cap on inbound connections still in their handshake, per remote IP
//! address.
//!
//! libp2p's `connection_limits` caps pending inbound connections in total
//! only, so one host that opens idle TCP connections to the p2p port and
//! never speaks can fill every slot and lock every new peer out until the
//! handshake timeout frees one — and it reopens them at once. Neither
//! libp2p nor a maintained crate offers a per-address cap (libp2p's limits
//! are total, per peer id — known only after the handshake — or by memory),
//! so this small behaviour adds one: it counts pending inbound connections
//! per address and denies one past the cap before any handshake starts.
//!
//! The cap binds only under pressure, once `free_below` connections (half
//! the total cap, see [`crate::ConnectionLimits`]) are in their handshake:
//! below that, many honest nodes behind one address (a NAT, or a test
//! network on 127.0.0.1) may all join at once; above it, an address that
//! already has its share waits, and the remaining slots stay open to
//! addresses that have fewer.
//!
//! IPv4 addresses count one by one; IPv6 addresses by their /64 prefix,
//! which is what one host (or one customer of a provider) usually gets.
//! Connections whose remote address has no IP (the in-process memory
//! transport, relayed circuits, which the relay limits already bound) are
//! not counted. Loopback is counted like any other address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;

/// Counts pending inbound connections per remote address and denies those
/// past [`Behaviour::new`]'s cap.
#[derive(Debug)]
pub(crate) struct Behaviour {
    max_per_ip: u32,
    free_below: u32,
    /// The address each counted pending connection came from.
    pending: HashMap<ConnectionId, IpAddr>,
    /// How many pending connections each address has.
    per_ip: HashMap<IpAddr, u32>,
}

/// Why an inbound connection was refused before its handshake.
#[derive(Debug, thiserror::Error)]
#[error(
    "{ip} already has {max} connections in their handshake with this node, \
     which is busy with handshakes"
)]
pub(crate) struct TooManyPending {
    /// The remote address (the /64 prefix for IPv6).
    pub(crate) ip: IpAddr,
    /// The cap.
    pub(crate) max: u32,
}

impl Behaviour {
    /// Once `free_below` inbound connections are in their handshake, an
    /// address that has `max_per_ip` of them gets no more until one ends.
    pub(crate) fn new(max_per_ip: u32, free_below: u32) -> Self {
        Self {
            max_per_ip,
            free_below,
            pending: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Stops counting `connection` (its handshake ended either way).
    /// Connections that were never counted are ignored.
    fn release(&mut self, connection: ConnectionId) {
        let Some(ip) = self.pending.remove(&connection) else {
            return;
        };
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The address a connection is counted under: the IP a multiaddr starts
/// with, IPv6 cut to its /64 prefix; `None` for addresses without one.
fn counted_ip(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => {
            let prefix = u128::from(ip) & !((1u128 << 64) - 1);
            Some(IpAddr::V6(prefix.into()))
        }
        _ => None,
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = counted_ip(remote_addr) else {
            return Ok(());
        };
        let under_pressure = self.pending.len() >= self.free_below as usize;
        let count = self.per_ip.entry(ip).or_insert(0);
        if under_pressure && *count >= self.max_per_ip {
            debug!(%ip, max = self.max_per_ip, "inbound connection refused: too many in their handshake from this address");
            return Err(ConnectionDenied::new(TooManyPending {
                ip,
                max: self.max_per_ip,
            }));
        }
        *count += 1;
        self.pending.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        // A later behaviour may deny an established connection before this
        // one hears of it; the failure and close events release it then.
        match event {
            FromSwarm::ListenFailure(failure) => self.release(failure.connection_id),
            FromSwarm::ConnectionEstablished(established) => {
                self.release(established.connection_id);
            }
            FromSwarm::ConnectionClosed(closed) => self.release(closed.connection_id),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_releases_when_the_handshake_ends() {
        let mut limit = Behaviour::new(2, 0);
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        let a = addr("/ip4/127.0.0.2/tcp/5000");
        let b = addr("/ip4/127.0.0.3/tcp/5000");
        let ids: Vec<ConnectionId> = (1..=5).map(ConnectionId::new_unchecked).collect();

        assert!(
            limit
                .handle_pending_inbound_connection(ids[0], &local, &a)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(ids[1], &local, &a)
                .is_ok()
        );
        let denied = limit
            .handle_pending_inbound_connection(ids[2], &local, &a)
            .unwrap_err();
        let reason = denied.downcast_ref::<TooManyPending>().unwrap();
        assert_eq!(
            reason.to_string(),
            "127.0.0.2 already has 2 connections in their handshake with this node, \
             which is busy with handshakes"
        );
        // Another address is not affected.
        assert!(
            limit
                .handle_pending_inbound_connection(ids[3], &local, &b)
                .is_ok()
        );
        // Done with its handshake: the slot comes back, once.
        let peer = PeerId::random();
        assert!(
            limit
                .handle_established_inbound_connection(ids[0], peer, &local, &a)
                .is_ok()
        );
        limit.release(ids[0]);
        limit.release(ids[2]);
        assert!(
            limit
                .handle_pending_inbound_connection(ids[4], &local, &a)
                .is_ok()
        );
        assert!(
            limit
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(99), &local, &a)
                .is_err()
        );
    }

    #[test]
    fn the_cap_binds_only_once_half_the_slots_are_taken() {
        let mut limit = Behaviour::new(2, 4);
        let local = addr("/ip4/127.0.0.1/tcp/4001");
        let a = addr("/ip4/127.0.0.1/tcp/5000");
        let b = addr("/ip4/127.0.0.2/tcp/5000");
        // Honest nodes behind one address may join at once...
        for id in 1..=4 {
            let id = ConnectionId::new_unchecked(id);
            assert!(
                limit
                    .handle_pending_inbound_connection(id, &local, &a)
                    .is_ok()
            );
        }
        // ...but once four are in their handshake, that address waits,
        let fifth = ConnectionId::new_unchecked(5);
        assert!(
            limit
                .handle_pending_inbound_connection(fifth, &local, &a)
                .is_err()
        );
        // and another address still gets its share.
        for id in 6..=7 {
            let id = ConnectionId::new_unchecked(id);
            assert!(
                limit
                    .handle_pending_inbound_connection(id, &local, &b)
                    .is_ok()
            );
        }
        let eighth = ConnectionId::new_unchecked(8);
        assert!(
            limit
                .handle_pending_inbound_connection(eighth, &local, &b)
                .is_err()
        );
    }

    #[test]
    fn ipv6_counts_by_prefix_and_addresses_without_ip_are_free() {
        assert_eq!(
            counted_ip(&addr("/ip6/2001:db8:1:2:aaaa::1/tcp/1")),
            counted_ip(&addr("/ip6/2001:db8:1:2:bbbb::9/tcp/1"))
        );
        assert_ne!(
            counted_ip(&addr("/ip6/2001:db8:1:2::1/tcp/1")),
            counted_ip(&addr("/ip6/2001:db8:1:3::1/tcp/1"))
        );
        assert_eq!(counted_ip(&addr("/memory/5")), None);
        let mut limit = Behaviour::new(0, 0);
        let local = addr("/memory/1");
        assert!(
            limit
                .handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(1),
                    &local,
                    &addr("/memory/5")
                )
                .is_ok()
        );
    }
}
