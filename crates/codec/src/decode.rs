//! Decoding and repair: from any k verified shares back to plaintext, or back
//! to all n shares.
//!
//! Every byte is checked before it is used, in this order: the stripe record
//! against the id the caller trusts (from the capability or the manifest), each
//! share against its id in the record, and finally the ciphertext against its
//! AEAD tag. A corrupt share is therefore caught by its hash and named
//! ([`DecodeError::ShareCorrupt`]); it never reaches the erasure decoder, so it
//! can never turn into wrong output.
//!
//! Two flavours: the strict functions fail on the first corrupt share (the
//! caller gave it, the caller wants to know), the tolerant ones skip corrupt
//! shares while at least k good ones remain and report which were bad — what
//! the network layer wants when it asked several peers and any k will do.
//!
//! Known limit: a malicious *uploader* (who has the key) can write recovery
//! shares that are not the code of its data shares, so that readers who
//! rebuild from different subsets see different (each authentic) plaintexts.
//! Readers do not re-encode to check this — it would cost a full erasure
//! encode per stripe — but [`reconstruct_shares`] does, since it re-derives
//! shares anyway, and reports [`DecodeError::Inconsistent`].

use std::io::Write;
use std::sync::Mutex;

use kith_base::{Capability, ContentId, FileKey};
use rayon::prelude::*;

use crate::crypto::{FileCipher, TAG_LEN};
use crate::erasure;
use crate::error::{DecodeError, Part};
use crate::manifest::Manifest;
use crate::stripe::StripeRecord;

/// A decoded segment and the shares that were skipped as corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodedStripe {
    /// The segment's plaintext.
    pub plaintext: Vec<u8>,
    /// Indices of provided shares that did not match their ids (ascending).
    pub corrupt: Vec<u8>,
}

/// Opens a file's manifest from its capability and the manifest stripe.
///
/// `shares` has one slot per share (`n` slots), `None` for the missing ones;
/// at least k must be given. Any given share that does not match the record
/// fails with [`DecodeError::ShareCorrupt`].
pub fn open_manifest(
    cap: &Capability,
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
) -> Result<Manifest, DecodeError> {
    let cipher = FileCipher::new(cap.key());
    open_manifest_with(&cipher, cap.manifest(), record, shares, ShareCheck::Strict)
        .map(|(manifest, _)| manifest)
}

fn open_manifest_with<S: AsRef<[u8]>>(
    cipher: &FileCipher,
    expected: ContentId,
    record: &StripeRecord,
    shares: &[Option<S>],
    check: ShareCheck,
) -> Result<(Manifest, Vec<u8>), DecodeError> {
    let stripe = check_record(expected, record)?;
    let (mut buffer, corrupt) = rebuild(stripe, record, shares, check, Vec::new())?;
    let len = decrypt(cipher, Part::Manifest, record, &mut buffer)?;
    let manifest = Manifest::from_bytes(&buffer[..len])?;
    let params = manifest.params();
    if (params.k(), params.n()) != (record.k(), record.n()) {
        return Err(stripe_params(Part::Manifest, record, &manifest));
    }
    Ok((manifest, corrupt))
}

/// Decodes data segment `index` of the file described by `manifest`.
///
/// Checks that `record` is the one the manifest lists at `index`, that it
/// agrees with the manifest on k, n and the segment's length, that every given
/// share matches its id (else [`DecodeError::ShareCorrupt`]) and that at least
/// k are given; then rebuilds, decrypts and returns the plaintext.
pub fn decode_stripe(
    key: &FileKey,
    manifest: &Manifest,
    index: u32,
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
) -> Result<Vec<u8>, DecodeError> {
    decode_one(key, manifest, index, record, shares, ShareCheck::Strict)
        .map(|decoded| decoded.plaintext)
}

/// Like [`decode_stripe`], but skips given shares that do not match their ids
/// as long as k good ones remain, and reports their indices. Fails with
/// [`DecodeError::NotEnoughShares`] (listing the corrupt ones) otherwise.
pub fn decode_stripe_tolerant(
    key: &FileKey,
    manifest: &Manifest,
    index: u32,
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
) -> Result<DecodedStripe, DecodeError> {
    decode_one(key, manifest, index, record, shares, ShareCheck::Tolerant)
}

/// Like [`decode_stripe`], for shares the caller has already checked one by
/// one with [`StripeRecord::verify_share`] (as a downloader does, to know
/// which peer sent a bad one): their hashes are not computed a second time.
///
/// Only the lengths are checked here. A share that was not in fact checked
/// still cannot produce wrong plaintext — the segment's AEAD tag fails
/// ([`DecodeError::DecryptFailed`]) — but the error can then not say which
/// share was bad.
pub fn decode_stripe_checked(
    key: &FileKey,
    manifest: &Manifest,
    index: u32,
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
) -> Result<Vec<u8>, DecodeError> {
    decode_one(key, manifest, index, record, shares, ShareCheck::Checked)
        .map(|decoded| decoded.plaintext)
}

