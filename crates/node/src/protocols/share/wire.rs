//! The share protocol's wire format, `/kith/share/1.0.0`.
//!
//! A stream carries a sequence of request/answer pairs, one at a time. Every
//! message is one frame of [`kith_net::frames`] (`tag ‖ length ‖ payload`);
//! this module lays out the payloads:
//!
//! | tag | message | payload |
//! |---|---|---|
//! | `0x01` | put | stripe id (32) ‖ index (1) ‖ record length u16 LE ‖ stripe record ‖ lease (169, see `kith_base::lease`) ‖ share bytes |
//! | `0x02` | get | stripe id (32) ‖ index (1) |
//! | `0x06` | get, or say where | stripe id (32) ‖ index (1): like get, but the holder may answer "elsewhere" (swarming) |
//! | `0x03` | have | count u16 LE ‖ count × stripe id (32), count ≤ [`MAX_HAVE`] |
//! | `0x04` | drop | stripe id (32) ‖ index (1): the owner deletes a share it stored |
//! | `0x05` | renew | count u16 LE ‖ count × lease (169), count ≤ [`MAX_RENEW`]: the owner extends its leases |
//! | `0x81` | stored | 1 byte: 0 = newly stored, 1 = already held |
//! | `0x82` | refused | reason (1: store full, 2: invalid request, 3: internal error, 4: busy, 5: not the owner, 6: the owner's share of the quota is used up; a node that does not know a code reads it as 3) ‖ UTF-8 sentence |
//! | `0x83` | share | record length u16 LE ‖ stripe record ‖ lease length u8 (0 or 169) ‖ the stripe's lease ‖ share bytes |
//! | `0x84` | not found | empty |
//! | `0x85` | holding | count × 32-byte bitmap (bit i of byte i/8 = holds share i), in the order asked |
//! | `0x86` | damaged | empty: the peer held the share but found it damaged on its disk, and dropped it |
//! | `0x87` | dropped | 1 byte: 0 = deleted, 1 = was not held, 2 = kept (a cached copy: it has no owner) |
//! | `0x88` | renewed | u32 LE: shares whose lease was extended |
//! | `0x89` | elsewhere | a peer id (≤ 64 bytes, libp2p's binary form): ask that peer, which got this share from the holder moments ago (see `super::swarm`) |
//!
//! The length of a frame is checked against its tag's bounds before
//! anything is allocated ([`bounds`]: a fixed layout has its exact size), and
//! every read and write runs under a timeout that grows with the frame's
//! size, so a peer can neither make a node buffer without bound nor hold a
//! task forever. Nothing in a
//! frame is trusted: the record is checked against the stripe id the
//! requester already holds, and every share against the record.
//!
//! The fixed parts of the payloads are serde structs (`ShareAt`,
//! `RecordLen`, `Count`, `RenewedCount`) written and read by
//! [`kith_base::layout`]; the variable parts (records, leases, shares) are
//! taken by the lengths those give, and the share itself is written straight
//! from the codec's buffer and read as a view into the frame, never copied.
//! A test vector pins every message's bytes.
//!
//! Long because: the table above, every message's writer and parser side by
//! side, and their tests (round trips, bounds, truncations, the vector).

