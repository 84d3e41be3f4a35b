//! kith's own byte streams, and what they tell the connection trimmer.
//!
//! [`Control`], [`IncomingStreams`] and [`Stream`] wrap `libp2p-stream`'s
//! types one to one. What they add is bookkeeping: for each peer, how many
//! of kith's streams are open to it and when one last moved a byte. The
//! event loop reads that ([`Activity::usage`]) when it must close
//! connections to stay under its limit: idle connections go first, least
//! recently used first, and a connection in the middle of a transfer is
//! closed only when nothing else can be (see `event_loop.rs`,
//! `trim_connections`). Without it the trimmer closed the *oldest*
//! connections, which in a busy network are often the ones carrying a
//! share at that moment (`docs/scale.md`, "Files lost to trimming").
//!
//! Written here rather than taken from a crate: libp2p's swarm does not
//! report which connections have streams open, and its connection-limits
//! behaviour refuses new connections rather than closing idle ones.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{PeerId, StreamProtocol};
pub use libp2p_stream::{AlreadyRegistered, OpenStreamError};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::client::Command;

/// A stream that moved a byte less than this long ago counts as busy: the
/// trimmer leaves its connection for last. A stream kept idle in a pool
/// stops counting once this has passed, or at once if its pool says so
/// ([`Stream::set_idle`]).
pub(crate) const BUSY_WINDOW: Duration = Duration::from_secs(15);

/// Who opened a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// This node, to ask the peer something.
    Outbound,
    /// The peer, to ask this node something.
    Inbound,
}

/// How one peer's streams are used.
#[derive(Debug, Default)]
struct PeerUse {
    /// kith streams this node opened to this peer that are open now.
    outbound: AtomicUsize,
    /// kith streams this peer opened to this node that are open now.
    inbound: AtomicUsize,
    /// When one of them last opened, moved a byte or closed, in
    /// milliseconds since [`Activity::epoch`].
    last: AtomicU64,
}

/// What the trimmer learns about a peer from its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// A stream this node opened is open, and a stream moved a byte
    /// within [`BUSY_WINDOW`].
    pub(crate) busy_outbound: bool,
    /// The same for a stream the peer opened.
    pub(crate) busy_inbound: bool,
    /// When a stream last opened, moved a byte or closed; `None` if kith
    /// never used a stream with this peer (or not since it disconnected).
    pub(crate) last: Option<Instant>,
}

/// The stream bookkeeping of one node, shared by every [`Control`] and
/// [`Stream`] and read by the event loop.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    peers: Mutex<HashMap<PeerId, Arc<PeerUse>>>,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            peers: Mutex::new(HashMap::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Arc<PeerUse>>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new stream with `peer` until the returned guard drops.
    fn track(self: &Arc<Self>, peer: PeerId, direction: Direction) -> Tracker {
        let now = self.now_ms();
        // Counted under the lock, so that `forget_if_unused` cannot drop
        // the entry between finding it and counting the stream.
        let used = {
            let mut peers = self.lock();
            let used = peers.entry(peer).or_default().clone();
            used.count(direction).fetch_add(1, Ordering::Relaxed);
            used.last.store(now, Ordering::Relaxed);
            used
        };
        Tracker {
            activity: self.clone(),
            used,
            direction,
            idle: false,
        }
    }

    /// How kith's streams use `peer` now.
    pub(crate) fn usage(&self, peer: &PeerId, now: Instant) -> Usage {
        let Some(used) = self.lock().get(peer).cloned() else {
            return Usage {
                busy_outbound: false,
                busy_inbound: false,
                last: None,
            };
        };
        let last = self.epoch + Duration::from_millis(used.last.load(Ordering::Relaxed));
        let recent = now.saturating_duration_since(last) < BUSY_WINDOW;
        Usage {
            busy_outbound: recent && used.outbound.load(Ordering::Relaxed) > 0,
            busy_inbound: recent && used.inbound.load(Ordering::Relaxed) > 0,
            last: Some(last),
        }
    }

    /// Forgets a peer that has no connection left and no stream open (so
    /// that the table stays bounded by the peers connected).
    pub(crate) fn forget_if_unused(&self, peer: &PeerId) {
        let mut peers = self.lock();
        if peers.get(peer).is_some_and(|used| {
            used.outbound.load(Ordering::Relaxed) == 0 && used.inbound.load(Ordering::Relaxed) == 0
        }) {
            peers.remove(peer);
        }
    }

    /// Peers with an entry (for tests of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl PeerUse {
    fn count(&self, direction: Direction) -> &AtomicUsize {
        match direction {
            Direction::Outbound => &self.outbound,
            Direction::Inbound => &self.inbound,
        }
    }
}

