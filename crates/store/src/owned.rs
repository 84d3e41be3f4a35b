//! The files this node stored on the network, kept in the store's
//! database so that the node can renew their leases while it runs. (Until
//! schema 2 they were `DIR/owned.redb`, beside the store;
//! [`Store::import_owned`] brings such a file in.)
//!
//! A row holds, per file, when its leases end and which stripes it has
//! around which placement key — never the file key or the capability, so
//! the table reveals no more than the holders already know.
//!
//! Row layout (versioned; the one `owned.redb` used, so its rows import as
//! they are): `1 ‖ expires_at u64 LE ‖ groups u32 LE ‖ groups × (placement
//! key (32) ‖ count u16 LE ‖ count × stripe id)`. The serde structs
//! `RowHead` and `GroupHead` define it, written and read by
//! [`kith_base::layout`]; a test vector pins the bytes.

use std::path::Path;

use kith_base::{ContentId, layout};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{DbContext, Result};
use crate::store::Store;

/// manifest id → [`OwnedFile`] row.
pub(crate) const OWNED: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("owned");

/// The file the table lived in before schema 2, in the data folder.
pub const LEGACY_FILE: &str = "owned.redb";

const ROW_VERSION: u8 = 1;

/// The start of a row: version, expiry, number of groups.
#[derive(Serialize, Deserialize)]
struct RowHead {
    version: u8,
    #[serde(with = "kith_base::layout::le")]
    expires_at: u64,
    #[serde(with = "kith_base::layout::le")]
    groups: u32,
}

/// The start of a group: its placement key and how many stripe ids follow.
#[derive(Serialize, Deserialize)]
struct GroupHead {
    placement: [u8; 32],
    #[serde(with = "kith_base::layout::le")]
    stripes: u16,
}

/// One stored file: its lease expiry and its stripes by placement key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFile {
    /// When the leases on its shares end (Unix seconds).
    pub expires_at: u64,
    /// (placement key, the stripes placed around it), the manifest's own
    /// group included.
    pub groups: Vec<([u8; 32], Vec<ContentId>)>,
}

impl OwnedFile {
    /// The row kept in the `owned` table (see the module's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let stripes: usize = self.groups.iter().map(|(_, ids)| ids.len()).sum();
        let mut row = Vec::with_capacity(13 + self.groups.len() * 34 + stripes * 32);
        let head = RowHead {
            version: ROW_VERSION,
            expires_at: self.expires_at,
            groups: self.groups.len() as u32,
        };
        layout::write(&head, &mut row);
        for (placement, ids) in &self.groups {
            let group = GroupHead {
                placement: *placement,
                // Groups are extents of at most 64 stripes.
                stripes: ids.len() as u16,
            };
            layout::write(&group, &mut row);
            for id in ids {
                row.extend_from_slice(id.as_bytes());
            }
        }
        row
    }

    /// Reads a row written by [`OwnedFile::encode`]; `None` if it is not
    /// one (or has bytes left over).
    pub fn decode(row: &[u8]) -> Option<Self> {
        let (head, mut rest) = layout::read::<RowHead>(row, "owned file").ok()?;
        if head.version != ROW_VERSION {
            return None;
        }
        // Nothing is allocated per group or id before its bytes are read,
        // so a count larger than the row only ends the read early.
        let mut groups = Vec::new();
        for _ in 0..head.groups {
            let (group, after) = layout::read::<GroupHead>(rest, "group").ok()?;
            let len = usize::from(group.stripes) * ContentId::LEN;
            let (ids, after) = layout::split(after, len, "stripe ids").ok()?;
            let (ids, _) = ids.as_chunks::<{ ContentId::LEN }>();
            groups.push((
                group.placement,
                ids.iter().copied().map(ContentId::from_bytes).collect(),
            ));
            rest = after;
        }
        rest.is_empty().then_some(Self {
            expires_at: head.expires_at,
            groups,
        })
    }
}

/// Creates the table (part of opening the store).
pub(crate) fn create_tables(txn: &WriteTransaction, path: &Path) -> Result<()> {
    txn.open_table(OWNED).db(path)?;
    Ok(())
}

/// The table of owned files. Cheap to clone; every call may block on the
/// disk.
#[derive(Clone, Debug)]
pub struct OwnedFiles {
    store: Store,
}

