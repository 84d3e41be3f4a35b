//! Fuzzes the share protocol's answer reader (`read_answer` →
//! `parse_answer`), what an asking node reads from a holder, on raw bytes
//! (`kith_node::fuzzing::share_answers`).
//!
//! Asserts: no panic; every answer that parses writes and reads back equal
//! (a refusal's message may come back cut to its maximum).
#![no_main]

#[path = "../common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = common::runtime().block_on(kith_node::fuzzing::share_answers(data));
});
