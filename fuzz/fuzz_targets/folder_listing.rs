//! Fuzzes `Folder::from_bytes`, the parser of a folder listing's plaintext
//! after decryption (whoever shares a folder capability wrote those bytes),
//! and the path parser a user's `kith:…/a/b` text reaches.
//!
//! Asserts: no panic; a listing that parses encodes back to exactly its
//! bytes; its entries are sorted, unique, and every name is a plain name
//! (no separator, no `.` or `..`), so nothing in it can climb out of a
//! folder; every entry is found by its name; a path that parses has no
//! empty, `.` or `..` part.
#![no_main]

use kith_base::capability::split_path;
use kith_codec::Folder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(folder) = Folder::from_bytes(data) {
        assert_eq!(folder.to_bytes(), data, "listings are canonical");
        for pair in folder.entries().windows(2) {
            assert!(pair[0].name().as_bytes() < pair[1].name().as_bytes());
        }
        for entry in folder.entries() {
            let name = entry.name();
            assert!(!name.is_empty() && name != "." && name != "..");
            assert!(!name.contains(['/', '\\']));
            assert_eq!(folder.get(name), Some(entry));
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(names) = split_path(text)
    {
        for name in names {
            assert!(!name.is_empty() && name != "." && name != ".." && !name.contains('/'));
        }
    }
});
