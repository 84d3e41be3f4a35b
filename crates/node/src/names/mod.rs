//! Names on the network: publishing a name record, resolving one,
//! republishing, and mirrors (`mirror`). The wire is the room
//! [`crate::protocols::names`]; the record format is [`kith_base::name`];
//! `docs/names.md` tells the whole story.
//!
//! - **Publish**: sign a record with the next sequence (one above the
//!   highest this node or the network knows), keep it, and store it on the
//!   [`NameSettings::replicas`] peers closest to the name's DHT key.
//! - **Resolve**: a record held here answers at once (a warm resolve never
//!   waits on the network); if it was last checked more than
//!   [`NameSettings::fresh_for`] ago, a lookup runs in the background, so the
//!   next resolve sees a newer sequence. Without one, the closest peers
//!   are asked and the highest valid sequence wins; peers that answered
//!   with an older record (or none) are handed the newer one.
//! - **Republish**: every [`NameSettings::republish_every`], this node
//!   stores its own names' records again (renewing them once half their
//!   validity has passed) and those of the names it mirrors, so a name
//!   resolves for as long as its publisher or one mirror is online.
//! - **Hold**: the protocol's server keeps records for others, verified,
//!   newest first, at most [`NameSettings::max_held`] names.

pub(crate) mod mirror;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kith_base::name::NameSigner;
use kith_base::{Capability, Identity, Name, NameError, NameRecord};
use kith_net::{Client, PeerId};
use kith_store::{RecordPut, Store, StoreError};
use tracing::{debug, info, warn};

use crate::files::{Shares, unix_now};
use crate::lifecycle::Lifecycle;
use crate::protocols::names::client::{self, ANSWER_TIMEOUT};

pub use mirror::MirrorInfo;

/// How the node publishes, resolves and mirrors names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameSettings {
    /// How long a record this node signs stays valid (renewed at half-time
    /// while the node runs).
    pub validity: Duration,
    /// How often this node stores its names' and its mirrors' records again.
    pub republish_every: Duration,
    /// How often each mirror looks for a new version.
    pub mirror_check_every: Duration,
    /// A resolve answered from a record checked this recently starts no
    /// background lookup.
    pub fresh_for: Duration,
    /// Most names whose records this node keeps for others.
    pub max_held: u64,
    /// How many of the closest peers a record is stored on.
    pub replicas: usize,
}

impl Default for NameSettings {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(365 * 24 * 3600),
            republish_every: Duration::from_secs(3600),
            mirror_check_every: Duration::from_secs(30),
            fresh_for: Duration::from_secs(5),
            max_held: 100_000,
            replicas: 10,
        }
    }
}

/// After the first record arrives in a lookup, how long the other peers
/// asked still have to answer (a higher sequence may be among them).
const STRAGGLERS: Duration = Duration::from_millis(400);
/// Names whose last lookup time is remembered (cleared when full).
const CHECKED_NAMES: usize = 4096;
/// Background lookups at once; a resolve beyond them answers from what is
/// held without starting one.
const MAX_REFRESHING: usize = 64;
/// Answers a lookup waits for (or all the peers asked, or the time limit)
/// before the stragglers' grace starts: one fast liar with an old record
/// must not decide a resolve.
const ANSWERS_BEFORE_GRACE: usize = 3;
/// Records one peer may store here per [`STORE_RATE_WINDOW`].
const STORES_PER_PEER: u32 = 120;
/// The window of [`STORES_PER_PEER`].
const STORE_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Peers whose store rate is tracked at once.
const STORE_RATE_PEERS: usize = 4096;

/// Why a name operation failed. Callers branch on the variant (the API
/// gives each its HTTP status); the message is one sentence for a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameOpError {
    /// A label, a name or a mirror target that is not valid.
    #[error(transparent)]
    Invalid(#[from] NameError),
    /// No peer asked holds a valid record of the name.
    #[error(
        "no record of the name {name} was found (asked {asked} peer(s)); it was never \
         published, its records expired, or this node has no peers yet"
    )]
    NotFound {
        /// The name.
        name: Name,
        /// Peers asked.
        asked: usize,
    },
    /// Something to mirror that is neither a name nor a capability.
    #[error("{0}")]
    BadTarget(String),
    /// `kith mirror rm` of something not mirrored.
    #[error("{0} is not mirrored here (see `kith mirror ls`)")]
    NotMirrored(String),
    /// The node's database failed.
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<StoreError> for NameOpError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Why a record sent to this node was not kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HoldError {
    /// Not a record, or forged.
    #[error("{0}")]
    Bad(NameError),
    /// Its validity has ended.
    #[error("the name record has expired")]
    Expired,
    /// It claims a validity longer than a holder keeps a record.
    #[error("the name record claims a validity of more than 400 days from now")]
    TooLong,
    /// The peer stored too many records lately.
    #[error("too many name records from this peer lately; try again in a minute")]
    Busy,
    /// The table holds its limit of names.
    #[error("this node keeps as many name records as it will")]
    Full,
    /// The database failed.
    #[error("{0}")]
    Store(StoreError),
}

