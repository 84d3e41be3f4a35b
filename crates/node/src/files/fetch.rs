//! Fetching one stripe: k verified shares from its holders, asked in
//! parallel — data shares first, this node's own first, peers that served
//! bad bytes or did not answer in time last. Get and repair both fetch
//! through a [`StripeFetcher`]; it owns nothing of either.
//!
//! Every share is checked against the stripe record, itself checked
//! against the stripe id. A share that is missing, late or bad is replaced
//! by another (index, peer) at once; a peer that served a bad share gets a
//! strike, is reported, and is asked last from then on. With swarming, a
//! holder may send this node to a peer that got the share from it moments
//! ago (see [`super::swarm`]); a redirect that leads nowhere goes back to
//! the holder without redirect.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kith_base::{ContentId, Lease};
use kith_codec::StripeRecord;
use kith_net::PeerId;
use kith_store::Store;
use tracing::{debug, warn};

use super::BadPeers;
use super::get::{CorruptShareReport, Detected, GetError};
use super::swarm::{HeldShare, REDIRECTED_ANSWER_WAIT, Swarm};
use super::upkeep::counters::{Counters, bump};
use crate::protocols::share::client::{CallError, ShareClient};
use crate::protocols::share::server::LocalShare;
use crate::protocols::share::wire::{Answer, OutRequest, WireError};

/// A failed redirect that took this long counts against the holder and the
/// peer it named (see [`super::swarm`]'s breakers).
const SLOW_REDIRECT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a holder asked directly may take to start answering a get
/// (the bytes then get a time scaled by their size). An honest holder
/// answers from memory or disk at once, or after waiting up to 8 s for a
/// share it is fetching itself; one that hangs is given up on after this
/// and asked last for [`SLOW_PEER_PAUSE`].
const ANSWER_START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a holder that did not start answering in time is asked last.
pub(super) const SLOW_PEER_PAUSE: std::time::Duration = std::time::Duration::from_secs(600);
/// Rounds in which a stripe asks again the holders it could not reach
/// (a dial that failed, a connection closed under the request) before it
/// counts as lost: in a busy network connections come and go, and a
/// holder unreachable for a moment is not gone.
const UNREACHED_ROUNDS: u32 = 2;
/// The pause before such a round; the second waits twice as long.
const UNREACHED_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// A share as one peer served it (not yet checked).
struct Served {
    record: Vec<u8>,
    lease: Option<Vec<u8>>,
    share: Bytes,
    /// Who sent it: the holder asked, or the peer it sent this node to.
    from: PeerId,
    /// Bytes the frame it came in keeps alive (`share` is a view into it).
    retained: usize,
}

/// What one get exchange brought other than a share.
enum Asked {
    /// "Ask that peer instead."
    Elsewhere(PeerId),
    /// The stream broke after the request went out (or the peer closed it
    /// without an answer): what a node from before swarming does with a
    /// "get, or say where".
    Dropped(FetchFailure),
    /// Any other failure.
    Failed(FetchFailure),
}

impl Asked {
    fn into_failure(self) -> FetchFailure {
        match self {
            Self::Elsewhere(other) => {
                FetchFailure::Other(format!("sent to {other} when no redirect was asked for"))
            }
            Self::Dropped(failure) | Self::Failed(failure) => failure,
        }
    }
}

impl std::fmt::Debug for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Elsewhere(other) => write!(f, "sent on to {other}"),
            Self::Dropped(FetchFailure::Damaged) | Self::Failed(FetchFailure::Damaged) => {
                f.write_str("damaged")
            }
            Self::Dropped(
                FetchFailure::Other(reason)
                | FetchFailure::Late(reason)
                | FetchFailure::Unreached(reason),
            )
            | Self::Failed(
                FetchFailure::Other(reason)
                | FetchFailure::Late(reason)
                | FetchFailure::Unreached(reason),
            ) => f.write_str(reason),
        }
    }
}

