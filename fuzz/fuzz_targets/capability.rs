//! Fuzzes the capability decoders a user's pasted text and a letter's
//! capability field reach: `Capability::from_str` (`kith:…`),
//! `CapabilityPath::from_str` (`kith:…/a/b`) and `Capability::from_bytes`.
//!
//! Asserts: no panic; a capability that parses prints and parses back to
//! itself, and its binary form is exactly the bytes it was read from.
#![no_main]

use kith_base::{Capability, CapabilityPath};
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
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(target) = text.parse::<CapabilityPath>()
    {
        // The capability part reads alone, and the path has no part that
        // could climb out of a folder.
        let capability_text = text.trim().split('/').next().unwrap_or_default();
        assert_eq!(capability_text.parse::<Capability>().ok(), Some(target.capability));
        assert!(target.path.iter().all(|name| !name.is_empty() && name != ".." && name != "."));
    }
});
