//! Where things live inside the store folder, and the few file system
//! primitives (durable create, durable rename) the write path is built from.
//!
//! ```text
//! DIR/store.redb                 metadata (redb)
//! DIR/shares/ab/cd/abcd…(64 hex) one file per share body, named by its id
//! DIR/tmp/                       bodies being written; emptied on open
//! DIR/quarantine/                files an index rebuild could not verify
//! ```
//!
//! Two levels of two hex digits give 65 536 folders: a million shares (a
//! terabyte of 1 MiB shares) is about 15 files per folder, so no folder grows
//! large enough to slow lookups on any common file system, and the names can
//! be checked by hand with `b3sum`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use kith_base::ContentId;

use crate::error::{Result, io_error};

/// Paths of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
    pub(crate) db: PathBuf,
    pub(crate) shares: PathBuf,
    pub(crate) tmp: PathBuf,
    /// Where an index rebuild moves files it cannot verify (created when
    /// first needed; never read by the store).
    pub(crate) quarantine: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            db: dir.join("store.redb"),
            shares: dir.join("shares"),
            tmp: dir.join("tmp"),
            quarantine: dir.join("quarantine"),
        }
    }

    /// Creates the folders (durably: a crash right after `open` must not
    /// lose the `shares` folder that later renames point into).
    pub(crate) fn create(&self) -> Result<()> {
        for dir in [&self.dir, &self.shares, &self.tmp] {
            create_dir_durable(dir)?;
        }
        Ok(())
    }

    /// The folder a share's body lives in: `shares/ab/cd`.
    pub(crate) fn body_dir(&self, id: &ContentId) -> PathBuf {
        let hex = id.to_string();
        self.shares.join(&hex[0..2]).join(&hex[2..4])
    }

    /// The file a share's body lives in: `shares/ab/cd/abcd…`.
    pub(crate) fn body_path(&self, id: &ContentId) -> PathBuf {
        self.body_dir(id).join(id.to_string())
    }
}

/// Creates `dir` if missing and, if it was created, syncs its parent so that
/// the new entry survives a power cut.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // A parent is missing too (first start, or someone removed a
            // level): make it, then retry once.
            let parent = dir
                .parent()
                .ok_or_else(|| io_error("create folder", dir, error))?;
            create_dir_durable(parent)?;
            create_dir_durable(dir)
        }
        Err(error) => Err(io_error("create folder", dir, error)),
    }
}

/// fsyncs a folder, making the creations, renames and removals in it
/// durable. Linux needs this for a rename to survive a power cut; without
/// it, the metadata commit that follows could outlive the rename.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io_error("sync folder", dir, error))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("remove", path, error)),
    }
}

/// Reads a share id from a body file name: 64 lowercase hex digits, exactly
/// as the store writes them (an uppercase name is not ours).
pub(crate) fn id_from_file_name(name: &std::ffi::OsStr) -> Option<ContentId> {
    let name = name.to_str()?;
    if name.len() != 64 || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_path_is_sharded_by_hex_prefix() {
        let layout = Layout::new(Path::new("/d"));
        let id = ContentId::of(b"abc");
        assert_eq!(
            layout.body_path(&id),
            Path::new("/d/shares/64/37").join(id.to_string())
        );
        let name = id.to_string();
        assert_eq!(id_from_file_name(name.as_ref()), Some(id));
        assert_eq!(id_from_file_name(name.to_uppercase().as_ref()), None);
        assert_eq!(id_from_file_name("x".as_ref()), None);
    }
}
