//! The checks and the bookkeeping every incoming letter goes through,
//! whichever protocol brought it (direct or mailbox).

use kith_base::letter::Letter;

use super::db::{Content, InboxEntry, Via};
use super::{Friends, now_ms};
use crate::protocols::direct::Refusal;
use crate::protocols::letter_frames::Reason;

impl Friends {
    /// The checks every letter passes, however it came: addressed to this
    /// node, from an accepted author, not seen before.
    pub(crate) async fn admissible(&self, letter: &Letter) -> Result<(), Refusal> {
        if letter.to != self.me() {
            return Err(Refusal(
                Reason::Forged,
                format!("the letter is addressed to {}, not to this node", letter.to),
            ));
        }
        if self.settings().friends_only && !self.is_friend(&letter.from) {
            return Err(Refusal(
                Reason::NotAFriend,
                "the recipient accepts letters from friends only".into(),
            ));
        }
        let db = self.db().clone();
        let (author, seq) = (letter.from.to_bytes(), letter.seq);
        let seen = tokio::task::spawn_blocking(move || db.seen(&author, seq))
            .await
            .map_err(|error| Refusal(Reason::Internal, error.to_string()))?
            .map_err(|error| Refusal(Reason::Internal, error.to_string()))?;
        if seen {
            return Err(Refusal(
                Reason::Duplicate,
                format!(
                    "letter {} from {} was already delivered; replays are ignored",
                    letter.seq, letter.from
                ),
            ));
        }
        Ok(())
    }

    /// Stores an admitted letter in the inbox (once).
    pub(crate) async fn record(
        &self,
        letter: &Letter,
        via: Via,
        content: Content,
    ) -> Result<(), Refusal> {
        let entry = InboxEntry {
            arrival: 0,
            from: letter.from.to_string(),
            sent_at_ms: letter.sent_at_ms,
            seq: letter.seq,
            received_at_ms: now_ms(),
            via,
            content,
        };
        match self.store_entry(letter.from, entry).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Refusal(
                Reason::Duplicate,
                format!("letter {} was already delivered", letter.seq),
            )),
            Err(error) => Err(Refusal(Reason::Internal, error.to_string())),
        }
    }
}
