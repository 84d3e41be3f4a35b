//! The holding side of `/kith/mailbox/1.0.0`: sealed letters kept for
//! peers that are offline, handed to them when they ask.
//!
//! A peer's mailbox lives on the peers closest to its mailbox id
//! ([`kith_base::letter::mailbox_id`]) in the DHT, [`REPLICAS`] of them. A
//! sender deposits the sealed letter on each; the recipient, when it comes
//! online, asks the peers closest to its own mailbox id for its mail,
//! opens and checks each letter, and tells the holders to drop what it
//! took. Holders see only ciphertext, the mailbox id and who deposited it.
//!
//! Bounds on a holder ([`MailLimits`]): letters and bytes per mailbox,
//! letters and bytes per depositor (`mailbox_letters_per_peer`,
//! `mailbox_bytes_per_peer`: refused with [`Reason::PeerLimit`] and
//! counted for `/v1/metrics`; the sender leaves the letter with its next
//! closest peer), bytes in all, a size limit per letter (the
//! frame's), and an expiry of at most [`MAX_EXPIRY`]; expired mail is
//! swept. Only the recipient's own, authenticated connection can read or
//! empty a mailbox.

use std::time::Duration;

use kith_base::letter::{self, mailbox_id};
use kith_net::{Control, PeerId, Stream};
use tracing::{debug, info, warn};

use super::Refusal;
use crate::friends::db::{Held, HeldMail};
use crate::friends::{Friends, now_ms};
use crate::lifecycle::Lifecycle;
use crate::protocols::letter_frames::{self as wire, Reason, WireError, tag};
use crate::slots::{Refused, StreamSlots};

/// How many peers hold each letter for an offline recipient.
pub(crate) const REPLICAS: usize = 3;
/// The longest a holder keeps a letter.
pub(crate) const MAX_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most mailbox streams served at once.
const MAX_STREAMS: usize = 64;
/// Most mailbox streams served at once for one peer.
const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a mailbox stream may sit between requests.
const IDLE: Duration = Duration::from_secs(30);
/// Bytes of mail in one answer.
pub(crate) const ANSWER_BYTES: usize = 1 << 20;
/// Collect rounds per holder per check (each up to 64 letters).
pub(crate) const MAX_ROUNDS: usize = 32;
/// How long a deposit or a collection from one holder may take.
pub(crate) const HOLDER_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `/kith/mailbox/1.0.0` until the node stops.
pub(crate) async fn serve(friends: Friends, mut control: Control, lifecycle: Lifecycle) {
    let mut incoming = match control.accept(wire::MAILBOX) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, "cannot serve mailboxes");
            return;
        }
    };
    let slots = StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER);
    while let Some((peer, mut stream)) = lifecycle.next_incoming(&mut incoming).await {
        let Some(slot) = slots.admit_counted(peer, lifecycle.refusals()) else {
            debug!(%peer, "too many mailbox streams; dropping one");
            continue;
        };
        let friends = friends.clone();
        let stopping = lifecycle.clone();
        lifecycle.spawn_request(async move {
            if let Err(error) = serve_stream(&friends, peer, &mut stream, &stopping).await {
                debug!(%peer, %error, "mailbox stream ended");
            }
            drop(slot);
        });
    }
}

async fn serve_stream(
    friends: &Friends,
    peer: PeerId,
    stream: &mut Stream,
    lifecycle: &Lifecycle,
) -> Result<(), WireError> {
    let mut buffer = Vec::new();
    let own_box = mailbox_id(&peer);
    loop {
        // A stopping node closes the stream between requests.
        let frame = tokio::select! {
            biased;
            () = lifecycle.stopping() => return Ok(()),
            frame = wire::read_frame(stream, IDLE, &mut buffer) => frame?,
        };
        let Some(frame) = frame else { break };
        match frame {
            tag::DEPOSIT => {
                let deposit = wire::decode_deposit(&buffer)?;
                let sealed = deposit.sealed.to_vec();
                match friends
                    .hold_mail(peer, deposit.mailbox, deposit.expires_ms, sealed)
                    .await
                {
                    Ok(held) => {
                        let byte = u8::from(held == Held::Already);
                        wire::write_frame(stream, tag::HELD, &[byte]).await?;
                    }
                    Err(Refusal(reason, sentence)) => {
                        if reason == Reason::PeerLimit {
                            lifecycle.refusals().count(Refused::MailboxPerPeer);
                        }
                        debug!(%peer, %sentence, "refused a letter");
                        wire::write_refusal(stream, tag::MAIL_REFUSED, reason, &sentence).await?;
                    }
                }
            }
            tag::COLLECT => {
                let db = friends.db().clone();
                let items = tokio::task::spawn_blocking(move || {
                    db.mail_for(&own_box, wire::MAX_MAIL_ITEMS, ANSWER_BYTES)
                })
                .await
                .map_err(WireError::local)?
                .map_err(WireError::local)?;
                if !items.is_empty() {
                    debug!(%peer, count = items.len(), "handing over held mail");
                }
                wire::write_frame(stream, tag::MAIL, &wire::encode_mail(&items)).await?;
            }
            tag::DROP => {
                let ids = wire::decode_ids(&buffer)?;
                let db = friends.db().clone();
                let dropped = tokio::task::spawn_blocking(move || db.drop_mail(&own_box, &ids))
                    .await
                    .map_err(WireError::local)?
                    .map_err(WireError::local)?;
                wire::write_frame(stream, tag::DROPPED, &wire::encode_dropped(dropped)).await?;
            }
            got => {
                return Err(WireError::unexpected(got, "a mailbox request"));
            }
        }
    }
    Ok(())
}

impl Friends {
    /// Holds a sealed letter `depositor` left for `mailbox`.
    pub(crate) async fn hold_mail(
        &self,
        depositor: PeerId,
        mailbox: [u8; 32],
        expires_at_ms: u64,
        sealed: Vec<u8>,
    ) -> Result<Held, Refusal> {
        let now = now_ms();
        if expires_at_ms <= now {
            return Err(Refusal(
                Reason::Invalid,
                "the letter has already expired".into(),
            ));
        }
        if sealed.len() > letter::MAX_SEALED_LETTER {
            return Err(Refusal(Reason::TooLarge, "the letter is too large".into()));
        }
        let expires_at_ms = expires_at_ms.min(now + MAX_EXPIRY.as_millis() as u64);
        let id = *blake3::hash(&sealed).as_bytes();
        let mail = HeldMail {
            mailbox,
            depositor: depositor.to_bytes(),
            expires_at_ms,
            sealed,
        };
        let db = self.db().clone();
        let limits = self.settings().mail_limits;
        let held = tokio::task::spawn_blocking(move || db.hold(id, &mail, &limits))
            .await
            .map_err(|error| Refusal(Reason::Internal, error.to_string()))?
            .map_err(|error| Refusal(Reason::Internal, error.to_string()))?;
        match held {
            Ok(held) => {
                if held == Held::New {
                    info!(%depositor, "holding a sealed letter for an offline peer");
                }
                Ok(held)
            }
            Err(
                refusal @ (kith_store::messages::MailRefusal::SenderQuota
                | kith_store::messages::MailRefusal::SenderBytes),
            ) => Err(Refusal(Reason::PeerLimit, refusal.to_string())),
            Err(refusal) => Err(Refusal(Reason::TooLarge, refusal.to_string())),
        }
    }
}
