//! Every way the codec can fail, as typed errors.
//!
//! Callers branch on these: the network layer drops and penalises a peer on
//! [`DecodeError::ShareCorrupt`] but keeps fetching on
//! [`DecodeError::NotEnoughShares`]; the command line prints the message. So
//! each variant carries what a program needs (which stripe, which share) and
//! its message is one sentence a person understands. Ids in messages are
//! shortened to eight hex digits, as in the logs.
//!
//! All enums are `#[non_exhaustive]`: new formats or checks will add variants
//! and must not break callers.

use std::fmt;

use kith_base::ContentId;

/// Why coding parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// `k` is zero.
    #[error("k must be at least 1: a stripe needs at least one share to be rebuilt")]
    KTooSmall,
    /// `k >= n`: no redundancy at all, or an impossible stripe.
    #[error("k must be smaller than n (got {k}/{n}): the n - k extra shares are the redundancy")]
    KNotBelowN {
        /// Requested k.
        k: u32,
        /// Requested n.
        n: u32,
    },
    /// `n > 255`.
    #[error("n can be at most 255 (got {n})")]
    NTooLarge {
        /// Requested n.
        n: u32,
    },
    /// The text is not `K/N`.
    #[error("write shares as K/N, for example 3/5 (any K of N shares rebuild the file)")]
    Syntax,
    /// The segment size is out of range.
    #[error(
        "the segment size must be between 4 KiB (4096 bytes) and 16 MiB (16777216 bytes), \
         got {got} bytes"
    )]
    SegmentSize {
        /// Requested segment size.
        got: u32,
    },
}

/// Why bytes are not a valid stripe record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The first four bytes are not a stripe record magic at all.
    #[error("it is not a stripe record (it does not start with \"KSR1\")")]
    NotARecord,
    /// A stripe record of a format version this build does not read.
    #[error("it is a stripe record of format version {0}, but this kith reads version 1 only")]
    UnknownVersion(char),
    /// The two reserved bytes are not zero.
    #[error("its reserved bytes are not zero (a newer format, or damage)")]
    Reserved,
    /// k and n are not a valid combination.
    #[error("its shares are invalid: {0}")]
    Shares(ParamsError),
    /// The byte length does not match n.
    #[error("it is {got} bytes long, but a record with these shares is {expected} bytes")]
    Length {
        /// Length implied by the header.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The ciphertext length cannot hold an AEAD tag or is over the limit.
    #[error("its ciphertext length {0} is impossible (at least 16 and at most 64 MiB + 16)")]
    CipherLen(u32),
    /// `cipher_len > k × share_len`.
    #[error("its ciphertext ({cipher_len} bytes) does not fit in k shares of {share_len} bytes")]
    CipherDoesNotFit {
        /// Declared ciphertext length.
        cipher_len: u32,
        /// Declared share length.
        share_len: u32,
    },
    /// `share_len` is not the one the format derives from `cipher_len` and `k`.
    #[error("its share length is {got}, but the format gives {expected} for this ciphertext")]
    ShareLen {
        /// The share length the format prescribes.
        expected: u32,
        /// The declared share length.
        got: u32,
    },
}

/// Why a manifest, or a name or media type for one, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The first four bytes are not a manifest magic at all.
    #[error("it is not a manifest (it does not start with \"KMF1\")")]
    NotAManifest,
    /// A manifest of a format version this build does not read.
    #[error("it is a manifest of format version {0}, but this kith reads version 1 only")]
    UnknownVersion(char),
    /// The two reserved bytes are not zero.
    #[error("its reserved bytes are not zero (a newer format, or damage)")]
    Reserved,
    /// Invalid k, n or segment size.
    #[error("its parameters are invalid: {0}")]
    Params(ParamsError),
    /// The stripe count does not match the file size.
    #[error("it lists {got} stripes, but a file of this size has {expected}")]
    StripeCount {
        /// Count implied by file size and segment size.
        expected: u64,
        /// Count written.
        got: u32,
    },
    /// The bytes end before a field does.
    #[error("it is cut off (it ends inside its {0})")]
    Truncated(&'static str),
    /// Bytes follow the last field.
    #[error("it has {0} unexpected bytes at its end")]
    TrailingBytes(usize),
    /// The name is not acceptable.
    #[error("its file name is not acceptable: {0}")]
    Name(NameError),
    /// The media type is not acceptable.
    #[error("its media type is not acceptable: {0}")]
    MediaType(NameError),
    /// The manifest would be larger than the format allows.
    #[error(
        "a file of {stripes} segments needs a manifest larger than 64 MiB; \
         use larger segments (at most {max_stripes} segments fit)"
    )]
    TooLarge {
        /// Number of segments (stripes) requested.
        stripes: u64,
        /// Largest number of stripes that fits.
        max_stripes: u64,
    },
}

/// What is wrong with a file name or media type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Longer than allowed.
    #[error("it is {len} bytes long, at most {max} are allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8.
    #[error("it is not valid UTF-8 text")]
    NotUtf8,
    /// Contains `/` or `\`: a path, not a name.
    #[error("it contains a path separator ('/' or '\\'); only a file name is stored")]
    Separator,
    /// Contains a NUL or another control character.
    #[error("it contains a control character (such as NUL or a line break)")]
    Control,
    /// `.` or `..` (or empty), which are not names of files.
    #[error("\".\", \"..\" and the empty text are not file names")]
    Dots,
}

