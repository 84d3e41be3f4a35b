//! Folder listings: what the stored bytes of a folder capability are.
//!
//! A folder is stored as one file whose plaintext is its listing: one entry
//! per file or subfolder directly inside it, each with its name, size,
//! media type and capability. A subfolder's entry holds the subfolder's own
//! folder capability, so a tree of folders is a tree of listings, each
//! named by hash through its capability (a Merkle tree, like git's trees):
//! no listing holds more than its own folder's entries, so a site of
//! 100,000 files in a few hundred folders is a few hundred small listings,
//! and reading one path fetches only the listings on its way.
//!
//! Layout of the plaintext (integers little-endian):
//!
//! ```text
//! "KFL1" | entry_count:u32 | entry_count × entry
//! entry: size:u64 | name_len:u16 | name | media_len:u8 | media_type | capability:69
//! ```
//!
//! The capability is its binary form (`Capability::to_bytes`, kind byte and
//! checksum included), so an entry says by itself whether it is a file or a
//! folder. Entries are sorted by the bytes of their names, with no name
//! twice: a listing has exactly one encoding, and a lookup is a binary
//! search. A folder entry's size is the total of the files below it.
//!
//! Like a manifest's file name, an entry's name is a single name, never a
//! path: `kith get` writes a folder by these names, so a name that could
//! climb out (`..`, `a/b`, `a\b`), hide in a terminal (control characters)
//! or disguise a file's type (a right-to-left override) is refused both
//! when a listing is written and when one is read. A listing is
//! authenticated only as coming from someone who had the key.

use kith_base::layout::{self, LayoutError};
use kith_base::{Capability, CapabilityKind, letter};
use serde::{Deserialize, Serialize};

use crate::error::NameError;
use crate::manifest::{check_media_type, check_name};

/// Magic and format version of a folder listing.
pub const FOLDER_MAGIC: &[u8; 4] = b"KFL1";
/// Largest listing plaintext: 64 MiB, the manifest's bound (about 800,000
/// entries of short names; a folder with more must be split into
/// subfolders).
pub const MAX_LISTING_LEN: usize = 64 << 20;
/// Bytes of an entry besides its name and media type.
const ENTRY_FIXED_LEN: usize = 8 + 2 + 1 + Capability::LEN;
/// Bytes before the entries.
const HEADER_LEN: usize = 4 + 4;

/// Why a listing cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// The bytes are not a folder listing at all.
    #[error("this is not a folder listing (it does not start with KFL1)")]
    NotAListing,
    /// A listing of a newer format.
    #[error("this folder listing has format version {0}; a newer kith may read it")]
    UnknownVersion(char),
    /// The bytes end inside the named part.
    #[error("the folder listing is cut short in its {0}")]
    Truncated(&'static str),
    /// Bytes after the last entry.
    #[error("the folder listing has {0} byte(s) after its last entry")]
    TrailingBytes(usize),
    /// An entry's name is not a plain name.
    #[error("entry {name:?} has a name that cannot be used: {reason}")]
    Name {
        /// The name, cut to 80 characters.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry's media type is not acceptable.
    #[error("entry {name:?} has a media type that cannot be used: {reason}")]
    MediaType {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// An entry's capability does not read.
    #[error("entry {name:?} has a capability that does not read: {reason}")]
    Capability {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        reason: kith_base::CapabilityError,
    },
    /// Two entries with one name, or entries out of order.
    #[error("the name {0:?} is listed twice or out of order")]
    Order(String),
    /// The listing would be larger than [`MAX_LISTING_LEN`].
    #[error(
        "a folder listing of {entries} entries would be larger than 64 MiB; split the folder \
         into subfolders"
    )]
    TooLarge {
        /// Entries in the folder.
        entries: usize,
    },
}

/// One file or subfolder directly inside a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderEntry {
    name: String,
    size: u64,
    media_type: Option<String>,
    capability: Capability,
}

impl FolderEntry {
    /// An entry, its name and media type checked (see the module docs).
    pub fn new(
        name: &str,
        size: u64,
        media_type: Option<&str>,
        capability: Capability,
    ) -> Result<Self, FolderError> {
        check_entry_name(name)?;
        if let Some(media) = media_type {
            check_media_type(media).map_err(|reason| FolderError::MediaType {
                name: shorten(name),
                reason,
            })?;
        }
        Ok(Self {
            name: name.to_owned(),
            size,
            media_type: media_type.map(str::to_owned),
            capability,
        })
    }

    /// Its name in the folder: one name, never a path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes in the file, or in every file below a subfolder.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its media type (such as `text/html`), if one was stored.
    pub fn media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }

    /// The capability that reads it.
    pub fn capability(&self) -> &Capability {
        &self.capability
    }

    /// A file or a folder.
    pub fn kind(&self) -> CapabilityKind {
        self.capability.kind()
    }

    fn encoded_len(&self) -> usize {
        ENTRY_FIXED_LEN + self.name.len() + self.media_type.as_ref().map_or(0, String::len)
    }
}

/// A folder's listing: its entries, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Folder {
    entries: Vec<FolderEntry>,
}

