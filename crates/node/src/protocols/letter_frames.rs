//! The frames of kith's two friend protocols.
//!
//! Every message is one frame, `tag: u8 ‖ payload length: u32 LE ‖ payload`,
//! its length checked against the tag's maximum before anything is
//! allocated, every read and write under a timeout.
//!
//! **`/kith/direct/1.0.0`** — one letter per stream, author to recipient:
//!
//! | tag | from | frame | payload |
//! |---|---|---|---|
//! | `0x01` | sender | letter | a signed letter ([`kith_base::letter`]) |
//! | `0x02` | sender | data | up to 1 MiB of the file |
//! | `0x03` | sender | end | the file's BLAKE3 hash (32) |
//! | `0x81` | recipient | ready | empty: send the file's bytes |
//! | `0x82` | recipient | refused | reason (1) ‖ UTF-8 sentence |
//! | `0x83` | recipient | delivered | empty: stored, shown once |
//!
//! A text letter is answered with delivered or refused; a file letter with
//! ready or refused, then, after its data and end, delivered or refused.
//!
//! **`/kith/mailbox/1.0.0`** — requests to a peer that holds mail, one at a
//! time on a stream:
//!
//! | tag | frame | payload | answer |
//! |---|---|---|---|
//! | `0x11` | deposit | mailbox id (32) ‖ expires at, ms u64 LE ‖ sealed letter | held (1 byte: 0 new, 1 already) or refused |
//! | `0x12` | collect | empty | mail: count u16 LE ‖ count × (u32 LE len ‖ sealed letter) |
//! | `0x13` | drop | count u16 LE ‖ count × letter id (32) | dropped: count u16 LE |
//! | `0x91` | held | | |
//! | `0x92` | refused | reason (1) ‖ sentence | |
//! | `0x93` | mail | | |
//! | `0x94` | dropped | | |
//!
//! Collect and drop act on the mailbox of the peer asking (the connection
//! is authenticated), so only a recipient can read or empty its mailbox.
//!
//! Written by hand for the same reason as the share protocol's frames: a few
//! fixed layouts around byte strings that go through unchanged.

use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kith_base::letter::{MAX_SEALED_LETTER, MAX_SIGNED_LETTER};
use kith_net::StreamProtocol;

/// The direct-delivery protocol.
pub const DIRECT: StreamProtocol = StreamProtocol::new("/kith/direct/1.0.0");
/// The mailbox protocol.
pub const MAILBOX: StreamProtocol = StreamProtocol::new("/kith/mailbox/1.0.0");

/// Largest data frame of a file.
pub const MAX_CHUNK: usize = 1 << 20;
/// Most letters one mail answer carries.
pub const MAX_MAIL_ITEMS: usize = 64;
/// Most ids one drop request carries.
pub const MAX_DROP: usize = 256;
const MAX_SENTENCE: usize = 1024;

/// Frame tags.
pub mod tag {
    /// Direct: a signed letter.
    pub const LETTER: u8 = 0x01;
    /// Direct: file bytes.
    pub const DATA: u8 = 0x02;
    /// Direct: end of the file, with its hash.
    pub const END: u8 = 0x03;
    /// Direct: send the file.
    pub const READY: u8 = 0x81;
    /// Direct: refused.
    pub const REFUSED: u8 = 0x82;
    /// Direct: delivered.
    pub const DELIVERED: u8 = 0x83;
    /// Mailbox: leave a sealed letter.
    pub const DEPOSIT: u8 = 0x11;
    /// Mailbox: what is held for me?
    pub const COLLECT: u8 = 0x12;
    /// Mailbox: drop these, I have them.
    pub const DROP: u8 = 0x13;
    /// Mailbox: held.
    pub const HELD: u8 = 0x91;
    /// Mailbox: refused.
    pub const MAIL_REFUSED: u8 = 0x92;
    /// Mailbox: the letters held.
    pub const MAIL: u8 = 0x93;
    /// Mailbox: dropped.
    pub const DROPPED: u8 = 0x94;
}

/// The smallest payload of each tag: a frame of a fixed layout (an end
/// frame's hash, a held or dropped answer) must have exactly its size, so no
/// reader indexes past what arrived. [`read_frame`] checks it.
pub fn min_payload(tag: u8) -> usize {
    match tag {
        tag::END => 32,
        tag::REFUSED | tag::MAIL_REFUSED | tag::HELD => 1,
        tag::DEPOSIT => 40,
        tag::DROP | tag::MAIL | tag::DROPPED => 2,
        _ => 0,
    }
}

