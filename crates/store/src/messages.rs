//! The node's messages, kept in the store's database: its inbox, the
//! sequence numbers it has seen and given out, and the sealed mail it holds
//! for other peers. (Until schema 2 they were `DIR/messages.redb`, beside
//! the store; [`Store::import_messages`] brings such a file in.)
//!
//! Long because: inbox, sequence numbers and held mail (indexes, quotas) share one database; tests too.
//!
//! Two kinds of data live side by side and never mix:
//!
//! - **The inbox** (this node's own letters, in plaintext: it is the
//!   recipient). An entry and the "seen" mark of its (author, seq) are
//!   written in one transaction, so a letter is shown once even if it
//!   arrives both directly and from a mailbox, or is replayed.
//! - **Held mail** (sealed letters for other peers): opaque bytes, keyed by
//!   their BLAKE3 hash, with the mailbox they are for, the peer that left
//!   them and an expiry. Indexes by mailbox, by depositor and by expiry keep
//!   every quota check and sweep a range scan.
//!
//! Beside the database, a high-water mark file (`DIR/messages.seq`, see
//! [`Messages::next_seq`]) keeps the node from reusing a sequence number
//! even if the database is lost.

use std::path::{Path, PathBuf};

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::error::{DbContext, Result, StoreError, io_error};
use crate::store::Store;

/// arrival number → [`InboxEntry`] as JSON.
pub(crate) const INBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("inbox");
/// (author peer id bytes, seq) → arrival number.
pub(crate) const SEEN: TableDefinition<'_, (&[u8], u64), u64> = TableDefinition::new("seen");
/// Counters: [`NEXT_SEQ`], [`NEXT_ARRIVAL`], [`MAIL_BYTES`].
pub(crate) const COUNTERS: TableDefinition<'_, &str, u64> =
    TableDefinition::new("message_counters");
/// The same counters in a `messages.redb` (schema 1, before the merge).
pub(crate) const LEGACY_COUNTERS: TableDefinition<'_, &str, u64> = TableDefinition::new("counters");
/// letter id → held-mail row ([`HeldMail::encode`]).
pub(crate) const MAIL: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("mail");
/// (mailbox id, letter id) → sealed length.
const MAIL_BY_BOX: TableDefinition<'_, (&[u8; 32], &[u8; 32]), u64> =
    TableDefinition::new("mail_by_box");
/// (depositor peer id bytes, letter id) → ().
const MAIL_BY_SENDER: TableDefinition<'_, (&[u8], &[u8; 32]), ()> =
    TableDefinition::new("mail_by_sender");
/// (expires at in ms, letter id) → ().
const MAIL_EXPIRY: TableDefinition<'_, (u64, &[u8; 32]), ()> = TableDefinition::new("mail_expiry");

pub(crate) const NEXT_SEQ: &str = "next_seq";
pub(crate) const NEXT_ARRIVAL: &str = "next_arrival";
const MAIL_BYTES: &str = "mail_bytes";

/// The file the messages lived in before schema 2, in the data folder.
pub const LEGACY_FILE: &str = "messages.redb";

/// The high-water mark's file in the data folder: the highest sequence
/// number this node has given a letter (decimal text), so that losing the
/// database never makes the node reuse one (see [`Messages::next_seq`]).
pub const SEQ_FILE: &str = "messages.seq";

/// How a letter reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Straight from the author's node.
    Direct,
    /// Collected from the peers holding this node's mailbox.
    Mailbox,
}

/// Where a received file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum FileState {
    /// In the inbox folder, verified.
    Received,
    /// Being fetched from the network (mail for an offline recipient).
    Fetching,
    /// Fetching failed; it is tried again at the next mail check.
    Failed(String),
}

/// What an inbox entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Content {
    /// A text message.
    Text {
        /// The text.
        text: String,
    },
    /// A file.
    File {
        /// The name its sender gave it.
        name: String,
        /// Its length.
        size: u64,
        /// Where it landed (inside the inbox folder), once received.
        path: Option<String>,
        /// Its BLAKE3 hash, in hex, once received.
        blake3: Option<String>,
        /// The capability it was sent as, for a file sent via mailbox.
        capability: Option<String>,
        /// Where it stands.
        #[serde(flatten)]
        state: FileState,
    },
}

