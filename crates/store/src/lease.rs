//! Leases: who asked for a share to be kept, and until when.
//!
//! A share is kept for the owner that leased it until `expires_at` (Unix
//! seconds); the owner renews by setting a later time. The node asks for
//! [`Store::expired`] shares now and then and removes them. The store only
//! records and indexes leases; deciding who may set one (a signed request
//! from the owner) is the node's job.
//!
//! Deliberately simple for now: one owner per share (the last
//! [`Store::set_lease`] wins). Two owners storing the same bytes is
//! vanishingly rare with random per-file keys; if it ever matters, leases
//! become a table keyed by (share, owner) and a share expires when its last
//! lease does.

use kith_base::ContentId;
use redb::ReadableTable;

use crate::error::{DbContext, Result};
use crate::store::Store;
use crate::tables::{EXPIRY, SHARES, ShareInfo};

impl Store {
    /// Sets the lease of share `id`: its `owner` and when it ends
    /// (`None` = never). Returns false if the store does not hold the share.
    pub fn set_lease(
        &self,
        id: &ContentId,
        owner: [u8; 32],
        expires_at: Option<u64>,
    ) -> Result<bool> {
        let db = self.db_path();
        let txn = self.write_txn()?;
        {
            let mut shares = txn.open_table(SHARES).db(db)?;
            let Some(mut info) = shares
                .get(id.as_bytes())
                .db(db)?
                .and_then(|row| ShareInfo::decode(row.value()))
            else {
                return Ok(false);
            };
            let mut expiry = txn.open_table(EXPIRY).db(db)?;
            if let Some(old) = info.expires_at {
                expiry.remove((old, id.as_bytes())).db(db)?;
            }
            if let Some(new) = expires_at {
                expiry.insert((new, id.as_bytes()), ()).db(db)?;
            }
            info.owner = owner;
            info.expires_at = expires_at;
            shares
                .insert(id.as_bytes(), info.encode().as_slice())
                .db(db)?;
        }
        txn.commit().db(db)?;
        Ok(true)
    }

    /// Up to `limit` shares whose lease ended at or before `now` (Unix
    /// seconds), the longest-expired first. The caller removes them (and
    /// calls again until this returns fewer than `limit`).
    pub fn expired(&self, now: u64, limit: usize) -> Result<Vec<ContentId>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let expiry = txn.open_table(EXPIRY).db(db)?;
        let mut out = Vec::new();
        for entry in expiry.range(..=(now, &[0xff; 32])).db(db)?.take(limit) {
            let (key, _) = entry.db(db)?;
            out.push(ContentId::from_bytes(*key.value().1));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};
    use kith_base::ContentId;

    #[test]
    fn the_first_owner_keeps_a_share_and_a_cached_copy_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap();
        let stripe = ContentId::of(b"stripe");
        let (a, b) = (b"share a".as_slice(), b"share b".as_slice());
        let (id_a, id_b) = (ContentId::of(a), ContentId::of(b));
        store.put_owned_share(stripe, 0, id_a, a, [1; 32]).unwrap();
        store.put_owned_share(stripe, 0, id_a, a, [2; 32]).unwrap();
        assert_eq!(store.share_info(&id_a).unwrap().unwrap().owner, [1; 32]);
        // A cached copy (no owner) is taken over by the owner's put.
        store.put_share(stripe, 1, id_b, b).unwrap();
        assert_eq!(store.share_info(&id_b).unwrap().unwrap().owner, [0; 32]);
        store.put_owned_share(stripe, 1, id_b, b, [3; 32]).unwrap();
        assert_eq!(store.share_info(&id_b).unwrap().unwrap().owner, [3; 32]);
    }
}
