//! Stripes: one encrypted segment (or the encrypted manifest) as n shares,
//! and the public stripe record that names them.
//!
//! The record is deliberately not encrypted. A storage node holds no key, yet
//! must check every share it accepts and rebuild lost ones; the record gives it
//! k, n, the sizes and every share's id, and the stripe id (the record's hash)
//! ties the record to the manifest or capability that names it. What the
//! record reveals — sizes and k/n — a storage node sees anyway.
//!
//! Layout (all integers little-endian; `docs/storage-format.md` is the
//! reference):
//!
//! ```text
//! "KSR1" | k:u8 | n:u8 | 0:u16 | share_len:u32 | cipher_len:u32 | n × share id:32
//! ```
//!
//! The 16-byte header is defined by the serde struct `RecordHeader`, written
//! and read by [`kith_base::layout`]; the share ids follow it raw. A test
//! vector pins the bytes and the stripe id they hash to.
//!
//! The parser accepts exactly one encoding per record: reserved bytes must be
//! zero and `share_len` must be the one the formula gives, so two different
//! byte strings never describe the same stripe and the stripe id is canonical.

use std::fmt;
use std::sync::{Arc, Mutex};

use kith_base::{ContentId, layout};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::crypto::{FileCipher, TAG_LEN};
use crate::erasure;
use crate::error::{DecodeError, EncodeError, Part, RecordError};
use crate::params::check_shares;

/// Magic and format version of a stripe record.
pub const RECORD_MAGIC: &[u8; 4] = b"KSR1";
/// Bytes before the share ids.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest ciphertext a stripe may carry: the encrypted manifest's cap. Data
/// segments are far smaller (16 MiB + 16 at most); a storage node uses this to
/// refuse absurd records before allocating for them.
pub const MAX_CIPHER_LEN: u32 = 64 << 20;

/// The length of each share for a ciphertext of `cipher_len` bytes split in
/// `k`: `ceil(cipher_len / k)`, rounded up to an even number because
/// `reed-solomon-simd` 3.x works on 16-bit symbols. `cipher_len` is at most
/// [`MAX_CIPHER_LEN`], so this never overflows.
pub const fn share_len_for(cipher_len: u32, k: u8) -> u32 {
    let len = cipher_len.div_ceil(k as u32);
    len + (len & 1)
}

/// The fixed part of a record, [`RECORD_HEADER_LEN`] bytes; the n share
/// ids follow it.
#[derive(Serialize, Deserialize)]
struct RecordHeader {
    magic: [u8; 4],
    k: u8,
    n: u8,
    reserved: [u8; 2],
    #[serde(with = "kith_base::layout::le")]
    share_len: u32,
    #[serde(with = "kith_base::layout::le")]
    cipher_len: u32,
}

/// The public description of one stripe: sizes, k/n and the id of every
/// share. Its hash is the stripe id.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeRecord {
    k: u8,
    n: u8,
    share_len: u32,
    cipher_len: u32,
    share_ids: Vec<ContentId>,
}

