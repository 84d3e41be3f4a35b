//! The node's sub-handles: one per part of what a node does, each a thin
//! borrowed view of [`Node`] (`node.files()`, `node.friends()`,
//! `node.names()`, `node.upkeep()`), so a caller sees the operations of one
//! part together and a new part (feeds) gets its own handle instead of
//! growing `Node`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kith_base::{Capability, PeerId};
use kith_codec::{FileMeta, Folder, Params};

use crate::feeds::{FeedInfo, FeedItem, FeedOpError, Followed};
use crate::files::{
    Download, GetError, PathError, PutError, PutReport, RmReport, StatReport, UpkeepCounters,
};
use crate::friends::{Delivery, InboxItem, SendError};
use crate::names::{MirrorInfo, MyName, NameOpError, Published, Resolved};
use crate::node::{Node, NodeError};

/// Files and folders on the network: put, get, stat, rm. From
/// [`Node::files`].
#[derive(Clone, Copy, Debug)]
pub struct Files<'a>(pub(crate) &'a Node);

impl Files<'_> {
    /// Stores a file on the network: encrypts and erasure-codes what
    /// `reader` yields and places every share on distinct peers. Returns
    /// only once every stripe has all its shares accepted.
    ///
    /// Cancel-safe: dropping the future stops every share transfer it
    /// started.
    pub async fn put(
        &self,
        reader: Box<dyn std::io::Read + Send>,
        params: Params,
        meta: FileMeta,
    ) -> Result<PutReport, PutError> {
        self.0.shares().put(reader, params, meta).await
    }

    /// Finds and opens a file's manifest; fetch the bytes with
    /// [`Download::into_stream`]. What is fetched is kept in this node's
    /// store (within its quota, best effort), so that this node serves the
    /// file to later downloaders too.
    pub async fn get(&self, capability: &Capability) -> Result<Download, GetError> {
        self.0.shares().open(capability).await
    }

    /// [`Files::get`] without keeping anything: nothing fetched is written
    /// to this node's store (`kith get --no-cache`). Other downloaders of
    /// the same file at the same time are still served from memory.
    pub async fn get_uncached(&self, capability: &Capability) -> Result<Download, GetError> {
        self.0
            .shares()
            .open_with(capability, crate::files::Caching::Off)
            .await
    }

    /// Stores a folder's listing (its entries' files must be stored
    /// already) and returns its folder capability.
    pub async fn put_folder(&self, folder: &Folder, params: Params) -> Result<PutReport, PutError> {
        self.0.shares().put_folder(folder, params).await
    }

    /// Reads the listing of the folder `capability` reads (kept in memory
    /// for the next read: listings never change).
    pub async fn folder(&self, capability: &Capability) -> Result<Arc<Folder>, PathError> {
        self.0.shares().open_folder(capability).await
    }

    /// The capability of what `path` names inside the folder `capability`
    /// reads (itself for an empty path), with the media type its folder
    /// lists for it.
    pub async fn resolve(
        &self,
        capability: &Capability,
        path: &[String],
    ) -> Result<(Capability, Option<String>), PathError> {
        self.0.shares().resolve(capability, path).await
    }

    /// Where the shares of a file are, stripe by stripe.
    pub async fn stat(&self, capability: &Capability) -> Result<StatReport, GetError> {
        self.0.shares().stat(capability).await
    }

    /// Deletes the shares of a file that this node stored, from every
    /// holder; holders refuse for shares another node stored.
    pub async fn remove(&self, capability: &Capability) -> Result<RmReport, GetError> {
        self.0.shares().remove(capability).await
    }

    /// Misbehaviour this node can be made to show, for tests that prove
    /// honest nodes cope with a lying peer (see [`crate::Faults`]). Off
    /// unless switched on here.
    #[cfg(feature = "testing")]
    pub fn faults(&self) -> &crate::Faults {
        self.0.shares().faults()
    }
}

/// Messages and files to and from friends, and mail held for others. From
/// [`Node::friends`].
#[derive(Clone, Copy, Debug)]
pub struct Friends<'a>(pub(crate) &'a Node);

impl<'a> Friends<'a> {
    /// Sends a text message to `friend` (a petname or a peer id): straight
    /// to its node if it can be reached, else sealed into its mailbox.
    pub async fn send_message(&self, friend: &str, text: String) -> Result<Delivery, SendError> {
        self.0.friends_inner().send_text(friend, text).await
    }

