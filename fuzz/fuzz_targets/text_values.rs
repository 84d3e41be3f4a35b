//! Fuzzes the small text parsers users and the API feed: `ContentId`
//! (hex/base58 id), `ByteSize` (`10 GiB`), `Params` (`k-of-n` shares text).
//!
//! Asserts: no panic; a content id and params print and parse back equal;
//! a byte size that parses prints something that parses.
#![no_main]

use kith_base::{ByteSize, ContentId};
use kith_codec::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(id) = text.parse::<ContentId>() {
        assert_eq!(id.to_string().parse::<ContentId>().ok(), Some(id));
    }
    if let Ok(size) = text.parse::<ByteSize>() {
        let _ = size.to_string();
    }
    if let Ok(params) = text.parse::<Params>() {
        assert_eq!(params.to_string().parse::<Params>().ok(), Some(params));
    }
});
