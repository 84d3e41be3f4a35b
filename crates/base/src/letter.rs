//! Letters between friends: the signed unit of a message or a file, and its
//! sealed form for offline mailboxes.
//!
//! Long because: one signed format's layout, signature, seal and name rules, and their tests.
//!
//! A [`Letter`] says who wrote it, to whom, when (the sender's clock) and
//! its place in the sender's sequence, and carries a [`Body`]: a text, the
//! header of a file that follows on the same stream, or the capability of a
//! file the sender stored on the network for a friend who was offline.
//!
//! On the wire a letter is signed by its author's Ed25519 identity:
//!
//! ```text
//! signed letter = letter bytes ‖ signature (64)
//! signature     = Ed25519("kith letter v1" ‖ letter bytes)
//! letter bytes  = version (1) ‖ from (u8 len ‖ peer id) ‖ to (u8 len ‖ peer id)
//!                 ‖ sent_at_ms u64 LE ‖ seq u64 LE ‖ kind (1) ‖ body
//! body, kind 1  = text: u32 LE len ‖ UTF-8
//! body, kind 2  = file: u16 LE len ‖ name ‖ size u64 LE
//! body, kind 3  = stored file: u16 LE len ‖ name ‖ size u64 LE ‖ u16 LE len ‖ capability text
//! ```
//!
//! The peer id carries the author's public key, so a signature is checked
//! against the `from` it claims and nothing else.
//!
//! For a mailbox, a signed letter is sealed to the recipient with HPKE
//! (RFC 9180: DHKEM X25519-HKDF-SHA256, HKDF-SHA256, ChaCha20-Poly1305; the
//! `hpke` crate). The recipient's X25519 key is its Ed25519 identity key in
//! Montgomery form, so anyone who knows a peer id can seal to it with no key
//! exchange and no directory, and only the holder of the identity can open
//! it. (Using one key pair for Ed25519 signatures and an X25519 KEM is
//! analysed in "On using the same key pair for Ed25519 and an X25519 based
//! KEM", ePrint 2021/509.) Signing happens inside the seal, so a mailbox
//! peer learns neither the text nor, from the letter, the author.
//!
//! The layout is defined by the serde structs in this module (`Stamp` for
//! the fixed fields, and a fixed-width length before each variable part),
//! written and read by [`crate::layout`]: the encoding is canonical, and a
//! test vector for each kind of body pins the bytes, which are signed and
//! held in other nodes' mailboxes.

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use libp2p_identity::{PeerId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::Identity;
use crate::layout::{self, LayoutError};

/// Longest message text, in bytes of UTF-8.
pub const MAX_TEXT: usize = 16 * 1024;
/// Longest file name a letter may carry, in bytes.
pub const MAX_FILE_NAME: usize = 255;
/// Longest capability text a letter may carry.
pub const MAX_CAPABILITY: usize = 512;
/// Largest signed letter; every letter that passes [`Letter::encode`]'s
/// limits fits.
pub const MAX_SIGNED_LETTER: usize = MAX_TEXT + 1024;
/// Largest sealed letter (HPKE encapsulated key and tag included).
pub const MAX_SEALED_LETTER: usize = MAX_SIGNED_LETTER + ENCAPPED_LEN + 16;

const VERSION: u8 = 1;
const SIGNATURE_CONTEXT: &[u8] = b"kith letter v1";
const SEAL_INFO: &[u8] = b"kith mailbox seal v1";
const MAILBOX_CONTEXT: &str = "kith mailbox id v1";
const SIGNATURE_LEN: usize = 64;
const ENCAPPED_LEN: usize = 32;

const KIND_TEXT: u8 = 1;
const KIND_FILE: u8 = 2;
const KIND_STORED: u8 = 3;

/// The fixed fields between the peer ids and the body.
#[derive(Serialize, Deserialize)]
struct Stamp {
    #[serde(with = "crate::layout::le")]
    sent_at_ms: u64,
    #[serde(with = "crate::layout::le")]
    seq: u64,
    kind: u8,
}

/// The length of a text body, in bytes; the UTF-8 follows.
#[derive(Serialize, Deserialize)]
struct TextLen(#[serde(with = "crate::layout::le")] u32);

/// The length of a file name or capability, in bytes; the UTF-8 follows.
#[derive(Serialize, Deserialize)]
struct ShortLen(#[serde(with = "crate::layout::le")] u16);

/// A file's size, after its name.
#[derive(Serialize, Deserialize)]
struct FileSize(#[serde(with = "crate::layout::le")] u64);

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// A message or file from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The author.
    pub from: PeerId,
    /// The recipient.
    pub to: PeerId,
    /// When the author wrote it, milliseconds since the Unix epoch, by the
    /// author's clock.
    pub sent_at_ms: u64,
    /// The author's sequence number: each letter an author writes gets the
    /// next one, so (author, seq) names a letter once and for all.
    pub seq: u64,
    /// What it carries.
    pub body: Body,
}

/// What a letter carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A text message.
    Text(String),
    /// A file whose bytes follow the letter on the same stream.
    File {
        /// The name the author gave it (a plain name, no folders).
        name: String,
        /// Its length in bytes.
        size: u64,
    },
    /// A file the author stored on the network; fetch it with the
    /// capability.
    Stored {
        /// The name the author gave it.
        name: String,
        /// Its length in bytes.
        size: u64,
        /// The `kith:…` capability.
        capability: String,
    },
}

/// Why a letter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LetterError {
    /// The text is longer than [`MAX_TEXT`].
    #[error("the message is {len} bytes; at most {max} bytes are allowed", max = MAX_TEXT)]
    TextTooLong {
        /// Its length.
        len: usize,
    },
    /// The file name is not a plain name.
    #[error("{name:?} is not an acceptable file name: {reason}")]
    BadFileName {
        /// The name (lossy, for the message).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed letter is larger than allowed.
    #[error("the letter is {len} bytes; at most {max} are allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a letter.
    #[error("the letter is malformed: {0}")]
    Malformed(&'static str),
    /// The letter is written in a version this node does not read.
    #[error("the letter is of version {0}; this kith reads version {VERSION}")]
    Version(u8),
    /// The signature does not match the author it claims.
    #[error("the letter's signature does not match its sender {from}: it is forged or damaged")]
    BadSignature {
        /// The author it claims.
        from: PeerId,
    },
    /// The sender's peer id does not carry an Ed25519 key.
    #[error("peer id {0} carries no Ed25519 key, so it cannot sign or receive letters")]
    NotEd25519(PeerId),
    /// A sealed letter could not be opened with this identity.
    #[error("the sealed letter cannot be opened with this node's key (not for us, or damaged)")]
    Unseal,
}

impl Letter {
    /// The letter's canonical bytes (what is signed). Checks the limits.
    pub fn encode(&self) -> Result<Vec<u8>, LetterError> {
        let mut out = Vec::with_capacity(128);
        out.push(VERSION);
        push_peer(&mut out, &self.from);
        push_peer(&mut out, &self.to);
        let stamp = |kind| Stamp {
            sent_at_ms: self.sent_at_ms,
            seq: self.seq,
            kind,
        };
        match &self.body {
            Body::Text(text) => {
                if text.len() > MAX_TEXT {
                    return Err(LetterError::TextTooLong { len: text.len() });
                }
                layout::write(&stamp(KIND_TEXT), &mut out);
                // At most MAX_TEXT, checked above.
                layout::write(&TextLen(text.len() as u32), &mut out);
                out.extend_from_slice(text.as_bytes());
            }
            Body::File { name, size } => {
                check_file_name(name)?;
                layout::write(&stamp(KIND_FILE), &mut out);
                push_short(&mut out, name.as_bytes());
                layout::write(&FileSize(*size), &mut out);
            }
            Body::Stored {
                name,
                size,
                capability,
            } => {
                check_file_name(name)?;
                if capability.len() > MAX_CAPABILITY {
                    return Err(LetterError::Malformed("the capability is too long"));
                }
                layout::write(&stamp(KIND_STORED), &mut out);
                push_short(&mut out, name.as_bytes());
                layout::write(&FileSize(*size), &mut out);
                push_short(&mut out, capability.as_bytes());
            }
        }
        Ok(out)
    }

    /// Parses canonical bytes (no signature check: see [`open_signed`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, LetterError> {
        let mut reader = Reader(bytes);
        let version: u8 = reader.read("version")?;
        if version != VERSION {
            return Err(LetterError::Version(version));
        }
        let from = reader.peer()?;
        let to = reader.peer()?;
        let Stamp {
            sent_at_ms,
            seq,
            kind,
        } = reader.read("stamp")?;
        let body = match kind {
            KIND_TEXT => {
                let TextLen(len) = reader.read("text length")?;
                let len = len as usize;
                if len > MAX_TEXT {
                    return Err(LetterError::TextTooLong { len });
                }
                Body::Text(reader.utf8(len)?)
            }
            KIND_FILE => {
                let name = reader.short_utf8()?;
                let FileSize(size) = reader.read("file size")?;
                check_file_name(&name)?;
                Body::File { name, size }
            }
            KIND_STORED => {
                let name = reader.short_utf8()?;
                let FileSize(size) = reader.read("file size")?;
                let capability = reader.short_utf8()?;
                check_file_name(&name)?;
                Body::Stored {
                    name,
                    size,
                    capability,
                }
            }
            _ => return Err(LetterError::Malformed("unknown kind of letter")),
        };
        reader.finish()?;
        Ok(Self {
            from,
            to,
            sent_at_ms,
            seq,
            body,
        })
    }

    /// Signs the letter with its author's identity: the bytes to send.
    ///
    /// Fails if `identity` is not the letter's `from`, or on a limit.
    pub fn sign(&self, identity: &Identity) -> Result<Vec<u8>, LetterError> {
        if identity.peer_id() != self.from {
            return Err(LetterError::BadSignature { from: self.from });
        }
        let mut bytes = self.encode()?;
        let mut message = SIGNATURE_CONTEXT.to_vec();
        message.extend_from_slice(&bytes);
        let signature = identity
            .keypair()
            .sign(&message)
            .map_err(|_| LetterError::NotEd25519(self.from))?;
        bytes.extend_from_slice(&signature);
        if bytes.len() > MAX_SIGNED_LETTER {
            return Err(LetterError::TooLarge {
                len: bytes.len(),
                max: MAX_SIGNED_LETTER,
            });
        }
        Ok(bytes)
    }
}

/// Checks a signed letter against the author it claims and parses it.
pub fn open_signed(signed: &[u8]) -> Result<Letter, LetterError> {
    if signed.len() > MAX_SIGNED_LETTER {
        return Err(LetterError::TooLarge {
            len: signed.len(),
            max: MAX_SIGNED_LETTER,
        });
    }
    let split = signed
        .len()
        .checked_sub(SIGNATURE_LEN)
        .ok_or(LetterError::Malformed("shorter than a signature"))?;
    let (bytes, signature) = signed.split_at(split);
    let letter = Letter::decode(bytes)?;
    let key = public_key(&letter.from)?;
    let mut message = SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(bytes);
    if !key.verify(&message, signature) {
        return Err(LetterError::BadSignature { from: letter.from });
    }
    Ok(letter)
}

/// Seals a signed letter so that only `to` can open it.
pub fn seal(to: &PeerId, signed: &[u8]) -> Result<Vec<u8>, LetterError> {
    if signed.len() > MAX_SIGNED_LETTER {
        return Err(LetterError::TooLarge {
            len: signed.len(),
            max: MAX_SIGNED_LETTER,
        });
    }
    let recipient = x25519_public(to)?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &recipient,
        SEAL_INFO,
        signed,
        &to.to_bytes(),
    )
    .map_err(|_| LetterError::Unseal)?;
    let mut out = encapped.to_bytes().to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a letter sealed to `identity`: the signed letter inside (check it
/// with [`open_signed`]).
pub fn unseal(identity: &Identity, sealed: &[u8]) -> Result<Vec<u8>, LetterError> {
    if sealed.len() > MAX_SEALED_LETTER {
        return Err(LetterError::TooLarge {
            len: sealed.len(),
            max: MAX_SEALED_LETTER,
        });
    }
    if sealed.len() < ENCAPPED_LEN {
        return Err(LetterError::Unseal);
    }
    let (encapped, ciphertext) = sealed.split_at(ENCAPPED_LEN);
    let encapped =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped).map_err(|_| LetterError::Unseal)?;
    let secret = x25519_secret(identity)?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &secret,
        &encapped,
        SEAL_INFO,
        ciphertext,
        &identity.peer_id().to_bytes(),
    )
    .map_err(|_| LetterError::Unseal)
}

/// The id of `peer`'s mailbox: the DHT key whose closest peers hold its
/// mail while it is offline.
pub fn mailbox_id(peer: &PeerId) -> [u8; 32] {
    blake3::derive_key(MAILBOX_CONTEXT, &peer.to_bytes())
}

/// Checks that `name` is a plain file name: not empty, no folders, no
/// `.`/`..`, no control characters, at most [`MAX_FILE_NAME`] bytes.
pub fn check_file_name(name: &str) -> Result<(), LetterError> {
    let bad = |reason| {
        Err(LetterError::BadFileName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_FILE_NAME {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("it names a folder");
    }
    if name.contains(['/', '\\']) {
        return bad("it contains a folder separator");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if name.chars().any(is_invisible_format) {
        return bad(
            "it contains invisible formatting characters (such as a right-to-left override) \
             that can disguise a file's type",
        );
    }
    if name.starts_with(RESERVED_NAME_PREFIX) {
        return bad("names starting with .kith-partial- are reserved for files still arriving");
    }
    Ok(())
}

/// The prefix of the hidden files that received files are written to until
/// they are complete; no received file may take such a name.
pub const RESERVED_NAME_PREFIX: &str = ".kith-partial-";

/// Whether `c` is a Unicode format character (general category Cf) that
/// changes how a name is shown without being seen: bidirectional overrides
/// and isolates (U+202E makes `\u{202e}gnp.exe` look like `exe.png`),
/// zero-width characters, invisible operators and tags. Listed by hand:
/// the Cf set is small and stable, and a Unicode-tables crate for one
/// check would weigh more than the list.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

fn public_key(peer: &PeerId) -> Result<PublicKey, LetterError> {
    let multihash = peer.as_ref();
    // Ed25519 peer ids embed the protobuf-encoded public key (identity
    // multihash, code 0).
    if multihash.code() != 0 {
        return Err(LetterError::NotEd25519(*peer));
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest())
        .map_err(|_| LetterError::NotEd25519(*peer))?;
    if key.clone().try_into_ed25519().is_err() {
        return Err(LetterError::NotEd25519(*peer));
    }
    Ok(key)
}

fn x25519_public(peer: &PeerId) -> Result<<Kem as hpke::Kem>::PublicKey, LetterError> {
    let ed = public_key(peer)?
        .try_into_ed25519()
        .map_err(|_| LetterError::NotEd25519(*peer))?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&ed.to_bytes())
        .map_err(|_| LetterError::NotEd25519(*peer))?;
    <Kem as hpke::Kem>::PublicKey::from_bytes(verifying.to_montgomery().as_bytes())
        .map_err(|_| LetterError::NotEd25519(*peer))
}

fn x25519_secret(identity: &Identity) -> Result<<Kem as hpke::Kem>::PrivateKey, LetterError> {
    let seed = zeroize::Zeroizing::new(identity.ed25519_seed());
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let scalar = zeroize::Zeroizing::new(signing.to_scalar_bytes());
    <Kem as hpke::Kem>::PrivateKey::from_bytes(scalar.as_slice())
        .map_err(|_| LetterError::NotEd25519(identity.peer_id()))
}

fn push_peer(out: &mut Vec<u8>, peer: &PeerId) {
    let bytes = peer.to_bytes();
    // Peer ids are at most 42 bytes (Ed25519) or a 34-byte hash.
    out.push(bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
    // Callers checked the length (≤ 512).
    layout::write(&ShortLen(bytes.len() as u16), out);
    out.extend_from_slice(bytes);
}

/// Reads a letter's parts in order with [`crate::layout`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn read<T: Deserialize<'a>>(&mut self, what: &'static str) -> Result<T, LetterError> {
        let (value, rest) = layout::read(self.0, what).map_err(malformed)?;
        self.0 = rest;
        Ok(value)
    }
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], LetterError> {
        let (head, rest) = layout::split(self.0, len, what).map_err(malformed)?;
        self.0 = rest;
        Ok(head)
    }
    fn peer(&mut self) -> Result<PeerId, LetterError> {
        let len: u8 = self.read("peer id length")?;
        PeerId::from_bytes(self.take(usize::from(len), "peer id")?)
            .map_err(|_| LetterError::Malformed("a bad peer id"))
    }
    fn utf8(&mut self, len: usize) -> Result<String, LetterError> {
        String::from_utf8(self.take(len, "text")?.to_vec())
            .map_err(|_| LetterError::Malformed("text that is not UTF-8"))
    }
    fn short_utf8(&mut self) -> Result<String, LetterError> {
        let ShortLen(len) = self.read("length")?;
        if usize::from(len) > MAX_CAPABILITY {
            return Err(LetterError::Malformed("a field is too long"));
        }
        self.utf8(usize::from(len))
    }
    fn finish(self) -> Result<(), LetterError> {
        if !self.0.is_empty() {
            return Err(LetterError::Malformed("bytes after the end"));
        }
        Ok(())
    }
}

/// The letter's error for bytes that do not read as its layout.
fn malformed(error: LayoutError) -> LetterError {
    LetterError::Malformed(match error {
        LayoutError::Short { .. } => "it ends early",
        LayoutError::Trailing { .. } => "bytes after the end",
        LayoutError::Malformed { .. } => "a field that is not valid",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every pinned letter below starts with: alice ([1; 32]) to bob
    /// ([2; 32]), sent at 1_700_000_000_000 ms, sequence number 7.
    const PINNED_HEAD: &str = concat!(
        "01", // version
        "26", // from: peer id length, then the peer id (identity multihash
        // of alice's protobuf-encoded Ed25519 key)
        "002408011220",
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        "26", // to: bob's peer id, the same way
        "002408011220",
        "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        "0068e5cf8b010000", // sent_at_ms, u64 LE
        "0700000000000000", // seq, u64 LE
    );

    /// The signed bytes of one letter of each kind, pinned: letters are
    /// signed and held in other nodes' mailboxes, so these bytes must never
    /// change.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let (alice, bob) = (
            Identity::from_secret([1; 32]),
            Identity::from_secret([2; 32]),
        );
        let cases = [
            (
                Body::Text("hi".into()),
                concat!(
                    "01",       // kind: text
                    "02000000", // text length, u32 LE
                    "6869",     // "hi"
                ),
                concat!(
                    "0766e44b386800e7704929bb0551c93d141f9ebc23a54266275484d4c47edf12",
                    "2629651be2f1b7bea9bf464450ea99fdc35360228fa6e112fcf3d1d8423b3908",
                ),
            ),
            (
                Body::File {
                    name: "a.txt".into(),
                    size: 1_000_000,
                },
                concat!(
                    "02",               // kind: file
                    "0500",             // name length, u16 LE
                    "612e747874",       // "a.txt"
                    "40420f0000000000", // size, u64 LE
                ),
                concat!(
                    "cb7d338ab6a2ee485a038d8a17d7817ccb2cf0648a52a615cd7405dee3b4dfb0",
                    "cc9e27b71dfae2b53c333b343f7120cdec45ed10a9dcd2cb8e64b25b95a50207",
                ),
            ),
            (
                Body::Stored {
                    name: "b.txt".into(),
                    size: 5,
                    capability: "kith:xyz".into(),
                },
                concat!(
                    "03",               // kind: stored file
                    "0500",             // name length, u16 LE
                    "622e747874",       // "b.txt"
                    "0500000000000000", // size, u64 LE
                    "0800",             // capability length, u16 LE
                    "6b6974683a78797a", // "kith:xyz"
                ),
                concat!(
                    "c546057df930ab96a6ee376045ea0f3200cceb1b4a0b9b805d26a7214be849de",
                    "f201f4e9c71c11d7db469eaa1918872b256de2fb2aa02a978f86cbd93e958400",
                ),
            ),
        ];
        for (body, body_hex, signature_hex) in cases {
            let letter = letter(&alice, &bob, body);
            let signed = letter.sign(&alice).unwrap();
            assert_eq!(
                data_encoding::HEXLOWER.encode(&signed),
                format!("{PINNED_HEAD}{body_hex}{signature_hex}"),
                "{:?}",
                letter.body
            );
            assert_eq!(open_signed(&signed), Ok(letter));
        }
    }

    fn letter(from: &Identity, to: &Identity, body: Body) -> Letter {
        Letter {
            from: from.peer_id(),
            to: to.peer_id(),
            sent_at_ms: 1_700_000_000_000,
            seq: 7,
            body,
        }
    }

    #[test]
    fn signed_letters_round_trip() {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        for body in [
            Body::Text("dinner at 8?".into()),
            Body::File {
                name: "photo.jpg".into(),
                size: 1 << 30,
            },
            Body::Stored {
                name: "notes.txt".into(),
                size: 5,
                capability: "kith:abc".into(),
            },
        ] {
            let letter = letter(&alice, &bob, body);
            let signed = letter.sign(&alice).unwrap();
            assert_eq!(open_signed(&signed).unwrap(), letter);
        }
    }

    #[test]
    fn a_changed_byte_breaks_the_signature() {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let signed = letter(&alice, &bob, Body::Text("hello".into()))
            .sign(&alice)
            .unwrap();
        for at in 0..signed.len() {
            let mut bad = signed.clone();
            bad[at] ^= 0x01;
            assert!(
                open_signed(&bad).is_err(),
                "flipped byte {at} went unnoticed"
            );
        }
    }

    #[test]
    fn a_forged_sender_is_refused() {
        let (alice, bob, mallory) = (
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
        );
        // Mallory cannot sign as alice …
        let forged = letter(&alice, &bob, Body::Text("send money".into()));
        assert!(matches!(
            forged.sign(&mallory),
            Err(LetterError::BadSignature { .. })
        ));
        // … and alice's name on mallory's signature does not verify.
        let mut bytes = forged.encode().unwrap();
        let mut message = SIGNATURE_CONTEXT.to_vec();
        message.extend_from_slice(&bytes);
        bytes.extend_from_slice(&mallory.keypair().sign(&message).unwrap());
        assert_eq!(
            open_signed(&bytes),
            Err(LetterError::BadSignature {
                from: alice.peer_id()
            })
        );
    }

    #[test]
    fn limits_are_enforced() {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let long = letter(&alice, &bob, Body::Text("x".repeat(MAX_TEXT + 1)));
        assert!(matches!(
            long.sign(&alice),
            Err(LetterError::TextTooLong { .. })
        ));
        let longest = letter(&alice, &bob, Body::Text("x".repeat(MAX_TEXT)));
        let signed = longest.sign(&alice).unwrap();
        assert!(signed.len() <= MAX_SIGNED_LETTER);
        let sealed = seal(&bob.peer_id(), &signed).unwrap();
        assert!(sealed.len() <= MAX_SEALED_LETTER);
        assert!(open_signed(&vec![0; MAX_SIGNED_LETTER + 1]).is_err());
    }

    #[test]
    fn file_names_must_be_plain() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "x\ny",
            &"n".repeat(256),
            "\u{202e}gnp.exe",
            "photo\u{200b}.jpg",
            "a\u{2067}b",
            "\u{feff}x",
            ".kith-partial-0",
            ".kith-partial-",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?} passed");
        }
        for good in [
            "photo.jpg",
            ".hidden",
            "naïve café.txt",
            "a..b",
            "日本語.txt",
            "مرحبا.txt",
            ".kith-partial",
            &"n".repeat(255),
        ] {
            check_file_name(good).unwrap();
        }
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let escape = letter(
            &alice,
            &bob,
            Body::File {
                name: "../../.bashrc".into(),
                size: 1,
            },
        );
        assert!(matches!(
            escape.sign(&alice),
            Err(LetterError::BadFileName { .. })
        ));
    }

    #[test]
    fn only_the_recipient_can_unseal() {
        let (alice, bob, carol) = (
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
        );
        let signed = letter(&alice, &bob, Body::Text("secret".into()))
            .sign(&alice)
            .unwrap();
        let sealed = seal(&bob.peer_id(), &signed).unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "the text is visible in the sealed bytes"
        );
        assert_eq!(unseal(&bob, &sealed).unwrap(), signed);
        assert_eq!(unseal(&carol, &sealed), Err(LetterError::Unseal));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(unseal(&bob, &damaged), Err(LetterError::Unseal));
        assert_eq!(unseal(&bob, &sealed[..10]), Err(LetterError::Unseal));
    }

    #[test]
    fn mailbox_ids_differ_per_peer_and_are_stable() {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        assert_ne!(mailbox_id(&alice.peer_id()), mailbox_id(&bob.peer_id()));
        assert_eq!(mailbox_id(&alice.peer_id()), mailbox_id(&alice.peer_id()));
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let (alice, bob) = (Identity::generate(), Identity::generate());
        let bytes = letter(&alice, &bob, Body::Text("hi".into()))
            .encode()
            .unwrap();
        for cut in 0..bytes.len() {
            assert!(Letter::decode(&bytes[..cut]).is_err());
        }
    }
}