/// The fixed-width part of an entry before its name.
#[derive(Serialize, Deserialize)]
struct EntryHead {
    #[serde(with = "kith_base::layout::le")]
    size: u64,
    #[serde(with = "kith_base::layout::le")]
    name_len: u16,
}

/// The entry count after the magic.
#[derive(Serialize, Deserialize)]
struct EntryCount(#[serde(with = "kith_base::layout::le")] u32);

impl Folder {
    /// A listing of `entries` in any order; refuses a name given twice and
    /// a listing past [`MAX_LISTING_LEN`].
    pub fn new(mut entries: Vec<FolderEntry>) -> Result<Self, FolderError> {
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(FolderError::Order(shorten(&pair[0].name)));
        }
        let len: usize = HEADER_LEN + entries.iter().map(FolderEntry::encoded_len).sum::<usize>();
        if len > MAX_LISTING_LEN {
            return Err(FolderError::TooLarge {
                entries: entries.len(),
            });
        }
        Ok(Self { entries })
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[FolderEntry] {
        &self.entries
    }

    /// The entry called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&FolderEntry> {
        self.entries
            .binary_search_by(|entry| entry.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|index| &self.entries[index])
    }

    /// Bytes in every file listed here and below (saturating).
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |total, entry| total.saturating_add(entry.size))
    }

    /// The plaintext bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(listing_len(&self.entries));
        out.extend_from_slice(FOLDER_MAGIC);
        // `new` keeps a listing under 64 MiB, so the count fits a u32.
        layout::write(&EntryCount(self.entries.len() as u32), &mut out);
        for entry in &self.entries {
            // Names are at most 255 bytes and media types 127 (checked).
            let head = EntryHead {
                size: entry.size,
                name_len: entry.name.len() as u16,
            };
            layout::write(&head, &mut out);
            out.extend_from_slice(entry.name.as_bytes());
            let media = entry.media_type.as_deref().unwrap_or("");
            out.push(media.len() as u8);
            out.extend_from_slice(media.as_bytes());
            out.extend_from_slice(&entry.capability.to_bytes());
        }
        out
    }

    /// Reads and checks a listing's plaintext: every name and media type,
    /// every capability's checksum, the order, and nothing left over.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FolderError> {
        if bytes.len() > MAX_LISTING_LEN {
            return Err(FolderError::TooLarge {
                entries: bytes.len() / ENTRY_FIXED_LEN,
            });
        }
        let (magic, rest) = layout::read::<[u8; 4]>(bytes, "magic").map_err(layout_error)?;
        if magic != *FOLDER_MAGIC {
            return Err(if magic[..3] == FOLDER_MAGIC[..3] {
                FolderError::UnknownVersion(char::from(magic[3]))
            } else {
                FolderError::NotAListing
            });
        }
        let (EntryCount(count), mut rest) =
            layout::read(rest, "entry count").map_err(layout_error)?;
        // Bound what is reserved by the bytes actually present.
        let mut entries: Vec<FolderEntry> =
            Vec::with_capacity((count as usize).min(rest.len() / ENTRY_FIXED_LEN));
        for _ in 0..count {
            let (entry, after) = read_entry(rest)?;
            if let Some(last) = entries.last()
                && last.name.as_bytes() >= entry.name.as_bytes()
            {
                return Err(FolderError::Order(shorten(&entry.name)));
            }
            entries.push(entry);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(FolderError::TrailingBytes(rest.len()));
        }
        Ok(Self { entries })
    }
}

/// Bytes of the listing of `entries`.
fn listing_len(entries: &[FolderEntry]) -> usize {
    HEADER_LEN + entries.iter().map(FolderEntry::encoded_len).sum::<usize>()
}

/// Reads one entry; returns it and what follows.
fn read_entry(bytes: &[u8]) -> Result<(FolderEntry, &[u8]), FolderError> {
    let (head, rest) = layout::read::<EntryHead>(bytes, "entry").map_err(layout_error)?;
    let (name, rest) =
        layout::split(rest, usize::from(head.name_len), "entry name").map_err(layout_error)?;
    let name = std::str::from_utf8(name).map_err(|_| FolderError::Name {
        name: String::from_utf8_lossy(name).chars().take(80).collect(),
        reason: NameError::NotUtf8.to_string(),
    })?;
    let (media_len, rest) = layout::read::<u8>(rest, "media type length").map_err(layout_error)?;
    let (media, rest) =
        layout::split(rest, usize::from(media_len), "media type").map_err(layout_error)?;
    let media = match media {
        [] => None,
        media => Some(
            std::str::from_utf8(media).map_err(|_| FolderError::MediaType {
                name: shorten(name),
                reason: NameError::NotUtf8,
            })?,
        ),
    };
    let (capability, rest) =
        layout::split(rest, Capability::LEN, "entry capability").map_err(layout_error)?;
    let capability =
        Capability::from_bytes(capability).map_err(|reason| FolderError::Capability {
            name: shorten(name),
            reason,
        })?;
    Ok((FolderEntry::new(name, head.size, media, capability)?, rest))
}

