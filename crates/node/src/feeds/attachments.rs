//! Followers keep the attached files of the feeds they follow.
//!
//! An attachment is a capability in a post; the file is stored like any
//! other, erasure-coded over the network. A follower that only kept the
//! post would show a broken image once those holders left. So each
//! follower copies every stripe of each attachment of the newest
//! [`WINDOW`] entries of a followed feed into its own store (the mirror's
//! copy: ownerless, announced, served to anyone), within
//! [`super::FeedSettings::attachment_bytes`] per feed, recorded in
//! `feed_copies`. One copier task does it, woken when an entry with
//! attachments arrives and every `feed_check`; a failed copy is tried
//! again after [`RETRY_AFTER`]. A deletion forgets its post's copies (the
//! shares stay as ordinary cached copies until a `kith rm`), as does an
//! unfollow.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use kith_base::feed::{Body, Entry, Post};
use kith_base::{Capability, ContentId};
use tracing::{debug, info};

use super::Feeds;
use crate::files::get::Caching;
use crate::lifecycle::Lifecycle;

/// The newest entries of each followed feed whose attachments are copied.
const WINDOW: usize = 1_000;
/// How long a failed copy waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(600);
/// Failed copies remembered at once.
const MAX_FAILURES: usize = 4_096;

impl Feeds {
    /// Copies attachments when asked and every `feed_check`, until the node
    /// stops.
    pub(super) async fn copy_attachments_periodically(self, lifecycle: Lifecycle) {
        loop {
            tokio::select! {
                () = lifecycle.stopping() => return,
                () = self.inner.copy_wanted.notified() => {}
                () = tokio::time::sleep(self.inner.settings.check_every) => {}
            }
            tokio::select! {
                () = lifecycle.stopping() => return,
                () = self.copy_attachments() => {}
            }
        }
    }

    /// One pass: every followed feed's attachments not yet copied.
    async fn copy_attachments(&self) {
        if self.inner.settings.attachment_bytes == 0 {
            return;
        }
        for author in self.followed().await.unwrap_or_default() {
            let store = self.inner.store.clone();
            let wanted = crate::files::blocking(move || {
                let feeds = store.feeds();
                let copied: HashSet<[u8; 32]> = feeds
                    .copies(&author)?
                    .into_iter()
                    .map(|(content, _)| content)
                    .collect();
                let mut wanted = Vec::new();
                for (_, bytes) in feeds.newest(&author, WINDOW)? {
                    let Ok(entry) = Entry::from_bytes(&bytes) else {
                        continue;
                    };
                    wanted.extend(
                        attachments_of(&entry)
                            .into_iter()
                            .filter(|cap| !copied.contains(cap.manifest().as_bytes())),
                    );
                }
                Ok::<_, kith_store::StoreError>(wanted)
            })
            .await;
            for capability in wanted.unwrap_or_default() {
                self.copy_one(author, &capability).await;
            }
        }
    }

    /// Copies one attachment of `author`'s feed, if within its bytes.
    async fn copy_one(&self, author: [u8; 32], capability: &Capability) {
        let content = capability.manifest();
        {
            let mut failures = self
                .inner
                .copy_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if failures
                .get(&content)
                .is_some_and(|at| at.elapsed() < RETRY_AFTER)
            {
                return;
            }
            if failures.len() >= MAX_FAILURES {
                failures.retain(|_, at| at.elapsed() < RETRY_AFTER);
                if failures.len() >= MAX_FAILURES {
                    failures.clear();
                }
            }
        }
        let size = match self
            .inner
            .shares
            .open_with(capability, Caching::Mirror)
            .await
        {
            Ok(download) => download.manifest().file_size(),
            Err(error) => return self.copy_failed(content, &error.to_string()),
        };
        let store = self.inner.store.clone();
        let max = self.inner.settings.attachment_bytes;
        let key = *content.as_bytes();
        let recorded =
            crate::files::blocking(move || store.feeds().add_copy(&author, &key, size, max)).await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                return self.copy_failed(content, "over the feed's attachment bytes");
            }
            Err(error) => return self.copy_failed(content, &error.to_string()),
        }
        match self.inner.shares.copy_tree(capability).await {
            Ok(report) => {
                info!(%content, bytes = report.bytes, "copied a followed feed's attachment")
            }
            Err(error) => {
                let store = self.inner.store.clone();
                let _ =
                    crate::files::blocking(move || store.feeds().remove_copy(&author, &key)).await;
                self.copy_failed(content, &error.to_string());
            }
        }
    }

    fn copy_failed(&self, content: ContentId, error: &str) {
        debug!(%content, error, "cannot copy an attachment now; trying again later");
        self.inner
            .copy_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(content, Instant::now());
    }

    /// Forgets the copies of `attachments` of `author`'s feed (a deleted
    /// post's).
    pub(super) async fn forget_copies(
        &self,
        author: &[u8; 32],
        attachments: &[(String, Capability)],
    ) {
        let store = self.inner.store.clone();
        let author = *author;
        let contents: Vec<[u8; 32]> = attachments
            .iter()
            .map(|(_, capability)| *capability.manifest().as_bytes())
            .collect();
        let _ = crate::files::blocking(move || {
            let feeds = store.feeds();
            for content in contents {
                feeds.remove_copy(&author, &content)?;
            }
            Ok::<_, kith_store::StoreError>(())
        })
        .await;
    }
}

/// The capabilities attached to a post.
fn attachments_of(entry: &Entry) -> Vec<Capability> {
    match entry.body() {
        Some(Body::Post(Post { attachments, .. })) => attachments
            .into_iter()
            .map(|(_, capability)| capability)
            .collect(),
        _ => Vec::new(),
    }
}
