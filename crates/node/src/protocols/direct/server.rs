//! The recipient's side of `/kith/direct/1.0.0`.
//!
//! The server trusts nothing it receives: the letter must be signed by the
//! peer on the other end of the (Noise-authenticated) connection and
//! addressed to this node; its (author, seq) must be new; a file must fit
//! on the disk, arrive with exactly its announced size, and hash to the
//! BLAKE3 the sender gives at the end before it gets a name in the inbox.
//! Bounds: [`MAX_STREAMS`] transfers at once, [`MAX_STREAMS_PER_PEER`] per
//! peer, frames of at most 1 MiB, a timeout on every frame.

use std::time::Duration;

use kith_base::letter::{self, Body, Letter};
use kith_net::{Control, PeerId, Stream};
use tracing::{debug, info, warn};

use crate::friends::Friends;
use crate::friends::db::{Content, FileState, Via};
use crate::friends::inbox_files::Incoming;
use crate::lifecycle::Lifecycle;
use crate::protocols::letter_frames::{self as wire, Reason, WireError, tag};
use crate::slots::StreamSlots;

/// Most direct streams served at once.
const MAX_STREAMS: usize = 32;
/// Most direct streams served at once for one peer.
const MAX_STREAMS_PER_PEER: usize = 4;
/// How long the first frame of a stream may take to come.
const FIRST_FRAME: Duration = Duration::from_secs(30);
/// How long the sender waits between frames of a file.
pub(crate) const BETWEEN_FRAMES: Duration = Duration::from_secs(60);
/// Room the inbox's disk keeps free after a received file.
const DISK_HEADROOM: u64 = 64 << 20;

/// Serves `/kith/direct/1.0.0` until the node stops.
pub(crate) async fn serve(friends: Friends, mut control: Control, lifecycle: Lifecycle) {
    let mut incoming = match control.accept(wire::DIRECT) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, "cannot serve direct messages");
            return;
        }
    };
    let slots = StreamSlots::new(MAX_STREAMS, MAX_STREAMS_PER_PEER);
    while let Some((peer, mut stream)) = lifecycle.next_incoming(&mut incoming).await {
        let slot = slots.admit_counted(peer, lifecycle.refusals());
        let friends = friends.clone();
        lifecycle.spawn_request(async move {
            if slot.is_none() {
                let _ = wire::write_refusal(
                    &mut stream,
                    tag::REFUSED,
                    Reason::Busy,
                    "the recipient is receiving too much at once; try again shortly",
                )
                .await;
                return;
            }
            if let Err(error) = receive(&friends, peer, &mut stream).await {
                debug!(%peer, %error, "direct stream ended");
                if error.is_protocol_violation() {
                    // Say why before closing: a buggy sender learns what it
                    // did wrong (the stream is dropped either way).
                    let sentence = format!("the recipient closed the stream: {error}");
                    let _ =
                        wire::write_refusal(&mut stream, tag::REFUSED, Reason::Invalid, &sentence)
                            .await;
                }
            }
            drop(slot);
        });
    }
}

/// A refusal to send back (or, for mail, to log): why, and the sentence.
pub(crate) struct Refusal(pub(crate) Reason, pub(crate) String);

async fn receive(friends: &Friends, peer: PeerId, stream: &mut Stream) -> Result<(), WireError> {
    let mut buffer = Vec::new();
    wire::expect_frame(stream, FIRST_FRAME, tag::LETTER, "a letter", &mut buffer).await?;
    let letter = match check_letter(friends, peer, &buffer).await {
        Ok(letter) => letter,
        Err(Refusal(reason, sentence)) => {
            info!(%peer, %sentence, "refused a letter");
            return wire::write_refusal(stream, tag::REFUSED, reason, &sentence).await;
        }
    };
    let outcome = match &letter.body {
        Body::Text(text) => {
            let content = Content::Text { text: text.clone() };
            friends.record(&letter, Via::Direct, content).await
        }
        Body::File { name, size } => receive_file(friends, &letter, name, *size, stream).await?,
        Body::Stored { .. } => Err(Refusal(
            Reason::Invalid,
            "a stored-file letter belongs in a mailbox, not on a direct stream".into(),
        )),
    };
    match outcome {
        Ok(()) => wire::write_frame(stream, tag::DELIVERED, &[]).await,
        Err(Refusal(reason, sentence)) => {
            info!(%peer, %sentence, "refused a letter");
            wire::write_refusal(stream, tag::REFUSED, reason, &sentence).await
        }
    }
}

