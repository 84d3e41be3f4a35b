//! The holding side of `/kith/feed/1.0.0`: serving the feeds this node
//! holds (its own and the ones it follows) to anyone, taking pushed
//! entries of the feeds it follows and replies (from anyone) to the posts
//! of those feeds, and remembering who subscribed to which author's new
//! entries.

use std::time::Duration;

use kith_net::{Control, PeerId, Stream};
use tracing::debug;

use super::wire::{self, FeedWireError, MAX_BATCH, MAX_BATCH_BYTES, tag};
use crate::feeds::Feeds;
use crate::lifecycle::Lifecycle;
use crate::slots::StreamSlots;

/// Most feed streams served at once.
const MAX_STREAMS: usize = 64;
/// Most feed streams served at once for one peer.
const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a stream may sit between requests.
const IDLE: Duration = Duration::from_secs(10);

/// Serves `/kith/feed/1.0.0` until the node stops.
pub(crate) async fn serve(feeds: Feeds, control: Control, lifecycle: Lifecycle) {
    let slots = StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER);
    crate::slots::serve_admitted(
        control,
        wire::PROTOCOL,
        "feeds",
        slots,
        lifecycle,
        move |peer, mut stream, stopping| {
            let feeds = feeds.clone();
            async move {
                if let Err(error) = serve_stream(&feeds, peer, &mut stream, &stopping).await {
                    debug!(%peer, %error, "feed stream ended");
                }
            }
        },
    )
    .await;
}

async fn serve_stream(
    feeds: &Feeds,
    peer: PeerId,
    stream: &mut Stream,
    lifecycle: &Lifecycle,
) -> Result<(), FeedWireError> {
    let mut buffer = Vec::new();
    loop {
        let frame = tokio::select! {
            biased;
            () = lifecycle.stopping() => return Ok(()),
            frame = kith_net::frames::read_frame(stream, IDLE, wire::bounds, &mut buffer) => frame?,
        };
        let Some(frame) = frame else { break };
        match frame {
            tag::FETCH => {
                let (author, after, limit) = wire::decode_fetch(&buffer)?;
                let limit = usize::from(limit).clamp(1, MAX_BATCH);
                let mut entries = feeds.served_after(&author, after, limit).await;
                // Within the answer's byte bound: a prefix, never a gap.
                let mut bytes = 0;
                let keep = entries
                    .iter()
                    .take_while(|entry| {
                        bytes += entry.len() + 4;
                        bytes <= MAX_BATCH_BYTES
                    })
                    .count()
                    .max(1)
                    .min(entries.len());
                entries.truncate(keep);
                wire::write(stream, tag::ENTRIES, &wire::encode_entries(&entries)).await?;
            }
            tag::PUSH => match feeds.take_pushed(peer, &buffer).await {
                Ok(head) => wire::write(stream, tag::HEAD, &head.to_le_bytes()).await?,
                Err(sentence) => wire::write_refusal(stream, &sentence).await?,
            },
            tag::REPLY => {
                let (parent_author, parent, entry) = wire::decode_reply(&buffer)?;
                match feeds.take_reply(peer, parent_author, parent, entry).await {
                    Ok(new) => {
                        wire::write(stream, tag::HEAD, &u64::from(new).to_le_bytes()).await?
                    }
                    Err(sentence) => wire::write_refusal(stream, &sentence).await?,
                }
            }
            tag::SUBSCRIBE => {
                // Exactly 32 bytes: the bounds say so.
                let author: [u8; 32] = buffer
                    .as_slice()
                    .try_into()
                    .map_err(|_| kith_net::frames::FrameError::Malformed("an author"))?;
                match feeds.subscribe(peer, author).await {
                    Ok(head) => wire::write(stream, tag::HEAD, &head.to_le_bytes()).await?,
                    Err(sentence) => wire::write_refusal(stream, &sentence).await?,
                }
            }
            got => {
                return Err(kith_net::frames::FrameError::Unexpected {
                    got,
                    expected: "a feed request",
                }
                .into());
            }
        }
    }
    Ok(())
}
