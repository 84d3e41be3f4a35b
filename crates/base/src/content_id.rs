//! Content ids: the BLAKE3 hash of a piece of immutable bytes.
//!
//! Shares, stripe records and manifests are all named by the hash of their
//! bytes, so whoever holds an id can check any bytes offered for it. The text
//! form is 64 lowercase hex digits: long, but unambiguous, easy to grep, and
//! what `b3sum` prints for the same bytes.

use std::fmt;
use std::str::FromStr;

/// The BLAKE3 hash of some bytes; names them everywhere in kith.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; ContentId::LEN]);

/// Why a text could not be read as a [`ContentId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentIdError {
    /// The text is not 64 characters long.
    #[error("a content id is 64 hex digits, this one has {0} characters")]
    Length(usize),
    /// The text has a character that is not a lowercase or uppercase hex digit.
    #[error("a content id is made of hex digits (0-9, a-f) only")]
    NotHex,
}

impl ContentId {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// Hashes `bytes` and returns their id.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps a hash computed elsewhere (for example by a streaming hasher).
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// True if `bytes` hash to this id. Uses a constant-time comparison.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        blake3::hash(bytes) == blake3::Hash::from_bytes(self.0)
    }

    /// The first eight hex digits, for logs and compact pictures.
    pub fn short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0[..4])
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = ContentIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 2 * Self::LEN {
            return Err(ContentIdError::Length(text.chars().count()));
        }
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| ContentIdError::NotHex)?;
        let array: [u8; Self::LEN] = bytes.try_into().map_err(|_| ContentIdError::NotHex)?;
        Ok(Self(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_matches_b3sum() {
        // `printf abc | b3sum`
        assert_eq!(
            ContentId::of(b"abc").to_string(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    #[test]
    fn text_round_trip_and_errors() {
        let id = ContentId::of(b"hello");
        assert_eq!(id.to_string().parse::<ContentId>(), Ok(id));
        assert_eq!(id.to_string().to_uppercase().parse::<ContentId>(), Ok(id));
        assert_eq!("abc".parse::<ContentId>(), Err(ContentIdError::Length(3)));
        let bad = "g".repeat(64);
        assert_eq!(bad.parse::<ContentId>(), Err(ContentIdError::NotHex));
        assert!(id.verifies(b"hello"));
        assert!(!id.verifies(b"hellO"));
        assert_eq!(id.short().len(), 8);
    }
}
