//! Feeds: each identity's signed, hash-linked, append-only log of posts.
//!
//! An **entry** is a head, signed by its author, and a body that the head
//! names by hash. The signature covers the hash, not the body itself, so a
//! follower can drop a deleted post's body and still hand on a head that
//! anyone can verify, and the chain stays whole.
//!
//! ```text
//! head      = version (1) ‖ author (32, Ed25519) ‖ sequence u64 LE (from 1)
//!             ‖ previous (32: the id of entry sequence − 1; zeros for 1)
//!             ‖ time_ms u64 LE ‖ body_len u32 LE ‖ body_hash (32, BLAKE3)
//!             ‖ signature (64)
//! signature = Ed25519(author, "kith feed v1" ‖ the 117 bytes before it)
//! id        = BLAKE3(head)                      (what replies and deletions name)
//! entry     = head (181) ‖ body (body_len bytes, or nothing once dropped)
//! ```
//!
//! A **body** is one of:
//!
//! ```text
//! post     = 1 ‖ text_len u16 LE ‖ text (UTF-8, ≤ 4 KiB) ‖ has_reply u8 ‖ [reply_to (32)]
//!            ‖ count u8 (≤ 8) ‖ count × (name_len u8 ‖ name ‖ capability (69))
//! deletion = 2 ‖ the id of an earlier entry of the same author (32)
//! ```
//!
//! Anyone verifies a feed from its first entry: each head's signature under
//! the author's key, each `previous` equal to the id of the entry before,
//! each body (when present) hashing to its head's `body_hash`. Two valid
//! heads of one author with the same sequence are a **fork**: proof that
//! the author signed two histories.
//!
//! The fixed part of the head is the serde struct `Head`, written by
//! [`crate::layout`]; a test vector pins its bytes.

use std::fmt;
use std::str::FromStr;

use libp2p_identity::ed25519;
use serde::{Deserialize, Serialize};

use crate::{Capability, Identity, layout};

/// Bytes of an entry's head (signature included).
pub const HEAD_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;
/// The longest text of a post, in bytes.
pub const MAX_TEXT: usize = 4096;
/// The most attachments of a post.
pub const MAX_ATTACHMENTS: usize = 8;
/// The longest attachment name, in bytes.
pub const MAX_ATTACHMENT_NAME: usize = 255;
/// The largest body: a post with the longest text, a reply, and the most
/// attachments with the longest names.
pub const MAX_BODY: usize =
    1 + 2 + MAX_TEXT + 1 + 32 + 1 + MAX_ATTACHMENTS * (1 + MAX_ATTACHMENT_NAME + Capability::LEN);
/// The largest entry.
pub const MAX_ENTRY: usize = HEAD_LEN + MAX_BODY;

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"kith feed v1";
const SIGNED_LEN: usize = 1 + 32 + 8 + 32 + 8 + 4 + 32;
const SIGNATURE_LEN: usize = 64;
const POST: u8 = 1;
const DELETION: u8 = 2;
/// Domain of the key under which a feed's holders announce themselves.
const PROVIDER_CONTEXT: &str = "kith feed holders v1";

/// The id of an entry: the BLAKE3 hash of its head.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntryId(pub [u8; 32]);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({})", &self.to_string()[..12])
    }
}

impl FromStr for EntryId {
    type Err = FeedError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.as_bytes())
            .map_err(|_| FeedError::BadId)?;
        Ok(Self(bytes.try_into().map_err(|_| FeedError::BadId)?))
    }
}

impl EntryId {
    /// The id of an entry's bytes as [`Entry::to_bytes`] wrote them, without
    /// checking its signature: for entries verified when they were stored.
    /// `None` when the bytes are shorter than a head.
    pub fn of_stored(bytes: &[u8]) -> Option<Self> {
        let head = bytes.get(..HEAD_LEN)?;
        Some(Self(*blake3::hash(head).as_bytes()))
    }
}

/// The key a feed's holders announce themselves under in the DHT.
pub fn holders_key(author: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(PROVIDER_CONTEXT, author)
}