impl StripeRecord {
    /// Parses and checks record bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let (header, ids) =
            layout::read::<RecordHeader>(bytes, "header").map_err(|_| too_short(bytes))?;
        let RecordHeader {
            magic,
            k,
            n,
            reserved,
            share_len,
            cipher_len,
        } = header;
        check_magic(magic)?;
        if reserved != [0, 0] {
            return Err(RecordError::Reserved);
        }
        check_shares(u32::from(k), u32::from(n)).map_err(RecordError::Shares)?;
        let ids_len = usize::from(n) * ContentId::LEN;
        if ids.len() != ids_len {
            return Err(RecordError::Length {
                expected: RECORD_HEADER_LEN + ids_len,
                got: bytes.len(),
            });
        }
        check_sizes(k, share_len, cipher_len)?;
        // The length was checked: the ids are whole, with nothing after.
        let (ids, _) = ids.as_chunks::<{ ContentId::LEN }>();
        Ok(Self {
            k,
            n,
            share_len,
            cipher_len,
            share_ids: ids.iter().copied().map(ContentId::from_bytes).collect(),
        })
    }

    /// The record bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        layout::write(&self.header(), &mut out);
        for id in &self.share_ids {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    fn header(&self) -> RecordHeader {
        RecordHeader {
            magic: *RECORD_MAGIC,
            k: self.k,
            n: self.n,
            reserved: [0, 0],
            share_len: self.share_len,
            cipher_len: self.cipher_len,
        }
    }

    /// Length of the record bytes: `16 + 32 n`.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.share_ids.len() * ContentId::LEN
    }

    /// The stripe id: BLAKE3 of the record bytes.
    pub fn id(&self) -> ContentId {
        ContentId::of(&self.to_bytes())
    }

    /// Shares needed to rebuild the stripe.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// Shares in the stripe.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// Bytes per share.
    pub fn share_len(&self) -> u32 {
        self.share_len
    }

    /// Bytes of ciphertext (including the 16-byte tag) in the stripe.
    pub fn cipher_len(&self) -> u32 {
        self.cipher_len
    }

    /// The id of every share, by index.
    pub fn share_ids(&self) -> &[ContentId] {
        &self.share_ids
    }

    /// Checks that `bytes` are share `index` of this stripe. A storage node
    /// calls this on every share it receives or serves.
    pub fn verify_share(&self, index: usize, bytes: &[u8]) -> Result<(), DecodeError> {
        let Some(id) = self.share_ids.get(index) else {
            return Err(DecodeError::ShareIndex { index, n: self.n });
        };
        if self.share_len as usize == bytes.len() && id.verifies(bytes) {
            Ok(())
        } else {
            Err(DecodeError::ShareCorrupt {
                stripe: self.id(),
                // `index < n <= 255` was checked above.
                index: index as u8,
            })
        }
    }
}

impl fmt::Debug for StripeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StripeRecord({} {}/{}, {} × {} bytes for {} bytes of ciphertext)",
            self.id().short(),
            self.k,
            self.n,
            self.n,
            self.share_len,
            self.cipher_len
        )
    }
}

/// The error for bytes too short to hold a header: too short if they could
/// be the start of a record, else not a record at all.
fn too_short(bytes: &[u8]) -> RecordError {
    if bytes.starts_with(&RECORD_MAGIC[..3]) || bytes.len() < 4 {
        RecordError::Length {
            expected: RECORD_HEADER_LEN,
            got: bytes.len(),
        }
    } else {
        RecordError::NotARecord
    }
}

fn check_magic(magic: [u8; 4]) -> Result<(), RecordError> {
    let [a, b, c, version] = magic;
    if magic == *RECORD_MAGIC {
        Ok(())
    } else if [a, b, c] == RECORD_MAGIC[..3] {
        Err(RecordError::UnknownVersion(char::from(version)))
    } else {
        Err(RecordError::NotARecord)
    }
}

fn check_sizes(k: u8, share_len: u32, cipher_len: u32) -> Result<(), RecordError> {
    if !(TAG_LEN as u32..=MAX_CIPHER_LEN).contains(&cipher_len) {
        return Err(RecordError::CipherLen(cipher_len));
    }
    if u64::from(cipher_len) > u64::from(k) * u64::from(share_len) {
        return Err(RecordError::CipherDoesNotFit {
            cipher_len,
            share_len,
        });
    }
    let expected = share_len_for(cipher_len, k);
    if share_len != expected {
        return Err(RecordError::ShareLen {
            expected,
            got: share_len,
        });
    }
    Ok(())
}

/// One encoded stripe: its record, its id and its n shares, in one
/// contiguous allocation of `n × share_len` bytes.
///
/// Share `i` is bytes `i × share_len .. (i + 1) × share_len`. One buffer
/// instead of n `Vec`s: the segment is read, encrypted, padded and coded in
/// place, with no copy between stages.
///
/// A stripe made by an [`Encoder`](crate::Encoder) gives its buffer back to
/// that encoder when dropped, to be reused for a later segment: the encoder
/// then allocates (and page-faults) its buffers once per file, not once per
/// segment. [`EncodedStripe::into_parts`] takes the buffer out for good;
/// a clone is an ordinary allocation.
#[derive(Clone)]
pub struct EncodedStripe {
    record: StripeRecord,
    id: ContentId,
    shares: PooledBytes,
}

