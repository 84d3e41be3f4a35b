//! The one error type of the store, typed so that callers can branch on what
//! went wrong.
//!
//! The node reacts differently to each kind: a [`StoreError::Corrupt`] share
//! triggers a repair of its stripe, [`StoreError::QuotaExceeded`] and
//! [`StoreError::DiskFull`] are reported back to the peer that offered the
//! share, [`StoreError::Mismatch`] penalises that peer, and the rest are local
//! faults for the operator. The store's operations share most failure modes
//! (every one touches the database, most touch the disk), so one enum with a
//! variant per cause reads better at call sites than an enum per operation.

use std::io;
use std::path::PathBuf;

use kith_base::{ByteSize, ContentId};

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored share no longer matches its id (bit rot, a truncated or
    /// deleted body file). The store has already dropped it; the caller
    /// should repair the stripe it belonged to.
    #[error(
        "share {id} (share {index} of stripe {stripe}) was damaged on disk and has been removed; \
         the stripe needs repair"
    )]
    Corrupt {
        /// The damaged share.
        id: ContentId,
        /// The stripe it belonged to.
        stripe: ContentId,
        /// Its index in that stripe.
        index: u8,
    },

    /// A stored stripe record no longer hashes to its stripe id. The store
    /// has already dropped it; fetch it again from a peer.
    #[error("the record of stripe {stripe} was damaged on disk and has been removed")]
    CorruptRecord {
        /// The stripe whose record was damaged.
        stripe: ContentId,
    },

    /// Storing this would take the store past its quota. The message is
    /// written so that a sender can prefix it with whose store it is:
    /// `peer 12D3… 's store is full: 12.0 MiB free of its 1.0 GiB quota, …`.
    #[error(
        "store is full: {} free of its {} quota, {} needed",
        ByteSize(*free),
        ByteSize(*quota),
        ByteSize(*needed)
    )]
    QuotaExceeded {
        /// Bytes the refused item needs.
        needed: u64,
        /// Bytes still free under the quota.
        free: u64,
        /// The quota.
        quota: u64,
    },

    /// Storing this would take the shares leased by one owner (one peer)
    /// past the part of the quota this node gives any one peer
    /// (`quota_per_peer`). Other peers may still store here, and this
    /// peer's shares may go to other nodes.
    #[error(
        "this peer's share of the store quota is used up: its leases hold {} of the {} any one \
         peer may take here, {} more needed; place it on another peer",
        ByteSize(*held),
        ByteSize(*cap),
        ByteSize(*needed)
    )]
    PeerShareExceeded {
        /// Bytes the owner's leases hold (and have reserved) now.
        held: u64,
        /// Bytes the refused share needs.
        needed: u64,
        /// The most bytes one owner's leases may hold.
        cap: u64,
    },

    /// The disk itself ran out of space (ENOSPC or a file system quota)
    /// before the store's own quota was reached. Nothing was left
    /// half-written.
    #[error(
        "the disk holding {} is full; free some space or lower the store quota",
        path.display()
    )]
    DiskFull {
        /// The file or folder whose write failed.
        path: PathBuf,
    },

    /// The bytes offered for a share do not hash to the id they were offered
    /// as. Whoever sent them sent bad data.
    #[error("the bytes offered as share {expected} hash to {actual}; refusing them")]
    Mismatch {
        /// The id the bytes were offered as.
        expected: ContentId,
        /// What they hash to.
        actual: ContentId,
    },

    /// The store holds the stripe's record, and the record says that this
    /// share is not share `index` of that stripe (wrong id or wrong length).
    #[error("share {share} is not share {index} of stripe {stripe}, according to its record")]
    NotInStripe {
        /// The stripe named by the caller.
        stripe: ContentId,
        /// The index named by the caller.
        index: u8,
        /// The share offered.
        share: ContentId,
    },

    /// The share is larger than any valid share can be.
    #[error("a {} share is larger than the largest possible share ({})", ByteSize(*len), ByteSize(*max))]
    TooLarge {
        /// Its length.
        len: u64,
        /// The largest share the format allows.
        max: u64,
    },

    /// Another process (or another `Store` in this one) has the store open.
    #[error(
        "the store in {} is already open (is another kith node running on this data folder?)",
        dir.display()
    )]
    Locked {
        /// The store folder.
        dir: PathBuf,
    },

    /// The store's metadata database (its index) is damaged: not a redb
    /// file, cut short, or failing its checksums. The share bodies are not
    /// touched. Moving the file aside makes the next open rebuild the index
    /// from the bodies (every one verified against its id); the node's
    /// tables in the same file ([`crate::messages`], [`crate::owned`])
    /// cannot be rebuilt and start empty.
    #[error(
        "the store's index {} is damaged ({detail}); move it aside (for example to {}.damaged) \
         and start again: the index is then rebuilt from the share bodies, which are kept \
         (the inbox, the mail held for others and the list of files to renew, kept in the \
         same file, start empty)",
        path.display(),
        path.display()
    )]
    DamagedIndex {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        detail: String,
    },

    /// The database was written by a newer kith, with a schema version
    /// this one does not know (see [`crate::SCHEMA_VERSION`]). Nothing was
    /// changed in it.
    #[error(
        "{} was written by a newer kith (schema {found}, this one reads up to {supported}); \
         upgrade kith",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in it.
        found: u32,
        /// The newest schema version this code reads.
        supported: u32,
    },

    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What the store was doing, as a verb phrase ("write", "read", …).
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The metadata database failed a write earlier (most likely because
    /// the disk was full) and refuses all writes until it is reopened: redb
    /// cannot know what reached the disk. Free space, then drop every clone
    /// of the store and open it again.
    #[error(
        "the store database {} stopped after a failed write (was the disk full?); \
         free some space and reopen the store (restart the node)",
        path.display()
    )]
    DatabaseStopped {
        /// The database file.
        path: PathBuf,
    },

    /// The metadata database failed.
    #[error("the store database {} failed: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: redb::Error,
    },

    /// A bug inside the store (a metadata write panicked). Nothing of the
    /// write was committed; the store stays usable.
    #[error("internal error in the store: {what}")]
    Internal {
        /// What failed.
        what: String,
    },
}