/// The largest payload of each tag; `None` for an unknown tag.
pub fn max_payload(tag: u8) -> Option<usize> {
    Some(match tag {
        tag::LETTER => MAX_SIGNED_LETTER,
        tag::DATA => MAX_CHUNK,
        tag::END => 32,
        tag::READY | tag::DELIVERED | tag::COLLECT => 0,
        tag::REFUSED | tag::MAIL_REFUSED => 1 + MAX_SENTENCE,
        tag::DEPOSIT => 40 + MAX_SEALED_LETTER,
        tag::DROP => 2 + 32 * MAX_DROP,
        tag::HELD => 1,
        tag::MAIL => 2 + MAX_MAIL_ITEMS * (4 + MAX_SEALED_LETTER),
        tag::DROPPED => 2,
        _ => return None,
    })
}

/// Why a refusal was sent; the sentence says it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// The letter is not signed by the peer that sent it, or not for us.
    Forged = 1,
    /// Already delivered.
    Duplicate = 2,
    /// The recipient accepts letters from friends only.
    NotAFriend = 3,
    /// Too large, or no room.
    TooLarge = 4,
    /// A file name that is not a plain name.
    BadName = 5,
    /// Too many transfers at once.
    Busy = 6,
    /// The file's bytes did not match its hash or size.
    Corrupt = 7,
    /// Something failed on the recipient's side.
    Internal = 8,
    /// Malformed.
    Invalid = 9,
}

impl Reason {
    fn from_u8(byte: u8) -> Self {
        match byte {
            1 => Self::Forged,
            2 => Self::Duplicate,
            3 => Self::NotAFriend,
            4 => Self::TooLarge,
            5 => Self::BadName,
            6 => Self::Busy,
            7 => Self::Corrupt,
            9 => Self::Invalid,
            _ => Self::Internal,
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream failed.
    #[error("the stream failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream.
    #[error("the peer closed the stream")]
    Closed,
    /// Too slow.
    #[error("the peer took longer than {0:?} to send or take a frame")]
    Timeout(Duration),
    /// Over the tag's limit.
    #[error("the peer sent a {len}-byte frame of type {tag:#04x}; at most {max} bytes are allowed")]
    TooLarge {
        /// The tag.
        tag: u8,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Under the tag's fixed size.
    #[error("the peer sent a {len}-byte frame of type {tag:#04x}; it must be at least {min} bytes")]
    TooShort {
        /// The tag.
        tag: u8,
        /// Its length.
        len: usize,
        /// The least allowed.
        min: usize,
    },
    /// An unknown tag.
    #[error("the peer sent an unknown frame type {0:#04x}")]
    UnknownTag(u8),
    /// A tag that does not fit here.
    #[error("the peer sent frame type {got:#04x} where {expected} was expected")]
    Unexpected {
        /// The tag.
        got: u8,
        /// What was expected.
        expected: &'static str,
    },
    /// A payload that does not parse.
    #[error("the peer sent a malformed frame: {0}")]
    Malformed(&'static str),
    /// The peer refused.
    #[error("{sentence}")]
    Refused {
        /// Why.
        reason: Reason,
        /// The peer's sentence.
        sentence: String,
    },
}

impl WireError {
    /// Whether the peer broke the protocol (a frame of the wrong size, type
    /// or layout), as opposed to the stream failing or the peer refusing.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::TooShort { .. }
                | Self::UnknownTag(_)
                | Self::Unexpected { .. }
                | Self::Malformed(_)
        )
    }
}

/// Time allowed for a frame of `len` bytes: the share protocol's rule.
pub(crate) use crate::protocols::share::wire::transfer_timeout as frame_timeout;

async fn timed<T>(
    limit: Duration,
    work: impl Future<Output = std::io::Result<T>>,
) -> Result<T, WireError> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(WireError::Closed)
        }
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(WireError::Timeout(limit)),
    }
}

