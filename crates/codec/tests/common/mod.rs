//! Helpers shared by the integration tests: encode into memory, decode back
//! with some shares lost.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use kith_codec::{
    Capability, ContentId, DecodeError, EncodeError, EncodedFile, EncodedStripe, FileKey, FileMeta,
    Params, StripeRecord, decode_stripe, decode_to_writer, encode_all, open_manifest,
};

/// The test pattern of the known-answer tests: `(i * 31 % 251) as u8`.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Encodes `data` fully in memory.
pub fn encode(
    data: &[u8],
    params: Params,
    key: FileKey,
    meta: FileMeta,
) -> (Vec<EncodedStripe>, EncodedFile) {
    let mut stripes = Vec::new();
    let file = encode_all(data, params, key, meta, |stripe| {
        stripes.push(stripe);
        Ok::<_, EncodeError>(())
    })
    .unwrap();
    (stripes, file)
}

/// Share slots of `stripe` with the shares for which `keep(index)` is false
/// left out.
pub fn slots(stripe: &EncodedStripe, keep: impl Fn(usize) -> bool) -> Vec<Option<&[u8]>> {
    (0..usize::from(stripe.record().n()))
        .map(|index| keep(index).then(|| stripe.share(index)))
        .collect()
}

/// Decodes the file with `open_manifest` + `decode_stripe`, keeping only the
/// shares for which `keep(stripe, share)` is true (`stripe` = `None` for the
/// manifest stripe).
pub fn decode(
    cap: &Capability,
    manifest_stripe: &EncodedStripe,
    stripes: &[EncodedStripe],
    keep: impl Fn(Option<usize>, usize) -> bool,
) -> Result<Vec<u8>, DecodeError> {
    let manifest = open_manifest(
        cap,
        manifest_stripe.record(),
        &slots(manifest_stripe, |share| keep(None, share)),
    )?;
    let mut out = Vec::new();
    for (index, stripe) in stripes.iter().enumerate() {
        let shares = slots(stripe, |share| keep(Some(index), share));
        out.extend(decode_stripe(
            cap.key(),
            &manifest,
            index as u32,
            stripe.record(),
            &shares,
        )?);
    }
    Ok(out)
}

/// Decodes the file with `decode_to_writer`, from a map of stored stripes
/// (borrowing the shares: no copies), keeping only the shares for which
/// `keep(stripe id, share)` is true.
pub fn decode_parallel(
    cap: &Capability,
    manifest_stripe: &EncodedStripe,
    stripes: &[EncodedStripe],
    keep: impl Fn(ContentId, usize) -> bool + Sync,
) -> Result<Vec<u8>, DecodeError> {
    let store: HashMap<ContentId, &EncodedStripe> = stripes
        .iter()
        .chain(std::iter::once(manifest_stripe))
        .map(|stripe| (stripe.id(), stripe))
        .collect();
    let source = |id: ContentId| -> Option<(StripeRecord, Vec<Option<&[u8]>>)> {
        let stripe = store.get(&id)?;
        Some((
            stripe.record().clone(),
            slots(stripe, |share| keep(id, share)),
        ))
    };
    let mut out = Vec::new();
    decode_to_writer(cap, source, &mut out)?;
    Ok(out)
}

/// A small deterministic generator, so tests pick "random" losses from a
/// proptest-chosen seed without another dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    /// A random set of at most `max` indices below `n`.
    pub fn lost(&mut self, n: usize, max: usize) -> Vec<usize> {
        let count = self.below(max + 1);
        let mut indices: Vec<usize> = (0..n).collect();
        for i in 0..count {
            let j = i + self.below(n - i);
            indices.swap(i, j);
        }
        indices.truncate(count);
        indices
    }
}
