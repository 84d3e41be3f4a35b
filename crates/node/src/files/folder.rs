//! Folders on the network: a folder is its listing ([`kith_codec::folder`])
//! stored as a file, read through a folder capability; a path inside it is
//! read one listing at a time, from the top down.
//!
//! The listings of a folder's subfolders are separate files, so reading
//! `site/img/cat.jpg` fetches the listings of `site` and `img` and nothing
//! else, and memory holds one listing at a time (each at most
//! [`MAX_LISTING_LEN`]). Listings are content-addressed and never change, so
//! the last few read are kept ([`LISTINGS_KEPT`]): a browser loading a page
//! and its twenty images reads the folder once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use kith_base::{Capability, CapabilityKind, ContentId};
use kith_codec::folder::MAX_LISTING_LEN;
use kith_codec::{FileMeta, Folder, FolderError, Params};

use super::Shares;
use super::get::GetError;
use super::put::{PutError, PutReport};

/// Listings kept in memory after they are read (each at most 64 MiB, most
/// a few KiB; the cache also stops at [`LISTING_CACHE_BYTES`]).
const LISTINGS_KEPT: usize = 64;
/// Most plaintext bytes of listings kept in memory at once.
const LISTING_CACHE_BYTES: usize = 16 << 20;

/// Why a folder or a path inside one could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Fetching a listing failed.
    #[error(transparent)]
    Get(#[from] GetError),
    /// A capability or an entry on the way is a file, where a folder was
    /// needed.
    #[error("{at} is a file, not a folder: there is nothing inside it")]
    NotAFolder {
        /// Where: "the capability" or the path walked so far.
        at: String,
    },
    /// The folder has no entry by that name.
    #[error("{folder} has no entry {name:?}")]
    Missing {
        /// The folder: "the folder" or the path walked so far.
        folder: String,
        /// The name looked for.
        name: String,
    },
    /// The listing is larger than a listing may be.
    #[error("the listing of {at} is {size} bytes, more than a folder listing may be (64 MiB)")]
    ListingTooLarge {
        /// Which folder.
        at: String,
        /// Its size, as its manifest says.
        size: u64,
    },
    /// The listing was fetched but does not read as one.
    #[error("the listing of {at} does not read: {source}")]
    Listing {
        /// Which folder.
        at: String,
        /// What is wrong with it.
        source: FolderError,
    },
}

/// A listing kept: its manifest stripe's id, the listing, its bytes.
type KeptListing = (ContentId, Arc<Folder>, usize);

/// Listings read lately, by the id of their manifest stripe.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListingCache {
    kept: Arc<Mutex<VecDeque<KeptListing>>>,
}

impl ListingCache {
    fn get(&self, id: &ContentId) -> Option<Arc<Folder>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .find(|(kept_id, _, _)| kept_id == id)
            .map(|(_, folder, _)| folder.clone())
    }

    fn keep(&self, id: ContentId, folder: Arc<Folder>, len: usize) {
        if len > LISTING_CACHE_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(kept_id, _, _)| *kept_id != id);
        kept.push_back((id, folder, len));
        let mut total: usize = kept.iter().map(|(_, _, len)| len).sum();
        while kept.len() > LISTINGS_KEPT || total > LISTING_CACHE_BYTES {
            let Some((_, _, len)) = kept.pop_front() else {
                break;
            };
            total -= len;
        }
    }
}

impl Shares {
    /// Stores `folder`'s listing like any file and returns its folder
    /// capability. The entries' own files must be stored already.
    pub(crate) async fn put_folder(
        &self,
        folder: &Folder,
        params: Params,
    ) -> Result<PutReport, PutError> {
        let bytes = folder.to_bytes();
        let mut report = self
            .put(
                Box::new(std::io::Cursor::new(bytes)),
                params,
                FileMeta::none(),
            )
            .await?;
        report.capability = report.capability.with_kind(CapabilityKind::Folder);
        Ok(report)
    }

    /// Fetches and reads the listing of the folder `capability` reads.
    pub(crate) async fn open_folder(
        &self,
        capability: &Capability,
    ) -> Result<Arc<Folder>, PathError> {
        self.listing(capability, "the capability").await
    }

    /// The capability of what `path` names inside the folder `capability`
    /// reads (itself for an empty path), and the entry's media type.
    pub(crate) async fn resolve(
        &self,
        capability: &Capability,
        path: &[String],
    ) -> Result<(Capability, Option<String>), PathError> {
        let mut current = capability.clone();
        let mut media_type = None;
        let mut walked = String::new();
        for name in path {
            let at = if walked.is_empty() {
                "the capability".to_owned()
            } else {
                walked.clone()
            };
            let folder = self.listing(&current, &at).await?;
            let Some(entry) = folder.get(name) else {
                return Err(PathError::Missing {
                    folder: if walked.is_empty() {
                        "the folder".to_owned()
                    } else {
                        format!("the folder {walked}")
                    },
                    name: name.clone(),
                });
            };
            current = entry.capability().clone();
            media_type = entry.media_type().map(str::to_owned);
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(name);
        }
        Ok((current, media_type))
    }

    /// One listing, from the cache or the network; `at` names it in errors.
    async fn listing(&self, capability: &Capability, at: &str) -> Result<Arc<Folder>, PathError> {
        if !capability.is_folder() {
            return Err(PathError::NotAFolder { at: at.to_owned() });
        }
        let id = capability.manifest();
        if let Some(folder) = self.listings.get(&id) {
            return Ok(folder);
        }
        let download = self.open(capability).await?;
        let size = download.manifest().file_size();
        let listing_error = |source| PathError::Listing {
            at: at.to_owned(),
            source,
        };
        if size > MAX_LISTING_LEN as u64 {
            return Err(PathError::ListingTooLarge {
                at: at.to_owned(),
                size,
            });
        }
        // Bounded just above by MAX_LISTING_LEN.
        let mut bytes = Vec::with_capacity(size as usize);
        let mut segments = download.into_stream();
        while let Some(segment) = segments.recv().await {
            bytes.extend_from_slice(&segment?);
        }
        if bytes.len() as u64 != size {
            return Err(GetError::Internal(format!(
                "the listing of {at} came back as {} bytes, its manifest says {size}",
                bytes.len()
            ))
            .into());
        }
        let folder = Arc::new(Folder::from_bytes(&bytes).map_err(listing_error)?);
        self.listings.keep(id, folder.clone(), bytes.len());
        Ok(folder)
    }
}
