//! Doors to the node's private decoders for the fuzz targets in `fuzz/`
//! only; not part of the API. Each function decodes bytes the way the node
//! does when they come from a peer or a disk and asserts what the rest of
//! the node relies on (bounds, round trips); a panic is a finding.

use std::time::Duration;

use futures::AsyncRead;
use kith_base::{LEASE_LEN, letter};

use crate::files::owned::OwnedFile;
use crate::friends::db::HeldMail;
use crate::protocols::letter_frames::{self as friends_wire, WireError as FriendsWireError, tag};
use crate::protocols::share::wire::{self as share_wire, Answer, OutRequest, Request};

/// A wait long enough never to fire on in-memory bytes.
const IDLE: Duration = Duration::from_secs(3600);

/// Reads share-protocol request frames from `reader` as a serving node
/// does (header, payload of at most the tag's maximum, parse) until the
/// first error; every request that parses is written again and must give
/// back exactly the bytes it was read from (the format is canonical).
/// Returns how many requests parsed. Needs a Tokio runtime with time.
pub async fn share_requests(bytes: &[u8]) -> usize {
    let mut reader = futures::io::Cursor::new(bytes);
    let mut parsed = 0;
    loop {
        let start = reader.position() as usize;
        let Ok(Some(share_wire::Header { tag, len })) =
            share_wire::read_header(&mut reader, IDLE).await
        else {
            return parsed;
        };
        let bounds = share_wire::bounds(tag);
        assert!(
            bounds.is_some_and(|bounds| (bounds.min..=bounds.max).contains(&len)),
            "tag {tag:#04x} len {len}"
        );
        let Ok(payload) = share_wire::read_payload(&mut reader, len).await else {
            return parsed;
        };
        let Ok(request) = share_wire::parse_request(tag, payload) else {
            return parsed;
        };
        let end = reader.position() as usize;
        let mut again = Vec::new();
        let written = match &request {
            Request::Put {
                stripe,
                index,
                record,
                lease,
                share,
            } => {
                let lease: &[u8; LEASE_LEN] = match lease.as_slice().try_into() {
                    Ok(lease) => lease,
                    Err(_) => panic!("a parsed put has a {}-byte lease", lease.len()),
                };
                let out = OutRequest::Put {
                    stripe: *stripe,
                    index: *index,
                    record,
                    lease,
                    share,
                };
                share_wire::write_request(&mut again, out).await
            }
            Request::Get {
                stripe,
                index,
                redirect,
            } => {
                let out = OutRequest::Get {
                    stripe: *stripe,
                    index: *index,
                    redirect: *redirect,
                };
                share_wire::write_request(&mut again, out).await
            }
            Request::Have { stripes } => {
                share_wire::write_request(&mut again, OutRequest::Have { stripes }).await
            }
            Request::Drop { stripe, index } => {
                let out = OutRequest::Drop {
                    stripe: *stripe,
                    index: *index,
                };
                share_wire::write_request(&mut again, out).await
            }
            Request::Renew { leases } => {
                let leases: Vec<[u8; LEASE_LEN]> = leases
                    .iter()
                    .map(|lease| match lease.as_slice().try_into() {
                        Ok(lease) => lease,
                        Err(_) => panic!("a parsed renew has a {}-byte lease", lease.len()),
                    })
                    .collect();
                share_wire::write_request(&mut again, OutRequest::Renew { leases: &leases }).await
            }
        };
        assert!(written.is_ok(), "a parsed request writes: {written:?}");
        assert_eq!(again, &bytes[start..end], "request frames are canonical");
        parsed += 1;
    }
}

/// Reads share-protocol answers from `bytes` as an asking node does until
/// the first error; every answer that parses is written and read again and
/// must come back equal (a refusal's message may come back cut to its
/// maximum). Returns how many answers parsed. Needs a Tokio runtime with
/// time.
pub async fn share_answers(bytes: &[u8]) -> usize {
    let mut reader = futures::io::Cursor::new(bytes);
    let mut parsed = 0;
    while let Ok(answer) = share_wire::read_answer(&mut reader, IDLE).await {
        let mut again = Vec::new();
        let written = share_wire::write_answer(&mut again, &answer).await;
        assert!(written.is_ok(), "a parsed answer writes: {written:?}");
        let reread = share_wire::read_answer(&mut futures::io::Cursor::new(&again), IDLE).await;
        match (&answer, reread) {
            (
                Answer::Refused { reason, message },
                Ok(Answer::Refused {
                    reason: reason_again,
                    message: message_again,
                }),
            ) => {
                assert_eq!(*reason, reason_again);
                assert!(message.starts_with(&message_again));
            }
            (answer, Ok(reread)) => assert_eq!(*answer, reread, "answers round-trip"),
            (answer, Err(error)) => panic!("{answer:?} was written but reads as {error}"),
        }
        parsed += 1;
    }
    parsed
}

/// Whether a friends frame read back is one its receivers can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameOutcome {
    /// A frame of this tag, its payload checked as its receiver reads it.
    Frame(u8),
    /// The stream ended cleanly between frames.
    Closed,
    /// `read_frame` refused the bytes (the stream is then dropped).
    Refused,
}