use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite};
use kith_base::{ContentId, LEASE_LEN, layout};
use kith_net::frames::{self, Bounds};
use kith_net::{PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

/// The start of a put, get or drop request: which share.
#[derive(Serialize, Deserialize)]
struct ShareAt {
    stripe: [u8; 32],
    index: u8,
}

/// The length of the stripe record that follows (put, share).
#[derive(Serialize, Deserialize)]
struct RecordLen(#[serde(with = "kith_base::layout::le")] u16);

/// How many leases (renew) or stripe ids (have) follow.
#[derive(Serialize, Deserialize)]
struct Count(#[serde(with = "kith_base::layout::le")] u16);

/// A renewed answer: shares whose lease was extended.
#[derive(Serialize, Deserialize)]
struct RenewedCount(#[serde(with = "kith_base::layout::le")] u32);

/// The protocol id of share transfer.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/share/1.0.0");

/// Largest stripe record: a 255-share stripe's record is ~8.2 KiB.
pub(crate) const MAX_RECORD: usize = 16 * 1024;
/// Largest share: a whole 64 MiB segment with k = 1 (the format's limit).
pub(crate) const MAX_SHARE: usize = kith_store::MAX_SHARE_LEN as usize;
/// Most stripes one `have` request may ask about.
pub(crate) const MAX_HAVE: usize = 512;
/// Most leases one `renew` request may carry (a whole extent fits).
pub(crate) const MAX_RENEW: usize = 512;
/// Longest refusal sentence.
const MAX_MESSAGE: usize = 1024;

const TAG_PUT: u8 = 0x01;
const TAG_GET: u8 = 0x02;
const TAG_HAVE: u8 = 0x03;
const TAG_DROP: u8 = 0x04;
const TAG_RENEW: u8 = 0x05;
const TAG_GET_OR_WHERE: u8 = 0x06;
const TAG_STORED: u8 = 0x81;
const TAG_REFUSED: u8 = 0x82;
const TAG_SHARE: u8 = 0x83;
const TAG_NOT_FOUND: u8 = 0x84;
const TAG_HOLDING: u8 = 0x85;
const TAG_DAMAGED: u8 = 0x86;
const TAG_DROPPED: u8 = 0x87;
const TAG_RENEWED: u8 = 0x88;
const TAG_ELSEWHERE: u8 = 0x89;
/// Longest peer id in an `elsewhere` answer (an Ed25519 peer id is 38 bytes).
const MAX_PEER_ID: usize = 64;

pub(crate) use kith_net::frames::{FrameError as WireError, Header, transfer_timeout};

/// Why a node refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefuseReason {
    /// Its store is over quota.
    Full,
    /// The request did not check out (bad record, share not matching it).
    Invalid,
    /// Something failed on its side.
    Internal,
    /// Too many requests at once; try later or elsewhere.
    Busy,
    /// A drop from a peer that did not store the share.
    NotOwner,
    /// The shares leased by the put's owner already take as much of this
    /// node's quota as any one peer may (`quota_per_peer`); others may
    /// still store here, and the owner's shares go to other peers.
    PeerShare,
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            Self::Full => 1,
            Self::Invalid => 2,
            Self::Internal => 3,
            Self::Busy => 4,
            Self::NotOwner => 5,
            Self::PeerShare => 6,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Full,
            2 => Self::Invalid,
            4 => Self::Busy,
            5 => Self::NotOwner,
            6 => Self::PeerShare,
            _ => Self::Internal,
        }
    }
}

/// A request, as received by a serving node.
#[derive(Debug)]
pub(crate) enum Request {
    Put {
        stripe: ContentId,
        index: u8,
        record: Vec<u8>,
        lease: Vec<u8>,
        share: Bytes,
    },
    Get {
        stripe: ContentId,
        index: u8,
        /// Whether the asker takes an `elsewhere` answer.
        redirect: bool,
    },
    Have {
        stripes: Vec<ContentId>,
    },
    Drop {
        stripe: ContentId,
        index: u8,
    },
    Renew {
        leases: Vec<Vec<u8>>,
    },
}

/// A request, as sent: borrows the caller's buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OutRequest<'a> {
    Put {
        stripe: ContentId,
        index: u8,
        record: &'a [u8],
        lease: &'a [u8; LEASE_LEN],
        share: &'a [u8],
    },
    Get {
        stripe: ContentId,
        index: u8,
        /// Whether the asker takes an `elsewhere` answer.
        redirect: bool,
    },
    Have {
        stripes: &'a [ContentId],
    },
    Drop {
        stripe: ContentId,
        index: u8,
    },
    Renew {
        leases: &'a [[u8; LEASE_LEN]],
    },
}

/// An answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Stored {
        already_held: bool,
    },
    Refused {
        reason: RefuseReason,
        message: String,
    },
    Share {
        record: Vec<u8>,
        /// The owner's lease on the stripe, if the holder keeps one.
        lease: Option<Vec<u8>>,
        /// A view into the received frame: no copy of the share's bytes.
        share: Bytes,
    },
    NotFound,
    /// The peer had the share, found it damaged on its disk when reading
    /// it, and dropped it.
    Damaged,
    Holding(Vec<[u8; 32]>),
    Dropped(DropResult),
    Renewed(u32),
    /// Ask this peer instead: it got the share from the answering node
    /// moments ago.
    Elsewhere(PeerId),
}

