//! Swarming: downloaders of the same file at the same time serve each other,
//! so that the node that holds it sends each share about once, not once per
//! downloader.
//!
//! Three pieces of state, all bounded:
//!
//! - **Recent shares** (downloader side): every share this node fetched and
//!   verified is kept in memory, newest first, within [`RECENT_BYTES`]; its
//!   share server answers from there before it looks at the disk (the
//!   cached copy on disk is written in the background and may lag).
//! - **Fetches under way** (downloader side): a share this node is fetching
//!   right now. A peer that asks for it is answered as soon as it arrives
//!   and checks out (waiting at most [`WAIT_FOR_FETCH`]), so that a chain
//!   of downloaders forms while the bytes are still on the way.
//! - **Recipients** (holder side): per share, the peers it went to in the
//!   last [`RECIPIENT_WINDOW`]. A downloader that asks with "get, or say
//!   where" (`0x06`) may be told to ask one of them instead. Each recipient
//!   is handed at most [`FANOUT`] other downloaders, oldest recipient first,
//!   so the downloaders form a tree of fan-out 2 below the holder (depth
//!   log₂ of their number) rather than a chain; the redirected downloader
//!   becomes a recipient itself. When every recipient has its share of
//!   downloaders, the holder serves the share again.
//!
//! This is BitTorrent's "super-seeding" turned around: the holder does not
//! need to know who has what, because it saw who it gave each share to.
//! Nothing here is trusted: a redirected downloader checks the share it gets
//! against the stripe record as always, and one that finds nothing where it
//! was sent asks the holder again, without redirect. A peer it was sent to
//! must start answering within [`REDIRECTED_ANSWER_WAIT`]; and after
//! [`BREAKER_FAILURES`] redirects from one holder, or to one peer, cost
//! time (a second or more) or brought bad bytes, the downloader asks that
//! holder without redirect, and does not follow redirects to that peer, for
//! [`BREAKER_PAUSE`] (a peer that makes itself a recipient and then stays
//! silent costs each downloader a few seconds, not a stall). A quick "not
//! found" from a peer that no longer has the share in memory costs a round
//! trip, as an honest miss does, and does not count.
//!
//! Written here rather than with a cache crate: what is needed is a byte-
//! bounded FIFO plus a map of in-flight fetches that waiters can subscribe
//! to, a few dozen lines over `std` and `tokio::sync::watch`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kith_base::ContentId;
use kith_net::PeerId;
use tokio::sync::watch;

/// Bytes of recently fetched shares kept in memory for other downloaders.
pub(crate) const RECENT_BYTES: usize = 64 << 20;
/// How long a holder remembers who it gave a share to.
pub(crate) const RECIPIENT_WINDOW: Duration = Duration::from_secs(10);
/// Other downloaders a recipient is sent, at most, per share.
pub(crate) const FANOUT: u8 = 2;
/// Recipients remembered per share.
const RECIPIENTS_PER_SHARE: usize = 8;
/// Shares whose recipients are remembered.
const RECIPIENT_SHARES: usize = 16_384;
/// How long a downloader asked for a share it is fetching waits for it.
pub(crate) const WAIT_FOR_FETCH: Duration = Duration::from_secs(8);
/// How long a downloader sent elsewhere waits for that peer's answer to
/// start: its wait for its own fetch, and a margin.
pub(crate) const REDIRECTED_ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Entries in memory at most, whatever their size (many tiny shares).
const RECENT_ENTRIES: usize = 16_384;
/// Bytes counted per entry beyond its buffers (maps, queue, `Arc`).
const ENTRY_OVERHEAD: usize = 256;
/// Redirects from one holder that led nowhere before it is asked straight.
pub(crate) const BREAKER_FAILURES: u32 = 3;
/// How long a holder whose redirects failed is asked without redirect.
pub(crate) const BREAKER_PAUSE: Duration = Duration::from_secs(60);
/// Holders whose redirect failures are tracked; beyond, the oldest go.
const BREAKER_HOLDERS: usize = 1024;

/// A share, as stored or fetched: (stripe, index).
pub(crate) type ShareKey = (ContentId, u8);

