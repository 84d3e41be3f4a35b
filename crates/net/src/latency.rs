//! Simulated link latency for the in-process memory transport: every byte
//! read from a connection is held back until a fixed delay after it
//! arrived, so a testnet of many nodes in one process sees round trips of
//! twice that delay, as over a real network.
//!
//! Written by hand: libp2p's memory transport delivers at once, and the
//! crates that shape traffic (e.g. `tc netem`) work on kernel sockets, which
//! a thousand-node process does not have. The delay is applied where bytes
//! are read, so each direction of a connection gets it once; data that
//! arrives while earlier data waits is read ahead and queued (bounded by
//! [`MAX_QUEUED`]), so a stream of bytes is delayed, not slowed.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// Most bytes read ahead and held per connection and direction. When the
/// queue is full the connection is not read further, which pushes back on
/// the sender as a slow reader would.
const MAX_QUEUED: usize = 1 << 20;
/// Largest single read from the underlying connection, into a buffer on
/// the stack: one kept per connection would cost 2 × this for every link
/// of a thousand-node simulation, and one allocated on every read is
/// allocation and zeroing for nothing.
const READ_CHUNK: usize = 16 << 10;

/// A connection whose reads arrive `delay` after the bytes did.
pub(crate) struct Delayed<S> {
    inner: S,
    delay: Duration,
    /// Chunks read from `inner`, with the time each may be handed out.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// Bytes of the front chunk already handed out.
    front_taken: usize,
    queued: usize,
    /// The end of `inner` (or its error) once seen; reported after the
    /// queue has drained.
    ended: Option<io::Result<()>>,
    timer: Pin<Box<Sleep>>,
}

impl<S> Delayed<S> {
    pub(crate) fn new(inner: S, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            queue: VecDeque::new(),
            front_taken: 0,
            queued: 0,
            ended: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl<S: AsyncRead + Unpin> Delayed<S> {
    /// Reads everything `inner` has ready into the queue, up to the bound.
    fn read_ahead(&mut self, cx: &mut Context<'_>) {
        let mut chunk = [0u8; READ_CHUNK];
        while self.ended.is_none() && self.queued < MAX_QUEUED {
            match Pin::new(&mut self.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => self.ended = Some(Ok(())),
                Poll::Ready(Ok(n)) => {
                    self.queued += n;
                    self.queue
                        .push_back((Instant::now() + self.delay, chunk[..n].to_vec()));
                }
                Poll::Ready(Err(error)) => self.ended = Some(Err(error)),
                Poll::Pending => break,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Delayed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.delay.is_zero() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        this.read_ahead(cx);
        let Some((due, bytes)) = this.queue.front() else {
            return match this.ended.take() {
                Some(Ok(())) => {
                    this.ended = Some(Ok(()));
                    Poll::Ready(Ok(0))
                }
                Some(Err(error)) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            };
        };
        let due = *due;
        if Instant::now() < due {
            this.timer.as_mut().reset(due);
            // Registers the waker for the due time; it cannot be ready yet.
            let _ = this.timer.as_mut().poll(cx);
            return Poll::Pending;
        }
        let rest = &bytes[this.front_taken..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        this.front_taken += n;
        this.queued -= n;
        if this.front_taken == bytes.len() {
            this.queue.pop_front();
            this.front_taken = 0;
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Delayed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn bytes_arrive_after_the_delay_in_order_and_read_ahead() {
        // More than one read's worth, all there at once: read ahead, both
        // chunks wait one delay, not one each.
        let sent: Vec<u8> = (0..READ_CHUNK * 2 + 5).map(|i| i as u8).collect();
        let mut reader = Delayed::new(
            futures::io::Cursor::new(sent.clone()),
            Duration::from_millis(50),
        );
        let start = Instant::now();
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        assert_eq!([&first[..], &rest[..]].concat(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn read_ahead_is_bounded() {
        let sent = vec![7u8; MAX_QUEUED * 3];
        let mut reader = Delayed::new(futures::io::Cursor::new(sent), Duration::from_millis(10));
        let mut one = [0u8; 1];
        reader.read_exact(&mut one).await.unwrap();
        assert!(reader.queued <= MAX_QUEUED, "{}", reader.queued);
    }
}