/// Reads one friends-protocol frame (direct or mailbox) with the node's
/// `read_frame`, reusing `buffer` as the receivers do, and then reads the
/// payload the way the receiver of that tag does, asserting what it
/// assumes: the payload is within the tag's minimum and maximum, an end
/// frame is exactly a 32-byte hash, a deposit is a 32-byte mailbox id, an
/// 8-byte expiry and a sealed letter, counts in a drop or mail add up, a
/// letter opens or is refused without a panic.
pub async fn friends_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> FrameOutcome {
    let tag = match friends_wire::read_frame(reader, IDLE, buffer).await {
        Ok(Some(tag)) => tag,
        Ok(None) => return FrameOutcome::Closed,
        Err(FriendsWireError::Refused { sentence, .. }) => {
            assert!(
                sentence.len() <= 3 * 1024,
                "a refusal's sentence is bounded"
            );
            return FrameOutcome::Refused;
        }
        Err(_) => return FrameOutcome::Refused,
    };
    let bounds = friends_wire::bounds(tag);
    assert!(
        bounds.is_some_and(|bounds| (bounds.min..=bounds.max).contains(&buffer.len())),
        "tag {tag:#04x} came with {} bytes",
        buffer.len()
    );
    match tag {
        tag::LETTER => {
            if let Ok(letter) = letter::open_signed(buffer) {
                assert!(letter.encode().is_ok(), "an opened letter encodes");
            }
        }
        tag::END => {
            // What the direct receiver does with an end frame.
            let hash: [u8; 32] = match buffer.as_slice().try_into() {
                Ok(hash) => hash,
                Err(_) => panic!(
                    "an end frame of {} bytes reached the receiver",
                    buffer.len()
                ),
            };
            let _ = blake3::Hash::from_bytes(hash);
        }
        tag::DEPOSIT => {
            let deposit = match friends_wire::decode_deposit(buffer) {
                Ok(deposit) => deposit,
                Err(error) => panic!("a deposit within its bounds did not parse: {error}"),
            };
            assert!(deposit.sealed.len() <= letter::MAX_SEALED_LETTER);
            assert_eq!(
                friends_wire::encode_deposit(&deposit.mailbox, deposit.expires_ms, deposit.sealed),
                *buffer,
                "deposits round-trip"
            );
        }
        tag::DROP => {
            if let Ok(ids) = friends_wire::decode_ids(buffer) {
                assert_eq!(
                    friends_wire::encode_ids(&ids),
                    *buffer,
                    "drop ids round-trip"
                );
            }
        }
        tag::MAIL => {
            if let Ok(items) = friends_wire::decode_mail(buffer) {
                let held: Vec<_> = items
                    .into_iter()
                    .map(|sealed| ([0u8; 32], sealed))
                    .collect();
                assert_eq!(
                    friends_wire::encode_mail(&held),
                    *buffer,
                    "mail round-trips"
                );
            }
        }
        tag::HELD => assert_eq!(buffer.len(), 1),
        tag::DROPPED => assert_eq!(buffer.len(), 2),
        _ => {}
    }
    FrameOutcome::Frame(tag)
}

/// Decodes a held-mail row as the mailbox reads it from disk; a row that
/// decodes must encode back to exactly itself.
pub fn held_mail(row: &[u8]) -> bool {
    let Some(mail) = HeldMail::decode(row) else {
        return false;
    };
    assert_eq!(mail.encode(), row, "held-mail rows are canonical");
    true
}

/// Decodes an owned-file row as the owner's table reads it from disk; a
/// row that decodes must encode back to exactly itself.
pub fn owned_file(row: &[u8]) -> bool {
    let Some(file) = OwnedFile::decode(row) else {
        return false;
    };
    assert_eq!(file.encode(), row, "owned-file rows are canonical");
    true
}

/// Real share-protocol frames for the fuzzers' seed corpora: a byte string
/// of requests (get, get-or-where, drop, have, renew, put) and one of
/// answers (stored, refused, share, not found, damaged, dropped, renewed,
/// holding, elsewhere). `lease` is a signed lease, `record` a stripe
/// record, `peer` a peer id's bytes.
pub async fn share_seed_frames(
    lease: &[u8; LEASE_LEN],
    record: &[u8],
    peer: kith_base::PeerId,
) -> (Vec<u8>, Vec<u8>) {
    use kith_base::ContentId;
    let stripe = ContentId::from_bytes([3; 32]);
    let mut requests = Vec::new();
    let leases = [*lease];
    let stripes = [stripe, ContentId::from_bytes([4; 32])];
    for request in [
        OutRequest::Get {
            stripe,
            index: 1,
            redirect: false,
        },
        OutRequest::Get {
            stripe,
            index: 2,
            redirect: true,
        },
        OutRequest::Drop { stripe, index: 0 },
        OutRequest::Have { stripes: &stripes },
        OutRequest::Renew { leases: &leases },
        OutRequest::Put {
            stripe,
            index: 0,
            record,
            lease,
            share: b"share bytes",
        },
    ] {
        let _ = share_wire::write_request(&mut requests, request).await;
    }
    let mut answers = Vec::new();
    for answer in [
        Answer::Stored { already_held: true },
        Answer::Refused {
            reason: share_wire::RefuseReason::Full,
            message: "full".into(),
        },
        Answer::Share {
            record: record.to_vec(),
            lease: Some(lease.to_vec()),
            share: bytes::Bytes::from_static(b"share bytes"),
        },
        Answer::NotFound,
        Answer::Damaged,
        Answer::Dropped(share_wire::DropResult::KeptCache),
        Answer::Renewed(3),
        Answer::Holding(vec![[0x55; 32]]),
        Answer::Elsewhere(peer),
    ] {
        let _ = share_wire::write_answer(&mut answers, &answer).await;
    }
    (requests, answers)
}
