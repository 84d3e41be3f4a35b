//! The node's feed tables (schema 3): the entries of its own feed and of
//! the feeds it follows, the forks it saw, whom it follows, the replies
//! to the feeds it holds (from anyone), and the attachments it copied.
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
//! | `feed_replies` | parent's author (32) ‖ parent's id (32) ‖ replier (32) ‖ sequence (u64 BE) | the reply entry (its head alone once withdrawn) |
//! | `feed_copies` | author (32) ‖ attachment's manifest id (32) | its size, u64 LE: the attachments of a followed feed copied here |
//!
//! `feed_replies` and `feed_copies` came within schema 3 before it was
//! released; a store opened by a kith without them gets them at open.

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
/// parent author ‖ parent id ‖ replier ‖ sequence → reply entry.
pub(crate) const FEED_REPLIES: TableDefinition<'_, &[u8; 104], &[u8]> =
    TableDefinition::new("feed_replies");
/// author ‖ manifest id → size of an attachment copied for that feed.
pub(crate) const FEED_COPIES: TableDefinition<'_, &[u8; 64], u64> =
    TableDefinition::new("feed_copies");

/// Creates the tables (part of opening the store).
pub(crate) fn create_tables(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(FEED_ENTRIES).db(path)?;
    txn.open_table(FEED_FORKS).db(path)?;
    txn.open_table(FOLLOWS).db(path)?;
    txn.open_table(FEED_REPLIES).db(path)?;
    txn.open_table(FEED_COPIES).db(path)?;
    Ok(())
}

fn copy_key(author: &[u8; 32], content: &[u8; 32]) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(author);
    key[32..].copy_from_slice(content);
    key
}

fn key(author: &[u8; 32], sequence: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(author);
    key[32..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// Where a reply is kept: under the post it answers, then its author and
/// sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyKey {
    /// The author of the post answered.
    pub parent_author: [u8; 32],
    /// The id of the post answered.
    pub parent_id: [u8; 32],
    /// Who replied.
    pub replier: [u8; 32],
    /// The reply's sequence in the replier's feed.
    pub sequence: u64,
}

impl ReplyKey {
    fn to_bytes(self) -> [u8; 104] {
        let mut key = [0u8; 104];
        key[..32].copy_from_slice(&self.parent_author);
        key[32..64].copy_from_slice(&self.parent_id);
        key[64..96].copy_from_slice(&self.replier);
        key[96..].copy_from_slice(&self.sequence.to_be_bytes());
        key
    }

    fn from_bytes(key: &[u8; 104]) -> Self {
        let part = |range: std::ops::Range<usize>| -> [u8; 32] {
            key[range].try_into().unwrap_or_default()
        };
        Self {
            parent_author: part(0..32),
            parent_id: part(32..64),
            replier: part(64..96),
            sequence: u64::from_be_bytes(key[96..].try_into().unwrap_or_default()),
        }
    }

    /// The first and last keys whose first `prefix` bytes are `self`'s.
    fn range(self, prefix: usize) -> ([u8; 104], [u8; 104]) {
        let mut from = self.to_bytes();
        let mut to = from;
        from[prefix..].fill(0);
        to[prefix..].fill(0xff);
        (from, to)
    }
}

/// How many replies the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Under one post.
    pub per_post: usize,
    /// Under all the posts of one author.
    pub per_feed: usize,
}

