//! Repair without keys: the holders of a stripe rebuild its missing shares.
//!
//! Every node runs a **round** over the stripes it holds a lease for (its
//! own, the ones it holds for others, and the ones it cached as a getter,
//! whose holders sent the lease along): a minute after start, every repair
//! interval, 20 s after new shares arrive (to learn who holds their stripes
//! beside it), and 2 s after such a co-holder is found gone — it
//! disconnected and does not answer a probe; an idle connection closing is
//! not a loss. Rounds are at least [`MIN_ROUND_GAP`] apart.
//!
//! 1. The stripes are grouped by placement key (the lease names it). Per
//!    group, one lookup finds the peers around the key (plus providers) and
//!    one `have` round asks them what they hold — the same locate as a get.
//! 2. A stripe is healthy when a matching puts its n share indices on n
//!    distinct peers that answered. Otherwise the **repairer** is the live
//!    holder closest to the placement key. The others wait: the holder of
//!    rank r steps in only once it has seen the stripe short for r times a
//!    patience of twice the repair interval (at most a minute), so peers do
//!    not all repair the same stripe at once, yet a repairer that went
//!    quiet is replaced. `kith repair` (a forced round) repairs whatever
//!    this node can, whatever its rank.
//! 3. The repairer fetches any k shares (its own first; each verified
//!    against the stripe record), rebuilds the n shares with Reed–Solomon —
//!    no file key: shares are ciphertext and the record lists their ids,
//!    and every rebuilt share is checked against its id — and puts each
//!    missing index on the next closest peer that holds nothing of the
//!    stripe and answered the `have` round (so a dead peer still in the
//!    routing table is never tried) — or, when every live peer holds
//!    something, on one whose shares are all spare copies — with the
//!    owner's lease, so the new holder keeps it for the owner.
//!
//! A node whose scrub found its own share damaged repairs that stripe at the
//! next round whatever its rank (it knows the stripe is short).
//!
//! Repair traffic (bytes fetched and sent) goes through a rate limiter
//! ([`UpkeepSettings::repair_rate`](super::UpkeepSettings)), and at most
//! [`REPAIRS_AT_ONCE`] stripes are repaired at once, so repair cannot swamp
//! a node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_base::{ContentId, Lease};
use kith_codec::StripeRecord;
use kith_net::{NetEvent, PeerId};
use tokio::sync::{Notify, broadcast};
use tracing::{debug, info, warn};

use super::UpkeepRunner;
use super::counters::bump;
use super::pacing::RateLimiter;
use crate::files::fetch::ReportState;
use crate::files::stat::distinct_assignment;
use crate::files::{ShareNotPlaced, unix_now};
use crate::protocols::share::wire::{Answer, MAX_HAVE, OutRequest};

/// Stripes repaired at once by one node.
const REPAIRS_AT_ONCE: usize = 4;
/// How long after a lost peer (or a damaged share) is found a round
/// starts; more losses in the meantime join the same round.
const AFTER_DISCONNECT: Duration = Duration::from_secs(2);
/// Rounds never start closer together than this (or the repair interval,
/// if shorter), however many peers are lost.
const MIN_ROUND_GAP: Duration = Duration::from_secs(5);
/// How long the holder of rank r waits, r times over, for the closer ones
/// to repair a short stripe (or twice the repair interval, if shorter).
const MAX_PATIENCE: Duration = Duration::from_secs(60);
/// How soon after new shares arrive a round learns their co-holders (more
/// shares in the meantime join the same round).
const REFRESH_AFTER: Duration = Duration::from_secs(20);
/// The longest wait for the first round after start.
const FIRST_ROUND: Duration = Duration::from_secs(60);
/// How long a disconnected peer has to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Stripes read from the store per page when a round lists them.
const PAGE: usize = 1024;

/// What repair remembers between rounds.
#[derive(Debug)]
pub(crate) struct RepairState {
    /// Stripes seen short, since when (reset once seen whole).
    short_since: Mutex<HashMap<ContentId, Instant>>,
    /// Stripes whose share this node dropped as damaged.
    lost_here: Mutex<HashSet<ContentId>>,
    /// Stripes being repaired by this node now.
    under_way: Mutex<HashSet<ContentId>>,
    /// Peers that held shares of this node's stripes at the last round:
    /// their disconnection is worth a look.
    coholders: Mutex<HashSet<PeerId>>,
    /// When each peer was last probed after a disconnection.
    probed: Mutex<HashMap<PeerId, Instant>>,
    limiter: RateLimiter,
    /// Wakes the loop for a round soon (a damaged share was found).
    kick: Notify,
    /// Wakes the loop for a round within [`REFRESH_AFTER`]: new shares
    /// arrived, whose co-holders this node does not watch yet.
    fresh: Notify,
}