    /// Sends a file of `size` bytes read from `body` to `friend` under
    /// `name`: streamed and verified if the friend can be reached, else
    /// stored on the network and its capability mailed.
    pub async fn send_file(
        &self,
        friend: &str,
        name: &str,
        size: u64,
        body: Box<dyn futures::AsyncRead + Send + Unpin>,
    ) -> Result<Delivery, SendError> {
        self.0
            .friends_inner()
            .send_file(friend, name, size, body)
            .await
    }

    /// Stores a file on the network for `friend`'s mailbox without trying
    /// to reach it directly: after a direct transfer of it broke off
    /// (`SendError::Interrupted`), whose reason `why` is reported as the
    /// delivery's `direct_error`.
    pub async fn send_file_by_mailbox(
        &self,
        friend: &str,
        name: &str,
        size: u64,
        body: Box<dyn futures::AsyncRead + Send + Unpin>,
        why: String,
    ) -> Result<Delivery, SendError> {
        self.0
            .friends_inner()
            .send_file_via(friend, name, size, body, Some(why))
            .await
    }

    /// Inbox entries that arrived after arrival number `after` (0 = all),
    /// oldest arrival first. With `wait`, waits that long for one if none
    /// has arrived.
    pub async fn inbox(
        &self,
        after: u64,
        wait: Option<Duration>,
    ) -> Result<Vec<InboxItem>, NodeError> {
        let friends = self.0.friends_inner();
        match wait {
            Some(wait) => friends.wait_inbox(after, wait).await,
            None => friends.inbox(after).await,
        }
        .map_err(NodeError::from)
    }

    /// Checks the mailbox now; returns how many new letters arrived.
    pub async fn check_mail(&self) -> usize {
        self.0.friends_inner().check_mail().await
    }

    /// Mail this node holds for others: for `peer`'s mailbox, or in all.
    /// Returns (letters, bytes).
    pub async fn held_mail(&self, peer: Option<PeerId>) -> Result<(u64, u64), NodeError> {
        self.0
            .friends_inner()
            .held_mail(peer)
            .await
            .map_err(NodeError::from)
    }

    /// The folder where files from friends land.
    pub fn inbox_dir(&self) -> &'a Path {
        self.0.friends_inner().inbox_dir()
    }
}

/// What the node does in the background to keep files alive: leases,
/// repair, scrub. From [`Node::upkeep`].
#[derive(Clone, Copy, Debug)]
pub struct Upkeep<'a>(pub(crate) &'a Node);

impl Upkeep<'_> {
    /// The upkeep counters (repair, scrub, leases) since start.
    pub fn counters(&self) -> UpkeepCounters {
        self.0.upkeep_runner().counters()
    }

    /// Runs one repair round now, repairing every short stripe this node
    /// can whatever its rank among the holders (`kith repair`; the node
    /// runs rounds on its own too). Returns how many stripes it repaired.
    pub async fn repair_now(&self) -> usize {
        self.0.upkeep_runner().repair_round(true).await
    }
}

/// Names and mirrors: publish, resolve, list, mirror. From [`Node::names`].
#[derive(Clone, Copy, Debug)]
pub struct Names<'a>(pub(crate) &'a Node);

impl Names<'_> {
    /// Points this node's default name (`label` `None`) or its name for
    /// `label` at `target`, with the next sequence, and stores the signed
    /// record on the peers closest to the name.
    pub async fn publish(
        &self,
        target: &Capability,
        label: Option<&str>,
    ) -> Result<Published, NameOpError> {
        self.0.names_inner().publish(target, label).await
    }

    /// The record `name` points at now: from this node's table when it holds
    /// one (a lookup then runs in the background if the last is a few
    /// seconds old), from the closest peers otherwise or when `fresh`.
    pub async fn resolve(
        &self,
        name: kith_base::Name,
        fresh: bool,
    ) -> Result<Resolved, NameOpError> {
        self.0.names_inner().resolve(name, fresh).await
    }

    /// The names this node publishes.
    pub async fn mine(&self) -> Result<Vec<MyName>, NameOpError> {
        self.0.names_inner().mine().await
    }

    /// Stores this node's names' and mirrors' records on the closest peers
    /// now (the node does it every hour on its own). Returns how many
    /// records at least one peer took.
    pub async fn republish_now(&self) -> usize {
        self.0.names_inner().republish().await
    }

    /// Starts mirroring a name or a capability (its text) and makes the
    /// first full copy.
    pub async fn mirror(&self, target: &str) -> Result<MirrorInfo, NameOpError> {
        self.0.names_inner().mirror(target).await
    }

    /// Stops mirroring `target`.
    pub async fn unmirror(&self, target: &str) -> Result<(), NameOpError> {
        self.0.names_inner().unmirror(target).await
    }

    /// Every mirror of this node.
    pub async fn mirrors(&self) -> Result<Vec<MirrorInfo>, NameOpError> {
        self.0.names_inner().mirrors().await
    }

    /// Sends `bytes` to `peer` as a record of `name` to keep, as a
    /// misbehaving peer would (a replayed or forged record); returns the
    /// record the peer holds afterwards, or its refusal as text.
    #[cfg(feature = "testing")]
    pub async fn send_record(
        &self,
        peer: PeerId,
        name: &kith_base::Name,
        bytes: &[u8],
    ) -> Result<Option<kith_base::NameRecord>, String> {
        crate::protocols::names::client::store_bytes_on(self.0.net(), peer, bytes, name)
            .await
            .map_err(|error| error.to_string())
    }
}

