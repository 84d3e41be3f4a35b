//! Coding parameters: how many shares a stripe has (n), how many rebuild it
//! (k), and how large a segment is.
//!
//! These are the only knobs a user turns (`kith put --shares 4/8`), so their
//! checks live in one place and every error says what is allowed. `k` and `n`
//! are stored as `u8` because that is how the formats carry them: 255 shares
//! per stripe is already far more peers than a stripe should be spread over.

use std::fmt;
use std::str::FromStr;

use crate::error::ParamsError;

/// The default segment size: 1 MiB. Large enough that per-segment costs
/// (a 16-byte tag, a stripe record, n share ids, n network requests) are
/// small against the data; small enough that a batch of segments per core
/// fits comfortably in memory on a Raspberry Pi.
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 20;
/// The smallest segment size allowed: 4 KiB. Below that the per-stripe
/// overhead (a record of 16 + 32n bytes, n requests) dominates the data.
pub const MIN_SEGMENT_SIZE: u32 = 4 << 10;
/// The largest segment size allowed: 16 MiB. Above that a single stripe is a
/// memory problem for small nodes (a batch holds several of them at once).
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;
/// The default number of shares that rebuild a stripe.
pub const DEFAULT_K: u8 = 3;
/// The default number of shares in a stripe.
pub const DEFAULT_N: u8 = 5;

/// Checked coding parameters: `1 <= k < n <= 255`, segment size in
/// `MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    k: u8,
    n: u8,
    segment_size: u32,
}

impl Params {
    /// Checks and builds parameters. Takes `u32`s so that a too-large `n`
    /// from user input is reported as such instead of being truncated.
    pub fn new(k: u32, n: u32, segment_size: u32) -> Result<Self, ParamsError> {
        let (k, n) = check_shares(k, n)?;
        check_segment_size(segment_size)?;
        Ok(Self { k, n, segment_size })
    }

    /// The same shares with another segment size.
    pub fn with_segment_size(self, segment_size: u32) -> Result<Self, ParamsError> {
        check_segment_size(segment_size)?;
        Ok(Self {
            segment_size,
            ..self
        })
    }

    /// Shares needed to rebuild a stripe.
    pub const fn k(&self) -> u8 {
        self.k
    }

    /// Shares per stripe.
    pub const fn n(&self) -> u8 {
        self.n
    }

    /// Plaintext bytes per segment (the last segment of a file may be shorter).
    pub const fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// Number of stripes a file of `file_size` bytes is cut into: at least
    /// one, because even the empty file has one (empty) segment.
    pub fn stripe_count(&self, file_size: u64) -> u64 {
        stripe_count(file_size, self.segment_size)
    }
}

impl Default for Params {
    /// 3-of-5 with 1 MiB segments: survives the loss of any two holders at
    /// 1.67× storage, which is what most people want from "keep it safe".
    fn default() -> Self {
        Self {
            k: DEFAULT_K,
            n: DEFAULT_N,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// Shows the shares as `K/N`, the same text [`FromStr`] reads.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Params {
    type Err = ParamsError;

    /// Reads `K/N` (as in `--shares 4/8`), with the default segment size.
    /// Spaces around the numbers are allowed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (k, n) = text.split_once('/').ok_or(ParamsError::Syntax)?;
        let k = parse_count(k)?;
        let n = parse_count(n)?;
        Self::new(k, n, DEFAULT_SEGMENT_SIZE)
    }
}

/// A number in `K/N`. Digits only (no sign, no `0x`): anything else is a
/// syntax error. A number too large for `u32` is clamped so it is reported as
/// "too large" rather than as a syntax error.
fn parse_count(text: &str) -> Result<u32, ParamsError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamsError::Syntax);
    }
    Ok(text.parse::<u32>().unwrap_or(u32::MAX))
}

pub(crate) fn check_shares(k: u32, n: u32) -> Result<(u8, u8), ParamsError> {
    // Order matters for the message: the first rule broken is named.
    if k < 1 {
        return Err(ParamsError::KTooSmall);
    }
    if n > 255 {
        return Err(ParamsError::NTooLarge { n });
    }
    if k >= n {
        return Err(ParamsError::KNotBelowN { k, n });
    }
    // Both fit: n <= 255 and k < n.
    Ok((k as u8, n as u8))
}

pub(crate) fn check_segment_size(segment_size: u32) -> Result<(), ParamsError> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
        Ok(())
    } else {
        Err(ParamsError::SegmentSize { got: segment_size })
    }
}

pub(crate) fn stripe_count(file_size: u64, segment_size: u32) -> u64 {
    file_size.div_ceil(u64::from(segment_size)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shares_text() {
        let p: Params = "4/8".parse().unwrap();
        assert_eq!(
            (p.k(), p.n(), p.segment_size()),
            (4, 8, DEFAULT_SEGMENT_SIZE)
        );
        let p: Params = " 1 / 255 ".parse().unwrap();
        assert_eq!((p.k(), p.n()), (1, 255));
        assert_eq!(p.to_string(), "1/255");
    }

    #[test]
    fn share_text_errors_say_what_is_wrong() {
        let cases = [
            ("0/5", "k must be at least 1"),
            ("5/5", "k must be smaller than n"),
            ("6/5", "k must be smaller than n"),
            ("3/256", "n can be at most 255"),
            ("3/99999999999999", "n can be at most 255"),
            ("3", "write shares as K/N, for example 3/5"),
            ("3-5", "write shares as K/N, for example 3/5"),
            ("a/5", "write shares as K/N, for example 3/5"),
            ("-1/5", "write shares as K/N, for example 3/5"),
            ("3/5/7", "write shares as K/N, for example 3/5"),
            ("", "write shares as K/N, for example 3/5"),
        ];
        for (text, message) in cases {
            let error = text.parse::<Params>().unwrap_err();
            assert!(
                error.to_string().starts_with(message),
                "{text:?} gave {error}, wanted {message}"
            );
        }
    }

    #[test]
    fn segment_size_range() {
        assert!(Params::new(3, 5, MIN_SEGMENT_SIZE).is_ok());
        assert!(Params::new(3, 5, MAX_SEGMENT_SIZE).is_ok());
        let error = Params::new(3, 5, MIN_SEGMENT_SIZE - 1).unwrap_err();
        assert_eq!(error, ParamsError::SegmentSize { got: 4095 });
        assert!(error.to_string().contains("4 KiB"));
        assert!(Params::new(3, 5, MAX_SEGMENT_SIZE + 1).is_err());
        assert_eq!(Params::default(), Params::new(3, 5, 1 << 20).unwrap());
    }

    #[test]
    fn stripe_counts() {
        let p = Params::new(3, 5, 4096).unwrap();
        assert_eq!(p.stripe_count(0), 1);
        assert_eq!(p.stripe_count(1), 1);
        assert_eq!(p.stripe_count(4096), 1);
        assert_eq!(p.stripe_count(4097), 2);
        assert_eq!(p.stripe_count(u64::MAX), u64::MAX.div_ceil(4096));
    }
}
