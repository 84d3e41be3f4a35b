//! `DIR/owned.redb`: the files this node stored on the network, so that it
//! can renew their leases while it runs.
//!
//! A row holds, per file, when its leases end and which stripes it has
//! around which placement key — never the file key or the capability, so
//! the table reveals no more than the holders already know.
//!
//! Row layout (hand-written, versioned): `1 ‖ expires_at u64 LE ‖ groups u32
//! LE ‖ groups × (placement key (32) ‖ count u16 LE ‖ count × stripe id)`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kith_base::ContentId;
use kith_store::OpenDbError;
use kith_store::open_db::{guard, open_database};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// manifest id → [`OwnedFile`] row.
const OWNED: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("owned");

/// The database's file in the data folder.
pub const OWNED_FILE: &str = "owned.redb";

const ROW_VERSION: u8 = 1;

/// One stored file: its lease expiry and its stripes by placement key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedFile {
    /// When the leases on its shares end (Unix seconds).
    pub(crate) expires_at: u64,
    /// (placement key, the stripes placed around it), the manifest's own
    /// group included.
    pub(crate) groups: Vec<([u8; 32], Vec<ContentId>)>,
}

impl OwnedFile {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let stripes: usize = self.groups.iter().map(|(_, ids)| ids.len()).sum();
        let mut row = Vec::with_capacity(13 + self.groups.len() * 34 + stripes * 32);
        row.push(ROW_VERSION);
        row.extend_from_slice(&self.expires_at.to_le_bytes());
        row.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for (placement, ids) in &self.groups {
            row.extend_from_slice(placement);
            // Groups are extents of at most 64 stripes.
            row.extend_from_slice(&(ids.len() as u16).to_le_bytes());
            for id in ids {
                row.extend_from_slice(id.as_bytes());
            }
        }
        row
    }

    pub(crate) fn decode(row: &[u8]) -> Option<Self> {
        let mut at = 0usize;
        let mut take = |len: usize| {
            let bytes = row.get(at..at + len)?;
            at += len;
            Some(bytes)
        };
        if take(1)? != [ROW_VERSION] {
            return None;
        }
        let expires_at = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut groups = Vec::new();
        for _ in 0..count {
            let placement: [u8; 32] = take(32)?.try_into().ok()?;
            let len = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let mut ids = Vec::with_capacity(usize::from(len));
            for _ in 0..len {
                ids.push(ContentId::from_bytes(take(32)?.try_into().ok()?));
            }
            groups.push((placement, ids));
        }
        (at == row.len()).then_some(Self { expires_at, groups })
    }
}

/// The table of owned files. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct OwnedFiles {
    db: Arc<Database>,
    path: PathBuf,
}

impl OwnedFiles {
    /// Opens (or creates) the database at `path`; a damaged file is
    /// [`OpenDbError::Damaged`] naming it.
    pub(crate) fn open(path: &Path) -> Result<Self, OpenDbError> {
        let db = open_database(path, &redb::Builder::new())?;
        guard(path, || {
            let txn = db.begin_write()?;
            txn.open_table(OWNED)?;
            txn.commit()?;
            Ok::<_, redb::Error>(())
        })?
        .map_err(|error| OpenDbError::from_redb(path, error))?;
        Ok(Self {
            db: Arc::new(db),
            path: path.to_owned(),
        })
    }

    /// Records (or replaces) file `manifest`.
    pub(crate) fn insert(&self, manifest: &ContentId, file: &OwnedFile) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.open_table(OWNED)
            .map_err(|e| self.error(e))?
            .insert(manifest.as_bytes(), file.encode().as_slice())
            .map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))
    }

    /// Forgets file `manifest` (after `kith rm`). Returns whether it was
    /// known.
    pub(crate) fn remove(&self, manifest: &ContentId) -> Result<bool, String> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let removed = txn
            .open_table(OWNED)
            .map_err(|e| self.error(e))?
            .remove(manifest.as_bytes())
            .map_err(|e| self.error(e))?
            .is_some();
        txn.commit().map_err(|e| self.error(e))?;
        Ok(removed)
    }

    /// The files whose leases end before `before` (Unix seconds).
    pub(crate) fn due(&self, before: u64) -> Result<Vec<(ContentId, OwnedFile)>, String> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(OWNED).map_err(|e| self.error(e))?;
        let mut due = Vec::new();
        for entry in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            match OwnedFile::decode(value.value()) {
                Some(file) if file.expires_at < before => {
                    due.push((ContentId::from_bytes(*key.value()), file));
                }
                Some(_) => {}
                None => tracing::warn!(path = %self.path.display(), "skipping a damaged row"),
            }
        }
        Ok(due)
    }

    fn error(&self, error: impl Into<redb::Error>) -> String {
        describe(&self.path, error)
    }
}

fn describe(path: &Path, error: impl Into<redb::Error>) -> String {
    format!("{}: {}", path.display(), error.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_files_round_trip_and_come_due() {
        let dir = tempfile::tempdir().unwrap();
        let owned = OwnedFiles::open(&dir.path().join(OWNED_FILE)).unwrap();
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
        assert_eq!(owned.due(1000).unwrap(), vec![(b, file_b)]);
        assert_eq!(OwnedFile::decode(&file_a.encode()[1..]), None);
        let mut longer = file_a.encode();
        longer.push(0);
        assert_eq!(OwnedFile::decode(&longer), None);
    }
}
