//! Choosing a quota: how much of a disk a node offers to others by default.
//!
//! A node that a person just installed should not take over their laptop's
//! disk, and one on a large server should not offer a useless sliver. Ten
//! percent of the space free at first start, capped at 100 GiB, is generous
//! on a Raspberry Pi's SD card and modest on a server; operators set their
//! own with `kith up --quota`. The node should compute this once and keep
//! the result in its config: recomputed at every start it would shrink as
//! the store fills the disk.

use std::path::Path;

use crate::error::{Result, io_error};

/// Fraction of the free space [`default_quota`] offers: one tenth.
pub const DEFAULT_QUOTA_DIVISOR: u64 = 10;
/// Largest quota [`default_quota`] picks: 100 GiB.
pub const DEFAULT_QUOTA_CAP: u64 = 100 << 30;

/// A sensible quota for a store in `dir`: a tenth of the space free on its
/// file system, at most [`DEFAULT_QUOTA_CAP`]. `dir` need not exist yet; the
/// nearest existing ancestor is measured.
pub fn default_quota(dir: &Path) -> Result<u64> {
    Ok((free_space(dir)? / DEFAULT_QUOTA_DIVISOR).min(DEFAULT_QUOTA_CAP))
}

/// Bytes an unprivileged user can still write on the file system holding
/// `dir` (or its nearest existing ancestor).
pub fn free_space(dir: &Path) -> Result<u64> {
    let stats = statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Total size of the file system holding `dir`.
pub(crate) fn disk_size(dir: &Path) -> Result<u64> {
    let stats = statvfs(dir)?;
    Ok(stats.f_blocks.saturating_mul(stats.f_frsize))
}

fn statvfs(dir: &Path) -> Result<rustix::fs::StatVfs> {
    let mut probe = dir;
    while !probe.exists() {
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
            _ => {
                probe = Path::new(".");
                break;
            }
        }
    }
    rustix::fs::statvfs(probe)
        .map_err(|errno| io_error("measure free space of", probe, errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_quota_is_a_capped_tenth_of_free_space() {
        let dir = std::env::temp_dir();
        let free = free_space(&dir).unwrap();
        let quota = default_quota(&dir.join("not/yet/created")).unwrap();
        assert!(quota <= DEFAULT_QUOTA_CAP);
        // Free space moves while tests run; allow slack.
        let expected = (free / 10).min(DEFAULT_QUOTA_CAP);
        assert!(quota.abs_diff(expected) < 1 << 30, "{quota} vs {expected}");
    }
}