impl RepairState {
    pub(crate) fn new(rate: u64) -> Self {
        Self {
            short_since: Mutex::default(),
            lost_here: Mutex::default(),
            under_way: Mutex::default(),
            coholders: Mutex::default(),
            probed: Mutex::default(),
            limiter: RateLimiter::new(rate),
            kick: Notify::new(),
            fresh: Notify::new(),
        }
    }

    /// Notes that this node stored new shares: a round within
    /// [`REFRESH_AFTER`] learns who holds their stripes beside it.
    pub(crate) fn new_shares(&self) {
        self.fresh.notify_one();
    }

    /// Notes that this node's share of `stripe` was damaged and dropped:
    /// it repairs the stripe at the next round, which starts soon.
    pub(crate) fn lost_here(&self, stripe: ContentId) {
        lock(&self.lost_here).insert(stripe);
        self.kick.notify_one();
    }

    /// Whether this node is repairing `stripe` now.
    pub(crate) fn is_under_way(&self, stripe: &ContentId) -> bool {
        lock(&self.under_way).contains(stripe)
    }
}

/// Why one stripe's repair did not finish.
#[derive(Debug, thiserror::Error)]
enum RepairError {
    #[error("cannot fetch k shares: {0}")]
    Fetch(String),
    #[error("no peer took share {index}: {last}")]
    NoTaker { index: u8, last: String },
    #[error("the stripe record is gone from this node's store")]
    RecordGone,
    #[error(transparent)]
    Store(#[from] kith_store::StoreError),
    #[error("cannot rebuild the missing shares: {0}")]
    Rebuild(#[from] kith_codec::DecodeError),
}

/// A stripe this node holds a lease for.
#[derive(Clone, Copy)]
struct Held {
    stripe: ContentId,
    lease: Lease,
}

impl UpkeepRunner {
    /// Runs repair rounds forever: every repair interval, soon after a peer
    /// disconnects, and soon after the scrub finds a damaged share.
    pub(crate) async fn repair_loop(self, mut events: broadcast::Receiver<NetEvent>) {
        let interval = self.settings.repair_interval.max(Duration::from_secs(1));
        let gap = interval.min(MIN_ROUND_GAP);
        let mut last = Instant::now();
        // The first round comes soon after start: it also tells this node
        // which peers hold shares beside it (whose loss it then watches).
        let mut next = last + interval.min(FIRST_ROUND);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                event = events.recv() => {
                    match event {
                        Ok(NetEvent::PeerDisconnected(peer)) => self.probe_later(peer, interval),
                        Err(broadcast::error::RecvError::Closed) => return,
                        _ => {}
                    }
                    continue;
                }
                () = self.repair.kick.notified() => {
                    next = next.min((Instant::now() + AFTER_DISCONNECT).max(last + gap));
                    continue;
                }
                () = self.repair.fresh.notified() => {
                    next = next.min(Instant::now() + REFRESH_AFTER.min(interval));
                    continue;
                }
            }
            self.repair_round(false).await;
            last = Instant::now();
            next = last + interval;
        }
    }