/// Which part of a file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The manifest.
    Manifest,
    /// A data segment, by index from 0.
    Segment(u32),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest => f.write_str("the manifest"),
            Self::Segment(index) => write!(f, "segment {index}"),
        }
    }
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Reading the input failed.
    #[error("reading the file failed: {0}")]
    Io(#[from] std::io::Error),
    /// The file has too many segments for one manifest (64 MiB).
    #[error(
        "a file of {stripes} segments needs a manifest larger than 64 MiB; \
         use larger segments (at most {max_stripes} segments fit in one manifest)"
    )]
    ManifestTooLarge {
        /// Segments in the file (so far, if its size was not known up front).
        stripes: u64,
        /// Largest number of segments that fits.
        max_stripes: u64,
    },
    /// `finish` was called before the encoder yielded every stripe, or after
    /// it failed.
    #[error("the encoder was finished before all stripes were taken from it, or after an error")]
    Unfinished,
    /// The AEAD or erasure code refused its input. Cannot happen with checked
    /// parameters; reported instead of panicking.
    #[error("internal codec error: {0}")]
    Internal(String),
}

/// Why decoding, verifying or repairing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A provided share does not hash to its id in the stripe record.
    #[error(
        "share {index} of stripe {} does not match its id: it is corrupt or from another stripe",
        .stripe.short()
    )]
    ShareCorrupt {
        /// The stripe id.
        stripe: ContentId,
        /// The share's index in the stripe.
        index: u8,
    },
    /// Fewer than k valid shares.
    #[error(
        "stripe {} needs {need} valid shares to be rebuilt, but only {have} were available{}",
        .stripe.short(),
        if .corrupt.is_empty() { String::new() } else { format!(" ({} were corrupt)", .corrupt.len()) }
    )]
    NotEnoughShares {
        /// The stripe id.
        stripe: ContentId,
        /// Valid shares provided.
        have: u8,
        /// Shares needed (k).
        need: u8,
        /// Indices of provided shares that were corrupt and skipped (only the
        /// tolerant decoders skip; the strict ones fail on the first).
        corrupt: Vec<u8>,
    },
    /// The number of share slots is not n.
    #[error("stripe {} has {n} shares, but {got} share slots were given", .stripe.short())]
    ShareCount {
        /// The stripe id.
        stripe: ContentId,
        /// n from the record.
        n: u8,
        /// Slots given.
        got: usize,
    },
    /// A share index is not below n.
    #[error("share index {index} is out of range: the stripe has {n} shares")]
    ShareIndex {
        /// The index asked for.
        index: usize,
        /// n from the record.
        n: u8,
    },
    /// The stripe record is not the one the manifest or capability names.
    #[error(
        "the stripe record has id {}, but {} was expected: it belongs to another stripe or \
         file, or was altered",
        .got.short(), .expected.short()
    )]
    StripeRecordMismatch {
        /// The id the manifest or capability names.
        expected: ContentId,
        /// The id of the record given.
        got: ContentId,
    },
    /// The stripe record bytes are malformed.
    #[error("the stripe record is malformed: {0}")]
    RecordMalformed(#[from] RecordError),
    /// AEAD authentication failed.
    #[error("could not decrypt {what}: wrong key or tampered data")]
    DecryptFailed {
        /// Which part.
        what: Part,
    },
    /// The decrypted manifest is malformed.
    #[error("the manifest is malformed: {0}")]
    ManifestMalformed(#[from] ManifestError),
    /// A stripe's size disagrees with what the manifest says the segment is.
    #[error("{what} should hold {expected} bytes of ciphertext, but its stripe record says {got}")]
    SegmentLength {
        /// Which segment.
        what: Part,
        /// Ciphertext length implied by the manifest.
        expected: u64,
        /// Ciphertext length in the stripe record.
        got: u32,
    },
    /// A stripe's k/n disagree with the manifest's.
    #[error(
        "{what} is coded {record_k}/{record_n} but the manifest says {manifest_k}/{manifest_n}"
    )]
    StripeParams {
        /// Which segment.
        what: Part,
        /// k in the stripe record.
        record_k: u8,
        /// n in the stripe record.
        record_n: u8,
        /// k in the manifest.
        manifest_k: u8,
        /// n in the manifest.
        manifest_n: u8,
    },
    /// A segment index past the end of the file.
    #[error("segment {index} does not exist: the file has {count} segments")]
    SegmentIndex {
        /// The index asked for.
        index: u32,
        /// Segments in the file.
        count: usize,
    },
    /// Rebuilt shares disagree with the record: the uploader wrote shares
    /// that are not one consistent code.
    #[error(
        "rebuilt share {index} of stripe {} does not match its id: the stripe's shares are \
         not one consistent code",
        .stripe.short()
    )]
    Inconsistent {
        /// The stripe id.
        stripe: ContentId,
        /// The share that came out different.
        index: u8,
    },
    /// `decode_to_writer`'s source had nothing for a stripe.
    #[error("stripe {} ({what}) could not be fetched", .stripe.short())]
    Unavailable {
        /// The stripe id.
        stripe: ContentId,
        /// Which part.
        what: Part,
    },
    /// Writing the output failed.
    #[error("writing the file failed: {0}")]
    Io(#[from] std::io::Error),
    /// The erasure decoder refused its input. Cannot happen after the checks
    /// above; reported instead of panicking.
    #[error("internal codec error: {0}")]
    Internal(String),
}
