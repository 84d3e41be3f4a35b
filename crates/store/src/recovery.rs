//! The recovery pass run by [`crate::Store::open`]: it removes whatever a
//! crash left half-done, so that afterwards every metadata row has a body of
//! the right length and every body has a row.
//!
//! What a crash can leave, and what this pass does with it:
//!
//! | leftover | cause | action |
//! |---|---|---|
//! | file in `tmp/` | crash while writing a body | delete |
//! | body without a row | crash between rename and commit, or between a removal's commit and its unlink | delete |
//! | row without a body, or body of the wrong length | a rename lost by a file system that broke its promises, or a person deleting files | drop the row |
//! | index entry without a row | (a bug; swept for robustness) | drop it |
//!
//! Bodies are not re-hashed here: that would read the whole store at every
//! start. Content damage is caught by every read and by the background scrub.
//!
//! **A lost index.** If the database is fresh (no format version: the file
//! was deleted, emptied, or replaced by an empty one) while bodies are
//! present, the bodies are not orphans: the index was lost. Then every body
//! is read and hashed; one that hashes to the id it is named by is
//! registered again as an ownerless share of unknown stripe
//! ([`crate::UNKNOWN_STRIPE`]), and anything else (a body failing its hash,
//! a stray or misplaced file) is moved to `quarantine/`, not deleted. The
//! format version is recorded only after that, so a crash during the
//! rebuild makes the next open rebuild again. A share removed just before
//! the index was lost (its unlink not yet done) may come back this way, as
//! a cached copy; nothing stored is lost.

use std::fs;
use std::io;
use std::path::Path;

use kith_base::ContentId;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::{DbContext, Result, io_error};
use crate::layout::{
    Layout, create_dir_durable, id_from_file_name, remove_file_if_present, sync_dir,
};
use crate::rows::{record_format, remove_share_rows};
use crate::tables::{BY_STRIPE, EXPIRY, RECORDS, SHARES, ShareInfo, split_stripe_key};

/// What the recovery pass found and removed. All zeros after a clean
/// shutdown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Temp files of unfinished writes deleted from `tmp/`.
    pub temp_files: usize,
    /// Body files with no metadata row (or not named like a share) deleted.
    pub orphan_bodies: usize,
    /// Metadata rows dropped because their body was missing or of the wrong
    /// length.
    pub dropped_rows: usize,
    /// Index entries dropped because their share row was missing.
    pub dangling_index_entries: usize,
    /// Shares registered again from their bodies because the index was
    /// missing or empty (each verified against its id first).
    pub rebuilt_shares: usize,
    /// Files an index rebuild moved to `quarantine/`: bodies that failed
    /// verification, and files not named or placed like a share body.
    pub quarantined: usize,
}

impl RecoveryReport {
    /// True if there was nothing to recover.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// What the store holds after the pass, for its in-memory counters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Totals {
    /// Bytes of share bodies per owner (cached copies, owned by nobody,
    /// not counted).
    pub(crate) owners: std::collections::HashMap<[u8; 32], u64>,
    /// Share rows (each with its body).
    pub(crate) shares: u64,
    /// Stripe records.
    pub(crate) records: u64,
    /// Bytes of share bodies and records.
    pub(crate) bytes: u64,
}

