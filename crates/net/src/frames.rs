//! Frames: the one way kith's protocols put messages on a [`Stream`].
//!
//! Every message of every kith protocol (share transfer, direct letters,
//! the mailbox, and next names and feeds) is one frame:
//!
//! ```text
//! tag: u8 ‖ payload length: u32 LE ‖ payload
//! ```
//!
//! The tag says which message it is; each protocol gives the smallest and
//! largest payload of each of its tags ([`Bounds`]), and a frame's length is
//! checked against them before a byte of its payload is read or allocated.
//! Every read and write runs under a timeout that grows with the frame's size
//! ([`transfer_timeout`]), so a peer can neither make a node buffer without
//! bound nor hold a task forever. The version of a protocol's frames is the
//! version in its protocol id (`/kith/share/1.0.0`): libp2p negotiates it
//! when the stream opens, so a frame never meets a reader of another layout.
//!
//! This module is the only code that reads or writes a frame header; the
//! protocols (`kith-node`'s `protocols/<name>/wire`) lay out payloads. The
//! header's layout is the serde struct `WireHeader`, written and read by
//! [`kith_base::layout`] like every other pinned layout; a test pins its
//! bytes.
//!
//! Written by hand rather than with `asynchronous-codec` or
//! `tokio-util::codec`: those buffer a whole frame in their own `BytesMut`
//! and know nothing of a per-tag limit checked before the read, of a memory
//! budget taken between header and payload (the share server does), or of
//! writing a frame from several borrowed buffers without copying them into
//! one (a 64 MiB share goes straight from the codec's buffer).
//!
//! [`Stream`]: crate::Stream

use std::future::Future;
use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kith_base::layout;
use serde::{Deserialize, Serialize};

/// Bytes in a frame header: the tag and the payload length.
pub const HEADER_LEN: usize = 5;

/// The smallest and largest payload a tag may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The fewest payload bytes (a fixed layout's exact size).
    pub min: usize,
    /// The most payload bytes.
    pub max: usize,
}

impl Bounds {
    /// Payloads of `min..=max` bytes.
    pub const fn new(min: usize, max: usize) -> Self {
        Self { min, max }
    }

    /// Payloads of up to `max` bytes.
    pub const fn up_to(max: usize) -> Self {
        Self { min: 0, max }
    }

    /// Payloads of exactly `len` bytes.
    pub const fn exactly(len: usize) -> Self {
        Self { min: len, max: len }
    }
}

/// A protocol's table of tags: the bounds of each tag it knows, `None` for
/// any other.
pub type BoundsOf = fn(u8) -> Option<Bounds>;

/// A frame's header, read and checked against its tag's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which message.
    pub tag: u8,
    /// Payload bytes that follow.
    pub len: usize,
}

/// A frame header as it is on the wire.
#[derive(Serialize, Deserialize)]
struct WireHeader {
    tag: u8,
    #[serde(with = "kith_base::layout::le")]
    len: u32,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("the stream failed: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the stream before or inside a frame it owed.
    #[error("the peer closed the stream")]
    Closed,
    /// Too slow.
    #[error("the peer took longer than {0:?} to send or take a frame")]
    Timeout(Duration),
    /// Over the tag's limit: refused before the payload was read.
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
    /// A tag the protocol does not have.
    #[error("the peer sent an unknown frame type {0:#04x}")]
    UnknownTag(u8),
    /// A known tag where the conversation has no place for it.
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
}

impl FrameError {
    /// Whether the peer broke the protocol (a frame of the wrong size, type
    /// or layout), as opposed to the stream failing or timing out.
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

    /// Whether the peer went away (the stream closed or failed), as opposed
    /// to being slow or breaking the protocol.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Closed | Self::Io(_))
    }
}

