//! Fuzzes the store's share-row decoder (`ShareInfo::decode`, the value of
//! the shares table on disk) through `kith_store::fuzzing::share_row`.
//!
//! Asserts: no panic; a row that decodes round-trips (decode, encode,
//! decode gives the same share info).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kith_store::fuzzing::share_row(data);
});
