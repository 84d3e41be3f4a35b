//! The frames of `/kith/feed/1.0.0`: one request and its answer at a time
//! on a stream, each a frame of [`kith_net::frames`].
//!
//! | tag | frame | payload | answer |
//! |---|---|---|---|
//! | `0x31` | fetch | author (32) ‖ after u64 LE ‖ limit u16 LE | entries |
//! | `0x32` | push | one entry ([`kith_base::feed`]) | head |
//! | `0x33` | subscribe | author (32) | head |
//! | `0x34` | reply | the answered post's author (32) ‖ its id (32) ‖ one entry of the replier's feed (a reply to it, or the withdrawal of one) | head: 1 if new here, else 0 |
//! | `0xb1` | entries | count u16 LE ‖ count × (len u32 LE ‖ entry), in sequence order | |
//! | `0xb2` | head | the highest sequence held of that author, u64 LE | |
//! | `0xb3` | refused | reason (1) ‖ UTF-8 sentence | |
//!
//! An entries answer holds at most [`MAX_BATCH`] entries and
//! [`MAX_BATCH_BYTES`] bytes. Nothing read is trusted: the asker verifies
//! every entry, its author, and its link to the one before.

use futures::{AsyncRead, AsyncWrite};
use kith_base::feed::{EntryId, HEAD_LEN, MAX_ENTRY};
use kith_net::StreamProtocol;
use kith_net::frames::{self, Bounds, FrameError};

/// The feed protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/feed/1.0.0");

/// Most entries in one answer.
pub const MAX_BATCH: usize = 256;
/// Most bytes of entries in one answer.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
const MAX_SENTENCE: usize = 512;

/// The tags.
pub mod tag {
    /// Entries after a sequence.
    pub const FETCH: u8 = 0x31;
    /// A new entry.
    pub const PUSH: u8 = 0x32;
    /// Push me this author's new entries.
    pub const SUBSCRIBE: u8 = 0x33;
    /// A reply to a post of a feed the peer holds.
    pub const REPLY: u8 = 0x34;
    /// Entries.
    pub const ENTRIES: u8 = 0xb1;
    /// The head held.
    pub const HEAD: u8 = 0xb2;
    /// Refused.
    pub const REFUSED: u8 = 0xb3;
}

/// The payload bounds of each tag.
pub fn bounds(tag: u8) -> Option<Bounds> {
    Some(match tag {
        tag::FETCH => Bounds::exactly(42),
        tag::PUSH => Bounds::up_to(MAX_ENTRY),
        tag::SUBSCRIBE => Bounds::exactly(32),
        tag::REPLY => Bounds::new(64 + HEAD_LEN, 64 + MAX_ENTRY),
        tag::ENTRIES => Bounds::new(2, 2 + MAX_BATCH_BYTES + MAX_ENTRY + 4 * MAX_BATCH),
        tag::HEAD => Bounds::exactly(8),
        tag::REFUSED => Bounds::new(1, 1 + MAX_SENTENCE),
        _ => return None,
    })
}

/// Why a feed conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedWireError {
    /// A frame could not be read or written, or broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer refused.
    #[error("refused: {0}")]
    Refused(String),
    /// The stream could not be opened.
    #[error("cannot open a stream: {0}")]
    Open(String),
}

/// A fetch request's payload.
pub fn encode_fetch(author: &[u8; 32], after: u64, limit: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    out.extend_from_slice(author);
    out.extend_from_slice(&after.to_le_bytes());
    out.extend_from_slice(&limit.to_le_bytes());
    out
}

/// Reads a fetch request (exactly 42 bytes: the bounds say so).
pub fn decode_fetch(bytes: &[u8]) -> Result<([u8; 32], u64, u16), FrameError> {
    let malformed = || FrameError::Malformed("a fetch request");
    let author: [u8; 32] = bytes
        .get(..32)
        .ok_or_else(malformed)?
        .try_into()
        .map_err(|_| malformed())?;
    let after = u64::from_le_bytes(
        bytes
            .get(32..40)
            .ok_or_else(malformed)?
            .try_into()
            .map_err(|_| malformed())?,
    );
    let limit = u16::from_le_bytes(
        bytes
            .get(40..42)
            .ok_or_else(malformed)?
            .try_into()
            .map_err(|_| malformed())?,
    );
    Ok((author, after, limit))
}

