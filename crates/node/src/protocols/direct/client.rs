//! The sender's side of `/kith/direct/1.0.0`: one letter, and for a file
//! its bytes and hash, on a stream the caller opened.

use futures::{AsyncRead, AsyncReadExt};
use kith_net::Stream;

use super::server::BETWEEN_FRAMES;
use crate::protocols::letter_frames::{self as wire, WireError, tag};

/// Sends a text letter on `stream` and waits for the answer.
pub(crate) async fn send_text(stream: &mut Stream, signed: &[u8]) -> Result<(), WireError> {
    wire::write_frame(stream, tag::LETTER, signed).await?;
    let mut buffer = Vec::new();
    wire::expect_frame(
        stream,
        BETWEEN_FRAMES,
        tag::DELIVERED,
        "delivered",
        &mut buffer,
    )
    .await
}

/// Sends a file letter, waits for ready, and returns whether the recipient
/// agreed (errors before ready leave `body` untouched).
pub(crate) async fn offer_file(stream: &mut Stream, signed: &[u8]) -> Result<(), WireError> {
    wire::write_frame(stream, tag::LETTER, signed).await?;
    let mut buffer = Vec::new();
    wire::expect_frame(stream, BETWEEN_FRAMES, tag::READY, "ready", &mut buffer).await
}

/// Streams `size` bytes of `body`, then the hash, and waits for delivered.
/// Calls `progress` with the bytes sent so far.
pub(crate) async fn stream_file(
    stream: &mut Stream,
    body: &mut (dyn AsyncRead + Send + Unpin),
    size: u64,
) -> Result<blake3::Hash, SendFailure> {
    let mut hasher = blake3::Hasher::new();
    let mut sent = 0u64;
    let mut buffer = vec![0u8; wire::MAX_CHUNK];
    loop {
        buffer.resize(wire::MAX_CHUNK, 0);
        let mut filled = 0;
        while filled < buffer.len() {
            match body.read(&mut buffer[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) => return Err(SendFailure::Source(error)),
            }
        }
        if filled == 0 {
            break;
        }
        sent += filled as u64;
        if sent > size {
            return Err(SendFailure::Source(std::io::Error::other(format!(
                "the file is longer than the {size} bytes announced"
            ))));
        }
        buffer.truncate(filled);
        // Hash on a blocking thread while the chunk goes out: on two cores
        // the hash is otherwise a serial step between network writes.
        let chunk = std::sync::Arc::new(std::mem::take(&mut buffer));
        let hashing = {
            let chunk = chunk.clone();
            let mut hasher = std::mem::take(&mut hasher);
            tokio::task::spawn_blocking(move || {
                hasher.update(&chunk);
                hasher
            })
        };
        let written = wire::write_frame(stream, tag::DATA, &chunk).await;
        hasher = hashing
            .await
            .map_err(|error| SendFailure::Source(std::io::Error::other(error)))?;
        written.map_err(SendFailure::Wire)?;
        buffer = std::sync::Arc::try_unwrap(chunk).unwrap_or_else(|shared| shared.to_vec());
    }
    if sent != size {
        return Err(SendFailure::Source(std::io::Error::other(format!(
            "the file ended after {sent} of the {size} bytes announced"
        ))));
    }
    let hash = hasher.finalize();
    wire::write_frame(stream, tag::END, hash.as_bytes())
        .await
        .map_err(SendFailure::Wire)?;
    let mut buffer = Vec::new();
    // The recipient syncs the file before it answers.
    let wait =
        BETWEEN_FRAMES + kith_net::frames::transfer_timeout(size.min(usize::MAX as u64) as usize);
    wire::expect_frame(stream, wait, tag::DELIVERED, "delivered", &mut buffer)
        .await
        .map_err(SendFailure::Wire)?;
    Ok(hash)
}

/// Why streaming a file stopped.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// Reading the file failed.
    Source(std::io::Error),
    /// The stream failed or the recipient refused.
    Wire(WireError),
}