/// One received letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// This node's arrival number: increasing, never reused.
    pub arrival: u64,
    /// The author's peer id.
    pub from: String,
    /// The author's time of writing, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The author's sequence number.
    pub seq: u64,
    /// When it arrived here, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// How it arrived.
    pub via: Via,
    /// What it holds.
    #[serde(flatten)]
    pub content: Content,
}

/// A sealed letter this node holds for another peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMail {
    /// The recipient's mailbox id.
    pub mailbox: [u8; 32],
    /// The peer that deposited it.
    pub depositor: Vec<u8>,
    /// When it may be dropped, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

impl HeldMail {
    /// The row kept in the `mail` table, version 1: `1 ‖ mailbox (32) ‖
    /// expires_at_ms u64 LE ‖ depositor length u8 ‖ depositor ‖ sealed`
    /// (the layout `messages.redb` used, kept so that its rows import as
    /// they are). The serde struct `MailHead` defines the fixed part,
    /// written and read by [`kith_base::layout`]; a test vector pins it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 8 + 1 + self.depositor.len() + self.sealed.len());
        let head = MailHead {
            version: MAIL_ROW_VERSION,
            mailbox: self.mailbox,
            expires_at_ms: self.expires_at_ms,
            // A peer id's bytes: well under 256.
            depositor_len: self.depositor.len() as u8,
        };
        kith_base::layout::write(&head, &mut out);
        out.extend_from_slice(&self.depositor);
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Reads a row written by [`HeldMail::encode`]; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (head, rest) = kith_base::layout::read::<MailHead>(bytes, "held mail").ok()?;
        if head.version != MAIL_ROW_VERSION {
            return None;
        }
        let (depositor, sealed) =
            kith_base::layout::split(rest, usize::from(head.depositor_len), "depositor").ok()?;
        Some(Self {
            mailbox: head.mailbox,
            depositor: depositor.to_vec(),
            expires_at_ms: head.expires_at_ms,
            sealed: sealed.to_vec(),
        })
    }
}

const MAIL_ROW_VERSION: u8 = 1;

/// The fixed start of a held-mail row.
#[derive(serde::Serialize, serde::Deserialize)]
struct MailHead {
    version: u8,
    mailbox: [u8; 32],
    #[serde(with = "kith_base::layout::le")]
    expires_at_ms: u64,
    depositor_len: u8,
}

/// A held letter's id and its sealed bytes.
pub type HeldLetter = ([u8; 32], Vec<u8>);

/// Limits on the mail a node holds for others.
#[derive(Debug, Clone, Copy)]
pub struct MailLimits {
    /// Most letters held for one mailbox.
    pub per_mailbox_items: u64,
    /// Most bytes held for one mailbox.
    pub per_mailbox_bytes: u64,
    /// Most letters held from one depositor, over all mailboxes.
    pub per_sender_items: u64,
    /// Most bytes of letters held from one depositor, over all mailboxes.
    pub per_sender_bytes: u64,
    /// Most bytes held in all.
    pub total_bytes: u64,
}

impl Default for MailLimits {
    fn default() -> Self {
        Self {
            per_mailbox_items: 256,
            per_mailbox_bytes: 4 << 20,
            per_sender_items: 128,
            per_sender_bytes: 4 << 20,
            total_bytes: 64 << 20,
        }
    }
}

/// Why held mail was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailRefusal {
    /// The recipient's mailbox here is full.
    #[error("this peer already holds as much mail for that recipient as it will")]
    MailboxFull,
    /// The depositor left as many letters as it may.
    #[error(
        "this peer already holds as many letters from you as it holds from any one peer; \
         leave it with another peer or wait until some are collected"
    )]
    SenderQuota,
    /// The depositor left as many bytes of letters as it may.
    #[error(
        "this peer already holds as many bytes of letters from you as it holds from any one \
         peer; leave it with another peer or wait until some are collected"
    )]
    SenderBytes,
    /// The node holds as much mail as it will.
    #[error("this peer holds as much mail as it will")]
    Full,
}

/// Whether a deposit was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Stored now.
    New,
    /// Was already held.
    Already,
}

/// Creates the message tables (part of opening the store).
pub(crate) fn create_tables(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(INBOX).db(path)?;
    txn.open_table(SEEN).db(path)?;
    txn.open_table(COUNTERS).db(path)?;
    txn.open_table(MAIL).db(path)?;
    txn.open_table(MAIL_BY_BOX).db(path)?;
    txn.open_table(MAIL_BY_SENDER).db(path)?;
    txn.open_table(MAIL_EXPIRY).db(path)?;
    Ok(())
}

