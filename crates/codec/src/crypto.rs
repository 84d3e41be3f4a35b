//! Key derivation and the AEAD: AES-256-GCM from `ring`, in place.
//!
//! One random file key would do for everything if nonces never repeated, but
//! the manifest and the segments are separate streams, and keeping them under
//! separate keys means the manifest can use the all-zero nonce with no
//! bookkeeping and no chance of meeting a segment nonce. Both subkeys come
//! from the file key through BLAKE3's `derive_key` with fixed context strings,
//! so the file key itself never touches the cipher.
//!
//! Why AES-256-GCM through `ring`: on every x86-64 and ARMv8 machine kith
//! targets it has hardware AES and carry-less multiply, and `ring`'s assembly
//! is the fastest AEAD we measured (see `docs/codec.md` for the figures; the
//! rejected options were ChaCha20-Poly1305 from `ring` and from RustCrypto, and
//! AES-GCM from RustCrypto). ChaCha20 would win only on CPUs without AES
//! instructions, which are rare among machines that would store files.
//!
//! Nonces: segment `i` uses `0u32 ‖ i as u64 LE`. The key is fresh per file,
//! so a counter is safe and costs nothing; random nonces would need storing.
//! `LessSafeKey` is used because the nonce is a pure function of the index,
//! which `ring`'s `NonceSequence` machinery would only obscure.

use kith_base::FileKey;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::Part;

/// Bytes the AEAD adds to every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

const SEGMENT_KEY_CONTEXT: &str = "kith 2026 segment key v1";
const MANIFEST_KEY_CONTEXT: &str = "kith 2026 manifest key v1";
const SEGMENT_AAD: &[u8] = b"kith-segment-v1";
const MANIFEST_AAD: &[u8] = b"kith-manifest-v1";

/// The two ciphers of one file.
pub(crate) struct FileCipher {
    segment: LessSafeKey,
    manifest: LessSafeKey,
}

/// The AEAD refused to seal: only possible for inputs of ~64 GiB, far past
/// any segment or manifest.
#[derive(Debug)]
pub(crate) struct SealError;

impl FileCipher {
    pub(crate) fn new(key: &FileKey) -> Self {
        Self {
            segment: subkey(SEGMENT_KEY_CONTEXT, key),
            manifest: subkey(MANIFEST_KEY_CONTEXT, key),
        }
    }

    /// Encrypts `plaintext` in place and returns the tag to append.
    pub(crate) fn seal(
        &self,
        part: Part,
        plaintext: &mut [u8],
    ) -> Result<[u8; TAG_LEN], SealError> {
        let (key, nonce, aad) = self.select(part);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), plaintext)
            .map_err(|_| SealError)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `ciphertext ‖ tag` in place; returns the plaintext length.
    pub(crate) fn open(&self, part: Part, sealed: &mut [u8]) -> Option<usize> {
        let (key, nonce, aad) = self.select(part);
        key.open_in_place(nonce, Aad::from(aad), sealed)
            .ok()
            .map(|plain| plain.len())
    }

    fn select(&self, part: Part) -> (&LessSafeKey, Nonce, &'static [u8]) {
        match part {
            Part::Manifest => (
                &self.manifest,
                Nonce::assume_unique_for_key([0; NONCE_LEN]),
                MANIFEST_AAD,
            ),
            Part::Segment(index) => (&self.segment, segment_nonce(index), SEGMENT_AAD),
        }
    }
}

fn subkey(context: &str, key: &FileKey) -> LessSafeKey {
    let bytes = Zeroizing::new(blake3::derive_key(context, key.as_bytes()));
    // `UnboundKey::new` fails only on a wrong key length; 32 is right for
    // AES-256. Matching instead of `expect` keeps the lint honest.
    match UnboundKey::new(&AES_256_GCM, bytes.as_slice()) {
        Ok(unbound) => LessSafeKey::new(unbound),
        Err(_) => unreachable!("a 32-byte key is valid for AES-256-GCM"),
    }
}

fn segment_nonce(index: u32) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&u64::from(index).to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_separation() {
        let cipher = FileCipher::new(&FileKey::from_bytes([7; 32]));
        let mut data = b"hello segment".to_vec();
        let tag = cipher.seal(Part::Segment(3), &mut data).unwrap();
        assert_ne!(&data, b"hello segment");
        data.extend_from_slice(&tag);
        // Another index, the manifest key, or another file key all fail.
        assert!(cipher.open(Part::Segment(4), &mut data.clone()).is_none());
        assert!(cipher.open(Part::Manifest, &mut data.clone()).is_none());
        let other = FileCipher::new(&FileKey::from_bytes([8; 32]));
        assert!(other.open(Part::Segment(3), &mut data.clone()).is_none());
        let len = cipher.open(Part::Segment(3), &mut data).unwrap();
        assert_eq!(&data[..len], b"hello segment");
    }

    #[test]
    fn nonce_layout() {
        let nonce = segment_nonce(0x0102_0304);
        assert_eq!(nonce.as_ref(), &[0, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
    }
}
