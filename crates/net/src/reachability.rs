//! Whether other peers can dial this node, and the relays it picks for
//! itself when they cannot.
//!
//! AutoNAT asks connected peers to dial this node back at the addresses
//! they see it at. Its verdict decides three things (`EventLoop` applies
//! them):
//!
//! - **public**: the node serves the DHT and, with a direct external
//!   address confirmed, offers to relay for others;
//! - **private** (behind a NAT or a firewall): the node uses the DHT as a
//!   client only, so that nobody's routing table fills with addresses no
//!   one can dial; it picks [`ReachabilitySettings::auto_relays`] relays
//!   among its connected peers that offer relaying ([`AutoRelay`]), listens
//!   through each, replaces one that goes away, and announces its relayed
//!   addresses under [`peer_record_key`] so that others find it by peer id;
//! - **unknown** (no verdict yet, or nobody able to test: a LAN, where
//!   AutoNAT tests only public addresses unless
//!   [`ReachabilitySettings::private_addresses`] says otherwise): as public
//!   for the DHT, since a peer that cannot reach it simply never asks it.
//!
//! A node told it is private ([`ReachabilitySettings::assume_private`])
//! acts so from the start and ignores AutoNAT.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId, core::transport::ListenerId, kad, multiaddr::Protocol};
use serde::{Deserialize, Serialize};

/// The protocol a relay server advertises (circuit relay v2, "hop").
pub(crate) const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// How long a relay that refused or dropped this node's reservation is
/// left out of the picks.
const RETRY_FAILED_RELAY: Duration = Duration::from_secs(5 * 60);

/// Relays remembered as failed; the oldest is forgotten past this.
const MAX_REMEMBERED_FAILURES: usize = 64;

/// Connected peers remembered as offering relaying. Bounded by the
/// connection limits already; this is the backstop.
const MAX_CANDIDATES: usize = 256;

/// What this node does about its reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReachabilitySettings {
    /// Relays a node that AutoNAT finds private picks by itself (0: none;
    /// relays given by hand are kept either way). Default 2.
    pub auto_relays: usize,
    /// Let AutoNAT test private addresses (10.0.0.0/8, 192.168.0.0/16, …)
    /// too, as servers and as a client: for a network of NATs inside a
    /// larger private network (a campus, a lab). Default off: on the
    /// internet a private address is never the one peers can reach.
    pub private_addresses: bool,
    /// Take this node as private from the start, whatever AutoNAT finds:
    /// for a node known to sit behind a NAT (a phone network's carrier
    /// NAT), so that it picks relays at once. Default off.
    pub assume_private: bool,
}

impl Default for ReachabilitySettings {
    fn default() -> Self {
        Self {
            auto_relays: 2,
            private_addresses: false,
            assume_private: false,
        }
    }
}

/// The verdict on this node's reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Peers dialled it back: it can be reached directly.
    Public,
    /// Peers could not dial it back: behind a NAT or a firewall.
    Private,
    /// No verdict (yet).
    Unknown,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Unknown => "unknown",
        })
    }
}

/// What [`Client::reachability`](crate::Client::reachability) tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachabilityReport {
    /// The verdict.
    pub reachability: Reachability,
    /// Why, in words.
    pub reason: String,
    /// Whether this node answers DHT requests (server mode) or only asks
    /// (client mode, when private).
    pub dht_server: bool,
    /// Relays holding a reservation for this node, by peer id.
    pub relays: Vec<String>,
    /// Whether this node offers to relay for others right now.
    pub relaying_for_others: bool,
}

/// The key under which a node reachable only through relays announces
/// itself as a provider: the provider record carries its relayed
/// addresses, so a lookup of this key finds it by peer id even though no
/// routing table holds it (it serves no DHT requests).
pub(crate) fn peer_record_key(peer: &PeerId) -> kad::RecordKey {
    let mut key = b"/kith/peer/".to_vec();
    key.extend_from_slice(&peer.to_bytes());
    kad::RecordKey::new(&key)
}

/// The relays this node picks for itself; see the module docs.
#[derive(Debug)]
pub(crate) struct AutoRelay {
    /// How many reservations to keep.
    wanted: usize,
    /// Connected peers that offer relaying, with an address of theirs to
    /// reach them at.
    candidates: HashMap<PeerId, Multiaddr>,
    /// Listeners opened through relays picked here.
    listeners: HashMap<ListenerId, PeerId>,
    /// Relays whose reservation failed or ended, and when.
    failed: HashMap<PeerId, Instant>,
}

