//! Requests sent straight to one peer, past placement, as a greedy peer (or
//! a polite one being measured) would send them: for the load test of the
//! limits per peer (`kith-testnet greedy`, `bench/greedy`). Built only with
//! the `testing` feature.

use kith_base::{ContentId, FileKey};
use kith_codec::{EncodedStripe, Encoder, FileMeta, Params};
use kith_net::PeerId;

use crate::protocols::share::wire::{Answer, OutRequest};

/// Why a probe did not get what it asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The peer refused, saying why (the reason as its protocol names it).
    #[error("refused ({reason}): {message}")]
    Refused {
        /// The refusal's reason, e.g. `PeerShare` or `PeerLimit`.
        reason: String,
        /// The peer's sentence.
        message: String,
    },
    /// The exchange failed, or the answer was not the one expected.
    #[error("{0}")]
    Failed(String),
}

/// A share [`crate::Node::probe_store`] stored on a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeShare {
    /// Its stripe.
    pub stripe: ContentId,
    /// Its index.
    pub index: u8,
    /// Its length in bytes.
    pub len: usize,
}

/// One stripe of `len` random bytes, 1-of-2: its share 0 is about `len`
/// bytes.
fn one_stripe(len: usize) -> Result<EncodedStripe, ProbeError> {
    let failed = |error: &dyn std::fmt::Display| ProbeError::Failed(error.to_string());
    let params = Params::new(1, 2, 1 << 20).map_err(|e| failed(&e))?;
    let mut bytes = vec![0u8; len.min(1 << 20)];
    getrandom::fill(&mut bytes[..]).map_err(|e| failed(&e))?;
    let mut encoder = Encoder::new(
        std::io::Cursor::new(bytes),
        params,
        FileKey::random(),
        FileMeta::none(),
    );
    match encoder.next() {
        Some(Ok(stripe)) => Ok(stripe),
        Some(Err(error)) => Err(failed(&error)),
        None => Err(ProbeError::Failed("nothing to encode".into())),
    }
}

fn answer_error(answer: Answer) -> ProbeError {
    match answer {
        Answer::Refused { reason, message } => ProbeError::Refused {
            reason: format!("{reason:?}"),
            message,
        },
        other => ProbeError::Failed(format!("unexpected answer {other:?}")),
    }
}

impl crate::Node {
    /// Stores one share of about `len` random bytes (at most 1 MiB) on
    /// `peer`, leased by this node, whether or not `peer` is among the
    /// peers placement would choose.
    pub async fn probe_store(&self, peer: PeerId, len: usize) -> Result<ProbeShare, ProbeError> {
        let shares = self.shares().clone();
        let stripe = super::blocking(move || one_stripe(len)).await?;
        let lease = shares
            .leases
            .sign(stripe.id(), *stripe.id().as_bytes(), shares.leases.end());
        let record = stripe.record().to_bytes();
        let share = stripe.share(0);
        let request = OutRequest::Put {
            stripe: stripe.id(),
            index: 0,
            record: &record,
            lease: lease.as_bytes(),
            share,
        };
        match shares.client.call(peer, request, 1).await {
            Ok(Answer::Stored { .. }) => Ok(ProbeShare {
                stripe: stripe.id(),
                index: 0,
                len: share.len(),
            }),
            Ok(answer) => Err(answer_error(answer)),
            Err(error) => Err(ProbeError::Failed(error.to_string())),
        }
    }

    /// Fetches `share` from `peer`; returns its length.
    pub async fn probe_fetch(&self, peer: PeerId, share: ProbeShare) -> Result<usize, ProbeError> {
        let request = OutRequest::Get {
            stripe: share.stripe,
            index: share.index,
            redirect: false,
        };
        match self.shares().client.call(peer, request, share.len).await {
            Ok(Answer::Share { share, .. }) => Ok(share.len()),
            Ok(answer) => Err(answer_error(answer)),
            Err(error) => Err(ProbeError::Failed(error.to_string())),
        }
    }

    /// Leaves a letter of `len` random bytes on `peer` for a made-up
    /// mailbox, as a sender leaves mail for an offline friend.
    pub async fn probe_deposit(&self, peer: PeerId, len: usize) -> Result<(), ProbeError> {
        let mut sealed = vec![0u8; len.min(kith_base::letter::MAX_SEALED_LETTER)];
        let mut mailbox = [0u8; 32];
        getrandom::fill(&mut sealed[..])
            .and_then(|()| getrandom::fill(&mut mailbox))
            .map_err(|error| ProbeError::Failed(error.to_string()))?;
        self.friends_inner()
            .probe_deposit(peer, mailbox, &sealed)
            .await
            .map_err(|error| match error {
                crate::protocols::letter_frames::WireError::Refused { reason, sentence } => {
                    ProbeError::Refused {
                        reason: format!("{reason:?}"),
                        message: sentence,
                    }
                }
                other => ProbeError::Failed(other.to_string()),
            })
    }
}
