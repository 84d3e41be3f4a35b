//! `/kith/mailbox/1.0.0`: sealed letters left with the peers closest to an
//! offline friend's mailbox id, and collected by that friend later.
//!
//! - the frames are in [`super::letter_frames`] (shared with direct);
//! - `server`: holding mail for others, within limits, and handing a
//!   peer its own;
//! - `client`: depositing a letter, collecting one's own mail.

pub(crate) mod client;
pub(crate) mod server;

pub(crate) use super::direct::Refusal;
pub use super::letter_frames::MAILBOX as PROTOCOL;
