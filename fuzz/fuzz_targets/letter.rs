//! Fuzzes the letter decoders a peer's bytes reach: `Letter::decode`
//! (canonical bytes), `letter::open_signed` (direct stream, after a
//! mailbox unseal) and `letter::unseal` (mail collected from a mailbox,
//! opened with a fixed identity).
//!
//! Asserts: no panic; a letter that decodes encodes back to exactly its
//! bytes (the format is canonical); a signed letter that opens decodes to
//! the same letter from its canonical prefix; an unsealed letter is at most
//! `MAX_SIGNED_LETTER` bytes.
#![no_main]

use std::sync::LazyLock;

use kith_base::{Identity, Letter, letter};
use libfuzzer_sys::fuzz_target;

/// The fixed identity the seeds are sealed to (see `seeds.rs`), derived
/// once: deriving it costs a scalar multiplication per input otherwise.
static IDENTITY: LazyLock<Identity> = LazyLock::new(|| Identity::from_secret([7; 32]));

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = Letter::decode(data) {
        let encoded = decoded.encode();
        assert!(encoded.is_ok(), "a decoded letter encodes: {encoded:?}");
        assert_eq!(encoded.ok().as_deref(), Some(data), "letters are canonical");
    }
    if let Ok(opened) = letter::open_signed(data) {
        let bytes = opened.encode();
        assert!(bytes.as_ref().is_ok_and(|bytes| data.starts_with(bytes)));
    }
    if let Ok(signed) = letter::unseal(&IDENTITY, data) {
        assert!(signed.len() <= letter::MAX_SIGNED_LETTER);
        let _ = letter::open_signed(&signed);
    }
});
