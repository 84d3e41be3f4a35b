//! Feeds on the network: posting to this node's feed, following others',
//! replicating them, and the timeline. The wire is the room
//! [`crate::protocols::feeds`]; the entry format is [`kith_base::feed`];
//! `docs/feeds.md` tells the whole story.
//!
//! - **Post**: sign the next entry of this node's feed, keep it, and push
//!   it to the peers subscribed to this feed.
//! - **Follow**: remember the author, fetch the whole feed from the author
//!   or from any node that announces it holds it (a DHT provider record
//!   under [`kith_base::feed::holders_key`]), verifying every entry and its
//!   link to the one before, then announce that this node holds it too and
//!   subscribe to new entries.
//! - **Live**: a node that appends an entry (its own, or one it replicated)
//!   pushes it to the peers subscribed to that author with it; a push that
//!   skips entries makes the receiver fetch the gap from the pusher. Every
//!   [`FeedSettings::check_every`] each followed feed is fetched again from
//!   its sources (catching up after being offline) and subscriptions are
//!   renewed.
//! - **Forks**: a second valid entry with a sequence already held is kept
//!   as proof and the feed is marked forked; the first stays, and
//!   replication of the rest goes on.
//! - **Deletions**: an entry withdrawing an earlier one of the same author
//!   makes every holder drop the earlier one's body (its signed head stays,
//!   so the chain still verifies).
//! - **Replies from anyone** ([`replies`]): a reply also travels to the
//!   holders of the answered feed, who keep it under its post and hand it
//!   on to their subscribers, so the author and its followers see replies
//!   from people they do not follow.
//! - **Attachments** ([`attachments`]): a follower keeps a full copy of
//!   the attached files of the feeds it follows, within
//!   [`FeedSettings::attachment_bytes`] per feed, and serves them.

mod attachments;
mod replies;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_base::feed::{self, Body, Entry, EntryId, FeedError, Post};
use kith_base::{Identity, PeerId};
use kith_net::Client;
use kith_store::{EntryDecision, Store, StoreError};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::lifecycle::Lifecycle;
use crate::protocols::feeds::client;
use crate::protocols::feeds::wire::{MAX_BATCH, tag};

/// How the node replicates feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedSettings {
    /// How often each followed feed is fetched again from its sources.
    pub check_every: Duration,
    /// Most entries kept of one followed feed.
    pub max_entries: u64,
    /// Most pushed entries taken per author per second.
    pub pushes_per_second: u32,
    /// Most bytes of attachments copied for one followed feed.
    pub attachment_bytes: u64,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(30),
            max_entries: 100_000,
            pushes_per_second: 20,
            attachment_bytes: 256 << 20,
        }
    }
}

/// How long a subscription lasts unless renewed.
const SUBSCRIPTION_TTL: Duration = Duration::from_secs(600);
/// Subscribers kept per author.
const MAX_SUBSCRIBERS: usize = 64;
/// Authors whose subscribers are kept.
const MAX_SUBSCRIBED_AUTHORS: usize = 1024;
/// Sources asked per sync: the author, then holders announced in the DHT.
const MAX_SOURCES: usize = 8;
/// Sources subscribed to per followed feed.
const SUBSCRIBE_TO: usize = 2;

/// Why a feed operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedOpError {
    /// A post too large, or an id that is not one.
    #[error(transparent)]
    Invalid(#[from] FeedError),
    /// Following this node itself.
    #[error("this is this node's own feed: it is always shown")]
    Own,
    /// Unfollowing someone not followed.
    #[error("{0} is not followed (see `kith feed`)")]
    NotFollowed(PeerId),
    /// A deletion of something that is not this node's entry.
    #[error("no post {0} in this node's feed")]
    NoSuchPost(EntryId),
    /// The node's database failed.
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<StoreError> for FeedOpError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// One entry as the timeline shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeedItem {
    /// The author's peer id.
    pub author: String,
    /// Its sequence in the author's feed.
    pub sequence: u64,
    /// Its id (what replies and deletions name).
    pub id: String,
    /// When the author wrote it (Unix ms, by the author's clock).
    pub time_ms: u64,
    /// The text.
    pub text: String,
    /// The post it answers.
    pub reply_to: Option<String>,
    /// Attachments: (name, capability).
    pub attachments: Vec<(String, String)>,
}