/// Spare stripe buffers shared by an encoder and the stripes it made.
/// Bounded: buffers given back beyond `max` are freed.
#[derive(Debug)]
pub(crate) struct BufferPool {
    spares: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl BufferPool {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            spares: Mutex::new(Vec::with_capacity(max)),
            max,
        }
    }

    /// A spare buffer (empty, with capacity), or a new empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_default()
    }

    /// Keeps `buffer` for reuse if the pool has room.
    pub(crate) fn put(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        buffer.clear();
        let mut spares = self.lock();
        if spares.len() < self.max {
            spares.push(buffer);
        }
    }

    #[cfg(test)]
    pub(crate) fn lock_len_is_zero(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding the lock leaves a valid Vec behind.
        self.spares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stripe's bytes, returned to their pool on drop.
struct PooledBytes {
    bytes: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl Clone for PooledBytes {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            pool: None,
        }
    }
}

impl Drop for PooledBytes {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.put(std::mem::take(&mut self.bytes));
        }
    }
}

impl EncodedStripe {
    /// The stripe record.
    pub fn record(&self) -> &StripeRecord {
        &self.record
    }

    /// The stripe id (hash of the record bytes).
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// Bytes per share.
    pub fn share_len(&self) -> usize {
        self.record.share_len as usize
    }

    /// Share `index`.
    ///
    /// # Panics
    /// If `index >= n`.
    pub fn share(&self, index: usize) -> &[u8] {
        let len = self.share_len();
        &self.shares.bytes[index * len..(index + 1) * len]
    }

    /// The n shares in index order.
    pub fn shares(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.shares.bytes.chunks_exact(self.share_len())
    }

    /// Gives up the record and the contiguous `n × share_len` share bytes.
    pub fn into_parts(self) -> (StripeRecord, Vec<u8>) {
        let Self {
            record, mut shares, ..
        } = self;
        (record, std::mem::take(&mut shares.bytes))
    }

    /// Makes the stripe give its buffer back to `pool` when dropped.
    pub(crate) fn with_pool(mut self, pool: Arc<BufferPool>) -> Self {
        self.shares.pool = Some(pool);
        self
    }
}

impl fmt::Debug for EncodedStripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedStripe")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Bytes a stripe buffer needs for a plaintext of up to `plain_len` bytes:
/// the capacity to allocate up front so that no stage reallocates.
pub(crate) fn buffer_len(plain_len: usize, k: u8, n: u8) -> usize {
    let cipher_len = (plain_len + TAG_LEN) as u32;
    usize::from(n) * share_len_for(cipher_len, k) as usize
}

