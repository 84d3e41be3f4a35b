//! Doors to the store's private row codecs for the fuzz targets in `fuzz/`
//! only; not part of the API.

use crate::tables::{ShareInfo, split_stripe_key, stripe_key};

/// Decodes a share row as the store reads it from disk; when it decodes,
/// checks that encoding and decoding again gives the same value (a row
/// without expiry may carry any bytes in the unused expiry field, so the
/// row itself need not come back) and that the `BY_STRIPE` key of the share
/// round-trips.
pub fn share_row(row: &[u8]) -> Option<ShareInfo> {
    let info = ShareInfo::decode(row)?;
    let again = ShareInfo::decode(&info.encode());
    assert_eq!(again, Some(info), "a share row round-trips");
    let key = stripe_key(&info.stripe, info.index, &info.stripe);
    let (stripe, index, share) = split_stripe_key(&key);
    assert_eq!(
        (stripe, index, share),
        (info.stripe, info.index, info.stripe)
    );
    Some(info)
}
