//! The node's feed tables (schema 3): the entries of its own feed and of
//! the feeds it follows, the forks it saw, and whom it follows.
//!
//! The store does not read entries: the node verifies them
//! (`kith_base::feed`) and hands the store a decision to take inside the
//! write transaction, so that two peers delivering the same sequence at
//! once cannot both win.
//!
//! | table | key | value |
//! |---|---|---|
//! | `feed_entries` | author (32) ‖ sequence (u64 big-endian, so keys sort by sequence) | the entry: head, and body unless dropped |
//! | `feed_forks` | author ‖ sequence | a second valid entry of that sequence: the proof of a fork |
//! | `follows` | author (32) | the node's follow row |

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::{DbContext, Result};
use crate::store::Store;

/// author ‖ sequence → entry.
pub(crate) const FEED_ENTRIES: TableDefinition<'_, &[u8; 40], &[u8]> =
    TableDefinition::new("feed_entries");
/// author ‖ sequence → the other entry of a fork.
pub(crate) const FEED_FORKS: TableDefinition<'_, &[u8; 40], &[u8]> =
    TableDefinition::new("feed_forks");
/// author → follow row.
pub(crate) const FOLLOWS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("follows");

/// Creates the tables (part of opening the store).
pub(crate) fn create_tables(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(FEED_ENTRIES).db(path)?;
    txn.open_table(FEED_FORKS).db(path)?;
    txn.open_table(FOLLOWS).db(path)?;
    Ok(())
}