/// What a holder did with a drop request it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropResult {
    /// The share is deleted.
    Deleted,
    /// The holder did not have it (any more).
    NotHeld,
    /// The holder has a copy it cached when it fetched the file; a cache
    /// has no owner, so it stays.
    KeptCache,
}

/// The fewest and most payload bytes a frame of `tag` may carry; `None`
/// for an unknown tag. Fixed layouts have their exact size.
pub(crate) fn bounds(tag: u8) -> Option<Bounds> {
    Some(match tag {
        TAG_PUT => Bounds::new(
            32 + 1 + 2 + LEASE_LEN,
            32 + 1 + 2 + MAX_RECORD + LEASE_LEN + MAX_SHARE,
        ),
        TAG_RENEW => Bounds::new(2, 2 + LEASE_LEN * MAX_RENEW),
        TAG_RENEWED => Bounds::exactly(4),
        TAG_GET | TAG_GET_OR_WHERE | TAG_DROP => Bounds::exactly(33),
        TAG_ELSEWHERE => Bounds::new(1, MAX_PEER_ID),
        TAG_DROPPED => Bounds::exactly(1),
        TAG_HAVE => Bounds::new(2, 2 + 32 * MAX_HAVE),
        TAG_STORED => Bounds::exactly(1),
        TAG_REFUSED => Bounds::new(1, 1 + MAX_MESSAGE),
        TAG_SHARE => Bounds::new(2 + 1, 2 + MAX_RECORD + 1 + LEASE_LEN + MAX_SHARE),
        TAG_NOT_FOUND => Bounds::exactly(0),
        TAG_DAMAGED => Bounds::exactly(0),
        TAG_HOLDING => Bounds::up_to(32 * MAX_HAVE),
        _ => return None,
    })
}

/// Reads a frame header of this protocol (see [`kith_net::frames`]): `None`
/// if the stream ended cleanly first. `idle` bounds the wait for it.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    idle: Duration,
) -> Result<Option<Header>, WireError> {
    frames::read_header(reader, idle, bounds).await
}

/// Reads a payload of `len` bytes (already checked against its bounds).
pub(crate) async fn read_payload<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> Result<Vec<u8>, WireError> {
    let mut payload = Vec::new();
    frames::read_payload(reader, len, &mut payload).await?;
    Ok(payload)
}

/// Sends a request.
pub(crate) async fn write_request<W: AsyncWrite + Unpin>(
    writer: &mut W,
    request: OutRequest<'_>,
) -> Result<(), WireError> {
    match request {
        OutRequest::Put {
            stripe,
            index,
            record,
            lease,
            share,
        } => {
            let record_len = u16::try_from(record.len())
                .ok()
                .filter(|len| usize::from(*len) <= MAX_RECORD)
                .ok_or(WireError::Malformed("stripe record too long"))?;
            let mut head = layout::to_vec(&ShareAt {
                stripe: *stripe.as_bytes(),
                index,
            });
            layout::write(&RecordLen(record_len), &mut head);
            frames::write_frame(writer, TAG_PUT, &[&head, record, lease, share]).await
        }
        OutRequest::Get {
            stripe,
            index,
            redirect,
        } => {
            let tag = if redirect { TAG_GET_OR_WHERE } else { TAG_GET };
            frames::write_frame(writer, tag, &[&share_at(stripe, index)]).await
        }
        OutRequest::Drop { stripe, index } => {
            frames::write_frame(writer, TAG_DROP, &[&share_at(stripe, index)]).await
        }
        OutRequest::Renew { leases } => {
            if leases.len() > MAX_RENEW {
                return Err(WireError::Malformed("too many leases in one renew request"));
            }
            let mut payload = Vec::with_capacity(2 + LEASE_LEN * leases.len());
            layout::write(&Count(leases.len() as u16), &mut payload);
            for lease in leases {
                payload.extend_from_slice(lease);
            }
            frames::write_frame(writer, TAG_RENEW, &[&payload]).await
        }
        OutRequest::Have { stripes } => {
            if stripes.len() > MAX_HAVE {
                return Err(WireError::Malformed("too many stripes in one have request"));
            }
            let mut payload = Vec::with_capacity(2 + 32 * stripes.len());
            layout::write(&Count(stripes.len() as u16), &mut payload);
            for stripe in stripes {
                payload.extend_from_slice(stripe.as_bytes());
            }
            frames::write_frame(writer, TAG_HAVE, &[&payload]).await
        }
    }
}

