//! Edits of the share rows and their indexes inside one write
//! transaction, shared by the store's writes ([`crate::Store`]), its leases
//! and the recovery pass.
//!
//! A leaf: it knows the tables and nothing of the modules that use it, so
//! `store`, `lease` and `recovery` depend on it and not on each other.

use std::path::Path;

use kith_base::ContentId;
use redb::{Table, WriteTransaction};

use crate::error::{DbContext, Result};
use crate::tables::{
    BY_STRIPE, EXPIRY, META, META_FORMAT, SCHEMA_VERSION, SHARES, ShareInfo, stripe_key,
};

/// Gives share `id`, whose row is `info`, a new `owner` and expiry inside
/// `txn`, keeping the expiry index in step.
pub(crate) fn write_lease(
    txn: &WriteTransaction,
    db: &Path,
    shares: &mut Table<'_, &'static [u8; 32], &'static [u8]>,
    id: &ContentId,
    info: &mut ShareInfo,
    owner: [u8; 32],
    expires_at: Option<u64>,
) -> Result<()> {
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
    Ok(())
}

/// Removes share `id`'s row and its index entries inside `txn`; returns
/// the row it removed, if it was one this code wrote.
pub(crate) fn remove_share_rows(
    txn: &WriteTransaction,
    db: &Path,
    id: &ContentId,
) -> Result<Option<ShareInfo>> {
    let row = {
        let mut shares = txn.open_table(SHARES).db(db)?;
        let row = shares.remove(id.as_bytes()).db(db)?;
        row.map(|row| row.value().to_vec())
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let Some(info) = ShareInfo::decode(&row) else {
        // Not a row this code wrote: the recovery pass sweeps any index
        // entries it may have had.
        return Ok(None);
    };
    txn.open_table(BY_STRIPE)
        .db(db)?
        .remove(&stripe_key(&info.stripe, info.index, id))
        .db(db)?;
    if let Some(at) = info.expires_at {
        txn.open_table(EXPIRY)
            .db(db)?
            .remove((at, id.as_bytes()))
            .db(db)?;
    }
    Ok(Some(info))
}

/// Records the schema version (the last step of opening a fresh database,
/// and of an upgrade).
pub(crate) fn record_format(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(META)
        .db(path)?
        .insert(
            META_FORMAT,
            crate::tables::encode_schema(SCHEMA_VERSION).as_slice(),
        )
        .db(path)?;
    Ok(())
}
