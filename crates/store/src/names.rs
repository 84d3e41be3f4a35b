//! The node's name tables (schema 3): the name records it holds for the
//! network and has resolved, the names it publishes, and what it mirrors.
//!
//! The store does not read records or mirror rows: the node signs,
//! verifies and compares them (`kith_base::name`), and hands the store a
//! comparison to run inside the write transaction, so that two peers
//! storing records of one name at once cannot let the older win.
//!
//! | table | key | value |
//! |---|---|---|
//! | `names` | name (32, an Ed25519 key) | the newest record known (190 bytes, signed) |
//! | `my_names` | label (`""` for the default name) | name (32) |
//! | `mirrors` | what is mirrored, as the user wrote it (a name or a capability) | the node's mirror row |

use std::path::Path;

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::error::{DbContext, Result};
use crate::store::Store;

/// name → its newest record known.
pub(crate) const NAMES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("names");
/// label → name, for the names this node publishes.
pub(crate) const MY_NAMES: TableDefinition<'_, &str, &[u8; 32]> = TableDefinition::new("my_names");
/// mirrored name or capability → the node's row.
pub(crate) const MIRRORS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("mirrors");

/// Creates the tables (part of opening the store).
pub(crate) fn create_tables(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(NAMES).db(path)?;
    txn.open_table(MY_NAMES).db(path)?;
    txn.open_table(MIRRORS).db(path)?;
    Ok(())
}

/// What [`NameTables::put_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPut {
    /// Stored: the name was new here, or the record replaced an older one.
    Stored,
    /// Kept what was there: the comparison said the held record stays.
    Kept,
    /// Not stored: the table holds its limit of names already.
    Full,
}

/// The name tables. Cheap to clone; every call may block on the disk.
#[derive(Clone, Debug)]
pub struct NameTables {
    store: Store,
}

impl Store {
    /// The name records, published names and mirrors of this node.
    pub fn names(&self) -> NameTables {
        NameTables {
            store: self.clone(),
        }
    }
}

impl NameTables {
    fn path(&self) -> &Path {
        self.store.db_path()
    }

    /// The record held for `name`.
    pub fn record(&self, name: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(NAMES).db(path)?;
        Ok(table.get(name).db(path)?.map(|row| row.value().to_vec()))
    }