/// One stripe, with a fresh cipher and buffer: the three public decoders.
fn decode_one(
    key: &FileKey,
    manifest: &Manifest,
    index: u32,
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
    check: ShareCheck,
) -> Result<DecodedStripe, DecodeError> {
    let cipher = FileCipher::new(key);
    decode_with(&cipher, manifest, index, record, shares, check, Vec::new())
}

/// How [`rebuild`] treats the hash of each given share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShareCheck {
    /// Hash every share; a mismatch is an error.
    Strict,
    /// Hash every share; skip mismatches while k good ones remain.
    Tolerant,
    /// The caller hashed them already; check lengths only.
    Checked,
}

fn decode_with<S: AsRef<[u8]>>(
    cipher: &FileCipher,
    manifest: &Manifest,
    index: u32,
    record: &StripeRecord,
    shares: &[Option<S>],
    check: ShareCheck,
    spare: Vec<u8>,
) -> Result<DecodedStripe, DecodeError> {
    let part = Part::Segment(index);
    let (Some(&expected), Some(plain_len)) = (
        manifest.stripes().get(index as usize),
        manifest.segment_len(index),
    ) else {
        return Err(DecodeError::SegmentIndex {
            index,
            count: manifest.stripes().len(),
        });
    };
    let stripe = check_record(expected, record)?;
    let params = manifest.params();
    if (params.k(), params.n()) != (record.k(), record.n()) {
        return Err(stripe_params(part, record, manifest));
    }
    // Checked before decrypting, so a record for a huge stripe cannot make
    // us allocate for it.
    let expected_cipher = u64::from(plain_len) + TAG_LEN as u64;
    if u64::from(record.cipher_len()) != expected_cipher {
        return Err(DecodeError::SegmentLength {
            what: part,
            expected: expected_cipher,
            got: record.cipher_len(),
        });
    }
    let (mut buffer, corrupt) = rebuild(stripe, record, shares, check, spare)?;
    let len = decrypt(cipher, part, record, &mut buffer)?;
    buffer.truncate(len);
    Ok(DecodedStripe {
        plaintext: buffer,
        corrupt,
    })
}

/// Rebuilds all n shares of a stripe from any k, without any key: what a
/// storage node does to repair a stripe that lost holders.
///
/// Every given share is checked against the record (a corrupt one fails with
/// [`DecodeError::ShareCorrupt`]; check shares one by one with
/// [`StripeRecord::verify_share`] first to skip them instead), and every
/// rebuilt share is checked too ([`DecodeError::Inconsistent`] if one does not
/// match, which only a malicious uploader can cause). Returns the n shares in
/// index order, given ones included.
pub fn reconstruct_shares(
    record: &StripeRecord,
    shares: &[Option<&[u8]>],
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let stripe = record.id();
    let (data, _) = rebuild(stripe, record, shares, ShareCheck::Strict, Vec::new())?;
    let (k, n) = (usize::from(record.k()), usize::from(record.n()));
    let share_len = record.share_len() as usize;
    let mut all = data;
    if shares[k..].iter().any(Option::is_none) {
        erasure::encode(&mut all, k, n, share_len)
            .map_err(|error| DecodeError::Internal(error.to_string()))?;
    } else {
        for share in shares[k..].iter().flatten() {
            all.extend_from_slice(share);
        }
    }
    let mut out = Vec::with_capacity(n);
    for (index, share) in all.chunks_exact(share_len).enumerate() {
        if shares[index].is_none() && !record.share_ids()[index].verifies(share) {
            return Err(DecodeError::Inconsistent {
                stripe,
                index: index as u8,
            });
        }
        out.push(share.to_vec());
    }
    Ok(out)
}