/// The node's messages in the store's database. Cheap to clone; every call
/// may block on the disk, so async callers run it on the blocking pool.
#[derive(Clone)]
pub struct Messages {
    store: Store,
    /// The high-water mark ([`SEQ_FILE`]).
    seq_file: PathBuf,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("db", &self.path())
            .field("seq_file", &self.seq_file)
            .finish()
    }
}

impl Store {
    /// The node's messages, with their sequence-number high-water mark in
    /// `seq_file` (the data folder's [`SEQ_FILE`]). Warns if the database
    /// is behind that mark: it was deleted, emptied or replaced since this
    /// node last wrote a letter.
    pub fn messages(&self, seq_file: impl Into<PathBuf>) -> Messages {
        let messages = Messages {
            store: self.clone(),
            seq_file: seq_file.into(),
        };
        messages.warn_if_reset();
        messages
    }
}

impl Messages {
    fn path(&self) -> &Path {
        self.store.db_path()
    }

    fn db(&self) -> &redb::Database {
        &self.store.inner.db
    }

    fn write(&self) -> Result<WriteTransaction> {
        self.db().begin_write().db(self.path())
    }

    /// Warns if the database's letter counter is behind the high-water mark
    /// kept beside it.
    fn warn_if_reset(&self) {
        let counted = self
            .db()
            .begin_read()
            .ok()
            .and_then(|txn| txn.open_table(COUNTERS).ok())
            .and_then(|table| table.get(NEXT_SEQ).ok().flatten().map(|v| v.value()))
            .unwrap_or(0);
        let mark = read_seq_mark(&self.seq_file);
        if mark > counted {
            tracing::warn!(
                "{} was reset or replaced since this node last wrote a letter (it counts {counted} \
                 letters, {} says {mark}): the inbox and mail it held are gone; new letters are \
                 numbered after {mark}, so friends accept them",
                self.path().display(),
                self.seq_file.display()
            );
        }
    }

