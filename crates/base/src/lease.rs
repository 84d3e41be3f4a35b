//! Leases: an owner's signed word that the shares of a stripe should be kept
//! until a given time.
//!
//! A holder keeps a share for as long as a valid lease covers its stripe.
//! The lease travels with the share: the uploader sends it with every share
//! it puts, and a peer that repairs a stripe sends the same lease with the
//! shares it rebuilds, so the new holder learns the owner and the expiry
//! from the owner's own signature, not from whoever repaired. The owner
//! renews by signing the same lease with a later expiry.
//!
//! The lease also carries the stripe's **placement key** (the key whose
//! closest peers hold the stripe). Holders need it to find the stripe's
//! other holders when they check and repair it; it is public (anyone who
//! watches placement learns it), and signing it means a repairer cannot be
//! steered to place shares around some other key.
//!
//! ```text
//! lease     = version (1) ‖ stripe (32) ‖ placement (32) ‖ owner (32)
//!             ‖ expires_at u64 LE (Unix seconds) ‖ signature (64)
//! signature = Ed25519(owner, "kith lease v1" ‖ the 105 bytes before it)
//! ```
//!
//! The layout is the serde struct `Terms` written by [`crate::layout`]
//! (fixed-width little-endian integers, raw byte arrays) followed by the
//! signature; a test vector pins its bytes, which are signed and held by
//! other nodes.

use libp2p_identity::ed25519;
use serde::{Deserialize, Serialize};

use crate::{ContentId, Identity, layout};

/// Bytes of an encoded lease.
pub const LEASE_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"kith lease v1";
const SIGNED_LEN: usize = 1 + 32 + 32 + 32 + 8;
const SIGNATURE_LEN: usize = 64;

/// What the owner signs: the first [`SIGNED_LEN`] bytes of a lease, in
/// this order. The signature follows.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Terms {
    version: u8,
    stripe: [u8; 32],
    placement: [u8; 32],
    owner: [u8; 32],
    /// Unix seconds.
    #[serde(with = "crate::layout::le")]
    expires_at: u64,
}

/// A verified lease (one can only be made by signing or by
/// [`Lease::from_bytes`], which checks the signature).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    terms: Terms,
    bytes: [u8; LEASE_LEN],
}

/// Why bytes are not a valid lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Not [`LEASE_LEN`] bytes, or an unknown version.
    #[error("a lease is {LEASE_LEN} bytes of version {VERSION}; got {len} bytes")]
    Malformed {
        /// Bytes given.
        len: usize,
    },
    /// The owner field is not an Ed25519 key, or the signature does not
    /// verify under it.
    #[error("the lease's signature does not verify under its owner's key")]
    BadSignature,
}

impl Lease {
    /// Signs a lease on `stripe`, placed around `placement`, until
    /// `expires_at` (Unix seconds), by `owner`.
    pub fn sign(owner: &Identity, stripe: ContentId, placement: [u8; 32], expires_at: u64) -> Self {
        let terms = Terms {
            version: VERSION,
            stripe: *stripe.as_bytes(),
            placement,
            owner: owner.public_key(),
            expires_at,
        };
        let mut bytes = layout::to_vec(&terms);
        bytes.extend_from_slice(&owner.ed25519().sign(&signed_message(&terms)));
        let bytes = bytes.try_into().unwrap_or_else(|_| {
            unreachable!("terms and an Ed25519 signature are {LEASE_LEN} bytes")
        });
        Self { terms, bytes }
    }

