//! The protocols this node speaks with its peers, one room each.
//!
//! | room | protocol id | what it carries |
//! |---|---|---|
//! | [`share`] | `/kith/share/1.0.0` | shares of stored files: put, get, have, drop, renew |
//! | [`direct`] | `/kith/direct/1.0.0` | one signed letter (a message or a file) straight to a friend |
//! | [`mailbox`] | `/kith/mailbox/1.0.0` | sealed letters left with peers for an offline friend |
//! | [`names`] | `/kith/name/1.0.0` | signed name records, kept on the peers closest to a name |
//! | [`feeds`] | `/kith/feed/1.0.0` | feed entries: fetched after a sequence, pushed live to subscribers |
//!
//! A room has `wire` (its messages and their size limits, and the protocol
//! id), `server` (what this node answers; it trusts nothing it reads) and
//! `client` (what this node asks of peers). The operations that use a
//! protocol (`crate::files`, `crate::friends`) live outside the rooms and
//! call into them; a room never calls back up into an operation.
//!
//! To add a protocol, copy the smallest room ([`mailbox`]) and register its
//! server where [`crate::Node::start`] spawns the others.

pub mod direct;
pub mod feeds;
pub mod letter_frames;
pub mod mailbox;
pub mod names;
pub mod share;

/// Every protocol id this node serves, for `kith id` and the docs.
pub const ALL: [kith_net::StreamProtocol; 5] = [
    share::PROTOCOL,
    direct::PROTOCOL,
    mailbox::PROTOCOL,
    names::PROTOCOL,
    feeds::PROTOCOL,
];