/// Time allowed for a frame of `len` bytes to cross: a base plus the size at
/// a slow link's 256 KiB/s, so a 1 MiB share gets 14 s and a stalled peer is
/// dropped rather than waited for.
pub fn transfer_timeout(len: usize) -> Duration {
    Duration::from_secs(10) + Duration::from_millis((len / 256) as u64)
}

/// Runs stream I/O under `limit`; an end of stream inside a frame is
/// [`FrameError::Closed`].
async fn timed<T>(
    limit: Duration,
    work: impl Future<Output = io::Result<T>>,
) -> Result<T, FrameError> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(FrameError::Timeout(limit)),
    }
}

/// The header of a frame of `tag` with `len` payload bytes (tests that play
/// a misbehaving peer write headers with it).
pub fn encode_header(tag: u8, len: u32) -> [u8; HEADER_LEN] {
    layout::to_array(&WireHeader { tag, len })
}

/// Writes one frame whose payload is `parts` one after another (so a large
/// byte string goes out from where it lies, not copied into one buffer),
/// then flushes, under the frame's timeout.
///
/// A payload over `u32::MAX` bytes is a bug of the caller: it is refused as
/// malformed, never truncated.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    tag: u8,
    parts: &[&[u8]],
) -> Result<(), FrameError> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let wire_len = u32::try_from(len).map_err(|_| FrameError::Malformed("a frame over 4 GiB"))?;
    let header = encode_header(tag, wire_len);
    timed(transfer_timeout(len), async {
        writer.write_all(&header).await?;
        for part in parts {
            writer.write_all(part).await?;
        }
        writer.flush().await
    })
    .await
}

/// Reads a frame header and checks its length against `bounds` (nothing of
/// the payload is read). `Ok(None)` if the peer closed the stream cleanly
/// between frames. `idle` bounds the wait for the frame to start; the rest
/// of the header must follow promptly.
pub async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    idle: Duration,
    bounds: BoundsOf,
) -> Result<Option<Header>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    match tokio::time::timeout(idle, reader.read(&mut header[..1])).await {
        Err(_) => return Err(FrameError::Timeout(idle)),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(error.into()),
    }
    timed(
        transfer_timeout(HEADER_LEN),
        reader.read_exact(&mut header[1..]),
    )
    .await?;
    let WireHeader { tag, len } = layout::read_all(&header, "frame header")
        .map_err(|_| FrameError::Malformed("a frame header"))?;
    let len = len as usize;
    let Bounds { min, max } = bounds(tag).ok_or(FrameError::UnknownTag(tag))?;
    if len > max {
        return Err(FrameError::TooLarge { tag, len, max });
    }
    if len < min {
        return Err(FrameError::TooShort { tag, len, min });
    }
    Ok(Some(Header { tag, len }))
}

/// Reads a payload of `len` bytes (its header already checked) into
/// `buffer`, under the frame's timeout. A buffer that is reused between
/// frames is overwritten, not zeroed first.
pub async fn read_payload<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    buffer: &mut Vec<u8>,
) -> Result<(), FrameError> {
    if buffer.len() > len {
        buffer.truncate(len);
    } else {
        buffer.resize(len, 0);
    }
    timed(transfer_timeout(len), reader.read_exact(buffer)).await
}

