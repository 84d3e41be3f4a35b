//! Fuzzes `Manifest::from_bytes`, the parser of a manifest's plaintext
//! after decryption (the bytes are whatever the uploader encrypted, so
//! anyone who shares a capability controls them).
//!
//! Asserts: no panic; a manifest that parses encodes back to exactly its
//! bytes; every segment has a length and the params agree with the count.
#![no_main]

use kith_codec::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_bytes(data) {
        assert_eq!(manifest.to_bytes(), data, "manifests are canonical");
        assert_eq!(manifest.encoded_len(), data.len());
        for index in 0..manifest.stripes().len() as u32 {
            let _ = manifest.segment_len(index);
        }
    }
});
