//! The frames of `/kith/name/1.0.0`: one request and its answer at a time
//! on a stream, each a frame of [`kith_net::frames`].
//!
//! | tag | from | frame | payload | answer |
//! |---|---|---|---|---|
//! | `0x21` | asker | store | a name record (190 bytes, [`kith_base::name`]) | record (the one held after the store) or refused |
//! | `0x22` | asker | fetch | a name (32 bytes) | record (empty when none is held) |
//! | `0xa1` | holder | record | a name record, or nothing | |
//! | `0xa2` | holder | refused | reason (1) ‖ UTF-8 sentence | |
//!
//! The holder answers a store with the record it holds afterwards: the one
//! sent when it was newer, or its own newer one, so a publisher learns
//! when someone else published a higher sequence. Nothing read is trusted:
//! the asker verifies every record it is given, and checks that it is for
//! the name it asked about.

use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use kith_base::name::RECORD_LEN;
use kith_base::{Name, NameError, NameRecord};
use kith_net::StreamProtocol;
use kith_net::frames::{self, Bounds, FrameError};

/// The names protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/name/1.0.0");

/// The longest sentence a refusal carries.
const MAX_SENTENCE: usize = 512;

/// The tags.
pub mod tag {
    /// Keep this record.
    pub const STORE: u8 = 0x21;
    /// Which record do you hold for this name?
    pub const FETCH: u8 = 0x22;
    /// A record, or none.
    pub const RECORD: u8 = 0xa1;
    /// Refused, with a reason.
    pub const REFUSED: u8 = 0xa2;
}

/// The payload bounds of each tag.
pub fn bounds(tag: u8) -> Option<Bounds> {
    Some(match tag {
        tag::STORE => Bounds::exactly(RECORD_LEN),
        tag::FETCH => Bounds::exactly(32),
        tag::RECORD => Bounds::up_to(RECORD_LEN),
        tag::REFUSED => Bounds::new(1, 1 + MAX_SENTENCE),
        _ => return None,
    })
}

/// Why a holder refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// The signature does not verify, or the bytes are not a record.
    Forged = 1,
    /// The record's validity has ended.
    Expired = 2,
    /// The holder keeps as many names as it will.
    Full = 3,
    /// Something failed on the holder's side.
    Internal = 4,
}

impl Reason {
    fn from_u8(byte: u8) -> Self {
        match byte {
            1 => Self::Forged,
            2 => Self::Expired,
            3 => Self::Full,
            _ => Self::Internal,
        }
    }
}

/// Why a names conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum NameWireError {
    /// A frame could not be read or written, or broke the protocol.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer refused.
    #[error("refused: {sentence}")]
    Refused {
        /// Why.
        reason: Reason,
        /// The peer's sentence.
        sentence: String,
    },
    /// The peer sent a record that does not verify.
    #[error("the peer sent a bad name record: {0}")]
    BadRecord(#[from] NameError),
    /// The peer sent a valid record of another name than the one asked for.
    #[error("the peer sent a record of another name ({got})")]
    OtherName {
        /// The name of the record sent.
        got: Name,
    },
    /// The stream could not be opened.
    #[error("cannot open a stream: {0}")]
    Open(String),
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
    reason: Reason,
    sentence: &str,
) -> Result<(), FrameError> {
    let mut end = sentence.len().min(MAX_SENTENCE);
    while !sentence.is_char_boundary(end) {
        end -= 1;
    }
    frames::write_frame(
        stream,
        tag::REFUSED,
        &[&[reason as u8], &sentence.as_bytes()[..end]],
    )
    .await
}

/// Reads the answer to a store or a fetch: the record held (verified and
/// of `name`), or none.
pub async fn read_answer<R: AsyncRead + Unpin>(
    stream: &mut R,
    idle: Duration,
    name: &Name,
) -> Result<Option<NameRecord>, NameWireError> {
    let mut buffer = Vec::new();
    match frames::read_frame(stream, idle, bounds, &mut buffer).await? {
        None => Err(FrameError::Closed.into()),
        Some(tag::RECORD) if buffer.is_empty() => Ok(None),
        Some(tag::RECORD) => {
            let record = NameRecord::from_bytes(&buffer)?;
            if record.name() != *name {
                return Err(NameWireError::OtherName { got: record.name() });
            }
            Ok(Some(record))
        }
        Some(tag::REFUSED) => {
            // At least one byte: the bounds say so.
            let (&reason, sentence) = buffer
                .split_first()
                .ok_or(FrameError::Malformed("an empty refusal"))?;
            Err(NameWireError::Refused {
                reason: Reason::from_u8(reason),
                sentence: String::from_utf8_lossy(sentence).into_owned(),
            })
        }
        Some(got) => Err(FrameError::Unexpected {
            got,
            expected: "a name record",
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_base::name::NameSigner;
    use kith_base::{Capability, ContentId, FileKey, Identity};

    const IDLE: Duration = Duration::from_secs(1);

    fn record() -> NameRecord {
        let signer = NameSigner::new(&Identity::generate(), None).unwrap();
        let cap = Capability::new(ContentId::of(b"m"), FileKey::random());
        signer.sign(&cap, 3, 1, u64::MAX)
    }

    async fn answer_of(bytes: Vec<u8>, name: &Name) -> Result<Option<NameRecord>, NameWireError> {
        read_answer(&mut futures::io::Cursor::new(bytes), IDLE, name).await
    }

    #[tokio::test]
    async fn answers_are_verified_and_must_be_of_the_name_asked() {
        let record = record();
        let name = record.name();
        let mut frame = Vec::new();
        write(&mut frame, tag::RECORD, record.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            answer_of(frame.clone(), &name).await.unwrap(),
            Some(record.clone())
        );

        let other = self::record().name();
        assert!(matches!(
            answer_of(frame.clone(), &other).await,
            Err(NameWireError::OtherName { .. })
        ));

        let mut tampered = frame.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            answer_of(tampered, &name).await,
            Err(NameWireError::BadRecord(NameError::BadSignature))
        ));

        let mut none = Vec::new();
        write(&mut none, tag::RECORD, &[]).await.unwrap();
        assert_eq!(answer_of(none, &name).await.unwrap(), None);

        let mut refused = Vec::new();
        write_refusal(&mut refused, Reason::Full, "too many")
            .await
            .unwrap();
        assert!(matches!(
            answer_of(refused, &name).await,
            Err(NameWireError::Refused { reason: Reason::Full, ref sentence }) if sentence == "too many"
        ));
    }

    #[tokio::test]
    async fn oversized_and_unknown_frames_are_refused_before_they_are_read() {
        let name = record().name();
        let mut big = frames::encode_header(tag::RECORD, 1 << 20).to_vec();
        big.extend_from_slice(&[0; 64]);
        assert!(matches!(
            answer_of(big, &name).await,
            Err(NameWireError::Frame(FrameError::TooLarge { .. }))
        ));
        let unknown = frames::encode_header(0x7f, 0).to_vec();
        assert!(matches!(
            answer_of(unknown, &name).await,
            Err(NameWireError::Frame(FrameError::UnknownTag(0x7f)))
        ));
        assert!(bounds(tag::STORE).is_some() && bounds(tag::FETCH).is_some());
    }
}
