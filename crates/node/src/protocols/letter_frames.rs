//! The frames of kith's two friend protocols.
//!
//! Every message is one frame of [`kith_net::frames`] (`tag ‖ length ‖
//! payload`), its length checked against the tag's [`bounds`] before
//! anything is allocated, every read and write under a timeout. This module
//! gives the tags, their bounds and the layouts of their payloads.
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
//! The fixed parts of the mailbox payloads are serde structs
//! (`DepositHead`, `Count`, `LetterLen`) written and read by
//! [`kith_base::layout`]; the letters themselves go through unchanged. A
//! test vector pins the bytes.

use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use kith_base::layout;
use kith_base::letter::{MAX_SEALED_LETTER, MAX_SIGNED_LETTER};
use kith_net::StreamProtocol;
pub use kith_net::frames::FrameError;
use kith_net::frames::{self, Bounds};
use serde::{Deserialize, Serialize};

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

/// The fewest and most payload bytes of each tag; `None` for an unknown
/// tag. A frame of a fixed layout (an end frame's hash, a held or dropped
/// answer) must have exactly its size, so no reader indexes past what
/// arrived: [`read_frame`] checks it.
pub fn bounds(tag: u8) -> Option<Bounds> {
    Some(match tag {
        tag::LETTER => Bounds::up_to(MAX_SIGNED_LETTER),
        tag::DATA => Bounds::up_to(MAX_CHUNK),
        tag::END => Bounds::exactly(32),
        tag::READY | tag::DELIVERED | tag::COLLECT => Bounds::exactly(0),
        tag::REFUSED | tag::MAIL_REFUSED => Bounds::new(1, 1 + MAX_SENTENCE),
        tag::DEPOSIT => Bounds::new(40, 40 + MAX_SEALED_LETTER),
        tag::DROP => Bounds::new(2, 2 + 32 * MAX_DROP),
        tag::HELD => Bounds::exactly(1),
        tag::MAIL => Bounds::new(2, 2 + MAX_MAIL_ITEMS * (4 + MAX_SEALED_LETTER)),
        tag::DROPPED => Bounds::exactly(2),
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
    /// The sending peer already has as much here as any one peer may
    /// (mail held from it: `mailbox_letters_per_peer`,
    /// `mailbox_bytes_per_peer`); others are still served. A node that does
    /// not know this code reads it as [`Reason::Internal`].
    PeerLimit = 10,
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
            10 => Self::PeerLimit,
            _ => Self::Internal,
        }
    }
}

/// Why a conversation of these protocols failed: the frames, or the peer
/// said no.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A frame could not be read or written, or broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
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
        matches!(self, Self::Frame(error) if error.is_protocol_violation())
    }

    /// A payload that does not parse.
    pub(crate) fn malformed(what: &'static str) -> Self {
        Self::Frame(FrameError::Malformed(what))
    }

    /// The peer closed the stream where it owed a frame.
    pub(crate) fn closed() -> Self {
        Self::Frame(FrameError::Closed)
    }

    /// A frame of `got` where `expected` belonged.
    pub(crate) fn unexpected(got: u8, expected: &'static str) -> Self {
        Self::Frame(FrameError::Unexpected { got, expected })
    }

    /// A local failure in the middle of a conversation (the database, a
    /// task), reported as the stream failing.
    pub(crate) fn local(error: impl std::fmt::Display) -> Self {
        Self::Frame(FrameError::Io(std::io::Error::other(error.to_string())))
    }
}

/// Writes one frame (and flushes).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    stream: &mut W,
    tag: u8,
    payload: &[u8],
) -> Result<(), WireError> {
    Ok(frames::write_frame(stream, tag, &[payload]).await?)
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
    let Some(tag) = frames::read_frame(stream, idle, bounds, buffer).await? else {
        return Ok(None);
    };
    if tag == tag::REFUSED || tag == tag::MAIL_REFUSED {
        // At least one byte: the bounds say so.
        let (&reason, sentence) = buffer
            .split_first()
            .ok_or(WireError::malformed("an empty refusal"))?;
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
        Some(got) => Err(WireError::unexpected(got, name)),
        None => Err(WireError::closed()),
    }
}

