//! Bytes held per owner: how much of the store each peer's leases take,
//! so that a node can refuse a peer past its share of the quota
//! (`quota_per_peer`) while others still store.
//!
//! The counts live in memory only. They are rebuilt from the share rows
//! (each row names its owner and length) when the store opens, and kept in
//! step by every write that adds, removes or re-owns a share: a put, a
//! removal (a drop, an expiry, damage), and a lease given to a cached copy.
//! A cached copy (owner all zeros) counts for nobody.
//!
//! A put reserves its bytes for its owner before it writes, under the same
//! lock as the check, so that concurrent puts of one peer cannot together
//! pass its cap; the reservation is given back if the put does not commit.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Result, StoreError};

/// The owner of a cached copy: nobody.
pub(crate) const NO_OWNER: [u8; 32] = [0; 32];

/// Bytes held (and reserved) per owner.
#[derive(Debug, Default)]
pub(crate) struct OwnerBytes(Mutex<HashMap<[u8; 32], u64>>);

impl OwnerBytes {
    /// Counts as rebuilt from the rows.
    pub(crate) fn new(counts: HashMap<[u8; 32], u64>) -> Self {
        Self(Mutex::new(counts))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes `owner`'s leases hold, reservations of puts under way included.
    pub(crate) fn get(&self, owner: &[u8; 32]) -> u64 {
        self.lock().get(owner).copied().unwrap_or(0)
    }

    /// Every owner's bytes, largest first.
    pub(crate) fn all(&self) -> Vec<([u8; 32], u64)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(owner, bytes)| (*owner, *bytes))
            .collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all
    }

    /// `len` more bytes for `owner`.
    pub(crate) fn add(&self, owner: [u8; 32], len: u64) {
        if owner != NO_OWNER && len > 0 {
            *self.lock().entry(owner).or_default() += len;
        }
    }

    /// `len` fewer bytes for `owner`.
    pub(crate) fn sub(&self, owner: [u8; 32], len: u64) {
        if owner == NO_OWNER {
            return;
        }
        let mut counts = self.lock();
        if let Some(bytes) = counts.get_mut(&owner) {
            *bytes = bytes.saturating_sub(len);
            if *bytes == 0 {
                counts.remove(&owner);
            }
        }
    }

    /// Reserves `len` bytes for `owner`, or refuses with
    /// [`StoreError::PeerShareExceeded`] if that would take it past `cap`.
    pub(crate) fn reserve(
        &self,
        owner: [u8; 32],
        len: u64,
        cap: u64,
    ) -> Result<OwnerReservation<'_>> {
        if owner != NO_OWNER {
            let mut counts = self.lock();
            let held = counts.get(&owner).copied().unwrap_or(0);
            if held.saturating_add(len) > cap {
                return Err(StoreError::PeerShareExceeded {
                    held,
                    needed: len,
                    cap,
                });
            }
            *counts.entry(owner).or_default() += len;
        }
        Ok(OwnerReservation {
            owners: self,
            owner,
            len,
        })
    }
}

/// Bytes reserved for an owner by a put under way; given back when dropped
/// unless [`OwnerReservation::keep`] is called.
pub(crate) struct OwnerReservation<'a> {
    owners: &'a OwnerBytes,
    owner: [u8; 32],
    len: u64,
}

impl OwnerReservation<'_> {
    /// The put committed: the bytes stay counted.
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for OwnerReservation<'_> {
    fn drop(&mut self) {
        self.owners.sub(self.owner, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_capped_kept_or_given_back() {
        let owners = OwnerBytes::default();
        let (a, b) = ([1; 32], [2; 32]);
        owners.reserve(a, 60, 100).unwrap().keep();
        let pending = owners.reserve(a, 40, 100).unwrap();
        assert!(matches!(
            owners.reserve(a, 1, 100),
            Err(StoreError::PeerShareExceeded {
                held: 100,
                needed: 1,
                cap: 100
            })
        ));
        // Another owner is not held back by the first.
        owners.reserve(b, 100, 100).unwrap().keep();
        drop(pending);
        assert_eq!(owners.get(&a), 60);
        owners.sub(a, 60);
        assert_eq!(owners.get(&a), 0);
        assert_eq!(owners.all(), vec![(b, 100)]);
        // Nobody's copies are never counted nor capped.
        owners.reserve(NO_OWNER, 1 << 40, 0).unwrap().keep();
        owners.add(NO_OWNER, 5);
        assert_eq!(owners.get(&NO_OWNER), 0);
    }
}