/// Parses a request frame.
pub(crate) fn parse_request(tag: u8, payload: Vec<u8>) -> Result<Request, WireError> {
    match tag {
        TAG_PUT => {
            let (stripe, index, rest) = stripe_and_index(&payload)?;
            let (record, lease_at) = record_at(rest, 33)?;
            let lease = payload
                .get(lease_at..lease_at + LEASE_LEN)
                .ok_or(WireError::Malformed("put request too short for its lease"))?
                .to_vec();
            // A view into the frame, not a copy of the share.
            let share = Bytes::from(payload).slice(lease_at + LEASE_LEN..);
            Ok(Request::Put {
                stripe,
                index,
                record,
                lease,
                share,
            })
        }
        TAG_GET | TAG_GET_OR_WHERE => {
            let (stripe, index, rest) = stripe_and_index(&payload)?;
            if !rest.is_empty() {
                return Err(WireError::Malformed("get request too long"));
            }
            Ok(Request::Get {
                stripe,
                index,
                redirect: tag == TAG_GET_OR_WHERE,
            })
        }
        TAG_DROP => {
            let (stripe, index, rest) = stripe_and_index(&payload)?;
            if !rest.is_empty() {
                return Err(WireError::Malformed("drop request too long"));
            }
            Ok(Request::Drop { stripe, index })
        }
        TAG_RENEW => {
            let (count, leases) = count_of(&payload)?;
            if count > MAX_RENEW || leases.len() != LEASE_LEN * count {
                return Err(WireError::Malformed(
                    "renew request length does not match its count",
                ));
            }
            Ok(Request::Renew {
                leases: leases.chunks_exact(LEASE_LEN).map(<[u8]>::to_vec).collect(),
            })
        }
        TAG_HAVE => {
            let (count, ids) = count_of(&payload)?;
            if count > MAX_HAVE || ids.len() != 32 * count {
                return Err(WireError::Malformed(
                    "have request length does not match its count",
                ));
            }
            let (ids, _) = ids.as_chunks::<32>();
            let stripes = ids.iter().copied().map(ContentId::from_bytes).collect();
            Ok(Request::Have { stripes })
        }
        other => Err(WireError::UnknownTag(other)),
    }
}