/// The start of a deposit request: where the letter goes and until when.
#[derive(Serialize, Deserialize)]
struct DepositHead {
    mailbox: [u8; 32],
    #[serde(with = "kith_base::layout::le")]
    expires_ms: u64,
}

/// How many letters (mail, dropped) or letter ids (drop) follow.
#[derive(Serialize, Deserialize)]
struct Count(#[serde(with = "kith_base::layout::le")] u16);

/// The length of the sealed letter that follows, in a mail answer.
#[derive(Serialize, Deserialize)]
struct LetterLen(#[serde(with = "kith_base::layout::le")] u32);

/// A deposit request's payload: where the letter goes, until when, and the
/// sealed letter.
pub fn encode_deposit(mailbox: &[u8; 32], expires_ms: u64, sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + sealed.len());
    let head = DepositHead {
        mailbox: *mailbox,
        expires_ms,
    };
    layout::write(&head, &mut out);
    out.extend_from_slice(sealed);
    out
}

/// A deposit request, parsed: the mailbox id, when it expires (ms since
/// the Unix epoch) and the sealed letter (a view into the payload).
#[derive(Debug, PartialEq, Eq)]
pub struct Deposit<'a> {
    /// The recipient's mailbox id.
    pub mailbox: [u8; 32],
    /// When the holder may drop it, ms since the Unix epoch.
    pub expires_ms: u64,
    /// The sealed letter.
    pub sealed: &'a [u8],
}

/// Parses a deposit request.
pub fn decode_deposit(payload: &[u8]) -> Result<Deposit<'_>, WireError> {
    let (head, sealed) = layout::read::<DepositHead>(payload, "deposit")
        .map_err(|_| WireError::malformed("a deposit shorter than its header"))?;
    if sealed.len() > MAX_SEALED_LETTER {
        return Err(WireError::malformed(
            "a deposit over the sealed letter limit",
        ));
    }
    Ok(Deposit {
        mailbox: head.mailbox,
        expires_ms: head.expires_ms,
        sealed,
    })
}

/// A dropped answer's payload: how many letters were dropped.
pub fn encode_dropped(count: usize) -> [u8; 2] {
    layout::to_array(&Count(u16::try_from(count).unwrap_or(u16::MAX)))
}

/// A mail answer's payload.
pub fn encode_mail(items: &[crate::friends::db::HeldLetter]) -> Vec<u8> {
    let mut out = Vec::new();
    layout::write(&Count(items.len() as u16), &mut out);
    for (_, sealed) in items {
        layout::write(&LetterLen(sealed.len() as u32), &mut out);
        out.extend_from_slice(sealed);
    }
    out
}

