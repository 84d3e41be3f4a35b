//! Structure-aware fuzzing of the share protocol's request reader
//! (`/kith/share/1.0.0`) as a serving node sees it: a sequence of request
//! frames (put, get, get-or-where, have, drop, renew or any tag; any
//! payload; a header length that may lie), read with the node's
//! `read_header`, `read_payload` and `parse_request`
//! (`kith_node::fuzzing::share_requests`).
//!
//! Asserts: no panic; no payload longer than its tag's maximum is read;
//! every request that parses writes back to exactly the frame it came
//! from (the request format is canonical).
#![no_main]

#[path = "../common.rs"]
mod common;

use arbitrary::Arbitrary;
use common::{Frame, frames_to_bytes, runtime};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Tag {
    Put,
    Get,
    Have,
    Drop,
    Renew,
    GetOrWhere,
    Other(u8),
}

fn tag_byte(t: Tag) -> u8 {
    match t {
        Tag::Put => 0x01,
        Tag::Get => 0x02,
        Tag::Have => 0x03,
        Tag::Drop => 0x04,
        Tag::Renew => 0x05,
        Tag::GetOrWhere => 0x06,
        Tag::Other(byte) => byte,
    }
}

fuzz_target!(|frames: Vec<Frame<Tag>>| {
    let bytes = frames_to_bytes(&frames, tag_byte);
    let parsed = runtime().block_on(kith_node::fuzzing::share_requests(&bytes));
    // A lying length may split one built frame into several read ones,
    // but none is read without its 5-byte header.
    assert!(parsed * 5 <= bytes.len());
});
