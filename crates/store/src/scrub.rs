//! The background scrub: re-reading stored shares at a bounded rate to find
//! bit rot before a reader does, while the stripe can still be repaired.
//!
//! The node calls [`Store::scrub_step`] with a small budget on a timer. The
//! position is a cursor (the last share id checked) kept in the database, so
//! a restart continues where the scrub stopped instead of re-reading the
//! start of the store forever. Shares are visited in id order; ids are
//! hashes, so that order is random with respect to age, stripe and owner.

use kith_base::ContentId;

use crate::error::{DbContext, Result, StoreError};
use crate::store::{CorruptShare, Store};
use crate::tables::{META, META_SCRUB_CURSOR, SHARES};

/// What one [`Store::scrub_step`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScrubReport {
    /// Shares read and checked (good and bad).
    pub checked: usize,
    /// Bytes of the good shares read.
    pub bytes: u64,
    /// Shares found damaged; they have been removed and their stripes need
    /// repair.
    pub corrupt: Vec<CorruptShare>,
    /// True if this step reached the end of the store: the next step starts
    /// a new pass from the lowest id.
    pub pass_complete: bool,
}

impl Store {
    /// Checks up to `budget` shares, continuing from where the last step
    /// stopped. Damaged shares are removed and reported.
    pub fn scrub_step(&self, budget: usize) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        if budget == 0 {
            return Ok(report);
        }
        let db = self.db_path();
        let cursor = self.scrub_cursor()?;
        let batch: Vec<ContentId> = {
            let txn = self.read_txn()?;
            let shares = txn.open_table(SHARES).db(db)?;
            let range = match &cursor {
                Some(after) => shares.range::<&[u8; 32]>((
                    std::ops::Bound::Excluded(after.as_bytes()),
                    std::ops::Bound::Unbounded,
                )),
                None => shares.range::<&[u8; 32]>(..),
            };
            let mut batch = Vec::with_capacity(budget.min(1024));
            for entry in range.db(db)?.take(budget) {
                let (key, _) = entry.db(db)?;
                batch.push(ContentId::from_bytes(*key.value()));
            }
            batch
        };
        for id in &batch {
            // `get_share` confirms a failure under the share's lock and
            // removes the share before it reports it.
            match self.get_share(id) {
                Ok(share) => report.bytes += share.map_or(0, |share| share.len() as u64),
                Err(StoreError::Corrupt { id, stripe, index }) => {
                    report.corrupt.push(CorruptShare { id, stripe, index });
                }
                Err(error) => return Err(error),
            }
            report.checked += 1;
        }
        report.pass_complete = batch.len() < budget;
        let next = if report.pass_complete {
            None
        } else {
            batch.last().copied()
        };
        self.set_scrub_cursor(next)?;
        Ok(report)
    }

    fn scrub_cursor(&self) -> Result<Option<ContentId>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let meta = txn.open_table(META).db(db)?;
        let cursor = meta.get(META_SCRUB_CURSOR).db(db)?;
        Ok(cursor.and_then(|row| {
            <[u8; 32]>::try_from(row.value())
                .ok()
                .map(ContentId::from_bytes)
        }))
    }

    fn set_scrub_cursor(&self, cursor: Option<ContentId>) -> Result<()> {
        let db = self.db_path();
        let mut txn = self.write_txn()?;
        // Losing the cursor in a crash only makes the scrub redo a step:
        // no need to pay for an fsync on every step.
        txn.set_durability(redb::Durability::None).db(db)?;
        {
            let mut meta = txn.open_table(META).db(db)?;
            match cursor {
                Some(id) => {
                    meta.insert(META_SCRUB_CURSOR, id.as_bytes().as_slice())
                        .db(db)?;
                }
                None => {
                    meta.remove(META_SCRUB_CURSOR).db(db)?;
                }
            }
        }
        txn.commit().db(db)?;
        Ok(())
    }
}