/// Fetches, decodes and writes a whole file, decoding batches of stripes in
/// parallel and writing them in order while the next batch decodes.
///
/// `source` returns a stripe's record and its share slots (n of them, `None`
/// for the ones it could not get), or `None` if it has nothing. It is called
/// from several threads at once. Corrupt shares are skipped as in
/// [`decode_stripe_tolerant`]. On error, the bytes before the failing stripe
/// have been written: write to a temporary file and rename on success.
///
/// Memory is bounded by two batches of `2 × threads` stripes whatever the
/// file size: one being decoded (with its shares), one being written.
pub fn decode_to_writer<F, S, W>(
    cap: &Capability,
    source: F,
    mut writer: W,
) -> Result<Manifest, DecodeError>
where
    F: Fn(ContentId) -> Option<(StripeRecord, Vec<Option<S>>)> + Sync,
    S: AsRef<[u8]>,
    W: Write,
{
    let cipher = FileCipher::new(cap.key());
    let (record, shares) = source(cap.manifest()).ok_or(DecodeError::Unavailable {
        stripe: cap.manifest(),
        what: Part::Manifest,
    })?;
    let (manifest, _) = open_manifest_with(
        &cipher,
        cap.manifest(),
        &record,
        &shares,
        ShareCheck::Tolerant,
    )?;
    drop(shares);

    let batch = (2 * rayon::current_num_threads()).max(2);
    let count = manifest.stripes().len();
    // Written segments' buffers, reused for the next ones: fresh buffers of a
    // few MiB come from `mmap` and cost a page fault per 4 KiB on first touch,
    // which measurably slowed decoding.
    let spares: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::with_capacity(batch));
    let decode_batch = |start: usize| -> Vec<Result<Vec<u8>, DecodeError>> {
        (start..(start + batch).min(count))
            .into_par_iter()
            .map(|index| {
                // Stripe counts fit in u32 (checked when the manifest was parsed).
                let index = index as u32;
                let id = manifest.stripes()[index as usize];
                let (record, shares) = source(id).ok_or(DecodeError::Unavailable {
                    stripe: id,
                    what: Part::Segment(index),
                })?;
                let spare = spares.lock().ok().and_then(|mut spares| spares.pop());
                decode_with(
                    &cipher,
                    &manifest,
                    index,
                    &record,
                    &shares,
                    ShareCheck::Tolerant,
                    spare.unwrap_or_default(),
                )
                .map(|decoded| decoded.plaintext)
            })
            .collect()
    };

    let mut written: Vec<Result<Vec<u8>, DecodeError>> = Vec::new();
    let mut start = 0;
    while start < count || !written.is_empty() {
        let mut decoded = Vec::new();
        let mut write_result = Ok(());
        // Decode the next batch on the pool while this thread writes the last
        // one; the writer stays on this thread, so it need not be `Send`.
        rayon::in_place_scope(|scope| {
            if start < count {
                scope.spawn(|_| decoded = decode_batch(start));
            }
            write_result = written.drain(..).try_for_each(|segment| {
                let segment = segment?;
                writer.write_all(&segment)?;
                if let Ok(mut spares) = spares.lock()
                    && spares.len() < batch
                {
                    spares.push(segment);
                }
                Ok::<_, DecodeError>(())
            });
        });
        write_result?;
        written = decoded;
        start += batch;
    }
    writer.flush()?;
    Ok(manifest)
}

fn check_record(expected: ContentId, record: &StripeRecord) -> Result<ContentId, DecodeError> {
    let got = record.id();
    if got != expected {
        return Err(DecodeError::StripeRecordMismatch { expected, got });
    }
    Ok(got)
}

fn stripe_params(part: Part, record: &StripeRecord, manifest: &Manifest) -> DecodeError {
    DecodeError::StripeParams {
        what: part,
        record_k: record.k(),
        record_n: record.n(),
        manifest_k: manifest.params().k(),
        manifest_n: manifest.params().n(),
    }
}

/// Verifies the given shares and rebuilds the k data shares into one buffer
/// of `k × share_len` bytes (the padded ciphertext). Returns it with the
/// indices of skipped corrupt shares (tolerant mode only). `spare` is a
/// buffer to reuse, or empty.
fn rebuild<S: AsRef<[u8]>>(
    stripe: ContentId,
    record: &StripeRecord,
    shares: &[Option<S>],
    check: ShareCheck,
    spare: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    let (k, n) = (record.k(), record.n());
    if shares.len() != usize::from(n) {
        return Err(DecodeError::ShareCount {
            stripe,
            n,
            got: shares.len(),
        });
    }
    let share_len = record.share_len() as usize;
    let mut corrupt = Vec::new();
    let mut valid: Vec<Option<&[u8]>> = Vec::with_capacity(shares.len());
    for (index, share) in shares.iter().enumerate() {
        let share = share.as_ref().map(AsRef::as_ref);
        let good = share.filter(|bytes| {
            bytes.len() == share_len
                && (check == ShareCheck::Checked || record.share_ids()[index].verifies(bytes))
        });
        if share.is_some() && good.is_none() {
            // `index < n <= 255`.
            if check != ShareCheck::Tolerant {
                return Err(DecodeError::ShareCorrupt {
                    stripe,
                    index: index as u8,
                });
            }
            corrupt.push(index as u8);
        }
        valid.push(good);
    }
    let have = valid.iter().filter(|share| share.is_some()).count();
    if have < usize::from(k) {
        return Err(DecodeError::NotEnoughShares {
            stripe,
            have: have as u8,
            need: k,
            corrupt,
        });
    }
    let buffer = erasure::restore_data(&valid, usize::from(k), share_len, spare)
        .map_err(|error| DecodeError::Internal(error.to_string()))?;
    Ok((buffer, corrupt))
}

/// Decrypts the ciphertext at the front of `buffer` in place; returns the
/// plaintext length.
fn decrypt(
    cipher: &FileCipher,
    part: Part,
    record: &StripeRecord,
    buffer: &mut [u8],
) -> Result<usize, DecodeError> {
    // The record parser guarantees `cipher_len <= k × share_len`.
    let sealed = &mut buffer[..record.cipher_len() as usize];
    cipher
        .open(part, sealed)
        .ok_or(DecodeError::DecryptFailed { what: part })
}
