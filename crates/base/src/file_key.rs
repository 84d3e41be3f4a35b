//! The per-file secret key.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The random 256-bit secret that a file is encrypted under.
///
/// Every `put` draws a fresh one, so the same bytes put twice give unrelated
/// ciphertext. It leaves the uploader's node only inside a [`crate::Capability`]
/// (or sealed inside a message to a friend). `Debug` never prints it, and its
/// memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; FileKey::LEN]);

impl FileKey {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// Draws a fresh key from the operating system's random source.
    ///
    /// # Panics
    /// If the operating system has no random source, which kith cannot work
    /// without (a silent fallback would be far worse than stopping).
    #[allow(clippy::expect_used)]
    pub fn random() -> Self {
        let mut bytes = [0u8; Self::LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(bytes)
    }

    /// Wraps known key bytes (from a capability, or fixed ones in tests).
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_differ_and_debug_hides_them() {
        let a = FileKey::random();
        let b = FileKey::random();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "FileKey(<secret>)");
    }
}