impl StoreError {
    /// True for the errors a remote sender caused or should be told about
    /// as "try another peer": quota, disk full, bad bytes.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::QuotaExceeded { .. }
                | Self::PeerShareExceeded { .. }
                | Self::DiskFull { .. }
                | Self::Mismatch { .. }
                | Self::NotInStripe { .. }
                | Self::TooLarge { .. }
        )
    }
}

/// True if `error` says the disk (or a file system quota) is full.
pub(crate) fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Wraps an I/O error with its path, turning "disk full" into its own variant.
pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
    source: io::Error,
) -> StoreError {
    let path = path.into();
    if is_disk_full(&source) {
        StoreError::DiskFull { path }
    } else {
        StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// Wraps a database error, turning "disk full" into its own variant (redb
/// reports the file system's errors as `Io`).
pub(crate) fn db_error(path: &std::path::Path, source: impl Into<redb::Error>) -> StoreError {
    let source = source.into();
    if let redb::Error::Io(io) = &source
        && is_disk_full(io)
    {
        return StoreError::DiskFull {
            path: path.to_owned(),
        };
    }
    if let redb::Error::PreviousIo = &source {
        return StoreError::DatabaseStopped {
            path: path.to_owned(),
        };
    }
    StoreError::Db {
        path: path.to_owned(),
        source,
    }
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds the database path to redb results: `txn.open_table(T).db(path)?`.
pub(crate) trait DbContext<T> {
    /// Maps the error with [`db_error`].
    fn db(self, path: &std::path::Path) -> Result<T>;
}

impl<T, E: Into<redb::Error>> DbContext<T> for std::result::Result<T, E> {
    fn db(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|error| db_error(path, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    #[test]
    fn full_disks_and_stopped_databases_get_their_own_variants() {
        let path = std::path::Path::new("/store/x");
        for errno in [Errno::NOSPC, Errno::DQUOT] {
            let error = io::Error::from_raw_os_error(errno.raw_os_error());
            assert!(matches!(
                io_error("write", path, error),
                StoreError::DiskFull { .. }
            ));
            let error = io::Error::from_raw_os_error(errno.raw_os_error());
            assert!(matches!(
                db_error(path, redb::Error::Io(error)),
                StoreError::DiskFull { .. }
            ));
        }
        let other = io::Error::from_raw_os_error(Errno::ACCESS.raw_os_error());
        let error = io_error("write", path, other);
        assert!(matches!(
            error,
            StoreError::Io {
                action: "write",
                ..
            }
        ));
        assert!(
            error.to_string().starts_with("could not write /store/x: "),
            "{error}"
        );
        assert!(matches!(
            db_error(path, redb::Error::PreviousIo),
            StoreError::DatabaseStopped { .. }
        ));
    }
}
