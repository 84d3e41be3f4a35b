//! Rate caps on the bytes a node sends and receives over the network:
//! token buckets, one for the whole node and one per peer, in each
//! direction ([`RateLimits`]).
//!
//! The caps sit on every stream of every TCP and QUIC connection (the
//! muxer's substreams, after the handshake, so that the peer is known): a
//! stream that has used its share waits until the buckets refill. A
//! relay's forwarded bytes cross two of its connections, so they count
//! against its caps in both directions: the caps bound relayed traffic too.
//! Reading slowly is enough to slow a sender: the muxer's flow control
//! (Yamux windows, QUIC's) stops it once the window is full.
//!
//! The caps can change while the node runs ([`crate::Client::set_rate_limits`],
//! on `SIGHUP`): every connection is wrapped, and its streams draw on
//! buckets whose rate is set anew; while no cap is set, a stream checks one
//! flag and moves on.
//!
//! libp2p has no rate limiting of its own, and the crates that do token
//! buckets (`governor`) count cells, not a debt of bytes already sent, so
//! this small bucket is written here.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use tokio::time::Instant;

/// Bytes per second a node may send and receive; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// All bytes sent, to every peer together.
    pub upload: Option<u64>,
    /// All bytes received, from every peer together.
    pub download: Option<u64>,
    /// Bytes sent to any one peer.
    pub upload_per_peer: Option<u64>,
    /// Bytes received from any one peer.
    pub download_per_peer: Option<u64>,
}

impl RateLimits {
    /// Whether any cap is set.
    pub fn any(&self) -> bool {
        self.upload.is_some()
            || self.download.is_some()
            || self.upload_per_peer.is_some()
            || self.download_per_peer.is_some()
    }
}

/// Most bytes a bucket holds: a quarter of a second's worth (a short
/// transfer is not slowed), at least 64 KiB (a low cap still lets a whole
/// frame through at once).
fn burst(rate: u64) -> f64 {
    (rate / 4).max(64 << 10) as f64
}

/// A token bucket of bytes. Tokens may go below zero: a stream is granted
/// what the bucket holds, and a write or read may then move a little more
/// or less; the debt is paid by waiting.
#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None`: no cap, every request granted.
    rate: Option<f64>,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Option<u64>, now: Instant) -> Self {
        let mut bucket = Self {
            rate: None,
            burst: 0.0,
            tokens: 0.0,
            last: now,
        };
        bucket.set_rate(rate, now);
        bucket
    }

    /// A new rate from now on; a bucket that had no cap starts full.
    fn set_rate(&mut self, rate: Option<u64>, now: Instant) {
        let Some(rate) = rate else {
            self.rate = None;
            return;
        };
        if self.rate.is_none() {
            self.tokens = burst(rate);
        } else {
            self.refill(now);
        }
        self.rate = Some(rate.max(1) as f64);
        self.burst = burst(rate);
        self.tokens = self.tokens.min(self.burst);
        self.last = now;
    }

    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.last = now;
    }

    /// Bytes that may move now towards `wanted`, or how long until they
    /// may. A grant is never smaller than `wanted` or a hundredth of a
    /// second's worth, whichever is less: granting what trickled in since
    /// the last call (a few bytes, microseconds later) would hold the rate
    /// by moving tiny frames in a busy loop.
    fn available(&mut self, now: Instant, wanted: usize) -> Result<usize, Duration> {
        let Some(rate) = self.rate else {
            return Ok(wanted);
        };
        self.refill(now);
        let least = (wanted as f64).min(rate / 100.0).max(1.0);
        if self.tokens >= least {
            Ok(self.tokens as usize)
        } else {
            Err(Duration::from_secs_f64((least - self.tokens) / rate))
        }
    }

    fn spend(&mut self, bytes: usize) {
        if self.rate.is_some() {
            self.tokens -= bytes as f64;
        }
    }
}

type SharedBucket = Arc<Mutex<Bucket>>;

