//! Misbehaviour a test can switch on, to prove that honest nodes cope with a
//! peer that lies. `DESIGN.md`'s third principle ("a peer that sends bad
//! data is detected, dropped and penalised; the download goes on from
//! others") needs such a peer to be tested, and a kith node never sends bad
//! data on its own.
//!
//! Everything here is off unless a program that embeds the node switches it
//! on through `node.files().faults()` (only with the `testing` cargo
//! feature): no setting, flag or API route reaches it, so a `kith up`
//! cannot be made to lie.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The faults a node shows (a cheap, cloneable handle: clones share them).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    damage_served_shares: Arc<AtomicBool>,
    stall_share_requests: Arc<AtomicBool>,
    stall_stores: Arc<AtomicBool>,
}

impl Faults {
    /// From now on, serve every share with one bit flipped, whether it
    /// comes from the store or from memory, as a peer with bad memory or a
    /// malicious one would. The node's own store and downloads are not
    /// touched.
    pub fn damage_served_shares(&self, on: bool) {
        self.damage_served_shares.store(on, Ordering::Relaxed);
    }

    /// From now on, accept every request for a share and never answer it
    /// (the stream is dropped once the asker gives up and closes it), as a
    /// peer that made itself a swarming recipient and then hangs would. The
    /// node's own downloads are not touched.
    pub fn stall_share_requests(&self, on: bool) {
        self.stall_share_requests.store(on, Ordering::Relaxed);
    }

    /// From now on, take in every share sent to be stored and never answer
    /// or store it (the stream is dropped once the sender gives up and
    /// closes it), as a peer that hangs mid-put would.
    pub fn stall_stores(&self, on: bool) {
        self.stall_stores.store(on, Ordering::Relaxed);
    }

    /// Whether stores stall now.
    pub(crate) fn stalls_stores(&self) -> bool {
        self.stall_stores.load(Ordering::Relaxed)
    }

    /// Whether requests stall now.
    pub(crate) fn stalls(&self) -> bool {
        self.stall_share_requests.load(Ordering::Relaxed)
    }

    /// The bytes to send for `share`: itself, or a damaged copy.
    pub(crate) fn served<'a>(&self, share: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.damage_served_shares.load(Ordering::Relaxed) || share.is_empty() {
            return Cow::Borrowed(share);
        }
        let mut damaged = share.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x01;
        Cow::Owned(damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_served_as_they_are_until_damage_is_switched_on() {
        let faults = Faults::default();
        let share = b"some share bytes".to_vec();
        assert_eq!(faults.served(&share).as_ref(), &share[..]);
        let clone = faults.clone();
        clone.damage_served_shares(true);
        let served = faults.served(&share);
        assert_eq!(served.len(), share.len());
        assert_ne!(served.as_ref(), &share[..]);
        faults.damage_served_shares(false);
        assert_eq!(faults.served(&share).as_ref(), &share[..]);
    }
}