/// What [`crate::handles::Names::publish`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Published {
    /// The signed record.
    pub record: NameRecord,
    /// Peers that keep it now.
    pub stored_on: usize,
    /// Peers asked to keep it.
    pub asked: usize,
}

/// A record found by [`crate::handles::Names::resolve`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolved {
    /// The record: highest valid sequence known.
    pub record: NameRecord,
    /// Whether it came from this node's own table without a lookup.
    pub cached: bool,
}

/// One name this node publishes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MyName {
    /// The label (`None`: the node's default name).
    pub label: Option<String>,
    /// The name.
    pub name: Name,
    /// Its current record, if held.
    pub record: Option<NameRecord>,
}

/// The names part of a node. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: Identity,
    net: Client,
    store: Store,
    shares: Shares,
    settings: NameSettings,
    /// When each name was last looked up on the network.
    checked: Mutex<HashMap<Name, Instant>>,
    /// Names being looked up in the background.
    refreshing: Mutex<HashSet<Name>>,
    /// Mirrors sync one at a time.
    mirror_sync: tokio::sync::Mutex<()>,
    /// One publish at a time (two at once would sign one sequence twice).
    publishing: tokio::sync::Mutex<()>,
    /// peer → (window start, records it stored in the window).
    store_rate: Mutex<HashMap<PeerId, (Instant, u32)>>,
}

