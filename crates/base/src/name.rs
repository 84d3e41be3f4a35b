//! Names: self-certifying pointers to content, and their signed records.
//!
//! A **name** is an Ed25519 public key. Whoever resolves it checks the
//! record's signature against the name itself, so there is no registry, no
//! DNS and no one to trust: only the holder of the name's secret key can
//! point it somewhere. A node's default name is its own identity key; a
//! **label** (`--label blog`) derives a further key from the identity's
//! secret, so one node publishes many names, and the same label always
//! gives the same name.
//!
//! A **name record** says "name N points at capability C", with a
//! sequence number (the highest valid one wins) and an expiry (a year by
//! default; the publisher renews it, and mirrors hand the same record on
//! until it ends):
//!
//! ```text
//! record    = version (1) ‖ name (32) ‖ sequence u64 LE ‖ published_at u64 LE
//!             ‖ expires_at u64 LE ‖ target (69: a binary capability) ‖ signature (64)
//! signature = Ed25519(name, "kith name v1" ‖ the 126 bytes before it)
//! ```
//!
//! The fixed part is the serde struct `Terms` written by [`crate::layout`];
//! a test vector pins the bytes, which are signed and held by other nodes.
//!
//! A name's text is the key in lowercase base32 without padding (52
//! characters): one DNS label, so that a gateway can give each site its
//! own origin (`<name>.localhost`). Reading accepts either case.
//!
//! Records live in the DHT on the peers closest to [`Name::dht_key`], a
//! hash of the name, so that names are spread over the key space apart
//! from peer ids, stripe ids and mailbox ids (the records themselves, and
//! the fetch requests, carry the name in the clear).

use std::fmt;
use std::str::FromStr;

use libp2p_identity::ed25519;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Capability, CapabilityError, Identity, layout};

/// Bytes of an encoded record.
pub const RECORD_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;
/// Characters of a name's text.
pub const NAME_TEXT_LEN: usize = 52;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 63;
/// The longest validity a holder accepts, counted from now: a year and a
/// little more, so a record cannot be pinned for ever.
pub const MAX_VALIDITY_SECS: u64 = 400 * 24 * 3600;

const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"kith name v1";
const TERMS_LEN: usize = 1 + 32 + 8 + 8 + 8;
const SIGNED_LEN: usize = TERMS_LEN + Capability::LEN;
const SIGNATURE_LEN: usize = 64;
/// Domain of the key derivation that turns (identity, label) into a name.
const LABEL_CONTEXT: &str = "kith name label v1 (Ed25519 seed from identity seed and label)";
/// Domain of the hash a name's records are stored under.
const DHT_CONTEXT: &str = "kith name record key v1";

/// A name: an Ed25519 public key that signs where it points.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name([u8; 32]);

/// Why a name's text, a label or a record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not 52 base32 characters.
    #[error(
        "a name is {NAME_TEXT_LEN} letters and digits (base32: a-z and 2-7), as `kith name \
         publish` prints it; got {len} characters"
    )]
    BadLength {
        /// Characters given.
        len: usize,
    },
    /// A character outside base32.
    #[error(
        "a name is written in base32 (the letters a-z and the digits 2-7); {character:?} is \
         not one, so it was probably mistyped"
    )]
    BadCharacter {
        /// The first such character.
        character: char,
    },
    /// Base32 of the right length that is not an Ed25519 public key.
    #[error("that is not a valid name: it does not decode to a public key")]
    NotAKey,
    /// A label that is not 1 to 63 of `a-z`, `0-9` and `-`.
    #[error(
        "a label is 1 to {MAX_LABEL_LEN} characters of a-z, 0-9 and '-' (not first or last); \
         got {label:?}"
    )]
    BadLabel {
        /// The label given.
        label: String,
    },
    /// Not [`RECORD_LEN`] bytes, or an unknown version, or a target that is
    /// not a capability.
    #[error("a name record is {RECORD_LEN} bytes of version {VERSION}: {why}")]
    Malformed {
        /// What was wrong.
        why: String,
    },
    /// The signature does not verify under the record's name.
    #[error("the name record's signature does not verify under its name: it is forged")]
    BadSignature,
}

impl Name {
    /// The name of a raw Ed25519 public key (checked).
    pub fn from_key(key: [u8; 32]) -> Result<Self, NameError> {
        ed25519::PublicKey::try_from_bytes(&key).map_err(|_| NameError::NotAKey)?;
        Ok(Self(key))
    }

