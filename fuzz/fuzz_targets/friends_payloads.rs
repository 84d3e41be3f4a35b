//! Fuzzes the friends protocols' payload decoders directly:
//! `protocols::letter_frames::decode_mail` (a mailbox's answer to collect),
//! `decode_ids` (a drop request) and `decode_deposit` (a deposit request),
//! the first byte choosing which.
//!
//! Asserts: no panic, no more than `MAX_MAIL_ITEMS`/`MAX_DROP` items, no
//! sealed letter over its limit; what decodes encodes back to exactly its
//! bytes.
#![no_main]

use kith_base::letter::MAX_SEALED_LETTER;
use kith_node::protocols::letter_frames::{
    MAX_DROP, MAX_MAIL_ITEMS, decode_deposit, decode_ids, decode_mail, encode_deposit, encode_ids,
    encode_mail,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    if which % 3 == 2 {
        if let Ok(deposit) = decode_deposit(payload) {
            assert!(deposit.sealed.len() <= MAX_SEALED_LETTER);
            assert_eq!(
                encode_deposit(&deposit.mailbox, deposit.expires_ms, deposit.sealed),
                payload
            );
        }
    } else if which % 3 == 0 {
        if let Ok(items) = decode_mail(payload) {
            assert!(items.len() <= MAX_MAIL_ITEMS);
            let held: Vec<_> = items
                .into_iter()
                .map(|sealed| ([0u8; 32], sealed))
                .collect();
            assert_eq!(encode_mail(&held), payload);
        }
    } else if let Ok(ids) = decode_ids(payload) {
        assert!(ids.len() <= MAX_DROP);
        assert_eq!(encode_ids(&ids), payload);
    }
});
