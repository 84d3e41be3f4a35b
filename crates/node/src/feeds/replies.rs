//! Replies from people you do not follow, with no pub server.
//!
//! A reply is an entry of its author's own feed, so the replier's
//! followers get it anyway. The author of the post answered, and that
//! author's followers, do not follow the replier: so a reply also travels
//! to the nodes that hold the answered feed — its author and up to
//! [`ANNOUNCE_TO`] holders announced in the DHT — as a `reply` frame.
//! Each keeps it under the post (`feed_replies`) and hands it on to its
//! subscribers of that feed, who do the same; a node hands on only what is
//! new to it, so the flood stops. The withdrawal of a reply (a deletion
//! entry) travels the same way and leaves the reply's head alone.
//!
//! Nothing is trusted: the entry's signature is checked, it must answer a
//! post this node holds, and only its own author can withdraw it. Bounds:
//! [`MAX_REPLIES_PER_POST`] under one post, [`MAX_REPLIES_PER_FEED`] under
//! one feed, and the per-author rate of pushed entries.

use std::collections::HashSet;

use kith_base::feed::{self, Body, Entry, EntryId, HEAD_LEN, Post};
use kith_store::{ReplyDecision, ReplyKey, ReplyLimits, StoreError};
use tracing::debug;

use super::{FeedItem, Feeds, item_of};
use crate::protocols::feeds::client;
use crate::protocols::feeds::wire::{encode_reply, tag};
use kith_net::PeerId;

/// Replies kept under one post.
pub(crate) const MAX_REPLIES_PER_POST: usize = 256;
/// Replies kept under all the posts of one feed.
pub(crate) const MAX_REPLIES_PER_FEED: usize = 10_000;
/// Holders of the answered feed a replier tells, besides its author.
const ANNOUNCE_TO: usize = 8;
/// The newest entries of each held feed searched for the post a reply
/// answers.
const SEARCHED: usize = 10_000;
/// Replies shown under one post in a timeline.
const SHOWN_PER_POST: usize = 64;

const LIMITS: ReplyLimits = ReplyLimits {
    per_post: MAX_REPLIES_PER_POST,
    per_feed: MAX_REPLIES_PER_FEED,
};

impl Feeds {
    /// After this node posted `entry`, a reply to `answered` or the
    /// withdrawal of one: if a feed held here has that post, keep the entry
    /// under it and tell the feed's author and holders.
    pub(super) async fn announce_reply(&self, entry: &Entry, answered: EntryId) {
        let Some(parent_author) = self.holder_of(&answered).await else {
            debug!(post = %answered, "a reply to a post of no feed held here: only followers see it");
            return;
        };
        let _ = self.keep(parent_author, answered, entry).await;
        let payload = encode_reply(&parent_author, &answered, &entry.to_bytes());
        let this = self.clone();
        tokio::spawn(async move {
            let me = this.inner.identity.peer_id();
            let mut peers = Vec::new();
            if let Some(author) = kith_base::identity::peer_id_of(&parent_author)
                && author != me
            {
                peers.push(author);
            }
            match this
                .inner
                .net
                .providers(feed::holders_key(&parent_author))
                .await
            {
                Ok(holders) => peers.extend(
                    holders
                        .into_iter()
                        .filter(|peer| *peer != me)
                        .take(ANNOUNCE_TO),
                ),
                Err(error) => debug!(%error, "no holders found for a replied feed"),
            }
            let mut seen = HashSet::new();
            peers.retain(|peer| seen.insert(*peer));
            let asks = peers.into_iter().map(|peer| {
                let net = this.inner.net.clone();
                let payload = &payload;
                async move {
                    if let Err(error) = client::ask_head(&net, peer, tag::REPLY, payload).await {
                        debug!(%peer, %error, "a reply was not announced");
                    }
                }
            });
            futures::future::join_all(asks).await;
        });
    }

