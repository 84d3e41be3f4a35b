//! Opening the node's side databases (`messages.redb`, `owned.redb`) so that
//! a damaged one does not keep the node from serving its shares.
//!
//! A side database that fails to open as damaged
//! ([`OpenDbError::Damaged`]: garbage, cut short, failing its checksums, or
//! making redb panic) is moved aside to `<name>.damaged-<unix seconds>`,
//! never deleted, and a fresh one is opened in its place. A loud warning
//! names both files and says what was lost. Any other failure (permissions,
//! a lock) still stops the start: moving the file would not help.

use std::path::Path;

use kith_store::OpenDbError;
use kith_store::open_db::move_aside;
use tracing::error;

/// Opens `path` with `open`; if it is damaged, moves it aside and opens a
/// fresh one. `lost` says, in a sentence, what the fresh one lacks.
pub(crate) fn open_or_replace<T>(
    path: &Path,
    lost: &str,
    open: impl Fn(&Path) -> Result<T, OpenDbError>,
) -> Result<T, OpenDbError> {
    match open(path) {
        Err(OpenDbError::Damaged { detail, .. }) => {
            let aside = move_aside(path).map_err(|source| OpenDbError::Other {
                path: path.to_owned(),
                source: redb::Error::Io(source),
            })?;
            error!(
                "{} was damaged ({detail}); moved it to {} and started with an empty one. \
                 Lost: {lost}",
                path.display(),
                aside.display()
            );
            open(path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::owned::{OWNED_FILE, OwnedFiles};
    use crate::friends::db::{MESSAGES_FILE, MessageDb};

    /// Garbage, a cut-short file, and an empty-looking one of the wrong size.
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

    fn check<T: std::fmt::Debug>(file: &str, open: impl Fn(&Path) -> Result<T, OpenDbError>) {
        for pattern in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file);
            drop(open(&path).unwrap());
            damage(&path, pattern);
            // Opened directly: an error naming the file, not a panic.
            let error = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open(&path)))
                .unwrap_or_else(|_| panic!("{file} pattern {pattern}: opening panicked"))
                .unwrap_err();
            assert!(
                matches!(&error, OpenDbError::Damaged { path: named, .. } if *named == path),
                "{file} pattern {pattern}: {error:?}"
            );
            assert!(error.to_string().contains(&path.display().to_string()));
            // Through open_or_replace: moved aside, and a fresh one opens.
            open_or_replace(&path, "nothing", &open).unwrap();
            let aside: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&format!("{file}.damaged-")))
                .collect();
            assert_eq!(aside.len(), 1, "{file} pattern {pattern}: {aside:?}");
        }
    }

    #[test]
    fn a_damaged_side_database_is_named_then_moved_aside_and_replaced() {
        check(MESSAGES_FILE, MessageDb::open);
        check(OWNED_FILE, OwnedFiles::open);
    }
}