    /// The public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key a record of this name is stored under in the DHT.
    pub fn dht_key(&self) -> [u8; 32] {
        blake3::derive_key(DHT_CONTEXT, &self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &data_encoding::BASE32_NOPAD
                .encode(&self.0)
                .to_ascii_lowercase(),
        )
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl FromStr for Name {
    type Err = NameError;

    /// Reads a name's text; surrounding whitespace is ignored and either
    /// case is accepted (a name is also a host name, which browsers write in
    /// lowercase).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(character) = text
            .chars()
            .find(|c| !matches!(c.to_ascii_lowercase(), 'a'..='z' | '2'..='7'))
        {
            return Err(NameError::BadCharacter { character });
        }
        if text.len() != NAME_TEXT_LEN {
            return Err(NameError::BadLength {
                len: text.chars().count(),
            });
        }
        let upper = text.to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| NameError::NotAKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| NameError::NotAKey)?;
        Self::from_key(key)
    }
}

/// Checks a label: 1 to 63 characters of `a-z`, `0-9` and `-`, not
/// starting or ending with `-` (a DNS label's rules, so labels can appear
/// in host names one day).
pub fn check_label(label: &str) -> Result<(), NameError> {
    let valid = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(NameError::BadLabel {
            label: label.to_owned(),
        })
    }
}

/// The secret side of a name: signs its records. Made from an identity by
/// [`NameSigner::new`]; never stored (it is derived again when needed).
pub struct NameSigner {
    keypair: ed25519::Keypair,
}

impl NameSigner {
    /// The signer of `identity`'s default name (`label` `None`: the identity
    /// key itself) or of the name derived for `label`.
    pub fn new(identity: &Identity, label: Option<&str>) -> Result<Self, NameError> {
        let Some(label) = label else {
            return Ok(Self {
                keypair: identity.ed25519(),
            });
        };
        check_label(label)?;
        let seed = Zeroizing::new(identity.ed25519_seed());
        let mut material = Zeroizing::new(Vec::with_capacity(32 + label.len()));
        material.extend_from_slice(seed.as_ref());
        material.extend_from_slice(label.as_bytes());
        let mut derived = Zeroizing::new(blake3::derive_key(LABEL_CONTEXT, &material));
        // `try_from_bytes` only fails on a wrong length, which the array
        // rules out; it zeroes `derived` as it reads it.
        let secret =
            ed25519::SecretKey::try_from_bytes(derived.as_mut()).map_err(|_| NameError::NotAKey)?;
        Ok(Self {
            keypair: ed25519::Keypair::from(secret),
        })
    }

    /// The name this signer signs for.
    pub fn name(&self) -> Name {
        Name(self.keypair.public().to_bytes())
    }

    /// Signs a record pointing the name at `target`.
    pub fn sign(
        &self,
        target: &Capability,
        sequence: u64,
        published_at: u64,
        expires_at: u64,
    ) -> NameRecord {
        let terms = Terms {
            version: VERSION,
            name: self.keypair.public().to_bytes(),
            sequence,
            published_at,
            expires_at,
        };
        let target_bytes = target.to_bytes();
        let message = signed_message(&terms, &target_bytes);
        let mut bytes = Vec::with_capacity(RECORD_LEN);
        bytes.extend_from_slice(&message[CONTEXT.len()..]);
        bytes.extend_from_slice(&self.keypair.sign(&message));
        NameRecord {
            terms,
            target: target.clone(),
            bytes: bytes.try_into().unwrap_or_else(|_| {
                unreachable!("terms, a capability and a signature are {RECORD_LEN} bytes")
            }),
        }
    }
}

impl fmt::Debug for NameSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameSigner({}, <secret>)", self.name())
    }
}

/// The fixed fields of a record, in this order; the target and the
/// signature follow.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Terms {
    version: u8,
    name: [u8; 32],
    #[serde(with = "crate::layout::le")]
    sequence: u64,
    /// Unix seconds.
    #[serde(with = "crate::layout::le")]
    published_at: u64,
    /// Unix seconds.
    #[serde(with = "crate::layout::le")]
    expires_at: u64,
}

/// A verified name record (one can only be made by signing, or by
/// [`NameRecord::from_bytes`], which checks the signature).
#[derive(Clone, PartialEq, Eq)]
pub struct NameRecord {
    terms: Terms,
    target: Capability,
    bytes: [u8; RECORD_LEN],
}

