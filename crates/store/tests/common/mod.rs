//! Helpers shared by the store's integration tests: valid stripes to store,
//! and the on-disk paths the tests damage on purpose.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kith_codec::StripeRecord;
use kith_codec::stripe::share_len_for;
use kith_store::{ContentId, Store, StoreConfig};

/// One stripe: its record, its id and its n shares.
pub(crate) struct TestStripe {
    pub(crate) record: StripeRecord,
    pub(crate) id: ContentId,
    pub(crate) shares: Vec<Vec<u8>>,
}

impl TestStripe {
    /// A valid k-of-n stripe for `cipher_len` bytes of "ciphertext"; `seed`
    /// makes the share bytes (and so all ids) distinct per stripe.
    pub(crate) fn new(seed: u8, k: u8, n: u8, cipher_len: u32) -> Self {
        let share_len = share_len_for(cipher_len, k);
        let shares: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                // Distinct for every (seed, k, n, i): a hash, stretched.
                let key = ContentId::of(&[seed, k, n, i]);
                (0..share_len as usize)
                    .map(|j| key.as_bytes()[j % 32] ^ (j / 32) as u8)
                    .collect()
            })
            .collect();
        let mut bytes = b"KSR1".to_vec();
        bytes.extend_from_slice(&[k, n, 0, 0]);
        bytes.extend_from_slice(&share_len.to_le_bytes());
        bytes.extend_from_slice(&cipher_len.to_le_bytes());
        for share in &shares {
            bytes.extend_from_slice(ContentId::of(share).as_bytes());
        }
        let record = StripeRecord::from_bytes(&bytes).unwrap();
        let id = record.id();
        Self { record, id, shares }
    }

    pub(crate) fn share_id(&self, index: usize) -> ContentId {
        ContentId::of(&self.shares[index])
    }

    /// Puts every share.
    pub(crate) fn put_all(&self, store: &Store) {
        for (index, share) in self.shares.iter().enumerate() {
            store
                .put_share(self.id, index as u8, ContentId::of(share), share)
                .unwrap();
        }
    }
}

/// Where the store keeps a share's body (the layout `docs/store.md` pins).
pub(crate) fn body_path(dir: &Path, id: &ContentId) -> PathBuf {
    let hex = id.to_string();
    dir.join("shares")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(hex)
}

pub(crate) fn open(dir: &Path, quota_bytes: u64) -> Store {
    Store::open(dir, StoreConfig { quota_bytes }).unwrap()
}

/// Flips one bit of a file in place (same length: only a hash finds it).
pub(crate) fn flip_bit(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap();
}
