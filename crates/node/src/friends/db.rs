//! This node's inbox, the sequence numbers it has seen and given out, and
//! the sealed mail it holds for other peers: tables of the store's database
//! (`kith_store::messages`), named here as the rest of `friends` uses them.
//!
//! Until schema 2 of the store they were `DIR/messages.redb`; a data folder
//! that still has one gets its rows imported at start
//! (`side_db`).

pub use kith_store::StoreError as DbError;
pub use kith_store::messages::{
    Content, FileState, Held, HeldLetter, HeldMail, InboxEntry, LEGACY_FILE as MESSAGES_FILE,
    MailLimits, MailRefusal, Messages as MessageDb, SEQ_FILE, Via,
};