/// Parses a mail answer.
pub fn decode_mail(payload: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let bad = || WireError::malformed("a mail answer that does not add up");
    let (Count(count), mut rest) = layout::read(payload, "mail").map_err(|_| bad())?;
    let count = usize::from(count);
    if count > MAX_MAIL_ITEMS {
        return Err(bad());
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let (LetterLen(len), after) = layout::read(rest, "letter length").map_err(|_| bad())?;
        let len = len as usize;
        if len > MAX_SEALED_LETTER {
            return Err(bad());
        }
        let (sealed, after) = layout::split(after, len, "sealed letter").map_err(|_| bad())?;
        items.push(sealed.to_vec());
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(items)
}

/// A drop request's payload.
pub fn encode_ids(ids: &[[u8; 32]]) -> Vec<u8> {
    let mut out = layout::to_vec(&Count(ids.len() as u16));
    for id in ids {
        out.extend_from_slice(id);
    }
    out
}

/// Parses a drop request.
pub fn decode_ids(payload: &[u8]) -> Result<Vec<[u8; 32]>, WireError> {
    let bad = || WireError::malformed("a drop request that does not add up");
    let (Count(count), ids) = layout::read(payload, "drop").map_err(|_| bad())?;
    let count = usize::from(count);
    if count > MAX_DROP || ids.len() != 32 * count {
        return Err(bad());
    }
    let (ids, _) = ids.as_chunks::<32>();
    Ok(ids.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    use kith_base::layout::to_hex as hex;

    /// The mailbox payloads, byte for byte: nodes of the last version speak
    /// them (`/kith/mailbox/1.0.0` is unchanged).
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let deposit = encode_deposit(&[0x11; 32], 0x0102_0304_0506_0708, b"sealed");
        let expected = format!("{}0807060504030201{}", "11".repeat(32), hex(b"sealed"));
        assert_eq!(hex(&deposit), expected);
        assert_eq!(
            decode_deposit(&deposit).unwrap(),
            Deposit {
                mailbox: [0x11; 32],
                expires_ms: 0x0102_0304_0506_0708,
                sealed: b"sealed",
            }
        );
        assert_eq!(hex(&encode_dropped(0x0102)), "0201");
        let mail = encode_mail(&[([0; 32], b"ab".to_vec()), ([1; 32], Vec::new())]);
        // Two letters: "ab" (2 bytes), then an empty one.
        assert_eq!(hex(&mail), "020002000000616200000000");
        assert_eq!(
            decode_mail(&mail).unwrap(),
            vec![b"ab".to_vec(), Vec::new()]
        );
        let ids = encode_ids(&[[0x22; 32]]);
        assert_eq!(hex(&ids), format!("0100{}", "22".repeat(32)));
        assert_eq!(decode_ids(&ids).unwrap(), vec![[0x22; 32]]);
    }

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
        let huge = frames::encode_header(tag::DATA, MAX_CHUNK as u32 + 1).to_vec();
        let mut reader = futures::io::Cursor::new(huge);
        assert!(matches!(
            read_frame(&mut reader, idle, &mut buffer).await,
            Err(WireError::Frame(FrameError::TooLarge { .. }))
        ));
        let mut reader = futures::io::Cursor::new(vec![0x7f, 0, 0, 0, 0]);
        assert!(matches!(
            read_frame(&mut reader, idle, &mut buffer).await,
            Err(WireError::Frame(FrameError::UnknownTag(0x7f)))
        ));
    }

    /// Every tag at its largest and smallest payload is read; one byte more
    /// than the largest, or one less than the smallest, is refused before
    /// the payload is read.
    #[tokio::test]
    async fn every_tag_holds_its_size_bounds() {
        let idle = Duration::from_secs(1);
        let header = |tag: u8, len: usize| frames::encode_header(tag, len as u32).to_vec();
        for tag in 0..=u8::MAX {
            let Some(Bounds { min, max }) = bounds(tag) else {
                let mut reader = futures::io::Cursor::new(header(tag, 0));
                let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
                assert!(
                    matches!(got, Err(WireError::Frame(FrameError::UnknownTag(t))) if t == tag)
                );
                continue;
            };
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
            assert!(
                matches!(got, Err(WireError::Frame(FrameError::TooLarge { .. }))),
                "{got:?}"
            );
            if min > 0 {
                let mut bytes = header(tag, min - 1);
                bytes.resize(5 + min - 1, 0);
                let mut reader = futures::io::Cursor::new(bytes);
                let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
                assert!(
                    matches!(got, Err(WireError::Frame(FrameError::TooShort { .. }))),
                    "{got:?}"
                );
            }
        }
        // The frames of the red-team finding: an end frame of 0 and 5 bytes.
        for len in [0, 5] {
            let mut bytes = header(tag::END, len);
            bytes.resize(5 + len, 7);
            let mut reader = futures::io::Cursor::new(bytes);
            let got = read_frame(&mut reader, idle, &mut Vec::new()).await;
            assert!(
                matches!(
                    got,
                    Err(WireError::Frame(FrameError::TooShort { min: 32, .. }))
                ),
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
        let deposit = encode_deposit(&[3; 32], 1_700_000_000_000, b"sealed");
        assert_eq!(
            decode_deposit(&deposit).unwrap(),
            Deposit {
                mailbox: [3; 32],
                expires_ms: 1_700_000_000_000,
                sealed: b"sealed",
            }
        );
        assert!(decode_deposit(&deposit[..39]).is_err());
        assert_eq!(encode_dropped(70_000), [0xff, 0xff]);
        let ids = vec![[7; 32], [8; 32]];
        assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        assert!(decode_ids(&[3, 0]).is_err());
    }
}
