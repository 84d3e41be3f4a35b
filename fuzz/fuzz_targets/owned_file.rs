//! Fuzzes the owner's file-row decoder (`OwnedFile::decode` in
//! `files/owned.rs`, read from `owned.redb`).
//!
//! Asserts: no panic and no allocation beyond the row's own size (a count
//! of 2^32 groups must not be believed); a row that decodes encodes back to
//! exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kith_node::fuzzing::owned_file(data);
});
