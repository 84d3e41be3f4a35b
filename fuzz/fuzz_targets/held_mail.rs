//! Fuzzes the mailbox's held-mail row decoder (`HeldMail::decode` in
//! `friends/db.rs`, read from the mailbox database on disk).
//!
//! Asserts: no panic; a row that decodes encodes back to exactly itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kith_node::fuzzing::held_mail(data);
});
