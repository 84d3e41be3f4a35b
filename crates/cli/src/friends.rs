//! `kith friend`, `kith msg`, `kith send` and `kith inbox`.
//!
//! The address book is a file in the data folder, so `kith friend` works
//! with no node running; the rest talk to the node's API. A message or file
//! goes straight to the friend's node when it can be reached and waits in
//! its mailbox otherwise; stdout says which.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use kith_api::types::{InboxAnswer, MessageRequest};
use kith_base::ByteSize;
use kith_node::{AddressBook, Content, DataDir, Delivery, FileState, InboxItem, Via};

use crate::client::{ApiClient, NodeRefusal};
use crate::files::{CountingReader, Progress, escape};

/// How long one `--follow` request waits for news before asking again.
const FOLLOW_WAIT: Duration = Duration::from_secs(50);

/// `kith friend add NAME PEER_ID`.
pub(crate) fn add(dir: &DataDir, name: &str, peer: &str) -> anyhow::Result<String> {
    let peer = peer
        .trim()
        .parse()
        .map_err(|_| kith_node::FriendError::NotAPeerId(peer.to_owned()))?;
    dir.init()?;
    let mut book = AddressBook::load(dir)?;
    let new = book.add(name, peer)?;
    book.save(dir)?;
    Ok(if new {
        format!("added {name} ({peer})")
    } else {
        format!("{name} was already {peer}")
    })
}

/// `kith friend rm NAME`.
pub(crate) fn remove(dir: &DataDir, name: &str) -> anyhow::Result<String> {
    let mut book = AddressBook::load(dir)?;
    let peer = book.remove(name)?;
    book.save(dir)?;
    Ok(format!("removed {name} ({peer})"))
}

/// `kith friend ls`: one "NAME PEER_ID" line per friend.
pub(crate) fn list(dir: &DataDir) -> anyhow::Result<Vec<String>> {
    let book = AddressBook::load(dir)?;
    Ok(book
        .iter()
        .map(|(name, peer)| format!("{name} {peer}"))
        .collect())
}

/// `kith msg FRIEND TEXT`.
pub(crate) fn message(api: &ApiClient, to: &str, text: String) -> anyhow::Result<String> {
    if text.is_empty() {
        bail!("the message is empty");
    }
    let delivery: Delivery = api.post(
        "/v1/msg",
        &MessageRequest {
            to: to.to_owned(),
            text,
        },
    )?;
    Ok(describe(to, &delivery, "message"))
}

/// `kith send FRIEND FILE`.
pub(crate) fn send(api: &ApiClient, to: &str, file: &Path) -> anyhow::Result<String> {
    let opened = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let meta = opened
        .metadata()
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file; kith send sends one file", file.display());
    }
    let name = file
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} has no usable file name", file.display()))?;
    let size = meta.len();
    let path = format!(
        "/v1/send?to={}&name={}&size={size}",
        escape(to),
        escape(name)
    );
    let upload = |opened: File, path: &str| -> anyhow::Result<Delivery> {
        let progress = Progress::new("sent", Some(size));
        let reader = CountingReader {
            inner: Box::new(opened),
            progress: progress.clone(),
        };
        let result = api.post_stream(path, reader, Some(size));
        progress.finish(result.is_ok());
        result
    };
    let interrupted = |error: &anyhow::Error| {
        error
            .downcast_ref::<NodeRefusal>()
            .is_some_and(|refusal| refusal.kind == "interrupted")
    };
    let reopen = || File::open(file).with_context(|| format!("cannot read {}", file.display()));
    let delivery = match upload(opened, &path) {
        // The transfer broke off part way (the friend went away, its relay
        // died): the friend kept nothing. Sent again from the start, once
        // more the usual way (another relay of the friend's, a direct
        // connection, else its mailbox), then straight to its mailbox. It
        // arrives once.
        Err(error) if interrupted(&error) => {
            eprintln!("{error}");
            eprintln!("sending it again: another way to {to}, else its mailbox");
            match upload(reopen()?, &path) {
                Err(error) if interrupted(&error) => {
                    eprintln!("{error}");
                    eprintln!("sending it to the mailbox of {to} instead");
                    upload(reopen()?, &format!("{path}&via=mailbox"))?
                }
                result => result?,
            }
        }
        result => result?,
    };
    Ok(describe(to, &delivery, name))
}

