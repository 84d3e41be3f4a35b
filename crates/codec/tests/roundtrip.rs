//! Round trips: any file, any k/n, any n − k lost shares per stripe give back
//! exactly the input; repair rebuilds exactly the lost shares.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;

use common::{Rng, decode, decode_parallel, encode, pattern, slots};
use kith_codec::{DecodeError, FileKey, FileMeta, Params, reconstruct_shares};
use proptest::prelude::*;

const SEGMENT: u32 = 4096;

/// Decodes with, for every stripe, a random set of at most n − k shares lost
/// (the set depends on the seed and the stripe), by both decoders.
fn round_trip(data: &[u8], k: u32, n: u32, seed: u64) {
    let params = Params::new(k, n, SEGMENT).unwrap();
    let key = FileKey::from_bytes([seed as u8; 32]);
    let meta = FileMeta::none().with_name("file.bin").unwrap();
    let (stripes, file) = encode(data, params, key, meta);
    assert_eq!(stripes.len() as u64, params.stripe_count(data.len() as u64));
    assert_eq!(file.manifest.file_size(), data.len() as u64);
    assert_eq!(file.manifest.meta().name(), Some("file.bin"));

    let (k, n) = (k as usize, n as usize);
    let mut rng = Rng(seed);
    let mut lost: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    lost.insert(None, rng.lost(n, n - k));
    for index in 0..stripes.len() {
        lost.insert(Some(index), rng.lost(n, n - k));
    }
    let keep = |stripe: Option<usize>, share: usize| !lost[&stripe].contains(&share);
    let out = decode(&file.capability, &file.manifest_stripe, &stripes, keep).unwrap();
    assert!(out == data, "sequential decode differs");

    // The parallel decoder, keyed by stripe id.
    let by_id: HashMap<_, _> = stripes
        .iter()
        .enumerate()
        .map(|(index, stripe)| (stripe.id(), Some(index)))
        .chain([(file.manifest_stripe.id(), None)])
        .collect();
    let keep_id = |id, share| keep(by_id[&id], share);
    let out = decode_parallel(&file.capability, &file.manifest_stripe, &stripes, keep_id).unwrap();
    assert!(out == data, "parallel decode differs");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_file_any_code_any_losses(
        len in prop_oneof![0usize..10, 0usize..(5 * SEGMENT as usize + 100)],
        (k, n) in (1u32..20).prop_flat_map(|k| (Just(k), (k + 1)..=20)),
        seed: u64,
    ) {
        let mut data = pattern(len);
        // Mix in the seed so files differ between cases.
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= (seed >> (8 * (i % 8))) as u8;
        }
        round_trip(&data, k, n, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn two_hundred_fifty_five_shares(
        len in 0usize..(2 * SEGMENT as usize + 10),
        k in 1u32..255,
        seed: u64,
    ) {
        round_trip(&pattern(len), k, 255, seed);
    }

    #[test]
    fn repair_rebuilds_exactly_the_lost_shares(
        len in 0usize..(2 * SEGMENT as usize),
        (k, n) in (1u32..16).prop_flat_map(|k| (Just(k), (k + 1)..=16)),
        seed: u64,
    ) {
        let params = Params::new(k, n, SEGMENT).unwrap();
        let (stripes, file) = encode(&pattern(len), params, FileKey::from_bytes([3; 32]), FileMeta::none());
        let mut rng = Rng(seed);
        for stripe in stripes.iter().chain([&file.manifest_stripe]) {
            let lost = rng.lost(n as usize, (n - k) as usize);
            let given = slots(stripe, |share| !lost.contains(&share));
            let rebuilt = reconstruct_shares(stripe.record(), &given).unwrap();
            prop_assert_eq!(rebuilt.len(), n as usize);
            for (index, share) in rebuilt.iter().enumerate() {
                prop_assert!(share.as_slice() == stripe.share(index), "share {} differs", index);
            }
        }
    }
}

#[test]
fn edge_cases_round_trip() {
    let segment = SEGMENT as usize;
    let sizes = [
        0,
        1,
        segment - 1,
        segment,
        segment + 1,
        2 * segment,
        3 * segment - 17,
    ];
    let codes = [
        (1, 2),
        (3, 5),
        (2, 3),
        (10, 16),
        (1, 255),
        (128, 255),
        (254, 255),
    ];
    for &len in &sizes {
        for &(k, n) in &codes {
            let data = pattern(len);
            let params = Params::new(k, n, SEGMENT).unwrap();
            let (stripes, file) = encode(
                &data,
                params,
                FileKey::from_bytes([9; 32]),
                FileMeta::none(),
            );
            let expected_stripes = len.div_ceil(segment).max(1);
            assert_eq!(stripes.len(), expected_stripes, "{len} bytes at {k}/{n}");
            assert_eq!(file.manifest.stripes().len(), expected_stripes);
            // The worst case for the erasure decoder: every data share lost
            // that can be (the first n - k), and, separately, the last n - k.
            let lose = (n - k) as usize;
            let first = |_: Option<usize>, share: usize| share >= lose;
            let last = |_: Option<usize>, share: usize| share < k as usize;
            for keep in [&first as &dyn Fn(Option<usize>, usize) -> bool, &last] {
                let out = decode(&file.capability, &file.manifest_stripe, &stripes, keep).unwrap();
                assert!(out == data, "{len} bytes at {k}/{n}");
            }
            let out = decode_parallel(&file.capability, &file.manifest_stripe, &stripes, |_, s| {
                s >= lose
            })
            .unwrap();
            assert!(out == data, "{len} bytes at {k}/{n} (parallel)");
        }
    }
}

#[test]
fn the_empty_file_is_one_stripe_of_one_tag() {
    let params = Params::new(3, 5, SEGMENT).unwrap();
    let (stripes, file) = encode(b"", params, FileKey::from_bytes([1; 32]), FileMeta::none());
    assert_eq!(stripes.len(), 1);
    let record = stripes[0].record();
    assert_eq!(record.cipher_len(), 16);
    assert_eq!(record.share_len(), 6);
    assert_eq!(file.manifest.segment_len(0), Some(0));
    let out = decode(&file.capability, &file.manifest_stripe, &stripes, |_, _| {
        true
    })
    .unwrap();
    assert!(out.is_empty());
}

#[test]
fn too_few_shares_is_not_enough_shares() {
    let params = Params::new(3, 5, SEGMENT).unwrap();
    let (stripes, file) = encode(
        &pattern(9000),
        params,
        FileKey::from_bytes([1; 32]),
        FileMeta::none(),
    );
    let error = decode(
        &file.capability,
        &file.manifest_stripe,
        &stripes,
        |stripe, share| stripe != Some(1) || share < 2,
    )
    .unwrap_err();
    assert!(
        matches!(&error, DecodeError::NotEnoughShares { have: 2, need: 3, stripe, corrupt }
            if *stripe == stripes[1].id() && corrupt.is_empty()),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("needs 3 valid shares"),
        "{error}"
    );
    let error =
        reconstruct_shares(stripes[0].record(), &slots(&stripes[0], |s| s == 4)).unwrap_err();
    assert!(matches!(
        error,
        DecodeError::NotEnoughShares { have: 1, .. }
    ));
}

#[test]
fn encoder_yields_stripes_in_file_order_across_batches() {
    // Many more segments than one batch, with segments that differ.
    let params = Params::new(2, 3, SEGMENT).unwrap();
    let data = pattern(40 * SEGMENT as usize + 5);
    let (stripes, file) = encode(
        &data,
        params,
        FileKey::from_bytes([5; 32]),
        FileMeta::none(),
    );
    let ids: Vec<_> = stripes.iter().map(|stripe| stripe.id()).collect();
    assert_eq!(file.manifest.stripes(), ids.as_slice());
    let out = decode_parallel(&file.capability, &file.manifest_stripe, &stripes, |_, _| {
        true
    })
    .unwrap();
    assert!(out == data);
}

#[test]
fn recycled_buffers_give_identical_stripes() {
    let params = Params::new(3, 5, SEGMENT).unwrap();
    let data = pattern(20 * SEGMENT as usize + 77);
    let key = || FileKey::from_bytes([4; 32]);
    let (stripes, file) = encode(&data, params, key(), FileMeta::none());
    let mut encoder = kith_codec::Encoder::new(&data[..], params, key(), FileMeta::none());
    let mut ids = Vec::new();
    while let Some(stripe) = encoder.next() {
        let stripe = stripe.unwrap();
        ids.push(stripe.id());
        encoder.recycle(stripe);
    }
    let recycled = encoder.finish().unwrap();
    let expected: Vec<_> = stripes.iter().map(|stripe| stripe.id()).collect();
    assert_eq!(ids, expected);
    assert_eq!(recycled.capability, file.capability);
}