/// Checks a signed letter that `peer` sent directly.
async fn check_letter(friends: &Friends, peer: PeerId, signed: &[u8]) -> Result<Letter, Refusal> {
    let letter = letter::open_signed(signed).map_err(|error| {
        let reason = match error {
            kith_base::LetterError::BadSignature { .. } => Reason::Forged,
            kith_base::LetterError::BadFileName { .. } => Reason::BadName,
            kith_base::LetterError::TextTooLong { .. }
            | kith_base::LetterError::TooLarge { .. } => Reason::TooLarge,
            _ => Reason::Invalid,
        };
        Refusal(reason, format!("the letter was refused: {error}"))
    })?;
    if letter.from != peer {
        return Err(Refusal(
            Reason::Forged,
            format!(
                "the letter says it is from {} but was sent by {peer}; forged letters are refused",
                letter.from
            ),
        ));
    }
    friends.admissible(&letter).await?;
    Ok(letter)
}

async fn receive_file(
    friends: &Friends,
    letter: &Letter,
    name: &str,
    size: u64,
    stream: &mut Stream,
) -> Result<Result<(), Refusal>, WireError> {
    let dir = friends.inbox_dir().to_owned();
    let free = kith_store::free_space(&dir)
        .or_else(|_| kith_store::free_space(dir.parent().unwrap_or(std::path::Path::new("/"))));
    if let Ok(free) = free
        && size.saturating_add(DISK_HEADROOM) > free
    {
        return Ok(Err(Refusal(
            Reason::TooLarge,
            format!(
                "the file is {} and the recipient has only {} free",
                kith_base::ByteSize(size),
                kith_base::ByteSize(free.saturating_sub(DISK_HEADROOM))
            ),
        )));
    }
    let mut incoming = match Incoming::create(&dir) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, dir = %dir.display(), "cannot create a file in the inbox");
            return Ok(Err(Refusal(
                Reason::Internal,
                "the recipient cannot write to its inbox".into(),
            )));
        }
    };
    wire::write_frame(stream, tag::READY, &[]).await?;
    let mut buffer = Vec::with_capacity(wire::MAX_CHUNK);
    let expected = loop {
        match wire::read_frame(stream, BETWEEN_FRAMES, &mut buffer).await? {
            Some(tag::DATA) => {
                if incoming.received() + buffer.len() as u64 > size {
                    return Ok(Err(Refusal(
                        Reason::Corrupt,
                        format!("the sender sent more than the {size} bytes it announced"),
                    )));
                }
                let chunk = std::mem::replace(&mut buffer, incoming.spare_buffer(wire::MAX_CHUNK));
                if let Err(error) = incoming.write(chunk).await {
                    warn!(%error, "cannot write a received file");
                    return Ok(Err(Refusal(
                        Reason::Internal,
                        format!("the recipient could not write the file: {error}"),
                    )));
                }
            }
            Some(tag::END) => {
                // `read_frame` holds an end frame to exactly 32 bytes; a
                // try_into keeps this safe should that rule ever change.
                let hash: [u8; 32] = buffer
                    .as_slice()
                    .try_into()
                    .map_err(|_| WireError::malformed("an end frame whose hash is not 32 bytes"))?;
                break blake3::Hash::from_bytes(hash);
            }
            Some(got) => {
                return Err(WireError::unexpected(got, "file data"));
            }
            None => return Err(WireError::closed()),
        }
    };
    if incoming.received() != size {
        return Ok(Err(Refusal(
            Reason::Corrupt,
            format!(
                "the file ended after {} of the {size} bytes announced",
                incoming.received()
            ),
        )));
    }
    let hash = match incoming.finish().await {
        Ok(hash) => hash,
        Err(error) => {
            return Ok(Err(Refusal(
                Reason::Internal,
                format!("the recipient could not write the file: {error}"),
            )));
        }
    };
    if hash != expected {
        return Ok(Err(Refusal(
            Reason::Corrupt,
            "the file's bytes do not match the hash the sender gave; nothing was kept".into(),
        )));
    }
    // Name the file, then record it; if the record finds the (author, seq)
    // taken (a replay racing this one), the file is removed again.
    let name = name.to_owned();
    let placed = tokio::task::spawn_blocking(move || incoming.place(&name)).await;
    let path = match placed {
        Ok(Ok(path)) => path,
        Ok(Err(error)) => {
            return Ok(Err(Refusal(
                Reason::Internal,
                format!("the recipient could not name the file: {error}"),
            )));
        }
        Err(error) => return Ok(Err(Refusal(Reason::Internal, error.to_string()))),
    };
    let content = Content::File {
        name: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        path: Some(path.display().to_string()),
        blake3: Some(hash.to_hex().to_string()),
        capability: None,
        state: FileState::Received,
    };
    let recorded = friends.record(letter, Via::Direct, content).await;
    if recorded.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    Ok(recorded)
}
