//! Fuzzes feed entries and bodies: `Entry::from_bytes` reads what peers
//! push and answer (`/kith/feed/1.0.0`) and the store's `feed_entries`
//! table; `Body::decode` reads the body inside; `decode_entries` reads a
//! fetch answer's batch.
//!
//! Asserts: no panic; an entry that verifies is exactly the bytes it was
//! read from (head and body), keeps its id without its body, and a body
//! that decodes encodes back to the same bytes.
#![no_main]

use kith_base::feed::{Body, Entry, HEAD_LEN};
use kith_node::protocols::feeds::wire::decode_entries;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::from_bytes(data) {
        assert_eq!(entry.to_bytes(), data);
        let bare = entry.without_body();
        assert_eq!(bare.id(), entry.id());
        assert_eq!(bare.to_bytes(), &data[..HEAD_LEN]);
    }
    if let Ok(body) = Body::decode(data) {
        assert_eq!(body.encode().as_deref(), Ok(data));
    }
    if let Ok(entries) = decode_entries(data) {
        assert!(entries.len() * 4 + 2 <= data.len());
    }
});
