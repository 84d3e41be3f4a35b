//! Friends: petnames, direct messages and files, and offline mailboxes.
//!
//! Long because: sending (direct, then the mailbox, then via the network),
//! mail checks and their errors share one state.
//!
//! - [`address_book`]: petnames → peer ids (`DIR/friends.txt`);
//! - [`db`]: the inbox, sequence numbers, and mail held for others (tables
//!   of the store's database, `DIR/store/store.redb`);
//! - `receive`: the checks and bookkeeping every incoming letter goes
//!   through;
//! - `inbox_files`: received files on disk, under safe names.
//!
//! The protocols are rooms of their own: [`crate::protocols::direct`]
//! (delivery straight to a reachable friend) and
//! [`crate::protocols::mailbox`] (sealed letters left on the peers closest
//! to an offline friend's mailbox id, and collecting one's own).
//!
//! Sending: every letter is signed and gets this node's next sequence
//! number. If the friend can be reached (already connected, or found in the
//! DHT and dialled, directly or through a relay), the letter goes straight
//! to it and the answer is its acknowledgement. Otherwise the letter is
//! sealed to the friend's key and left in its mailbox; a file is first
//! stored on the network, and the letter carries its capability. A letter
//! that went both ways is still shown once: the recipient keeps each
//! (author, seq) once. `docs/friends.md` describes the whole flow,
//! `docs/threat-model.md` what mailbox peers learn.

pub mod address_book;
pub mod db;
pub(crate) mod inbox_files;
mod receive;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::AsyncRead;
use kith_base::letter::{self, Body, Letter};
use kith_base::{Capability, Identity, LetterError, PeerId};
use kith_codec::{FileMeta, Params};
use kith_net::{Client, NetEvent, Stream};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::chunk_reader::ChunkReader;
use crate::data_dir::DataDir;
use crate::files::{PutError, Shares};
use address_book::{AddressBook, FriendError};
use db::{Content, DbError, FileState, InboxEntry, MailLimits, MessageDb, Via};
use inbox_files::Incoming;

pub use crate::protocols::letter_frames::Reason as RefusalReason;

use crate::protocols::letter_frames as wire;
use crate::protocols::{direct, mailbox};

/// How long finding and dialling a friend may take before the letter goes
/// to its mailbox instead.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a file waits for hole punching to replace a relayed
/// connection to the friend with a direct one (then it goes through the
/// relay). A punch takes a round trip or two after the relayed connection
/// opens.
const UPGRADE_WAIT: Duration = Duration::from_secs(3);
/// Tries at direct delivery before the mailbox, when a try fails fast.
const DIRECT_ATTEMPTS: u32 = 2;
/// Least time between two mail checks set off by new connections.
const MIN_CHECK_GAP: Duration = Duration::from_secs(2);
/// The inbox folder inside the data folder, unless configured.
pub const INBOX_DIR: &str = "inbox";

/// Settings for messages and mail.
#[derive(Debug, Clone)]
pub struct FriendSettings {
    /// Accept letters from friends (peers in the address book) only.
    pub friends_only: bool,
    /// Where received files land; `None` = `DIR/inbox`.
    pub inbox: Option<PathBuf>,
    /// How often to check the mailbox (it is also checked when peers
    /// connect).
    pub mail_check: Duration,
    /// How long mail left for an offline friend is kept.
    pub mail_expiry: Duration,
    /// Limits on the mail this node holds for others.
    pub mail_limits: MailLimits,
}

impl Default for FriendSettings {
    fn default() -> Self {
        Self {
            friends_only: false,
            inbox: None,
            mail_check: Duration::from_secs(60),
            mail_expiry: Duration::from_secs(14 * 24 * 3600),
            mail_limits: MailLimits::default(),
        }
    }
}