/// Sends an answer.
pub(crate) async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    answer: &Answer,
) -> Result<(), WireError> {
    match answer {
        Answer::Stored { already_held } => {
            frames::write_frame(writer, TAG_STORED, &[&[u8::from(*already_held)]]).await
        }
        Answer::Refused { reason, message } => {
            let mut end = message.len().min(MAX_MESSAGE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            frames::write_frame(
                writer,
                TAG_REFUSED,
                &[&[reason.code()], &message.as_bytes()[..end]],
            )
            .await
        }
        Answer::Share {
            record,
            lease,
            share,
        } => write_share(writer, record, lease.as_deref(), share).await,
        Answer::NotFound => frames::write_frame(writer, TAG_NOT_FOUND, &[]).await,
        Answer::Damaged => frames::write_frame(writer, TAG_DAMAGED, &[]).await,
        Answer::Dropped(result) => {
            let code = match result {
                DropResult::Deleted => 0,
                DropResult::NotHeld => 1,
                DropResult::KeptCache => 2,
            };
            frames::write_frame(writer, TAG_DROPPED, &[&[code]]).await
        }
        Answer::Renewed(count) => {
            let count = layout::to_vec(&RenewedCount(*count));
            frames::write_frame(writer, TAG_RENEWED, &[&count]).await
        }
        Answer::Elsewhere(peer) => {
            frames::write_frame(writer, TAG_ELSEWHERE, &[&peer.to_bytes()]).await
        }
        Answer::Holding(bitmaps) => {
            let flat: Vec<u8> = bitmaps.iter().flatten().copied().collect();
            frames::write_frame(writer, TAG_HOLDING, &[&flat]).await
        }
    }
}

/// Sends a share answer straight from borrowed buffers.
pub(crate) async fn write_share<W: AsyncWrite + Unpin>(
    writer: &mut W,
    record: &[u8],
    lease: Option<&[u8]>,
    share: &[u8],
) -> Result<(), WireError> {
    let record_len =
        u16::try_from(record.len()).map_err(|_| WireError::Malformed("stripe record too long"))?;
    let lease = lease
        .filter(|lease| lease.len() == LEASE_LEN)
        .unwrap_or(&[]);
    let record_len = layout::to_vec(&RecordLen(record_len));
    frames::write_frame(
        writer,
        TAG_SHARE,
        &[&record_len, record, &[lease.len() as u8], lease, share],
    )
    .await
}

/// Reads and parses one answer.
pub(crate) async fn read_answer<R: AsyncRead + Unpin>(
    reader: &mut R,
    wait: Duration,
) -> Result<Answer, WireError> {
    let Header { tag, len } = read_header(reader, wait).await?.ok_or(WireError::Closed)?;
    let payload = read_payload(reader, len).await?;
    parse_answer(tag, payload)
}

pub(crate) fn parse_answer(tag: u8, payload: Vec<u8>) -> Result<Answer, WireError> {
    match tag {
        TAG_STORED => match payload.as_slice() {
            [0] => Ok(Answer::Stored {
                already_held: false,
            }),
            [1] => Ok(Answer::Stored { already_held: true }),
            _ => Err(WireError::Malformed("stored answer")),
        },
        TAG_REFUSED => {
            let (&code, message) = payload
                .split_first()
                .ok_or(WireError::Malformed("empty refusal"))?;
            Ok(Answer::Refused {
                reason: RefuseReason::from_code(code),
                message: String::from_utf8_lossy(message).into_owned(),
            })
        }
        TAG_SHARE => {
            let (record, lease_at) = record_at(&payload, 0)?;
            let lease_len = usize::from(
                *payload
                    .get(lease_at)
                    .ok_or(WireError::Malformed("share answer cut short"))?,
            );
            let lease = match lease_len {
                0 => None,
                LEASE_LEN => Some(
                    payload
                        .get(lease_at + 1..lease_at + 1 + LEASE_LEN)
                        .ok_or(WireError::Malformed("share answer cut short"))?
                        .to_vec(),
                ),
                _ => return Err(WireError::Malformed("share answer with a bad lease length")),
            };
            // Slicing `Bytes` keeps the frame's buffer: `split_off` would
            // copy the share into a fresh allocation.
            let share = Bytes::from(payload).slice(lease_at + 1 + lease_len..);
            Ok(Answer::Share {
                record,
                lease,
                share,
            })
        }
        TAG_NOT_FOUND => Ok(Answer::NotFound),
        TAG_ELSEWHERE => PeerId::from_bytes(&payload)
            .map(Answer::Elsewhere)
            .map_err(|_| WireError::Malformed("elsewhere answer without a valid peer id")),
        TAG_DAMAGED => Ok(Answer::Damaged),
        TAG_DROPPED => match payload.as_slice() {
            [0] => Ok(Answer::Dropped(DropResult::Deleted)),
            [1] => Ok(Answer::Dropped(DropResult::NotHeld)),
            [2] => Ok(Answer::Dropped(DropResult::KeptCache)),
            _ => Err(WireError::Malformed("dropped answer")),
        },
        TAG_RENEWED => {
            let RenewedCount(count) = layout::read_all(&payload, "renewed answer")
                .map_err(|_| WireError::Malformed("renewed answer"))?;
            Ok(Answer::Renewed(count))
        }
        TAG_HOLDING => {
            if !payload.len().is_multiple_of(32) {
                return Err(WireError::Malformed("holding answer is not whole bitmaps"));
            }
            let (bitmaps, _) = payload.as_chunks::<32>();
            Ok(Answer::Holding(bitmaps.to_vec()))
        }
        other => Err(WireError::UnknownTag(other)),
    }
}

/// Marks share `index` as held in a bitmap.
pub(crate) fn set_bit(bitmap: &mut [u8; 32], index: u8) {
    bitmap[usize::from(index / 8)] |= 1 << (index % 8);
}

/// Whether share `index` is marked held.
pub(crate) fn bit(bitmap: &[u8; 32], index: u8) -> bool {
    bitmap[usize::from(index / 8)] & (1 << (index % 8)) != 0
}

/// The payload of a get or drop request (and the start of a put).
fn share_at(stripe: ContentId, index: u8) -> Vec<u8> {
    layout::to_vec(&ShareAt {
        stripe: *stripe.as_bytes(),
        index,
    })
}

fn stripe_and_index(payload: &[u8]) -> Result<(ContentId, u8, &[u8]), WireError> {
    let (at, rest) = layout::read::<ShareAt>(payload, "request")
        .map_err(|_| WireError::Malformed("request too short"))?;
    Ok((ContentId::from_bytes(at.stripe), at.index, rest))
}

/// Reads a count and returns it with what follows.
fn count_of(payload: &[u8]) -> Result<(usize, &[u8]), WireError> {
    let (Count(count), rest) =
        layout::read(payload, "count").map_err(|_| WireError::Malformed("frame too short"))?;
    Ok((usize::from(count), rest))
}

/// Reads `record length u16 ‖ record` at the start of `bytes`; returns the
/// record and where what follows starts, counted from `base` (the offset
/// of `bytes` in the whole payload).
fn record_at(bytes: &[u8], base: usize) -> Result<(Vec<u8>, usize), WireError> {
    let (RecordLen(len), rest) = layout::read(bytes, "record length")
        .map_err(|_| WireError::Malformed("frame too short"))?;
    let len = usize::from(len);
    if len > MAX_RECORD {
        return Err(WireError::Malformed("stripe record too long"));
    }
    let (record, _) = layout::split(rest, len, "stripe record")
        .map_err(|_| WireError::Malformed("stripe record cut short"))?;
    Ok((record.to_vec(), base + (bytes.len() - rest.len()) + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip_request(request: OutRequest<'_>) -> Request {
        let mut wire = Vec::new();
        write_request(&mut wire, request).await.unwrap();
        let mut reader = futures::io::Cursor::new(wire);
        let Header { tag, len } = read_header(&mut reader, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        let payload = read_payload(&mut reader, len).await.unwrap();
        parse_request(tag, payload).unwrap()
    }

    async fn round_trip_answer(answer: &Answer) -> Answer {
        let mut wire = Vec::new();
        write_answer(&mut wire, answer).await.unwrap();
        read_answer(&mut futures::io::Cursor::new(wire), Duration::from_secs(1))
            .await
            .unwrap()
    }

    use kith_base::layout::to_hex as hex;

    async fn request_bytes(request: OutRequest<'_>) -> String {
        let mut wire = Vec::new();
        write_request(&mut wire, request).await.unwrap();
        hex(&wire)
    }

    async fn answer_bytes(answer: &Answer) -> String {
        let mut wire = Vec::new();
        write_answer(&mut wire, answer).await.unwrap();
        hex(&wire)
    }

    /// Every message's frame, byte for byte: nodes of the last version
    /// speak it (`/kith/share/1.0.0` is unchanged).
    #[tokio::test]
    async fn layout_is_pinned_by_a_test_vector() {
        let stripe = ContentId::from_bytes([0x11; 32]);
        let s = "11".repeat(32);
        let lease = [0x44u8; LEASE_LEN];
        let put = OutRequest::Put {
            stripe,
            index: 2,
            record: &[0xaa; 3],
            lease: &lease,
            share: b"xyz",
        };
        // 32 + 1 + 2 + 3 + 169 + 3 = 210 = 0xd2 bytes of payload.
        assert_eq!(
            request_bytes(put).await,
            format!("01d2000000{s}020300aaaaaa{}78797a", "44".repeat(LEASE_LEN))
        );
        let get = OutRequest::Get {
            stripe,
            index: 5,
            redirect: false,
        };
        assert_eq!(request_bytes(get).await, format!("0221000000{s}05"));
        let get_or_where = OutRequest::Get {
            stripe,
            index: 5,
            redirect: true,
        };
        assert_eq!(
            request_bytes(get_or_where).await,
            format!("0621000000{s}05")
        );
        let drop = OutRequest::Drop { stripe, index: 9 };
        assert_eq!(request_bytes(drop).await, format!("0421000000{s}09"));
        let renew = OutRequest::Renew {
            leases: &[lease, lease],
        };
        assert_eq!(
            request_bytes(renew).await,
            format!("05540100000200{}", "44".repeat(2 * LEASE_LEN))
        );
        let have = OutRequest::Have { stripes: &[stripe] };
        assert_eq!(request_bytes(have).await, format!("03220000000100{s}"));

        let stored = Answer::Stored { already_held: true };
        assert_eq!(answer_bytes(&stored).await, "810100000001");
        let refused = Answer::Refused {
            reason: RefuseReason::from_code(1),
            message: "no".into(),
        };
        assert_eq!(answer_bytes(&refused).await, "8203000000016e6f");
        let past_share = Answer::Refused {
            reason: RefuseReason::PeerShare,
            message: "no".into(),
        };
        assert_eq!(answer_bytes(&past_share).await, "8203000000066e6f");
        // A code this node does not know reads as an internal error (so an
        // older node takes code 6 as a refusal, and places elsewhere).
        assert_eq!(RefuseReason::from_code(6), RefuseReason::PeerShare);
        assert_eq!(RefuseReason::from_code(99), RefuseReason::Internal);
        let share = Answer::Share {
            record: vec![0xaa; 3],
            lease: Some(lease.to_vec()),
            share: Bytes::from_static(b"xyz"),
        };
        // 2 + 3 + 1 + 169 + 3 = 178 = 0xb2 bytes of payload.
        assert_eq!(
            answer_bytes(&share).await,
            format!("83b20000000300aaaaaaa9{}78797a", "44".repeat(LEASE_LEN))
        );
        let bare = Answer::Share {
            record: vec![0xaa],
            lease: None,
            share: Bytes::new(),
        };
        assert_eq!(answer_bytes(&bare).await, "83040000000100aa00");
        assert_eq!(answer_bytes(&Answer::NotFound).await, "8400000000");
        assert_eq!(answer_bytes(&Answer::Damaged).await, "8600000000");
        let dropped = Answer::Dropped(DropResult::KeptCache);
        assert_eq!(answer_bytes(&dropped).await, "870100000002");
        assert_eq!(
            answer_bytes(&Answer::Renewed(0x0102_0304)).await,
            "880400000004030201"
        );
        let mut bitmap = [0u8; 32];
        set_bit(&mut bitmap, 9);
        let holding = Answer::Holding(vec![bitmap]);
        assert_eq!(
            answer_bytes(&holding).await,
            format!("852000000000{}{}", "02", "00".repeat(30))
        );
    }

    #[tokio::test]
    async fn requests_round_trip() {
        let stripe = ContentId::of(b"stripe");
        let lease = [7u8; LEASE_LEN];
        let got = round_trip_request(OutRequest::Put {
            stripe,
            index: 4,
            record: b"record",
            lease: &lease,
            share: b"share bytes",
        })
        .await;
        match got {
            Request::Put {
                stripe: s,
                index,
                record,
                lease: got_lease,
                share,
            } => {
                assert_eq!((s, index), (stripe, 4));
                assert_eq!(record, b"record");
                assert_eq!(got_lease, lease);
                assert_eq!(&share[..], b"share bytes");
            }
            other => panic!("{other:?}"),
        }
        let leases = [[1u8; LEASE_LEN], [2u8; LEASE_LEN]];
        let got = round_trip_request(OutRequest::Renew { leases: &leases }).await;
        assert!(
            matches!(&got, Request::Renew { leases: got } if got.len() == 2 && got[1] == leases[1]),
            "{got:?}"
        );
        // A put too short to hold its lease is malformed, not a panic.
        let mut short = stripe.as_bytes().to_vec();
        short.extend_from_slice(&[0, 3, 0, b'r', b'e', b'c', 1, 2]);
        assert!(matches!(
            parse_request(TAG_PUT, short),
            Err(WireError::Malformed(_))
        ));
        for redirect in [false, true] {
            let got = round_trip_request(OutRequest::Get {
                stripe,
                index: 2,
                redirect,
            })
            .await;
            assert!(
                matches!(got, Request::Get { stripe: s, index: 2, redirect: r } if s == stripe && r == redirect),
                "{got:?}"
            );
        }
        let ids = [stripe, ContentId::of(b"other")];
        let got = round_trip_request(OutRequest::Have { stripes: &ids }).await;
        assert!(matches!(got, Request::Have { stripes } if stripes == ids));
    }

    #[tokio::test]
    async fn answers_round_trip() {
        let mut bitmap = [0u8; 32];
        set_bit(&mut bitmap, 0);
        set_bit(&mut bitmap, 254);
        assert!(bit(&bitmap, 254) && bit(&bitmap, 0) && !bit(&bitmap, 1));
        for answer in [
            Answer::Stored {
                already_held: false,
            },
            Answer::Stored { already_held: true },
            Answer::Refused {
                reason: RefuseReason::Full,
                message: "store is full".into(),
            },
            Answer::Refused {
                reason: RefuseReason::PeerShare,
                message: "your share of this store is used up".into(),
            },
            Answer::Share {
                record: b"rec".to_vec(),
                lease: None,
                share: Bytes::from(vec![9; 1000]),
            },
            Answer::Share {
                record: b"rec".to_vec(),
                lease: Some(vec![5; LEASE_LEN]),
                share: Bytes::from(vec![9; 1000]),
            },
            Answer::NotFound,
            Answer::Damaged,
            Answer::Holding(vec![bitmap, [0; 32]]),
            Answer::Renewed(70_000),
            Answer::Elsewhere(kith_base::Identity::generate().peer_id()),
        ] {
            assert_eq!(round_trip_answer(&answer).await, answer);
        }
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_allocating() {
        // A get frame claiming 4 GiB of payload.
        let wire = [TAG_GET, 0xff, 0xff, 0xff, 0xff];
        let error = read_header(
            &mut futures::io::Cursor::new(wire.to_vec()),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, WireError::TooLarge { len, max: 33, .. } if len == u32::MAX as usize),
            "{error}"
        );
        let wire = [0x7f, 0, 0, 0, 0];
        let error = read_header(
            &mut futures::io::Cursor::new(wire.to_vec()),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, WireError::UnknownTag(0x7f)));
    }

    /// Every tag's header at its smallest and largest length is taken, one
    /// byte more than the largest or one less than the smallest is refused
    /// before the payload is read, and an unknown tag is refused.
    #[tokio::test]
    async fn every_tag_holds_its_size_bounds() {
        let idle = Duration::from_secs(1);
        let header = |tag: u8, len: usize| {
            futures::io::Cursor::new(frames::encode_header(tag, len as u32).to_vec())
        };
        let mut known = 0;
        for tag in 0..=u8::MAX {
            let Some(Bounds { min, max }) = bounds(tag) else {
                let got = read_header(&mut header(tag, 0), idle).await;
                assert!(matches!(got, Err(WireError::UnknownTag(t)) if t == tag));
                continue;
            };
            known += 1;
            assert!(min <= max, "tag {tag:#04x}");
            for len in [min, max] {
                let got = read_header(&mut header(tag, len), idle).await.unwrap();
                assert_eq!(got, Some(Header { tag, len }));
            }
            let got = read_header(&mut header(tag, max + 1), idle).await;
            assert!(matches!(got, Err(WireError::TooLarge { .. })), "{got:?}");
            if min > 0 {
                let got = read_header(&mut header(tag, min - 1), idle).await;
                assert!(matches!(got, Err(WireError::TooShort { .. })), "{got:?}");
            }
        }
        assert_eq!(known, 15, "every tag of the table above has bounds");
    }

    #[tokio::test]
    async fn truncated_and_malformed_frames_are_errors() {
        // Header cut short.
        let error = read_header(
            &mut futures::io::Cursor::new(vec![TAG_GET, 1]),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, WireError::Closed), "{error}");
        // A clean end before any byte is not an error.
        assert!(
            read_header(
                &mut futures::io::Cursor::new(Vec::new()),
                Duration::from_secs(1)
            )
            .await
            .unwrap()
            .is_none()
        );
        assert!(parse_request(TAG_GET, vec![0; 10]).is_err());
        assert!(parse_request(TAG_HAVE, vec![3, 0, 1, 2]).is_err());
        // A record length pointing past the end.
        let mut put = vec![0u8; 33];
        put.extend_from_slice(&[100, 0]);
        put.extend_from_slice(b"short");
        assert!(parse_request(TAG_PUT, put).is_err());
        assert!(parse_answer(TAG_HOLDING, vec![0; 33]).is_err());
        assert!(parse_answer(TAG_STORED, vec![7]).is_err());
        // An `elsewhere` that names no peer.
        assert!(matches!(
            parse_answer(TAG_ELSEWHERE, vec![1, 2, 3]),
            Err(WireError::Malformed(_))
        ));
    }
}