/// How often streams waited for a cap, per direction (`/v1/metrics`:
/// `kith_net_upload_waits_total`, `kith_net_download_waits_total`).
#[derive(Debug, Clone, Default)]
pub(crate) struct WaitCounters {
    pub(crate) upload: prometheus_client::metrics::counter::Counter,
    pub(crate) download: prometheus_client::metrics::counter::Counter,
}

impl WaitCounters {
    /// Counters registered in `registry`.
    pub(crate) fn registered(registry: &mut prometheus_client::registry::Registry) -> Self {
        let counters = Self::default();
        registry.register(
            "kith_net_upload_waits",
            "Times a stream waited for the upload cap (max_upload, max_upload_per_peer)",
            counters.upload.clone(),
        );
        registry.register(
            "kith_net_download_waits",
            "Times a stream waited for the download cap (max_download, max_download_per_peer)",
            counters.download.clone(),
        );
        counters
    }
}

/// The buckets of a node; hands out those of each new connection.
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: Mutex<RateLimits>,
    /// Whether any cap is set: streams look at nothing else while none is.
    capped: Arc<AtomicBool>,
    waits: WaitCounters,
    upload: SharedBucket,
    download: SharedBucket,
    /// Per-peer buckets, shared by a peer's connections, dropped with the
    /// last of them (weak references are swept as connections come).
    peers: Mutex<HashMap<PeerId, std::sync::Weak<PeerBuckets>>>,
}

#[derive(Debug)]
struct PeerBuckets {
    upload: SharedBucket,
    download: SharedBucket,
}

impl Throttle {
    pub(crate) fn new(limits: RateLimits, waits: WaitCounters) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            limits: Mutex::new(limits),
            capped: Arc::new(AtomicBool::new(limits.any())),
            waits,
            upload: shared_bucket(limits.upload, now),
            download: shared_bucket(limits.download, now),
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// The caps in force.
    pub(crate) fn limits(&self) -> RateLimits {
        *lock(&self.limits)
    }

    /// New caps, for every stream from now on, open ones included.
    pub(crate) fn set_limits(&self, limits: RateLimits) {
        let now = Instant::now();
        *lock(&self.limits) = limits;
        lock(&self.upload).set_rate(limits.upload, now);
        lock(&self.download).set_rate(limits.download, now);
        let peers = lock(&self.peers);
        for buckets in peers.values().filter_map(std::sync::Weak::upgrade) {
            lock(&buckets.upload).set_rate(limits.upload_per_peer, now);
            lock(&buckets.download).set_rate(limits.download_per_peer, now);
        }
        self.capped.store(limits.any(), Ordering::Relaxed);
    }

    fn peer_buckets(&self, peer: PeerId) -> Arc<PeerBuckets> {
        let mut peers = lock(&self.peers);
        if let Some(existing) = peers.get(&peer).and_then(std::sync::Weak::upgrade) {
            return existing;
        }
        peers.retain(|_, weak| weak.strong_count() > 0);
        let now = Instant::now();
        let limits = *lock(&self.limits);
        let buckets = Arc::new(PeerBuckets {
            upload: shared_bucket(limits.upload_per_peer, now),
            download: shared_bucket(limits.download_per_peer, now),
        });
        peers.insert(peer, Arc::downgrade(&buckets));
        buckets
    }

    /// `muxer`, a new connection to `peer`, with every stream capped.
    pub(crate) fn wrap(self: &Arc<Self>, peer: PeerId, muxer: StreamMuxerBox) -> StreamMuxerBox {
        StreamMuxerBox::new(ThrottledMuxer {
            inner: muxer,
            throttle: self.clone(),
            peer: self.peer_buckets(peer),
        })
    }
}

fn shared_bucket(rate: Option<u64>, now: Instant) -> SharedBucket {
    Arc::new(Mutex::new(Bucket::new(rate, now)))
}

/// The lock, also when a holder panicked (a bucket is always consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A connection whose streams are capped.
struct ThrottledMuxer {
    inner: StreamMuxerBox,
    throttle: Arc<Throttle>,
    peer: Arc<PeerBuckets>,
}