/// How a letter was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The recipient.
    pub to: String,
    /// The letter's sequence number.
    pub seq: u64,
    /// Direct, acknowledged by the recipient; or left in its mailbox.
    pub via: Via,
    /// For a file, its size.
    pub size: Option<u64>,
    /// For a file sent directly, its BLAKE3 hash as the recipient
    /// confirmed it.
    pub blake3: Option<String>,
    /// For mail: how many peers hold it.
    pub mailbox_peers: usize,
    /// For a file left as mail: its capability on the network.
    pub capability: Option<String>,
    /// For mail: why direct delivery did not work.
    pub direct_error: Option<String>,
    /// For a direct delivery that went through a relay (the recipient
    /// reachable only that way): the relay's peer id. The relay forwarded
    /// ciphertext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

/// Why a message or file could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The friend's name or id is not usable.
    #[error(transparent)]
    Friend(#[from] FriendError),
    /// Sending to oneself.
    #[error("{0} is this node's own id; send to a friend")]
    ToSelf(PeerId),
    /// The letter breaks a limit (text length, file name).
    #[error(transparent)]
    Letter(#[from] LetterError),
    /// The friend's node refused the letter.
    #[error("{peer} refused it: {sentence}")]
    Refused {
        /// The friend's peer id.
        peer: String,
        /// Why, as a code.
        reason: RefusalReason,
        /// Why, in the friend's words.
        sentence: String,
    },
    /// Neither direct delivery nor the mailbox worked.
    #[error(
        "{peer} could not be reached directly ({direct}), and the letter could not be left in its mailbox: {mailbox}"
    )]
    Unreachable {
        /// The friend's peer id.
        peer: String,
        /// Why direct delivery failed.
        direct: String,
        /// Why the mailbox failed.
        mailbox: MailboxError,
    },
    /// A file transfer broke off; the friend kept nothing.
    #[error("sending to {peer} broke off: {detail}; nothing was kept, send the file again")]
    Interrupted {
        /// The friend's peer id.
        peer: String,
        /// What happened.
        detail: String,
    },
    /// The friend could not be reached, and storing the file on the network
    /// for its mailbox failed too.
    #[error(
        "{peer} cannot be reached directly ({direct}), and the file could not be stored on the \
         network to wait in its mailbox: {source}"
    )]
    Put {
        /// The friend's peer id.
        peer: String,
        /// Why direct delivery failed.
        direct: String,
        /// Why the put failed.
        source: Box<PutError>,
    },
    /// Reading the file to send failed.
    #[error("cannot read the file to send: {0}")]
    Source(std::io::Error),
    /// The file's name cannot travel in a letter.
    #[error("cannot send a file under that name: {0}")]
    Name(kith_codec::ManifestError),
    /// The node's database failed (sequence numbers, inbox).
    #[error(transparent)]
    Store(#[from] kith_store::StoreError),
}

/// Why a letter could not be left in a mailbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// No peer is known near the friend's mailbox id.
    #[error("no peer is known to hold mail (is this node connected?)")]
    NoPeers,
    /// Every peer asked refused or failed; each says why.
    #[error("no peer would hold the mail ({})", .refusals.join("; "))]
    AllRefused {
        /// "peer: why", one per peer asked.
        refusals: Vec<String>,
    },
}

/// Why a mailed file could not be fetched into the inbox (it is tried again
/// at the next mail check).
#[derive(Debug, thiserror::Error)]
enum FetchFailure {
    #[error("the letter is not a file")]
    NotAFile,
    #[error("the letter's capability is not valid: {0}")]
    Capability(#[from] kith_base::CapabilityError),
    #[error(transparent)]
    Get(#[from] crate::files::GetError),
    #[error("cannot write it into the inbox: {0}")]
    Disk(std::io::Error),
    #[error("the file has {got} bytes, not the {said} its letter says")]
    WrongSize { got: u64, said: u64 },
}

/// An inbox entry as the API shows it: with the sender's petname.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    /// The entry.
    #[serde(flatten)]
    pub entry: InboxEntry,
    /// The sender's petname, if it is a friend.
    pub from_name: Option<String>,
}

/// Everything friends need. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Friends {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: Identity,
    data_dir: DataDir,
    net: Client,
    shares: Shares,
    db: MessageDb,
    settings: FriendSettings,
    inbox_dir: PathBuf,
    arrivals: tokio::sync::watch::Sender<u64>,
    fetching: Mutex<HashSet<u64>>,
}

