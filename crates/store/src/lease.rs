//! Leases: who asked for a share to be kept, and until when.
//!
//! A share is kept for the owner that leased it until `expires_at` (Unix
//! seconds); the owner renews by setting a later time. The node asks for
//! [`Store::expired`] shares now and then and removes them. The store only
//! records and indexes leases; deciding who may set one (a signed request
//! from the owner) is the node's job.
//!
//! The node also keeps, per stripe, the owner's signed lease as bytes
//! ([`Store::set_stripe_lease`]). The store reads a lease only in
//! [`Store::put_stripe_share`], to keep whichever of two ends later.
//!
//! Deliberately simple for now: one owner per share (the first owner keeps
//! it; [`Store::set_lease`] overrides). Two owners storing the same bytes is
//! vanishingly rare with random per-file keys; if it ever matters, leases
//! become a table keyed by (share, owner) and a share expires when its last
//! lease does.

use kith_base::ContentId;
use redb::ReadableTable;

use crate::error::{DbContext, Result};
use crate::rows::write_lease;
use crate::store::Store;
use crate::tables::{BY_STRIPE, EXPIRY, LEASES, SHARES, ShareInfo, split_stripe_key, stripe_key};

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
        let moved;
        {
            let mut shares = txn.open_table(SHARES).db(db)?;
            let Some(mut info) = shares
                .get(id.as_bytes())
                .db(db)?
                .and_then(|row| ShareInfo::decode(row.value()))
            else {
                return Ok(false);
            };
            moved = (info.owner, info.len);
            write_lease(&txn, db, &mut shares, id, &mut info, owner, expires_at)?;
        }
        txn.commit().db(db)?;
        self.owner_moved(moved.0, owner, moved.1);
        Ok(true)
    }

    /// Moves the expiry of every share of `stripe` that `owner` leased to
    /// `expires_at`, if that is later. Returns how many shares it extended.
    pub fn renew_stripe(
        &self,
        stripe: &ContentId,
        owner: [u8; 32],
        expires_at: u64,
    ) -> Result<usize> {
        let db = self.db_path();
        let txn = self.write_txn()?;
        let mut renewed = 0;
        {
            let ids: Vec<ContentId> = {
                let table = txn.open_table(BY_STRIPE).db(db)?;
                let low = stripe_key(stripe, 0, &ContentId::from_bytes([0; 32]));
                let high = stripe_key(stripe, u8::MAX, &ContentId::from_bytes([0xff; 32]));
                let mut ids = Vec::new();
                for entry in table.range::<&[u8; 65]>(&low..=&high).db(db)? {
                    let (key, _) = entry.db(db)?;
                    ids.push(split_stripe_key(key.value()).2);
                }
                ids
            };
            let mut shares = txn.open_table(SHARES).db(db)?;
            let mut expiry = txn.open_table(EXPIRY).db(db)?;
            for id in ids {
                let Some(mut info) = shares
                    .get(id.as_bytes())
                    .db(db)?
                    .and_then(|row| ShareInfo::decode(row.value()))
                else {
                    continue;
                };
                let Some(old) = info.expires_at else { continue };
                if info.owner != owner || old >= expires_at {
                    continue;
                }
                expiry.remove((old, id.as_bytes())).db(db)?;
                expiry.insert((expires_at, id.as_bytes()), ()).db(db)?;
                info.expires_at = Some(expires_at);
                shares
                    .insert(id.as_bytes(), info.encode().as_slice())
                    .db(db)?;
                renewed += 1;
            }
        }
        txn.commit().db(db)?;
        Ok(renewed)
    }

    /// Keeps `lease` (the owner's signed lease bytes) for `stripe`,
    /// replacing any earlier one.
    pub fn set_stripe_lease(&self, stripe: &ContentId, lease: &[u8]) -> Result<()> {
        let db = self.db_path();
        let txn = self.write_txn()?;
        txn.open_table(LEASES)
            .db(db)?
            .insert(stripe.as_bytes(), lease)
            .db(db)?;
        txn.commit().db(db)?;
        Ok(())
    }

    /// The lease bytes kept for `stripe`, if any.
    pub fn stripe_lease(&self, stripe: &ContentId) -> Result<Option<Vec<u8>>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let leases = txn.open_table(LEASES).db(db)?;
        Ok(leases
            .get(stripe.as_bytes())
            .db(db)?
            .map(|row| row.value().to_vec()))
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
        store
            .put_owned_share(stripe, 0, id_a, a, [1; 32], Some(100))
            .unwrap();
        store
            .put_owned_share(stripe, 0, id_a, a, [2; 32], Some(500))
            .unwrap();
        let info = store.share_info(&id_a).unwrap().unwrap();
        assert_eq!((info.owner, info.expires_at), ([1; 32], Some(100)));
        // The same owner putting again extends, never shortens, the lease.
        store
            .put_owned_share(stripe, 0, id_a, a, [1; 32], Some(300))
            .unwrap();
        store
            .put_owned_share(stripe, 0, id_a, a, [1; 32], Some(200))
            .unwrap();
        assert_eq!(
            store.share_info(&id_a).unwrap().unwrap().expires_at,
            Some(300)
        );
        assert_eq!(store.expired(299, 10).unwrap(), vec![]);
        assert_eq!(store.expired(300, 10).unwrap(), vec![id_a]);
        // A cached copy (no owner) is taken over by the owner's put.
        store.put_share(stripe, 1, id_b, b).unwrap();
        assert_eq!(store.share_info(&id_b).unwrap().unwrap().owner, [0; 32]);
        store
            .put_owned_share(stripe, 1, id_b, b, [3; 32], Some(50))
            .unwrap();
        assert_eq!(store.share_info(&id_b).unwrap().unwrap().owner, [3; 32]);

        // Renewal moves only the named owner's shares, and only later.
        assert_eq!(store.renew_stripe(&stripe, [3; 32], 400).unwrap(), 1);
        assert_eq!(store.renew_stripe(&stripe, [3; 32], 10).unwrap(), 0);
        assert_eq!(
            store.share_info(&id_b).unwrap().unwrap().expires_at,
            Some(400)
        );
        assert_eq!(
            store.share_info(&id_a).unwrap().unwrap().expires_at,
            Some(300)
        );
        assert_eq!(store.expired(399, 10).unwrap(), vec![id_a]);

        // The stripe's lease bytes are kept, and go with the record.
        store.set_stripe_lease(&stripe, b"lease").unwrap();
        assert_eq!(
            store.stripe_lease(&stripe).unwrap(),
            Some(b"lease".to_vec())
        );
        store.remove_record(&stripe).unwrap();
        assert_eq!(store.stripe_lease(&stripe).unwrap(), None);
    }
}