fn key(author: &[u8; 32], sequence: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(author);
    key[32..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// What to do with an entry, decided by the node from what is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDecision {
    /// Store it (the next of the feed).
    Append,
    /// It is already held.
    Held,
    /// Another entry holds its sequence: keep that one, keep this as the
    /// proof of a fork.
    Fork,
    /// Not now (it does not link to what is held, or it is too far ahead).
    Refuse,
}

/// The feed tables. Cheap to clone; every call may block on the disk.
#[derive(Clone, Debug)]
pub struct FeedTables {
    store: Store,
}

impl Store {
    /// The feeds this node keeps, and whom it follows.
    pub fn feeds(&self) -> FeedTables {
        FeedTables {
            store: self.clone(),
        }
    }
}

impl FeedTables {
    fn path(&self) -> &Path {
        self.store.db_path()
    }

    /// Offers entry `sequence` of `author`. `decide` sees the entry held at
    /// that sequence and the one before it (both `None` when absent) and
    /// says what to do; its answer is carried out in the same transaction.
    pub fn offer(
        &self,
        author: &[u8; 32],
        sequence: u64,
        entry: &[u8],
        decide: impl FnOnce(Option<&[u8]>, Option<&[u8]>) -> EntryDecision,
    ) -> Result<EntryDecision> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let decision = {
            let mut entries = txn.open_table(FEED_ENTRIES).db(path)?;
            let here = entries
                .get(&key(author, sequence))
                .db(path)?
                .map(|row| row.value().to_vec());
            let before = match sequence.checked_sub(1) {
                Some(previous @ 1..) => entries
                    .get(&key(author, previous))
                    .db(path)?
                    .map(|row| row.value().to_vec()),
                _ => None,
            };
            let decision = decide(here.as_deref(), before.as_deref());
            match decision {
                EntryDecision::Append => {
                    entries.insert(&key(author, sequence), entry).db(path)?;
                }
                EntryDecision::Fork => {
                    txn.open_table(FEED_FORKS)
                        .db(path)?
                        .insert(&key(author, sequence), entry)
                        .db(path)?;
                }
                EntryDecision::Held | EntryDecision::Refuse => {}
            }
            decision
        };
        if matches!(decision, EntryDecision::Append | EntryDecision::Fork) {
            txn.commit().db(path)?;
        }
        Ok(decision)
    }

    /// Offers a batch of `author`'s entries, in order, in one transaction
    /// (one commit for a whole fetched batch): `decide` sees, for each, its
    /// index in the batch, the entry held at its sequence and the one before
    /// it (including those appended earlier in this batch). Stops at the
    /// first refusal; returns the decisions taken, in order.
    pub fn offer_batch(
        &self,
        author: &[u8; 32],
        batch: &[(u64, Vec<u8>)],
        mut decide: impl FnMut(usize, Option<&[u8]>, Option<&[u8]>) -> EntryDecision,
    ) -> Result<Vec<EntryDecision>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let mut decisions = Vec::with_capacity(batch.len());
        {
            let mut entries = txn.open_table(FEED_ENTRIES).db(path)?;
            let mut forks = txn.open_table(FEED_FORKS).db(path)?;
            for (index, (sequence, entry)) in batch.iter().enumerate() {
                let here = entries
                    .get(&key(author, *sequence))
                    .db(path)?
                    .map(|row| row.value().to_vec());
                let before = match sequence.checked_sub(1) {
                    Some(previous @ 1..) => entries
                        .get(&key(author, previous))
                        .db(path)?
                        .map(|row| row.value().to_vec()),
                    _ => None,
                };
                let decision = decide(index, here.as_deref(), before.as_deref());
                match decision {
                    EntryDecision::Append => {
                        entries
                            .insert(&key(author, *sequence), entry.as_slice())
                            .db(path)?;
                    }
                    EntryDecision::Fork => {
                        forks
                            .insert(&key(author, *sequence), entry.as_slice())
                            .db(path)?;
                    }
                    EntryDecision::Held | EntryDecision::Refuse => {}
                }
                decisions.push(decision);
                if decision == EntryDecision::Refuse {
                    break;
                }
            }
        }
        txn.commit().db(path)?;
        Ok(decisions)
    }

    /// Replaces entry `sequence` of `author` (with its body dropped, after a
    /// deletion). Returns whether it was held.
    pub fn replace(&self, author: &[u8; 32], sequence: u64, entry: &[u8]) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let held = {
            let mut entries = txn.open_table(FEED_ENTRIES).db(path)?;
            let held = entries.get(&key(author, sequence)).db(path)?.is_some();
            if held {
                entries.insert(&key(author, sequence), entry).db(path)?;
            }
            held
        };
        txn.commit().db(path)?;
        Ok(held)
    }

    /// Up to `limit` entries of `author` after sequence `after`, in order.
    pub fn after(
        &self,
        author: &[u8; 32],
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_ENTRIES).db(path)?;
        let from = key(author, after.saturating_add(1));
        let to = key(author, u64::MAX);
        let mut out = Vec::new();
        for row in table.range::<&[u8; 40]>(&from..=&to).db(path)? {
            if out.len() >= limit {
                break;
            }
            let (key, value) = row.db(path)?;
            let sequence = u64::from_be_bytes(key.value()[32..].try_into().unwrap_or_default());
            out.push((sequence, value.value().to_vec()));
        }
        Ok(out)
    }

    /// The last `limit` entries of `author`, newest first.
    pub fn newest(&self, author: &[u8; 32], limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_ENTRIES).db(path)?;
        let from = key(author, 0);
        let to = key(author, u64::MAX);
        let mut out = Vec::new();
        for row in table.range::<&[u8; 40]>(&from..=&to).db(path)?.rev() {
            if out.len() >= limit {
                break;
            }
            let (key, value) = row.db(path)?;
            let sequence = u64::from_be_bytes(key.value()[32..].try_into().unwrap_or_default());
            out.push((sequence, value.value().to_vec()));
        }
        Ok(out)
    }

    /// The highest sequence held of `author` (0 for none).
    pub fn head(&self, author: &[u8; 32]) -> Result<u64> {
        Ok(self.newest(author, 1)?.first().map_or(0, |(seq, _)| *seq))
    }

    /// The forks seen in `author`'s feed: (sequence, the other entry).
    pub fn forks(&self, author: &[u8; 32]) -> Result<Vec<(u64, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_FORKS).db(path)?;
        let mut out = Vec::new();
        for row in table
            .range::<&[u8; 40]>(&key(author, 0)..=&key(author, u64::MAX))
            .db(path)?
        {
            let (key, value) = row.db(path)?;
            let sequence = u64::from_be_bytes(key.value()[32..].try_into().unwrap_or_default());
            out.push((sequence, value.value().to_vec()));
        }
        Ok(out)
    }

    /// Drops every entry and fork of `author` (after an unfollow). Returns
    /// how many entries went.
    pub fn drop_feed(&self, author: &[u8; 32]) -> Result<usize> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let dropped = {
            let (from, to) = (key(author, 0), key(author, u64::MAX));
            let mut entries = txn.open_table(FEED_ENTRIES).db(path)?;
            let dropped = entries
                .extract_from_if::<&[u8; 40], _>(&from..=&to, |_, _| true)
                .db(path)?
                .count();
            txn.open_table(FEED_FORKS)
                .db(path)?
                .retain_in::<&[u8; 40], _>(&from..=&to, |_, _| false)
                .db(path)?;
            dropped
        };
        txn.commit().db(path)?;
        Ok(dropped)
    }

    /// Records (or replaces) that this node follows `author`.
    pub fn set_follow(&self, author: &[u8; 32], row: &[u8]) -> Result<()> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        txn.open_table(FOLLOWS)
            .db(path)?
            .insert(author, row)
            .db(path)?;
        txn.commit().db(path)
    }

    /// Stops following `author`. Returns whether it was followed.
    pub fn remove_follow(&self, author: &[u8; 32]) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let removed = txn
            .open_table(FOLLOWS)
            .db(path)?
            .remove(author)
            .db(path)?
            .is_some();
        txn.commit().db(path)?;
        Ok(removed)
    }

    /// Whom this node follows: (author, row).
    pub fn follows(&self) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FOLLOWS).db(path)?;
        let mut out = Vec::new();
        for row in table.iter().db(path)? {
            let (author, value) = row.db(path)?;
            out.push((*author.value(), value.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn open(dir: &Path) -> Store {
        Store::open(
            dir,
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap()
    }

    #[test]
    fn entries_are_offered_with_what_is_held_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = open(dir.path()).feeds();
        let author = [1; 32];
        let append = |here: Option<&[u8]>, _: Option<&[u8]>| {
            if here.is_some() {
                EntryDecision::Held
            } else {
                EntryDecision::Append
            }
        };
        for seq in 1..=300u64 {
            let decision = feeds
                .offer(&author, seq, &seq.to_le_bytes(), |here, before| {
                    assert_eq!(before.is_some(), seq > 1);
                    append(here, before)
                })
                .unwrap();
            assert_eq!(decision, EntryDecision::Append);
        }
        assert_eq!(
            feeds.offer(&author, 5, b"x", append).unwrap(),
            EntryDecision::Held
        );
        assert_eq!(
            feeds
                .offer(&author, 5, b"other", |_, _| EntryDecision::Fork)
                .unwrap(),
            EntryDecision::Fork
        );
        assert_eq!(feeds.head(&author).unwrap(), 300);
        // Keys sort by sequence (big-endian), not by byte order of u64 LE.
        let after = feeds.after(&author, 254, 3).unwrap();
        assert_eq!(
            after.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [255, 256, 257]
        );
        let newest = feeds.newest(&author, 2).unwrap();
        assert_eq!(
            newest.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [300, 299]
        );
        assert_eq!(feeds.forks(&author).unwrap(), vec![(5, b"other".to_vec())]);
        assert!(feeds.replace(&author, 5, b"bare").unwrap());
        assert_eq!(feeds.after(&author, 4, 1).unwrap()[0].1, b"bare");
        assert_eq!(feeds.head(&[2; 32]).unwrap(), 0);
        assert_eq!(feeds.drop_feed(&author).unwrap(), 300);
        assert_eq!(feeds.head(&author).unwrap(), 0);
        assert!(feeds.forks(&author).unwrap().is_empty());
    }

    #[test]
    fn follows_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = open(dir.path()).feeds();
        feeds.set_follow(&[1; 32], b"alice").unwrap();
        feeds.set_follow(&[2; 32], b"bob").unwrap();
        assert!(feeds.remove_follow(&[2; 32]).unwrap());
        assert!(!feeds.remove_follow(&[2; 32]).unwrap());
        assert_eq!(feeds.follows().unwrap(), vec![([1; 32], b"alice".to_vec())]);
    }
}