/// One feed this node holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeedInfo {
    /// The author's peer id.
    pub author: String,
    /// The highest sequence held.
    pub head: u64,
    /// Whether it is this node's own.
    pub own: bool,
    /// Sequences where the author signed two entries (a fork).
    pub forks: Vec<u64>,
    /// Bytes of its attachments copied here (followed feeds only).
    #[serde(default)]
    pub attachment_bytes: u64,
}

/// What a follow found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Followed {
    /// The author.
    pub author: String,
    /// Entries held after the first sync.
    pub head: u64,
    /// Sources that answered.
    pub sources: usize,
}

/// A follow row: when.
#[derive(Serialize, Deserialize)]
struct FollowRow {
    version: u8,
    #[serde(with = "kith_base::layout::le")]
    since_ms: u64,
}

/// What happened to an entry offered to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    Appended,
    Held,
    Fork,
    /// It does not link to what is held (a gap, or a broken link).
    Refused,
}

/// author → the peers subscribed to its new entries, and since when.
type Subscribers = HashMap<[u8; 32], Vec<(PeerId, Instant)>>;

/// The feeds part of a node. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Feeds {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: Identity,
    net: Client,
    store: Store,
    settings: FeedSettings,
    /// author → peers that asked for its new entries, and when.
    subscribers: Mutex<Subscribers>,
    /// author → (second, pushes taken in it).
    rate: Mutex<HashMap<[u8; 32], (Instant, u32)>>,
    /// Feeds being synced now.
    syncing: Mutex<HashSet<[u8; 32]>>,
    /// Feeds this node announced it holds.
    announced: Mutex<HashSet<[u8; 32]>>,
    /// Wakes `kith feed --follow` watchers: the count of entries appended
    /// (and replies kept).
    appended: tokio::sync::watch::Sender<u64>,
    /// Fetches the attached files of followed feeds.
    shares: crate::files::Shares,
    /// Wakes the attachment copier: an entry with attachments came.
    copy_wanted: tokio::sync::Notify,
    /// Attachments whose copy failed, and when: not tried again at once.
    copy_failures: Mutex<HashMap<kith_base::ContentId, Instant>>,
}

