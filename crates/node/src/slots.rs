//! Bounds on the inbound streams a protocol serves: so many at once in all,
//! so many per peer. Every server of the node's own protocols admits each
//! stream here before spawning work for it, so no peer can make a node run
//! unbounded tasks; `serve_admitted` is the accept loop the small
//! protocols (names, feeds) share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kith_net::PeerId;

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

    /// A slot for one more stream of `peer`, or `None` if either limit is
    /// reached. The slot is given back when dropped.
    pub(crate) fn admit(&self, peer: PeerId) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.entry(peer).or_default();
        if total >= self.max_total || *mine >= self.max_per_peer {
            if *mine == 0 {
                open.remove(&peer);
            }
            return None;
        }
        *mine += 1;
        Some(Slot {
            peer,
            open: self.open.clone(),
        })
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
        let Some(slot) = slots.admit(peer) else {
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
        let a1 = slots.admit(a).unwrap();
        let _a2 = slots.admit(a).unwrap();
        assert!(slots.admit(a).is_none(), "a third for one peer");
        let _b1 = slots.admit(b).unwrap();
        assert!(slots.admit(b).is_none(), "a fourth in all");
        drop(a1);
        assert!(slots.admit(b).is_some());
    }
}