/// A verified share with what a share answer carries beside it.
#[derive(Debug, Clone)]
pub(crate) struct HeldShare {
    /// The stripe record's bytes (checked against the stripe id).
    pub(crate) record: Bytes,
    /// The owner's lease on the stripe, if a holder sent a valid one.
    pub(crate) lease: Option<Bytes>,
    /// The share (checked against the record).
    pub(crate) share: Bytes,
    /// Bytes this entry keeps alive: `share` is a view into the frame it
    /// arrived in, which also held that frame's copy of the record and
    /// lease.
    pub(crate) retained: usize,
}

impl HeldShare {
    fn cost(&self) -> usize {
        self.retained.max(self.share.len()) + ENTRY_OVERHEAD
    }
}

/// Where a fetch under way stands.
#[derive(Debug, Clone)]
enum Fetch {
    Pending,
    Done(Arc<HeldShare>),
    Failed,
}

/// One peer a share went to.
#[derive(Debug, Clone, Copy)]
struct Recipient {
    peer: PeerId,
    at: Instant,
    /// Downloaders sent to it for this share.
    sent: u8,
    /// The recipient this one was itself sent to, if any: never send that
    /// one back to it (each would wait on the other).
    via: Option<PeerId>,
}

#[derive(Debug, Default)]
struct State {
    recent: HashMap<ShareKey, Arc<HeldShare>>,
    recent_order: VecDeque<ShareKey>,
    recent_bytes: usize,
    fetching: HashMap<ShareKey, watch::Receiver<Fetch>>,
    recipients: HashMap<ShareKey, Vec<Recipient>>,
    recipients_order: VecDeque<ShareKey>,
    /// Holders whose redirects cost time or brought bad bytes: asked
    /// without redirect for a while.
    holders: Breaker,
    /// Peers this node was sent to that were slow to answer or sent bad
    /// bytes: a redirect to them is not followed for a while.
    targets: Breaker,
}

/// Per peer: failures (less successes), and until when the peer is
/// passed over after [`BREAKER_FAILURES`] of them. Bounded: beyond
/// [`BREAKER_HOLDERS`] peers it starts over.
#[derive(Debug, Default)]
struct Breaker(HashMap<PeerId, (u32, Option<Instant>)>);

impl Breaker {
    fn allows(&mut self, peer: &PeerId) -> bool {
        match self.0.get(peer) {
            Some((_, Some(until))) if Instant::now() < *until => false,
            Some((_, Some(_))) => {
                self.0.remove(peer);
                true
            }
            _ => true,
        }
    }

    fn failed(&mut self, peer: PeerId) {
        if self.0.len() >= BREAKER_HOLDERS && !self.0.contains_key(&peer) {
            self.0.clear();
        }
        let (failures, paused) = self.0.entry(peer).or_default();
        *failures += 1;
        if *failures >= BREAKER_FAILURES {
            *failures = 0;
            *paused = Some(Instant::now() + BREAKER_PAUSE);
        }
    }

    fn worked(&mut self, peer: &PeerId) {
        if let Some((failures, None)) = self.0.get_mut(peer) {
            *failures = failures.saturating_sub(1);
        }
    }
}

/// The swarming state of a node; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Swarm {
    state: Arc<Mutex<State>>,
}

impl Swarm {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a fetch of `key` that this node starts now, so that peers
    /// asking for it wait for it. `None` when the share is already held in
    /// memory or another fetch of it is under way (the caller fetches all
    /// the same; only one fetch is announced).
    pub(crate) fn begin(&self, key: ShareKey) -> Option<FetchGuard> {
        let mut state = self.lock();
        if state.recent.contains_key(&key) || state.fetching.contains_key(&key) {
            return None;
        }
        let (sender, receiver) = watch::channel(Fetch::Pending);
        state.fetching.insert(key, receiver);
        Some(FetchGuard {
            swarm: self.clone(),
            key,
            sender: Some(sender),
        })
    }

