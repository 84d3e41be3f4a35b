//! Mailboxes over `/kith/mailbox/1.0.0`: holding sealed letters for peers
//! that are offline, and collecting one's own.
//!
//! A peer's mailbox lives on the peers closest to its mailbox id
//! ([`kith_base::letter::mailbox_id`]) in the DHT, [`REPLICAS`] of them. A
//! sender deposits the sealed letter on each; the recipient, when it comes
//! online, asks the peers closest to its own mailbox id for its mail,
//! opens and checks each letter, and tells the holders to drop what it
//! took. Holders see only ciphertext, the mailbox id and who deposited it.
//!
//! Bounds on a holder ([`MailLimits`]): letters and bytes per mailbox,
//! letters per depositor, bytes in all, a size limit per letter (the
//! frame's), and an expiry of at most [`MAX_EXPIRY`]; expired mail is
//! swept. Only the recipient's own, authenticated connection can read or
//! empty a mailbox.

use std::time::Duration;

use futures::StreamExt;
use kith_base::letter::{self, Body, mailbox_id};
use kith_net::{Control, PeerId, Stream};
use tracing::{debug, info, warn};

use super::db::{Content, FileState, Held, HeldMail, Via};
use super::direct::Refusal;
use super::wire::{self, Reason, WireError, tag};
use super::{Friends, now_ms};
use crate::slots::StreamSlots;