fn describe(to: &str, delivery: &Delivery, what: &str) -> String {
    let size = delivery
        .size
        .map(|size| format!(" ({})", ByteSize(size)))
        .unwrap_or_default();
    match delivery.via {
        Via::Direct => {
            let hash = delivery
                .blake3
                .as_deref()
                .map(|hash| format!(", blake3 {hash}"))
                .unwrap_or_default();
            // Node to node either way; a relay forwarded ciphertext only.
            let path = delivery
                .relay
                .as_deref()
                .map(|relay| format!(" through relay {relay}"))
                .unwrap_or_default();
            format!(
                "delivered {what}{size} to {to} directly{path} (seq {}{hash})",
                delivery.seq
            )
        }
        Via::Mailbox => {
            if let Some(why) = &delivery.direct_error {
                eprintln!("could not reach {to} directly: {why}");
            }
            format!(
                "{to} is offline: {what}{size} waits in its mailbox on {} peer(s) (seq {})",
                delivery.mailbox_peers, delivery.seq
            )
        }
    }
}

/// `kith inbox [--follow] [--limit N] [--json]`.
pub(crate) fn inbox(
    api: &ApiClient,
    follow: bool,
    limit: Option<usize>,
    json: bool,
    mut print: impl FnMut(String) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let answer: InboxAnswer = api.get("/v1/inbox")?;
    let mut last = answer
        .entries
        .iter()
        .map(|item| item.entry.arrival)
        .max()
        .unwrap_or(0);
    let render = |item: &InboxItem| -> String {
        if json {
            serde_json::to_string(item).unwrap_or_default()
        } else {
            line(item)
        }
    };
    let mut entries = answer.entries;
    if follow {
        // Oldest first, then what arrives, like `tail -f`.
        entries.sort_by_key(|item| (item.entry.sent_at_ms, item.entry.seq));
        let skip = limit.map_or(0, |limit| entries.len().saturating_sub(limit));
        for item in &entries[skip..] {
            print(render(item))?;
        }
        loop {
            let answer: InboxAnswer = api.get(&format!(
                "/v1/inbox?after={last}&wait={}",
                FOLLOW_WAIT.as_secs()
            ))?;
            for item in &answer.entries {
                last = last.max(item.entry.arrival);
                print(render(item))?;
            }
        }
    }
    // Newest first.
    entries.sort_by_key(|item| std::cmp::Reverse((item.entry.sent_at_ms, item.entry.seq)));
    if entries.is_empty() && !json {
        eprintln!("the inbox is empty");
    }
    for item in entries.iter().take(limit.unwrap_or(usize::MAX)) {
        print(render(item))?;
    }
    Ok(())
}

/// One inbox line: time, sender, and the text or the file.
fn line(item: &InboxItem) -> String {
    let entry = &item.entry;
    let when =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(entry.sent_at_ms));
    let from = item.from_name.as_deref().unwrap_or(&entry.from);
    let via = match entry.via {
        Via::Direct => "",
        Via::Mailbox => " (via mailbox)",
    };
    let what = match &entry.content {
        Content::Text { text } => printable(text),
        Content::File {
            name,
            size,
            path,
            state,
            ..
        } => {
            let at = match (state, path) {
                (FileState::Received, Some(path)) => format!(" → {}", printable(path)),
                (FileState::Fetching, _) => " (fetching…)".to_owned(),
                (FileState::Failed(error), _) => {
                    format!(" (not fetched yet: {})", printable(error))
                }
                (FileState::Received, None) => String::new(),
            };
            format!("file {} ({}){at}", printable(name), ByteSize(*size))
        }
    };
    format!("{when}  {from}  {what}{via}")
}

/// A text with control characters escaped, so a message cannot drive the
/// terminal (colours, cursor moves, a fake prompt).
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(printable("hi\u{1b}[2J\nthere"), "hi\\u{1b}[2J\\nthere");
        assert_eq!(printable("naïve ☕"), "naïve ☕");
    }
}
