//! Fuzzes the node's text files, the first byte choosing which: the
//! address book (`AddressBook::parse`), the peer table
//! (`peer_table::parse`) and `config.toml` (`toml` into `ConfigFile`, then
//! `NodeConfig::resolve`).
//!
//! Asserts: no panic; an address book that parses renders text that parses
//! to the same friends; the peer table counts every line as a pair or as
//! bad.
#![no_main]

use kith_node::{AddressBook, ConfigFile, Flags, NodeConfig, peer_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(book) = AddressBook::parse(text) {
                let again = AddressBook::parse(&book.render());
                let friends: Vec<_> = book.iter().collect();
                assert!(again.is_ok_and(|again| again.iter().collect::<Vec<_>>() == friends));
            }
        }
        1 => {
            let (pairs, bad) = peer_table::parse(text);
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .count();
            assert!(pairs.len() + bad <= lines);
        }
        _ => {
            if let Ok(file) = toml::from_str::<ConfigFile>(text) {
                let _ = NodeConfig::resolve(&file, &Flags::default());
            }
        }
    }
});