impl Store {
    /// The files this node stored on the network.
    pub fn owned_files(&self) -> OwnedFiles {
        OwnedFiles {
            store: self.clone(),
        }
    }
}

impl OwnedFiles {
    fn path(&self) -> &Path {
        self.store.db_path()
    }

    /// Records (or replaces) file `manifest`.
    pub fn insert(&self, manifest: &ContentId, file: &OwnedFile) -> Result<()> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        txn.open_table(OWNED)
            .db(path)?
            .insert(manifest.as_bytes(), file.encode().as_slice())
            .db(path)?;
        txn.commit().db(path)
    }

    /// Forgets file `manifest` (after `kith rm`). Returns whether it was
    /// known.
    pub fn remove(&self, manifest: &ContentId) -> Result<bool> {
        let path = self.path();
        let txn = self.store.inner.db.begin_write().db(path)?;
        let removed = txn
            .open_table(OWNED)
            .db(path)?
            .remove(manifest.as_bytes())
            .db(path)?
            .is_some();
        txn.commit().db(path)?;
        Ok(removed)
    }

    /// The files whose leases end before `before` (Unix seconds).
    pub fn due(&self, before: u64) -> Result<Vec<(ContentId, OwnedFile)>> {
        let path = self.path();
        let txn = self.store.inner.db.begin_read().db(path)?;
        let table = txn.open_table(OWNED).db(path)?;
        let mut due = Vec::new();
        for entry in table.iter().db(path)? {
            let (key, value) = entry.db(path)?;
            match OwnedFile::decode(value.value()) {
                Some(file) if file.expires_at < before => {
                    due.push((ContentId::from_bytes(*key.value()), file));
                }
                Some(_) => {}
                None => tracing::warn!(path = %path.display(), "skipping a damaged owned-file row"),
            }
        }
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    use kith_base::layout::to_hex as hex;

    /// The row layout, byte for byte: rows on disk (and in old
    /// `owned.redb` files, imported as they are) are read with it.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let file = OwnedFile {
            expires_at: 0x0102_0304_0506_0708,
            groups: vec![
                ([0x11; 32], vec![ContentId::from_bytes([0x22; 32])]),
                ([0x33; 32], vec![]),
            ],
        };
        let expected = format!(
            "01{}{}{}{}{}{}{}",
            "0807060504030201",
            "02000000",
            "11".repeat(32),
            "0100",
            "22".repeat(32),
            "33".repeat(32),
            "0000"
        );
        assert_eq!(hex(&file.encode()), expected);
        assert_eq!(OwnedFile::decode(&file.encode()), Some(file.clone()));
        let mut longer = file.encode();
        longer.push(0);
        assert_eq!(OwnedFile::decode(&longer), None);
        let row = file.encode();
        for len in 0..row.len() {
            assert_eq!(OwnedFile::decode(&row[..len]), None, "cut at {len}");
        }
    }

    #[test]
    fn owned_files_round_trip_and_come_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap();
        let owned = store.owned_files();
        let (a, b) = (ContentId::of(b"a"), ContentId::of(b"b"));
        let file_a = OwnedFile {
            expires_at: 100,
            groups: vec![
                (*a.as_bytes(), vec![a]),
                ([9; 32], vec![ContentId::of(b"s1"), ContentId::of(b"s2")]),
            ],
        };
        let file_b = OwnedFile {
            expires_at: 300,
            groups: vec![(*b.as_bytes(), vec![b])],
        };
        owned.insert(&a, &file_a).unwrap();
        owned.insert(&b, &file_b).unwrap();
        assert_eq!(owned.due(100).unwrap(), vec![]);
        assert_eq!(owned.due(101).unwrap(), vec![(a, file_a.clone())]);
        assert_eq!(owned.due(1000).unwrap().len(), 2);
        assert!(owned.remove(&a).unwrap());
        assert!(!owned.remove(&a).unwrap());
        // Kept across a reopen.
        drop(owned);
        drop(store);
        let store = Store::open(
            dir.path(),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap();
        let owned = store.owned_files();
        assert_eq!(owned.due(1000).unwrap(), vec![(b, file_b)]);
        assert_eq!(OwnedFile::decode(&file_a.encode()[1..]), None);
        let mut longer = file_a.encode();
        longer.push(0);
        assert_eq!(OwnedFile::decode(&longer), None);
    }
}