/// Reads the answer to a get sent to `peer` (with or without `redirect`).
fn served_or_why(
    peer: PeerId,
    answer: Result<Answer, CallError>,
    redirect: bool,
) -> Result<Served, Asked> {
    let other = |reason: String| Asked::Failed(FetchFailure::Other(reason));
    match answer {
        Ok(Answer::Share {
            record,
            lease,
            share,
        }) => Ok(Served {
            retained: share.len() + record.len() + lease.as_ref().map_or(0, Vec::len) + 3,
            record,
            lease,
            share,
            from: peer,
        }),
        Ok(Answer::Elsewhere(other)) if redirect => Err(Asked::Elsewhere(other)),
        Ok(Answer::NotFound) => Err(other("not found".into())),
        Ok(Answer::Damaged) => Err(Asked::Failed(FetchFailure::Damaged)),
        Ok(answer) => Err(other(format!("unexpected answer {answer:?}"))),
        Err(error) if matches!(&error, CallError::Wire(wire) if wire.is_gone()) => {
            Err(Asked::Dropped(FetchFailure::Unreached(error.to_string())))
        }
        Err(error @ (CallError::Open(_) | CallError::OpenTimeout(_))) => {
            Err(Asked::Failed(FetchFailure::Unreached(error.to_string())))
        }
        Err(error @ CallError::Wire(WireError::Timeout(_))) => {
            Err(Asked::Failed(FetchFailure::Late(error.to_string())))
        }
        Err(error) => Err(other(error.to_string())),
    }
}

/// Why a share could not be fetched from one holder.
enum FetchFailure {
    /// The holder found it damaged and dropped it.
    Damaged,
    /// The holder did not start answering in time.
    Late(String),
    /// The holder could not be reached, or the connection broke under the
    /// request: worth asking again a little later.
    Unreached(String),
    /// Anything else: not held, unreachable, unexpected answer.
    Other(String),
}

fn report_bad(
    report: &Mutex<ReportState>,
    peer: PeerId,
    stripe: ContentId,
    index: u8,
    detected: Detected,
) {
    report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .corrupt
        .push(CorruptShareReport {
            peer,
            stripe,
            index,
            detected,
        });
}

/// Fetches stripes for get and repair: the share client, the swarm's
/// redirects and the record of bad and slow peers. Cheap to clone. Built
/// by [`super::assemble`], which fills in the fields.
#[derive(Clone, Debug)]
pub(crate) struct StripeFetcher {
    pub(super) me: PeerId,
    pub(super) store: Store,
    pub(super) client: ShareClient,
    pub(super) bad: BadPeers,
    pub(super) swarm: Swarm,
    pub(super) counters: Arc<Counters>,
}

/// What a fetch met on its way: bad shares, the peers that served good
/// ones, how many.
#[derive(Debug, Default)]
pub(crate) struct ReportState {
    pub(super) corrupt: Vec<CorruptShareReport>,
    pub(super) peers: HashSet<PeerId>,
    pub(super) shares: usize,
}

