//! `kith post`, `kith follow`, `kith unfollow` and `kith feed`: this
//! node's feed and the feeds it follows, through the node's API.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use kith_api::types::{Attachment, FollowRequest, PostRequest, Posted, Timeline};
use kith_node::{AddressBook, DataDir, FeedItem, Followed};

use crate::client::ApiClient;

/// How often `kith feed --follow` asks for new posts.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// `kith post`: the new entry's id.
pub(crate) fn post(
    api: &ApiClient,
    text: Option<String>,
    attach: &[PathBuf],
    reply: Option<String>,
    delete: Option<String>,
) -> anyhow::Result<String> {
    let request = match delete {
        Some(id) => PostRequest {
            delete: Some(id),
            ..PostRequest::default()
        },
        None => {
            let text = text.unwrap_or_default();
            if text.is_empty() && attach.is_empty() {
                anyhow::bail!("a post needs text or an attachment (--attach FILE)");
            }
            if text.len() > kith_base::feed::MAX_TEXT {
                anyhow::bail!(
                    "the post is {} bytes; a post's text is at most {} bytes",
                    text.len(),
                    kith_base::feed::MAX_TEXT
                );
            }
            let mut attachments = Vec::with_capacity(attach.len());
            for file in attach {
                let name = file
                    .file_name()
                    .and_then(|name| name.to_str())
                    .ok_or_else(|| anyhow::anyhow!("{} has no file name", file.display()))?
                    .to_owned();
                let capability = crate::files::put(api, file, None)?;
                attachments.push(Attachment { name, capability });
            }
            PostRequest {
                text: Some(text),
                reply_to: reply,
                attachments,
                delete: None,
            }
        }
    };
    let posted: Posted = api.post("/v1/post", &request)?;
    Ok(posted.id)
}

/// `kith follow WHO`.
pub(crate) fn follow(api: &ApiClient, who: &str) -> anyhow::Result<String> {
    let followed: Followed = api.post_slow(
        "/v1/follow",
        &FollowRequest {
            who: who.trim().to_owned(),
        },
    )?;
    Ok(if followed.head == 0 {
        format!(
            "following {}; no post of it found yet (from {} source(s)); new ones will arrive",
            followed.author, followed.sources
        )
    } else {
        format!(
            "following {}: {} entries fetched from {} source(s)",
            followed.author, followed.head, followed.sources
        )
    })
}

/// `kith unfollow WHO`.
pub(crate) fn unfollow(api: &ApiClient, who: &str) -> anyhow::Result<String> {
    let _: serde_json::Value = api.post(
        "/v1/unfollow",
        &FollowRequest {
            who: who.trim().to_owned(),
        },
    )?;
    Ok(format!(
        "no longer following {}; its posts were dropped here",
        who.trim()
    ))
}

/// `kith feed [WHO] [--json] [--limit N] [--follow]`: prints posts, newest
/// first; with `follow`, then every new one as it arrives.
pub(crate) fn feed(
    api: &ApiClient,
    dir: &DataDir,
    who: Option<&str>,
    limit: usize,
    json: bool,
    follow: bool,
    mut print: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let book = AddressBook::load(dir).ok();
    let path = |limit: usize| match who {
        Some(who) => format!("/v1/feed?who={}&limit={limit}", who.trim()),
        None => format!("/v1/feed?limit={limit}"),
    };
    let timeline: Timeline = api.get(&path(limit))?;
    for feed in &timeline.feeds {
        if !feed.forks.is_empty() {
            eprintln!(
                "warning: {} signed two different posts for sequence(s) {:?}: its feed is forked",
                feed.author, feed.forks
            );
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    for item in &timeline.items {
        seen.insert(item.id.clone());
        print(&line(item, book.as_ref(), json)?)?;
    }
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(FOLLOW_POLL);
        let timeline: Timeline = api.get(&path(100))?;
        // Oldest first, so new posts print in the order they were written.
        for item in timeline.items.iter().rev() {
            if seen.insert(item.id.clone()) {
                print(&line(item, book.as_ref(), json)?)?;
            }
        }
    }
}

/// One post as a line: time, author, text, then replies and attachments.
fn line(item: &FeedItem, book: Option<&AddressBook>, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(serde_json::to_string(item)?);
    }
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(item.time_ms));
    let author = item
        .author
        .parse()
        .ok()
        .and_then(|peer| book.and_then(|book| book.name_of(&peer)).map(str::to_owned))
        .unwrap_or_else(|| item.author.clone());
    let mut line = format!("{when}  {author}  {}", item.text);
    if let Some(reply) = &item.reply_to {
        line.push_str(&format!("  (reply to {})", &reply[..12.min(reply.len())]));
    }
    for (name, capability) in &item.attachments {
        line.push_str(&format!("\n    {name}: {capability}"));
    }
    line.push_str(&format!("\n    id {}", item.id));
    Ok(line)
}