    /// Stores `record` for `name` when no record is held, or when
    /// `replaces(held)` says it should replace the one held; a new name is
    /// refused once `max_names` are held.
    pub fn put_record(
        &self,
        name: &[u8; 32],
        record: &[u8],
        max_names: u64,
        replaces: impl FnOnce(&[u8]) -> bool,
    ) -> Result<RecordPut> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let outcome = {
            let mut table = txn.open_table(NAMES).db(path)?;
            let held = table.get(name).db(path)?.map(|row| row.value().to_vec());
            match held {
                Some(held) if !replaces(&held) => RecordPut::Kept,
                None if table.len().db(path)? >= max_names => RecordPut::Full,
                _ => {
                    table.insert(name, record).db(path)?;
                    RecordPut::Stored
                }
            }
        };
        if outcome == RecordPut::Stored {
            txn.commit().db(path)?;
        }
        Ok(outcome)
    }

    /// Forgets the records for which `keep` says no (expired ones, at the
    /// node's sweep). Returns how many went.
    pub fn retain_records(&self, mut keep: impl FnMut(&[u8; 32], &[u8]) -> bool) -> Result<usize> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let removed = {
            let mut table = txn.open_table(NAMES).db(path)?;
            let mut doomed = Vec::new();
            for entry in table.iter().db(path)? {
                let (key, value) = entry.db(path)?;
                if !keep(key.value(), value.value()) {
                    doomed.push(*key.value());
                }
            }
            for name in &doomed {
                table.remove(name).db(path)?;
            }
            doomed.len()
        };
        txn.commit().db(path)?;
        Ok(removed)
    }

    /// How many name records are held.
    pub fn record_count(&self) -> Result<u64> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        txn.open_table(NAMES).db(path)?.len().db(path)
    }

    /// Remembers that this node publishes `name` under `label` (`""` for the
    /// default name).
    pub fn add_mine(&self, label: &str, name: &[u8; 32]) -> Result<()> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        txn.open_table(MY_NAMES)
            .db(path)?
            .insert(label, name)
            .db(path)?;
        txn.commit().db(path)
    }

    /// The names this node publishes: (label, name), by label.
    pub fn mine(&self) -> Result<Vec<(String, [u8; 32])>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(MY_NAMES).db(path)?;
        let mut mine = Vec::new();
        for entry in table.iter().db(path)? {
            let (label, name) = entry.db(path)?;
            mine.push((label.value().to_owned(), *name.value()));
        }
        Ok(mine)
    }

    /// Records (or replaces) the mirror of `target`.
    pub fn set_mirror(&self, target: &str, row: &[u8]) -> Result<()> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        txn.open_table(MIRRORS)
            .db(path)?
            .insert(target, row)
            .db(path)?;
        txn.commit().db(path)
    }

    /// Forgets the mirror of `target`. Returns whether there was one.
    pub fn remove_mirror(&self, target: &str) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let removed = txn
            .open_table(MIRRORS)
            .db(path)?
            .remove(target)
            .db(path)?
            .is_some();
        txn.commit().db(path)?;
        Ok(removed)
    }

    /// Every mirror: (target, row), by target.
    pub fn mirrors(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(MIRRORS).db(path)?;
        let mut mirrors = Vec::new();
        for entry in table.iter().db(path)? {
            let (target, row) = entry.db(path)?;
            mirrors.push((target.value().to_owned(), row.value().to_vec()));
        }
        Ok(mirrors)
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
    fn records_are_replaced_only_when_the_comparison_says_so_and_the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let names = open(dir.path()).names();
        assert_eq!(names.record(&[1; 32]).unwrap(), None);
        let newer = |new: &'static [u8]| move |held: &[u8]| new > held;
        assert_eq!(
            names.put_record(&[1; 32], b"b", 2, newer(b"b")).unwrap(),
            RecordPut::Stored
        );
        assert_eq!(
            names.put_record(&[1; 32], b"a", 2, newer(b"a")).unwrap(),
            RecordPut::Kept
        );
        assert_eq!(names.record(&[1; 32]).unwrap().as_deref(), Some(&b"b"[..]));
        assert_eq!(
            names.put_record(&[1; 32], b"c", 2, newer(b"c")).unwrap(),
            RecordPut::Stored
        );
        assert_eq!(
            names.put_record(&[2; 32], b"x", 2, newer(b"x")).unwrap(),
            RecordPut::Stored
        );
        assert_eq!(
            names.put_record(&[3; 32], b"y", 2, newer(b"y")).unwrap(),
            RecordPut::Full
        );
        // A held name is still updated when the table is full.
        assert_eq!(
            names.put_record(&[2; 32], b"z", 2, newer(b"z")).unwrap(),
            RecordPut::Stored
        );
        assert_eq!(names.record_count().unwrap(), 2);
        assert_eq!(names.retain_records(|name, _| name[0] == 2).unwrap(), 1);
        assert_eq!(names.record(&[1; 32]).unwrap(), None);
    }

    #[test]
    fn published_names_and_mirrors_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let names = open(dir.path()).names();
            names.add_mine("", &[1; 32]).unwrap();
            names.add_mine("blog", &[2; 32]).unwrap();
            names.set_mirror("abc", b"row").unwrap();
            names.set_mirror("def", b"row2").unwrap();
            assert!(names.remove_mirror("def").unwrap());
            assert!(!names.remove_mirror("def").unwrap());
        }
        let names = open(dir.path()).names();
        assert_eq!(
            names.mine().unwrap(),
            vec![(String::new(), [1; 32]), ("blog".to_owned(), [2; 32])]
        );
        assert_eq!(
            names.mirrors().unwrap(),
            vec![("abc".to_owned(), b"row".to_vec())]
        );
    }
}
