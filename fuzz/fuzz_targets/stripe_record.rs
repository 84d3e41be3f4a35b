//! Fuzzes `StripeRecord::from_bytes`: records come from peers (put
//! requests, share answers) and from the store's record table.
//!
//! Asserts: no panic; a record that parses encodes back to exactly its
//! bytes, and its share ids number n.
#![no_main]

use kith_codec::StripeRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = StripeRecord::from_bytes(data) {
        assert_eq!(record.to_bytes(), data, "stripe records are canonical");
        assert_eq!(record.encoded_len(), data.len());
        assert_eq!(record.share_ids().len(), usize::from(record.n()));
    }
});
