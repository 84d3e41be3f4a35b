//! The asking side of `/kith/share/1.0.0`: one request/answer exchange with
//! a peer, over a pool of reusable streams.
//!
//! Opening a stream costs a round trip, and `libp2p-stream` resets inbound
//! streams that arrive faster than the serving node takes them, so streams
//! are kept and reused: each peer has up to [`IDLE_PER_PEER`] idle streams.
//! A request on a reused stream that fails is retried once on a fresh one
//! (the peer may have closed an idle stream); a fresh stream reset at once
//! is retried after a short back-off, as the protocol's rules ask.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_net::{Control, OpenStreamError, PeerId, Stream};

use super::wire::{self, Answer, OutRequest, WireError};

/// Idle streams kept per peer.
const IDLE_PER_PEER: usize = 8;
/// Time allowed to open a stream (it may dial the peer first).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts on fresh streams before giving up.
const FRESH_ATTEMPTS: u32 = 3;

/// Why an exchange with a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("cannot open a stream: {0}")]
    Open(String),
    #[error("timed out opening a stream after {0:?}")]
    OpenTimeout(Duration),
    #[error("the peer does not speak {}", wire::PROTOCOL)]
    Unsupported,
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Cloneable; all clones share one pool.
#[derive(Clone)]
pub(crate) struct ShareClient {
    control: Control,
    idle: Arc<Mutex<HashMap<PeerId, Vec<Stream>>>>,
}

impl std::fmt::Debug for ShareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareClient")
    }
}

impl ShareClient {
    pub(crate) fn new(control: Control) -> Self {
        Self {
            control,
            idle: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Sends `request` to `peer` and returns its answer. `answer_size` is
    /// the largest answer expected (it scales the wait).
    pub(crate) async fn call(
        &self,
        peer: PeerId,
        request: OutRequest<'_>,
        answer_size: usize,
    ) -> Result<Answer, CallError> {
        self.call_within(peer, request, wire::transfer_timeout(answer_size))
            .await
    }

    /// [`ShareClient::call`], waiting at most `wait` for the answer to
    /// start (its bytes then get a time scaled by their size, as always).
    pub(crate) async fn call_within(
        &self,
        peer: PeerId,
        request: OutRequest<'_>,
        wait: Duration,
    ) -> Result<Answer, CallError> {
        // A stale idle stream fails the exchange: then a fresh one is tried.
        // A peer that is merely slow (a timeout) is not asked again.
        if let Some(mut stream) = self.take_idle(peer) {
            match exchange(&mut stream, request, wait).await {
                Ok(answer) => {
                    self.put_idle(peer, stream);
                    return Ok(answer);
                }
                Err(error @ WireError::Timeout(_)) => return Err(error.into()),
                Err(_) => {}
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut stream = self.open(peer).await?;
            match exchange(&mut stream, request, wait).await {
                Ok(answer) => {
                    self.put_idle(peer, stream);
                    return Ok(answer);
                }
                Err(error) if error.is_gone() && attempt < FRESH_ATTEMPTS => {
                    // Reset right after opening: the peer was busy taking
                    // streams. Back off a little and try again.
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Forgets the idle streams to `peer` (after it misbehaved or left).
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.lock().remove(peer);
    }

    async fn open(&self, peer: PeerId) -> Result<Stream, CallError> {
        let mut control = self.control.clone();
        match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, wire::PROTOCOL)).await {
            Err(_) => Err(CallError::OpenTimeout(OPEN_TIMEOUT)),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(OpenStreamError::UnsupportedProtocol(_))) => Err(CallError::Unsupported),
            Ok(Err(error)) => Err(CallError::Open(error.to_string())),
        }
    }

    fn take_idle(&self, peer: PeerId) -> Option<Stream> {
        let mut stream = self.lock().get_mut(&peer)?.pop()?;
        stream.set_idle(false);
        Some(stream)
    }

    /// Keeps `stream` for the next request to `peer`. A kept stream does
    /// not count as busy for the connection trimmer (see
    /// [`Stream::set_idle`]): if its connection is closed to make room,
    /// the next request finds it stale and opens a fresh one.
    fn put_idle(&self, peer: PeerId, mut stream: Stream) {
        stream.set_idle(true);
        let mut idle = self.lock();
        let streams = idle.entry(peer).or_default();
        if streams.len() < IDLE_PER_PEER {
            streams.push(stream);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Vec<Stream>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn exchange(
    stream: &mut Stream,
    request: OutRequest<'_>,
    wait: Duration,
) -> Result<Answer, WireError> {
    wire::write_request(stream, request).await?;
    wire::read_answer(stream, wait).await
}