/// What happened to a reply offered to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyDecision {
    /// Kept: it is new here.
    Stored,
    /// Already held (or withdrawn: a replay does not bring it back).
    Held,
    /// The post or the feed has all the replies the limits allow.
    Full,
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

    /// The newest of `author`'s last `limit` entries for which `wanted`
    /// says yes, read one at a time (nothing else is kept in memory).
    pub fn find(
        &self,
        author: &[u8; 32],
        limit: usize,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_ENTRIES).db(path)?;
        let from = key(author, 0);
        let to = key(author, u64::MAX);
        for row in table
            .range::<&[u8; 40]>(&from..=&to)
            .db(path)?
            .rev()
            .take(limit)
        {
            let (key, value) = row.db(path)?;
            if wanted(value.value()) {
                let sequence = u64::from_be_bytes(key.value()[32..].try_into().unwrap_or_default());
                return Ok(Some((sequence, value.value().to_vec())));
            }
        }
        Ok(None)
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

    /// Drops every entry and fork of `author`, the replies to its posts and
    /// the record of its copied attachments (after an unfollow; the copies'
    /// shares stay as cached copies). Returns how many entries went.
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
            let (from, to) = ReplyKey {
                parent_author: *author,
                parent_id: [0; 32],
                replier: [0; 32],
                sequence: 0,
            }
            .range(32);
            txn.open_table(FEED_REPLIES)
                .db(path)?
                .retain_in::<&[u8; 104], _>(&from..=&to, |_, _| false)
                .db(path)?;
            txn.open_table(FEED_COPIES)
                .db(path)?
                .retain_in::<&[u8; 64], _>(
                    &copy_key(author, &[0; 32])..=&copy_key(author, &[0xff; 32]),
                    |_, _| false,
                )
                .db(path)?;
            dropped
        };
        txn.commit().db(path)?;
        Ok(dropped)
    }

    /// Keeps a reply under the post it answers, unless held or over
    /// `limits`.
    pub fn offer_reply(
        &self,
        at: ReplyKey,
        entry: &[u8],
        limits: ReplyLimits,
    ) -> Result<ReplyDecision> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let decision = {
            let mut replies = txn.open_table(FEED_REPLIES).db(path)?;
            let count_in = |prefix: usize, limit: usize| -> Result<usize> {
                let (from, to) = at.range(prefix);
                let mut count = 0;
                for row in replies.range::<&[u8; 104]>(&from..=&to).db(path)? {
                    row.db(path)?;
                    count += 1;
                    if count >= limit {
                        break;
                    }
                }
                Ok(count)
            };
            if replies.get(&at.to_bytes()).db(path)?.is_some() {
                ReplyDecision::Held
            } else if count_in(64, limits.per_post)? >= limits.per_post
                || count_in(32, limits.per_feed)? >= limits.per_feed
            {
                ReplyDecision::Full
            } else {
                replies.insert(&at.to_bytes(), entry).db(path)?;
                ReplyDecision::Stored
            }
        };
        if decision == ReplyDecision::Stored {
            txn.commit().db(path)?;
        }
        Ok(decision)
    }

    /// Replaces the first of `replier`'s replies under `parent_author`'s
    /// post `parent_id` for which `replace` gives new bytes (a reply's
    /// head alone, once withdrawn). Returns whether one was replaced.
    pub fn replace_reply(
        &self,
        parent_author: &[u8; 32],
        parent_id: &[u8; 32],
        replier: &[u8; 32],
        mut replace: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let replaced = {
            let mut replies = txn.open_table(FEED_REPLIES).db(path)?;
            let (from, to) = ReplyKey {
                parent_author: *parent_author,
                parent_id: *parent_id,
                replier: *replier,
                sequence: 0,
            }
            .range(96);
            let mut found = None;
            for row in replies.range::<&[u8; 104]>(&from..=&to).db(path)? {
                let (key, value) = row.db(path)?;
                if let Some(new) = replace(value.value()) {
                    found = Some((*key.value(), new));
                    break;
                }
            }
            match found {
                Some((key, new)) => {
                    replies.insert(&key, new.as_slice()).db(path)?;
                    true
                }
                None => false,
            }
        };
        if replaced {
            txn.commit().db(path)?;
        }
        Ok(replaced)
    }

    /// Up to `limit` replies under `parent_author`'s post `parent_id` (all
    /// its posts when `None`), by post, then replier and sequence.
    pub fn replies(
        &self,
        parent_author: &[u8; 32],
        parent_id: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<(ReplyKey, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_REPLIES).db(path)?;
        let (from, to) = ReplyKey {
            parent_author: *parent_author,
            parent_id: parent_id.copied().unwrap_or_default(),
            replier: [0; 32],
            sequence: 0,
        }
        .range(if parent_id.is_some() { 64 } else { 32 });
        let mut out = Vec::new();
        for row in table.range::<&[u8; 104]>(&from..=&to).db(path)? {
            if out.len() >= limit {
                break;
            }
            let (key, value) = row.db(path)?;
            out.push((ReplyKey::from_bytes(key.value()), value.value().to_vec()));
        }
        Ok(out)
    }

    /// Records an attachment of `author`'s feed copied here (`content`, its
    /// manifest id, of `size` bytes), if the feed's copies stay within
    /// `max_bytes`. Returns whether it is recorded (already or now).
    pub fn add_copy(
        &self,
        author: &[u8; 32],
        content: &[u8; 32],
        size: u64,
        max_bytes: u64,
    ) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let added = {
            let mut copies = txn.open_table(FEED_COPIES).db(path)?;
            let key = copy_key(author, content);
            if copies.get(&key).db(path)?.is_some() {
                return Ok(true);
            }
            let mut total = 0u64;
            for row in copies
                .range::<&[u8; 64]>(&copy_key(author, &[0; 32])..=&copy_key(author, &[0xff; 32]))
                .db(path)?
            {
                total = total.saturating_add(row.db(path)?.1.value());
            }
            if total.saturating_add(size) > max_bytes {
                false
            } else {
                copies.insert(&key, size).db(path)?;
                true
            }
        };
        if added {
            txn.commit().db(path)?;
        }
        Ok(added)
    }

    /// The attachments copied for `author`'s feed: (manifest id, size).
    pub fn copies(&self, author: &[u8; 32]) -> Result<Vec<([u8; 32], u64)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(FEED_COPIES).db(path)?;
        let mut out = Vec::new();
        for row in table
            .range::<&[u8; 64]>(&copy_key(author, &[0; 32])..=&copy_key(author, &[0xff; 32]))
            .db(path)?
        {
            let (key, size) = row.db(path)?;
            out.push((
                key.value()[32..].try_into().unwrap_or_default(),
                size.value(),
            ));
        }
        Ok(out)
    }

    /// Forgets an attachment copied for `author`'s feed (its post was
    /// deleted). Returns whether it was recorded.
    pub fn remove_copy(&self, author: &[u8; 32], content: &[u8; 32]) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let removed = txn
            .open_table(FEED_COPIES)
            .db(path)?
            .remove(&copy_key(author, content))
            .db(path)?
            .is_some();
        txn.commit().db(path)?;
        Ok(removed)
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
        let wanted = 17u64.to_le_bytes();
        assert_eq!(
            feeds.find(&author, 1000, |bytes| bytes == wanted).unwrap(),
            Some((17, wanted.to_vec()))
        );
        assert_eq!(
            feeds.find(&author, 10, |bytes| bytes == wanted).unwrap(),
            None
        );
        assert!(feeds.replace(&author, 5, b"bare").unwrap());
        assert_eq!(feeds.after(&author, 4, 1).unwrap()[0].1, b"bare");
        assert_eq!(feeds.head(&[2; 32]).unwrap(), 0);
        assert_eq!(feeds.drop_feed(&author).unwrap(), 300);
        assert_eq!(feeds.head(&author).unwrap(), 0);
        assert!(feeds.forks(&author).unwrap().is_empty());
    }

    #[test]
    fn replies_are_kept_under_their_post_within_limits() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = open(dir.path()).feeds();
        let limits = ReplyLimits {
            per_post: 3,
            per_feed: 5,
        };
        let at = |post: u8, replier: u8, sequence: u64| ReplyKey {
            parent_author: [1; 32],
            parent_id: [post; 32],
            replier: [replier; 32],
            sequence,
        };
        for sequence in 1..=3 {
            assert_eq!(
                feeds.offer_reply(at(7, 2, sequence), b"r", limits).unwrap(),
                ReplyDecision::Stored
            );
        }
        assert_eq!(
            feeds.offer_reply(at(7, 2, 2), b"r", limits).unwrap(),
            ReplyDecision::Held
        );
        // The post is full; another post of the feed is not, until the
        // feed is.
        assert_eq!(
            feeds.offer_reply(at(7, 3, 1), b"r", limits).unwrap(),
            ReplyDecision::Full
        );
        assert_eq!(
            feeds.offer_reply(at(8, 3, 1), b"a", limits).unwrap(),
            ReplyDecision::Stored
        );
        assert_eq!(
            feeds.offer_reply(at(9, 3, 1), b"b", limits).unwrap(),
            ReplyDecision::Stored
        );
        assert_eq!(
            feeds.offer_reply(at(9, 3, 2), b"c", limits).unwrap(),
            ReplyDecision::Full
        );
        let all = feeds.replies(&[1; 32], None, 100).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[3], (at(8, 3, 1), b"a".to_vec()));
        assert!(feeds.replies(&[2; 32], None, 100).unwrap().is_empty());
        let under = feeds.replies(&[1; 32], Some(&[8; 32]), 100).unwrap();
        assert_eq!(under, vec![(at(8, 3, 1), b"a".to_vec())]);
        // Withdrawn: replaced in place.
        assert!(
            feeds
                .replace_reply(&[1; 32], &[9; 32], &[3; 32], |bytes| (bytes == b"b")
                    .then(|| b"head".to_vec()))
                .unwrap()
        );
        assert!(
            !feeds
                .replace_reply(&[1; 32], &[9; 32], &[3; 32], |bytes| (bytes == b"zz")
                    .then(Vec::new))
                .unwrap()
        );
        assert_eq!(feeds.replies(&[1; 32], None, 100).unwrap()[4].1, b"head");
        feeds.drop_feed(&[1; 32]).unwrap();
        assert!(feeds.replies(&[1; 32], None, 100).unwrap().is_empty());
    }

    #[test]
    fn copied_attachments_stay_within_their_feeds_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let feeds = open(dir.path()).feeds();
        assert!(feeds.add_copy(&[1; 32], &[10; 32], 60, 100).unwrap());
        assert!(feeds.add_copy(&[1; 32], &[10; 32], 60, 100).unwrap());
        assert!(!feeds.add_copy(&[1; 32], &[11; 32], 50, 100).unwrap());
        assert!(feeds.add_copy(&[2; 32], &[11; 32], 50, 100).unwrap());
        assert_eq!(feeds.copies(&[1; 32]).unwrap(), vec![([10; 32], 60)]);
        assert!(feeds.remove_copy(&[1; 32], &[10; 32]).unwrap());
        assert!(feeds.add_copy(&[1; 32], &[11; 32], 50, 100).unwrap());
        feeds.drop_feed(&[1; 32]).unwrap();
        assert!(feeds.copies(&[1; 32]).unwrap().is_empty());
        assert_eq!(feeds.copies(&[2; 32]).unwrap().len(), 1);
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
