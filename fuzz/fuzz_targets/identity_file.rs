//! Fuzzes `Identity::from_file_text`, the reader of the identity file in
//! the data folder.
//!
//! Asserts: no panic; an identity that reads writes a file that reads back
//! to the same peer id and key.
#![no_main]

use kith_base::Identity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(identity) = Identity::from_file_text(text) {
        let again = Identity::from_file_text(&identity.to_file_text());
        assert!(
            again.is_ok_and(|again| again.peer_id() == identity.peer_id()
                && again.public_key() == identity.public_key())
        );
    }
});