impl NameRecord {
    /// Reads and verifies a record. It says nothing about time: whether
    /// the record has expired is [`NameRecord::is_live`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        let malformed = |why: String| NameError::Malformed { why };
        let bytes: [u8; RECORD_LEN] = bytes
            .try_into()
            .map_err(|_| malformed(format!("got {} bytes", bytes.len())))?;
        let (terms, rest) = layout::read::<Terms>(&bytes, "name record")
            .map_err(|error| malformed(error.to_string()))?;
        if terms.version != VERSION {
            return Err(malformed(format!("got version {}", terms.version)));
        }
        let (target_bytes, signature) = rest.split_at(Capability::LEN);
        let target = Capability::from_bytes(target_bytes).map_err(|error: CapabilityError| {
            malformed(format!("its target is not a capability ({error})"))
        })?;
        let name =
            ed25519::PublicKey::try_from_bytes(&terms.name).map_err(|_| NameError::BadSignature)?;
        if !name.verify(&signed_message(&terms, target_bytes), signature) {
            return Err(NameError::BadSignature);
        }
        Ok(Self {
            terms,
            target,
            bytes,
        })
    }

    /// The encoded, signed record.
    pub fn as_bytes(&self) -> &[u8; RECORD_LEN] {
        &self.bytes
    }

    /// The name it is for.
    pub fn name(&self) -> Name {
        Name(self.terms.name)
    }

    /// Where the name points.
    pub fn target(&self) -> &Capability {
        &self.target
    }

    /// The sequence number: the highest valid one wins.
    pub fn sequence(&self) -> u64 {
        self.terms.sequence
    }

    /// When the publisher signed it (Unix seconds, by its clock).
    pub fn published_at(&self) -> u64 {
        self.terms.published_at
    }

    /// When it stops being valid (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.terms.expires_at
    }

    /// Whether it is still valid at `now` (Unix seconds).
    pub fn is_live(&self, now: u64) -> bool {
        self.terms.expires_at > now
    }

    /// Whether this record should replace `other` (a record of the same
    /// name): a higher sequence, or the same sequence renewed to a later
    /// expiry; two different records equal in both (two publishes at
    /// once) are ordered by their bytes, so every node picks the same one.
    /// Equal records do not replace each other.
    pub fn supersedes(&self, other: &NameRecord) -> bool {
        (self.terms.sequence, self.terms.expires_at, &self.bytes[..])
            > (
                other.terms.sequence,
                other.terms.expires_at,
                &other.bytes[..],
            )
    }
}

impl fmt::Debug for NameRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameRecord")
            .field("name", &self.name())
            .field("sequence", &self.sequence())
            .field("expires_at", &self.expires_at())
            .field("target", &self.target)
            .finish()
    }
}