/// Runs the pass and returns the totals of what remains. `fresh`: the
/// database has no format version yet, so bodies without a row are a lost
/// index to rebuild, not crash leftovers.
pub(crate) fn recover(
    layout: &Layout,
    db: &Database,
    fresh: bool,
) -> Result<(Totals, RecoveryReport)> {
    let mut report = RecoveryReport {
        temp_files: clear_tmp(&layout.tmp)?,
        ..RecoveryReport::default()
    };
    let path = &layout.db;

    // 1. Rows whose body is missing or of the wrong length. Collected in a
    //    read transaction (usually none), then dropped in one write.
    let mut counters = Totals::default();
    let mut bad_rows: Vec<ContentId> = Vec::new();
    let mut dangling_index: Vec<[u8; 65]> = Vec::new();
    let mut dangling_expiry: Vec<(u64, [u8; 32])> = Vec::new();
    {
        let txn = db.begin_read().db(path)?;
        let shares = txn.open_table(SHARES).db(path)?;
        for entry in shares.iter().db(path)? {
            let (key, row) = entry.db(path)?;
            let id = ContentId::from_bytes(*key.value());
            let body = layout.body_path(&id);
            // An error other than "missing" (permissions, I/O) stops the
            // open rather than dropping rows: better a node that does not
            // start than one that forgets what it holds.
            let len = body_len(&body).map_err(|error| io_error("inspect", &body, error))?;
            match ShareInfo::decode(row.value()).filter(|info| len == Some(info.len)) {
                Some(info) => {
                    counters.shares += 1;
                    counters.bytes += info.len;
                    if info.owner != crate::owners::NO_OWNER {
                        *counters.owners.entry(info.owner).or_default() += info.len;
                    }
                }
                None => bad_rows.push(id),
            }
        }
        for entry in txn.open_table(BY_STRIPE).db(path)?.iter().db(path)? {
            let (key, _) = entry.db(path)?;
            let (_, _, share) = split_stripe_key(key.value());
            if shares.get(share.as_bytes()).db(path)?.is_none() {
                dangling_index.push(*key.value());
            }
        }
        for entry in txn.open_table(EXPIRY).db(path)?.iter().db(path)? {
            let (key, _) = entry.db(path)?;
            let (at, share) = key.value();
            let current = shares
                .get(share)
                .db(path)?
                .and_then(|row| ShareInfo::decode(row.value()));
            if current.is_none_or(|info| info.expires_at != Some(at)) {
                dangling_expiry.push((at, *share));
            }
        }
        for entry in txn.open_table(RECORDS).db(path)?.iter().db(path)? {
            let (_, record) = entry.db(path)?;
            counters.records += 1;
            counters.bytes += record.value().len() as u64;
        }
    }
    if !(bad_rows.is_empty() && dangling_index.is_empty() && dangling_expiry.is_empty()) {
        let txn = db.begin_write().db(path)?;
        for id in &bad_rows {
            remove_share_rows(&txn, path, id)?;
        }
        {
            let mut index = txn.open_table(BY_STRIPE).db(path)?;
            for key in &dangling_index {
                index.remove(key).db(path)?;
            }
            let mut expiry = txn.open_table(EXPIRY).db(path)?;
            for (at, share) in &dangling_expiry {
                expiry.remove((*at, share)).db(path)?;
            }
        }
        txn.commit().db(path)?;
        // The wrong-length bodies now have no row: the sweep below deletes
        // them.
        report.dropped_rows = bad_rows.len();
        report.dangling_index_entries = dangling_index.len() + dangling_expiry.len();
    }

    // 2. Bodies without a row (and anything else that is not a share body
    //    in its right place).
    let mut rebuilt: Vec<(ContentId, u64)> = Vec::new();
    {
        let txn = db.begin_read().db(path)?;
        let shares = txn.open_table(SHARES).db(path)?;
        let has_row =
            |id: &ContentId| -> Result<bool> { Ok(shares.get(id.as_bytes()).db(path)?.is_some()) };
        let mode = if fresh {
            Sweep::Rebuild(&mut rebuilt)
        } else {
            Sweep::Delete
        };
        let swept = sweep_bodies(layout, has_row, mode)?;
        if fresh {
            report.quarantined = swept;
        } else {
            report.orphan_bodies = swept;
        }
    }
    if fresh {
        // Register the verified bodies, a batch per transaction; the format
        // version goes in last (see the module comment).
        for batch in rebuilt.chunks(4096) {
            let txn = db.begin_write().db(path)?;
            {
                let mut shares = txn.open_table(SHARES).db(path)?;
                for (id, len) in batch {
                    let row = ShareInfo::unattached(*len).encode();
                    shares.insert(id.as_bytes(), row.as_slice()).db(path)?;
                }
            }
            txn.commit().db(path)?;
        }
        counters.shares += rebuilt.len() as u64;
        counters.bytes += rebuilt.iter().map(|(_, len)| len).sum::<u64>();
        report.rebuilt_shares = rebuilt.len();
        let txn = db.begin_write().db(path)?;
        record_format(&txn, path)?;
        txn.commit().db(path)?;
    }
    Ok((counters, report))
}