impl AutoRelay {
    pub(crate) fn new(wanted: usize) -> Self {
        Self {
            wanted,
            candidates: HashMap::new(),
            listeners: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// `peer`, connected, offers relaying at `addr`.
    pub(crate) fn offer(&mut self, peer: PeerId, addr: Multiaddr) {
        if self.candidates.len() < MAX_CANDIDATES || self.candidates.contains_key(&peer) {
            self.candidates.insert(peer, addr);
        }
    }

    /// `peer` no longer offers relaying, or is gone.
    pub(crate) fn withdraw(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
    }

    /// Relays to listen through now, each with the address to reach it at
    /// (ending in `/p2p/<relay>`): enough candidates to make up
    /// [`AutoRelay::wanted`], the fastest first (by `rtt`, unknown last),
    /// none in use already and none that failed lately.
    pub(crate) fn picks(
        &self,
        now: Instant,
        rtt: impl Fn(&PeerId) -> Option<Duration>,
    ) -> Vec<(PeerId, Multiaddr)> {
        let needed = self.wanted.saturating_sub(self.listeners.len());
        if needed == 0 {
            return Vec::new();
        }
        let mut usable: Vec<(Option<Duration>, PeerId, &Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(peer, _)| !self.listeners.values().any(|used| used == *peer))
            .filter(|(peer, _)| {
                self.failed
                    .get(peer)
                    .is_none_or(|when| now.duration_since(*when) >= RETRY_FAILED_RELAY)
            })
            .map(|(peer, addr)| (rtt(peer), *peer, addr))
            .collect();
        // Known round trips first, shortest first; then by peer id, so the
        // choice does not change from call to call.
        usable.sort_by_key(|(rtt, peer, _)| (rtt.is_none(), *rtt, *peer));
        usable
            .into_iter()
            .take(needed)
            .map(|(_, peer, addr)| (peer, with_peer(addr, peer)))
            .collect()
    }

    /// A listener was opened through `relay`.
    pub(crate) fn opened(&mut self, listener: ListenerId, relay: PeerId) {
        self.listeners.insert(listener, relay);
    }

    /// A listener closed; if it was one of ours, its relay is left out of
    /// the picks for a while and returned.
    pub(crate) fn closed(&mut self, listener: ListenerId, now: Instant) -> Option<PeerId> {
        let relay = self.listeners.remove(&listener)?;
        if self.failed.len() >= MAX_REMEMBERED_FAILURES
            && !self.failed.contains_key(&relay)
            && let Some(oldest) = self
                .failed
                .iter()
                .min_by_key(|(_, when)| **when)
                .map(|(peer, _)| *peer)
        {
            self.failed.remove(&oldest);
        }
        self.failed.insert(relay, now);
        Some(relay)
    }

    /// Forgets every listener picked here and returns them, to be closed
    /// (the node became reachable: it needs no relay).
    pub(crate) fn drain(&mut self) -> Vec<ListenerId> {
        self.listeners
            .drain()
            .map(|(listener, _)| listener)
            .collect()
    }
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn addr(last: u8) -> Multiaddr {
        format!("/ip4/10.0.0.{last}/tcp/4001").parse().unwrap()
    }

    #[test]
    fn picks_make_up_the_wanted_number_fastest_first() {
        let mut relays = AutoRelay::new(2);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (i, peer) in (1..).zip(&peers) {
            relays.offer(*peer, addr(i));
        }
        let now = Instant::now();
        let rtt = |peer: &PeerId| {
            (*peer == peers[2])
                .then_some(Duration::from_millis(5))
                .or((*peer == peers[1]).then_some(Duration::from_millis(50)))
        };
        let picks = relays.picks(now, rtt);
        assert_eq!(picks.len(), 2);
        assert_eq!(picks[0].0, peers[2]);
        assert_eq!(picks[1].0, peers[1]);
        assert_eq!(
            picks[0].1,
            addr(3).with(Protocol::P2p(peers[2])),
            "the address names the relay"
        );

        // One in use: one more is wanted, and it is not the one in use.
        relays.opened(ListenerId::next(), peers[2]);
        let picks = relays.picks(now, rtt);
        assert_eq!(picks.len(), 1);
        assert_eq!(picks[0].0, peers[1]);
    }

    #[test]
    fn a_relay_that_failed_is_left_out_for_a_while_then_tried_again() {
        let mut relays = AutoRelay::new(1);
        let peer = PeerId::random();
        relays.offer(peer, addr(1));
        let listener = ListenerId::next();
        relays.opened(listener, peer);
        let now = Instant::now();
        assert!(relays.picks(now, |_| None).is_empty(), "enough already");
        assert_eq!(relays.closed(listener, now), Some(peer));
        assert!(relays.picks(now, |_| None).is_empty(), "failed lately");
        let later = now + RETRY_FAILED_RELAY;
        assert_eq!(relays.picks(later, |_| None)[0].0, peer);
        // A listener that is not ours changes nothing.
        assert_eq!(relays.closed(ListenerId::next(), later), None);
    }

    #[test]
    fn a_withdrawn_peer_is_not_picked_and_draining_forgets_every_listener() {
        let mut relays = AutoRelay::new(3);
        let (kept, gone) = (PeerId::random(), PeerId::random());
        relays.offer(kept, addr(1));
        relays.offer(gone, addr(2));
        relays.withdraw(&gone);
        let picks = relays.picks(Instant::now(), |_| None);
        assert_eq!(picks.len(), 1);
        assert_eq!(picks[0].0, kept);
        let listener = ListenerId::next();
        relays.opened(listener, kept);
        assert_eq!(relays.drain(), vec![listener]);
        assert_eq!(relays.picks(Instant::now(), |_| None).len(), 1);
    }

    #[test]
    fn failures_remembered_are_bounded() {
        let mut relays = AutoRelay::new(1);
        let now = Instant::now();
        for i in 0..(MAX_REMEMBERED_FAILURES as u64 + 10) {
            let listener = ListenerId::next();
            relays.opened(listener, PeerId::random());
            relays.closed(listener, now + Duration::from_millis(i));
        }
        assert_eq!(relays.failed.len(), MAX_REMEMBERED_FAILURES);
    }

    #[test]
    fn peer_record_keys_differ_per_peer() {
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_ne!(peer_record_key(&a), peer_record_key(&b));
        assert_eq!(peer_record_key(&a), peer_record_key(&a));
    }
}