/// Writes one frame (and flushes).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    stream: &mut W,
    tag: u8,
    payload: &[u8],
) -> Result<(), WireError> {
    let mut header = [0u8; 5];
    header[0] = tag;
    header[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    timed(frame_timeout(payload.len()), async {
        stream.write_all(&header).await?;
        stream.write_all(payload).await?;
        stream.flush().await
    })
    .await
}

/// Writes a refusal.
pub async fn write_refusal<W: AsyncWrite + Unpin>(
    stream: &mut W,
    tag: u8,
    reason: Reason,
    sentence: &str,
) -> Result<(), WireError> {
    let mut payload = vec![reason as u8];
    let mut end = sentence.len().min(MAX_SENTENCE);
    while !sentence.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&sentence.as_bytes()[..end]);
    write_frame(stream, tag, &payload).await
}

/// Reads one frame into `buffer` (reused between calls: give it back at
/// full length and nothing is allocated or zeroed), waiting at most
/// `idle` for it to start. `Ok(None)` if the peer closed the stream cleanly
/// between frames. A refusal frame comes back as [`WireError::Refused`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    idle: Duration,
    buffer: &mut Vec<u8>,
) -> Result<Option<u8>, WireError> {
    let mut header = [0u8; 5];
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle, stream.read(&mut first)).await {
        Err(_) => return Err(WireError::Timeout(idle)),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => header[0] = first[0],
        Ok(Err(error)) => return Err(error.into()),
    }
    timed(frame_timeout(4), stream.read_exact(&mut header[1..])).await?;
    let tag = header[0];
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let max = max_payload(tag).ok_or(WireError::UnknownTag(tag))?;
    if len > max {
        return Err(WireError::TooLarge { tag, len, max });
    }
    let min = min_payload(tag);
    if len < min {
        return Err(WireError::TooShort { tag, len, min });
    }
    // A reused buffer of the right length is overwritten, not zeroed first.
    if buffer.len() > len {
        buffer.truncate(len);
    } else {
        buffer.resize(len, 0);
    }
    timed(frame_timeout(len), stream.read_exact(buffer)).await?;
    if tag == tag::REFUSED || tag == tag::MAIL_REFUSED {
        let (&reason, sentence) = buffer
            .split_first()
            .ok_or(WireError::Malformed("an empty refusal"))?;
        return Err(WireError::Refused {
            reason: Reason::from_u8(reason),
            sentence: String::from_utf8_lossy(sentence).into_owned(),
        });
    }
    Ok(Some(tag))
}

/// Reads one frame that must be `expected`.
pub async fn expect_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    idle: Duration,
    expected: u8,
    name: &'static str,
    buffer: &mut Vec<u8>,
) -> Result<(), WireError> {
    match read_frame(stream, idle, buffer).await? {
        Some(tag) if tag == expected => Ok(()),
        Some(got) => Err(WireError::Unexpected {
            got,
            expected: name,
        }),
        None => Err(WireError::Closed),
    }
}

/// A mail answer's payload.
pub fn encode_mail(items: &[crate::friends::db::HeldLetter]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    for (_, sealed) in items {
        out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(sealed);
    }
    out
}

