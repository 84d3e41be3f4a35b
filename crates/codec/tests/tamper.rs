//! Tampering: every flipped bit, wrong key, foreign share or foreign record
//! gives a typed error (or, for the tolerant decoder, the right bytes with the
//! bad share named), never wrong output and never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{decode, encode, pattern, slots};
use kith_codec::{
    Capability, DecodeError, EncodedStripe, FileKey, FileMeta, Params, Part, StripeRecord,
    decode_stripe, decode_stripe_checked, decode_stripe_tolerant, open_manifest,
    reconstruct_shares,
};
use proptest::prelude::*;

const SEGMENT: u32 = 4096;

fn flipped(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Where a bit is flipped.
#[derive(Debug, Clone)]
enum Target {
    /// A share of a data stripe (stripe, share).
    DataShare(usize, usize),
    /// A data stripe's record.
    DataRecord(usize),
    /// A share of the manifest stripe.
    ManifestShare(usize),
    /// The manifest stripe's record.
    ManifestRecord,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_flipped_bit_is_caught(
        len in 0usize..(3 * SEGMENT as usize),
        (k, n) in (1u32..8).prop_flat_map(|k| (Just(k), (k + 1)..=8)),
        which in 0u8..4,
        pick_stripe: prop::sample::Index,
        pick_share: prop::sample::Index,
        pick_bit: prop::sample::Index,
    ) {
        let data = pattern(len);
        let params = Params::new(k, n, SEGMENT).unwrap();
        let (stripes, file) = encode(&data, params, FileKey::from_bytes([2; 32]), FileMeta::none());
        let cap = &file.capability;
        let manifest = &file.manifest_stripe;
        let target = match which {
            0 => Target::DataShare(pick_stripe.index(stripes.len()), pick_share.index(n as usize)),
            1 => Target::DataRecord(pick_stripe.index(stripes.len())),
            2 => Target::ManifestShare(pick_share.index(n as usize)),
            _ => Target::ManifestRecord,
        };
        match target {
            Target::DataShare(s, share) => {
                let victim = &stripes[s];
                let bad = flipped(victim.share(share), pick_bit.index(8 * victim.share_len()));
                check_share_flip(cap, manifest, &stripes, Some(s), share, &bad, &data)?;
            }
            Target::ManifestShare(share) => {
                let bad = flipped(manifest.share(share), pick_bit.index(8 * manifest.share_len()));
                check_share_flip(cap, manifest, &stripes, None, share, &bad, &data)?;
            }
            Target::DataRecord(s) => {
                let bytes = stripes[s].record().to_bytes();
                let bad = flipped(&bytes, pick_bit.index(8 * bytes.len()));
                match StripeRecord::from_bytes(&bad) {
                    Err(_) => {} // RecordMalformed at the parser: fine.
                    Ok(record) => {
                        let opened = open_manifest(cap, manifest.record(), &slots(manifest, |_| true)).unwrap();
                        let error = decode_stripe(cap.key(), &opened, s as u32, &record, &slots(&stripes[s], |_| true)).unwrap_err();
                        prop_assert!(matches!(error, DecodeError::StripeRecordMismatch { .. }), "{:?}", error);
                    }
                }
            }
            Target::ManifestRecord => {
                let bytes = manifest.record().to_bytes();
                let bad = flipped(&bytes, pick_bit.index(8 * bytes.len()));
                if let Ok(record) = StripeRecord::from_bytes(&bad) {
                    let error = open_manifest(cap, &record, &slots(manifest, |_| true)).unwrap_err();
                    prop_assert!(matches!(error, DecodeError::StripeRecordMismatch { .. }), "{:?}", error);
                }
            }
        }
    }
}

/// Share `share` of stripe `stripe` (None = manifest) replaced by `bad`:
/// the strict decoders must say ShareCorrupt, the tolerant one must give the
/// right bytes and name the share, and repair must say ShareCorrupt.
fn check_share_flip(
    cap: &Capability,
    manifest: &EncodedStripe,
    stripes: &[EncodedStripe],
    stripe: Option<usize>,
    share: usize,
    bad: &[u8],
    data: &[u8],
) -> Result<(), TestCaseError> {
    let victim = stripe.map_or(manifest, |s| &stripes[s]);
    let mut given = slots(victim, |_| true);
    given[share] = Some(bad);
    let expect_corrupt = |error: &DecodeError| {
        matches!(error, DecodeError::ShareCorrupt { stripe: id, index }
            if *id == victim.id() && usize::from(*index) == share)
    };
    let error = reconstruct_shares(victim.record(), &given).unwrap_err();
    prop_assert!(expect_corrupt(&error), "{:?}", error);
    prop_assert!(victim.record().verify_share(share, bad).is_err());
    match stripe {
        None => {
            let error = open_manifest(cap, manifest.record(), &given).unwrap_err();
            prop_assert!(expect_corrupt(&error), "{:?}", error);
        }
        Some(s) => {
            let opened = open_manifest(cap, manifest.record(), &slots(manifest, |_| true)).unwrap();
            let record = victim.record();
            let error = decode_stripe(cap.key(), &opened, s as u32, record, &given).unwrap_err();
            prop_assert!(expect_corrupt(&error), "{:?}", error);
            let decoded =
                decode_stripe_tolerant(cap.key(), &opened, s as u32, record, &given).unwrap();
            prop_assert_eq!(decoded.corrupt, vec![share as u8]);
            let segment = SEGMENT as usize;
            let start = s * segment;
            let end = (start + segment).min(data.len());
            prop_assert!(decoded.plaintext == data[start..end]);
            // With only k shares left, one of them bad: not enough, and the
            // bad one is reported.
            let k = usize::from(record.k());
            let mut few: Vec<Option<&[u8]>> = vec![None; usize::from(record.n())];
            for (index, slot) in few.iter_mut().enumerate() {
                let taken = (0..k)
                    .map(|i| (share + i) % usize::from(record.n()))
                    .any(|i| i == index);
                if taken {
                    *slot = given[index];
                }
            }
            let error =
                decode_stripe_tolerant(cap.key(), &opened, s as u32, record, &few).unwrap_err();
            prop_assert!(
                matches!(&error, DecodeError::NotEnoughShares { corrupt, .. } if corrupt == &vec![share as u8]),
                "{:?}",
                error
            );
        }
    }
    Ok(())
}

fn sample(key: [u8; 32], len: usize) -> (Vec<EncodedStripe>, kith_codec::EncodedFile) {
    let params = Params::new(3, 5, SEGMENT).unwrap();
    let mut data = pattern(len);
    data[0] = key[0];
    encode(&data, params, FileKey::from_bytes(key), FileMeta::none())
}

#[test]
fn wrong_key_is_decrypt_failed() {
    let (stripes, file) = sample([1; 32], 10_000);
    let manifest = &file.manifest_stripe;
    let wrong = Capability::new(file.capability.manifest(), FileKey::from_bytes([2; 32]));
    let error = open_manifest(&wrong, manifest.record(), &slots(manifest, |_| true)).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::DecryptFailed {
                what: Part::Manifest
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "could not decrypt the manifest: wrong key or tampered data"
    );

    let opened = open_manifest(
        &file.capability,
        manifest.record(),
        &slots(manifest, |_| true),
    )
    .unwrap();
    let error = decode_stripe(
        wrong.key(),
        &opened,
        2,
        stripes[2].record(),
        &slots(&stripes[2], |_| true),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::DecryptFailed {
                what: Part::Segment(2)
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("segment 2"));
}

#[test]
fn shares_from_another_stripe_or_file_are_corrupt() {
    let (stripes, file) = sample([1; 32], 10_000);
    let (other, _) = sample([2; 32], 10_000);
    let cap = &file.capability;
    let manifest = open_manifest(
        cap,
        file.manifest_stripe.record(),
        &slots(&file.manifest_stripe, |_| true),
    )
    .unwrap();
    // Share 1 of stripe 0 replaced by share 1 of stripe 1 (same file), then
    // by share 1 of stripe 0 of another file.
    for foreign in [stripes[1].share(1), other[0].share(1)] {
        let mut given = slots(&stripes[0], |_| true);
        given[1] = Some(foreign);
        let error =
            decode_stripe(cap.key(), &manifest, 0, stripes[0].record(), &given).unwrap_err();
        assert!(
            matches!(error, DecodeError::ShareCorrupt { index: 1, .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "share 1 of stripe {} does not match its id: it is corrupt or from another stripe",
                stripes[0].id().short()
            )
        );
    }
}

#[test]
fn records_from_another_file_or_position_are_mismatches() {
    let (stripes, file) = sample([1; 32], 10_000);
    let (other_stripes, other) = sample([2; 32], 10_000);
    let cap = &file.capability;
    // The other file's manifest stripe under this capability.
    let error = open_manifest(
        cap,
        other.manifest_stripe.record(),
        &slots(&other.manifest_stripe, |_| true),
    )
    .unwrap_err();
    assert!(
        matches!(error, DecodeError::StripeRecordMismatch { expected, got }
            if expected == cap.manifest() && got == other.manifest_stripe.id()),
        "{error:?}"
    );
    let manifest = open_manifest(
        cap,
        file.manifest_stripe.record(),
        &slots(&file.manifest_stripe, |_| true),
    )
    .unwrap();
    // Another file's stripe at position 0; this file's stripe 1 at position 0
    // (a reordering, which needs a forged manifest and so the key).
    for (record, stripe) in [
        (other_stripes[0].record(), &other_stripes[0]),
        (stripes[1].record(), &stripes[1]),
    ] {
        let error =
            decode_stripe(cap.key(), &manifest, 0, record, &slots(stripe, |_| true)).unwrap_err();
        assert!(
            matches!(error, DecodeError::StripeRecordMismatch { .. }),
            "{error:?}"
        );
    }
    let error = decode_stripe(
        cap.key(),
        &manifest,
        3,
        stripes[0].record(),
        &slots(&stripes[0], |_| true),
    )
    .unwrap_err();
    assert!(
        matches!(error, DecodeError::SegmentIndex { index: 3, count: 3 }),
        "{error:?}"
    );
}

#[test]
fn wrong_share_slot_counts_and_lengths() {
    let (stripes, file) = sample([1; 32], 5000);
    let cap = &file.capability;
    let manifest = open_manifest(
        cap,
        file.manifest_stripe.record(),
        &slots(&file.manifest_stripe, |_| true),
    )
    .unwrap();
    let mut given = slots(&stripes[0], |_| true);
    given.pop();
    let error = decode_stripe(cap.key(), &manifest, 0, stripes[0].record(), &given).unwrap_err();
    assert!(
        matches!(error, DecodeError::ShareCount { n: 5, got: 4, .. }),
        "{error:?}"
    );
    // A truncated and an extended share.
    let share = stripes[0].share(2);
    let longer = [share, &[0]].concat();
    for bad in [&share[..share.len() - 1], &longer[..]] {
        let mut given = slots(&stripes[0], |_| true);
        given[2] = Some(bad);
        let error =
            decode_stripe(cap.key(), &manifest, 0, stripes[0].record(), &given).unwrap_err();
        assert!(
            matches!(error, DecodeError::ShareCorrupt { index: 2, .. }),
            "{error:?}"
        );
    }
}

#[test]
fn inconsistent_uploads_are_caught_by_repair() {
    // An uploader that alters a recovery share and lists the altered share's
    // id: each share matches its id, but they are not one code.
    let (stripes, _) = sample([1; 32], 5000);
    let stripe = &stripes[0];
    let mut bad_share = stripe.share(4).to_vec();
    bad_share[0] ^= 1;
    let mut record_bytes = stripe.record().to_bytes();
    let at = 16 + 4 * 32;
    record_bytes[at..at + 32].copy_from_slice(kith_codec::ContentId::of(&bad_share).as_bytes());
    let record = StripeRecord::from_bytes(&record_bytes).unwrap();
    let given = vec![
        None,
        Some(stripe.share(1)),
        Some(stripe.share(2)),
        None,
        Some(&bad_share[..]),
    ];
    let error = reconstruct_shares(&record, &given).unwrap_err();
    assert!(
        matches!(error, DecodeError::Inconsistent { index: 0, .. }),
        "{error:?}"
    );
}

#[test]
fn decoding_never_panics_on_garbage_records() {
    let (stripes, file) = sample([1; 32], 5000);
    let cap = &file.capability;
    // Every truncation of a real record is refused.
    let bytes = stripes[0].record().to_bytes();
    for end in 0..bytes.len() {
        assert!(StripeRecord::from_bytes(&bytes[..end]).is_err());
    }
    // Whole-file decode with everything fine still works after all that.
    let out = decode(cap, &file.manifest_stripe, &stripes, |_, _| true).unwrap();
    assert_eq!(out.len(), 5000);
}

/// `decode_stripe_checked` skips the hashes the caller computed already: it
/// decodes good shares exactly, and a flipped bit in any share it was
/// (wrongly) handed still gives an error, never wrong bytes — the AEAD tag
/// catches what the skipped hash would have.
#[test]
fn checked_decoding_of_unchecked_bad_shares_still_never_gives_wrong_bytes() {
    let (stripes, file) = sample([9; 32], 3 * SEGMENT as usize + 100);
    let manifest = &file.manifest_stripe;
    let opened = open_manifest(
        &file.capability,
        manifest.record(),
        &slots(manifest, |_| true),
    )
    .unwrap();
    let key = file.capability.key();
    for (index, stripe) in stripes.iter().enumerate() {
        let index = index as u32;
        let strict = decode_stripe(
            key,
            &opened,
            index,
            stripe.record(),
            &slots(stripe, |_| true),
        )
        .unwrap();
        let checked = decode_stripe_checked(
            key,
            &opened,
            index,
            stripe.record(),
            &slots(stripe, |_| true),
        )
        .unwrap();
        assert_eq!(strict, checked);
        // Shares 0, 2 and 4 given (one recovery share in the solve); each
        // in turn damaged at a bit in its middle.
        for bad in [0usize, 2, 4] {
            let shares: Vec<Option<Vec<u8>>> = (0..5)
                .map(|i| {
                    (i % 2 == 0).then(|| {
                        let share = stripe.share(i).to_vec();
                        if i == bad {
                            flipped(&share, share.len() * 4)
                        } else {
                            share
                        }
                    })
                })
                .collect();
            let refs: Vec<Option<&[u8]>> = shares.iter().map(|s| s.as_deref()).collect();
            let error =
                decode_stripe_checked(key, &opened, index, stripe.record(), &refs).unwrap_err();
            assert!(
                matches!(error, DecodeError::DecryptFailed { .. }),
                "stripe {index}, share {bad}: {error:?}"
            );
        }
    }
}
