//! Read capabilities: the `kith:…` text that lets its holder fetch one file
//! or one folder.
//!
//! A capability is everything needed to find, verify and decrypt a file: the
//! id of the manifest's stripe (which names, by hash, every other byte of the
//! file) and the file key. Its text form is
//!
//! ```text
//! kith:<base58( kind:u8 | manifest id:32 | file key:32 | checksum:4 )>
//! ```
//!
//! The first byte says what the capability reads, in format version 1 of
//! each: `1` a file, `2` a folder (whose stored bytes are a folder listing,
//! `kith_codec::folder`). A byte this build does not know reads as a newer
//! format. Text after the capability, `kith:…/img/cat.jpg`, is a path inside
//! a folder ([`CapabilityPath`]).
//!
//! 69 bytes, about 95 characters: short enough for a chat message or a QR
//! code. Base58 (Bitcoin's alphabet) leaves out `0`, `O`, `I` and `l`, which
//! people confuse, and has no punctuation that chat programs or shells break
//! lines at. The checksum is the first four bytes of a BLAKE3 key derivation
//! over the rest, so a mistyped, truncated or extended capability is rejected
//! at once, before anything is fetched, with a message saying what is wrong.
//! `docs/storage-format.md` pins the layout byte by byte.

use std::fmt;
use std::str::FromStr;

use crate::{ContentId, FileKey};

/// The text every capability starts with.
pub const PREFIX: &str = "kith:";

/// The kind byte of a file capability (format version 1).
pub const VERSION: u8 = 1;
/// The kind byte of a folder capability (format version 1).
pub const FOLDER_VERSION: u8 = 2;

const CHECKSUM_LEN: usize = 4;
const PAYLOAD_LEN: usize = 1 + ContentId::LEN + FileKey::LEN;
const ENCODED_LEN: usize = PAYLOAD_LEN + CHECKSUM_LEN;
const CHECKSUM_CONTEXT: &str = "kith 2026 capability checksum v1";
const BASE58_ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A read capability: the id of a file's manifest stripe and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability {
    kind: CapabilityKind,
    manifest: ContentId,
    key: FileKey,
}

/// What a capability reads: the stored bytes themselves, or a folder
/// listing of further capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityKind {
    /// One file.
    File,
    /// A folder: its stored bytes are a listing of named entries.
    Folder,
}

impl CapabilityKind {
    /// The word for it in messages and listings: "file" or "folder".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Folder => "folder",
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::File => VERSION,
            Self::Folder => FOLDER_VERSION,
        }
    }
}

/// Why a text is not a valid capability. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// The text does not start with `kith:`.
    #[error("a capability starts with \"kith:\"; this text does not")]
    MissingPrefix,
    /// A character outside the base58 alphabet.
    #[error(
        "character {character:?} at position {position} cannot be in a capability \
         (they use base58: no 0, O, I, l or punctuation); it was probably mistyped"
    )]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its position in the whole text, counting from 0.
        position: usize,
    },
    /// The text decodes to the wrong number of bytes.
    #[error(
        "this capability is {what}: it was probably cut off or joined with other text \
         when copied; copy the whole kith:… text again"
    )]
    Length {
        /// "too short" or "too long".
        what: &'static str,
    },
    /// A version this build does not know.
    #[error(
        "this capability has format version {0}, but this kith reads version {VERSION} only; \
         a newer kith may read it"
    )]
    UnknownVersion(u8),
    /// The path after the capability is not a path inside a folder.
    #[error(
        "the path after the capability is not valid: {0} (a path inside a folder is names \
         joined by '/', without '.', '..' or '\\')"
    )]
    BadPath(&'static str),
    /// The checksum does not match: a typo that kept the length.
    #[error(
        "this capability's checksum does not match: a character was changed when it was \
         copied or typed; copy the whole kith:… text again"
    )]
    Checksum,
}

impl Capability {
    /// Bytes in the binary form ([`Capability::to_bytes`]).
    pub const LEN: usize = ENCODED_LEN;

    /// A capability for the file whose manifest stripe is `manifest`.
    pub fn new(manifest: ContentId, key: FileKey) -> Self {
        Self {
            kind: CapabilityKind::File,
            manifest,
            key,
        }
    }

    /// The same stored bytes, read as `kind` (a folder's listing is stored
    /// as a file; its capability says to read it as a folder).
    pub fn with_kind(self, kind: CapabilityKind) -> Self {
        Self { kind, ..self }
    }

    /// What this capability reads.
    pub fn kind(&self) -> CapabilityKind {
        self.kind
    }

    /// Whether it reads a folder.
    pub fn is_folder(&self) -> bool {
        self.kind == CapabilityKind::Folder
    }