    /// The share if this node fetched it lately, or is fetching it now
    /// (then waits up to [`WAIT_FOR_FETCH`] for it to arrive and verify).
    pub(crate) async fn held(&self, key: ShareKey) -> Option<Arc<HeldShare>> {
        let mut receiver = {
            let state = self.lock();
            if let Some(held) = state.recent.get(&key) {
                return Some(held.clone());
            }
            state.fetching.get(&key)?.clone()
        };
        let waited = tokio::time::timeout(
            WAIT_FOR_FETCH,
            receiver.wait_for(|fetch| !matches!(fetch, Fetch::Pending)),
        )
        .await;
        match waited {
            Ok(Ok(fetch)) => match &*fetch {
                Fetch::Done(held) => Some(held.clone()),
                Fetch::Pending | Fetch::Failed => None,
            },
            // Timed out, or the fetch was dropped without a word.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Holder side: `requester` asks for `key` and takes an `elsewhere`
    /// answer. Returns the peer to send it to — the oldest recent recipient
    /// of the share that is not `requester`, has fewer than [`FANOUT`]
    /// downloaders sent to it and for which `reachable` holds — and counts
    /// `requester` as a recipient from now on. `None`: serve it here.
    pub(crate) fn redirect(
        &self,
        key: ShareKey,
        requester: PeerId,
        reachable: impl Fn(&PeerId) -> bool,
    ) -> Option<PeerId> {
        let mut state = self.lock();
        let now = Instant::now();
        let recipients = state.recipients.get_mut(&key)?;
        recipients.retain(|r| now.duration_since(r.at) < RECIPIENT_WINDOW);
        let target = recipients.iter_mut().find(|r| {
            r.peer != requester && r.via != Some(requester) && r.sent < FANOUT && reachable(&r.peer)
        })?;
        target.sent += 1;
        let target = target.peer;
        add_recipient(recipients, requester, now, Some(target));
        Some(target)
    }

    /// Holder side: the share `key` went to `peer` just now.
    pub(crate) fn served(&self, key: ShareKey, peer: PeerId) {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(recipients) = state.recipients.get_mut(&key) {
            add_recipient(recipients, peer, now, None);
            return;
        }
        if state.recipients_order.len() >= RECIPIENT_SHARES
            && let Some(oldest) = state.recipients_order.pop_front()
        {
            state.recipients.remove(&oldest);
        }
        state.recipients_order.push_back(key);
        state.recipients.insert(
            key,
            vec![Recipient {
                peer,
                at: now,
                sent: 0,
                via: None,
            }],
        );
    }

    /// Bytes of shares held in memory now.
    #[cfg(test)]
    fn recent_bytes(&self) -> usize {
        self.lock().recent_bytes
    }

    /// Downloader side: whether to let `holder` send this node elsewhere
    /// (not while its redirects keep failing).
    pub(crate) fn takes_redirects_from(&self, holder: &PeerId) -> bool {
        self.lock().holders.allows(holder)
    }

    /// Downloader side: whether to follow a redirect to `target` (not
    /// while redirects to it keep leading nowhere).
    pub(crate) fn follows_redirects_to(&self, target: &PeerId) -> bool {
        self.lock().targets.allows(target)
    }

    /// Downloader side: a redirect from `holder` to `target` cost time
    /// (`target` was slow or silent) or brought bad bytes: counts against
    /// both. A quick "not found" is not reported here: it costs a round
    /// trip, and honest swarms have them (a peer that already let the
    /// share out of its memory).
    pub(crate) fn redirect_failed(&self, holder: PeerId, target: PeerId) {
        let mut state = self.lock();
        state.targets.failed(target);
        state.holders.failed(holder);
    }

    /// Downloader side: a redirect from `holder` to `target` brought a good
    /// share.
    pub(crate) fn redirect_worked(&self, holder: &PeerId, target: &PeerId) {
        let mut state = self.lock();
        state.holders.worked(holder);
        state.targets.worked(target);
    }

    fn keep(&self, key: ShareKey, held: Arc<HeldShare>) {
        let mut state = self.lock();
        let len = held.cost();
        if len > RECENT_BYTES || state.recent.contains_key(&key) {
            return;
        }
        while state.recent_bytes + len > RECENT_BYTES || state.recent.len() >= RECENT_ENTRIES {
            let Some(oldest) = state.recent_order.pop_front() else {
                break;
            };
            if let Some(gone) = state.recent.remove(&oldest) {
                state.recent_bytes -= gone.cost();
            }
        }
        state.recent_bytes += len;
        state.recent_order.push_back(key);
        state.recent.insert(key, held);
    }
}

/// Adds (or refreshes) `peer` among a share's recipients, dropping the
/// oldest beyond [`RECIPIENTS_PER_SHARE`].
fn add_recipient(recipients: &mut Vec<Recipient>, peer: PeerId, now: Instant, via: Option<PeerId>) {
    if let Some(known) = recipients.iter_mut().find(|r| r.peer == peer) {
        known.at = now;
        known.via = via;
        return;
    }
    if recipients.len() >= RECIPIENTS_PER_SHARE {
        recipients.remove(0);
    }
    recipients.push(Recipient {
        peer,
        at: now,
        sent: 0,
        via,
    });
}

/// A fetch this node announced ([`Swarm::begin`]). [`FetchGuard::done`]
/// hands the verified share to whoever waits and keeps it in memory;
/// dropping the guard without it tells the waiters it failed.
#[derive(Debug)]
pub(crate) struct FetchGuard {
    swarm: Swarm,
    key: ShareKey,
    sender: Option<watch::Sender<Fetch>>,
}

impl FetchGuard {
    /// The share arrived and checked out.
    pub(crate) fn done(mut self, held: HeldShare) {
        let held = Arc::new(held);
        self.swarm.keep(self.key, held.clone());
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Fetch::Done(held));
        }
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.swarm.lock().fetching.remove(&self.key);
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Fetch::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use kith_base::Identity;

    use super::*;

    fn peer() -> PeerId {
        Identity::generate().peer_id()
    }

    fn share(len: usize) -> HeldShare {
        HeldShare {
            record: Bytes::from_static(b"record"),
            lease: None,
            share: Bytes::from(vec![7u8; len]),
            retained: len,
        }
    }

    fn key(n: u8) -> ShareKey {
        (ContentId::of(&[n]), n)
    }

    #[test]
    fn downloaders_form_a_tree_of_fanout_two_below_the_holder() {
        let swarm = Swarm::default();
        let [a, b, c, d, e, f, g] = [(); 7].map(|()| peer());
        let k = key(1);
        assert_eq!(swarm.redirect(k, a, |_| true), None, "nobody has it yet");
        swarm.served(k, a);
        // a takes b and c; then b (the next oldest) takes d and e; then c.
        assert_eq!(swarm.redirect(k, b, |_| true), Some(a));
        assert_eq!(swarm.redirect(k, c, |_| true), Some(a));
        assert_eq!(swarm.redirect(k, d, |_| true), Some(b));
        assert_eq!(swarm.redirect(k, e, |_| true), Some(b));
        assert_eq!(swarm.redirect(k, f, |_| true), Some(c));
        // Unreachable recipients are skipped.
        assert_eq!(swarm.redirect(k, g, |p| *p != c), Some(d));
        // A requester is never sent to itself.
        let other = key(2);
        swarm.served(other, a);
        assert_eq!(swarm.redirect(other, a, |_| true), None);
    }

    #[test]
    fn a_full_tree_and_an_unknown_share_are_served_here() {
        let swarm = Swarm::default();
        let a = peer();
        let k = key(3);
        swarm.served(k, a);
        let b = peer();
        assert_eq!(swarm.redirect(k, b, |_| true), Some(a));
        // Only a and b are reachable: a has two, b takes two, then it is full.
        let reachable = |p: &PeerId| *p == a || *p == b;
        assert_eq!(swarm.redirect(k, peer(), reachable), Some(a));
        assert_eq!(swarm.redirect(k, peer(), reachable), Some(b));
        assert_eq!(swarm.redirect(k, peer(), reachable), Some(b));
        assert_eq!(swarm.redirect(k, peer(), reachable), None);
        assert_eq!(swarm.redirect(key(4), peer(), |_| true), None);
    }

    #[test]
    fn recipients_are_bounded() {
        let swarm = Swarm::default();
        for n in 0..(RECIPIENT_SHARES + 10) {
            let k = (ContentId::of(&n.to_le_bytes()), 0);
            swarm.served(k, peer());
        }
        let state = swarm.lock();
        assert_eq!(state.recipients.len(), RECIPIENT_SHARES);
        assert_eq!(state.recipients_order.len(), RECIPIENT_SHARES);
        drop(state);
        let k = key(5);
        for _ in 0..(RECIPIENTS_PER_SHARE * 2) {
            swarm.served(k, peer());
        }
        assert_eq!(swarm.lock().recipients[&k].len(), RECIPIENTS_PER_SHARE);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_share_when_the_fetch_ends_and_nothing_when_it_fails() {
        let swarm = Swarm::default();
        let k = key(6);
        assert!(swarm.held(k).await.is_none(), "neither held nor fetching");
        let guard = swarm.begin(k).unwrap();
        assert!(swarm.begin(k).is_none(), "one announced fetch per share");
        let waiter = tokio::spawn({
            let swarm = swarm.clone();
            async move { swarm.held(k).await }
        });
        tokio::task::yield_now().await;
        guard.done(share(100));
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.share.len(), 100);
        // Kept in memory afterwards.
        assert!(swarm.held(k).await.is_some());
        assert!(swarm.begin(k).is_none());

        let failed = key(7);
        let guard = swarm.begin(failed).unwrap();
        let waiter = tokio::spawn({
            let swarm = swarm.clone();
            async move { swarm.held(failed).await }
        });
        tokio::task::yield_now().await;
        drop(guard);
        assert!(waiter.await.unwrap().is_none());
        assert!(
            swarm.begin(failed).is_some(),
            "a failed fetch can be retried"
        );
    }

    #[tokio::test]
    async fn memory_stays_within_its_budget_oldest_out_first() {
        let swarm = Swarm::default();
        let len = RECENT_BYTES / 4 - ENTRY_OVERHEAD;
        for n in 0..6 {
            swarm.begin(key(n)).unwrap().done(share(len));
        }
        assert_eq!(swarm.recent_bytes(), RECENT_BYTES);
        assert!(swarm.held(key(0)).await.is_none());
        assert!(swarm.held(key(1)).await.is_none());
        assert!(swarm.held(key(5)).await.is_some());
        // A share larger than the budget is not kept at all.
        swarm.begin(key(9)).unwrap().done(share(RECENT_BYTES + 1));
        assert!(swarm.held(key(9)).await.is_none());
        assert_eq!(swarm.recent_bytes(), RECENT_BYTES);
    }

    #[test]
    fn what_a_share_keeps_alive_is_counted_and_entries_are_capped() {
        let swarm = Swarm::default();
        // A tiny share inside a big frame counts as the frame.
        let mut padded = share(10);
        padded.retained = 16 << 10;
        swarm.begin(key(1)).unwrap().done(padded);
        assert_eq!(swarm.recent_bytes(), (16 << 10) + ENTRY_OVERHEAD);
        // Many tiny shares: the count is capped.
        for n in 0..(RECENT_ENTRIES + 100) {
            let k = (ContentId::of(&n.to_le_bytes()), 0);
            swarm.begin(k).unwrap().done(share(1));
        }
        assert_eq!(swarm.lock().recent.len(), RECENT_ENTRIES);
        assert_eq!(swarm.lock().recent_order.len(), RECENT_ENTRIES);
    }

    #[test]
    fn two_downloaders_are_never_sent_to_each_other() {
        let swarm = Swarm::default();
        let [a, c] = [(); 2].map(|()| peer());
        let k = key(8);
        swarm.served(k, a);
        assert_eq!(swarm.redirect(k, c, |_| true), Some(a));
        // a asks again (a retry): c was sent to a, so a is not sent to c.
        assert_eq!(swarm.redirect(k, a, |_| true), None);
    }

    #[test]
    fn a_holder_whose_redirects_cost_time_is_asked_straight_for_a_while() {
        let swarm = Swarm::default();
        let holder = peer();
        let target = || peer();
        assert!(swarm.takes_redirects_from(&holder));
        swarm.redirect_failed(holder, target());
        swarm.redirect_worked(&holder, &target());
        swarm.redirect_failed(holder, target());
        swarm.redirect_failed(holder, target());
        assert!(
            swarm.takes_redirects_from(&holder),
            "one success forgives one failure"
        );
        swarm.redirect_failed(holder, target());
        assert!(!swarm.takes_redirects_from(&holder));
        assert!(
            swarm.takes_redirects_from(&peer()),
            "other holders are not affected"
        );
        // After the pause it takes redirects again.
        swarm
            .lock()
            .holders
            .0
            .insert(holder, (0, Some(Instant::now())));
        assert!(swarm.takes_redirects_from(&holder));
    }

    #[test]
    fn a_slow_peer_is_not_followed_whoever_sends_there() {
        let swarm = Swarm::default();
        let target = peer();
        for _ in 0..BREAKER_FAILURES {
            assert!(swarm.follows_redirects_to(&target));
            // A different holder each time: each holder still has credit.
            swarm.redirect_failed(peer(), target);
        }
        assert!(!swarm.follows_redirects_to(&target));
        assert!(swarm.follows_redirects_to(&peer()));
    }
}
