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

use std::fs;
use std::io;
use std::path::Path;

use kith_base::ContentId;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::{DbContext, Result, io_error};
use crate::layout::{Layout, id_from_file_name, remove_file_if_present};
use crate::store::{Counters, remove_share_rows};
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
}

impl RecoveryReport {
    /// True if there was nothing to recover.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// Runs the pass and returns the totals of what remains.
pub(crate) fn recover(layout: &Layout, db: &Database) -> Result<(Counters, RecoveryReport)> {
    let mut report = RecoveryReport {
        temp_files: clear_tmp(&layout.tmp)?,
        ..RecoveryReport::default()
    };
    let path = &layout.db;

    // 1. Rows whose body is missing or of the wrong length. Collected in a
    //    read transaction (usually none), then dropped in one write.
    let mut counters = Counters::default();
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
    let txn = db.begin_read().db(path)?;
    let shares = txn.open_table(SHARES).db(path)?;
    let has_row =
        |id: &ContentId| -> Result<bool> { Ok(shares.get(id.as_bytes()).db(path)?.is_some()) };
    report.orphan_bodies = sweep_bodies(layout, has_row)?;
    Ok((counters, report))
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

/// Walks `shares/ab/cd/` and deletes every file that is not the body of a
/// share with a row, in the folder its name says. Returns how many.
fn sweep_bodies(layout: &Layout, has_row: impl Fn(&ContentId) -> Result<bool>) -> Result<usize> {
    let mut removed = 0;
    for first in read_dir(&layout.shares)? {
        if !first.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_stray(&first.path(), &mut removed)?;
            continue;
        }
        for second in read_dir(&first.path())? {
            if !second.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_stray(&second.path(), &mut removed)?;
                continue;
            }
            for body in read_dir(&second.path())? {
                let path = body.path();
                if body.file_type().is_ok_and(|kind| kind.is_dir()) {
                    tracing::warn!(path = %path.display(), "unexpected folder in the share store; leaving it");
                    continue;
                }
                let keep = match id_from_file_name(&body.file_name()) {
                    Some(id) => layout.body_path(&id) == path && has_row(&id)?,
                    None => false,
                };
                if !keep {
                    remove_stray(&path, &mut removed)?;
                }
            }
        }
    }
    Ok(removed)
}

fn remove_stray(path: &Path, removed: &mut usize) -> Result<()> {
    remove_file_if_present(path)?;
    *removed += 1;
    Ok(())
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
