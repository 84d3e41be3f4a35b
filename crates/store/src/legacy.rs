//! Importing the databases the node kept beside the store before schema 2:
//! `DIR/messages.redb` ([`crate::messages`]) and `DIR/owned.redb`
//! ([`crate::owned`]).
//!
//! An import copies the old file's rows into the store's database in one
//! durable transaction, then renames the old file to
//! `<name>.imported-<unix seconds>` (kept, never deleted). A crash between
//! the two leaves the old file in place, and the next start imports it
//! again: every import is idempotent (a row already in the store is kept,
//! counters take the larger value), so nothing is doubled.
//!
//! A damaged old file is [`ImportError::Open`] with
//! [`OpenDbError::Damaged`]; the node then moves it aside and starts without
//! its rows, as it did when the file itself was its database.

use std::path::{Path, PathBuf};

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use crate::error::{DbContext, StoreError, io_error};
use crate::messages::{
    self, HeldMail, INBOX, InboxEntry, LEGACY_COUNTERS, MAIL, NEXT_ARRIVAL, NEXT_SEQ, SEEN,
};
use crate::open_db::{OpenDbError, guard, move_aside_as, open_database};
use crate::owned::{OWNED, OwnedFile};
use crate::store::Store;

/// Why an old side database could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The old file could not be opened or read: damaged (the caller may
    /// move it aside), locked by another process, or unreadable.
    #[error(transparent)]
    Open(#[from] OpenDbError),
    /// Writing its rows into the store, or renaming the old file once they
    /// were in, failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Rows copied into the store (inbox entries and held letters, or owned
    /// files).
    pub rows: u64,
    /// Rows that could not be read, left out.
    pub unreadable: u64,
    /// Where the old file is now.
    pub moved_to: PathBuf,
}

impl Store {
    /// Imports a `messages.redb` written before schema 2 (the inbox, the
    /// letters seen, the sequence counter, held mail) and renames it to
    /// `messages.redb.imported-<time>`. `Ok(None)` if there is no such file.
    pub fn import_messages(&self, legacy: &Path) -> Result<Option<Imported>, ImportError> {
        self.import(legacy, copy_messages)
    }

    /// Imports an `owned.redb` written before schema 2 and renames it to
    /// `owned.redb.imported-<time>`. `Ok(None)` if there is no such file.
    pub fn import_owned(&self, legacy: &Path) -> Result<Option<Imported>, ImportError> {
        self.import(legacy, copy_owned)
    }

    fn import(
        &self,
        legacy: &Path,
        copy: fn(&Source<'_>, &WriteTransaction, &Path) -> Result<Counts, ImportError>,
    ) -> Result<Option<Imported>, ImportError> {
        match std::fs::symlink_metadata(legacy) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("look at", legacy, error).into()),
        }
        let old = open_database(legacy, &redb::Builder::new())?;
        let dest = self.db_path();
        // redb may panic on a garbled page its checksums did not cover. (A
        // panic while writing the store would be blamed on the old file
        // too; nothing of it is committed either way.)
        let counts = guard(legacy, || {
            let read = old.begin_read().legacy(legacy)?;
            let source = Source {
                txn: &read,
                path: legacy,
            };
            let txn = self.inner.db.begin_write().db(dest)?;
            let counts = copy(&source, &txn, dest)?;
            txn.commit().db(dest)?;
            Ok::<_, ImportError>(counts)
        })??;
        drop(old);
        let moved_to =
            move_aside_as(legacy, "imported").map_err(|error| io_error("rename", legacy, error))?;
        tracing::info!(
            from = %legacy.display(),
            into = %dest.display(),
            rows = counts.rows,
            unreadable = counts.unreadable,
            "imported an old side database; it is kept as {}",
            moved_to.display()
        );
        Ok(Some(Imported {
            rows: counts.rows,
            unreadable: counts.unreadable,
            moved_to,
        }))
    }
}

#[derive(Debug, Default)]
struct Counts {
    rows: u64,
    unreadable: u64,
}

/// The old file being read.
struct Source<'a> {
    txn: &'a ReadTransaction,
    path: &'a Path,
}