    /// Reads and verifies a lease.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LeaseError> {
        let len = bytes.len();
        let malformed = LeaseError::Malformed { len };
        let bytes: [u8; LEASE_LEN] = bytes.try_into().map_err(|_| malformed.clone())?;
        // Cannot fail: the length was just checked.
        let (terms, signature) =
            layout::read::<Terms>(&bytes, "lease").map_err(|_| malformed.clone())?;
        if terms.version != VERSION {
            return Err(malformed);
        }
        let owner = ed25519::PublicKey::try_from_bytes(&terms.owner)
            .map_err(|_| LeaseError::BadSignature)?;
        if !owner.verify(&signed_message(&terms), signature) {
            return Err(LeaseError::BadSignature);
        }
        Ok(Self { terms, bytes })
    }

    /// The encoded, signed lease.
    pub fn as_bytes(&self) -> &[u8; LEASE_LEN] {
        &self.bytes
    }

    /// The stripe it covers.
    pub fn stripe(&self) -> ContentId {
        ContentId::from_bytes(self.terms.stripe)
    }

    /// The key whose closest peers hold the stripe.
    pub fn placement(&self) -> [u8; 32] {
        self.terms.placement
    }

    /// The owner's Ed25519 public key.
    pub fn owner(&self) -> [u8; 32] {
        self.terms.owner
    }

    /// When it ends, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.terms.expires_at
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("stripe", &self.stripe())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// What the signature covers: the context, then the terms' bytes.
fn signed_message(terms: &Terms) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + SIGNED_LEN);
    message.extend_from_slice(CONTEXT);
    layout::write(terms, &mut message);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of one lease, pinned: leases are signed and held by other
    /// nodes, so these bytes must never change.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let owner = Identity::from_secret([1; 32]);
        let stripe = ContentId::from_bytes([2; 32]);
        let lease = Lease::sign(&owner, stripe, [3; 32], 1_900_000_000);
        let expected = concat!(
            "01",                                                               // version
            "0202020202020202020202020202020202020202020202020202020202020202", // stripe
            "0303030303030303030303030303030303030303030303030303030303030303", // placement
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // owner
            "00b33f7100000000", // expires_at, u64 LE
            "845e95399179ba5f6e83301c3a73b6e013ed2e7a1d79b8480276d260f68da5e4", // signature …
            "97268e38f2ba29c525af6081015cc3685de209c3620aa68b10a9acbd582b600f", // … (64 bytes)
        );
        assert_eq!(crate::layout::to_hex(lease.as_bytes()), expected);
        let back = Lease::from_bytes(lease.as_bytes()).unwrap();
        assert_eq!(back, lease);
        assert_eq!(
            (
                back.stripe(),
                back.placement(),
                back.owner(),
                back.expires_at()
            ),
            (stripe, [3; 32], owner.public_key(), 1_900_000_000)
        );
    }

    #[test]
    fn a_signed_lease_round_trips_and_tampering_is_caught() {
        let owner = Identity::generate();
        let stripe = ContentId::of(b"stripe");
        let lease = Lease::sign(&owner, stripe, [7; 32], 1_900_000_000);
        let back = Lease::from_bytes(lease.as_bytes()).unwrap();
        assert_eq!(back, lease);
        assert_eq!(back.stripe(), stripe);
        assert_eq!(back.placement(), [7; 32]);
        assert_eq!(back.owner(), owner.public_key());
        assert_eq!(back.expires_at(), 1_900_000_000);

        // Every byte matters: a later expiry, another stripe or owner.
        for at in [0, 1, 40, 70, 100, 120] {
            let mut bytes = *lease.as_bytes();
            bytes[at] ^= 1;
            assert!(Lease::from_bytes(&bytes).is_err(), "byte {at} flipped");
        }
        assert_eq!(
            Lease::from_bytes(&lease.as_bytes()[1..]),
            Err(LeaseError::Malformed { len: LEASE_LEN - 1 })
        );
        // Someone else's signature over the same fields is not the owner's.
        let other = Lease::sign(&Identity::generate(), stripe, [7; 32], 1_900_000_000);
        let mut forged = *lease.as_bytes();
        forged[105..].copy_from_slice(&other.as_bytes()[105..]);
        assert_eq!(Lease::from_bytes(&forged), Err(LeaseError::BadSignature));
    }
}