    /// The id of the stripe that holds the encrypted manifest.
    pub fn manifest(&self) -> ContentId {
        self.manifest
    }

    /// The file key.
    pub fn key(&self) -> &FileKey {
        &self.key
    }

    /// The binary form: payload then checksum.
    pub fn to_bytes(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = self.kind.byte();
        out[1..1 + ContentId::LEN].copy_from_slice(self.manifest.as_bytes());
        out[1 + ContentId::LEN..PAYLOAD_LEN].copy_from_slice(self.key.as_bytes());
        let sum = checksum(&out[..PAYLOAD_LEN]);
        out[PAYLOAD_LEN..].copy_from_slice(&sum);
        out
    }

    /// Reads the binary form, checking version and checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CapabilityError> {
        match bytes.len() {
            n if n < ENCODED_LEN => return Err(CapabilityError::Length { what: "too short" }),
            n if n > ENCODED_LEN => return Err(CapabilityError::Length { what: "too long" }),
            _ => {}
        }
        let (payload, sum) = bytes.split_at(PAYLOAD_LEN);
        // Check the checksum before the version: a typo in the first character
        // should read as a typo, not as a capability from the future.
        if checksum(payload) != sum {
            return Err(CapabilityError::Checksum);
        }
        let kind = match payload[0] {
            VERSION => CapabilityKind::File,
            FOLDER_VERSION => CapabilityKind::Folder,
            other => return Err(CapabilityError::UnknownVersion(other)),
        };
        let mut manifest = [0u8; ContentId::LEN];
        manifest.copy_from_slice(&payload[1..1 + ContentId::LEN]);
        let mut key = [0u8; FileKey::LEN];
        key.copy_from_slice(&payload[1 + ContentId::LEN..]);
        Ok(Self::new(ContentId::from_bytes(manifest), FileKey::from_bytes(key)).with_kind(kind))
    }
}

fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let full = blake3::derive_key(CHECKSUM_CONTEXT, payload);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&full[..CHECKSUM_LEN]);
    out
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&bs58::encode(self.to_bytes()).into_string())
    }
}

/// Never prints the key: logs must not leak read access.
impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Capability({}, manifest {}, key <secret>)",
            self.kind.as_str(),
            self.manifest
        )
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;

    /// Reads the text form. Surrounding whitespace (a pasted newline) is
    /// ignored; anything else that is not exactly a capability is an error.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let leading = text.len() - text.trim_start().len();
        let text = text.trim();
        let body = text
            .strip_prefix(PREFIX)
            .ok_or(CapabilityError::MissingPrefix)?;
        if let Some((index, character)) = body
            .char_indices()
            .find(|(_, c)| !BASE58_ALPHABET.contains(*c))
        {
            return Err(CapabilityError::BadCharacter {
                character,
                position: leading + PREFIX.len() + index,
            });
        }
        // Base58 of 69 bytes is at most 95 characters; refuse long input before
        // decoding so a pasted novel costs nothing.
        if body.len() > 2 * ENCODED_LEN {
            return Err(CapabilityError::Length { what: "too long" });
        }
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| CapabilityError::Length { what: "malformed" })?;
        Self::from_bytes(&bytes)
    }
}

/// Longest path inside a folder, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// A capability and a path inside the folder it reads:
/// `kith:…/img/cat.jpg`. The path is empty for the capability alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityPath {
    /// The capability before the first `/`.
    pub capability: Capability,
    /// The names after it, in order; never empty names, `.` or `..`.
    pub path: Vec<String>,
}

impl FromStr for CapabilityPath {
    type Err = CapabilityError;

    /// Splits at the first `/` (base58 has none), reads the capability,
    /// and checks the path: names joined by `/` (empty names from a
    /// doubled or trailing `/` are skipped), none of them `.` or `..`, no
    /// `\`, no control characters.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (capability, path) = text.split_once('/').unwrap_or((text, ""));
        let capability = capability.parse::<Capability>()?;
        Ok(Self {
            capability,
            path: split_path(path)?,
        })
    }
}

