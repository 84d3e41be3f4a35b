//! Fuzzes `Lease::from_bytes`: leases come from peers (put and renew
//! requests, share answers) and from the store's lease table on disk.
//!
//! Asserts: no panic; a lease that verifies is exactly the bytes it was
//! read from.
#![no_main]

use kith_base::Lease;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lease) = Lease::from_bytes(data) {
        assert_eq!(lease.as_bytes().as_slice(), data);
    }
});
