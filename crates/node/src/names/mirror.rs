//! Mirrors: a full copy of a name's current version (or of a capability's
//! tree) kept in this node's store, served to anyone, and followed.
//!
//! `kith mirror NAME` records the mirror and copies the tree the name
//! points at ([`crate::files::Shares::copy_tree`]); every
//! [`super::NameSettings::mirror_check_every`] the node looks the name up
//! again and copies a new version as soon as a higher sequence appears. It
//! also stores the name's record on the closest peers (at once when it
//! sees a new one, and every republish round), so the name keeps resolving
//! while the publisher is offline.
//!
//! A mirror row is kept in the store's `mirrors` table under the target's
//! text; its layout is the serde struct [`MirrorRow`] written by
//! [`kith_base::layout`] (postcard), with a version byte first.

use std::str::FromStr;

use kith_base::{Capability, Name, layout};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{NameOpError, Names, newest};
use crate::files::unix_now;
use crate::lifecycle::Lifecycle;

const ROW_VERSION: u8 = 1;

/// A mirror as it is kept in the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MirrorRow {
    version: u8,
    /// When it was added (Unix seconds).
    added_at: u64,
    /// When it was last checked.
    checked_at: u64,
    /// The name's sequence copied (0 for a capability).
    sequence: u64,
    /// The binary capability of the tree held in full, or empty.
    held: Vec<u8>,
    /// Files and bytes of that tree.
    files: u64,
    bytes: u64,
    /// Why the last check failed, or empty.
    error: String,
}

impl MirrorRow {
    fn decode(bytes: &[u8]) -> Option<Self> {
        layout::read_all::<Self>(bytes, "mirror row")
            .ok()
            .filter(|row| row.version == ROW_VERSION)
    }
}

/// What is mirrored: a name (followed) or one capability (fixed).
#[derive(Debug, Clone)]
enum Target {
    Name(Name),
    Capability(Capability),
}

impl FromStr for Target {
    type Err = NameOpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.starts_with(kith_base::capability::PREFIX) {
            return text
                .parse::<Capability>()
                .map(Self::Capability)
                .map_err(|error| {
                    NameOpError::BadTarget(format!("not a capability to mirror: {error}"))
                });
        }
        text.parse::<Name>().map(Self::Name).map_err(|error| {
            NameOpError::BadTarget(format!(
                "a mirror follows a name or keeps a capability (kith:…); {text:?} is neither: \
                 {error}"
            ))
        })
    }
}

impl Target {
    fn key(&self) -> String {
        match self {
            Self::Name(name) => name.to_string(),
            Self::Capability(capability) => capability.to_string(),
        }
    }
}

/// One mirror, as `kith mirror ls` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MirrorInfo {
    /// The name or capability mirrored.
    pub target: String,
    /// The name's sequence held in full (absent for a capability, or before
    /// the first copy).
    pub sequence: Option<u64>,
    /// The capability of the tree held in full, if one is.
    pub held: Option<String>,
    /// Files of that tree.
    pub files: u64,
    /// Bytes of its files.
    pub bytes: u64,
    /// When it was added (Unix seconds).
    pub added_at: u64,
    /// When it was last checked (Unix seconds; 0 before the first check).
    pub checked_at: u64,
    /// Why the last check failed.
    pub error: Option<String>,
}

impl MirrorInfo {
    fn of(target: String, row: &MirrorRow) -> Self {
        let held = Capability::from_bytes(&row.held).ok();
        Self {
            target,
            sequence: (row.sequence > 0 && held.is_some()).then_some(row.sequence),
            held: held.map(|capability| capability.to_string()),
            files: row.files,
            bytes: row.bytes,
            added_at: row.added_at,
            checked_at: row.checked_at,
            error: (!row.error.is_empty()).then(|| row.error.clone()),
        }
    }
}

impl Names {
    /// Starts mirroring `target` (a name or a capability) and makes the
    /// first copy; returns the mirror's state after it. Mirroring what is
    /// already mirrored checks it now.
    pub(crate) async fn mirror(&self, target: &str) -> Result<MirrorInfo, NameOpError> {
        let target: Target = target.parse()?;
        let key = target.key();
        if self.row(&key).await?.is_none() {
            let row = MirrorRow {
                version: ROW_VERSION,
                added_at: unix_now(),
                ..MirrorRow::default()
            };
            self.save_row(&key, &row).await?;
            info!(target = %key, "mirroring");
        }
        self.sync(&key).await
    }

    /// Stops mirroring `target`. What was copied stays in the store as
    /// ordinary cached copies (served, and dropped only by `kith rm`).
    pub(crate) async fn unmirror(&self, target: &str) -> Result<(), NameOpError> {
        let key = target.parse::<Target>()?.key();
        // Not while a sync of it runs: its last write would bring it back.
        let _one_at_a_time = self.inner.mirror_sync.lock().await;
        let store = self.store().clone();
        let lookup = key.clone();
        if crate::files::blocking(move || store.names().remove_mirror(&lookup)).await? {
            info!(target = %key, "no longer mirroring");
            Ok(())
        } else {
            Err(NameOpError::NotMirrored(key))
        }
    }

