//! Opening a redb file so that a damaged one is a typed error naming the
//! file, never a panic.
//!
//! redb checks its own invariants with `unreachable`-style panics in debug
//! builds (and may panic on some garbled pages in release builds too), and a
//! panic inside a start-up task surfaces as "task 4 panicked", naming no
//! file. [`open_database`] opens the file, runs redb's integrity check (every
//! page's checksum) and turns a panic or a corruption report into
//! [`OpenDbError::Damaged`]. [`guard`] does the same for the first work done
//! on a freshly opened file (creating tables, the store's recovery pass).
//! The store's database, and the node's old side databases
//! (`messages.redb`, `owned.redb`) when their rows are imported, all open
//! through here.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::Database;

/// Why a redb file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenDbError {
    /// The file is not a readable redb database (garbage, truncated, a page
    /// that fails its checksum, or redb gave up on it).
    #[error(
        "the database {} is damaged ({detail}); move it aside (or restore it from a backup) \
         and start again",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What redb said (or the panic message).
        detail: String,
    },

    /// Another process (or another handle in this one) has the file open.
    #[error(
        "the database {} is already open (is another kith node running on this data folder?)",
        path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },

    /// Any other failure (permissions, I/O).
    #[error("could not open the database {}: {source}", path.display())]
    Other {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
}

impl OpenDbError {
    /// The file that failed to open.
    pub fn path(&self) -> &Path {
        match self {
            Self::Damaged { path, .. } | Self::Locked { path } | Self::Other { path, .. } => path,
        }
    }

    /// Sorts a redb error met while opening (or first using) `path`.
    pub fn from_redb(path: &Path, error: impl Into<redb::Error>) -> Self {
        let error = error.into();
        let path = path.to_owned();
        match error {
            redb::Error::DatabaseAlreadyOpen => Self::Locked { path },
            redb::Error::Corrupted(detail) => Self::Damaged { path, detail },
            redb::Error::UpgradeRequired(version) => Self::Damaged {
                path,
                detail: format!("file format version {version} is not one this kith reads"),
            },
            redb::Error::RepairAborted => Self::Damaged {
                path,
                detail: "redb could not repair it".into(),
            },
            // Not a redb file at all ("magic number mismatch"), or one cut
            // short (redb reads past its end).
            redb::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Self::Damaged {
                    path,
                    detail: io.to_string(),
                }
            }
            source => Self::Other { path, source },
        }
    }
}

/// Opens (creating if missing) the redb database at `path` with `builder`,
/// and checks every page of it. A damaged file is [`OpenDbError::Damaged`]
/// whether redb reports it or panics on it.
///
/// The check reads the whole file once; the node's databases hold metadata
/// only (about 100 bytes a share), so this is a small cost at start-up next
/// to the store's own recovery pass.
pub fn open_database(path: &Path, builder: &redb::Builder) -> Result<Database, OpenDbError> {
    guard(path, || {
        let mut db = builder
            .create(path)
            .map_err(|error| OpenDbError::from_redb(path, error))?;
        match db.check_integrity() {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(path = %path.display(), "the database was damaged and redb repaired it");
            }
            Err(error) => return Err(OpenDbError::from_redb(path, error)),
        }
        Ok(db)
    })?
}

/// Runs `work` (the first reads and writes of a database just opened),
/// turning a panic inside redb into [`OpenDbError::Damaged`] naming `path`.
pub fn guard<T>(path: &Path, work: impl FnOnce() -> T) -> Result<T, OpenDbError> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".to_owned());
        OpenDbError::Damaged {
            path: path.to_owned(),
            detail: format!("redb failed reading it: {message}"),
        }
    })
}

/// Moves a damaged file aside to `<name>.damaged-<unix seconds>` in the same
/// folder (kept, never deleted: it may still hold something worth saving by
/// hand) and returns the new path.
pub fn move_aside(path: &Path) -> io::Result<PathBuf> {
    move_aside_as(path, "damaged")
}

/// Renames `path` to `<name>.<label>-<unix seconds>` in the same folder
/// (with `-1`, `-2`, … if that name is taken), syncs the folder and returns
/// the new path.
pub fn move_aside_as(path: &Path, label: &str) -> io::Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    let mut aside = path.with_file_name(format!("{name}.{label}-{now}"));
    let mut n = 1;
    while aside.exists() {
        aside = path.with_file_name(format!("{name}.{label}-{now}-{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent).and_then(|dir| dir.sync_all())?;
    }
    Ok(aside)
}