/// Why a letter could not go straight to its recipient (it then goes to
/// the mailbox, and `Delivery::direct_error` says this).
#[derive(Debug, thiserror::Error)]
enum Unreached {
    /// No stream could be opened to the friend.
    #[error("{0}")]
    Stream(#[from] kith_net::OpenStreamError),
    /// Finding and dialling the friend took too long.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The stream broke, or the friend broke the protocol.
    #[error(transparent)]
    Wire(wire::WireError),
}

/// The friend's refusal as an error; any other failure as why direct
/// delivery did not work (for the caller to fall back on the mailbox, or
/// report).
fn refusal(to: PeerId, error: wire::WireError) -> Result<Unreached, SendError> {
    match error {
        wire::WireError::Refused { reason, sentence } => Err(SendError::Refused {
            peer: to.to_string(),
            reason,
            sentence,
        }),
        other => Ok(Unreached::Wire(other)),
    }
}

/// Milliseconds since the Unix epoch, by this node's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

impl Friends {
    /// Opens the message database and prepares the inbox folder.
    pub(crate) async fn open(
        identity: Identity,
        data_dir: DataDir,
        store: kith_store::Store,
        net: Client,
        shares: Shares,
        settings: FriendSettings,
    ) -> Result<Self, crate::NodeError> {
        let inbox_dir = settings
            .inbox
            .clone()
            .unwrap_or_else(|| data_dir.path(INBOX_DIR));
        let path = data_dir.path(db::MESSAGES_FILE);
        let seq_file = data_dir.path(db::SEQ_FILE);
        let dir = inbox_dir.clone();
        let db = crate::files::blocking(move || {
            let removed = inbox_files::remove_leftovers(&dir);
            if removed > 0 {
                info!(removed, "removed partly received files left by a crash");
            }
            crate::side_db::import_or_move_aside(
                &path,
                "the inbox (received messages and the record of files received), the mail \
                 held for other peers, and the record of which letters were already shown \
                 (a friend's letter may be shown again)",
                |path| store.import_messages(path),
            )?;
            Ok::<_, crate::NodeError>(store.messages(seq_file))
        })
        .await?;
        let (arrivals, _) = tokio::sync::watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                identity,
                data_dir,
                net,
                shares,
                db,
                settings,
                inbox_dir,
                arrivals,
                fetching: Mutex::default(),
            }),
        })
    }

    /// The tasks that serve the protocols and check the mailbox.
    pub(crate) fn tasks(
        &self,
        lifecycle: &crate::lifecycle::Lifecycle,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(direct::server::serve(
                self.clone(),
                self.net().streams(),
                lifecycle.clone(),
            )),
            tokio::spawn(mailbox::server::serve(
                self.clone(),
                self.net().streams(),
                lifecycle.clone(),
            )),
            tokio::spawn(self.clone().check_mail_periodically(self.net().events())),
        ]
    }

    pub(crate) fn me(&self) -> PeerId {
        self.inner.identity.peer_id()
    }
    pub(crate) fn identity(&self) -> &Identity {
        &self.inner.identity
    }
    pub(crate) fn net(&self) -> &Client {
        &self.inner.net
    }
    pub(crate) fn db(&self) -> &MessageDb {
        &self.inner.db
    }
    pub(crate) fn settings(&self) -> &FriendSettings {
        &self.inner.settings
    }
    pub(crate) fn inbox_dir(&self) -> &Path {
        &self.inner.inbox_dir
    }

    fn address_book(&self) -> AddressBook {
        AddressBook::load(&self.inner.data_dir).unwrap_or_else(|error| {
            warn!(%error, "cannot read the address book");
            AddressBook::default()
        })
    }

    pub(crate) fn is_friend(&self, peer: &PeerId) -> bool {
        self.address_book().contains(peer)
    }

    /// The peer a petname or peer id names, never this node.
    pub(crate) fn resolve(&self, friend: &str) -> Result<PeerId, SendError> {
        let book = AddressBook::load(&self.inner.data_dir)?;
        let peer = book.resolve(friend)?;
        if peer == self.me() {
            return Err(SendError::ToSelf(peer));
        }
        Ok(peer)
    }

    pub(crate) async fn store_entry(
        &self,
        author: PeerId,
        entry: InboxEntry,
    ) -> Result<Option<u64>, DbError> {
        let arrival = self
            .on_db(move |db| db.record(&author.to_bytes(), entry))
            .await?;
        if let Some(arrival) = arrival {
            self.inner.arrivals.send_replace(arrival);
        }
        Ok(arrival)
    }

    async fn new_letter(&self, to: PeerId, body: Body) -> Result<Letter, SendError> {
        let seq = self.on_db(MessageDb::next_seq).await?;
        Ok(Letter {
            from: self.me(),
            to,
            sent_at_ms: now_ms(),
            seq,
            body,
        })
    }

    /// The relay a delivery to `peer` went through: when every connection
    /// to it is relayed, the relay of the first (a stream may take any
    /// connection, so with a direct one open it is taken as direct).
    async fn relay_in_use(&self, peer: PeerId) -> Option<String> {
        let open: Vec<kith_net::Multiaddr> = self
            .net()
            .connections()
            .await
            .ok()?
            .into_iter()
            .filter(|(id, _)| *id == peer)
            .map(|(_, addr)| addr)
            .collect();
        if open.is_empty() || !open.iter().all(kith_net::is_relayed) {
            return None;
        }
        kith_net::relay_of(&open[0]).map(|relay| relay.to_string())
    }

    /// Opens a direct stream to `peer`, looking it up in the DHT first if
    /// it is not connected. The error says why, and whether it came fast
    /// enough to be worth one more try (a connection that closed under
    /// us, a dial that raced another) rather than a timeout. With `bulk`
    /// (a file) a relayed connection gets [`UPGRADE_WAIT`] to be replaced
    /// by a direct one first.
    async fn reach(&self, peer: PeerId, bulk: bool) -> Result<Stream, (Unreached, bool)> {
        let connected = self
            .net()
            .connected_peers()
            .await
            .map(|peers| peers.contains(&peer))
            .unwrap_or(false);
        let attempt = async {
            if !connected {
                // Fills in its addresses; a failure still leaves any that
                // are known to try.
                if let Err(error) = self.net().find_peer(peer).await {
                    debug!(%peer, %error, "peer lookup failed");
                }
            }
            if bulk {
                // A file goes direct when hole punching allows: when the
                // lookup reached the peer through a relay only, give the
                // punch a moment, and stream on the direct connection.
                match self.net().prefer_direct(peer, UPGRADE_WAIT).await {
                    Ok(direct) => debug!(%peer, direct, "connection for a file"),
                    Err(error) => debug!(%peer, %error, "cannot look at connections"),
                }
            }
            self.net()
                .streams()
                .open_stream(peer, wire::DIRECT)
                .await
                .map_err(|error| (Unreached::from(error), true))
        };
        match tokio::time::timeout(REACH_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err((Unreached::NoAnswer(REACH_TIMEOUT), false)),
        }
    }

    /// Reaches `to` and runs `deliver` on a fresh direct stream, once more
    /// if the first try failed fast. Returns what `deliver` returned, or
    /// why direct delivery did not work (for the mailbox fallback); a
    /// refusal by the friend is an error at once.
    async fn try_direct<T, Attempt>(
        &self,
        to: PeerId,
        bulk: bool,
        deliver: impl Fn(Stream) -> Attempt,
    ) -> Result<Result<T, Unreached>, SendError>
    where
        Attempt: Future<Output = Result<T, wire::WireError>>,
    {
        let mut why = Unreached::NoAnswer(Duration::ZERO);
        for attempt in 1..=DIRECT_ATTEMPTS {
            let retry = match self.reach(to, bulk).await {
                Ok(stream) => match deliver(stream).await {
                    Ok(value) => return Ok(Ok(value)),
                    Err(error) => {
                        why = refusal(to, error)?;
                        true
                    }
                },
                Err((error, retry)) => {
                    why = error;
                    retry
                }
            };
            debug!(%to, attempt, %why, "direct delivery failed");
            if !retry {
                break;
            }
        }
        Ok(Err(why))
    }

    /// Sends a text message to `friend` (a petname or peer id).
    pub(crate) async fn send_text(
        &self,
        friend: &str,
        text: String,
    ) -> Result<Delivery, SendError> {
        let to = self.resolve(friend)?;
        let letter = self.new_letter(to, Body::Text(text)).await?;
        let signed = letter.sign(self.identity())?;
        // Not refused but failed: perhaps delivered, perhaps not. The
        // mailbox copy has the same (author, seq), so the friend sees it
        // once either way.
        let direct = match self
            .try_direct(to, false, |mut stream: Stream| {
                let signed = signed.clone();
                async move { direct::client::send_text(&mut stream, &signed).await }
            })
            .await?
        {
            Ok(()) => {
                return Ok(Delivery {
                    to: to.to_string(),
                    seq: letter.seq,
                    via: Via::Direct,
                    size: None,
                    blake3: None,
                    mailbox_peers: 0,
                    capability: None,
                    direct_error: None,
                    relay: self.relay_in_use(to).await,
                });
            }
            Err(direct) => direct.to_string(),
        };
        debug!(%to, %direct, "not reachable directly; leaving the message in its mailbox");
        self.mail(to, &letter, &signed, direct, None).await
    }

    async fn mail(
        &self,
        to: PeerId,
        letter: &Letter,
        signed: &[u8],
        direct: String,
        capability: Option<String>,
    ) -> Result<Delivery, SendError> {
        let sealed = letter::seal(&to, signed)?;
        match self.deposit(to, sealed).await {
            Ok(peers) => {
                info!(%to, seq = letter.seq, peers, "left a letter in a mailbox");
                Ok(Delivery {
                    to: to.to_string(),
                    seq: letter.seq,
                    via: Via::Mailbox,
                    size: match &letter.body {
                        Body::Stored { size, .. } => Some(*size),
                        _ => None,
                    },
                    blake3: None,
                    mailbox_peers: peers,
                    capability,
                    direct_error: Some(direct),
                    relay: None,
                })
            }
            Err(mailbox) => Err(SendError::Unreachable {
                peer: to.to_string(),
                direct,
                mailbox,
            }),
        }
    }

    /// Sends a file of `size` bytes read from `body` to `friend`, under
    /// `name`.
    pub(crate) async fn send_file(
        &self,
        friend: &str,
        name: &str,
        size: u64,
        body: Box<dyn AsyncRead + Send + Unpin>,
    ) -> Result<Delivery, SendError> {
        self.send_file_via(friend, name, size, body, None).await
    }

    /// [`Self::send_file`], straight to the mailbox when `mailbox_because`
    /// says why (a direct transfer of the same file broke off: the caller
    /// sends it again, and the friend gets it once, from its mailbox).
    pub(crate) async fn send_file_via(
        &self,
        friend: &str,
        name: &str,
        size: u64,
        mut body: Box<dyn AsyncRead + Send + Unpin>,
        mailbox_because: Option<String>,
    ) -> Result<Delivery, SendError> {
        let to = self.resolve(friend)?;
        letter::check_file_name(name)?;
        let letter = self
            .new_letter(
                to,
                Body::File {
                    name: name.to_owned(),
                    size,
                },
            )
            .await?;
        let signed = letter.sign(self.identity())?;
        let offered = match mailbox_because {
            Some(why) => Err(why),
            None => self
                .try_direct(to, true, |mut stream: Stream| {
                    let signed = signed.clone();
                    async move {
                        direct::client::offer_file(&mut stream, &signed).await?;
                        Ok(stream)
                    }
                })
                .await?
                .map_err(|direct| direct.to_string()),
        };
        let direct = match offered {
            // From here on the body is being read: no fallback.
            Ok(mut stream) => {
                return match direct::client::stream_file(&mut stream, &mut *body, size).await {
                    Ok(hash) => Ok(Delivery {
                        to: to.to_string(),
                        seq: letter.seq,
                        via: Via::Direct,
                        size: Some(size),
                        blake3: Some(hash.to_hex().to_string()),
                        mailbox_peers: 0,
                        capability: None,
                        direct_error: None,
                        relay: self.relay_in_use(to).await,
                    }),
                    Err(direct::client::SendFailure::Source(error)) => {
                        Err(SendError::Source(error))
                    }
                    Err(direct::client::SendFailure::Wire(error)) => Err(SendError::Interrupted {
                        detail: refusal(to, error)?.to_string(),
                        peer: to.to_string(),
                    }),
                };
            }
            Err(direct) => direct,
        };
        debug!(%to, %direct, "not reachable directly; storing the file for its mailbox");
        let meta = FileMeta::none().with_name(name).map_err(SendError::Name)?;
        let reader = ChunkReader::from_async(body);
        let report = self
            .inner
            .shares
            .put(Box::new(reader), Params::default(), meta)
            .await
            .map_err(|source| SendError::Put {
                peer: to.to_string(),
                direct: direct.to_string(),
                source: Box::new(source),
            })?;
        if report.file_size != size {
            return Err(SendError::Source(std::io::Error::other(format!(
                "the file was {} bytes, not the {size} announced",
                report.file_size
            ))));
        }
        let capability = report.capability.to_string();
        // The same seq: the direct attempt never delivered a file (only a
        // delivered answer does), so this letter replaces it.
        let stored = Letter {
            body: Body::Stored {
                name: name.to_owned(),
                size,
                capability: capability.clone(),
            },
            ..letter
        };
        let signed = stored.sign(self.identity())?;
        self.mail(to, &stored, &signed, direct, Some(capability))
            .await
    }

    /// Inbox entries that arrived after `after`, with petnames.
    pub(crate) async fn inbox(&self, after: u64) -> Result<Vec<InboxItem>, DbError> {
        let entries = self.on_db(move |db| db.entries_after(after)).await?;
        let book = self.address_book();
        Ok(entries
            .into_iter()
            .map(|entry| {
                let from_name = entry
                    .from
                    .parse::<PeerId>()
                    .ok()
                    .and_then(|peer| book.name_of(&peer).map(str::to_owned));
                InboxItem { entry, from_name }
            })
            .collect())
    }

    /// Like [`Self::inbox`], but waits up to `wait` for something to arrive
    /// if nothing has.
    pub(crate) async fn wait_inbox(
        &self,
        after: u64,
        wait: Duration,
    ) -> Result<Vec<InboxItem>, DbError> {
        let mut arrivals = self.inner.arrivals.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let items = self.inbox(after).await?;
            if !items.is_empty() {
                return Ok(items);
            }
            if tokio::time::timeout_at(deadline, arrivals.changed())
                .await
                .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    /// Checks the mailbox now and fetches files still missing. Returns the
    /// number of new letters.
    pub(crate) async fn check_mail(&self) -> usize {
        self.check_mail_asking().await.0
    }

    /// [`Self::check_mail`], also returning how many mailbox holders were
    /// asked.
    async fn check_mail_asking(&self) -> (usize, usize) {
        let db = self.db().clone();
        match tokio::task::spawn_blocking(move || db.expire_mail(now_ms())).await {
            Ok(Ok(expired)) if expired > 0 => {
                info!(expired, "dropped expired mail held for others")
            }
            Ok(Err(error)) => warn!(%error, "cannot sweep expired mail"),
            _ => {}
        }
        let collected = self.collect().await;
        self.fetch_pending_files().await;
        collected
    }

    async fn check_mail_periodically(self, mut events: tokio::sync::broadcast::Receiver<NetEvent>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut tick = tokio::time::interval(self.settings().mail_check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Instant> = None;
        // Whether the last check reached any mailbox holder. A new
        // connection sets off a check only while it has not: that is the
        // node coming online, when waiting for the next tick would delay
        // mail. Once online, connections come and go all the time (every
        // DHT lookup opens some), and a check on each would be a lookup
        // plus twenty streams per connection.
        let mut reached = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                event = events.recv() => match event {
                    Ok(NetEvent::PeerConnected(_))
                        if !reached && last.is_none_or(|at| at.elapsed() >= MIN_CHECK_GAP) => {}
                    Err(RecvError::Closed) => return,
                    _ => continue,
                },
            }
            let (_, asked) = self.check_mail_asking().await;
            reached = asked > 0;
            last = Some(Instant::now());
        }
    }

    /// Fetches, in the background, every mailed file not yet received.
    async fn fetch_pending_files(&self) {
        let pending = match self.inbox(0).await {
            Ok(items) => items,
            Err(error) => {
                warn!(%error, "cannot read the inbox");
                return;
            }
        };
        for item in pending {
            let entry = item.entry;
            let Content::File {
                capability: Some(capability),
                state: FileState::Fetching | FileState::Failed(_),
                ..
            } = &entry.content
            else {
                continue;
            };
            if !self
                .inner
                .fetching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(entry.arrival)
            {
                continue;
            }
            let this = self.clone();
            let capability = capability.clone();
            tokio::spawn(async move {
                let arrival = entry.arrival;
                this.fetch_file(entry, &capability).await;
                this.inner
                    .fetching
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&arrival);
            });
        }
    }

    async fn fetch_file(&self, mut entry: InboxEntry, capability: &str) {
        let result = self.download(capability, &entry).await;
        let Content::File {
            path,
            blake3,
            state,
            ..
        } = &mut entry.content
        else {
            return;
        };
        match result {
            Ok((placed, hash)) => {
                info!(path = %placed.display(), "received a file sent while offline");
                *path = Some(placed.display().to_string());
                *blake3 = Some(hash.to_hex().to_string());
                *state = FileState::Received;
            }
            Err(error) => {
                warn!(%error, "cannot fetch a file a friend left; will try again");
                *state = FileState::Failed(error.to_string());
            }
        }
        let db = self.db().clone();
        let arrival = entry.arrival;
        match tokio::task::spawn_blocking(move || db.update(&entry)).await {
            Ok(Ok(())) => {
                self.inner.arrivals.send_replace(arrival);
            }
            Ok(Err(error)) => warn!(%error, "cannot update the inbox"),
            Err(error) => warn!(%error, "cannot update the inbox"),
        }
    }

    async fn download(
        &self,
        capability: &str,
        entry: &InboxEntry,
    ) -> Result<(PathBuf, blake3::Hash), FetchFailure> {
        let Content::File { name, size, .. } = &entry.content else {
            return Err(FetchFailure::NotAFile);
        };
        let capability: Capability = capability.parse()?;
        let download = self.inner.shares.open(&capability).await?;
        let mut chunks = download.into_stream();
        let mut incoming = Incoming::create(self.inbox_dir()).map_err(FetchFailure::Disk)?;
        while let Some(chunk) = chunks.recv().await {
            incoming.write(chunk?).await.map_err(FetchFailure::Disk)?;
        }
        if incoming.received() != *size {
            return Err(FetchFailure::WrongSize {
                got: incoming.received(),
                said: *size,
            });
        }
        let hash = incoming.finish().await.map_err(FetchFailure::Disk)?;
        let name = name.clone();
        let placed = match tokio::task::spawn_blocking(move || incoming.place(&name)).await {
            Ok(placed) => placed.map_err(FetchFailure::Disk)?,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        Ok((placed, hash))
    }

    /// How many letters this node holds for `peer`'s mailbox, and in all
    /// (letters, bytes).
    pub(crate) async fn held_mail(&self, peer: Option<PeerId>) -> Result<(u64, u64), DbError> {
        self.on_db(move |db| match peer {
            Some(peer) => db
                .mail_for(&letter::mailbox_id(&peer), usize::MAX, usize::MAX)
                .map(|items| {
                    (
                        items.len() as u64,
                        items.iter().map(|(_, sealed)| sealed.len() as u64).sum(),
                    )
                }),
            None => db.mail_held(),
        })
        .await
    }

    /// Runs a call on the node's database on the blocking pool (it may
    /// wait on the disk); a panic in it is resumed here.
    pub(crate) async fn on_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MessageDb) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let db = self.db().clone();
        match tokio::task::spawn_blocking(move || work(&db)).await {
            Ok(result) => result,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}
