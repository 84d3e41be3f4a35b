//! The manifest: what a file is made of, encrypted with the file key.
//!
//! It holds the file size, the coding parameters, the id of every data stripe
//! in order, and an optional name and media type. With the capability's key it
//! is all a reader needs to fetch, verify and decrypt the whole file.
//!
//! Layout of the plaintext (all integers little-endian):
//!
//! ```text
//! "KMF1" | file_size:u64 | segment_size:u32 | k:u8 | n:u8 | 0:u16 | stripe_count:u32
//!        | stripe_count × stripe id:32 | name_len:u16 | name | media_len:u8 | media_type
//! ```
//!
//! After the magic, the layout is defined by the serde structs `Header`,
//! `StripeCount`, `NameLen` and `MediaLen`, each followed by the part it
//! gives the length of, written and read by [`kith_base::layout`]. A test
//! vector pins the bytes.
//!
//! The encrypted manifest is capped at 64 MiB, about two million stripes (2 TiB
//! of file at 1 MiB segments, 32 TiB at 16 MiB). Past that the path is a tree
//! of manifests (a root listing child manifests), which needs a new magic;
//! one flat list keeps version 1 simple and covers every file a node of today
//! holds.
//!
//! Names are file names, never paths: whoever fetches a file may save it under
//! this name, so a name that could climb out of a folder (`..`, `a/b`) or hide
//! in a terminal (control characters) is refused both when writing and when
//! reading a manifest — a manifest is authenticated, but only as coming from
//! someone who had the key, not from someone honest.

use std::path::Path;

use kith_base::ContentId;
use kith_base::layout::{self, LayoutError};
use serde::{Deserialize, Serialize};

use crate::crypto::TAG_LEN;
use crate::error::{ManifestError, NameError};
use crate::params::{Params, stripe_count};

/// Magic and format version of a manifest.
pub const MANIFEST_MAGIC: &[u8; 4] = b"KMF1";
/// Bytes before the stripe ids.
pub const MANIFEST_HEADER_LEN: usize = 24;
/// Largest encrypted manifest (plaintext + 16-byte tag): 64 MiB.
pub const MAX_ENCRYPTED_MANIFEST: usize = 64 << 20;
/// Longest file name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest media type, in UTF-8 bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 127;

/// The fields after the magic, in layout order.
#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(with = "kith_base::layout::le")]
    file_size: u64,
    #[serde(with = "kith_base::layout::le")]
    segment_size: u32,
    k: u8,
    n: u8,
    reserved: [u8; 2],
}