/// Keeps a peer's stream counted (unless set idle); notes use on every
/// byte moved.
#[derive(Debug)]
struct Tracker {
    activity: Arc<Activity>,
    used: Arc<PeerUse>,
    direction: Direction,
    /// Kept idle in a pool: not counted.
    idle: bool,
}

impl Tracker {
    fn touch(&self) {
        self.used
            .last
            .store(self.activity.now_ms(), Ordering::Relaxed);
    }

    fn set_idle(&mut self, idle: bool) {
        if idle == self.idle {
            return;
        }
        self.idle = idle;
        let count = self.used.count(self.direction);
        if idle {
            count.fetch_sub(1, Ordering::Relaxed);
        } else {
            count.fetch_add(1, Ordering::Relaxed);
            self.touch();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.touch();
        if !self.idle {
            self.used
                .count(self.direction)
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A byte stream with a peer, speaking one of kith's protocols: libp2p's
/// stream, counted for the connection trimmer. Reads and writes pass
/// straight through.
#[derive(Debug)]
pub struct Stream {
    inner: libp2p::Stream,
    tracker: Tracker,
}

impl Stream {
    /// Says whether the stream is kept idle in a pool (`true`) or taken
    /// back for a request (`false`; reading or writing does not do it).
    /// An idle stream does not count as the peer's busy stream: without
    /// this, a `have` round that left a pooled stream with each of its
    /// 20 peers kept all 20 connections from the trimmer for 15 s (the
    /// window a stream counts as busy after its last byte), and a node at
    /// its connection limit could not make room for its own next dials
    /// (`docs/scale.md`, "Reads lost to dials never made"). Closing an
    /// idle stream's connection costs the pool the stream; its owner
    /// opens a fresh one.
    pub fn set_idle(&mut self, idle: bool) {
        self.tracker.set_idle(idle);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.tracker.touch();
        }
        polled
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.tracker.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Dials a peer for a stream, and looks a peer up in the DHT for a stream
/// whose dial found no address. Holds the event loop's command queue
/// weakly: a [`Control`] kept after the last [`Client`](crate::Client) is
/// dropped does not keep the network running.
#[derive(Clone)]
pub(crate) struct PeerFinder {
    commands: mpsc::WeakSender<Command>,
    /// How long a lookup (and the dial confirming it) may take.
    limit: Duration,
}

impl PeerFinder {
    pub(crate) fn new(commands: &mpsc::Sender<Command>, limit: Duration) -> Self {
        Self {
            commands: commands.downgrade(),
            limit,
        }
    }

    /// Asks the event loop to dial `peer` unless a connection to it is open
    /// or being dialled. Waits for room in the event loop's (bounded)
    /// command queue, never for the dial: its outcome reaches the stream
    /// being opened through libp2p-stream (a connection, or a dial failure
    /// that fails the open).
    async fn dial(&self, peer: PeerId) {
        let Some(commands) = self.commands.upgrade() else {
            return;
        };
        let _ = commands.send(Command::DialForStream { peer }).await;
    }

    /// Whether a lookup found `peer` (its addresses are then in the
    /// address book, or a connection to it is open).
    async fn find(&self, peer: PeerId) -> bool {
        let Some(commands) = self.commands.upgrade() else {
            return false;
        };
        let (reply, answer) = oneshot::channel();
        if commands
            .send(Command::FindPeer { peer, reply })
            .await
            .is_err()
        {
            return false;
        }
        drop(commands);
        matches!(
            tokio::time::timeout(self.limit, answer).await,
            Ok(Ok(Ok(_)))
        )
    }
}

/// Whether a failed open is a dial that a lookup may mend: no address
/// known for the peer, or none that answered (it may have moved). A dial
/// this node's own limits refused is not: a lookup would be refused too.
///
/// libp2p-stream reports a failed dial as `NotConnected` with the text of
/// libp2p's `DialError`, which is all there is to tell the cases apart by;
/// a test below pins the texts, so a libp2p upgrade that changes them is
/// noticed.
fn worth_a_lookup(error: &io::Error) -> bool {
    if error.kind() != io::ErrorKind::NotConnected {
        return false;
    }
    let text = error.to_string();
    text.starts_with(NO_ADDRESSES) || text.starts_with(TRANSPORT_FAILED)
}

/// How libp2p's `DialError::NoAddresses` reads.
const NO_ADDRESSES: &str = "Dial error: no addresses";
/// How libp2p's `DialError::Transport` reads.
const TRANSPORT_FAILED: &str = "Failed to negotiate transport";

/// Opens streams to peers and accepts a protocol's inbound streams. Cheap
/// to clone; see [`Client::streams`](crate::Client::streams) for the rules.
#[derive(Clone)]
pub struct Control {
    inner: libp2p_stream::Control,
    activity: Arc<Activity>,
    finder: PeerFinder,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Control {
    pub(crate) fn new(
        inner: libp2p_stream::Control,
        activity: Arc<Activity>,
        finder: PeerFinder,
    ) -> Self {
        Self {
            inner,
            activity,
            finder,
        }
    }

    /// Opens a stream of `protocol` to `peer`, dialling it first if there
    /// is no connection. A dial that fails (no address known, or none that
    /// answers) is tried once more after looking the peer up in the DHT:
    /// peers move, and the address book forgets.
    pub async fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<Stream, OpenStreamError> {
        // Counted from the start, so that the connection dialled for it is
        // not closed before the first byte moves.
        let tracker = self.activity.track(peer, Direction::Outbound);
        let inner = match self.open_dialling(peer, protocol.clone()).await {
            Ok(inner) => inner,
            Err(OpenStreamError::Io(error)) if worth_a_lookup(&error) => {
                debug!(%peer, %error, "no connection for a stream; looking the peer up");
                if !self.finder.find(peer).await {
                    return Err(OpenStreamError::Io(error));
                }
                self.open_dialling(peer, protocol).await?
            }
            Err(error) => return Err(error),
        };
        Ok(Stream { inner, tracker })
    }

    /// libp2p-stream's `open_stream`, with the dial it needs made sure of.
    ///
    /// Without a connection to the peer, libp2p-stream parks the request
    /// and asks its behaviour for a dial with a `try_send` into a channel
    /// of one slot, dropping the request when the slot is taken
    /// (rust-libp2p#6157, open in libp2p-stream 0.5.0-alpha). Opens made
    /// together — a `have` round asks a stripe's 20 candidates at once —
    /// then got one dial between them; the others waited, with no dial
    /// under way, for a connection nothing opened, until their caller
    /// gave up (`docs/scale.md`, "Reads lost to dials never made"). So
    /// the open is polled once (which parks it, or puts it on an open
    /// connection), and then the event loop dials the peer itself unless
    /// connected or dialling already: the connection, once up, takes the
    /// parked request, and a failed dial fails it.
    async fn open_dialling(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, OpenStreamError> {
        let open = self.inner.open_stream(peer, protocol);
        futures::pin_mut!(open);
        if let Poll::Ready(result) = futures::poll!(open.as_mut()) {
            return result;
        }
        self.finder.dial(peer).await;
        open.await
    }

    /// Accepts inbound streams of `protocol`; one consumer per protocol at
    /// a time.
    pub fn accept(
        &mut self,
        protocol: StreamProtocol,
    ) -> Result<IncomingStreams, AlreadyRegistered> {
        Ok(IncomingStreams {
            inner: self.inner.accept(protocol)?,
            activity: self.activity.clone(),
        })
    }
}

/// The inbound streams of one protocol, each with the peer that opened it.
pub struct IncomingStreams {
    inner: libp2p_stream::IncomingStreams,
    activity: Arc<Activity>,
}

impl futures::Stream for IncomingStreams {
    type Item = (PeerId, Stream);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|next| {
            next.map(|(peer, inner)| {
                let tracker = self.activity.track(peer, Direction::Inbound);
                (peer, Stream { inner, tracker })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_busy_while_a_stream_moves_bytes_and_idle_after() {
        let activity = Activity::new();
        let peer = PeerId::random();
        let now = Instant::now();
        assert_eq!(
            activity.usage(&peer, now),
            Usage {
                busy_outbound: false,
                busy_inbound: false,
                last: None
            }
        );
        let tracker = activity.track(peer, Direction::Outbound);
        let usage = activity.usage(&peer, Instant::now());
        assert!(usage.busy_outbound && !usage.busy_inbound);
        assert!(usage.last.is_some());
        // A stream that has not moved for the busy window no longer counts.
        let later = Instant::now() + BUSY_WINDOW + Duration::from_secs(1);
        assert!(!activity.usage(&peer, later).busy_outbound);
        tracker.touch();
        assert!(activity.usage(&peer, Instant::now()).busy_outbound);
        let theirs = activity.track(peer, Direction::Inbound);
        assert!(activity.usage(&peer, Instant::now()).busy_inbound);
        // Closed: idle, but its last use is remembered for LRU order.
        drop(tracker);
        drop(theirs);
        let usage = activity.usage(&peer, Instant::now());
        assert!(!usage.busy_outbound && !usage.busy_inbound);
        assert!(usage.last.is_some());
    }

    #[test]
    fn a_stream_set_idle_does_not_keep_its_peer_busy() {
        let activity = Activity::new();
        let peer = PeerId::random();
        let mut tracker = activity.track(peer, Direction::Outbound);
        assert!(activity.usage(&peer, Instant::now()).busy_outbound);
        tracker.set_idle(true);
        tracker.set_idle(true);
        assert!(!activity.usage(&peer, Instant::now()).busy_outbound);
        // Idle streams do not hold the peer's entry either.
        activity.forget_if_unused(&peer);
        assert_eq!(activity.len(), 0);
        let mut tracker = activity.track(peer, Direction::Outbound);
        tracker.set_idle(true);
        tracker.set_idle(false);
        assert!(activity.usage(&peer, Instant::now()).busy_outbound);
        tracker.set_idle(true);
        // Dropped while idle: not taken off the count twice.
        drop(tracker);
        let other = activity.track(peer, Direction::Outbound);
        assert!(activity.usage(&peer, Instant::now()).busy_outbound);
        drop(other);
        assert!(!activity.usage(&peer, Instant::now()).busy_outbound);
    }

    #[test]
    fn a_peer_is_forgotten_only_once_its_streams_are_closed() {
        let activity = Activity::new();
        let peer = PeerId::random();
        let tracker = activity.track(peer, Direction::Inbound);
        activity.forget_if_unused(&peer);
        assert_eq!(activity.len(), 1, "a stream is still open");
        drop(tracker);
        activity.forget_if_unused(&peer);
        assert_eq!(activity.len(), 0);
    }

    #[test]
    fn only_dials_without_a_working_address_are_worth_a_lookup() {
        use libp2p::swarm::DialError;
        let failed =
            |error: &DialError| io::Error::new(io::ErrorKind::NotConnected, error.to_string());
        assert!(worth_a_lookup(&failed(&DialError::NoAddresses)));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let transport = DialError::Transport(vec![(
            "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            libp2p::TransportError::Other(refused),
        )]);
        assert!(worth_a_lookup(&failed(&transport)));
        // Refused by this node's own limits ("Dial error"), or a stream
        // reset: no lookup.
        assert!(!worth_a_lookup(&io::Error::new(
            io::ErrorKind::NotConnected,
            "Dial error"
        )));
        assert!(!worth_a_lookup(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
    }
}
