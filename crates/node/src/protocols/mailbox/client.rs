//! The asking side of `/kith/mailbox/1.0.0`: leaving a sealed letter on the
//! peers closest to a friend's mailbox id, and collecting one's own mail.

use kith_base::letter::{self, Body, mailbox_id};
use kith_net::PeerId;
use tracing::{debug, info, warn};

use crate::friends::db::{Content, FileState, Via};
use crate::friends::{Friends, MailboxError, now_ms};
use crate::protocols::letter_frames::{self as wire, Reason, WireError, tag};

use super::Refusal;
use super::server::{HOLDER_TIMEOUT, MAX_ROUNDS, REPLICAS};

impl Friends {
    /// Leaves a sealed letter for `to` on the peers closest to its mailbox
    /// (this node among them if it is one of the closest). Returns how many
    /// peers took it.
    pub(crate) async fn deposit(&self, to: PeerId, sealed: Vec<u8>) -> Result<usize, MailboxError> {
        let key = mailbox_id(&to);
        let mut candidates = self.net().closest_peers(key).await.unwrap_or_default();
        candidates.retain(|peer| *peer != to && *peer != self.me());
        candidates.push(self.me());
        kith_net::sort_by_distance(&key, &mut candidates);
        let expires = now_ms() + self.settings().mail_expiry.as_millis() as u64;
        let payload = wire::encode_deposit(&key, expires, &sealed);
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
                            .map_err(|Refusal(_, sentence)| DepositFailure::Refused(sentence))
                    } else {
                        tokio::time::timeout(HOLDER_TIMEOUT, deposit_on(&this, peer, &payload))
                            .await
                            .unwrap_or(Err(DepositFailure::TimedOut(HOLDER_TIMEOUT)))
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
                MailboxError::NoPeers
            } else {
                MailboxError::AllRefused { refusals: errors }
            });
        }
        Ok(stored)
    }

    /// Collects this node's mail from the peers that hold it. Returns how
    /// many new letters arrived, and how many holders were asked (0 when
    /// the lookup found nobody: the node is offline or alone).
    pub(crate) async fn collect(&self) -> (usize, usize) {
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
            .map_err(WireError::local)?;
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
async fn deposit_on(friends: &Friends, peer: PeerId, payload: &[u8]) -> Result<(), DepositFailure> {
    let mut stream = friends
        .net()
        .streams()
        .open_stream(peer, wire::MAILBOX)
        .await?;
    wire::write_frame(&mut stream, tag::DEPOSIT, payload).await?;
    let mut buffer = Vec::new();
    wire::expect_frame(&mut stream, HOLDER_TIMEOUT, tag::HELD, "held", &mut buffer).await?;
    Ok(())
}

impl Friends {
    /// Leaves `sealed` for `mailbox` on `peer`, expiring in a day, and
    /// returns how the peer answered (for `crate::Node::probe_deposit`).
    #[cfg(feature = "testing")]
    pub(crate) async fn probe_deposit(
        &self,
        peer: PeerId,
        mailbox: [u8; 32],
        sealed: &[u8],
    ) -> Result<(), WireError> {
        let payload = wire::encode_deposit(&mailbox, now_ms() + 24 * 3600 * 1000, sealed);
        let mut stream = self
            .net()
            .streams()
            .open_stream(peer, wire::MAILBOX)
            .await
            .map_err(WireError::local)?;
        wire::write_frame(&mut stream, tag::DEPOSIT, &payload).await?;
        let mut buffer = Vec::new();
        wire::expect_frame(&mut stream, HOLDER_TIMEOUT, tag::HELD, "held", &mut buffer).await?;
        Ok(())
    }
}

/// Why one peer did not take a letter to hold.
#[derive(Debug, thiserror::Error)]
enum DepositFailure {
    #[error("cannot open a stream: {0}")]
    Open(#[from] kith_net::OpenStreamError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("{0}")]
    Refused(String),
}