/// A reply announcement's payload.
pub fn encode_reply(parent_author: &[u8; 32], parent: &EntryId, entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entry.len());
    out.extend_from_slice(parent_author);
    out.extend_from_slice(&parent.0);
    out.extend_from_slice(entry);
    out
}

/// Reads a reply announcement: the answered post's author and id, and the
/// entry's bytes (not yet verified).
pub fn decode_reply(bytes: &[u8]) -> Result<([u8; 32], EntryId, &[u8]), FrameError> {
    let malformed = || FrameError::Malformed("a reply announcement");
    let (author, rest) = bytes.split_at_checked(32).ok_or_else(malformed)?;
    let (parent, entry) = rest.split_at_checked(32).ok_or_else(malformed)?;
    Ok((
        author.try_into().map_err(|_| malformed())?,
        EntryId(parent.try_into().map_err(|_| malformed())?),
        entry,
    ))
}

/// An entries answer's payload.
pub fn encode_entries(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + entries.iter().map(|e| 4 + e.len()).sum::<usize>());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// Reads an entries answer into its entries' bytes (each at most an
/// entry's size; not yet verified).
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    let malformed = || FrameError::Malformed("an entries answer");
    let (count, mut rest) = bytes.split_at_checked(2).ok_or_else(malformed)?;
    let count = u16::from_le_bytes(count.try_into().map_err(|_| malformed())?);
    if usize::from(count) > MAX_BATCH {
        return Err(malformed());
    }
    let mut out = Vec::with_capacity(count.into());
    for _ in 0..count {
        let (len, after) = rest.split_at_checked(4).ok_or_else(malformed)?;
        let len = u32::from_le_bytes(len.try_into().map_err(|_| malformed())?) as usize;
        if len > MAX_ENTRY {
            return Err(malformed());
        }
        let (entry, after) = after.split_at_checked(len).ok_or_else(malformed)?;
        out.push(entry);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

/// Writes one frame.
pub async fn write<W: AsyncWrite + Unpin>(
    stream: &mut W,
    tag: u8,
    payload: &[u8],
) -> Result<(), FrameError> {
    frames::write_frame(stream, tag, &[payload]).await
}

/// Writes a refusal.
pub async fn write_refusal<W: AsyncWrite + Unpin>(
    stream: &mut W,
    sentence: &str,
) -> Result<(), FrameError> {
    let mut end = sentence.len().min(MAX_SENTENCE);
    while !sentence.is_char_boundary(end) {
        end -= 1;
    }
    frames::write_frame(stream, tag::REFUSED, &[&[1], &sentence.as_bytes()[..end]]).await
}

/// Reads one answer frame into `buffer`: its tag, or the refusal as an
/// error.
pub async fn read_answer<R: AsyncRead + Unpin>(
    stream: &mut R,
    idle: std::time::Duration,
    buffer: &mut Vec<u8>,
) -> Result<u8, FeedWireError> {
    match frames::read_frame(stream, idle, bounds, buffer).await? {
        None => Err(FrameError::Closed.into()),
        Some(tag::REFUSED) => Err(FeedWireError::Refused(
            String::from_utf8_lossy(buffer.get(1..).unwrap_or_default()).into_owned(),
        )),
        Some(tag) => Ok(tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_and_lies_are_refused() {
        let fetch = encode_fetch(&[3; 32], 7, 256);
        assert_eq!(decode_fetch(&fetch).unwrap(), ([3; 32], 7, 256));
        let entries = vec![vec![1, 2, 3], vec![], vec![9; 100]];
        let bytes = encode_entries(&entries);
        let back = decode_entries(&bytes).unwrap();
        assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // A count or a length that lies.
        let mut more = bytes.clone();
        more[0] = 4;
        assert!(decode_entries(&more).is_err());
        let mut longer = bytes.clone();
        longer[2] = 200;
        assert!(decode_entries(&longer).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(decode_entries(&trailing).is_err());
        let mut huge = vec![1, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_entries(&huge).is_err());
        assert!(decode_entries(&[0xff, 0xff]).is_err());

        let reply = encode_reply(&[1; 32], &EntryId([2; 32]), b"entry");
        assert_eq!(
            decode_reply(&reply).unwrap(),
            ([1; 32], EntryId([2; 32]), &b"entry"[..])
        );
        assert!(decode_reply(&reply[..40]).is_err());
        let bounds = bounds(tag::REPLY).unwrap();
        assert_eq!((bounds.min, bounds.max), (64 + HEAD_LEN, 64 + MAX_ENTRY));
    }
}