/// The number of stripe ids that follow.
#[derive(Serialize, Deserialize)]
struct StripeCount(#[serde(with = "kith_base::layout::le")] u32);

/// The length of the file name that follows (0: none).
#[derive(Serialize, Deserialize)]
struct NameLen(#[serde(with = "kith_base::layout::le")] u16);

/// The length of the media type that follows (0: none).
#[derive(Serialize, Deserialize)]
struct MediaLen(u8);

/// Optional metadata stored (encrypted) in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMeta {
    name: Option<String>,
    media_type: Option<String>,
}

impl FileMeta {
    /// No name and no media type.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets the file name. It must be a name, not a path: at most 255 bytes,
    /// no `/`, `\`, NUL or other control characters, not `.` or `..`.
    pub fn with_name(mut self, name: &str) -> Result<Self, ManifestError> {
        check_name(name).map_err(ManifestError::Name)?;
        self.name = Some(name.to_owned());
        Ok(self)
    }

    /// Sets the name to the last component of `path` (what `kith put
    /// dir/photo.jpg` stores is `photo.jpg`).
    pub fn with_name_from_path(self, path: &Path) -> Result<Self, ManifestError> {
        let name = path
            .file_name()
            .ok_or(ManifestError::Name(NameError::Dots))?
            .to_str()
            .ok_or(ManifestError::Name(NameError::NotUtf8))?;
        self.with_name(name)
    }

    /// Sets the media type (such as `image/jpeg`): at most 127 bytes, no
    /// control characters (it is meant for an HTTP header, as the planned
    /// gateway would send it).
    pub fn with_media_type(mut self, media_type: &str) -> Result<Self, ManifestError> {
        check_media_type(media_type).map_err(ManifestError::MediaType)?;
        self.media_type = Some(media_type.to_owned());
        Ok(self)
    }

    /// The file name, if one was stored.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The media type, if one was stored.
    pub fn media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }

    fn encoded_len(&self) -> usize {
        2 + self.name.as_ref().map_or(0, String::len)
            + 1
            + self.media_type.as_ref().map_or(0, String::len)
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if name.is_empty() || name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

pub(crate) fn check_media_type(media_type: &str) -> Result<(), NameError> {
    if media_type.len() > MAX_MEDIA_TYPE_LEN {
        return Err(NameError::TooLong {
            len: media_type.len(),
            max: MAX_MEDIA_TYPE_LEN,
        });
    }
    if media_type.is_empty() {
        return Err(NameError::Dots);
    }
    if media_type.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// A decoded (or freshly built) manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    file_size: u64,
    params: Params,
    stripes: Vec<ContentId>,
    meta: FileMeta,
}

impl Manifest {
    /// Builds a manifest, checking that the stripe count fits the file size
    /// and that the whole fits in [`MAX_ENCRYPTED_MANIFEST`].
    pub fn new(
        file_size: u64,
        params: Params,
        stripes: Vec<ContentId>,
        meta: FileMeta,
    ) -> Result<Self, ManifestError> {
        let expected = params.stripe_count(file_size);
        check_fits(expected, &meta)?;
        if stripes.len() as u64 != expected {
            return Err(ManifestError::StripeCount {
                expected,
                got: u32::try_from(stripes.len()).unwrap_or(u32::MAX),
            });
        }
        Ok(Self {
            file_size,
            params,
            stripes,
            meta,
        })
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The coding parameters the file was stored with.
    pub fn params(&self) -> Params {
        self.params
    }

    /// The data stripe ids, in file order.
    pub fn stripes(&self) -> &[ContentId] {
        &self.stripes
    }

    /// Name and media type.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// The plaintext length of segment `index`, or `None` past the end.
    pub fn segment_len(&self, index: u32) -> Option<u32> {
        if index as usize >= self.stripes.len() {
            return None;
        }
        let segment = u64::from(self.params.segment_size());
        let start = u64::from(index) * segment;
        // Less than the segment size, so it fits in u32.
        Some((self.file_size - start).min(segment) as u32)
    }

    /// The plaintext bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MANIFEST_MAGIC);
        layout::write(&self.header(), &mut out);
        // Checked by `new`/`from_bytes` to fit (at most ~2M stripes).
        layout::write(&StripeCount(self.stripes.len() as u32), &mut out);
        for id in &self.stripes {
            out.extend_from_slice(id.as_bytes());
        }
        // Both checked to fit their length fields (255 and 127 bytes at most).
        let name = self.meta.name().unwrap_or("");
        layout::write(&NameLen(name.len() as u16), &mut out);
        out.extend_from_slice(name.as_bytes());
        let media = self.meta.media_type().unwrap_or("");
        layout::write(&MediaLen(media.len() as u8), &mut out);
        out.extend_from_slice(media.as_bytes());
        out
    }

    fn header(&self) -> Header {
        Header {
            file_size: self.file_size,
            segment_size: self.params.segment_size(),
            k: self.params.k(),
            n: self.params.n(),
            reserved: [0, 0],
        }
    }

    /// Length of [`Manifest::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        MANIFEST_HEADER_LEN + self.stripes.len() * ContentId::LEN + self.meta.encoded_len()
    }

    /// Parses and checks plaintext manifest bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let (magic, rest) = layout::read(bytes, "magic").map_err(layout_error)?;
        check_magic(magic)?;
        let (header, rest) = layout::read::<Header>(rest, "header").map_err(layout_error)?;
        if header.reserved != [0, 0] {
            return Err(ManifestError::Reserved);
        }
        let (k, n) = (u32::from(header.k), u32::from(header.n));
        let params = Params::new(k, n, header.segment_size).map_err(ManifestError::Params)?;
        let (StripeCount(count), rest) =
            layout::read(rest, "stripe count").map_err(layout_error)?;
        let expected = stripe_count(header.file_size, header.segment_size);
        if u64::from(count) != expected {
            return Err(ManifestError::StripeCount {
                expected,
                got: count,
            });
        }
        let (stripes, rest) = read_stripes(rest, count)?;
        let (name, media) = read_name_and_media(rest)?;
        let meta = meta_from(name, media)?;
        check_fits(expected, &meta)?;
        Ok(Self {
            file_size: header.file_size,
            params,
            stripes,
            meta,
        })
    }
}