impl ThrottledMuxer {
    fn throttled(&self, inner: SubstreamBox) -> Throttled {
        let throttle = &self.throttle;
        Throttled {
            inner,
            write: Direction::new(
                vec![throttle.upload.clone(), self.peer.upload.clone()],
                throttle.capped.clone(),
                throttle.waits.upload.clone(),
            ),
            read: Direction::new(
                vec![throttle.download.clone(), self.peer.download.clone()],
                throttle.capped.clone(),
                throttle.waits.download.clone(),
            ),
            _peer: self.peer.clone(),
        }
    }
}

impl StreamMuxer for ThrottledMuxer {
    type Substream = Throttled;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = futures::ready!(Pin::new(&mut self.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(self.throttled(stream)))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let stream = futures::ready!(Pin::new(&mut self.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(self.throttled(stream)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// One direction of a stream: the buckets it draws on, and the timer it
/// waits on when they are empty.
struct Direction {
    buckets: Vec<SharedBucket>,
    /// The node's flag: whether any cap is set at all.
    capped: Arc<AtomicBool>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    waits: prometheus_client::metrics::counter::Counter,
}

impl Direction {
    fn new(
        buckets: Vec<SharedBucket>,
        capped: Arc<AtomicBool>,
        waits: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            buckets,
            capped,
            wait: None,
            waits,
        }
    }

    /// Bytes that may move now (at most `wanted`), or `Pending` with a
    /// wake-up set for when some may.
    fn grant(&mut self, cx: &mut Context<'_>, wanted: usize) -> Poll<usize> {
        if !self.capped.load(Ordering::Relaxed) {
            self.wait = None;
            return Poll::Ready(wanted);
        }
        loop {
            if let Some(wait) = self.wait.as_mut() {
                futures::ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            let now = Instant::now();
            let mut allowed = wanted;
            let mut longest = Duration::ZERO;
            for bucket in &self.buckets {
                let mut bucket = lock(bucket);
                match bucket.available(now, wanted) {
                    Ok(bytes) => allowed = allowed.min(bytes),
                    Err(wait) => longest = longest.max(wait),
                }
            }
            if longest.is_zero() {
                return Poll::Ready(allowed.max(1).min(wanted));
            }
            self.waits.inc();
            self.wait = Some(Box::pin(tokio::time::sleep(longest)));
        }
    }

    fn spend(&self, bytes: usize) {
        if !self.capped.load(Ordering::Relaxed) {
            return;
        }
        for bucket in &self.buckets {
            lock(bucket).spend(bytes);
        }
    }
}

/// A stream whose reads and writes draw on the node's and the peer's
/// buckets.
pub(crate) struct Throttled {
    inner: SubstreamBox,
    write: Direction,
    read: Direction,
    /// Keeps the peer's buckets alive while the stream lives.
    _peer: Arc<PeerBuckets>,
}

impl AsyncRead for Throttled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        let allowed = futures::ready!(this.read.grant(cx, buf.len()));
        let read = futures::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf[..allowed]))?;
        this.read.spend(read);
        Poll::Ready(Ok(read))
    }
}

impl AsyncWrite for Throttled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let this = &mut *self;
        let allowed = futures::ready!(this.write.grant(cx, buf.len()));
        let written = futures::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        this.write.spend(written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bucket_grants_its_burst_then_makes_the_stream_wait_for_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Some(1 << 20), start);
        assert_eq!(bucket.available(start, 1 << 20), Ok(256 << 10));
        bucket.spend(256 << 10);
        let wait = bucket.available(start, 1 << 20).unwrap_err();
        // A hundredth of a second's worth must come back first.
        assert!(
            (Duration::from_millis(9)..=Duration::from_millis(11)).contains(&wait),
            "{wait:?}"
        );
        let later = start + Duration::from_millis(100);
        let back = bucket.available(later, 1 << 20).unwrap();
        assert!((100_000..=110_000).contains(&back), "{back}");
        // Never more than the burst, however long the wait.
        let much_later = start + Duration::from_secs(3600);
        assert_eq!(bucket.available(much_later, 1 << 20), Ok(256 << 10));
        // What trickles in just after a grant is no grant: a frame waits
        // for a useful amount, not for a few bytes at a time.
        bucket.spend(256 << 10);
        let trickle = much_later + Duration::from_micros(5);
        assert!(bucket.available(trickle, 64 << 10).is_err());
    }

    #[test]
    fn a_debt_is_paid_before_more_is_granted() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Some(400_000), start);
        bucket.spend(100_000 + 200_000);
        let wait = bucket.available(start, 1 << 20).unwrap_err();
        // 200,000 bytes of debt and 4,000 wanted at 400,000/s: 0.51 s.
        assert!(
            (Duration::from_millis(505)..=Duration::from_millis(515)).contains(&wait),
            "{wait:?}"
        );
    }

    #[test]
    fn a_low_cap_still_lets_a_frame_through_at_once() {
        let start = Instant::now();
        let mut bucket = Bucket::new(Some(1_000), start);
        assert_eq!(bucket.available(start, 1 << 20), Ok(64 << 10));
    }

    #[test]
    fn peers_share_their_buckets_across_connections_and_drop_them_with_the_last() {
        let throttle = Throttle::new(
            RateLimits {
                upload_per_peer: Some(1 << 20),
                ..RateLimits::default()
            },
            WaitCounters::default(),
        );
        let peer = PeerId::random();
        let first = throttle.peer_buckets(peer);
        let second = throttle.peer_buckets(peer);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(lock(&first.upload).rate, Some(f64::from(1 << 20)));
        assert_eq!(lock(&first.download).rate, None);
        drop((first, second));
        let other = throttle.peer_buckets(PeerId::random());
        assert_eq!(throttle.peers.lock().unwrap().len(), 1, "swept");
        drop(other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_direction_moves_at_the_rate() {
        // 1 MiB/s, 3.25 MiB wanted in 64 KiB writes: the first quarter
        // MiB at once (the burst), the other three over three seconds.
        let now = Instant::now();
        let bucket = shared_bucket(Some(1 << 20), now);
        let waits = prometheus_client::metrics::counter::Counter::default();
        let capped = Arc::new(AtomicBool::new(true));
        let mut direction = Direction::new(vec![bucket], capped, waits.clone());
        let mut moved = 0usize;
        let total = (13 << 20) / 4;
        while moved < total {
            let granted =
                std::future::poll_fn(|cx| direction.grant(cx, (64 << 10).min(total - moved))).await;
            direction.spend(granted);
            moved += granted;
        }
        let took = now.elapsed();
        assert!(waits.get() > 0, "the waits are counted");
        assert!(
            (Duration::from_millis(2_900)..=Duration::from_millis(3_100)).contains(&took),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_caps_reach_open_streams_and_lifting_them_frees_the_streams() {
        let throttle = Throttle::new(RateLimits::default(), WaitCounters::default());
        let peer = throttle.peer_buckets(PeerId::random());
        let mut direction = Direction::new(
            vec![throttle.upload.clone(), peer.upload.clone()],
            throttle.capped.clone(),
            WaitCounters::default().upload,
        );
        let send = |direction: &mut Direction, total: usize| {
            let mut moved = 0;
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            while moved < total {
                match direction.grant(&mut cx, total - moved) {
                    Poll::Ready(granted) => {
                        direction.spend(granted);
                        moved += granted;
                    }
                    Poll::Pending => break,
                }
            }
            moved
        };
        // No cap: everything at once.
        assert_eq!(send(&mut direction, 10 << 20), 10 << 20);
        // A per-peer cap of 1 MiB/s set while the stream is open: its
        // burst (a quarter of a second) goes, then the stream waits.
        throttle.set_limits(RateLimits {
            upload_per_peer: Some(1 << 20),
            ..RateLimits::default()
        });
        assert_eq!(throttle.limits().upload_per_peer, Some(1 << 20));
        assert_eq!(send(&mut direction, 10 << 20), 256 << 10);
        // A peer that connects later gets the cap too.
        let later = throttle.peer_buckets(PeerId::random());
        assert_eq!(lock(&later.upload).rate, Some(f64::from(1 << 20)));
        // Lifted: the same stream moves freely again.
        throttle.set_limits(RateLimits::default());
        assert_eq!(send(&mut direction, 10 << 20), 10 << 20);
    }
}