/// Feeds: post, follow, the timeline. From [`Node::feeds`].
#[derive(Clone, Copy, Debug)]
pub struct Feeds<'a>(pub(crate) &'a Node);

impl Feeds<'_> {
    /// Appends a post, or a deletion of an earlier post, to this node's
    /// feed and pushes it to the subscribers; returns the signed entry.
    pub async fn post(
        &self,
        body: kith_base::feed::Body,
    ) -> Result<kith_base::feed::Entry, FeedOpError> {
        self.0.feeds_inner().post(body).await
    }

    /// Follows `author`: fetches its whole feed now, then keeps it.
    pub async fn follow(&self, author: PeerId) -> Result<Followed, FeedOpError> {
        self.0.feeds_inner().follow(author).await
    }

    /// Stops following `author` and drops its entries.
    pub async fn unfollow(&self, author: PeerId) -> Result<(), FeedOpError> {
        self.0.feeds_inner().unfollow(author).await
    }

    /// The newest `limit` posts of `author`, or of this node and everyone it
    /// follows, newest first.
    pub async fn timeline(
        &self,
        author: Option<PeerId>,
        limit: usize,
    ) -> Result<Vec<FeedItem>, FeedOpError> {
        self.0.feeds_inner().timeline(author, limit).await
    }

    /// The feeds this node holds, with their heads and forks.
    pub async fn list(&self) -> Result<Vec<FeedInfo>, FeedOpError> {
        self.0.feeds_inner().feeds().await
    }

    /// Fetches `author`'s feed from its sources now (the node does it every
    /// `feed_check` on its own). Returns how many sources answered.
    pub async fn sync_now(&self, author: PeerId) -> usize {
        match kith_base::identity::ed25519_key(&author) {
            Some(key) => self.0.feeds_inner().sync(key).await,
            None => 0,
        }
    }

    /// Changes whenever an entry is appended to any feed held.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.feeds_inner().watch()
    }

    /// Announces `bytes` to `peer` as a reply to `parent_author`'s post
    /// `answered`, as a misbehaving peer would; returns whether it was new
    /// there, or its refusal.
    #[cfg(feature = "testing")]
    pub async fn reply_raw(
        &self,
        peer: PeerId,
        parent_author: &[u8; 32],
        answered: &kith_base::feed::EntryId,
        bytes: &[u8],
    ) -> Result<bool, String> {
        crate::protocols::feeds::client::ask_head(
            self.0.net(),
            peer,
            crate::protocols::feeds::wire::tag::REPLY,
            &crate::protocols::feeds::wire::encode_reply(parent_author, answered, bytes),
        )
        .await
        .map(|new| new == 1)
        .map_err(|error| error.to_string())
    }

    /// Sends `bytes` to `peer` as a pushed entry, as a misbehaving peer
    /// would; returns the head the peer holds after, or its refusal.
    #[cfg(feature = "testing")]
    pub async fn push_raw(&self, peer: PeerId, bytes: &[u8]) -> Result<u64, String> {
        crate::protocols::feeds::client::ask_head(
            self.0.net(),
            peer,
            crate::protocols::feeds::wire::tag::PUSH,
            bytes,
        )
        .await
        .map_err(|error| error.to_string())
    }
}
