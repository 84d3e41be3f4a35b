//! Bounds on the inbound streams a protocol serves: so many at once in all,
//! so many per peer. Every server of the node's own protocols admits each
//! stream here before spawning work for it, so no peer can make a node run
//! unbounded tasks; `serve_admitted` is the accept loop the small
//! protocols (names, feeds) share. A stream refused is counted in the
//! node's [`Refusals`] (its [`crate::lifecycle::Lifecycle`] carries them),
//! which `/v1/metrics` shows as `kith_refused_total{reason}` together with
//! the refusals of the limits per peer elsewhere (quota, mailbox).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kith_net::PeerId;

/// What a node refused a peer, by kind, for `kith_refused_total{reason}`
/// in `/v1/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A share past the peer's part of the quota (`quota_per_peer`).
    QuotaPerPeer,
    /// A letter past what the mailbox holds from one peer
    /// (`mailbox_letters_per_peer`, `mailbox_bytes_per_peer`).
    MailboxPerPeer,
    /// A stream past the protocol's streams per peer.
    StreamsPerPeer,
    /// A stream past the protocol's streams in all.
    Streams,
}

impl Refused {
    /// Every kind, in the order of [`Refusals::snapshot`].
    pub(crate) const ALL: [Self; 4] = [
        Self::QuotaPerPeer,
        Self::MailboxPerPeer,
        Self::StreamsPerPeer,
        Self::Streams,
    ];

    /// The `reason` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::QuotaPerPeer => "quota_per_peer",
            Self::MailboxPerPeer => "mailbox_per_peer",
            Self::StreamsPerPeer => "streams_per_peer",
            Self::Streams => "streams",
        }
    }
}

/// Refusals since the node started, by kind. Cheap to clone; clones count
/// together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals(Arc<[AtomicU64; Refused::ALL.len()]>);

impl Refusals {
    /// Counts one refusal of `kind`.
    pub(crate) fn count(&self, kind: Refused) {
        self.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every kind with its count.
    pub(crate) fn snapshot(&self) -> [(Refused, u64); Refused::ALL.len()] {
        Refused::ALL.map(|kind| (kind, self.0[kind as usize].load(Ordering::Relaxed)))
    }
}

/// Why [`StreamSlots::admit`] refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The peer has as many streams open as one peer may.
    PerPeer,
    /// The protocol serves as many streams as it will.
    Total,
}

/// Counts of open streams, per peer, with limits.
#[derive(Clone, Debug)]
pub(crate) struct StreamSlots {
    max_total: usize,
    max_per_peer: usize,
    open: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl StreamSlots {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Self {
        Self {
            max_total,
            max_per_peer,
            open: Arc::default(),
        }
    }

    /// Whether `peer` has a stream open here now (it is connected, and
    /// speaks the protocol).
    pub(crate) fn has_open(&self, peer: &PeerId) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(peer)
    }

    /// A slot for one more stream of `peer`, or which limit is reached.
    /// The slot is given back when dropped.
    pub(crate) fn admit(&self, peer: PeerId) -> Result<Slot, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.entry(peer).or_default();
        if total >= self.max_total || *mine >= self.max_per_peer {
            let full = if *mine >= self.max_per_peer {
                Full::PerPeer
            } else {
                Full::Total
            };
            if *mine == 0 {
                open.remove(&peer);
            }
            return Err(full);
        }
        *mine += 1;
        Ok(Slot {
            peer,
            open: self.open.clone(),
        })
    }

    /// [`StreamSlots::admit`], counting a refusal in `refusals`.
    pub(crate) fn admit_counted(&self, peer: PeerId, refusals: &Refusals) -> Option<Slot> {
        match self.admit(peer) {
            Ok(slot) => Some(slot),
            Err(full) => {
                refusals.count(match full {
                    Full::PerPeer => Refused::StreamsPerPeer,
                    Full::Total => Refused::Streams,
                });
                None
            }
        }
    }
}

/// One admitted stream; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    peer: PeerId,
    open: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Serves `protocol`: takes each inbound stream (until the node stops),
/// admits it through `slots` (a stream over either limit is dropped), and
/// runs `handle` on it as a request the stop waits for. `what` names the
/// protocol in logs. The loop every server of a small protocol runs.
pub(crate) async fn serve_admitted<F, Fut>(
    mut control: kith_net::Control,
    protocol: kith_net::StreamProtocol,
    what: &'static str,
    slots: StreamSlots,
    lifecycle: crate::lifecycle::Lifecycle,
    handle: F,
) where
    F: Fn(PeerId, kith_net::Stream, crate::lifecycle::Lifecycle) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut incoming = match control.accept(protocol) {
        Ok(incoming) => incoming,
        Err(error) => {
            tracing::warn!(%error, what, "cannot serve this protocol");
            return;
        }
    };
    while let Some((peer, stream)) = lifecycle.next_incoming(&mut incoming).await {
        let Some(slot) = slots.admit_counted(peer, lifecycle.refusals()) else {
            tracing::debug!(%peer, what, "too many streams; dropping one");
            continue;
        };
        let work = handle(peer, stream, lifecycle.clone());
        lifecycle.spawn_request(async move {
            work.await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use kith_base::Identity;

    use super::*;

    #[test]
    fn limits_per_peer_and_in_all_and_slots_come_back() {
        let slots = StreamSlots::new(3, 2);
        let (a, b) = (
            Identity::generate().peer_id(),
            Identity::generate().peer_id(),
        );
        let refusals = Refusals::default();
        let a1 = slots.admit(a).unwrap();
        let _a2 = slots.admit(a).unwrap();
        assert_eq!(
            slots.admit(a).err(),
            Some(Full::PerPeer),
            "a third for one peer"
        );
        let _b1 = slots.admit(b).unwrap();
        assert_eq!(slots.admit(b).err(), Some(Full::Total), "a fourth in all");
        assert!(slots.admit_counted(a, &refusals).is_none());
        assert!(slots.admit_counted(b, &refusals).is_none());
        assert!(slots.admit_counted(b, &refusals).is_none());
        drop(a1);
        assert!(slots.admit_counted(b, &refusals).is_some());
        let counts = refusals.snapshot();
        assert_eq!(
            counts[Refused::StreamsPerPeer as usize],
            (Refused::StreamsPerPeer, 1)
        );
        assert_eq!(counts[Refused::Streams as usize], (Refused::Streams, 2));
        refusals.clone().count(Refused::QuotaPerPeer);
        assert_eq!(refusals.snapshot()[0], (Refused::QuotaPerPeer, 1));
    }
}