impl Names {
    pub(crate) fn new(
        identity: Identity,
        net: Client,
        store: Store,
        shares: Shares,
        settings: NameSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity,
                net,
                store,
                shares,
                settings,
                checked: Mutex::default(),
                refreshing: Mutex::default(),
                mirror_sync: tokio::sync::Mutex::new(()),
                publishing: tokio::sync::Mutex::new(()),
                store_rate: Mutex::default(),
            }),
        }
    }

    /// The server, the republish loop and the mirror loop.
    pub(crate) fn tasks(&self, lifecycle: &Lifecycle) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(crate::protocols::names::server::serve(
                self.clone(),
                self.inner.net.streams(),
                lifecycle.clone(),
            )),
            tokio::spawn(self.clone().republish_periodically(lifecycle.clone())),
            tokio::spawn(self.clone().sync_mirrors_periodically(lifecycle.clone())),
        ]
    }

    fn me(&self) -> PeerId {
        self.inner.identity.peer_id()
    }

    pub(crate) fn shares(&self) -> &Shares {
        &self.inner.shares
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn settings(&self) -> &NameSettings {
        &self.inner.settings
    }

    /// Points this node's default name (`label` `None`) or its name for
    /// `label` at `target`, and stores the record on the closest peers.
    pub(crate) async fn publish(
        &self,
        target: &Capability,
        label: Option<&str>,
    ) -> Result<Published, NameOpError> {
        let signer = NameSigner::new(&self.inner.identity, label)?;
        let name = signer.name();
        let _one_at_a_time = self.inner.publishing.lock().await;
        let (found, _) = self.lookup_with(name, Grace::None).await;
        let previous = newest(self.held(&name).await, found);
        let sequence = previous.map_or(1, |record| record.sequence().saturating_add(1));
        let now = unix_now();
        let record = signer.sign(
            target,
            sequence,
            now,
            now + self.inner.settings.validity.as_secs(),
        );
        self.keep(&record, u64::MAX)
            .await
            .map_err(|error| match error {
                HoldError::Store(error) => NameOpError::from(error),
                other => NameOpError::BadTarget(other.to_string()),
            })?;
        let store = self.inner.store.clone();
        let label_key = label.unwrap_or_default().to_owned();
        crate::files::blocking(move || store.names().add_mine(&label_key, name.as_bytes())).await?;
        let (stored_on, asked) = self.push(&record).await;
        self.mark_checked(name);
        info!(%name, sequence, stored_on, "published a name");
        Ok(Published {
            record,
            stored_on,
            asked,
        })
    }

    /// The record `name` points at now (see the module's doc for when the
    /// network is asked). `fresh` always asks it.
    pub(crate) async fn resolve(&self, name: Name, fresh: bool) -> Result<Resolved, NameOpError> {
        let held = self.held(&name).await;
        if !fresh && let Some(record) = held.clone() {
            if !self.checked_within(&name, self.inner.settings.fresh_for) {
                self.refresh_in_background(name);
            }
            return Ok(Resolved {
                record,
                cached: true,
            });
        }
        let (found, asked) = self.lookup(name).await;
        match newest(held, found) {
            Some(record) => Ok(Resolved {
                record,
                cached: false,
            }),
            None => Err(NameOpError::NotFound { name, asked }),
        }
    }

    /// The names this node publishes, with their current records.
    pub(crate) async fn mine(&self) -> Result<Vec<MyName>, NameOpError> {
        let store = self.inner.store.clone();
        let rows = crate::files::blocking(move || store.names().mine()).await?;
        let mut mine = Vec::with_capacity(rows.len());
        for (label, key) in rows {
            let Ok(name) = Name::from_key(key) else {
                continue;
            };
            mine.push(MyName {
                label: (!label.is_empty()).then_some(label),
                name,
                record: self.held(&name).await,
            });
        }
        Ok(mine)
    }

    /// The levels `/v1/metrics` shows.
    pub(crate) async fn figures(&self) -> crate::metrics::NameFigures {
        let store = self.inner.store.clone();
        crate::files::blocking(move || {
            let names = store.names();
            crate::metrics::NameFigures {
                records: names.record_count().unwrap_or(0),
                published: names.mine().map_or(0, |mine| mine.len() as u64),
                mirrors: names.mirrors().map_or(0, |mirrors| mirrors.len() as u64),
            }
        })
        .await
    }

    /// Keeps a record `peer` sent (the protocol's server). Returns the
    /// record held afterwards.
    pub(crate) async fn hold(&self, peer: PeerId, bytes: &[u8]) -> Result<NameRecord, HoldError> {
        let record = NameRecord::from_bytes(bytes).map_err(|error| {
            debug!(%peer, %error, "refusing a name record");
            HoldError::Bad(error)
        })?;
        let now = unix_now();
        if !record.is_live(now) {
            return Err(HoldError::Expired);
        }
        if record.expires_at() > now.saturating_add(kith_base::name::MAX_VALIDITY_SECS) {
            return Err(HoldError::TooLong);
        }
        if !self.within_store_rate(peer) {
            return Err(HoldError::Busy);
        }
        // A replay costs a read, not a write: compare before writing.
        if let Some(held) = self.held(&record.name()).await
            && !record.supersedes(&held)
        {
            return Ok(held);
        }
        self.keep(&record, self.inner.settings.max_held).await
    }

    /// Whether `peer` may store one more record now: at most
    /// [`STORES_PER_PEER`] a minute, so no peer can fill the table or make
    /// the node write without pause.
    fn within_store_rate(&self, peer: PeerId) -> bool {
        let mut rate = self
            .inner
            .store_rate
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if rate.len() >= STORE_RATE_PEERS && !rate.contains_key(&peer) {
            rate.retain(|_, (start, _)| start.elapsed() < STORE_RATE_WINDOW);
            if rate.len() >= STORE_RATE_PEERS {
                return false;
            }
        }
        let (start, count) = rate.entry(peer).or_insert((Instant::now(), 0));
        if start.elapsed() >= STORE_RATE_WINDOW {
            *start = Instant::now();
            *count = 0;
        }
        *count += 1;
        *count <= STORES_PER_PEER
    }

    /// The valid record held here for `name`, if any.
    pub(crate) async fn held(&self, name: &Name) -> Option<NameRecord> {
        let store = self.inner.store.clone();
        let key = *name.as_bytes();
        let bytes = crate::files::blocking(move || store.names().record(&key))
            .await
            .inspect_err(|error| warn!(%error, "cannot read a name record"))
            .ok()??;
        // Verified again: the table is on disk, and a damaged row must not
        // become a wrong answer.
        let record = NameRecord::from_bytes(&bytes).ok()?;
        (record.name() == *name && record.is_live(unix_now())).then_some(record)
    }

    /// Stores `record` here unless a newer one of its name is held (or the
    /// table holds `max_names` others). Returns the record held afterwards.
    async fn keep(&self, record: &NameRecord, max_names: u64) -> Result<NameRecord, HoldError> {
        let store = self.inner.store.clone();
        let incoming = record.clone();
        let (outcome, held) = crate::files::blocking(move || {
            let mut held_before = None;
            let now = unix_now();
            let outcome = store.names().put_record(
                incoming.name().as_bytes(),
                incoming.as_bytes(),
                max_names,
                |held| match NameRecord::from_bytes(held) {
                    Ok(held) if held.is_live(now) && !incoming.supersedes(&held) => {
                        held_before = Some(held);
                        false
                    }
                    _ => true,
                },
            );
            (outcome, held_before)
        })
        .await;
        match outcome.map_err(HoldError::Store)? {
            RecordPut::Stored => Ok(record.clone()),
            RecordPut::Kept => Ok(held.unwrap_or_else(|| record.clone())),
            RecordPut::Full => Err(HoldError::Full),
        }
    }

    /// Asks the peers closest to `name`'s key for its record. Returns the
    /// newest valid one (kept here, and handed to the peers that answered
    /// with an older one or none) and how many peers were asked.
    async fn lookup(&self, name: Name) -> (Option<NameRecord>, usize) {
        self.lookup_with(name, Grace::AfterAnswers).await
    }

    /// [`Names::lookup`], saying whether slow peers are cut short once
    /// enough have answered (a resolve) or every peer gets the whole time
    /// limit (a publish, which must not miss a higher sequence).
    async fn lookup_with(&self, name: Name, grace: Grace) -> (Option<NameRecord>, usize) {
        let net = &self.inner.net;
        let mut peers = net
            .closest_peers(name.dht_key())
            .await
            .unwrap_or_else(|error| {
                debug!(%error, "no lookup for a name");
                Vec::new()
            });
        peers.retain(|peer| *peer != self.me());
        let asked = peers.len();
        let mut answers: FuturesUnordered<_> = peers
            .into_iter()
            .map(|peer| async move { (peer, client::fetch_from(net, peer, &name).await) })
            .collect();
        let mut best: Option<NameRecord> = None;
        let mut answered: Vec<(PeerId, Option<NameRecord>)> = Vec::new();
        let mut deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT * 2;
        let mut graced = false;
        let now = unix_now();
        while let Ok(Some((peer, answer))) = tokio::time::timeout_at(deadline, answers.next()).await
        {
            match answer {
                Ok(record) => {
                    let record = record.filter(|record| record.is_live(now));
                    if let Some(record) = &record
                        && best
                            .as_ref()
                            .is_none_or(|current| record.supersedes(current))
                    {
                        best = Some(record.clone());
                    }
                    answered.push((peer, record));
                }
                Err(error) => debug!(%peer, %error, "no name record from a peer"),
            }
            if grace == Grace::AfterAnswers
                && !graced
                && best.is_some()
                && answered.len() >= ANSWERS_BEFORE_GRACE.min(asked)
            {
                graced = true;
                deadline = deadline.min(tokio::time::Instant::now() + STRAGGLERS);
            }
        }
        // Peers that answered with an older record than the best, or none.
        let mut behind: Vec<PeerId> = answered
            .into_iter()
            .filter(|(_, record)| match (record, &best) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(record), Some(best)) => best.supersedes(record),
            })
            .map(|(peer, _)| peer)
            .collect();
        self.mark_checked(name);
        if let Some(record) = &best {
            if let Err(error) = self.keep(record, self.inner.settings.max_held).await {
                debug!(%error, "not keeping a resolved name record");
            }
            // Peers that answered with an older record, or none, take the
            // newer one (they are among the closest, where it belongs).
            behind.truncate(self.inner.settings.replicas);
            for peer in behind {
                let net = net.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    if let Err(error) = client::store_on(&net, peer, &record).await {
                        debug!(%peer, %error, "cannot hand on a newer name record");
                    }
                });
            }
        }
        (best, asked)
    }

    /// Stores `record` on the closest peers to its name's key. Returns how
    /// many keep it and how many were asked.
    pub(crate) async fn push(&self, record: &NameRecord) -> (usize, usize) {
        let net = &self.inner.net;
        let mut peers = net
            .closest_peers(record.name().dht_key())
            .await
            .unwrap_or_default();
        peers.retain(|peer| *peer != self.me());
        peers.truncate(self.inner.settings.replicas);
        let asked = peers.len();
        let results = futures::future::join_all(
            peers
                .into_iter()
                .map(|peer| async move { (peer, client::store_on(net, peer, record).await) }),
        )
        .await;
        let mut stored = 0;
        for (peer, result) in results {
            match result {
                Ok(Some(held)) if held == *record => stored += 1,
                Ok(Some(held)) if held.supersedes(record) => {
                    warn!(
                        %peer,
                        name = %record.name(),
                        theirs = held.sequence(),
                        ours = record.sequence(),
                        "a peer holds a newer record of this name"
                    );
                }
                Ok(_) => {}
                Err(error) => debug!(%peer, %error, "cannot store a name record"),
            }
        }
        (stored, asked)
    }

    fn checked_within(&self, name: &Name, within: Duration) -> bool {
        let checked = self.inner.checked.lock().unwrap_or_else(|e| e.into_inner());
        checked.get(name).is_some_and(|at| at.elapsed() < within)
    }

    fn mark_checked(&self, name: Name) {
        let mut checked = self.inner.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.len() >= CHECKED_NAMES && !checked.contains_key(&name) {
            checked.clear();
        }
        checked.insert(name, Instant::now());
    }

    /// Looks `name` up in the background, once at a time per name.
    fn refresh_in_background(&self, name: Name) {
        {
            let mut refreshing = self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if refreshing.len() >= MAX_REFRESHING || !refreshing.insert(name) {
                return;
            }
        }
        /// Takes the name out of the set however the lookup ends.
        struct Done(Names, Name);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0
                    .inner
                    .refreshing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&self.1);
            }
        }
        let done = Done(self.clone(), name);
        tokio::spawn(async move {
            done.0.lookup(name).await;
            drop(done);
        });
    }

    /// Stores this node's names and its mirrors' names again, now and then,
    /// and sweeps expired records from the table.
    async fn republish_periodically(self, lifecycle: Lifecycle) {
        loop {
            tokio::select! {
                () = lifecycle.stopping() => return,
                () = tokio::time::sleep(self.inner.settings.republish_every) => {}
            }
            self.republish().await;
        }
    }

    /// One round of [`Names::republish_periodically`]. Returns how many
    /// records were stored again.
    pub(crate) async fn republish(&self) -> usize {
        let now = unix_now();
        let store = self.inner.store.clone();
        let swept = crate::files::blocking(move || {
            store.names().retain_records(|_, bytes| {
                NameRecord::from_bytes(bytes).is_ok_and(|record| record.is_live(now))
            })
        })
        .await;
        if let Ok(swept @ 1..) = swept {
            debug!(swept, "dropped expired name records");
        }
        let mut records = Vec::new();
        for mine in self.mine().await.unwrap_or_default() {
            let Some(record) = mine.record else { continue };
            records.push(self.renewed(record, mine.label.as_deref()).await);
        }
        for name in self.mirrored_names().await {
            if let Some(record) = self.held(&name).await {
                records.push(record);
            }
        }
        let mut pushed = 0;
        for record in records {
            let (stored, _) = self.push(&record).await;
            if stored > 0 {
                pushed += 1;
            }
        }
        pushed
    }

    /// `record` of one of this node's names, signed again with a later
    /// expiry (same sequence and target) once half its validity has passed.
    async fn renewed(&self, record: NameRecord, label: Option<&str>) -> NameRecord {
        let validity = self.inner.settings.validity.as_secs();
        let now = unix_now();
        if record.expires_at().saturating_sub(now) > validity / 2 {
            return record;
        }
        let Ok(signer) = NameSigner::new(&self.inner.identity, label) else {
            return record;
        };
        if signer.name() != record.name() {
            // The identity changed under a kept table: not this node's name.
            return record;
        }
        let renewed = signer.sign(
            record.target(),
            record.sequence(),
            record.published_at(),
            now + validity,
        );
        match self.keep(&renewed, u64::MAX).await {
            Ok(held) => held,
            Err(error) => {
                warn!(%error, "cannot keep a renewed name record");
                record
            }
        }
    }
}

/// Whether a lookup cuts slow peers short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grace {
    /// After [`ANSWERS_BEFORE_GRACE`] answers, the rest have
    /// [`STRAGGLERS`] more.
    AfterAnswers,
    /// Every peer has the whole time limit.
    None,
}

/// The newer of two records.
fn newest(a: Option<NameRecord>, b: Option<NameRecord>) -> Option<NameRecord> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.supersedes(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}
