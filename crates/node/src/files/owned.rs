//! The files this node stored on the network, so that it can renew their
//! leases while it runs: a table of the store's database
//! (`kith_store::owned`; rows hold lease ends and stripe ids, never a file
//! key).
//!
//! Until schema 2 of the store it was `DIR/owned.redb`; a data folder that
//! still has one gets its rows imported at start
//! ([`crate::side_db::import_or_move_aside`]).

pub use kith_store::owned::LEGACY_FILE as OWNED_FILE;
pub(crate) use kith_store::owned::{OwnedFile, OwnedFiles};