/// Checks a name directly inside a folder: a file name (no `/`, `\`,
/// `.`, `..` or control characters, at most 255 bytes) that is also free
/// of invisible formatting characters.
pub fn check_entry_name(name: &str) -> Result<(), FolderError> {
    let refuse = |reason: String| {
        Err(FolderError::Name {
            name: shorten(name),
            reason,
        })
    };
    if let Err(error) = check_name(name) {
        return refuse(error.to_string());
    }
    if name.chars().any(letter::is_invisible_format) {
        return refuse(
            "it contains invisible formatting characters (such as a right-to-left override) \
             that can disguise a file's type"
                .to_owned(),
        );
    }
    Ok(())
}

fn shorten(name: &str) -> String {
    name.chars().take(80).collect()
}

fn layout_error(error: LayoutError) -> FolderError {
    match error {
        LayoutError::Trailing { extra, .. } => FolderError::TrailingBytes(extra),
        LayoutError::Short { what } | LayoutError::Malformed { what, .. } => {
            FolderError::Truncated(what)
        }
    }
}

#[cfg(test)]
mod tests {
    use kith_base::{ContentId, FileKey};

    use super::*;

    fn cap(seed: u8, kind: CapabilityKind) -> Capability {
        Capability::new(ContentId::of(&[seed]), FileKey::from_bytes([seed; 32])).with_kind(kind)
    }

    fn sample() -> Folder {
        Folder::new(vec![
            FolderEntry::new(
                "style.css",
                120,
                Some("text/css"),
                cap(1, CapabilityKind::File),
            )
            .unwrap(),
            FolderEntry::new("img", 5000, None, cap(2, CapabilityKind::Folder)).unwrap(),
            FolderEntry::new(
                "index.html",
                300,
                Some("text/html"),
                cap(3, CapabilityKind::File),
            )
            .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn a_listing_round_trips_sorted() {
        let folder = sample();
        let names: Vec<&str> = folder.entries().iter().map(FolderEntry::name).collect();
        assert_eq!(names, ["img", "index.html", "style.css"]);
        let bytes = folder.to_bytes();
        assert_eq!(Folder::from_bytes(&bytes), Ok(folder.clone()));
        assert_eq!(folder.get("img").unwrap().kind(), CapabilityKind::Folder);
        assert_eq!(
            folder.get("index.html").unwrap().media_type(),
            Some("text/html")
        );
        assert!(folder.get("missing").is_none());
        assert_eq!(folder.total_size(), 5420);
    }

    #[test]
    fn the_empty_folder_is_eight_bytes() {
        let bytes = Folder::default().to_bytes();
        assert_eq!(bytes, b"KFL1\0\0\0\0");
        assert_eq!(Folder::from_bytes(&bytes), Ok(Folder::default()));
    }

    #[test]
    fn known_answer_pins_the_layout() {
        let folder = Folder::new(vec![
            FolderEntry::new("a", 1, Some("t/x"), cap(9, CapabilityKind::File)).unwrap(),
        ])
        .unwrap();
        let bytes = folder.to_bytes();
        let mut expected = b"KFL1\x01\0\0\0\x01\0\0\0\0\0\0\0\x01\0a\x03t/x".to_vec();
        expected.extend_from_slice(&cap(9, CapabilityKind::File).to_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn names_that_could_escape_or_disguise_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", "\u{202e}gnp.exe"] {
            let error = FolderEntry::new(bad, 1, None, cap(1, CapabilityKind::File)).unwrap_err();
            assert!(
                matches!(error, FolderError::Name { .. }),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn a_name_twice_is_refused_when_written_and_when_read() {
        let entry = FolderEntry::new("a", 1, None, cap(1, CapabilityKind::File)).unwrap();
        assert!(matches!(
            Folder::new(vec![entry.clone(), entry.clone()]),
            Err(FolderError::Order(_))
        ));
        // Hand-made bytes with the entry twice.
        let one = Folder::new(vec![entry]).unwrap().to_bytes();
        let mut twice = b"KFL1\x02\0\0\0".to_vec();
        twice.extend_from_slice(&one[8..]);
        twice.extend_from_slice(&one[8..]);
        assert!(matches!(
            Folder::from_bytes(&twice),
            Err(FolderError::Order(_))
        ));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample().to_bytes();
        for end in 0..bytes.len() {
            assert!(Folder::from_bytes(&bytes[..end]).is_err(), "cut at {end}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Folder::from_bytes(&longer),
            Err(FolderError::TrailingBytes(1))
        );
    }

    #[test]
    fn a_huge_count_reserves_nothing_it_cannot_read() {
        let bytes = b"KFL1\xff\xff\xff\xff";
        assert!(matches!(
            Folder::from_bytes(bytes),
            Err(FolderError::Truncated(_))
        ));
    }

    #[test]
    fn other_bytes_are_not_a_listing() {
        assert_eq!(
            Folder::from_bytes(b"KMF1...."),
            Err(FolderError::NotAListing)
        );
        assert_eq!(
            Folder::from_bytes(b"KFL2\0\0\0\0"),
            Err(FolderError::UnknownVersion('2'))
        );
    }
}
