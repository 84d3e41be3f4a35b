//! Fuzzes the capability decoders a user's pasted text and a letter's
//! capability field reach: `Capability::from_str` (`kith:…`) and
//! `Capability::from_bytes`.
//!
//! Asserts: no panic; a capability that parses prints and parses back to
//! itself, and its binary form is exactly the bytes it was read from.
#![no_main]

use kith_base::Capability;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cap) = Capability::from_bytes(data) {
        assert_eq!(cap.to_bytes().as_slice(), data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cap) = text.parse::<Capability>()
    {
        let printed = cap.to_string();
        assert_eq!(printed, text.trim(), "capability text is canonical");
        assert_eq!(printed.parse::<Capability>().ok(), Some(cap));
    }
});