    /// After a peer that holds shares beside this node disconnects, checks
    /// whether it is gone or only closed an idle connection: asks it an
    /// empty `have`. If it does not answer, a round starts soon. A peer that
    /// answered is not probed again for an interval (its connection idles
    /// out again a minute later; a death in between is found by the next
    /// periodic round).
    fn probe_later(&self, peer: PeerId, interval: Duration) {
        if !lock(&self.repair.coholders).contains(&peer) {
            return;
        }
        {
            let mut probed = lock(&self.repair.probed);
            if probed.get(&peer).is_some_and(|at| at.elapsed() < interval) {
                return;
            }
            probed.insert(peer, Instant::now());
        }
        let this = self.clone();
        tokio::spawn(async move {
            let probe = this.client.call(peer, OutRequest::Have { stripes: &[] }, 0);
            let alive = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, probe).await,
                Ok(Ok(Answer::Holding(_)))
            );
            if !alive {
                info!(%peer, "a peer holding shares beside this node is gone; checking its stripes");
                lock(&this.repair.probed).remove(&peer);
                this.repair.kick.notify_one();
            }
        });
    }

    /// Checks every stripe this node holds a lease for and repairs the ones
    /// it is responsible for — with `forced` (an operator's `kith repair`),
    /// every short stripe it can, whatever its rank. Returns how many
    /// stripes it repaired.
    pub(crate) async fn repair_round(&self, forced: bool) -> usize {
        bump(&self.counters.repair_rounds, 1);
        let groups = self.leased_stripes().await;
        let mut seen: HashSet<ContentId> = HashSet::new();
        let mut coholders: HashSet<PeerId> = HashSet::new();
        let mut repaired = 0;
        for (placement, held) in groups {
            for chunk in held.chunks(MAX_HAVE) {
                let ids: Vec<ContentId> = chunk.iter().map(|held| held.stripe).collect();
                seen.extend(ids.iter().copied());
                let located = self.locator.locate_live(placement, &ids).await;
                coholders.extend(
                    located
                        .holders
                        .iter()
                        .flatten()
                        .map(|(_, peer)| *peer)
                        .filter(|peer| *peer != self.me),
                );
                let live = &located.live;
                let work: Vec<(Held, Vec<(u8, PeerId)>)> = chunk
                    .iter()
                    .copied()
                    .zip(located.holders)
                    .filter(|(held, holders)| {
                        self.is_my_turn(placement, held.stripe, holders, forced)
                    })
                    .collect();
                let outcomes: Vec<bool> = futures::stream::iter(work)
                    .map(|(held, holders)| async move {
                        match self.repair_stripe(&held, &holders, live).await {
                            Ok(placed) => placed > 0,
                            Err(error) => {
                                bump(&self.counters.repair_failures, 1);
                                warn!(stripe = %held.stripe, %error, "could not repair a stripe; will retry");
                                false
                            }
                        }
                    })
                    .buffer_unordered(REPAIRS_AT_ONCE)
                    .collect()
                    .await;
                repaired += outcomes.into_iter().filter(|done| *done).count();
            }
        }
        *lock(&self.repair.coholders) = coholders;
        lock(&self.repair.short_since).retain(|stripe, _| seen.contains(stripe));
        lock(&self.repair.lost_here).retain(|stripe| seen.contains(stripe));
        repaired
    }

    /// The stripes this node keeps a valid lease for, by placement key.
    async fn leased_stripes(&self) -> BTreeMap<[u8; 32], Vec<Held>> {
        self.blocking(|store| {
            let now = unix_now();
            let mut groups: BTreeMap<[u8; 32], Vec<Held>> = BTreeMap::new();
            let mut after: Option<ContentId> = None;
            loop {
                let page = match store.list_stripes(after.as_ref(), PAGE) {
                    Ok(page) => page,
                    Err(error) => {
                        warn!(%error, "cannot list the stripes to check");
                        break;
                    }
                };
                for stripe in &page {
                    if let Some(lease) = super::leases::kept_lease(store, stripe)
                        && lease.expires_at() > now
                    {
                        groups.entry(lease.placement()).or_default().push(Held {
                            stripe: *stripe,
                            lease,
                        });
                    }
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(*last),
                    _ => break,
                }
            }
            groups
        })
        .await
    }

    /// Whether `stripe` is short and this node should repair it now (see
    /// the module docs); counts the check.
    fn is_my_turn(
        &self,
        placement: [u8; 32],
        stripe: ContentId,
        holders: &[(u8, PeerId)],
        forced: bool,
    ) -> bool {
        bump(&self.counters.stripes_checked, 1);
        let mut by_index: BTreeMap<u8, Vec<PeerId>> = BTreeMap::new();
        for (index, peer) in holders {
            by_index.entry(*index).or_default().push(*peer);
        }
        let record_n = self
            .record_shape(stripe)
            .map(|(_, n)| usize::from(n))
            .unwrap_or(0);
        let placed = distinct_assignment(&by_index).len();
        if record_n == 0 || placed >= record_n {
            lock(&self.repair.short_since).remove(&stripe);
            return false;
        }
        let short_for = lock(&self.repair.short_since)
            .entry(stripe)
            .or_insert_with(Instant::now)
            .elapsed();
        if forced || lock(&self.repair.lost_here).contains(&stripe) {
            return true;
        }
        let mut live: Vec<PeerId> = holders.iter().map(|(_, peer)| *peer).collect();
        live.sort();
        live.dedup();
        kith_net::sort_by_distance(&placement, &mut live);
        let patience = (self.settings.repair_interval * 2).min(MAX_PATIENCE);
        match live.iter().position(|peer| *peer == self.me) {
            Some(rank) => short_for >= patience * rank as u32,
            None => false,
        }
    }

    /// (k, n) of a stripe whose record this node holds.
    fn record_shape(&self, stripe: ContentId) -> Option<(u8, u8)> {
        let record = self.store.get_record(&stripe).ok()??;
        Some((record.k(), record.n()))
    }

    /// Rebuilds the missing shares of one stripe and places them on the
    /// `live` placement candidates (closest first) that hold nothing of it.
    /// Returns how many shares it placed.
    async fn repair_stripe(
        &self,
        held: &Held,
        holders: &[(u8, PeerId)],
        live: &[PeerId],
    ) -> Result<usize, RepairError> {
        let stripe = held.stripe;
        let _under_way = UnderWay::start(self, stripe);
        let record: StripeRecord = {
            let store = self.store.clone();
            crate::files::blocking(move || store.get_record(&stripe))
                .await?
                .ok_or(RepairError::RecordGone)?
        };
        let (k, n) = (usize::from(record.k()), usize::from(record.n()));
        let share_len = u64::from(record.share_len());

        // Any k shares, this node's own first.
        let report = Mutex::new(ReportState::default());
        let shares = self
            .fetcher
            .fetch_stripe(stripe, holders, Some(k), &report)
            .await
            .map_err(|error| RepairError::Fetch(error.to_string()))?
            .shares;
        let own: HashSet<u8> = holders
            .iter()
            .filter(|(_, peer)| *peer == self.me)
            .map(|(index, _)| *index)
            .collect();
        let fetched = shares
            .iter()
            .enumerate()
            .filter(|(index, share)| share.is_some() && !own.contains(&(*index as u8)))
            .count() as u64
            * share_len;
        bump(&self.counters.repair_bytes_fetched, fetched);
        self.repair.limiter.take(fetched).await;

        let rebuilt = {
            let record = record.clone();
            crate::files::blocking(move || {
                let slots: Vec<Option<&[u8]>> = shares.iter().map(|s| s.as_deref()).collect();
                kith_codec::reconstruct_shares(&record, &slots)
            })
            .await?
        };

        // Which indices lack a distinct live holder.
        let mut by_index: BTreeMap<u8, Vec<PeerId>> = BTreeMap::new();
        for (index, peer) in holders {
            by_index.entry(*index).or_default().push(*peer);
        }
        let placed = distinct_assignment(&by_index);
        let missing: Vec<u8> = (0..n as u8).filter(|i| !placed.contains_key(i)).collect();
        let mut targets = rebuild_targets(live, holders, &placed).into_iter();
        let record_bytes = record.to_bytes();
        let mut done = 0;
        for index in &missing {
            let share = &rebuilt[usize::from(*index)];
            let mut last = String::from("no candidate peer is left");
            loop {
                let Some(peer) = targets.next() else {
                    bump(&self.counters.shares_repaired, done as u64);
                    return Err(RepairError::NoTaker {
                        index: *index,
                        last,
                    });
                };
                self.repair.limiter.take(share_len).await;
                match self
                    .place_rebuilt(peer, &record, &record_bytes, *index, share, &held.lease)
                    .await
                {
                    Ok(()) => {
                        bump(&self.counters.repair_bytes_sent, share_len);
                        info!(%stripe, index, to = %peer, "repair placed a rebuilt share");
                        done += 1;
                        break;
                    }
                    Err(error) => {
                        debug!(%stripe, index, %peer, %error, "a peer did not take a rebuilt share");
                        last = error.to_string();
                    }
                }
            }
        }
        bump(&self.counters.shares_repaired, done as u64);
        bump(&self.counters.stripes_repaired, 1);
        lock(&self.repair.lost_here).remove(&stripe);
        lock(&self.repair.short_since).remove(&stripe);
        info!(%stripe, shares = done, "repaired a stripe");
        Ok(done)
    }

    /// Puts a rebuilt share on `peer` (or in this node's store) under the
    /// owner's lease.
    async fn place_rebuilt(
        &self,
        peer: PeerId,
        record: &StripeRecord,
        record_bytes: &[u8],
        index: u8,
        share: &[u8],
        lease: &Lease,
    ) -> Result<(), ShareNotPlaced> {
        if peer == self.me {
            let (record, share, lease) = (record.clone(), share.to_vec(), *lease);
            return self
                .blocking(move |store| {
                    crate::files::put::store_leased(store, &record, index, &share, &lease)
                        .map(|_| ())
                        .map_err(ShareNotPlaced::from)
                })
                .await;
        }
        let request = OutRequest::Put {
            stripe: record.id(),
            index,
            record: record_bytes,
            lease: lease.as_bytes(),
            share,
        };
        ShareNotPlaced::from_answer(peer, self.client.call(peer, request, 1).await)
    }
}