fn check_magic(magic: [u8; 4]) -> Result<(), ManifestError> {
    let [a, b, c, version] = magic;
    if magic == *MANIFEST_MAGIC {
        Ok(())
    } else if [a, b, c] == MANIFEST_MAGIC[..3] {
        Err(ManifestError::UnknownVersion(char::from(version)))
    } else {
        Err(ManifestError::NotAManifest)
    }
}

/// Reads `count` stripe ids; returns them and what follows.
fn read_stripes(bytes: &[u8], count: u32) -> Result<(Vec<ContentId>, &[u8]), ManifestError> {
    // `split` bounds the size by the bytes actually present, before
    // anything is allocated for the ids.
    let len = (count as usize).saturating_mul(ContentId::LEN);
    let (ids, rest) = layout::split(bytes, len, "stripe ids").map_err(layout_error)?;
    let (ids, _) = ids.as_chunks::<{ ContentId::LEN }>();
    let stripes = ids.iter().copied().map(ContentId::from_bytes).collect();
    Ok((stripes, rest))
}

/// Reads the name and media type, which must end the manifest.
fn read_name_and_media(bytes: &[u8]) -> Result<(&[u8], &[u8]), ManifestError> {
    let (NameLen(name_len), rest) = layout::read(bytes, "name length").map_err(layout_error)?;
    let (name, rest) = layout::split(rest, usize::from(name_len), "name").map_err(layout_error)?;
    let (MediaLen(media_len), rest) =
        layout::read(rest, "media type length").map_err(layout_error)?;
    let (media, rest) =
        layout::split(rest, usize::from(media_len), "media type").map_err(layout_error)?;
    if !rest.is_empty() {
        return Err(ManifestError::TrailingBytes(rest.len()));
    }
    Ok((name, media))
}

/// Checks a stored name and media type (empty: none).
fn meta_from(name: &[u8], media: &[u8]) -> Result<FileMeta, ManifestError> {
    let mut meta = FileMeta::none();
    if !name.is_empty() {
        let name =
            std::str::from_utf8(name).map_err(|_| ManifestError::Name(NameError::NotUtf8))?;
        meta = meta.with_name(name)?;
    }
    if !media.is_empty() {
        let media =
            std::str::from_utf8(media).map_err(|_| ManifestError::MediaType(NameError::NotUtf8))?;
        meta = meta.with_media_type(media)?;
    }
    Ok(meta)
}

/// The manifest's error for bytes that do not read as its layout.
fn layout_error(error: LayoutError) -> ManifestError {
    match error {
        LayoutError::Trailing { extra, .. } => ManifestError::TrailingBytes(extra),
        // A manifest's layout holds only integers and byte arrays, which any
        // bytes are: the only way a part fails to read is to be cut short.
        LayoutError::Short { what } | LayoutError::Malformed { what, .. } => {
            ManifestError::Truncated(what)
        }
    }
}

/// The most data stripes a manifest with this metadata can list.
pub fn max_stripes(meta: &FileMeta) -> u64 {
    let room = MAX_ENCRYPTED_MANIFEST - TAG_LEN - MANIFEST_HEADER_LEN - meta.encoded_len();
    (room / ContentId::LEN) as u64
}