/// Parses a mail answer.
pub fn decode_mail(payload: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let bad = WireError::Malformed("a mail answer that does not add up");
    if payload.len() < 2 {
        return Err(bad);
    }
    let count = u16::from_le_bytes([payload[0], payload[1]]) as usize;
    if count > MAX_MAIL_ITEMS {
        return Err(bad);
    }
    let mut rest = &payload[2..];
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        if rest.len() < 4 {
            return Err(bad);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_SEALED_LETTER || rest.len() < 4 + len {
            return Err(bad);
        }
        items.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    if !rest.is_empty() {
        return Err(bad);
    }
    Ok(items)
}

/// A drop request's payload.
pub fn encode_ids(ids: &[[u8; 32]]) -> Vec<u8> {
    let mut out = (ids.len() as u16).to_le_bytes().to_vec();
    for id in ids {
        out.extend_from_slice(id);
    }
    out
}

/// Parses a drop request.
pub fn decode_ids(payload: &[u8]) -> Result<Vec<[u8; 32]>, WireError> {
    let bad = WireError::Malformed("a drop request that does not add up");
    if payload.len() < 2 {
        return Err(bad);
    }
    let count = u16::from_le_bytes([payload[0], payload[1]]) as usize;
    if count > MAX_DROP || payload.len() != 2 + 32 * count {
        return Err(bad);
    }
    Ok(payload[2..]
        .chunks_exact(32)
        .map(|chunk| {
            let mut id = [0u8; 32];
            id.copy_from_slice(chunk);
            id
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, tag::DATA, b"hello").await.unwrap();
        write_refusal(&mut bytes, tag::REFUSED, Reason::Duplicate, "already here")
            .await
            .unwrap();
        let mut reader = futures::io::Cursor::new(bytes);
        let mut buffer = Vec::new();
        let idle = Duration::from_secs(1);
        assert_eq!(
            read_frame(&mut reader, idle, &mut buffer).await.unwrap(),
            Some(tag::DATA)
        );
        assert_eq!(buffer, b"hello");
        match read_frame(&mut reader, idle, &mut buffer).await {
            Err(WireError::Refused { reason, sentence }) => {
                assert_eq!(reason, Reason::Duplicate);
                assert_eq!(sentence, "already here");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            read_frame(&mut reader, idle, &mut buffer)
                .await
                .unwrap()
                .is_none()
        );

        // An oversized length is refused before anything is read.
        let mut huge = vec![tag::DATA];
        huge.extend_from_slice(&(MAX_CHUNK as u32 + 1).to_le_bytes());
        let mut reader = futures::io::Cursor::new(huge);
        assert!(matches!(
            read_frame(&mut reader, idle, &mut buffer).await,
            Err(WireError::TooLarge { .. })
        ));
        let mut reader = futures::io::Cursor::new(vec![0x7f, 0, 0, 0, 0]);
        assert!(matches!(
            read_frame(&mut reader, idle, &mut buffer).await,
            Err(WireError::UnknownTag(0x7f))
        ));
    }

    /// Every tag at its largest and smallest payload is read; one byte more
    /// than the largest, or one less than the smallest, is refused before
    /// the payload is read.
    #[tokio::test]
    async fn every_tag_holds_its_size_bounds() {
        let idle = Duration::from_secs(1);
        let header = |tag: u8, len: usize| {
            let mut bytes = vec![tag];
            bytes.extend_from_slice(&(len as u32).to_le_bytes());
            bytes
        };
        for tag in 0..=u8::MAX {
            let Some(max) = max_payload(tag) else {
                let mut reader = futures::io::Cursor::new(header(tag, 0));
                let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
                assert!(matches!(got, Err(WireError::UnknownTag(t)) if t == tag));
                continue;
            };
            let min = min_payload(tag);
            assert!(min <= max, "tag {tag:#04x}");
            let refusal = tag == tag::REFUSED || tag == tag::MAIL_REFUSED;
            for len in [min, max] {
                let mut bytes = header(tag, len);
                bytes.resize(5 + len, 0);
                let mut reader = futures::io::Cursor::new(bytes);
                let mut buffer = Vec::new();
                let got = read_frame(&mut reader, idle, &mut buffer).await;
                if refusal {
                    assert!(matches!(got, Err(WireError::Refused { .. })), "{got:?}");
                } else {
                    assert_eq!(got.unwrap(), Some(tag));
                    assert_eq!(buffer.len(), len);
                }
            }
            let mut reader = futures::io::Cursor::new(header(tag, max + 1));
            let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
            assert!(matches!(got, Err(WireError::TooLarge { .. })), "{got:?}");
            if min > 0 {
                let mut bytes = header(tag, min - 1);
                bytes.resize(5 + min - 1, 0);
                let mut reader = futures::io::Cursor::new(bytes);
                let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
                assert!(matches!(got, Err(WireError::TooShort { .. })), "{got:?}");
            }
        }
        // The frames of the red-team finding: an end frame of 0 and 5 bytes.
        for len in [0, 5] {
            let mut bytes = header(tag::END, len);
            bytes.resize(5 + len, 7);
            let mut reader = futures::io::Cursor::new(bytes);
            let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
            assert!(
                matches!(got, Err(WireError::TooShort { min: 32, .. })),
                "{got:?}"
            );
        }
    }

    #[test]
    fn mail_and_ids_round_trip_and_reject_nonsense() {
        let items = vec![([1; 32], vec![1, 2, 3]), ([2; 32], vec![])];
        let payload = encode_mail(&items);
        assert_eq!(decode_mail(&payload).unwrap(), vec![vec![1, 2, 3], vec![]]);
        assert!(decode_mail(&payload[..payload.len() - 1]).is_err());
        let ids = vec![[7; 32], [8; 32]];
        assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        assert!(decode_ids(&[3, 0]).is_err());
    }
}