    /// The next sequence number for a letter this node writes: never one
    /// given before, even if the database was lost.
    ///
    /// Receivers keep every (author, seq) they have shown and refuse a
    /// repeat as "already delivered", so a reused number would lose the
    /// letter. The number is above the database's counter, above the
    /// high-water mark in [`SEQ_FILE`] (written, durably, before the
    /// counter commits) and at least the time in microseconds since the
    /// Unix epoch, so that even losing both files reuses nothing while the
    /// clock does not go back. Numbers still rise by letter, as readers
    /// expect; they are no longer dense.
    pub fn next_seq(&self) -> Result<u64> {
        let path = self.path();
        let txn = self.write()?;
        let floor = counter(&txn, NEXT_SEQ, path)?.max(read_seq_mark(&self.seq_file));
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_micros() as u64);
        let seq = floor.saturating_add(1).max(now_us);
        set_counter(&txn, NEXT_SEQ, seq, path)?;
        // While the write transaction is held, so marks are written in order.
        write_seq_mark(&self.seq_file, seq)
            .map_err(|error| io_error("write", &self.seq_file, error))?;
        txn.commit().db(path)?;
        Ok(seq)
    }

    /// Whether the letter (author, seq) is already in the inbox.
    pub fn seen(&self, author: &[u8], seq: u64) -> Result<bool> {
        let path = self.path();
        let txn = self.db().begin_read().db(path)?;
        let table = txn.open_table(SEEN).db(path)?;
        Ok(table.get((author, seq)).db(path)?.is_some())
    }

    /// Adds an entry (its `arrival` is assigned here) unless its (author,
    /// seq) was seen before. Returns the arrival number, or `None` for a
    /// duplicate.
    pub fn record(&self, author: &[u8], mut entry: InboxEntry) -> Result<Option<u64>> {
        let path = self.path();
        let txn = self.write()?;
        {
            let mut seen = txn.open_table(SEEN).db(path)?;
            if seen.get((author, entry.seq)).db(path)?.is_some() {
                return Ok(None);
            }
            entry.arrival = bump(&txn, NEXT_ARRIVAL, path)?;
            seen.insert((author, entry.seq), entry.arrival).db(path)?;
            txn.open_table(INBOX)
                .db(path)?
                .insert(entry.arrival, entry.encode()?.as_slice())
                .db(path)?;
        }
        txn.commit().db(path)?;
        Ok(Some(entry.arrival))
    }

    /// Replaces the entry with the same arrival number (a file's state).
    pub fn update(&self, entry: &InboxEntry) -> Result<()> {
        let path = self.path();
        let txn = self.write()?;
        txn.open_table(INBOX)
            .db(path)?
            .insert(entry.arrival, entry.encode()?.as_slice())
            .db(path)?;
        txn.commit().db(path)
    }

    /// Entries that arrived after `after` (all for 0), in arrival order.
    pub fn entries_after(&self, after: u64) -> Result<Vec<InboxEntry>> {
        let path = self.path();
        let txn = self.db().begin_read().db(path)?;
        let table = txn.open_table(INBOX).db(path)?;
        let mut entries = Vec::new();
        for row in table.range((after.saturating_add(1))..).db(path)? {
            let (_, value) = row.db(path)?;
            match serde_json::from_slice::<InboxEntry>(value.value()) {
                Ok(entry) => entries.push(entry),
                Err(error) => tracing::warn!(%error, "skipping an unreadable inbox entry"),
            }
        }
        Ok(entries)
    }

    /// Holds a sealed letter for `mail.mailbox`, within `limits`.
    pub fn hold(
        &self,
        id: [u8; 32],
        mail: &HeldMail,
        limits: &MailLimits,
    ) -> Result<std::result::Result<Held, MailRefusal>> {
        let path = self.path();
        let txn = self.write()?;
        let len = mail.sealed.len() as u64;
        {
            if txn.open_table(MAIL).db(path)?.get(&id).db(path)?.is_some() {
                return Ok(Ok(Held::Already));
            }
            let by_box = txn.open_table(MAIL_BY_BOX).db(path)?;
            let (mut items, mut bytes) = (0u64, 0u64);
            for row in by_box
                .range((&mail.mailbox, &[0u8; 32])..=(&mail.mailbox, &[0xffu8; 32]))
                .db(path)?
            {
                items += 1;
                bytes += row.db(path)?.1.value();
            }
            if items >= limits.per_mailbox_items || bytes + len > limits.per_mailbox_bytes {
                return Ok(Err(MailRefusal::MailboxFull));
            }
            let by_sender = txn.open_table(MAIL_BY_SENDER).db(path)?;
            let rows = txn.open_table(MAIL).db(path)?;
            let (mut from_sender, mut sender_bytes) = (0u64, 0u64);
            for row in by_sender
                .range(
                    (mail.depositor.as_slice(), &[0u8; 32])
                        ..=(mail.depositor.as_slice(), &[0xffu8; 32]),
                )
                .db(path)?
            {
                let (key, _) = row.db(path)?;
                from_sender += 1;
                if let Some(value) = rows.get(key.value().1).db(path)?
                    && let Some(held) = HeldMail::decode(value.value())
                {
                    sender_bytes += held.sealed.len() as u64;
                }
            }
            if from_sender >= limits.per_sender_items {
                return Ok(Err(MailRefusal::SenderQuota));
            }
            if sender_bytes + len > limits.per_sender_bytes {
                return Ok(Err(MailRefusal::SenderBytes));
            }
            let total = counter(&txn, MAIL_BYTES, path)?;
            if total + len > limits.total_bytes {
                return Ok(Err(MailRefusal::Full));
            }
        }
        insert_mail(&txn, &id, mail, &mail.encode(), path)?;
        txn.commit().db(path)?;
        Ok(Ok(Held::New))
    }

    /// Up to `max_items` letters (and about `max_bytes`) held for
    /// `mailbox`, with their ids.
    pub fn mail_for(
        &self,
        mailbox: &[u8; 32],
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<HeldLetter>> {
        let path = self.path();
        let txn = self.db().begin_read().db(path)?;
        let by_box = txn.open_table(MAIL_BY_BOX).db(path)?;
        let rows = txn.open_table(MAIL).db(path)?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in by_box
            .range((mailbox, &[0u8; 32])..=(mailbox, &[0xffu8; 32]))
            .db(path)?
        {
            let (key, _) = row.db(path)?;
            let id = *key.value().1;
            if let Some(value) = rows.get(&id).db(path)?
                && let Some(mail) = HeldMail::decode(value.value())
            {
                if out.len() >= max_items
                    || (bytes + mail.sealed.len() > max_bytes && !out.is_empty())
                {
                    break;
                }
                bytes += mail.sealed.len();
                out.push((id, mail.sealed));
            }
        }
        Ok(out)
    }

    /// Drops the held letters `ids` that belong to `mailbox` (others are
    /// left alone). Returns how many were dropped.
    pub fn drop_mail(&self, mailbox: &[u8; 32], ids: &[[u8; 32]]) -> Result<usize> {
        let path = self.path();
        let txn = self.write()?;
        let mut dropped = 0;
        for id in ids {
            if remove_mail(&txn, id, Some(mailbox), path)? {
                dropped += 1;
            }
        }
        txn.commit().db(path)?;
        Ok(dropped)
    }

    /// Drops every held letter whose expiry is before `now_ms`.
    pub fn expire_mail(&self, now_ms: u64) -> Result<usize> {
        let path = self.path();
        let expired: Vec<[u8; 32]> = {
            let txn = self.db().begin_read().db(path)?;
            let table = txn.open_table(MAIL_EXPIRY).db(path)?;
            let mut ids = Vec::new();
            for row in table.range(..(now_ms, &[0u8; 32])).db(path)? {
                ids.push(*row.db(path)?.0.value().1);
            }
            ids
        };
        let txn = self.write()?;
        let mut dropped = 0;
        for id in &expired {
            if remove_mail(&txn, id, None, path)? {
                dropped += 1;
            }
        }
        txn.commit().db(path)?;
        Ok(dropped)
    }

    /// How many letters and bytes of mail this node holds for others.
    pub fn mail_held(&self) -> Result<(u64, u64)> {
        let path = self.path();
        let txn = self.db().begin_read().db(path)?;
        let count = txn.open_table(MAIL).db(path)?.len().db(path)?;
        let bytes = txn
            .open_table(COUNTERS)
            .db(path)?
            .get(MAIL_BYTES)
            .db(path)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok((count, bytes))
    }
}