impl StripeFetcher {
    /// Fetches k verified shares of `stripe` from `holders` ((index, peer)
    /// pairs). `k` is `None` when not known yet (the manifest stripe): then
    /// one share is fetched first, and its record tells.
    pub(crate) async fn fetch_stripe(
        &self,
        stripe: ContentId,
        holders: &[(u8, PeerId)],
        k: Option<usize>,
        report: &Mutex<ReportState>,
    ) -> Result<Fetched, GetError> {
        let mut options = self.order(stripe, holders, k);
        let mut record: Option<StripeRecord> = None;
        // The record's and lease's bytes as checked, for passing shares on.
        let mut record_bytes: Option<Bytes> = None;
        let mut lease_bytes: Option<Bytes> = None;
        let mut good: BTreeMap<u8, Bytes> = BTreeMap::new();
        let mut lease: Option<Lease> = None;
        let mut asking: HashSet<u8> = HashSet::new();
        // Holders to ask without redirect: where a redirect led to bad bytes.
        let mut direct: HashSet<(u8, PeerId)> = HashSet::new();
        // Holders not reached this round, asked again in the next.
        let mut unreached: Vec<(u8, PeerId)> = Vec::new();
        let mut rounds = 0;
        let mut pending = FuturesUnordered::new();
        loop {
            let want = record
                .as_ref()
                .map(|r| usize::from(r.k()))
                .or(k)
                .unwrap_or(1);
            if record.is_some() && good.len() >= want {
                break;
            }
            while good.len() + asking.len() < want {
                let Some(at) = options
                    .iter()
                    .position(|(index, _)| !good.contains_key(index) && !asking.contains(index))
                else {
                    break;
                };
                let (index, peer) = options.remove(at);
                asking.insert(index);
                let redirect =
                    !direct.contains(&(index, peer)) && self.swarm.takes_redirects_from(&peer);
                let guard = self.swarm.begin((stripe, index));
                let this = self.clone();
                pending.push(async move {
                    let result = this.fetch_share(peer, stripe, index, redirect).await;
                    (index, peer, result, guard)
                });
            }
            let Some((index, peer, result, guard)) = pending.next().await else {
                unreached.retain(|(index, _)| !good.contains_key(index));
                if rounds < UNREACHED_ROUNDS && !unreached.is_empty() {
                    rounds += 1;
                    debug!(%stripe, holders = unreached.len(), rounds, "asking unreached holders again");
                    tokio::time::sleep(UNREACHED_PAUSE * rounds).await;
                    options.append(&mut unreached);
                    continue;
                }
                debug!(
                    me = %self.me,
                    %stripe,
                    found = good.len(),
                    holders = ?holders,
                    "stripe lost with these holders"
                );
                return Err(GetError::Lost {
                    stripe,
                    found: good.len(),
                    needed: want,
                    holders: holders.len(),
                });
            };
            asking.remove(&index);
            let served = match result {
                Ok(served) => served,
                Err(FetchFailure::Damaged) => {
                    warn!(%peer, %stripe, index, "the holder found its share damaged on disk");
                    report_bad(report, peer, stripe, index, Detected::OnHolderDisk);
                    continue;
                }
                Err(FetchFailure::Late(reason)) => {
                    debug!(me = %self.me, %peer, %stripe, index, %reason, "holder too slow; asking it last for a while");
                    self.bad.slow(peer);
                    continue;
                }
                Err(FetchFailure::Unreached(reason)) => {
                    debug!(me = %self.me, %peer, %stripe, index, %reason, "holder not reached; asking it again later");
                    unreached.push((index, peer));
                    continue;
                }
                Err(FetchFailure::Other(reason)) => {
                    debug!(me = %self.me, %peer, %stripe, index, %reason, "share not fetched");
                    continue;
                }
            };
            let from = served.from;
            // Bad bytes from a peer this node was sent to: strike that peer
            // and ask the holder again, straight.
            let retry_direct = |options: &mut Vec<(u8, PeerId)>, direct: &mut HashSet<_>| {
                if from != peer {
                    self.redirect_failed(peer, from, true);
                    direct.insert((index, peer));
                    options.insert(0, (index, peer));
                }
            };
            if record.is_none() {
                match StripeRecord::from_bytes(&served.record) {
                    Ok(parsed) if parsed.id() == stripe => {
                        record = Some(parsed);
                        record_bytes = Some(Bytes::from(served.record));
                    }
                    _ => {
                        self.strike(report, from, stripe, index);
                        retry_direct(&mut options, &mut direct);
                        continue;
                    }
                }
            }
            let Some(checked) = record.as_ref() else {
                continue;
            };
            if checked
                .verify_share(usize::from(index), &served.share)
                .is_ok()
            {
                if lease.is_none()
                    && let Some(bytes) = served.lease
                    && let Ok(valid) = super::upkeep::leases::check_lease(&bytes, Some(stripe))
                {
                    lease = Some(valid);
                    lease_bytes = Some(Bytes::from(bytes));
                }
                if from != peer {
                    self.swarm.redirect_worked(&peer, &from);
                }
                if let (Some(guard), Some(record_bytes)) = (guard, &record_bytes) {
                    guard.done(HeldShare {
                        record: record_bytes.clone(),
                        lease: lease_bytes.clone(),
                        share: served.share.clone(),
                        retained: served.retained,
                    });
                }
                good.insert(index, served.share);
                let mut state = report.lock().unwrap_or_else(|e| e.into_inner());
                state.peers.insert(from);
                state.shares += 1;
            } else {
                self.strike(report, from, stripe, index);
                retry_direct(&mut options, &mut direct);
            }
        }
        let Some(record) = record else {
            return Err(GetError::Internal("no record".into()));
        };
        let mut shares: Vec<Option<Bytes>> = vec![None; usize::from(record.n())];
        for (index, share) in good {
            if let Some(slot) = shares.get_mut(usize::from(index)) {
                *slot = Some(share);
            }
        }
        Ok(Fetched {
            record,
            shares,
            lease,
        })
    }

    /// Orders the (index, peer) options of a stripe: data shares (index <
    /// k) before recovery shares, since k data shares decode by copying
    /// while any recovery share costs a Reed–Solomon solve (≈ 7× the CPU of
    /// fetching the share over the network here); among those, this node's
    /// own first (no network), then by index; peers that served bad data
    /// last; among equals, rotated by the stripe so that consecutive stripes
    /// draw from different peers. `k` unknown (the manifest): by index.
    fn order(
        &self,
        stripe: ContentId,
        holders: &[(u8, PeerId)],
        k: Option<usize>,
    ) -> Vec<(u8, PeerId)> {
        let spin = stripe.as_bytes()[0] as usize;
        let mut options: Vec<(usize, (u8, PeerId))> = holders
            .iter()
            .enumerate()
            .map(|(at, pair)| ((at + spin) % holders.len().max(1), *pair))
            .collect();
        options.sort_by_key(|(spun, (index, peer))| {
            let recovery = k.is_some_and(|k| usize::from(*index) >= k);
            (
                self.bad.strikes(peer),
                self.bad.is_slow(peer),
                recovery,
                *peer != self.me,
                *index,
                *spun,
            )
        });
        options.into_iter().map(|(_, pair)| pair).collect()
    }

