//! The asking side of `/kith/feed/1.0.0`: fetching entries after a
//! sequence, pushing a new entry, subscribing to an author's new entries.

use std::time::Duration;

use kith_net::{Client, PeerId, Stream};

use super::wire::{self, FeedWireError, tag};

/// How long one peer may take to answer.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

async fn open(net: &Client, peer: PeerId) -> Result<Stream, FeedWireError> {
    net.streams()
        .open_stream(peer, wire::PROTOCOL)
        .await
        .map_err(|error| FeedWireError::Open(error.to_string()))
}

/// Up to `limit` entries of `author` after `after`, as the peer sent them
/// (not yet verified).
pub(crate) async fn fetch(
    net: &Client,
    peer: PeerId,
    author: &[u8; 32],
    after: u64,
    limit: u16,
) -> Result<Vec<Vec<u8>>, FeedWireError> {
    let conversation = async {
        let mut stream = open(net, peer).await?;
        wire::write(
            &mut stream,
            tag::FETCH,
            &wire::encode_fetch(author, after, limit),
        )
        .await?;
        let mut buffer = Vec::new();
        match wire::read_answer(&mut stream, ANSWER_TIMEOUT, &mut buffer).await? {
            tag::ENTRIES => Ok(wire::decode_entries(&buffer)?
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect()),
            got => Err(kith_net::frames::FrameError::Unexpected {
                got,
                expected: "entries",
            }
            .into()),
        }
    };
    timed(conversation).await
}

/// Sends a request whose answer is a head (push, subscribe); returns it.
pub(crate) async fn ask_head(
    net: &Client,
    peer: PeerId,
    request: u8,
    payload: &[u8],
) -> Result<u64, FeedWireError> {
    let conversation = async {
        let mut stream = open(net, peer).await?;
        wire::write(&mut stream, request, payload).await?;
        let mut buffer = Vec::new();
        match wire::read_answer(&mut stream, ANSWER_TIMEOUT, &mut buffer).await? {
            tag::HEAD => {
                Ok(u64::from_le_bytes(buffer.as_slice().try_into().map_err(
                    |_| kith_net::frames::FrameError::Malformed("a head"),
                )?))
            }
            got => Err(kith_net::frames::FrameError::Unexpected {
                got,
                expected: "a head",
            }
            .into()),
        }
    };
    timed(conversation).await
}

async fn timed<T>(
    conversation: impl Future<Output = Result<T, FeedWireError>>,
) -> Result<T, FeedWireError> {
    tokio::time::timeout(ANSWER_TIMEOUT * 2, conversation)
        .await
        .unwrap_or(Err(FeedWireError::Frame(
            kith_net::frames::FrameError::Timeout(ANSWER_TIMEOUT * 2),
        )))
}