/// Why bytes are not a valid entry or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// Too short, an unknown version, or a length that does not add up.
    #[error("not a feed entry: {0}")]
    Malformed(String),
    /// The signature does not verify under the author's key.
    #[error("the entry's signature does not verify under its author's key: it is forged")]
    BadSignature,
    /// The body does not hash to what the head says.
    #[error("the entry's body does not match its signed hash")]
    BodyMismatch,
    /// A body over a limit (text, attachments, names).
    #[error("the post is too large: {0}")]
    TooLarge(String),
    /// An entry id that is not 64 hex digits.
    #[error("a post id is 64 hex digits, as `kith post` prints it")]
    BadId,
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A post.
    Post(Post),
    /// The author withdraws an earlier entry: followers drop its body.
    Deletion(EntryId),
}

/// A post's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Post {
    /// The text (UTF-8, at most [`MAX_TEXT`] bytes).
    pub text: String,
    /// The entry it answers, if any.
    pub reply_to: Option<EntryId>,
    /// Attached files: (name, capability).
    pub attachments: Vec<(String, Capability)>,
}

impl Body {
    /// The body's bytes; an error for a body over the limits.
    pub fn encode(&self) -> Result<Vec<u8>, FeedError> {
        let mut out = Vec::new();
        match self {
            Self::Deletion(id) => {
                out.push(DELETION);
                out.extend_from_slice(&id.0);
            }
            Self::Post(post) => {
                if post.text.len() > MAX_TEXT {
                    return Err(FeedError::TooLarge(format!(
                        "{} bytes of text; at most {MAX_TEXT}",
                        post.text.len()
                    )));
                }
                if post.attachments.len() > MAX_ATTACHMENTS {
                    return Err(FeedError::TooLarge(format!(
                        "{} attachments; at most {MAX_ATTACHMENTS}",
                        post.attachments.len()
                    )));
                }
                out.push(POST);
                out.extend_from_slice(&(post.text.len() as u16).to_le_bytes());
                out.extend_from_slice(post.text.as_bytes());
                match &post.reply_to {
                    Some(id) => {
                        out.push(1);
                        out.extend_from_slice(&id.0);
                    }
                    None => out.push(0),
                }
                out.push(post.attachments.len() as u8);
                for (name, capability) in &post.attachments {
                    if name.is_empty() || name.len() > MAX_ATTACHMENT_NAME {
                        return Err(FeedError::TooLarge(format!(
                            "an attachment name of {} bytes; 1 to {MAX_ATTACHMENT_NAME}",
                            name.len()
                        )));
                    }
                    out.push(name.len() as u8);
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(&capability.to_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Reads a body. Written by hand like the encoder: a few
    /// length-prefixed fields, each bounded before it is read.
    pub fn decode(bytes: &[u8]) -> Result<Self, FeedError> {
        let malformed = |what: &str| FeedError::Malformed(format!("its body: {what}"));
        let mut reader = Reader(bytes);
        match reader.byte().ok_or_else(|| malformed("empty"))? {
            DELETION => {
                let id = reader
                    .array::<32>()
                    .ok_or_else(|| malformed("a short deletion"))?;
                reader
                    .end()
                    .ok_or_else(|| malformed("bytes after a deletion"))?;
                Ok(Self::Deletion(EntryId(id)))
            }
            POST => {
                let len = u16::from_le_bytes(reader.array().ok_or_else(|| malformed("short"))?);
                if usize::from(len) > MAX_TEXT {
                    return Err(malformed("text over the limit"));
                }
                let text = reader
                    .take(len.into())
                    .ok_or_else(|| malformed("short text"))?;
                let text = std::str::from_utf8(text)
                    .map_err(|_| malformed("text that is not UTF-8"))?
                    .to_owned();
                let reply_to = match reader.byte() {
                    Some(0) => None,
                    Some(1) => Some(EntryId(
                        reader.array().ok_or_else(|| malformed("a short reply"))?,
                    )),
                    _ => return Err(malformed("a bad reply flag")),
                };
                let count = reader
                    .byte()
                    .ok_or_else(|| malformed("no attachment count"))?;
                if usize::from(count) > MAX_ATTACHMENTS {
                    return Err(malformed("too many attachments"));
                }
                let mut attachments = Vec::with_capacity(count.into());
                for _ in 0..count {
                    let len = reader.byte().ok_or_else(|| malformed("short attachment"))?;
                    let name = reader
                        .take(len.into())
                        .ok_or_else(|| malformed("short name"))?;
                    let name = std::str::from_utf8(name)
                        .ok()
                        .filter(|name| !name.is_empty())
                        .ok_or_else(|| malformed("an attachment name that is not UTF-8"))?;
                    let cap = reader
                        .take(Capability::LEN)
                        .ok_or_else(|| malformed("a short capability"))?;
                    let cap = Capability::from_bytes(cap)
                        .map_err(|_| malformed("an attachment that is not a capability"))?;
                    attachments.push((name.to_owned(), cap));
                }
                reader
                    .end()
                    .ok_or_else(|| malformed("bytes after a post"))?;
                Ok(Self::Post(Post {
                    text,
                    reply_to,
                    attachments,
                }))
            }
            other => Err(malformed(&format!("unknown kind {other}"))),
        }
    }
}

/// Reads a body front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(taken)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// The signed fields of a head, in this order; the signature follows.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    version: u8,
    author: [u8; 32],
    #[serde(with = "crate::layout::le")]
    sequence: u64,
    previous: [u8; 32],
    #[serde(with = "crate::layout::le")]
    time_ms: u64,
    #[serde(with = "crate::layout::le")]
    body_len: u32,
    body_hash: [u8; 32],
}

/// A verified entry: its head always, its body unless it was dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    head: Head,
    head_bytes: [u8; HEAD_LEN],
    body: Option<Vec<u8>>,
    id: EntryId,
}

impl Entry {
    /// Signs entry `sequence` of `author`'s feed, after `previous` (the id
    /// of entry `sequence − 1`; `None` for the first).
    pub fn sign(
        author: &Identity,
        sequence: u64,
        previous: Option<EntryId>,
        time_ms: u64,
        body: &Body,
    ) -> Result<Self, FeedError> {
        let body = body.encode()?;
        let head = Head {
            version: VERSION,
            author: author.public_key(),
            sequence,
            previous: previous.unwrap_or_default().0,
            time_ms,
            body_len: body.len() as u32,
            body_hash: *blake3::hash(&body).as_bytes(),
        };
        let message = signed_message(&head);
        let mut head_bytes = [0u8; HEAD_LEN];
        head_bytes[..SIGNED_LEN].copy_from_slice(&message[CONTEXT.len()..]);
        head_bytes[SIGNED_LEN..].copy_from_slice(&author.ed25519().sign(&message));
        Ok(Self {
            id: EntryId(*blake3::hash(&head_bytes).as_bytes()),
            head,
            head_bytes,
            body: Some(body),
        })
    }

    /// Reads and verifies an entry: a head, then its whole body or none.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FeedError> {
        if bytes.len() > MAX_ENTRY {
            return Err(FeedError::TooLarge(format!(
                "an entry of {} bytes; at most {MAX_ENTRY}",
                bytes.len()
            )));
        }
        let (head_bytes, body) = bytes
            .split_at_checked(HEAD_LEN)
            .ok_or_else(|| FeedError::Malformed(format!("{} bytes", bytes.len())))?;
        let head_bytes: [u8; HEAD_LEN] = head_bytes
            .try_into()
            .map_err(|_| FeedError::Malformed("a short head".into()))?;
        let (head, signature) = layout::read::<Head>(&head_bytes, "feed entry head")
            .map_err(|error| FeedError::Malformed(error.to_string()))?;
        if head.version != VERSION {
            return Err(FeedError::Malformed(format!("version {}", head.version)));
        }
        if head.sequence == 0 {
            return Err(FeedError::Malformed("sequence 0".into()));
        }
        if head.body_len as usize > MAX_BODY {
            return Err(FeedError::TooLarge(format!(
                "a body of {} bytes; at most {MAX_BODY}",
                head.body_len
            )));
        }
        let author = ed25519::PublicKey::try_from_bytes(&head.author)
            .map_err(|_| FeedError::BadSignature)?;
        if !author.verify(&signed_message(&head), signature) {
            return Err(FeedError::BadSignature);
        }
        let body = match body.len() {
            0 if head.body_len != 0 => None,
            len if len == head.body_len as usize => {
                if blake3::hash(body).as_bytes() != &head.body_hash {
                    return Err(FeedError::BodyMismatch);
                }
                Body::decode(body)?;
                Some(body.to_vec())
            }
            len => {
                return Err(FeedError::Malformed(format!(
                    "a body of {len} bytes where the head says {}",
                    head.body_len
                )));
            }
        };
        Ok(Self {
            id: EntryId(*blake3::hash(&head_bytes).as_bytes()),
            head,
            head_bytes,
            body,
        })
    }

    /// The entry as it travels and is stored: head, then body if kept.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_LEN + self.body.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(&self.head_bytes);
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
        out
    }

    /// The same entry without its body (after a deletion).
    pub fn without_body(&self) -> Self {
        Self {
            body: None,
            ..self.clone()
        }
    }

    /// Its id.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The author's Ed25519 key.
    pub fn author(&self) -> [u8; 32] {
        self.head.author
    }

    /// Its sequence number (1 for the first entry).
    pub fn sequence(&self) -> u64 {
        self.head.sequence
    }

    /// The id of the entry before it (`None` for the first).
    pub fn previous(&self) -> Option<EntryId> {
        (self.head.sequence > 1).then_some(EntryId(self.head.previous))
    }

    /// Whether it links to `previous` as the entry before it: the first
    /// entry links to nothing.
    pub fn follows(&self, previous: Option<&Entry>) -> bool {
        match previous {
            None => self.head.sequence == 1 && self.head.previous == [0; 32],
            Some(previous) => {
                self.head.author == previous.head.author
                    && self.head.sequence == previous.head.sequence + 1
                    && self.head.previous == previous.id.0
            }
        }
    }

    /// When the author wrote it (Unix milliseconds, by its clock).
    pub fn time_ms(&self) -> u64 {
        self.head.time_ms
    }

    /// Its body, decoded; `None` once dropped.
    pub fn body(&self) -> Option<Body> {
        // Checked when the entry was read or signed.
        self.body
            .as_deref()
            .and_then(|bytes| Body::decode(bytes).ok())
    }

    /// Whether its body is kept.
    pub fn has_body(&self) -> bool {
        self.body.is_some() || self.head.body_len == 0
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("sequence", &self.head.sequence)
            .field("id", &self.id)
            .field("body", &self.body.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// What the signature covers: the context, then the head's fields.
fn signed_message(head: &Head) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + SIGNED_LEN);
    message.extend_from_slice(CONTEXT);
    layout::write(head, &mut message);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContentId, FileKey};

    fn post(text: &str) -> Body {
        Body::Post(Post {
            text: text.into(),
            ..Post::default()
        })
    }

    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let author = Identity::from_secret([1; 32]);
        let entry = Entry::sign(&author, 1, None, 1_700_000_000_000, &post("hi")).unwrap();
        let bytes = entry.to_bytes();
        assert_eq!(bytes.len(), HEAD_LEN + 1 + 2 + 2 + 1 + 1);
        let expected = concat!(
            "01",                                                               // version
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // author
            "0100000000000000",                                                 // sequence
            "0000000000000000000000000000000000000000000000000000000000000000", // previous
            "0068e5cf8b010000",                                                 // time_ms
            "07000000",                                                         // body_len
            "8714ef82251406421773e9cd6c853b263e46d95e616d67371e7246452108b0b1", // body_hash
            "13cdb696b5728cad68b4392d67490b3ab173e5aa4d28c00cb146bd25ba584096", // signature …
            "f23f60d7f88679bdd871bb0cc62badc6edc2e2b80cfb3f50573c4d3633ac540a", // … (64 bytes)
            "01020068690000", // body: a post, 2 bytes of text "hi", no reply, no attachments
        );
        assert_eq!(layout::to_hex(&bytes), expected);
        assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
        // The id of the stored bytes, with or without the body.
        assert_eq!(EntryId::of_stored(&bytes), Some(entry.id()));
        assert_eq!(
            EntryId::of_stored(&entry.without_body().to_bytes()),
            Some(entry.id())
        );
        assert_eq!(EntryId::of_stored(&bytes[..HEAD_LEN - 1]), None);
    }