/// The peers a rebuilt share may go to, best first: the `live` candidates
/// (closest first) that hold nothing of the stripe, then those whose every
/// share of it is a spare copy — a peer outside the distinct assignment
/// `placed`, such as a node that cached shares while reading the file. A
/// peer in the assignment is never a target, so each share placed adds one
/// distinct holder, even when every live peer already holds something.
fn rebuild_targets(
    live: &[PeerId],
    holders: &[(u8, PeerId)],
    placed: &BTreeMap<u8, PeerId>,
) -> Vec<PeerId> {
    let holding: HashSet<PeerId> = holders.iter().map(|(_, peer)| *peer).collect();
    let assigned: HashSet<PeerId> = placed.values().copied().collect();
    let empty = live.iter().filter(|peer| !holding.contains(peer));
    // Holders answered `have` this round, so they are live even when they
    // are not placement candidates.
    let mut spare: Vec<PeerId> = live
        .iter()
        .chain(holders.iter().map(|(_, peer)| peer))
        .filter(|peer| holding.contains(peer) && !assigned.contains(peer))
        .copied()
        .collect();
    let mut seen = HashSet::new();
    spare.retain(|peer| seen.insert(*peer));
    empty.copied().chain(spare).collect()
}

/// Marks a stripe as being repaired (for `kith stat` and `kith status`)
/// until dropped.
struct UnderWay<'a> {
    runner: &'a UpkeepRunner,
    stripe: ContentId,
}