fn check_fits(stripes: u64, meta: &FileMeta) -> Result<(), ManifestError> {
    let max_stripes = max_stripes(meta);
    if stripes > max_stripes {
        return Err(ManifestError::TooLarge {
            stripes,
            max_stripes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use kith_base::layout::to_hex as hex;

    /// The bytes of one manifest with a name and a media type, pinned: a
    /// manifest's hash is in every capability, so these bytes must never
    /// change.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let meta = FileMeta::none()
            .with_name("a.jpg")
            .unwrap()
            .with_media_type("image/jpeg")
            .unwrap();
        let stripes = vec![
            ContentId::from_bytes([0xaa; 32]),
            ContentId::from_bytes([0xbb; 32]),
        ];
        let params = Params::new(3, 5, 4096).unwrap();
        let manifest = Manifest::new(5000, params, stripes, meta).unwrap();
        let expected = concat!(
            "4b4d4631",                                                         // "KMF1"
            "8813000000000000",                                                 // file size, u64 LE
            "00100000", // segment size, u32 LE
            "03",       // k
            "05",       // n
            "0000",     // reserved
            "02000000", // stripe count, u32 LE
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // stripe 0
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", // stripe 1
            "0500",     // name length, u16 LE
            "612e6a7067", // "a.jpg"
            "0a",       // media type length, u8
            "696d6167652f6a706567", // "image/jpeg"
        );
        let bytes = manifest.to_bytes();
        assert_eq!(hex(&bytes), expected);
        assert_eq!(bytes.len(), manifest.encoded_len());
        assert_eq!(Manifest::from_bytes(&bytes), Ok(manifest));
    }

    fn sample() -> Manifest {
        let params = Params::new(3, 5, 4096).unwrap();
        let meta = FileMeta::none()
            .with_name("photo.jpg")
            .unwrap()
            .with_media_type("image/jpeg")
            .unwrap();
        Manifest::new(
            5000,
            params,
            vec![ContentId::of(b"0"), ContentId::of(b"1")],
            meta,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_layout() {
        let manifest = sample();
        let bytes = manifest.to_bytes();
        assert_eq!(bytes.len(), manifest.encoded_len());
        assert_eq!(bytes.len(), 24 + 64 + 2 + 9 + 1 + 10);
        assert_eq!(&bytes[..4], b"KMF1");
        assert_eq!(&bytes[4..12], &5000u64.to_le_bytes());
        assert_eq!(&bytes[12..16], &4096u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &[3, 5, 0, 0, 2, 0, 0, 0]);
        assert_eq!(Manifest::from_bytes(&bytes), Ok(manifest.clone()));
        assert_eq!(manifest.segment_len(0), Some(4096));
        assert_eq!(manifest.segment_len(1), Some(904));
        assert_eq!(manifest.segment_len(2), None);
    }

    #[test]
    fn parser_rejects_each_violation() {
        let good = sample().to_bytes();
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            Manifest::from_bytes(&bytes)
        };
        assert_eq!(with(0, b'X'), Err(ManifestError::NotAManifest));
        assert_eq!(with(3, b'9'), Err(ManifestError::UnknownVersion('9')));
        assert_eq!(with(18, 1), Err(ManifestError::Reserved));
        assert!(matches!(with(16, 0), Err(ManifestError::Params(_))));
        assert!(matches!(with(13, 0), Err(ManifestError::Params(_))));
        assert!(matches!(
            with(20, 3),
            Err(ManifestError::StripeCount {
                expected: 2,
                got: 3
            })
        ));
        assert!(matches!(
            with(5, 0x30),
            Err(ManifestError::StripeCount { .. })
        ));
        // The name becomes "photo/jpg".
        assert_eq!(
            with(24 + 64 + 2 + 5, b'/'),
            Err(ManifestError::Name(NameError::Separator))
        );
        assert_eq!(
            with(24 + 64 + 2 + 5, 0),
            Err(ManifestError::Name(NameError::Control))
        );
        assert_eq!(
            with(24 + 64 + 2 + 5, 0xff),
            Err(ManifestError::Name(NameError::NotUtf8))
        );
        for end in 0..good.len() {
            assert!(Manifest::from_bytes(&good[..end]).is_err(), "cut at {end}");
        }
        let longer = [good.as_slice(), b"x"].concat();
        assert_eq!(
            Manifest::from_bytes(&longer),
            Err(ManifestError::TrailingBytes(1))
        );
    }

    #[test]
    fn names_are_file_names_only() {
        for bad in ["", ".", "..", "a/b", "a\\b", "/etc", "a\0b", "line\nbreak"] {
            assert!(FileMeta::none().with_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "...", ".hidden", "résumé.pdf", "a..b"] {
            assert!(FileMeta::none().with_name(good).is_ok(), "{good:?} refused");
        }
        assert!(FileMeta::none().with_name(&"x".repeat(255)).is_ok());
        assert_eq!(
            FileMeta::none().with_name(&"x".repeat(256)),
            Err(ManifestError::Name(NameError::TooLong {
                len: 256,
                max: 255
            }))
        );
        let meta = FileMeta::none()
            .with_name_from_path(Path::new("some/dir/photo.jpg"))
            .unwrap();
        assert_eq!(meta.name(), Some("photo.jpg"));
        assert!(
            FileMeta::none()
                .with_name_from_path(Path::new("a/.."))
                .is_err()
        );
        assert!(FileMeta::none().with_media_type(&"x".repeat(128)).is_err());
        assert!(
            FileMeta::none()
                .with_media_type("text/plain\r\nX: y")
                .is_err()
        );
    }

    #[test]
    fn size_limit() {
        let meta = FileMeta::none();
        let max = max_stripes(&meta);
        assert_eq!(max, ((64 << 20) - 16 - 24 - 3) / 32);
        let params = Params::new(3, 5, 4096).unwrap();
        let too_big = (max + 1) * 4096;
        assert!(matches!(
            Manifest::new(too_big, params, Vec::new(), meta),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