    #[test]
    fn a_chain_verifies_and_every_signed_byte_matters() {
        let author = Identity::generate();
        let first = Entry::sign(&author, 1, None, 10, &post("one")).unwrap();
        let second = Entry::sign(&author, 2, Some(first.id()), 20, &post("two")).unwrap();
        assert!(first.follows(None));
        assert!(second.follows(Some(&first)));
        assert!(!first.follows(Some(&second)));
        let bytes = second.to_bytes();
        for at in [
            0,
            1,
            33,
            41,
            73,
            81,
            85,
            117,
            150,
            HEAD_LEN,
            bytes.len() - 1,
        ] {
            let mut tampered = bytes.clone();
            tampered[at] ^= 1;
            assert!(Entry::from_bytes(&tampered).is_err(), "byte {at} flipped");
        }
        // Without its body the head still verifies and keeps its id.
        let bare = Entry::from_bytes(&bytes[..HEAD_LEN]).unwrap();
        assert_eq!(bare.id(), second.id());
        assert!(!bare.has_body());
        assert_eq!(bare.body(), None);
        assert_eq!(second.without_body().to_bytes(), bytes[..HEAD_LEN].to_vec());
        // Half a body is refused.
        assert!(matches!(
            Entry::from_bytes(&bytes[..HEAD_LEN + 2]),
            Err(FeedError::Malformed(_))
        ));
        // Another author's signature.
        let other = Entry::sign(&Identity::generate(), 2, Some(first.id()), 20, &post("two"))
            .unwrap()
            .to_bytes();
        let mut forged = bytes.clone();
        forged[SIGNED_LEN..HEAD_LEN].copy_from_slice(&other[SIGNED_LEN..HEAD_LEN]);
        assert_eq!(Entry::from_bytes(&forged), Err(FeedError::BadSignature));
    }