impl Source<'_> {
    /// The old table, or `None` if the file never had it.
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        definition: TableDefinition<'_, K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>, ImportError> {
        match self.txn.open_table(definition) {
            Ok(table) => Ok(Some(table)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(error) => Err(OpenDbError::from_redb(self.path, error).into()),
        }
    }
}

/// Errors reading the old file name it (and a damaged one is
/// [`OpenDbError::Damaged`]).
trait LegacyContext<T> {
    fn legacy(self, path: &Path) -> Result<T, ImportError>;
}

impl<T, E: Into<redb::Error>> LegacyContext<T> for Result<T, E> {
    fn legacy(self, path: &Path) -> Result<T, ImportError> {
        self.map_err(|error| OpenDbError::from_redb(path, error).into())
    }
}

fn copy_messages(
    source: &Source<'_>,
    txn: &WriteTransaction,
    dest: &Path,
) -> Result<Counts, ImportError> {
    let old = source.path;
    let mut counts = Counts::default();
    let old_counter = |name: &str| -> Result<u64, ImportError> {
        Ok(match source.table(LEGACY_COUNTERS)? {
            Some(table) => table.get(name).legacy(old)?.map_or(0, |v| v.value()),
            None => 0,
        })
    };
    // The sequence counter: the larger, so that no number is given twice.
    let seq = messages::counter(txn, NEXT_SEQ, dest)?.max(old_counter(NEXT_SEQ)?);
    messages::set_counter(txn, NEXT_SEQ, seq, dest)?;

    // The inbox, through its (author, seq) marks, in arrival order. An
    // entry keeps its arrival number unless the store already uses it.
    if let (Some(seen), Some(inbox)) = (source.table(SEEN)?, source.table(INBOX)?) {
        let mut marks = Vec::new();
        for row in seen.iter().legacy(old)? {
            let (key, arrival) = row.legacy(old)?;
            let (author, seq) = key.value();
            marks.push((arrival.value(), author.to_vec(), seq));
        }
        marks.sort();
        let mut new_seen = txn.open_table(SEEN).db(dest)?;
        let mut new_inbox = txn.open_table(INBOX).db(dest)?;
        for (arrival, author, seq) in marks {
            if new_seen.get((author.as_slice(), seq)).db(dest)?.is_some() {
                continue;
            }
            let Some(row) = inbox.get(arrival).legacy(old)? else {
                continue;
            };
            let Ok(mut entry) = serde_json::from_slice::<InboxEntry>(row.value()) else {
                counts.unreadable += 1;
                continue;
            };
            if new_inbox.get(arrival).db(dest)?.is_some() {
                let last = new_inbox.last().db(dest)?.map_or(0, |(key, _)| key.value());
                entry.arrival = last + 1;
            } else {
                entry.arrival = arrival;
            }
            let json = serde_json::to_vec(&entry).map_err(|error| StoreError::Internal {
                what: format!("encoding an inbox entry: {error}"),
            })?;
            new_inbox.insert(entry.arrival, json.as_slice()).db(dest)?;
            new_seen
                .insert((author.as_slice(), seq), entry.arrival)
                .db(dest)?;
            counts.rows += 1;
        }
        let last = new_inbox.last().db(dest)?.map_or(0, |(key, _)| key.value());
        drop((new_seen, new_inbox));
        let next = messages::counter(txn, NEXT_ARRIVAL, dest)?
            .max(old_counter(NEXT_ARRIVAL)?)
            .max(last);
        messages::set_counter(txn, NEXT_ARRIVAL, next, dest)?;
    }

    // Held mail: the rows, with their indexes and byte total rebuilt.
    if let Some(mail) = source.table(MAIL)? {
        for row in mail.iter().legacy(old)? {
            let (id, value) = row.legacy(old)?;
            let id = *id.value();
            if txn.open_table(MAIL).db(dest)?.get(&id).db(dest)?.is_some() {
                continue;
            }
            let Some(held) = HeldMail::decode(value.value()) else {
                counts.unreadable += 1;
                continue;
            };
            messages::insert_mail(txn, &id, &held, value.value(), dest)?;
            counts.rows += 1;
        }
    }
    Ok(counts)
}

