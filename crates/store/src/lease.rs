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