/// What the sweep does with a body that has no row.
enum Sweep<'a> {
    /// Normal start-up: it is a crash leftover; delete it (and any stray
    /// file).
    Delete,
    /// The index was lost: verify it and, if it hashes to its name, add it
    /// to the list to register; move anything else to `quarantine/`.
    Rebuild(&'a mut Vec<(ContentId, u64)>),
}

/// Deletes everything in `tmp/`; returns how many entries it removed.
fn clear_tmp(tmp: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in read_dir(tmp)? {
        let path = entry.path();
        let result = if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.map_err(|error| io_error("remove leftover temp file", &path, error))?;
        removed += 1;
    }
    Ok(removed)
}

/// Walks `shares/ab/cd/` and deals with every file that is not the body of
/// a share with a row, in the folder its name says: deleted, or (rebuilding)
/// verified and listed, or quarantined. Returns how many files it deleted
/// or quarantined.
fn sweep_bodies(
    layout: &Layout,
    has_row: impl Fn(&ContentId) -> Result<bool>,
    mut mode: Sweep<'_>,
) -> Result<usize> {
    let mut removed = 0;
    for first in read_dir(&layout.shares)? {
        if !first.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_stray(layout, &first.path(), &mode, &mut removed)?;
            continue;
        }
        for second in read_dir(&first.path())? {
            if !second.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_stray(layout, &second.path(), &mode, &mut removed)?;
                continue;
            }
            for body in read_dir(&second.path())? {
                let path = body.path();
                if body.file_type().is_ok_and(|kind| kind.is_dir()) {
                    tracing::warn!(path = %path.display(), "unexpected folder in the share store; leaving it");
                    continue;
                }
                let id =
                    id_from_file_name(&body.file_name()).filter(|id| layout.body_path(id) == path);
                let Some(id) = id else {
                    remove_stray(layout, &path, &mode, &mut removed)?;
                    continue;
                };
                if has_row(&id)? {
                    continue;
                }
                match &mut mode {
                    Sweep::Delete => remove_stray(layout, &path, &mode, &mut removed)?,
                    Sweep::Rebuild(found) => {
                        let bytes =
                            fs::read(&path).map_err(|error| io_error("read", &path, error))?;
                        if id.verifies(&bytes) {
                            found.push((id, bytes.len() as u64));
                        } else {
                            tracing::warn!(path = %path.display(),
                                "a share body does not hash to its name; moving it to quarantine");
                            remove_stray(layout, &path, &mode, &mut removed)?;
                        }
                    }
                }
            }
        }
    }
    Ok(removed)
}

/// Deletes a stray file, or moves it to `quarantine/` when rebuilding.
fn remove_stray(layout: &Layout, path: &Path, mode: &Sweep<'_>, removed: &mut usize) -> Result<()> {
    match mode {
        Sweep::Delete => remove_file_if_present(path)?,
        Sweep::Rebuild(_) => quarantine(layout, path)?,
    }
    *removed += 1;
    Ok(())
}

/// Moves `path` into `quarantine/` under its own name (numbered if taken).
fn quarantine(layout: &Layout, path: &Path) -> Result<()> {
    create_dir_durable(&layout.quarantine)?;
    let name = path.file_name().map_or_else(
        || "unnamed".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    let mut target = layout.quarantine.join(&name);
    let mut n = 1;
    while target.exists() {
        target = layout.quarantine.join(format!("{name}.{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(|error| io_error("move to quarantine", path, error))?;
    sync_dir(&layout.quarantine)
}

/// The entries of a folder (none if it does not exist).
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("list", dir, error)),
    };
    entries
        .collect::<io::Result<Vec<_>>>()
        .map_err(|error| io_error("list", dir, error))
}

/// The length of a body file, `None` if it is missing.
fn body_len(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}