    fn strike(&self, report: &Mutex<ReportState>, peer: PeerId, stripe: ContentId, index: u8) {
        warn!(%peer, %stripe, index, "a peer served a share that failed verification; avoiding it");
        self.bad.strike(peer);
        self.client.forget(&peer);
        report_bad(report, peer, stripe, index, Detected::ByVerification);
    }

    /// One share and its record, from a peer or from this node's store.
    /// With `redirect`, a holder may send this node to a peer that got the
    /// share from it moments ago; if that peer does not have it after all,
    /// the holder is asked again without redirect.
    async fn fetch_share(
        &self,
        peer: PeerId,
        stripe: ContentId,
        index: u8,
        redirect: bool,
    ) -> Result<Served, FetchFailure> {
        if peer == self.me {
            return match super::on_blocking_pool(&self.store, move |store| {
                crate::protocols::share::server::local_share(store, stripe, index)
            })
            .await
            {
                LocalShare::Found {
                    record,
                    lease,
                    share,
                } => Ok(Served {
                    record,
                    lease,
                    retained: share.len(),
                    share: Bytes::from(share),
                    from: peer,
                }),
                LocalShare::Missing => Err(FetchFailure::Other("no longer held here".into())),
                LocalShare::Damaged => Err(FetchFailure::Damaged),
            };
        }
        let straight = || async {
            self.ask_share(peer, (stripe, index), false, ANSWER_START_WAIT)
                .await
                .map_err(Asked::into_failure)
        };
        let elsewhere = match self
            .ask_share(peer, (stripe, index), redirect, ANSWER_START_WAIT)
            .await
        {
            Ok(served) => return Ok(served),
            Err(Asked::Elsewhere(other))
                if other != self.me && other != peer && self.swarm.follows_redirects_to(&other) =>
            {
                other
            }
            Err(Asked::Elsewhere(_)) => return straight().await,
            // A node from before swarming drops a stream that asks with
            // "get, or say where": ask it the old way.
            Err(Asked::Dropped(_)) if redirect => return straight().await,
            Err(Asked::Dropped(failure) | Asked::Failed(failure)) => return Err(failure),
        };
        let asked = std::time::Instant::now();
        match self
            .ask_share(elsewhere, (stripe, index), false, REDIRECTED_ANSWER_WAIT)
            .await
        {
            Ok(served) => Ok(served),
            Err(why) => {
                debug!(%peer, %elsewhere, %stripe, index, ?why, "sent elsewhere in vain; asking the holder");
                self.redirect_failed(peer, elsewhere, asked.elapsed() >= SLOW_REDIRECT);
                straight().await
            }
        }
    }

    /// A redirect from `holder` to `target` led nowhere: counted, and
    /// told to the swarm's breakers if it cost time or brought bad bytes.
    /// A quick "not found" (a peer that passed the share out of its memory
    /// already) costs a round trip and happens in honest swarms.
    fn redirect_failed(&self, holder: PeerId, target: PeerId, costly: bool) {
        bump(&self.counters.swarm_redirects_failed, 1);
        if costly {
            self.swarm.redirect_failed(holder, target);
        }
    }

    /// One get exchange with `peer`, which must start answering within
    /// `wait` (a holder asked directly: [`ANSWER_START_WAIT`]; a peer this
    /// node was sent to: [`REDIRECTED_ANSWER_WAIT`]).
    async fn ask_share(
        &self,
        peer: PeerId,
        (stripe, index): (ContentId, u8),
        redirect: bool,
        wait: std::time::Duration,
    ) -> Result<Served, Asked> {
        let request = OutRequest::Get {
            stripe,
            index,
            redirect,
        };
        let answer = self.client.call_within(peer, request, wait).await;
        served_or_why(peer, answer, redirect)
    }
}

/// What [`StripeFetcher::fetch_stripe`] brings back.
pub(crate) struct Fetched {
    /// The stripe record, checked against the stripe id.
    pub(crate) record: StripeRecord,
    /// n slots, k of them filled with verified shares.
    pub(crate) shares: Vec<Option<Bytes>>,
    /// The owner's lease on the stripe, if a holder sent a valid one.
    pub(crate) lease: Option<Lease>,
}