impl<'a> UnderWay<'a> {
    fn start(runner: &'a UpkeepRunner, stripe: ContentId) -> Self {
        lock(&runner.repair.under_way).insert(stripe);
        bump(&runner.counters.repairs_running, 1);
        Self { runner, stripe }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        lock(&self.runner.repair.under_way).remove(&self.stripe);
        self.runner
            .counters
            .repairs_running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_shares_go_to_empty_peers_first_then_to_spare_holders() {
        let p: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        // p0 caches 0, 1 and 2; p1..p4 hold 0..3; index 4 has no holder.
        let holders = vec![
            (0, p[0]),
            (1, p[0]),
            (2, p[0]),
            (0, p[1]),
            (1, p[2]),
            (2, p[3]),
            (3, p[4]),
        ];
        let mut by_index: BTreeMap<u8, Vec<PeerId>> = BTreeMap::new();
        for (index, peer) in &holders {
            by_index.entry(*index).or_default().push(*peer);
        }
        let placed = distinct_assignment(&by_index);
        assert_eq!(placed.len(), 4);
        let spare_holder = (0..5)
            .map(|i| p[i])
            .find(|peer| !placed.values().any(|assigned| assigned == peer))
            .unwrap();

        // Every live peer holds something: the spare holder is the target.
        let live: Vec<PeerId> = p[..5].to_vec();
        assert_eq!(
            rebuild_targets(&live, &holders, &placed),
            vec![spare_holder]
        );
        // An empty live peer comes first.
        let live: Vec<PeerId> = p.clone();
        assert_eq!(
            rebuild_targets(&live, &holders, &placed),
            vec![p[5], spare_holder]
        );
        // A spare holder that is not a placement candidate still counts.
        assert_eq!(
            rebuild_targets(&[p[5]], &holders, &placed),
            vec![p[5], spare_holder]
        );
    }
}
