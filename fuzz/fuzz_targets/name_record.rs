//! Fuzzes name records and names: `NameRecord::from_bytes` reads what
//! peers store and hand out (`/kith/name/1.0.0`) and the store's `names`
//! table; `Name::from_str` reads names from the command line, the API and
//! the gateway's URLs and `Host` headers; `check_label` reads `--label`.
//!
//! Asserts: no panic; a record that verifies is exactly the bytes it was
//! read from and names its own signer; a name that parses prints back to
//! the same name (in lowercase); a label that passes is a DNS label.
#![no_main]

use kith_base::name::{NAME_TEXT_LEN, check_label};
use kith_base::{Name, NameRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = NameRecord::from_bytes(data) {
        assert_eq!(record.as_bytes().as_slice(), data);
        assert_eq!(&data[1..33], record.name().as_bytes());
        assert!(!record.supersedes(&record));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = text.parse::<Name>() {
            let printed = name.to_string();
            assert_eq!(printed.len(), NAME_TEXT_LEN);
            assert_eq!(printed, text.trim().to_ascii_lowercase());
            assert_eq!(printed.parse::<Name>().ok(), Some(name));
        }
        if check_label(text).is_ok() {
            assert!((1..=63).contains(&text.len()));
            assert!(!text.starts_with('-') && !text.ends_with('-'));
        }
    }
});
