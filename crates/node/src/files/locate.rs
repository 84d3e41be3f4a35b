//! Where the shares of a stripe are: the placement candidates around a key
//! (the DHT's closest peers), the peers that announced they hold them, and
//! one `have` round asking them which shares they hold. Put places around
//! the same candidates; get, stat, rm and repair read what is found here.

use std::time::Duration;

use kith_base::ContentId;
use kith_net::{Client, PeerId};
use kith_store::Store;
use tracing::debug;

use super::{BadPeers, on_blocking_pool};
use crate::protocols::share::client::ShareClient;
use crate::protocols::share::wire::{self, Answer, OutRequest};

/// How long a `have` round may wait for one peer.
const HAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider lookup may take before a get goes on without it.
const PROVIDERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers a reader that found too few holders asks beyond the first round
/// (see [`Locator::locate_more`]), besides those that did not answer it.
const WIDER: usize = 40;
/// The least time between a peer's failing to answer a `have` and its
/// being asked again (see [`Locator::locate_more`]): a holder at its
/// connection limit makes room within a second or two.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Whether some stripe shows fewer than `need` distinct share indexes.
fn short(holders: &[Vec<(u8, PeerId)>], need: usize) -> bool {
    holders.iter().any(|pairs| {
        let mut indexes: Vec<u8> = pairs.iter().map(|(index, _)| *index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes.len() < need
    })
}

/// The first bytes of a key, for logs.
pub(crate) fn short_key(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The peers a search asked, by whether they answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Asked {
    /// Peers that said which shares they hold (none, maybe): a wider
    /// search does not ask them again.
    pub(crate) answered: Vec<PeerId>,
    /// Peers that did not answer (no connection, a dial refused, a
    /// timeout): a wider search asks them again. A holder at its
    /// connection limit is one of them, and not gone.
    pub(crate) unanswered: Vec<PeerId>,
}

impl Asked {
    /// How many peers were asked.
    pub(crate) fn len(&self) -> usize {
        self.answered.len() + self.unanswered.len()
    }

    fn contains(&self, peer: &PeerId) -> bool {
        self.answered.contains(peer) || self.unanswered.contains(peer)
    }
}

/// What [`Locator::locate_live`] found.
pub(crate) struct Located {
    /// Per stripe asked, the (share index, holder) pairs.
    pub(crate) holders: Vec<Vec<(u8, PeerId)>>,
    /// The peers asked.
    pub(crate) asked: Asked,
    /// Placement candidates that answered, closest first.
    pub(crate) live: Vec<PeerId>,
}

/// Finds holders: this node's view of who holds what. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Locator {
    me: PeerId,
    net: Client,
    client: ShareClient,
    store: Store,
    bad: BadPeers,
}

impl Locator {
    pub(crate) fn new(
        me: PeerId,
        net: Client,
        client: ShareClient,
        store: Store,
        bad: BadPeers,
    ) -> Self {
        Self {
            me,
            net,
            client,
            store,
            bad,
        }
    }

    /// The peers to place around (or look for) `key`, closest first: the
    /// DHT's closest peers and this node, with peers that served bad data
    /// moved to the end.
    pub(crate) async fn candidates(&self, key: [u8; 32]) -> Vec<PeerId> {
        let mut peers = match self.net.closest_peers(key).await {
            Ok(peers) => peers,
            Err(error) => {
                debug!(me = %self.me, key = %short_key(&key), %error, "no closest peers");
                Vec::new()
            }
        };
        peers.retain(|peer| *peer != self.me);
        peers.push(self.me);
        kith_net::sort_by_distance(&key, &mut peers);
        // Stable: distance order stays among the good and among the bad.
        peers.sort_by_key(|peer| self.bad.strikes(peer));
        peers
    }

    /// Where shares keyed by `key` may be: the placement candidates, then
    /// the peers that announced they cached them (provider records).
    /// Returns them, and how many of them are placement candidates (the
    /// first ones).
    pub(crate) async fn holder_candidates(&self, key: [u8; 32]) -> (Vec<PeerId>, usize) {
        let providers = async {
            match tokio::time::timeout(PROVIDERS_TIMEOUT, self.net.providers(key)).await {
                Ok(Ok(providers)) => providers,
                Ok(Err(error)) => {
                    debug!(me = %self.me, key = %short_key(&key), %error, "no providers");
                    Vec::new()
                }
                Err(_) => {
                    debug!(me = %self.me, key = %short_key(&key), "provider lookup timed out");
                    Vec::new()
                }
            }
        };
        let (mut peers, providers) = tokio::join!(self.candidates(key), providers);
        let placed = peers.len();
        for provider in providers {
            if !peers.contains(&provider) {
                peers.push(provider);
            }
        }
        (peers, placed)
    }

    /// Asks the candidates around `key`, and the peers that announced they
    /// hold them, which shares of `stripes` they hold. Returns, per stripe,
    /// the (share index, holder) pairs found, and how many peers were asked.
    /// Searches further out (see [`Locator::locate_more`]) when a stripe
    /// shows no holder at all.
    pub(crate) async fn locate(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
    ) -> (Vec<Vec<(u8, PeerId)>>, usize) {
        self.locate_at_least(key, stripes, 1).await
    }

    /// [`Locator::locate`], searching further out when a stripe shows fewer
    /// than `need` distinct share indexes (a reader passes k). Returns the
    /// holders and the peers asked.
    pub(crate) async fn locate_with_peers(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        need: usize,
    ) -> (Vec<Vec<(u8, PeerId)>>, Asked) {
        let located = self.locate_live(key, stripes).await;
        if short(&located.holders, need) {
            debug!(
                me = %self.me,
                key = %short_key(&key),
                answered = ?located.asked.answered,
                unanswered = ?located.asked.unanswered,
                "too few holders in the first round"
            );
            return self
                .locate_more(key, stripes, &located.asked, located.holders)
                .await;
        }
        (located.holders, located.asked)
    }

    /// [`Locator::locate_with_peers`], counting the peers asked.
    pub(crate) async fn locate_at_least(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        need: usize,
    ) -> (Vec<Vec<(u8, PeerId)>>, usize) {
        let (holders, asked) = self.locate_with_peers(key, stripes, need).await;
        (holders, asked.len())
    }

    /// The search beyond the first round, for a reader that found fewer
    /// holders than it needs (with poor routing tables, or holders that
    /// did not answer the writer's lookup, the writer's closest peers and
    /// the reader's differ): asks again the peers that did not answer
    /// before (no sooner than [`ASK_AGAIN_AFTER`] after that round), and
    /// the peers not asked yet among this node's own routing table's
    /// [`WIDER`] closest to `key`, a second lookup's result, and the
    /// providers of `key` (holders announce what they store); adds what
    /// they hold to `holders`. Returns the merged holders and every peer
    /// asked, by whether it answered.
    pub(crate) async fn locate_more(
        &self,
        key: [u8; 32],
        stripes: &[ContentId],
        asked: &Asked,
        mut holders: Vec<Vec<(u8, PeerId)>>,
    ) -> (Vec<Vec<(u8, PeerId)>>, Asked) {
        let known = async {
            let mut peers: Vec<PeerId> = self
                .net
                .known_peers()
                .await
                .map(|peers| peers.into_iter().map(|(peer, _)| peer).collect())
                .unwrap_or_default();
            kith_net::sort_by_distance(&key, &mut peers);
            peers
        };
        // The lookups usually take longer than the pause; the pause only
        // keeps a quick lookup from asking a full holder again at once.
        let ((known, (again, _)), ()) = tokio::join!(
            async { tokio::join!(known, self.holder_candidates(key)) },
            tokio::time::sleep(ASK_AGAIN_AFTER),
        );
        let mut more = Vec::new();
        for peer in again.into_iter().chain(known) {
            if more.len() >= WIDER {
                break;
            }
            if !asked.contains(&peer) && !more.contains(&peer) {
                more.push(peer);
            }
        }
        let retried = asked.unanswered.len();
        more.extend(asked.unanswered.iter().copied());
        debug!(
            me = %self.me,
            key = %short_key(&key),
            retried,
            more = more.len() - retried,
            "too few holders found; asking further out"
        );
        let mut answered = asked.answered.clone();
        let mut unanswered = Vec::new();
        for (_, peer, bitmaps) in self.have_round(more, stripes).await {
            let Some(bitmaps) = bitmaps else {
                unanswered.push(peer);
                continue;
            };
            answered.push(peer);
            for (stripe, bitmap) in bitmaps.iter().enumerate() {
                for index in 0..=u8::MAX {
                    if wire::bit(bitmap, index) && !holders[stripe].contains(&(index, peer)) {
                        holders[stripe].push((index, peer));
                    }
                }
            }
        }
        debug!(
            me = %self.me,
            key = %short_key(&key),
            answered = answered.len(),
            unanswered = unanswered.len(),
            holders = ?holders.iter().map(Vec::len).collect::<Vec<_>>(),
            "further out: have round"
        );
        (
            holders,
            Asked {
                answered,
                unanswered,
            },
        )
    }

    /// [`Locator::locate`], also saying which placement candidates answered
    /// (alive and speaking the protocol), closest to `key` first: where
    /// repair places rebuilt shares.
    pub(crate) async fn locate_live(&self, key: [u8; 32], stripes: &[ContentId]) -> Located {
        let (peers, placed) = self.holder_candidates(key).await;
        let answers = self.have_round(peers, stripes).await;
        let mut holders = vec![Vec::new(); stripes.len()];
        let mut live = Vec::new();
        let mut asked = Asked::default();
        for (at, peer, bitmaps) in answers {
            let Some(bitmaps) = bitmaps else {
                asked.unanswered.push(peer);
                continue;
            };
            asked.answered.push(peer);
            if at < placed {
                live.push(peer);
            }
            for (stripe, bitmap) in bitmaps.iter().enumerate() {
                for index in 0..=u8::MAX {
                    if wire::bit(bitmap, index) {
                        holders[stripe].push((index, peer));
                    }
                }
            }
        }
        kith_net::sort_by_distance(&key, &mut live);
        debug!(
            me = %self.me,
            key = %short_key(&key),
            placed,
            answered = asked.answered.len(),
            unanswered = asked.unanswered.len(),
            holders = ?holders.iter().map(Vec::len).collect::<Vec<_>>(),
            "have round"
        );
        Located {
            holders,
            asked,
            live,
        }
    }

    /// One `have` request to each of `peers` (in parallel, [`HAVE_TIMEOUT`]
    /// each): per peer, its position in `peers`, and its bitmaps (`None`
    /// when it did not answer).
    pub(crate) async fn have_round(
        &self,
        peers: Vec<PeerId>,
        stripes: &[ContentId],
    ) -> Vec<(usize, PeerId, Option<Vec<[u8; 32]>>)> {
        futures::future::join_all(peers.into_iter().enumerate().map(|(at, peer)| {
            let this = self.clone();
            let stripes = stripes.to_vec();
            async move {
                let bitmaps = if peer == this.me {
                    Some(this.local_have(stripes).await)
                } else {
                    let ask = this.client.call(
                        peer,
                        OutRequest::Have { stripes: &stripes },
                        32 * stripes.len(),
                    );
                    match tokio::time::timeout(HAVE_TIMEOUT, ask).await {
                        Ok(Ok(Answer::Holding(bitmaps))) if bitmaps.len() == stripes.len() => {
                            Some(bitmaps)
                        }
                        Ok(Ok(other)) => {
                            debug!(me = %this.me, %peer, ?other, "unexpected answer to have");
                            None
                        }
                        Ok(Err(error)) => {
                            debug!(me = %this.me, %peer, %error, "have failed");
                            None
                        }
                        Err(_) => {
                            debug!(me = %this.me, %peer, "have timed out");
                            None
                        }
                    }
                };
                (at, peer, bitmaps)
            }
        }))
        .await
    }

    pub(crate) async fn local_have(&self, stripes: Vec<ContentId>) -> Vec<[u8; 32]> {
        on_blocking_pool(&self.store, move |store| {
            stripes
                .iter()
                .map(|stripe| {
                    let mut bitmap = [0u8; 32];
                    for (index, _) in store.shares_of_stripe(stripe).unwrap_or_default() {
                        wire::set_bit(&mut bitmap, index);
                    }
                    bitmap
                })
                .collect()
        })
        .await
    }
}