    /// Every mirror, by target.
    pub(crate) async fn mirrors(&self) -> Result<Vec<MirrorInfo>, NameOpError> {
        let store = self.store().clone();
        let rows = crate::files::blocking(move || store.names().mirrors()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(target, row)| {
                MirrorRow::decode(&row).map(|row| MirrorInfo::of(target, &row))
            })
            .collect())
    }

    /// The names among the mirrors.
    pub(crate) async fn mirrored_names(&self) -> Vec<Name> {
        self.mirrors()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mirror| mirror.target.parse::<Name>().ok())
            .collect()
    }

    async fn row(&self, key: &str) -> Result<Option<MirrorRow>, NameOpError> {
        let store = self.store().clone();
        let key = key.to_owned();
        let rows = crate::files::blocking(move || store.names().mirrors()).await?;
        Ok(rows
            .into_iter()
            .find(|(target, _)| *target == key)
            .and_then(|(_, row)| MirrorRow::decode(&row)))
    }

    async fn save_row(&self, key: &str, row: &MirrorRow) -> Result<(), NameOpError> {
        let store = self.store().clone();
        let key = key.to_owned();
        let bytes = layout::to_vec(row);
        crate::files::blocking(move || store.names().set_mirror(&key, &bytes)).await?;
        Ok(())
    }

    /// Checks one mirror: looks its name up, copies a new version, and
    /// stores a new record on the closest peers.
    async fn sync(&self, key: &str) -> Result<MirrorInfo, NameOpError> {
        let _one_at_a_time = self.inner.mirror_sync.lock().await;
        // Removed while waiting: nothing to do.
        let Some(mut row) = self.row(key).await? else {
            return Err(NameOpError::NotMirrored(key.to_owned()));
        };
        let target: Target = key.parse()?;
        let (capability, record) = match target {
            Target::Capability(capability) => (capability, None),
            Target::Name(name) => {
                let (found, asked) = self.lookup(name).await;
                match newest(self.held(&name).await, found) {
                    Some(record) => {
                        // A mirror keeps its name's record whatever the
                        // table's limit, to republish it.
                        if let Err(error) = self.keep(&record, u64::MAX).await {
                            debug!(target = %key, %error, "cannot keep the mirrored name's record");
                        }
                        (record.target().clone(), Some(record))
                    }
                    None => {
                        row.error = NameOpError::NotFound { name, asked }.to_string();
                        row.checked_at = unix_now();
                        self.save_row(key, &row).await?;
                        return Ok(MirrorInfo::of(key.to_owned(), &row));
                    }
                }
            }
        };
        let sequence = record.as_ref().map_or(0, |record| record.sequence());
        if row.held != capability.to_bytes() {
            match self.shares().copy_tree(&capability).await {
                Ok(copy) => {
                    info!(target = %key, sequence, files = copy.files, bytes = copy.bytes, "mirror copied");
                    row.held = capability.to_bytes().to_vec();
                    row.files = copy.files;
                    row.bytes = copy.bytes;
                    row.error.clear();
                }
                Err(error) => {
                    warn!(target = %key, %error, "mirror copy failed");
                    row.error = format!("copying the current version failed: {error}");
                }
            }
        } else {
            row.error.clear();
        }
        if let Some(record) = record
            && record.sequence() != row.sequence
        {
            // A new version: hand its record to the closest peers now.
            let (stored, asked) = self.push(&record).await;
            debug!(target = %key, stored, asked, "mirror stored the name's record");
            if row.held == capability.to_bytes() {
                row.sequence = record.sequence();
            }
        }
        row.checked_at = unix_now();
        self.save_row(key, &row).await?;
        Ok(MirrorInfo::of(key.to_owned(), &row))
    }

    /// Checks every mirror now and then.
    pub(crate) async fn sync_mirrors_periodically(self, lifecycle: Lifecycle) {
        loop {
            tokio::select! {
                () = lifecycle.stopping() => return,
                () = tokio::time::sleep(self.settings().mirror_check_every) => {}
            }
            let keys = match self.mirrors().await {
                Ok(mirrors) => mirrors.into_iter().map(|mirror| mirror.target),
                Err(error) => {
                    warn!(%error, "cannot list the mirrors");
                    continue;
                }
            };
            for key in keys.collect::<Vec<_>>() {
                tokio::select! {
                    () = lifecycle.stopping() => return,
                    result = self.sync(&key) => {
                        if let Err(error) = result {
                            debug!(target = %key, %error, "mirror check failed");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_and_an_unknown_version_is_not_read() {
        let row = MirrorRow {
            version: ROW_VERSION,
            added_at: 1,
            checked_at: 2,
            sequence: 3,
            held: vec![7; 69],
            files: 4,
            bytes: 5,
            error: "x".into(),
        };
        let bytes = layout::to_vec(&row);
        let back = MirrorRow::decode(&bytes).unwrap();
        assert_eq!(
            (back.sequence, back.files, back.error.as_str()),
            (3, 4, "x")
        );
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(MirrorRow::decode(&newer).is_none());
        assert!(MirrorRow::decode(&bytes[..5]).is_none());
    }

    #[test]
    fn targets_are_names_or_capabilities_and_anything_else_is_refused_clearly() {
        let error = "nonsense".parse::<Target>().unwrap_err().to_string();
        assert!(
            error.contains("follows a name or keeps a capability"),
            "{error}"
        );
        let error = "kith:abc".parse::<Target>().unwrap_err().to_string();
        assert!(error.contains("not a capability to mirror"), "{error}");
    }
}
