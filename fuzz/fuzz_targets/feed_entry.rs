//! Fuzzes feed entries and bodies: `Entry::from_bytes` reads what peers
//! push and answer (`/kith/feed/1.0.0`) and the store's `feed_entries`
//! table; `Body::decode` reads the body inside; `decode_entries` reads a
//! fetch answer's batch; `decode_reply` a reply announcement.
//!
//! Asserts: no panic; an entry that verifies is exactly the bytes it was
//! read from (head and body), keeps its id without its body and as the id
//! of its stored bytes, and a body that decodes encodes back to the same
//! bytes; a reply announcement splits into its parts and nothing else.
#![no_main]

use kith_base::feed::{Body, Entry, EntryId, HEAD_LEN};
use kith_node::protocols::feeds::wire::{decode_entries, decode_reply, encode_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::from_bytes(data) {
        assert_eq!(entry.to_bytes(), data);
        let bare = entry.without_body();
        assert_eq!(bare.id(), entry.id());
        assert_eq!(bare.to_bytes(), &data[..HEAD_LEN]);
        assert_eq!(EntryId::of_stored(data), Some(entry.id()));
    }
    if let Ok(body) = Body::decode(data) {
        assert_eq!(body.encode().as_deref(), Ok(data));
    }
    if let Ok(entries) = decode_entries(data) {
        assert!(entries.len() * 4 + 2 <= data.len());
    }
    if let Ok((author, parent, entry)) = decode_reply(data) {
        assert_eq!(encode_reply(&author, &parent, entry), data);
    }
});
