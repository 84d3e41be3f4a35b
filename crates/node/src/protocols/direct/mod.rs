//! `/kith/direct/1.0.0`: one signed letter per stream, straight from its
//! author to a reachable recipient (a text, or a file that follows it).
//!
//! - the frames are in [`super::letter_frames`] (shared with the mailbox);
//! - `server`: receiving a letter, checking it, and storing it in the inbox;
//! - `client`: the sender's side of one letter.

pub(crate) mod client;
pub(crate) mod server;

pub use super::letter_frames::DIRECT as PROTOCOL;
pub(crate) use server::Refusal;
