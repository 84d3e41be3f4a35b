//! What can go wrong in the network layer, in words an operator can act on.
//!
//! One enum covers the whole crate rather than one per operation: most
//! operations share most failure modes (the event loop stopped, a timeout,
//! no known peers), and the node layer handles them alike. Each variant
//! carries the address or peer it is about, so a message printed as-is tells
//! the user what to fix.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

/// An error from the network layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A multiaddr given as text could not be parsed.
    #[error(
        "{text:?} is not a valid network address ({reason}); \
         expected a multiaddr such as /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW…"
    )]
    InvalidAddr {
        /// The text as given.
        text: String,
        /// Why the parser rejected it.
        reason: String,
    },

    /// An address that must name a peer lacks its `/p2p/<peer id>` part.
    #[error(
        "the address {addr} does not say which peer to expect: \
         append /p2p/<peer id> (`kith id` on that node prints it)"
    )]
    MissingPeerId {
        /// The address as given.
        addr: Multiaddr,
    },

    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address we tried to listen on.
        addr: Multiaddr,
        /// Why the operating system or the transport refused it.
        reason: String,
    },

    /// The libp2p stack could not be assembled (a bug or an unusable
    /// system configuration, e.g. mDNS sockets cannot be opened).
    #[error("cannot start the network: {0}")]
    Setup(String),

    /// Dialing an address failed.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The address dialed.
        addr: Multiaddr,
        /// The transport's explanation.
        reason: String,
    },

    /// An operation did not finish in time.
    #[error("{what} timed out after {} s", after.as_secs())]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// How long we waited.
        after: Duration,
    },

    /// A Kademlia lookup ended without reaching the peer.
    #[error(
        "peer {peer} was not found: {requests} peers were asked and none knew it \
         (it may be offline)"
    )]
    PeerNotFound {
        /// The peer looked for.
        peer: PeerId,
        /// How many requests the lookup sent.
        requests: u32,
    },

    /// The routing table is empty, so no lookup can start.
    #[error(
        "this node knows no other peers yet: give a bootstrap address \
         (--bootstrap /ip4/…/p2p/…), connect to a peer, or enable mDNS on a LAN"
    )]
    NoKnownPeers,

    /// A provider announcement reached no peer: the lookup for the peers
    /// closest to the key got no answer.
    #[error(
        "the provider announcement reached no peer: none of the known peers answered \
         (the key stays recorded here and is announced again later)"
    )]
    NotAnnounced,

    /// The local provider store holds its maximum of keys (its own and
    /// those other peers announced to it), so this node cannot provide
    /// one more.
    #[error("the provider store is full ({0} keys): stop providing some keys first")]
    ProviderStoreFull(usize),

    /// The operation needs an open connection to the peer.
    #[error("not connected to peer {0}")]
    NotConnected(PeerId),

    /// A ping failed.
    #[error("ping to {peer} failed: {reason}")]
    Ping {
        /// The peer pinged.
        peer: PeerId,
        /// The failure as libp2p reports it.
        reason: String,
    },

    /// Listening through a relay failed.
    #[error("cannot listen through the relay {relay}: {reason}")]
    Relay {
        /// The relay's address.
        relay: Multiaddr,
        /// Why the reservation failed.
        reason: String,
    },

    /// Too many lookups are already running; try again shortly.
    #[error("the network layer is busy ({0} lookups in flight); try again shortly")]
    Busy(usize),

    /// The event loop has stopped (after [`Client::shutdown`](crate::Client::shutdown),
    /// or because every client was dropped).
    #[error("the network has been shut down")]
    Stopped,
}

/// Turns a low-level error into one sentence, preferring the operating
/// system's words when the transport merely wraps them.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(io) = find_io_error(error) {
        if io.kind() == std::io::ErrorKind::AddrInUse {
            return "address already in use (is another node running on this port?)".to_owned();
        }
        if io.kind() == std::io::ErrorKind::AddrNotAvailable {
            return "address not available on this machine".to_owned();
        }
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            return "connection refused (no node listens there, or a firewall refuses)".to_owned();
        }
        if io.kind() == std::io::ErrorKind::PermissionDenied {
            return "permission denied (ports below 1024 need privileges)".to_owned();
        }
    }
    // Wrapping layers often repeat their inner error's text, or print
    // nothing; keep each distinct, non-empty text once.
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    for _ in 0..16 {
        let Some(err) = current else { break };
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// The innermost `io::Error` that says more than "other". Transports box
/// their errors into `io::Error::other(..)` layer by layer, so both
/// `source()` and `io::Error::get_ref()` are followed.
fn find_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    let mut found = None;
    // Bounded walk: error chains are short, but never trust one to end.
    for _ in 0..16 {
        let Some(err) = current else { break };
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() != std::io::ErrorKind::Other {
                found = Some(io);
            }
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = err.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_in_use_is_found_under_wrapping() {
        let inner = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let wrapped = std::io::Error::other(std::io::Error::other(inner));
        assert!(describe(&wrapped).contains("address already in use"));
    }

    #[test]
    fn messages_name_the_address() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let err = NetError::Listen {
            addr,
            reason: "address already in use".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot listen on /ip4/127.0.0.1/tcp/4001: address already in use"
        );
    }
}