    /// A reply (or a withdrawal) `peer` announced under `parent_author`'s
    /// post `answered` (the server). Returns whether it was new here, or
    /// why it was refused.
    pub(crate) async fn take_reply(
        &self,
        peer: PeerId,
        parent_author: [u8; 32],
        answered: EntryId,
        bytes: &[u8],
    ) -> Result<bool, String> {
        let entry = Entry::from_bytes(bytes).map_err(|error| error.to_string())?;
        if parent_author != self.me() && !self.follows(&parent_author).await {
            return Err("this node does not hold that feed".into());
        }
        match entry.body() {
            Some(Body::Post(Post {
                reply_to: Some(to), ..
            })) if to == answered => {}
            Some(Body::Deletion(_)) => {}
            _ => return Err("that entry is not a reply to that post".into()),
        }
        if self
            .find(&parent_author, &answered)
            .await
            .map_err(|error| error.to_string())?
            .is_none()
        {
            return Err("this node holds no such post".into());
        }
        // Counted per replier and per sending peer: neither a new key per
        // reply nor one peer relaying many repliers floods the thread.
        let sender = kith_base::identity::ed25519_key(&peer).unwrap_or_default();
        if !self.within_rate(&entry.author()) || !self.within_rate(&sender) {
            return Err("too many replies at once; slow down".into());
        }
        let new = self
            .keep(parent_author, answered, &entry)
            .await
            .map_err(|error| error.to_string())?;
        if new {
            self.inner.appended.send_modify(|count| *count += 1);
            self.hand_on(
                &parent_author,
                Some(peer),
                tag::REPLY,
                encode_reply(&parent_author, &answered, bytes),
            );
        }
        Ok(new)
    }

    /// Keeps a reply under its post, or withdraws the reply a deletion
    /// names. Returns whether anything changed; a full post is an error.
    async fn keep(
        &self,
        parent_author: [u8; 32],
        answered: EntryId,
        entry: &Entry,
    ) -> Result<bool, KeepError> {
        let store = self.inner.store.clone();
        let replier = entry.author();
        let bytes = entry.to_bytes();
        match entry.body() {
            Some(Body::Deletion(withdrawn)) => Ok(crate::files::blocking(move || {
                store
                    .feeds()
                    .replace_reply(&parent_author, &answered.0, &replier, |held| {
                        (EntryId::of_stored(held) == Some(withdrawn) && held.len() > HEAD_LEN)
                            .then(|| held[..HEAD_LEN].to_vec())
                    })
            })
            .await?),
            _ => {
                let at = ReplyKey {
                    parent_author,
                    parent_id: answered.0,
                    replier,
                    sequence: entry.sequence(),
                };
                match crate::files::blocking(move || store.feeds().offer_reply(at, &bytes, LIMITS))
                    .await?
                {
                    ReplyDecision::Stored => Ok(true),
                    ReplyDecision::Held => Ok(false),
                    ReplyDecision::Full => Err(KeepError::Full),
                }
            }
        }
    }

    /// The author of a feed held here that has entry `id` (its newest
    /// [`SEARCHED`] entries are searched).
    async fn holder_of(&self, id: &EntryId) -> Option<[u8; 32]> {
        let mut authors = vec![self.me()];
        authors.extend(self.followed().await.ok()?);
        let store = self.inner.store.clone();
        let id = *id;
        crate::files::blocking(move || {
            let feeds = store.feeds();
            authors.into_iter().find(|author| {
                feeds
                    .find(author, SEARCHED, |bytes| {
                        EntryId::of_stored(bytes) == Some(id)
                    })
                    .is_ok_and(|found| found.is_some())
            })
        })
        .await
    }

    /// The replies kept under the posts in `shown` whose authors are not
    /// among `authors` (those are in the timeline already).
    pub(super) async fn replies_to_shown(
        &self,
        authors: &[[u8; 32]],
        shown: &[FeedItem],
    ) -> Result<Vec<FeedItem>, StoreError> {
        let shown_posts: Vec<([u8; 32], EntryId)> = shown
            .iter()
            .filter_map(|item| {
                let author = item.author.parse::<PeerId>().ok()?;
                Some((
                    kith_base::identity::ed25519_key(&author)?,
                    item.id.parse().ok()?,
                ))
            })
            .collect();
        let listed: HashSet<[u8; 32]> = authors.iter().copied().collect();
        let store = self.inner.store.clone();
        crate::files::blocking(move || {
            let feeds = store.feeds();
            let mut items = Vec::new();
            for (author, post) in shown_posts {
                for (at, bytes) in feeds.replies(&author, Some(&post.0), SHOWN_PER_POST)? {
                    if listed.contains(&at.replier) {
                        continue;
                    }
                    if let Some(item) = Entry::from_bytes(&bytes).ok().and_then(|e| item_of(&e)) {
                        items.push(item);
                    }
                }
            }
            Ok(items)
        })
        .await
    }
}

/// Why a reply was not kept.
#[derive(Debug, thiserror::Error)]
enum KeepError {
    #[error("that post has as many replies as this node keeps")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}