impl InboxEntry {
    /// The row kept in the `inbox` table: JSON, as `messages.redb` kept it.
    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|error| StoreError::Internal {
            what: format!("encoding an inbox entry: {error}"),
        })
    }
}

pub(crate) fn counter(txn: &WriteTransaction, name: &str, path: &Path) -> Result<u64> {
    let table = txn.open_table(COUNTERS).db(path)?;
    Ok(table.get(name).db(path)?.map(|v| v.value()).unwrap_or(0))
}

pub(crate) fn set_counter(
    txn: &WriteTransaction,
    name: &str,
    value: u64,
    path: &Path,
) -> Result<()> {
    txn.open_table(COUNTERS)
        .db(path)?
        .insert(name, value)
        .db(path)?;
    Ok(())
}

/// The high-water mark in `path`; 0 if it is missing or unreadable.
fn read_seq_mark(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Replaces the high-water mark in `path` atomically and durably (temp
/// file, fsync, rename, fsync of the folder).
fn write_seq_mark(path: &Path, seq: u64) -> std::io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension("seq.tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(format!("{seq}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Returns the counter's next value (starting at 1) and stores it.
fn bump(txn: &WriteTransaction, name: &str, path: &Path) -> Result<u64> {
    let next = counter(txn, name, path)? + 1;
    set_counter(txn, name, next, path)?;
    Ok(next)
}

/// Inserts a held letter (`row` is `mail` encoded) with its index entries
/// and adds its bytes to the total. The caller checked that `id` is new.
pub(crate) fn insert_mail(
    txn: &WriteTransaction,
    id: &[u8; 32],
    mail: &HeldMail,
    row: &[u8],
    path: &Path,
) -> Result<()> {
    let len = mail.sealed.len() as u64;
    txn.open_table(MAIL).db(path)?.insert(id, row).db(path)?;
    txn.open_table(MAIL_BY_BOX)
        .db(path)?
        .insert((&mail.mailbox, id), len)
        .db(path)?;
    txn.open_table(MAIL_BY_SENDER)
        .db(path)?
        .insert((mail.depositor.as_slice(), id), ())
        .db(path)?;
    txn.open_table(MAIL_EXPIRY)
        .db(path)?
        .insert((mail.expires_at_ms, id), ())
        .db(path)?;
    let total = counter(txn, MAIL_BYTES, path)?;
    set_counter(txn, MAIL_BYTES, total + len, path)
}

fn remove_mail(
    txn: &WriteTransaction,
    id: &[u8; 32],
    only_in: Option<&[u8; 32]>,
    path: &Path,
) -> Result<bool> {
    let mail = {
        let rows = txn.open_table(MAIL).db(path)?;
        let Some(value) = rows.get(id).db(path)? else {
            return Ok(false);
        };
        HeldMail::decode(value.value())
    };
    let Some(mail) = mail else {
        txn.open_table(MAIL).db(path)?.remove(id).db(path)?;
        return Ok(true);
    };
    if only_in.is_some_and(|mailbox| *mailbox != mail.mailbox) {
        return Ok(false);
    }
    txn.open_table(MAIL).db(path)?.remove(id).db(path)?;
    txn.open_table(MAIL_BY_BOX)
        .db(path)?
        .remove((&mail.mailbox, id))
        .db(path)?;
    txn.open_table(MAIL_BY_SENDER)
        .db(path)?
        .remove((mail.depositor.as_slice(), id))
        .db(path)?;
    txn.open_table(MAIL_EXPIRY)
        .db(path)?
        .remove((mail.expires_at_ms, id))
        .db(path)?;
    let total = counter(txn, MAIL_BYTES, path)?;
    set_counter(
        txn,
        MAIL_BYTES,
        total.saturating_sub(mail.sealed.len() as u64),
        path,
    )?;
    Ok(true)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    /// The held-mail row, byte for byte: rows on disk (and in old
    /// `messages.redb` files, imported as they are) are read with it.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let mail = HeldMail {
            mailbox: [0x11; 32],
            depositor: vec![0xd0, 0xd1, 0xd2],
            expires_at_ms: 0x0102_0304_0506_0708,
            sealed: vec![0xee; 5],
        };
        let hex = kith_base::layout::to_hex;
        let expected = format!(
            "01{}{}03d0d1d2{}",
            "11".repeat(32),
            "0807060504030201",
            "ee".repeat(5)
        );
        assert_eq!(hex(&mail.encode()), expected);
        assert_eq!(HeldMail::decode(&mail.encode()), Some(mail.clone()));
        let empty = HeldMail {
            depositor: vec![],
            sealed: vec![],
            ..mail.clone()
        };
        assert_eq!(HeldMail::decode(&empty.encode()), Some(empty));
        let row = mail.encode();
        for len in 0..1 + 32 + 8 + 1 + 3 {
            assert_eq!(HeldMail::decode(&row[..len]), None, "cut at {len}");
        }
        let mut newer = row.clone();
        newer[0] = 2;
        assert_eq!(HeldMail::decode(&newer), None);
    }

    fn open(dir: &Path) -> (Store, Messages) {
        let store = Store::open(
            dir.join("store"),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap();
        let messages = store.messages(dir.join(SEQ_FILE));
        (store, messages)
    }

    fn db() -> (tempfile::TempDir, Messages) {
        let dir = tempfile::tempdir().unwrap();
        let (_store, db) = open(dir.path());
        (dir, db)
    }

    fn text(seq: u64) -> InboxEntry {
        InboxEntry {
            arrival: 0,
            from: "peer".into(),
            sent_at_ms: 1,
            seq,
            received_at_ms: 2,
            via: Via::Direct,
            content: Content::Text {
                text: format!("message {seq}"),
            },
        }
    }

    #[test]
    fn an_author_and_seq_is_recorded_once() {
        let (_dir, db) = db();
        assert_eq!(db.record(b"alice", text(1)).unwrap(), Some(1));
        assert_eq!(db.record(b"alice", text(1)).unwrap(), None);
        assert_eq!(db.record(b"bob", text(1)).unwrap(), Some(2));
        assert!(db.seen(b"alice", 1).unwrap());
        assert!(!db.seen(b"alice", 2).unwrap());
        let entries = db.entries_after(0).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(db.entries_after(1).unwrap().len(), 1);
        let first = db.next_seq().unwrap();
        assert!(db.next_seq().unwrap() > first);
    }

    #[test]
    fn sequence_numbers_are_never_reused_when_the_database_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store").join("store.redb");
        let mut last = 0;
        for lose in ["nothing", "the database", "the database and the mark"] {
            match lose {
                "the database" => std::fs::remove_file(&path).unwrap(),
                "the database and the mark" => {
                    std::fs::remove_file(&path).unwrap();
                    std::fs::remove_file(dir.path().join(SEQ_FILE)).unwrap();
                }
                _ => {}
            }
            let (_store, db) = open(dir.path());
            for _ in 0..3 {
                let seq = db.next_seq().unwrap();
                assert!(seq > last, "after losing {lose}: {seq} after {last}");
                last = seq;
            }
        }
        // A mark far ahead of the clock (a clock set back) still wins.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join(SEQ_FILE), format!("{}\n", u64::MAX / 2)).unwrap();
        let (_store, db) = open(dir.path());
        assert_eq!(db.next_seq().unwrap(), u64::MAX / 2 + 1);
    }

    #[test]
    fn held_mail_respects_every_quota_and_expires() {
        let (_dir, db) = db();
        let limits = MailLimits {
            per_mailbox_items: 2,
            per_mailbox_bytes: 1000,
            per_sender_items: 3,
            per_sender_bytes: 1 << 20,
            total_bytes: 2000,
        };
        let mail = |mailbox: u8, sender: &[u8], expires: u64, len: usize| HeldMail {
            mailbox: [mailbox; 32],
            depositor: sender.to_vec(),
            expires_at_ms: expires,
            sealed: vec![mailbox; len],
        };
        let id = |n: u8| [n; 32];
        assert_eq!(
            db.hold(id(1), &mail(1, b"s", 10, 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(
            db.hold(id(1), &mail(1, b"s", 10, 100), &limits).unwrap(),
            Ok(Held::Already)
        );
        assert_eq!(
            db.hold(id(2), &mail(1, b"s", 20, 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(
            db.hold(id(3), &mail(1, b"t", 20, 100), &limits).unwrap(),
            Err(MailRefusal::MailboxFull)
        );
        assert_eq!(
            db.hold(id(4), &mail(2, b"s", 20, 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(
            db.hold(id(5), &mail(3, b"s", 20, 100), &limits).unwrap(),
            Err(MailRefusal::SenderQuota)
        );
        assert_eq!(
            db.hold(id(6), &mail(3, b"t", 20, 1900), &limits).unwrap(),
            Err(MailRefusal::MailboxFull),
            "more than a mailbox's bytes"
        );
        assert_eq!(db.mail_held().unwrap(), (3, 300));
        // Collect from mailbox 1; a drop for the wrong mailbox does nothing.
        let held = db.mail_for(&[1; 32], 10, 1 << 20).unwrap();
        assert_eq!(held.len(), 2);
        assert_eq!(db.drop_mail(&[2; 32], &[id(1)]).unwrap(), 0);
        assert_eq!(db.drop_mail(&[1; 32], &[id(1)]).unwrap(), 1);
        assert_eq!(db.mail_for(&[1; 32], 10, 1 << 20).unwrap().len(), 1);
        // Expiry: id 2 and 4 expire at 20.
        assert_eq!(db.expire_mail(20).unwrap(), 0);
        assert_eq!(db.expire_mail(21).unwrap(), 2);
        assert_eq!(db.mail_held().unwrap(), (0, 0));
    }

    #[test]
    fn one_sender_is_held_to_its_letters_and_bytes_whatever_the_mailbox() {
        let (_dir, db) = db();
        let limits = MailLimits {
            per_sender_items: 10,
            per_sender_bytes: 250,
            ..MailLimits::default()
        };
        let mail = |mailbox: u8, sender: &[u8], len: usize| HeldMail {
            mailbox: [mailbox; 32],
            depositor: sender.to_vec(),
            expires_at_ms: 10,
            sealed: vec![mailbox; len],
        };
        assert_eq!(
            db.hold([1; 32], &mail(1, b"s", 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(
            db.hold([2; 32], &mail(2, b"s", 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(
            db.hold([3; 32], &mail(3, b"s", 100), &limits).unwrap(),
            Err(MailRefusal::SenderBytes)
        );
        // Another sender still may, and so may this one once a letter goes.
        assert_eq!(
            db.hold([4; 32], &mail(3, b"t", 100), &limits).unwrap(),
            Ok(Held::New)
        );
        assert_eq!(db.drop_mail(&[1; 32], &[[1; 32]]).unwrap(), 1);
        assert_eq!(
            db.hold([3; 32], &mail(3, b"s", 100), &limits).unwrap(),
            Ok(Held::New)
        );
    }
}