/// What the signature covers: the context, the terms' bytes, the target.
fn signed_message(terms: &Terms, target: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + SIGNED_LEN);
    message.extend_from_slice(CONTEXT);
    layout::write(terms, &mut message);
    message.extend_from_slice(target);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CapabilityKind, ContentId, FileKey};

    fn folder_cap(seed: u8) -> Capability {
        Capability::new(
            ContentId::from_bytes([seed; 32]),
            FileKey::from_bytes([seed; 32]),
        )
        .with_kind(CapabilityKind::Folder)
    }

    /// The bytes of one record, pinned: records are signed and held by
    /// other nodes, so these bytes must never change.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let identity = Identity::from_secret([1; 32]);
        let signer = NameSigner::new(&identity, None).unwrap();
        let record = signer.sign(&folder_cap(2), 7, 1_800_000_000, 1_900_000_000);
        let hex = layout::to_hex(record.as_bytes());
        assert_eq!(record.as_bytes().len(), RECORD_LEN);
        assert_eq!(RECORD_LEN, 190);
        let expected = concat!(
            "01",                                                               // version
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", // name
            "0700000000000000",                                                 // sequence
            "00d2496b00000000", // published_at, u64 LE
            "00b33f7100000000", // expires_at, u64 LE
            "02",               // target: a folder capability (kind 2) …
            "0202020202020202020202020202020202020202020202020202020202020202", // … manifest id
            "0202020202020202020202020202020202020202020202020202020202020202", // … file key
            "2e93d05d",         // … checksum
            "79e617bc9eb835d895bcd2d381de0d247f279c36c4ea0957898dff73330da401", // signature …
            "cda55e62470daa19cf2e82d6ab44845180dd1812c2f5f59131ccaca25459680b", // … (64 bytes)
        );
        assert_eq!(hex, expected);
        let back = NameRecord::from_bytes(record.as_bytes()).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.name(), identity_name(&identity));
        assert_eq!(back.target(), &folder_cap(2));
        assert_eq!(
            (back.sequence(), back.published_at(), back.expires_at()),
            (7, 1_800_000_000, 1_900_000_000)
        );
    }

    fn identity_name(identity: &Identity) -> Name {
        Name::from_key(identity.public_key()).unwrap()
    }

    #[test]
    fn the_default_name_is_the_identity_key_and_labels_derive_stable_distinct_names() {
        let identity = Identity::generate();
        let default = NameSigner::new(&identity, None).unwrap().name();
        assert_eq!(default, identity_name(&identity));
        let blog = NameSigner::new(&identity, Some("blog")).unwrap().name();
        let again = NameSigner::new(&identity, Some("blog")).unwrap().name();
        let photos = NameSigner::new(&identity, Some("photos")).unwrap().name();
        assert_eq!(blog, again);
        assert_ne!(blog, default);
        assert_ne!(blog, photos);
        let other = NameSigner::new(&Identity::generate(), Some("blog")).unwrap();
        assert_ne!(other.name(), blog, "a label is per identity");
    }

    #[test]
    fn labels_are_checked() {
        for good in ["blog", "a", "my-site-2", &"x".repeat(63)] {
            check_label(good).unwrap();
        }
        for bad in ["", "Blog", "-a", "a-", "a b", "a.b", "ü", &"x".repeat(64)] {
            assert!(
                matches!(check_label(bad), Err(NameError::BadLabel { .. })),
                "{bad:?}"
            );
        }
        let identity = Identity::generate();
        assert!(NameSigner::new(&identity, Some("../x")).is_err());
    }

    #[test]
    fn a_name_round_trips_through_text_in_either_case() {
        let name = NameSigner::new(&Identity::generate(), None).unwrap().name();
        let text = name.to_string();
        assert_eq!(text.len(), NAME_TEXT_LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(text.parse::<Name>().unwrap(), name);
        assert_eq!(text.to_uppercase().parse::<Name>().unwrap(), name);
        assert_eq!(format!(" {text}\n").parse::<Name>().unwrap(), name);
        assert!(matches!(
            text[1..].parse::<Name>(),
            Err(NameError::BadLength { len: 51 })
        ));
        assert!(matches!(
            format!("{}0", &text[1..]).parse::<Name>(),
            Err(NameError::BadCharacter { character: '0' })
        ));
        assert!(matches!(
            "kith:abc".parse::<Name>(),
            Err(NameError::BadCharacter { character: ':' })
        ));
    }

    #[test]
    fn tampered_forged_and_malformed_records_are_refused() {
        let signer = NameSigner::new(&Identity::generate(), Some("site")).unwrap();
        let record = signer.sign(&folder_cap(3), 1, 100, 2_000_000_000);
        // Every field is signed: a higher sequence, a later expiry, another
        // target or another name.
        for at in [0, 1, 33, 41, 49, 57, 60, 100, 126, 150, 189] {
            let mut bytes = *record.as_bytes();
            bytes[at] ^= 1;
            assert!(NameRecord::from_bytes(&bytes).is_err(), "byte {at} flipped");
        }
        // Another key's signature over the same terms.
        let other = NameSigner::new(&Identity::generate(), None).unwrap();
        let theirs = other.sign(&folder_cap(3), 1, 100, 2_000_000_000);
        let mut forged = *record.as_bytes();
        forged[RECORD_LEN - 64..].copy_from_slice(&theirs.as_bytes()[RECORD_LEN - 64..]);
        assert_eq!(
            NameRecord::from_bytes(&forged),
            Err(NameError::BadSignature)
        );
        // A record for another key, relabelled as ours.
        let mut relabelled = *theirs.as_bytes();
        relabelled[1..33].copy_from_slice(record.name().as_bytes());
        assert_eq!(
            NameRecord::from_bytes(&relabelled),
            Err(NameError::BadSignature)
        );
        assert!(matches!(
            NameRecord::from_bytes(&record.as_bytes()[..100]),
            Err(NameError::Malformed { .. })
        ));
        let mut future = *record.as_bytes();
        future[0] = 2;
        assert!(matches!(
            NameRecord::from_bytes(&future),
            Err(NameError::Malformed { .. })
        ));
    }

    #[test]
    fn higher_sequences_and_renewals_supersede_and_expiry_is_checked() {
        let signer = NameSigner::new(&Identity::generate(), None).unwrap();
        let first = signer.sign(&folder_cap(1), 1, 10, 1_000);
        let second = signer.sign(&folder_cap(2), 2, 20, 900);
        let renewed = signer.sign(&folder_cap(1), 1, 30, 2_000);
        assert!(second.supersedes(&first));
        assert!(!first.supersedes(&second));
        assert!(renewed.supersedes(&first));
        assert!(!first.supersedes(&first.clone()));
        assert!(second.supersedes(&renewed), "the sequence decides first");
        assert!(first.is_live(999));
        assert!(!first.is_live(1_000));
    }
}