/// The names of a path inside a folder (see [`CapabilityPath`]).
pub fn split_path(path: &str) -> Result<Vec<String>, CapabilityError> {
    if path.len() > MAX_PATH_LEN {
        return Err(CapabilityError::BadPath("it is longer than 4096 bytes"));
    }
    let mut names = Vec::new();
    for name in path.split('/').filter(|name| !name.is_empty()) {
        if name == "." || name == ".." {
            return Err(CapabilityError::BadPath("it contains '.' or '..'"));
        }
        if name.contains('\\') {
            return Err(CapabilityError::BadPath("it contains a backslash"));
        }
        if name.chars().any(char::is_control) {
            return Err(CapabilityError::BadPath("it contains a control character"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Capability {
        Capability::new(ContentId::of(b"manifest"), FileKey::from_bytes([7; 32]))
    }

    #[test]
    fn known_answer_pins_the_format() {
        // If this changes, every capability ever shared stops working: bump
        // VERSION instead and keep reading version 1.
        let text = sample().to_string();
        assert_eq!(
            text,
            "kith:cCwYVxVk87rtf2y858c4M1S4JYoKG8mhFWE1mgCu2v5FLJcgxZUYAZ39JSPCWJFKH3tkMRTXWudtJ59gfS6iuqqbs3X4L"
        );
        assert!(text.len() <= 100, "{} characters", text.len());
    }

    #[test]
    fn a_folder_capability_differs_only_in_its_first_byte() {
        let file = sample();
        let folder = sample().with_kind(CapabilityKind::Folder);
        assert_ne!(file.to_string(), folder.to_string());
        let (file_bytes, folder_bytes) = (file.to_bytes(), folder.to_bytes());
        assert_eq!(folder_bytes[0], FOLDER_VERSION);
        assert_eq!(file_bytes[1..65], folder_bytes[1..65]);
        let read: Capability = folder.to_string().parse().unwrap();
        assert!(read.is_folder());
        assert_eq!(read, folder);
    }

    #[test]
    fn a_path_after_a_capability_is_split_and_checked() {
        let folder = sample().with_kind(CapabilityKind::Folder);
        let read: CapabilityPath = format!("{folder}/img//cat.jpg/").parse().unwrap();
        assert_eq!(read.capability, folder);
        assert_eq!(read.path, ["img", "cat.jpg"]);
        let alone: CapabilityPath = folder.to_string().parse().unwrap();
        assert!(alone.path.is_empty());
        for bad in ["a/../b", "./a", "a\\..\\b", "a/\u{0}"] {
            let error = format!("{folder}/{bad}")
                .parse::<CapabilityPath>()
                .unwrap_err();
            assert!(
                matches!(error, CapabilityError::BadPath(_)),
                "{bad}: {error}"
            );
        }
        let long = "a/".repeat(MAX_PATH_LEN);
        assert!(
            format!("{folder}/{long}")
                .parse::<CapabilityPath>()
                .is_err()
        );
        // The capability itself is still checked.
        assert!("kith:abc/x".parse::<CapabilityPath>().is_err());
    }

    #[test]
    fn round_trip_with_whitespace() {
        let cap = sample();
        let text = format!("  {cap}\n");
        assert_eq!(text.parse::<Capability>(), Ok(cap));
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains("<secret>"));
        assert!(!shown.contains("0707"));
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let text = sample().to_string();
        let chars: Vec<char> = text.chars().collect();
        for position in 0..chars.len() {
            for replacement in BASE58_ALPHABET.chars().chain(['0', 'O', 'l', '-', ' ']) {
                if replacement == chars[position] {
                    continue;
                }
                let mut changed = chars.clone();
                changed[position] = replacement;
                let changed: String = changed.into_iter().collect();
                let result = changed.parse::<Capability>();
                assert!(
                    result.is_err(),
                    "changing position {position} to {replacement:?} was accepted"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let text = sample().to_string();
        for end in 0..text.len() {
            let error = text[..end].parse::<Capability>().unwrap_err();
            let message = error.to_string();
            assert!(!message.is_empty());
        }
        for extra in BASE58_ALPHABET.chars() {
            assert!(format!("{text}{extra}").parse::<Capability>().is_err());
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            "http://x".parse::<Capability>(),
            Err(CapabilityError::MissingPrefix)
        );
        let text = sample().to_string();
        let with_zero = format!("{}0{}", &text[..10], &text[11..]);
        assert_eq!(
            with_zero.parse::<Capability>(),
            Err(CapabilityError::BadCharacter {
                character: '0',
                position: 10
            })
        );
        assert_eq!(
            text[..40].parse::<Capability>(),
            Err(CapabilityError::Length { what: "too short" })
        );
        // A well-formed capability of an unknown version.
        let mut bytes = sample().to_bytes();
        bytes[0] = 9;
        let sum = checksum(&bytes[..PAYLOAD_LEN]);
        bytes[PAYLOAD_LEN..].copy_from_slice(&sum);
        let future = format!("kith:{}", bs58::encode(bytes).into_string());
        assert_eq!(
            future.parse::<Capability>(),
            Err(CapabilityError::UnknownVersion(9))
        );
    }
}
