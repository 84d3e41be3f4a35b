//! The node's old side databases (`messages.redb`, `owned.redb`, kept
//! beside the store until its schema 2): their rows are imported into the
//! store's database at start, so that a damaged one does not keep the node
//! from serving its shares.
//!
//! A file that imports is renamed to `<name>.imported-<unix seconds>` by
//! the store. One that fails to open as damaged
//! ([`OpenDbError::Damaged`]: garbage, cut short, failing its checksums, or
//! making redb panic) is moved aside to `<name>.damaged-<unix seconds>`,
//! never deleted, and the node starts without its rows. A loud warning
//! names both files and says what was lost. Any other failure (permissions,
//! a lock, a failed write to the store) still stops the start: moving the
//! file would not help.

use std::path::Path;

use kith_store::open_db::move_aside;
use kith_store::{ImportError, Imported, OpenDbError};
use tracing::error;

use crate::NodeError;

/// Imports the old database at `path` (if there is one) with `import`; if
/// it is damaged, moves it aside. `lost` says, in a sentence, what the node
/// then lacks.
pub(crate) fn import_or_move_aside(
    path: &Path,
    lost: &str,
    import: impl FnOnce(&Path) -> Result<Option<Imported>, ImportError>,
) -> Result<(), NodeError> {
    match import(path) {
        Ok(_) => Ok(()),
        Err(ImportError::Open(OpenDbError::Damaged { detail, .. })) => {
            let aside = move_aside(path).map_err(|source| OpenDbError::Other {
                path: path.to_owned(),
                source: source.into(),
            })?;
            error!(
                "{} was damaged ({detail}); moved it to {} and started without its rows. \
                 Lost: {lost}",
                path.display(),
                aside.display()
            );
            Ok(())
        }
        Err(ImportError::Open(error)) => Err(error.into()),
        Err(ImportError::Store(error)) => Err(error.into()),
        Err(error) => Err(NodeError::Import(Box::new(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::owned::OWNED_FILE;
    use crate::friends::db::MESSAGES_FILE;
    use kith_store::{Store, StoreConfig};

    /// The files in `dir` whose names start with `prefix`.
    fn named(dir: &Path, prefix: &str) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(prefix))
            .collect()
    }

    #[test]
    fn a_damaged_old_side_database_is_moved_aside_and_the_store_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path().join("store"),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap();
        // Nothing to import: nothing happens.
        import_or_move_aside(&dir.path().join(OWNED_FILE), "nothing", |path| {
            store.import_owned(path)
        })
        .unwrap();
        assert!(named(dir.path(), OWNED_FILE).is_empty());
        for file in [MESSAGES_FILE, OWNED_FILE] {
            let path = dir.path().join(file);
            std::fs::write(&path, vec![0x5a; 64 << 10]).unwrap();
            import_or_move_aside(&path, "nothing", |path| {
                if file == MESSAGES_FILE {
                    store.import_messages(path)
                } else {
                    store.import_owned(path)
                }
            })
            .unwrap();
            assert_eq!(named(dir.path(), &format!("{file}.damaged-")).len(), 1);
            assert!(!path.exists(), "{file}");
        }
        let messages = store.messages(dir.path().join("messages.seq"));
        assert!(messages.next_seq().unwrap() > 0);
        assert_eq!(store.owned_files().due(u64::MAX).unwrap(), vec![]);
    }
}
