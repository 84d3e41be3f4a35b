//! The node identity: an Ed25519 key pair, and its text form on disk.
//!
//! A node is its key: libp2p authenticates every connection with it, and
//! the peer id other nodes know it by (`12D3KooW…`) is derived from its
//! public half. The secret half lives in the data folder, in a small text
//! file that also records the peer id. That redundancy is what lets us tell
//! a damaged file from a valid one: any 32 bytes are a valid Ed25519 secret,
//! so without the recorded peer id a flipped bit would silently turn the
//! node into somebody else. Reading and writing the file is the caller's job
//! (this crate does no I/O); this module only encodes and checks.
//!
//! ```text
//! # kith node identity. This is the node's secret key: keep it private.
//! kith-identity-v1
//! peer-id 12D3KooW…
//! secret  <64 lowercase hex digits: the Ed25519 secret key>
//! ```

use libp2p_identity::{Keypair, PeerId, ed25519};
use zeroize::Zeroizing;

const HEADER: &str = "kith-identity-v1";

/// The 32-byte Ed25519 public key a peer id carries, if it is an Ed25519
/// peer id (every kith node's is). Used to record who owns a stored share.
pub fn ed25519_key(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash = peer.as_ref();
    // Ed25519 peer ids embed the protobuf-encoded key (identity multihash).
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p_identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The peer id of an Ed25519 public key (the inverse of [`ed25519_key`]),
/// or `None` if the bytes are not a valid key.
pub fn peer_id_of(key: &[u8; 32]) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(libp2p_identity::PublicKey::from(key).to_peer_id())
}

/// A node's key pair.
#[derive(Clone)]
pub struct Identity {
    keypair: Keypair,
}

/// Why an identity file could not be read. The file is never rewritten on
/// these errors: the operator must decide what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The text does not start with the identity header.
    #[error("it is not a kith identity file (its first line is not \"{HEADER}\")")]
    NotAnIdentity,
    /// A line is missing or unreadable.
    #[error("its {0} line is missing or malformed")]
    Field(&'static str),
    /// The secret does not produce the recorded peer id.
    #[error("its secret key does not match its recorded peer id {recorded}: the file is damaged")]
    Mismatch {
        /// The peer id written in the file.
        recorded: String,
    },
}

impl Identity {
    /// Generates a fresh identity from the operating system's randomness.
    pub fn generate() -> Self {
        Self {
            keypair: Keypair::generate_ed25519(),
        }
    }

    /// An identity from a known 32-byte secret (tests and known answers).
    pub fn from_secret(mut secret: [u8; 32]) -> Self {
        // `try_from_bytes` only fails on a wrong length, which the array rules out.
        let secret = ed25519::SecretKey::try_from_bytes(&mut secret)
            .unwrap_or_else(|_| unreachable_secret_length());
        Self {
            keypair: Keypair::from(ed25519::Keypair::from(secret)),
        }
    }

    /// The libp2p key pair, for the network layer.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The peer id other nodes know this node by.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub(crate) fn ed25519(&self) -> ed25519::Keypair {
        // Every `Identity` is built from an Ed25519 key.
        match self.keypair.clone().try_into_ed25519() {
            Ok(keypair) => keypair,
            Err(_) => unreachable_secret_length(),
        }
    }

    /// The 32-byte Ed25519 secret seed, for deriving this identity's
    /// X25519 key (see [`crate::letter`]). Wipe it after use.
    pub(crate) fn ed25519_seed(&self) -> [u8; 32] {
        let secret = self.ed25519().secret();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(secret.as_ref());
        seed
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.ed25519().public().to_bytes()
    }

    /// The file text, wiped from memory when dropped.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let secret = self.ed25519().secret();
        let hex = Zeroizing::new(data_encoding::HEXLOWER.encode(secret.as_ref()));
        Zeroizing::new(format!(
            "# kith node identity. This is the node's secret key: keep it private,\n\
             # and do not copy it to a second node (two nodes with one id fight).\n\
             {HEADER}\n\
             peer-id {}\n\
             secret {}\n",
            self.peer_id(),
            hex.as_str()
        ))
    }

    /// Reads and checks the file text.
    pub fn from_file_text(text: &str) -> Result<Self, IdentityError> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        if lines.next() != Some(HEADER) {
            return Err(IdentityError::NotAnIdentity);
        }
        let recorded = field(lines.next(), "peer-id")?;
        let secret_hex = Zeroizing::new(field(lines.next(), "secret")?.to_owned());
        let secret = Zeroizing::new(
            data_encoding::HEXLOWER
                .decode(secret_hex.as_bytes())
                .map_err(|_| IdentityError::Field("secret"))?,
        );
        let secret: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::Field("secret"))?;
        let identity = Self::from_secret(secret);
        if identity.peer_id().to_string() != recorded {
            return Err(IdentityError::Mismatch {
                recorded: recorded.to_owned(),
            });
        }
        Ok(identity)
    }
}

fn field<'a>(line: Option<&'a str>, name: &'static str) -> Result<&'a str, IdentityError> {
    line.and_then(|line| line.strip_prefix(name))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(IdentityError::Field(name))
}

#[cold]
fn unreachable_secret_length() -> ! {
    unreachable!("an Ed25519 secret from a 32-byte array is always valid")
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        let identity = Identity::from_secret([1; 32]);
        assert_eq!(
            identity.peer_id().to_string(),
            "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
        );
    }

    #[test]
    fn file_text_round_trip() {
        let identity = Identity::generate();
        let text = identity.to_file_text();
        let back = Identity::from_file_text(&text).unwrap();
        assert_eq!(back.peer_id(), identity.peer_id());
        assert_eq!(back.public_key(), identity.public_key());
    }

    #[test]
    fn damaged_files_are_rejected() {
        let text = Identity::from_secret([1; 32]).to_file_text().to_string();
        assert_eq!(
            Identity::from_file_text("").unwrap_err(),
            IdentityError::NotAnIdentity
        );
        assert_eq!(
            Identity::from_file_text("hello\n").unwrap_err(),
            IdentityError::NotAnIdentity
        );
        // Truncated in the middle of the secret.
        let cut = &text[..text.len() - 10];
        assert_eq!(
            Identity::from_file_text(cut).unwrap_err(),
            IdentityError::Field("secret")
        );
        // One digit of the secret changed: still 32 bytes, wrong key.
        let secret_at = text.find("\nsecret ").unwrap() + "\nsecret ".len();
        let mut changed = text.clone().into_bytes();
        changed[secret_at] = if changed[secret_at] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let changed = String::from_utf8(changed).unwrap();
        assert!(matches!(
            Identity::from_file_text(&changed),
            Err(IdentityError::Mismatch { .. })
        ));
        // Every truncation is an error, never a different identity.
        for end in 0..text.len() {
            let result = Identity::from_file_text(&text[..end]);
            if let Ok(identity) = result {
                assert_eq!(identity.peer_id(), Identity::from_secret([1; 32]).peer_id());
            }
        }
    }
}
