//! Keeping a full copy of a file or a folder tree in this node's store:
//! what a mirror holds.
//!
//! Every stripe of every file (the folder listings included) is fetched,
//! verified and stored as an ownerless copy that no lease ends, and this
//! node announces itself as a holder ([`super::get::Caching::Mirror`]). A
//! stripe the store refuses (quota, disk) stops the copy with an error;
//! what was stored stays. Memory holds one listing and one file's stripes
//! in flight at a time; the walk keeps the capabilities still to copy
//! (69 bytes each).

use kith_base::Capability;
use kith_codec::Folder;
use kith_codec::folder::MAX_LISTING_LEN;

use super::Shares;
use super::folder::PathError;
use super::get::Caching;

/// What a copy holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Files copied (not counting folder listings).
    pub files: u64,
    /// Folders copied (their listings).
    pub folders: u64,
    /// Plaintext bytes of the files.
    pub bytes: u64,
}

impl Shares {
    /// Copies everything `capability` reads into this node's store.
    pub(crate) async fn copy_tree(&self, capability: &Capability) -> Result<CopyReport, PathError> {
        let mut report = CopyReport::default();
        let mut to_copy = vec![capability.clone()];
        // A tree may name one folder or file many times (it is a DAG, not
        // a tree): each is copied once, so the walk is linear in the
        // distinct listings and files.
        let mut seen = std::collections::HashSet::new();
        while let Some(capability) = to_copy.pop() {
            if !seen.insert(capability.manifest()) {
                continue;
            }
            let download = self.open_with(&capability, Caching::Mirror).await?;
            let size = download.manifest().file_size();
            if capability.is_folder() && size > MAX_LISTING_LEN as u64 {
                return Err(PathError::ListingTooLarge {
                    at: "a folder of the mirrored tree".into(),
                    size,
                });
            }
            let mut listing = Vec::new();
            let mut segments = download.into_stream();
            while let Some(segment) = segments.recv().await {
                let segment = segment?;
                if capability.is_folder() {
                    listing.extend_from_slice(&segment);
                }
            }
            if capability.is_folder() {
                let folder = Folder::from_bytes(&listing).map_err(|source| PathError::Listing {
                    at: "a folder of the mirrored tree".into(),
                    source,
                })?;
                to_copy.extend(folder.entries().iter().map(|e| e.capability().clone()));
                report.folders += 1;
            } else {
                report.files += 1;
                report.bytes = report.bytes.saturating_add(size);
            }
        }
        Ok(report)
    }
}
