//! Pinned byte layouts, read and written with postcard.
//!
//! Every record and message kith hashes, signs, stores or sends has a byte
//! layout fixed once and for all. Each is described as a serde struct and
//! encoded by [postcard](https://docs.rs/postcard): integers are fixed-width
//! little-endian (`#[serde(with = "kith_base::layout::le")]`), byte arrays are
//! written raw (`#[serde(with = "kith_base::layout::BigArray")]` past 32
//! bytes), and a variable-length part is a fixed-width length field in a
//! struct followed by the bytes, taken with [`split`]. Postcard does every
//! integer decode and every "is there enough left" check; no module counts
//! offsets by hand.
//!
//! Why fixed-width fields and not postcard's own varints: these layouts are
//! hashed (a stripe record's hash is the stripe id, a manifest's is the
//! capability's), signed (leases, letters) and held by other nodes. A
//! different byte would be a different id, and every file stored before would
//! be lost. Fixed-width fields reproduce the layouts byte for byte, and a test
//! vector beside each format pins it. Postcard was picked over minicbor and
//! prost for this: it is serde-based (the derives document the layout), it
//! has fixed-width integers, it adds no tags or field numbers of its own, and
//! it decodes in place with no allocation for these structs.
//!
//! ```
//! use kith_base::layout;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Header {
//!     magic: [u8; 4],
//!     #[serde(with = "kith_base::layout::le")]
//!     name_len: u16,
//! }
//!
//! let mut bytes = layout::to_vec(&Header { magic: *b"KXM1", name_len: 3 });
//! bytes.extend_from_slice(b"cat");
//! assert_eq!(bytes, b"KXM1\x03\x00cat");
//!
//! let (header, rest) = layout::read::<Header>(&bytes, "header").unwrap();
//! let (name, rest) = layout::split(rest, usize::from(header.name_len), "name").unwrap();
//! assert_eq!((name, rest), (&b"cat"[..], &[][..]));
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use postcard::fixint::le;
pub use serde_big_array::BigArray;

/// Why bytes did not read as a layout.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The bytes ended before the named part did.
    #[error("{what} is cut short")]
    Short {
        /// The part being read.
        what: &'static str,
    },
    /// Bytes were left after the named part, which must end the input.
    #[error("{what} is followed by {extra} byte(s) that belong to nothing")]
    Trailing {
        /// The part that should have been last.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// The bytes were there but not a valid value (a bool that is not 0 or
    /// 1, text that is not UTF-8, …).
    #[error("{what} is malformed: {source}")]
    Malformed {
        /// The part being read.
        what: &'static str,
        /// What postcard found.
        source: postcard::Error,
    },
}

impl LayoutError {
    /// The name of the part that failed.
    pub fn part(&self) -> &'static str {
        match self {
            Self::Short { what } | Self::Trailing { what, .. } | Self::Malformed { what, .. } => {
                what
            }
        }
    }
}

/// Reads one `T` from the front of `bytes`; returns it and what follows.
pub fn read<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(T, &'a [u8]), LayoutError> {
    postcard::take_from_bytes(bytes).map_err(|source| match source {
        postcard::Error::DeserializeUnexpectedEnd => LayoutError::Short { what },
        source => LayoutError::Malformed { what, source },
    })
}

/// Reads one `T` that must be all of `bytes`.
pub fn read_all<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, LayoutError> {
    let (value, rest) = read(bytes, what)?;
    if !rest.is_empty() {
        return Err(LayoutError::Trailing {
            what,
            extra: rest.len(),
        });
    }
    Ok(value)
}

/// Takes the first `len` bytes: a variable-length part whose length an
/// earlier field gave.
pub fn split<'a>(
    bytes: &'a [u8],
    len: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), LayoutError> {
    bytes
        .split_at_checked(len)
        .ok_or(LayoutError::Short { what })
}

/// Appends the layout of `value` to `out`.
#[allow(clippy::expect_used)]
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serializing into a Vec fails only for types postcard cannot express
    // (maps of unknown length, for one), which no layout here uses: a failure
    // is a bug in the layout's definition, caught by its tests.
    let written = std::mem::take(out);
    *out = postcard::to_extend(value, written).expect("a layout serializes into a Vec");
}

/// The layout of a fixed-size `value` as an array of its exact size, with
/// no allocation (frame headers go through this on every frame).
///
/// `N` must be the layout's length; another is a bug in the caller's
/// constant, caught by its tests (this panics).
#[allow(clippy::expect_used)]
pub fn to_array<T: Serialize + ?Sized, const N: usize>(value: &T) -> [u8; N] {
    let mut out = [0u8; N];
    let written = postcard::to_slice(value, &mut out)
        .expect("the layout fits its array")
        .len();
    assert_eq!(written, N, "a layout of {written} bytes in an array of {N}");
    out
}

/// The layout of `value` as a new vector.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// Bytes as lowercase hex: how the test vectors beside each layout write
/// the bytes they pin.
pub fn to_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        tag: u8,
        #[serde(with = "le")]
        small: u16,
        #[serde(with = "le")]
        large: u64,
        #[serde(with = "BigArray")]
        signature: [u8; 64],
    }

    fn sample() -> Sample {
        Sample {
            tag: 7,
            small: 0x0102,
            large: 0x0807_0605_0403_0201,
            signature: [9; 64],
        }
    }

    #[test]
    fn fixed_width_fields_are_little_endian_and_arrays_raw() {
        let bytes = to_vec(&sample());
        let mut expected = vec![7, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8];
        expected.extend_from_slice(&[9; 64]);
        assert_eq!(bytes, expected);
        assert_eq!(read_all::<Sample>(&bytes, "sample").unwrap(), sample());
    }

    #[test]
    fn to_array_writes_the_same_bytes_as_to_vec() {
        let array: [u8; 75] = to_array(&sample());
        assert_eq!(array.to_vec(), to_vec(&sample()));
    }

    #[test]
    fn every_cut_is_short_and_names_the_part() {
        let bytes = to_vec(&sample());
        for len in 0..bytes.len() {
            let err = read::<Sample>(&bytes[..len], "sample").unwrap_err();
            assert!(
                matches!(err, LayoutError::Short { what: "sample" }),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused_by_read_all_and_returned_by_read() {
        let mut bytes = to_vec(&sample());
        bytes.push(0);
        let err = read_all::<Sample>(&bytes, "sample").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample is followed by 1 byte(s) that belong to nothing"
        );
        let (_, rest) = read::<Sample>(&bytes, "sample").unwrap();
        assert_eq!(rest, [0]);
    }

    #[test]
    fn an_invalid_value_is_malformed() {
        let err = read::<bool>(&[2], "flag").unwrap_err();
        assert!(
            matches!(err, LayoutError::Malformed { what: "flag", .. }),
            "{err}"
        );
        assert_eq!(err.part(), "flag");
    }

    #[test]
    fn split_takes_exactly_len_or_says_short() {
        assert_eq!(split(b"abcd", 2, "x").unwrap(), (&b"ab"[..], &b"cd"[..]));
        assert_eq!(split(b"abcd", 4, "x").unwrap(), (&b"abcd"[..], &b""[..]));
        assert!(matches!(
            split(b"abc", 4, "x"),
            Err(LayoutError::Short { what: "x" })
        ));
    }
}