fn copy_owned(
    source: &Source<'_>,
    txn: &WriteTransaction,
    dest: &Path,
) -> Result<Counts, ImportError> {
    let old = source.path;
    let mut counts = Counts::default();
    let Some(table) = source.table(OWNED)? else {
        return Ok(counts);
    };
    let mut new = txn.open_table(OWNED).db(dest)?;
    for row in table.iter().legacy(old)? {
        let (manifest, value) = row.legacy(old)?;
        // A row already in the store is newer (a renewal since).
        if new.get(manifest.value()).db(dest)?.is_some() {
            continue;
        }
        if OwnedFile::decode(value.value()).is_none() {
            counts.unreadable += 1;
            continue;
        }
        new.insert(manifest.value(), value.value()).db(dest)?;
        counts.rows += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use crate::messages::{Content, MailLimits, SEQ_FILE, Via};
    use kith_base::ContentId;

    fn open(dir: &Path) -> Store {
        Store::open(
            dir.join("store"),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap()
    }

    fn entry(from: &str, seq: u64, arrival: u64) -> InboxEntry {
        InboxEntry {
            arrival,
            from: from.into(),
            sent_at_ms: 1,
            seq,
            received_at_ms: 2,
            via: Via::Direct,
            content: Content::Text {
                text: format!("{from} {seq}"),
            },
        }
    }

    fn mail() -> HeldMail {
        HeldMail {
            mailbox: [7; 32],
            depositor: b"dave".to_vec(),
            expires_at_ms: 5000,
            sealed: vec![1; 300],
        }
    }

    fn owned_file() -> OwnedFile {
        OwnedFile {
            expires_at: 100,
            groups: vec![([3; 32], vec![ContentId::of(b"s")])],
        }
    }

    /// A `messages.redb` as kith wrote it before schema 2: alice's letter 1
    /// (arrival 1), bob's letter 1 (arrival 2), 41 letters written, one
    /// held letter.
    fn write_old_messages(path: &Path) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut seen = txn.open_table(SEEN).unwrap();
            let mut inbox = txn.open_table(INBOX).unwrap();
            for (author, arrival) in [("alice", 1), ("bob", 2)] {
                seen.insert((author.as_bytes(), 1), arrival).unwrap();
                let json = serde_json::to_vec(&entry(author, 1, arrival)).unwrap();
                inbox.insert(arrival, json.as_slice()).unwrap();
            }
            let mut counters = txn.open_table(LEGACY_COUNTERS).unwrap();
            counters.insert(NEXT_SEQ, 41).unwrap();
            counters.insert(NEXT_ARRIVAL, 2).unwrap();
            txn.open_table(MAIL)
                .unwrap()
                .insert(&[9; 32], mail().encode().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    fn write_old_owned(path: &Path) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OWNED)
            .unwrap()
            .insert(&[1; 32], owned_file().encode().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn old_side_databases_are_imported_once_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let messages = store.messages(dir.path().join(SEQ_FILE));
        // The store already has a letter of its own at arrival 1.
        assert_eq!(
            messages.record(b"carol", entry("carol", 1, 0)).unwrap(),
            Some(1)
        );
        let old = dir.path().join(messages::LEGACY_FILE);
        assert_eq!(store.import_messages(&old).unwrap(), None, "no file");
        write_old_messages(&old);
        let imported = store.import_messages(&old).unwrap().unwrap();
        assert_eq!((imported.rows, imported.unreadable), (3, 0));
        assert!(!old.exists());
        let kept = imported.moved_to.file_name().unwrap().to_string_lossy();
        assert!(kept.starts_with("messages.redb.imported-"), "{kept}");

        let check = |messages: &crate::messages::Messages| {
            let entries = messages.entries_after(0).unwrap();
            let listed: Vec<_> = entries
                .iter()
                .map(|e| (e.arrival, e.from.as_str()))
                .collect();
            // Alice's arrival 1 was taken: she comes after, in order.
            assert_eq!(listed, vec![(1, "carol"), (2, "alice"), (3, "bob")]);
            assert!(messages.seen(b"alice", 1).unwrap() && messages.seen(b"bob", 1).unwrap());
            assert_eq!(messages.mail_held().unwrap(), (1, 300));
            assert_eq!(
                messages.mail_for(&[7; 32], 10, 1 << 20).unwrap(),
                vec![([9; 32], vec![1; 300])]
            );
        };
        check(&messages);
        // Crash between the commit and the rename: the file is back, and
        // importing it again doubles nothing.
        std::fs::copy(&imported.moved_to, &old).unwrap();
        assert_eq!(store.import_messages(&old).unwrap().unwrap().rows, 0);
        check(&messages);
        assert!(messages.next_seq().unwrap() > 41);
        assert_eq!(
            messages.record(b"erin", entry("erin", 1, 0)).unwrap(),
            Some(4)
        );
        // The held letter's indexes came with it: quotas and expiry see it.
        let limits = MailLimits {
            per_mailbox_items: 1,
            ..MailLimits::default()
        };
        let other = HeldMail {
            sealed: vec![2; 10],
            ..mail()
        };
        assert_eq!(
            messages.hold([8; 32], &other, &limits).unwrap(),
            Err(crate::messages::MailRefusal::MailboxFull)
        );
        assert_eq!(messages.expire_mail(5001).unwrap(), 1);
        assert_eq!(messages.mail_held().unwrap(), (0, 0));

        let old = dir.path().join(crate::owned::LEGACY_FILE);
        write_old_owned(&old);
        let imported = store.import_owned(&old).unwrap().unwrap();
        assert_eq!(imported.rows, 1);
        assert!(!old.exists() && imported.moved_to.exists());
        assert_eq!(
            store.owned_files().due(u64::MAX).unwrap(),
            vec![(ContentId::from_bytes([1; 32]), owned_file())]
        );
        // Kept across a reopen.
        drop((messages, store));
        let store = open(dir.path());
        let messages = store.messages(dir.path().join(SEQ_FILE));
        assert_eq!(messages.entries_after(2).unwrap().len(), 2);
        assert!(messages.seen(b"alice", 1).unwrap());
        assert_eq!(store.owned_files().due(u64::MAX).unwrap().len(), 1);
    }

    /// Garbage, a cut-short file, and one overwritten after its first page.
    fn damage(path: &Path, pattern: usize) {
        match pattern {
            0 => std::fs::write(path, vec![0x5a; 64 << 10]).unwrap(),
            1 => {
                let len = std::fs::metadata(path).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            }
            _ => {
                let mut bytes = std::fs::read(path).unwrap();
                let len = bytes.len();
                bytes[4096..len].fill(0xa5);
                std::fs::write(path, bytes).unwrap();
            }
        }
    }

    #[test]
    fn a_damaged_old_side_database_is_an_error_naming_it_and_changes_nothing() {
        for (file, write) in [
            (messages::LEGACY_FILE, write_old_messages as fn(&Path)),
            (crate::owned::LEGACY_FILE, write_old_owned),
        ] {
            for pattern in 0..3 {
                let dir = tempfile::tempdir().unwrap();
                let store = open(dir.path());
                let path = dir.path().join(file);
                write(&path);
                damage(&path, pattern);
                let import = || {
                    if file == messages::LEGACY_FILE {
                        store.import_messages(&path)
                    } else {
                        store.import_owned(&path)
                    }
                };
                let error = std::panic::catch_unwind(std::panic::AssertUnwindSafe(import))
                    .unwrap_or_else(|_| panic!("{file} pattern {pattern}: importing panicked"))
                    .unwrap_err();
                assert!(
                    matches!(&error, ImportError::Open(OpenDbError::Damaged { path: named, .. })
                        if *named == path),
                    "{file} pattern {pattern}: {error:?}"
                );
                assert!(error.to_string().contains(&path.display().to_string()));
                assert!(path.exists(), "left for the caller to move aside");
                let messages = store.messages(dir.path().join(SEQ_FILE));
                assert_eq!(messages.entries_after(0).unwrap(), vec![]);
                assert_eq!(messages.mail_held().unwrap(), (0, 0));
                assert_eq!(store.owned_files().due(u64::MAX).unwrap(), vec![]);
            }
        }
    }
}