    #[test]
    fn bodies_round_trip_and_limits_hold() {
        let cap = Capability::new(ContentId::of(b"x"), FileKey::random());
        let full = Body::Post(Post {
            text: "é".repeat(MAX_TEXT / 2),
            reply_to: Some(EntryId([7; 32])),
            attachments: vec![("cat.jpg".into(), cap.clone()); MAX_ATTACHMENTS],
        });
        let bytes = full.encode().unwrap();
        assert_eq!(Body::decode(&bytes).unwrap(), full);
        let deletion = Body::Deletion(EntryId([9; 32]));
        assert_eq!(Body::decode(&deletion.encode().unwrap()).unwrap(), deletion);
        let long = Body::Post(Post {
            text: "x".repeat(MAX_TEXT + 1),
            ..Post::default()
        });
        assert!(matches!(long.encode(), Err(FeedError::TooLarge(_))));
        let many = Body::Post(Post {
            attachments: vec![("a".into(), cap); MAX_ATTACHMENTS + 1],
            ..Post::default()
        });
        assert!(matches!(many.encode(), Err(FeedError::TooLarge(_))));
        for bad in [
            &[][..],
            &[3],
            &[1, 5, 0, b'a'],
            &[2, 1, 2],
            &[1, 0, 0, 2, 0],
        ] {
            assert!(Body::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Entry::from_bytes(&vec![0; MAX_ENTRY + 1]).is_err());
    }

    #[test]
    fn ids_read_back_from_text() {
        let id = EntryId([0xab; 32]);
        assert_eq!(id.to_string().parse::<EntryId>().unwrap(), id);
        assert_eq!("xyz".parse::<EntryId>(), Err(FeedError::BadId));
        assert_eq!("abab".parse::<EntryId>(), Err(FeedError::BadId));
    }
}