/// Reads one whole frame into `buffer`: [`read_header`], then
/// [`read_payload`]. Returns the tag, or `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    idle: Duration,
    bounds: BoundsOf,
    buffer: &mut Vec<u8>,
) -> Result<Option<u8>, FrameError> {
    let Some(Header { tag, len }) = read_header(reader, idle, bounds).await? else {
        return Ok(None);
    };
    read_payload(reader, len, buffer).await?;
    Ok(Some(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(1);

    /// A toy protocol: tag 1 carries up to 8 bytes, tag 2 exactly 4.
    fn toy(tag: u8) -> Option<Bounds> {
        match tag {
            1 => Some(Bounds::up_to(8)),
            2 => Some(Bounds::exactly(4)),
            _ => None,
        }
    }

    fn raw(tag: u8, len: u32, payload: &[u8]) -> futures::io::Cursor<Vec<u8>> {
        let mut bytes = encode_header(tag, len).to_vec();
        bytes.extend_from_slice(payload);
        futures::io::Cursor::new(bytes)
    }

    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        assert_eq!(encode_header(0xab, 0x0403_0201), [0xab, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn frames_round_trip_from_parts() {
        let mut wire = Vec::new();
        write_frame(&mut wire, 1, &[b"ab", b"", b"cdef"])
            .await
            .unwrap();
        write_frame(&mut wire, 2, &[b"wxyz"]).await.unwrap();
        assert_eq!(&wire[..HEADER_LEN], &[1, 6, 0, 0, 0]);
        let mut reader = futures::io::Cursor::new(wire);
        let mut buffer = vec![0xee; 100];
        assert_eq!(
            read_frame(&mut reader, IDLE, toy, &mut buffer)
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(buffer, b"abcdef");
        assert_eq!(
            read_frame(&mut reader, IDLE, toy, &mut buffer)
                .await
                .unwrap(),
            Some(2)
        );
        assert_eq!(buffer, b"wxyz");
        // A clean end between frames.
        assert_eq!(
            read_frame(&mut reader, IDLE, toy, &mut buffer)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn bounds_are_checked_before_the_payload_is_read() {
        let mut buffer = Vec::new();
        // 4 GiB claimed: refused from the header alone.
        let got = read_frame(&mut raw(1, u32::MAX, b""), IDLE, toy, &mut buffer).await;
        assert!(
            matches!(got, Err(FrameError::TooLarge { tag: 1, max: 8, .. })),
            "{got:?}"
        );
        assert!(buffer.capacity() < 1024, "nothing was allocated");
        // The largest allowed, and one byte more.
        let got = read_frame(&mut raw(1, 8, &[0; 8]), IDLE, toy, &mut buffer).await;
        assert_eq!(got.unwrap(), Some(1));
        let got = read_frame(&mut raw(1, 9, &[0; 9]), IDLE, toy, &mut buffer).await;
        assert!(matches!(got, Err(FrameError::TooLarge { len: 9, .. })));
        // A fixed layout one byte short, or one long.
        let got = read_frame(&mut raw(2, 3, &[0; 3]), IDLE, toy, &mut buffer).await;
        assert!(matches!(got, Err(FrameError::TooShort { min: 4, .. })));
        let got = read_frame(&mut raw(2, 5, &[0; 5]), IDLE, toy, &mut buffer).await;
        assert!(matches!(got, Err(FrameError::TooLarge { max: 4, .. })));
        // A tag the protocol does not have.
        let got = read_frame(&mut raw(0x7f, 0, b""), IDLE, toy, &mut buffer).await;
        assert!(matches!(got, Err(FrameError::UnknownTag(0x7f))));
        assert!(got.unwrap_err().is_protocol_violation());
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_a_closed_stream() {
        let mut buffer = Vec::new();
        // Inside the header.
        let mut reader = futures::io::Cursor::new(vec![1, 4]);
        let got = read_frame(&mut reader, IDLE, toy, &mut buffer).await;
        assert!(matches!(got, Err(FrameError::Closed)), "{got:?}");
        // Inside the payload.
        let got = read_frame(&mut raw(1, 6, b"abc"), IDLE, toy, &mut buffer).await;
        let error = got.unwrap_err();
        assert!(matches!(error, FrameError::Closed) && error.is_gone());
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        /// A peer that never sends a byte.
        struct Silent;
        impl AsyncRead for Silent {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut [u8],
            ) -> std::task::Poll<io::Result<usize>> {
                std::task::Poll::Pending
            }
        }
        let got = read_header(&mut Silent, Duration::from_millis(20), toy).await;
        assert!(matches!(got, Err(FrameError::Timeout(_))), "{got:?}");
    }
}