/// Turns a buffer holding exactly the plaintext into an encoded stripe:
/// encrypts in place, appends the tag, zero-pads to k shares, appends the
/// recovery shares and hashes all n. Give the buffer [`buffer_len`] of
/// capacity and nothing is reallocated or copied between stages.
pub(crate) fn seal_stripe(
    cipher: &FileCipher,
    part: Part,
    mut buffer: Vec<u8>,
    k: u8,
    n: u8,
) -> Result<EncodedStripe, EncodeError> {
    let plain_len = buffer.len();
    let cipher_len = plain_len + TAG_LEN;
    if cipher_len > MAX_CIPHER_LEN as usize {
        return Err(EncodeError::Internal(format!(
            "{part} is {plain_len} bytes, more than a stripe can hold"
        )));
    }
    let share_len = share_len_for(cipher_len as u32, k);
    let (k_len, n_len) = (usize::from(k), usize::from(n));
    let share_bytes = share_len as usize;
    buffer.reserve_exact(n_len * share_bytes - plain_len);
    let tag = cipher
        .seal(part, &mut buffer)
        .map_err(|_| EncodeError::Internal(format!("the AEAD refused to seal {part}")))?;
    buffer.extend_from_slice(&tag);
    buffer.resize(k_len * share_bytes, 0);
    erasure::encode(&mut buffer, k_len, n_len, share_bytes)
        .map_err(|error| EncodeError::Internal(format!("erasure coding {part}: {error}")))?;
    // Hash the shares as parallel tasks: when every core is busy with other
    // segments they simply run here, one after the other; when cores are
    // idle (the last segments of a file, a small file) they help.
    let share_ids = buffer
        .par_chunks_exact(share_bytes)
        .map(ContentId::of)
        .collect();
    let record = StripeRecord {
        k,
        n,
        share_len,
        cipher_len: cipher_len as u32,
        share_ids,
    };
    let id = record.id();
    Ok(EncodedStripe {
        record,
        id,
        shares: PooledBytes {
            bytes: buffer,
            pool: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use kith_base::layout::to_hex as hex;

    /// The bytes of one record and its id, pinned: the record's hash is the
    /// stripe id other nodes store shares under, so these bytes must never
    /// change.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let record = StripeRecord {
            k: 2,
            n: 3,
            share_len: 50,
            cipher_len: 100,
            share_ids: [0x11, 0x22, 0x33]
                .map(|byte| ContentId::from_bytes([byte; 32]))
                .to_vec(),
        };
        let expected = concat!(
            "4b535231",                                                         // "KSR1"
            "02",                                                               // k
            "03",                                                               // n
            "0000",                                                             // reserved
            "32000000",                                                         // share_len, u32 LE
            "64000000", // cipher_len, u32 LE
            "1111111111111111111111111111111111111111111111111111111111111111", // share 0
            "2222222222222222222222222222222222222222222222222222222222222222", // share 1
            "3333333333333333333333333333333333333333333333333333333333333333", // share 2
        );
        let bytes = record.to_bytes();
        assert_eq!(hex(&bytes), expected);
        assert_eq!(
            record.id().to_string(),
            "bfe993e5740e545c3cd701141e5be228c31a28325e331b661cb4ae1a9e652474"
        );
        assert_eq!(StripeRecord::from_bytes(&bytes), Ok(record));
    }

    #[test]
    fn share_len_formula() {
        assert_eq!(share_len_for(16, 1), 16);
        assert_eq!(share_len_for(16, 3), 6);
        assert_eq!(share_len_for(17, 1), 18);
        assert_eq!(share_len_for(4096 + 16, 3), 1372);
        assert_eq!(share_len_for(MAX_CIPHER_LEN, 1), MAX_CIPHER_LEN);
        assert_eq!(share_len_for(MAX_CIPHER_LEN - 1, 1), MAX_CIPHER_LEN);
    }

    fn sample() -> StripeRecord {
        StripeRecord {
            k: 2,
            n: 3,
            share_len: share_len_for(100, 2),
            cipher_len: 100,
            share_ids: vec![
                ContentId::of(b"a"),
                ContentId::of(b"b"),
                ContentId::of(b"c"),
            ],
        }
    }

    #[test]
    fn record_round_trip() {
        let record = sample();
        let bytes = record.to_bytes();
        assert_eq!(bytes.len(), 16 + 3 * 32);
        assert_eq!(
            &bytes[..16],
            b"KSR1\x02\x03\x00\x00\x32\x00\x00\x00\x64\x00\x00\x00"
        );
        assert_eq!(StripeRecord::from_bytes(&bytes), Ok(record));
    }

    #[test]
    fn record_parser_rejects_each_violation() {
        let good = sample().to_bytes();
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            StripeRecord::from_bytes(&bytes)
        };
        assert_eq!(with(0, b'X'), Err(RecordError::NotARecord));
        assert_eq!(with(3, b'2'), Err(RecordError::UnknownVersion('2')));
        assert_eq!(with(6, 1), Err(RecordError::Reserved));
        assert!(matches!(with(4, 0), Err(RecordError::Shares(_))));
        assert!(matches!(with(4, 3), Err(RecordError::Shares(_))));
        assert_eq!(
            with(5, 4),
            Err(RecordError::Length {
                expected: 16 + 4 * 32,
                got: good.len()
            })
        );
        assert_eq!(
            with(8, 0x34),
            Err(RecordError::ShareLen {
                expected: 50,
                got: 52
            })
        );
        assert_eq!(
            with(8, 0x30),
            Err(RecordError::CipherDoesNotFit {
                cipher_len: 100,
                share_len: 48
            })
        );
        assert_eq!(with(12, 15), Err(RecordError::CipherLen(15)));
        assert_eq!(with(15, 0x10), Err(RecordError::CipherLen(0x1000_0064)));
        assert!(StripeRecord::from_bytes(&good[..good.len() - 1]).is_err());
        assert!(StripeRecord::from_bytes(&[good.as_slice(), &[0]].concat()).is_err());
        assert!(StripeRecord::from_bytes(b"").is_err());
        assert!(StripeRecord::from_bytes(b"KSR").is_err());
    }

    #[test]
    fn verify_share_checks_index_length_and_hash() {
        let record = sample();
        assert!(matches!(
            record.verify_share(3, b"a"),
            Err(DecodeError::ShareIndex { index: 3, n: 3 })
        ));
        assert!(matches!(
            record.verify_share(0, b"a"),
            Err(DecodeError::ShareCorrupt { index: 0, .. })
        ));
    }
}