/// How many peers hold each letter for an offline recipient.
pub(super) const REPLICAS: usize = 3;
/// The longest a holder keeps a letter.
pub(super) const MAX_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most mailbox streams served at once.
const MAX_STREAMS: usize = 64;
/// Most mailbox streams served at once for one peer.
const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a mailbox stream may sit between requests.
const IDLE: Duration = Duration::from_secs(30);
/// Bytes of mail in one answer.
const ANSWER_BYTES: usize = 1 << 20;
/// Collect rounds per holder per check (each up to 64 letters).
const MAX_ROUNDS: usize = 32;
/// How long a deposit or a collection from one holder may take.
const HOLDER_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `/kith/mailbox/1.0.0` until the network stops.
pub(super) async fn serve(friends: Friends, mut control: Control) {
    let mut incoming = match control.accept(wire::MAILBOX) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, "cannot serve mailboxes");
            return;
        }
    };
    let slots = StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER);
    while let Some((peer, mut stream)) = incoming.next().await {
        let Some(slot) = slots.admit(peer) else {
            debug!(%peer, "too many mailbox streams; dropping one");
            continue;
        };
        let friends = friends.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_stream(&friends, peer, &mut stream).await {
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
) -> Result<(), WireError> {
    let mut buffer = Vec::new();
    let own_box = mailbox_id(&peer);
    while let Some(frame) = wire::read_frame(stream, IDLE, &mut buffer).await? {
        match frame {
            tag::DEPOSIT => {
                if buffer.len() < 40 {
                    return Err(WireError::Malformed("a deposit shorter than its header"));
                }
                let mut mailbox = [0u8; 32];
                mailbox.copy_from_slice(&buffer[..32]);
                let mut expires = [0u8; 8];
                expires.copy_from_slice(&buffer[32..40]);
                let sealed = buffer[40..].to_vec();
                match friends
                    .hold_mail(peer, mailbox, u64::from_le_bytes(expires), sealed)
                    .await
                {
                    Ok(held) => {
                        let byte = u8::from(held == Held::Already);
                        wire::write_frame(stream, tag::HELD, &[byte]).await?;
                    }
                    Err(Refusal(reason, sentence)) => {
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
                .map_err(|error| WireError::Io(std::io::Error::other(error)))?
                .map_err(|error| WireError::Io(std::io::Error::other(error)))?;
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
                    .map_err(|error| WireError::Io(std::io::Error::other(error)))?
                    .map_err(|error| WireError::Io(std::io::Error::other(error)))?;
                wire::write_frame(stream, tag::DROPPED, &(dropped as u16).to_le_bytes()).await?;
            }
            got => {
                return Err(WireError::Unexpected {
                    got,
                    expected: "a mailbox request",
                });
            }
        }
    }
    Ok(())
}

impl Friends {
    /// Holds a sealed letter `depositor` left for `mailbox`.
    async fn hold_mail(
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
            Err(refusal) => Err(Refusal(Reason::TooLarge, refusal.to_string())),
        }
    }

    /// Leaves a sealed letter for `to` on the peers closest to its mailbox
    /// (this node among them if it is one of the closest). Returns how many
    /// peers took it.
    pub(super) async fn deposit(&self, to: PeerId, sealed: Vec<u8>) -> Result<usize, String> {
        let key = mailbox_id(&to);
        let mut candidates = self.net().closest_peers(key).await.unwrap_or_default();
        candidates.retain(|peer| *peer != to && *peer != self.me());
        candidates.push(self.me());
        kith_net::sort_by_distance(&key, &mut candidates);
        let expires = now_ms() + self.settings().mail_expiry.as_millis() as u64;
        let mut payload = key.to_vec();
        payload.extend_from_slice(&expires.to_le_bytes());
        payload.extend_from_slice(&sealed);
        // Try the closest first; go further out only to replace refusals.
        let mut stored = 0;
        let mut errors = Vec::new();
        for batch in candidates.chunks(REPLICAS) {
            let results = futures::future::join_all(batch.iter().map(|peer| {
                let this = self.clone();
                let payload = payload.clone();
                let sealed = sealed.clone();
                let peer = *peer;
                async move {
                    let result = if peer == this.me() {
                        this.hold_mail(peer, key, expires, sealed)
                            .await
                            .map(|_| ())
                            .map_err(|Refusal(_, sentence)| sentence)
                    } else {
                        tokio::time::timeout(HOLDER_TIMEOUT, deposit_on(&this, peer, &payload))
                            .await
                            .unwrap_or_else(|_| Err("timed out".into()))
                    };
                    (peer, result)
                }
            }))
            .await;
            for (peer, result) in results {
                match result {
                    Ok(()) => stored += 1,
                    Err(error) => {
                        debug!(%peer, %error, "deposit failed");
                        errors.push(format!("{peer}: {error}"));
                    }
                }
            }
            if stored >= REPLICAS {
                break;
            }
        }
        if stored == 0 {
            return Err(if errors.is_empty() {
                "no peer is known to hold mail (is this node connected?)".into()
            } else {
                format!("no peer would hold the mail ({})", errors.join("; "))
            });
        }
        Ok(stored)
    }

    /// Collects this node's mail from the peers that hold it. Returns how
    /// many new letters arrived, and how many holders were asked (0 when
    /// the lookup found nobody: the node is offline or alone).
    pub(super) async fn collect(&self) -> (usize, usize) {
        let key = mailbox_id(&self.me());
        let holders = match self.net().closest_peers(key).await {
            Ok(peers) => peers,
            Err(error) => {
                debug!(%error, "cannot look up the mailbox's holders");
                return (0, 0);
            }
        };
        let asked = holders.len();
        let results = futures::future::join_all(holders.into_iter().map(|peer| {
            let this = self.clone();
            async move {
                match tokio::time::timeout(HOLDER_TIMEOUT * 3, this.collect_from(peer)).await {
                    Ok(Ok(count)) => count,
                    Ok(Err(error)) => {
                        debug!(%peer, %error, "cannot collect mail");
                        0
                    }
                    Err(_) => {
                        debug!(%peer, "collecting mail timed out");
                        0
                    }
                }
            }
        }))
        .await;
        (results.into_iter().sum(), asked)
    }

    async fn collect_from(&self, peer: PeerId) -> Result<usize, WireError> {
        let mut stream = self
            .net()
            .streams()
            .open_stream(peer, wire::MAILBOX)
            .await
            .map_err(|error| WireError::Io(std::io::Error::other(error.to_string())))?;
        let mut buffer = Vec::new();
        let mut new = 0;
        for _ in 0..MAX_ROUNDS {
            wire::write_frame(&mut stream, tag::COLLECT, &[]).await?;
            wire::expect_frame(&mut stream, HOLDER_TIMEOUT, tag::MAIL, "mail", &mut buffer).await?;
            let items = wire::decode_mail(&buffer)?;
            if items.is_empty() {
                break;
            }
            let mut done = Vec::with_capacity(items.len());
            for sealed in items {
                done.push(*blake3::hash(&sealed).as_bytes());
                if self.take_letter(peer, &sealed).await {
                    new += 1;
                }
            }
            wire::write_frame(&mut stream, tag::DROP, &wire::encode_ids(&done)).await?;
            wire::expect_frame(
                &mut stream,
                HOLDER_TIMEOUT,
                tag::DROPPED,
                "dropped",
                &mut buffer,
            )
            .await?;
        }
        if new > 0 {
            info!(%peer, new, "collected mail");
        }
        Ok(new)
    }

    /// Opens, checks and files one sealed letter from a mailbox. Returns
    /// whether it was new. Letters that fail a check are logged and
    /// dropped all the same: keeping them would not make them valid.
    async fn take_letter(&self, holder: PeerId, sealed: &[u8]) -> bool {
        let letter = match letter::unseal(self.identity(), sealed)
            .and_then(|signed| letter::open_signed(&signed))
        {
            Ok(letter) => letter,
            Err(error) => {
                warn!(%holder, %error, "dropping mail that does not check out");
                return false;
            }
        };
        if let Err(Refusal(reason, sentence)) = self.admissible(&letter).await {
            if reason != Reason::Duplicate {
                warn!(from = %letter.from, %sentence, "dropping mail");
            }
            return false;
        }
        let content = match &letter.body {
            Body::Text(text) => Content::Text { text: text.clone() },
            Body::Stored {
                name,
                size,
                capability,
            } => Content::File {
                name: name.clone(),
                size: *size,
                path: None,
                blake3: None,
                capability: Some(capability.clone()),
                state: FileState::Fetching,
            },
            Body::File { .. } => {
                warn!(from = %letter.from, "dropping a mailed letter that expects a direct stream");
                return false;
            }
        };
        // A mailed file is fetched by the check that collected it
        // (`check_mail`), once for all letters.
        self.record(&letter, Via::Mailbox, content).await.is_ok()
    }
}

/// Deposits one letter on `peer`.
async fn deposit_on(friends: &Friends, peer: PeerId, payload: &[u8]) -> Result<(), String> {
    let mut stream = friends
        .net()
        .streams()
        .open_stream(peer, wire::MAILBOX)
        .await
        .map_err(|error| error.to_string())?;
    wire::write_frame(&mut stream, tag::DEPOSIT, payload)
        .await
        .map_err(|error| error.to_string())?;
    let mut buffer = Vec::new();
    wire::expect_frame(&mut stream, HOLDER_TIMEOUT, tag::HELD, "held", &mut buffer)
        .await
        .map_err(|error| error.to_string())
}