impl Feeds {
    pub(crate) fn new(
        identity: Identity,
        net: Client,
        store: Store,
        shares: crate::files::Shares,
        settings: FeedSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity,
                net,
                store,
                settings,
                subscribers: Mutex::default(),
                rate: Mutex::default(),
                syncing: Mutex::default(),
                announced: Mutex::default(),
                appended: tokio::sync::watch::channel(0).0,
                shares,
                copy_wanted: tokio::sync::Notify::new(),
                copy_failures: Mutex::default(),
            }),
        }
    }

    /// The server and the replication loop.
    pub(crate) fn tasks(&self, lifecycle: &Lifecycle) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(crate::protocols::feeds::server::serve(
                self.clone(),
                self.inner.net.streams(),
                lifecycle.clone(),
            )),
            tokio::spawn(self.clone().replicate_periodically(lifecycle.clone())),
            tokio::spawn(
                self.clone()
                    .copy_attachments_periodically(lifecycle.clone()),
            ),
        ]
    }

    fn me(&self) -> [u8; 32] {
        self.inner.identity.public_key()
    }

    /// Signs and appends a post (or a deletion) to this node's feed, and
    /// pushes it to the subscribers.
    pub(crate) async fn post(&self, body: Body) -> Result<Entry, FeedOpError> {
        let me = self.me();
        // The post a reply answers; for a deletion, the one the withdrawn
        // post answered (read before its body is dropped).
        let mut answered = match &body {
            Body::Post(Post { reply_to, .. }) => *reply_to,
            Body::Deletion(_) => None,
        };
        if let Body::Deletion(target) = &body {
            let Some((_, withdrawn)) = self.find(&me, target).await? else {
                return Err(FeedOpError::NoSuchPost(*target));
            };
            if let Some(Body::Post(Post { reply_to, .. })) = withdrawn.body() {
                answered = reply_to;
            }
        }
        let store = self.inner.store.clone();
        let identity = self.inner.identity.clone();
        // Sign and append in one blocking call, so two posts at once take
        // two sequences.
        let entry = crate::files::blocking(move || {
            let _one_writer = POST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let feeds = store.feeds();
            let last = feeds.newest(&me, 1)?;
            let (sequence, previous) = match last.first() {
                Some((sequence, bytes)) => {
                    let previous = Entry::from_bytes(bytes).map_err(FeedOpError::Invalid)?;
                    (sequence + 1, Some(previous.id()))
                }
                None => (1, None),
            };
            let entry = Entry::sign(&identity, sequence, previous, now_ms(), &body)?;
            feeds.offer(&me, sequence, &entry.to_bytes(), |_, _| {
                EntryDecision::Append
            })?;
            Ok::<_, FeedOpError>(entry)
        })
        .await?;
        info!(sequence = entry.sequence(), "posted");
        self.appended(&entry, None).await;
        if let Some(answered) = answered {
            self.announce_reply(&entry, answered).await;
        }
        self.announce(me).await;
        Ok(entry)
    }

    /// Follows `author`: fetches the whole feed, then keeps it.
    pub(crate) async fn follow(&self, author: PeerId) -> Result<Followed, FeedOpError> {
        let key = author_key(&author)?;
        if key == self.me() {
            return Err(FeedOpError::Own);
        }
        let row = kith_base::layout::to_vec(&FollowRow {
            version: 1,
            since_ms: now_ms(),
        });
        let store = self.inner.store.clone();
        crate::files::blocking(move || store.feeds().set_follow(&key, &row)).await?;
        let sources = self.sync(key).await;
        let head = self.head(&key).await;
        info!(%author, head, sources, "following");
        Ok(Followed {
            author: author.to_string(),
            head,
            sources,
        })
    }

    /// Stops following `author` and drops its entries.
    pub(crate) async fn unfollow(&self, author: PeerId) -> Result<(), FeedOpError> {
        let key = author_key(&author)?;
        let store = self.inner.store.clone();
        let removed = crate::files::blocking(move || {
            let feeds = store.feeds();
            let removed = feeds.remove_follow(&key)?;
            if removed {
                feeds.drop_feed(&key)?;
            }
            Ok::<_, StoreError>(removed)
        })
        .await?;
        if !removed {
            return Err(FeedOpError::NotFollowed(author));
        }
        self.inner
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let _ = self.inner.net.stop_providing(feed::holders_key(&key)).await;
        Ok(())
    }

    /// The newest `limit` posts of `author` (or of this node and everyone
    /// it follows), newest first, with the replies to them that reached
    /// this node from people whose feeds it does not hold. Deleted posts
    /// and deletions are left out.
    pub(crate) async fn timeline(
        &self,
        author: Option<PeerId>,
        limit: usize,
    ) -> Result<Vec<FeedItem>, FeedOpError> {
        let authors = match author {
            Some(author) => vec![author_key(&author)?],
            None => {
                let mut authors = vec![self.me()];
                authors.extend(self.followed().await?);
                authors
            }
        };
        let store = self.inner.store.clone();
        let limit = limit.max(1);
        let read = authors.clone();
        let mut items = crate::files::blocking(move || {
            let feeds = store.feeds();
            let mut items = Vec::new();
            for author in read {
                // Deletions and deleted posts take room: read a little more.
                for (_, bytes) in feeds.newest(&author, limit.saturating_mul(2))? {
                    if let Some(item) = Entry::from_bytes(&bytes).ok().and_then(|e| item_of(&e)) {
                        items.push(item);
                    }
                }
            }
            Ok::<_, StoreError>(items)
        })
        .await?;
        items.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then(b.sequence.cmp(&a.sequence)));
        items.truncate(limit);
        let replies = self.replies_to_shown(&authors, &items).await?;
        items.extend(replies);
        items.sort_by(|a, b| b.time_ms.cmp(&a.time_ms).then(b.sequence.cmp(&a.sequence)));
        Ok(items)
    }

    /// The feeds this node holds: its own, then the followed ones.
    pub(crate) async fn feeds(&self) -> Result<Vec<FeedInfo>, FeedOpError> {
        let mut authors = vec![self.me()];
        authors.extend(self.followed().await?);
        let store = self.inner.store.clone();
        let me = self.me();
        Ok(crate::files::blocking(move || {
            let feeds = store.feeds();
            authors
                .into_iter()
                .filter_map(|author| {
                    Some(FeedInfo {
                        author: kith_base::identity::peer_id_of(&author)?.to_string(),
                        head: feeds.head(&author).ok()?,
                        own: author == me,
                        forks: feeds
                            .forks(&author)
                            .ok()?
                            .into_iter()
                            .map(|(sequence, _)| sequence)
                            .collect(),
                        attachment_bytes: feeds
                            .copies(&author)
                            .ok()?
                            .iter()
                            .map(|(_, size)| size)
                            .sum(),
                    })
                })
                .collect()
        })
        .await)
    }

    /// A receiver that changes whenever an entry is appended.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// Entries of a held feed after `after`, for a peer (the server).
    pub(crate) async fn served_after(
        &self,
        author: &[u8; 32],
        after: u64,
        limit: usize,
    ) -> Vec<Vec<u8>> {
        let store = self.inner.store.clone();
        let author = *author;
        crate::files::blocking(move || store.feeds().after(&author, after, limit.min(MAX_BATCH)))
            .await
            .map(|rows| rows.into_iter().map(|(_, bytes)| bytes).collect())
            .unwrap_or_default()
    }

    /// An entry `peer` pushed (the server). Returns the head held after, or
    /// why it was refused.
    pub(crate) async fn take_pushed(&self, peer: PeerId, bytes: &[u8]) -> Result<u64, String> {
        let entry = Entry::from_bytes(bytes).map_err(|error| error.to_string())?;
        let author = entry.author();
        if !self.follows(&author).await {
            return Err("this node does not follow that feed".into());
        }
        // Only entries new here count against the rate: a follower hears
        // each entry from every source it subscribed to, and duplicates
        // cost a signature check and a read, not a write.
        if entry.sequence() > self.head(&author).await && !self.within_rate(&author) {
            return Err("too many entries of this feed at once; slow down".into());
        }
        let taken = self.take(&entry).await.map_err(|error| error.to_string())?;
        match taken {
            Taken::Appended => self.appended(&entry, Some(peer)).await,
            Taken::Refused => {
                // A gap: fetch what is missing from the pusher.
                let this = self.clone();
                tokio::spawn(async move {
                    this.sync_from(peer, &author).await;
                });
            }
            Taken::Held | Taken::Fork => {}
        }
        Ok(self.head(&author).await)
    }

    /// `peer` asks for new entries of `author` (the server). Only feeds this
    /// node holds can be subscribed to.
    pub(crate) async fn subscribe(&self, peer: PeerId, author: [u8; 32]) -> Result<u64, String> {
        if author != self.me() && !self.follows(&author).await {
            return Err("this node does not hold that feed".into());
        }
        {
            let mut subscribers = self
                .inner
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if subscribers.len() >= MAX_SUBSCRIBED_AUTHORS && !subscribers.contains_key(&author) {
                return Err("this node keeps as many subscriptions as it will".into());
            }
            let list = subscribers.entry(author).or_default();
            list.retain(|(p, at)| *p != peer && at.elapsed() < SUBSCRIPTION_TTL);
            if list.len() >= MAX_SUBSCRIBERS {
                list.remove(0);
            }
            list.push((peer, Instant::now()));
        }
        Ok(self.head(&author).await)
    }

    /// Verifies `entry` and offers it to the store.
    async fn take(&self, entry: &Entry) -> Result<Taken, StoreError> {
        let store = self.inner.store.clone();
        let incoming = entry.clone();
        let max = self.inner.settings.max_entries;
        let decision = crate::files::blocking(move || {
            let bytes = incoming.to_bytes();
            store.feeds().offer(
                &incoming.author(),
                incoming.sequence(),
                &bytes,
                |here, before| decide(&incoming, here, before, max),
            )
        })
        .await?;
        let taken = match decision {
            EntryDecision::Append => Taken::Appended,
            EntryDecision::Held => Taken::Held,
            EntryDecision::Fork => {
                warn!(
                    author = ?kith_base::identity::peer_id_of(&entry.author()),
                    sequence = entry.sequence(),
                    "a fork: the author signed two entries of one sequence; both are kept as proof"
                );
                Taken::Fork
            }
            EntryDecision::Refuse => Taken::Refused,
        };
        Ok(taken)
    }

    /// After an entry was appended: a deletion drops its target's body; the
    /// watchers wake; the subscribers get it (but `from`, who sent it).
    async fn appended(&self, entry: &Entry, from: Option<PeerId>) {
        match entry.body() {
            Some(Body::Deletion(target)) => self.drop_body(&entry.author(), &target).await,
            Some(Body::Post(post))
                if !post.attachments.is_empty() && entry.author() != self.me() =>
            {
                self.inner.copy_wanted.notify_one();
            }
            _ => {}
        }
        self.inner.appended.send_modify(|count| *count += 1);
        self.hand_on(&entry.author(), from, tag::PUSH, entry.to_bytes());
    }

    /// Sends `payload` as `request` (a push, a reply) to the peers
    /// subscribed to `author`'s feed, but `from`, each in a task of its own.
    fn hand_on(&self, author: &[u8; 32], from: Option<PeerId>, request: u8, payload: Vec<u8>) {
        let subscribers: Vec<PeerId> = {
            let mut all = self
                .inner
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match all.get_mut(author) {
                Some(list) => {
                    list.retain(|(_, at)| at.elapsed() < SUBSCRIPTION_TTL);
                    list.iter()
                        .map(|(peer, _)| *peer)
                        .filter(|peer| Some(*peer) != from)
                        .collect()
                }
                None => Vec::new(),
            }
        };
        let payload = Arc::new(payload);
        for peer in subscribers {
            let net = self.inner.net.clone();
            let payload = Arc::clone(&payload);
            tokio::spawn(async move {
                if let Err(error) = client::ask_head(&net, peer, request, &payload).await {
                    debug!(%peer, %error, request, "a feed entry was not handed on");
                }
            });
        }
    }

    /// Drops the body of `author`'s entry `target`, if held, and forgets
    /// the copies of its attachments.
    async fn drop_body(&self, author: &[u8; 32], target: &EntryId) {
        let Ok(Some((sequence, entry))) = self.find(author, target).await else {
            return;
        };
        if let Some(Body::Post(post)) = entry.body() {
            self.forget_copies(author, &post.attachments).await;
        }
        let store = self.inner.store.clone();
        let author = *author;
        let bare = entry.without_body().to_bytes();
        if let Err(error) =
            crate::files::blocking(move || store.feeds().replace(&author, sequence, &bare)).await
        {
            warn!(%error, "cannot drop a deleted post's body");
        }
    }

    /// `author`'s entry `id`, searched newest first.
    async fn find(
        &self,
        author: &[u8; 32],
        id: &EntryId,
    ) -> Result<Option<(u64, Entry)>, StoreError> {
        let store = self.inner.store.clone();
        let (author, id) = (*author, *id);
        let max = self.inner.settings.max_entries as usize;
        crate::files::blocking(move || {
            // Rows were verified when stored: hash each head, and read
            // (and verify again) only the one that matches.
            let found = store
                .feeds()
                .find(&author, max, |bytes| EntryId::of_stored(bytes) == Some(id))?;
            Ok(found.and_then(|(sequence, bytes)| {
                Entry::from_bytes(&bytes)
                    .ok()
                    .map(|entry| (sequence, entry))
            }))
        })
        .await
    }

    async fn head(&self, author: &[u8; 32]) -> u64 {
        let store = self.inner.store.clone();
        let author = *author;
        crate::files::blocking(move || store.feeds().head(&author))
            .await
            .unwrap_or(0)
    }

    async fn followed(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let store = self.inner.store.clone();
        let rows = crate::files::blocking(move || store.feeds().follows()).await?;
        Ok(rows.into_iter().map(|(author, _)| author).collect())
    }

    async fn follows(&self, author: &[u8; 32]) -> bool {
        self.followed()
            .await
            .is_ok_and(|followed| followed.contains(author))
    }

    fn within_rate(&self, author: &[u8; 32]) -> bool {
        let mut rate = self.inner.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.len() >= MAX_SUBSCRIBED_AUTHORS && !rate.contains_key(author) {
            rate.retain(|_, (start, _)| start.elapsed() < Duration::from_secs(1));
        }
        let (start, count) = rate.entry(*author).or_insert((Instant::now(), 0));
        if start.elapsed() >= Duration::from_secs(1) {
            *start = Instant::now();
            *count = 0;
        }
        *count += 1;
        *count <= self.inner.settings.pushes_per_second
    }

    /// Fetches `author`'s feed from its sources (the author first, then the
    /// holders announced in the DHT), subscribes to a few, and announces
    /// that this node holds it. Returns how many sources answered.
    pub(crate) async fn sync(&self, author: [u8; 32]) -> usize {
        {
            let mut syncing = self.inner.syncing.lock().unwrap_or_else(|e| e.into_inner());
            if !syncing.insert(author) {
                return 0;
            }
        }
        let mut sources = Vec::new();
        if let Some(peer) = kith_base::identity::peer_id_of(&author) {
            sources.push(peer);
        }
        let me = self.inner.identity.peer_id();
        match self.inner.net.providers(feed::holders_key(&author)).await {
            Ok(holders) => sources.extend(holders.into_iter().filter(|peer| *peer != me)),
            Err(error) => debug!(%error, "no holders found for a feed"),
        }
        // The author announces its own feed too: ask each source once.
        let mut seen = HashSet::new();
        sources.retain(|peer| seen.insert(*peer));
        sources.truncate(MAX_SOURCES);
        let mut answered = 0;
        let mut subscribed = 0;
        for peer in sources {
            if self.sync_from(peer, &author).await {
                answered += 1;
                if subscribed < SUBSCRIBE_TO
                    && client::ask_head(&self.inner.net, peer, tag::SUBSCRIBE, &author)
                        .await
                        .is_ok()
                {
                    subscribed += 1;
                }
            }
        }
        if self.head(&author).await > 0 {
            self.announce(author).await;
        }
        self.inner
            .syncing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&author);
        answered
    }

    /// Fetches `author`'s entries after this node's head from `peer`, batch
    /// by batch, until it has no more or sends one that does not check out.
    /// Returns whether the peer answered.
    async fn sync_from(&self, peer: PeerId, author: &[u8; 32]) -> bool {
        let mut answered = false;
        let max = self.inner.settings.max_entries;
        loop {
            let head = self.head(author).await;
            if head >= max {
                return answered;
            }
            let batch =
                match client::fetch(&self.inner.net, peer, author, head, MAX_BATCH as u16).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        debug!(%peer, %error, "cannot fetch a feed");
                        return answered;
                    }
                };
            answered = true;
            if batch.is_empty() {
                return true;
            }
            // Verified on the blocking pool (a batch is up to 256
            // signatures), then stored in one transaction.
            let verified = crate::files::blocking(move || {
                batch
                    .iter()
                    .map_while(|bytes| Entry::from_bytes(bytes).ok())
                    .collect::<Vec<_>>()
            })
            .await;
            let whole = verified.iter().all(|entry| entry.author() == *author);
            let entries: Vec<Entry> = verified
                .into_iter()
                .take_while(|entry| entry.author() == *author)
                .collect();
            if entries.is_empty() {
                warn!(%peer, "a peer sent a feed entry that does not check out");
                return true;
            }
            let store = self.inner.store.clone();
            let batch: Vec<(u64, Vec<u8>)> = entries
                .iter()
                .map(|entry| (entry.sequence(), entry.to_bytes()))
                .collect();
            let key = *author;
            let checked = entries.clone();
            let decisions = crate::files::blocking(move || {
                store
                    .feeds()
                    .offer_batch(&key, &batch, |index, here, before| {
                        decide(&checked[index], here, before, max)
                    })
            })
            .await;
            let decisions = match decisions {
                Ok(decisions) => decisions,
                Err(error) => {
                    warn!(%error, "cannot store feed entries");
                    return true;
                }
            };
            let mut stop = !whole;
            for (entry, decision) in entries.iter().zip(&decisions) {
                match decision {
                    EntryDecision::Append => self.appended(entry, Some(peer)).await,
                    EntryDecision::Refuse => {
                        debug!(%peer, "a peer's feed does not link to what is held");
                        stop = true;
                    }
                    EntryDecision::Held | EntryDecision::Fork => {}
                }
            }
            let progressed = decisions.contains(&EntryDecision::Append);
            if stop || !progressed || decisions.len() < entries.len() {
                if !whole {
                    warn!(%peer, "a peer sent a feed entry that does not check out");
                }
                return true;
            }
        }
    }

    /// Announces (once) that this node holds `author`'s feed.
    async fn announce(&self, author: [u8; 32]) {
        let new = self
            .inner
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(author);
        if new
            && let Err(error) = self
                .inner
                .net
                .start_providing(feed::holders_key(&author))
                .await
        {
            debug!(%error, "cannot announce a feed");
            self.inner
                .announced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&author);
        }
    }

    /// Fetches every followed feed again now and then, and at once when
    /// the author of a followed feed connects (it may have posted while
    /// apart, and its subscriptions were lost if it restarted).
    async fn replicate_periodically(self, lifecycle: Lifecycle) {
        let mut events = self.inner.net.events();
        let mut next_round = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = lifecycle.stopping() => return,
                () = tokio::time::sleep_until(next_round) => {
                    for author in self.followed().await.unwrap_or_default() {
                        tokio::select! {
                            () = lifecycle.stopping() => return,
                            _ = self.sync(author) => {}
                        }
                    }
                    if self.head(&self.me()).await > 0 {
                        self.announce(self.me()).await;
                    }
                    next_round = tokio::time::Instant::now() + self.inner.settings.check_every;
                }
                event = events.recv() => match event {
                    Ok(kith_net::NetEvent::PeerConnected(peer)) => {
                        if let Some(author) = kith_base::identity::ed25519_key(&peer)
                            && self.follows(&author).await
                        {
                            let this = self.clone();
                            tokio::spawn(async move { this.sync(author).await });
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// One writer of this node's own feed at a time (sequence numbers).
static POST_LOCK: Mutex<()> = Mutex::new(());

/// What to do with `entry` given the entry held at its sequence and the
/// one before.
fn decide(entry: &Entry, here: Option<&[u8]>, before: Option<&[u8]>, max: u64) -> EntryDecision {
    if let Some(here) = here {
        return match Entry::from_bytes(here) {
            Ok(held) if held.id() == entry.id() => EntryDecision::Held,
            Ok(_) => EntryDecision::Fork,
            // A damaged row: the verified entry replaces it.
            Err(_) => EntryDecision::Append,
        };
    }
    if entry.sequence() > max {
        return EntryDecision::Refuse;
    }
    let previous = match before {
        None if entry.sequence() == 1 => None,
        None => return EntryDecision::Refuse,
        Some(bytes) => match Entry::from_bytes(bytes) {
            Ok(previous) => Some(previous),
            Err(_) => return EntryDecision::Refuse,
        },
    };
    if entry.follows(previous.as_ref()) {
        EntryDecision::Append
    } else {
        EntryDecision::Refuse
    }
}

/// The timeline's view of a post; `None` for deletions and deleted posts.
fn item_of(entry: &Entry) -> Option<FeedItem> {
    let Body::Post(Post {
        text,
        reply_to,
        attachments,
    }) = entry.body()?
    else {
        return None;
    };
    Some(FeedItem {
        author: kith_base::identity::peer_id_of(&entry.author())?.to_string(),
        sequence: entry.sequence(),
        id: entry.id().to_string(),
        time_ms: entry.time_ms(),
        text,
        reply_to: reply_to.map(|id| id.to_string()),
        attachments: attachments
            .into_iter()
            .map(|(name, capability)| (name, capability.to_string()))
            .collect(),
    })
}

/// The Ed25519 key of an author's peer id.
fn author_key(author: &PeerId) -> Result<[u8; 32], FeedOpError> {
    kith_base::identity::ed25519_key(author)
        .ok_or_else(|| FeedOpError::Invalid(FeedError::Malformed("not an Ed25519 peer id".into())))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
