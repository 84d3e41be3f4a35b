//! The [`Store`] handle: opening, and putting, getting and removing shares and
//! stripe records.
//!
//! Long because: the crash-safe write path and checked read path read as one, with their tests.
//!
//! The write path is the heart of the crate's crash safety. A share becomes
//! visible only when its metadata row is committed, and the row is committed
//! only after the body is complete, synced and renamed into place:
//!
//! 1. hash the offered bytes; refuse them unless they are the share named;
//! 2. reserve quota (in memory, so concurrent puts cannot both take the last
//!    free bytes);
//! 3. write the body to `tmp/`, `fsync` it;
//! 4. rename it to `shares/ab/cd/<id>`, `fsync` that folder;
//! 5. commit the metadata row (redb, durable on return), in a transaction
//!    shared with the puts running at the same moment
//!    ([`crate::group_commit`]).
//!
//! A crash after 3 leaves a temp file, after 4 a body without a row; the
//! recovery pass on open deletes both (see [`crate::recovery`]). Removal runs
//! the other way round — row first, then body — so its crash leftover is
//! again a body without a row. Nothing ever needs a row whose body might be
//! missing, except bit rot or a person deleting files, which the reads catch.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kith_base::{ContentId, Lease};
use kith_codec::StripeRecord;
use kith_codec::stripe::MAX_CIPHER_LEN;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::error::{DbContext, Result, StoreError, io_error};
use crate::group_commit::{GroupCommit, Job};
use crate::layout::{Layout, remove_file_if_present};
use crate::open_db::{OpenDbError, guard, open_database};
use crate::quota::{disk_size, free_space};
use crate::recovery::{self, RecoveryReport};
use crate::rows::{record_format, remove_share_rows, write_lease};
use crate::tables::{
    BY_STRIPE, EXPIRY, LEASES, META, META_FORMAT, RECORDS, SCHEMA_VERSION, SHARES, ShareInfo,
    split_stripe_key, stripe_key,
};

/// The largest share the storage format allows: a whole 64 MiB stripe with
/// k = 1. Anything larger is refused before it is hashed or written.
pub const MAX_SHARE_LEN: u64 = MAX_CIPHER_LEN as u64;

/// Page cache redb may use. Metadata rows are ~100 bytes, so 32 MiB keeps
/// the hot part of a million-share store in memory, and stays small enough
/// for a Raspberry Pi (redb's default is 1 GiB).
const DB_CACHE_BYTES: usize = 32 << 20;

/// Number of per-id locks. Puts and removes of different shares run in
/// parallel (their file writes and fsyncs overlap); the same id is
/// serialised so that a put and a remove cannot interleave their file and
/// metadata steps.
const ID_LOCKS: usize = 64;

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most bytes (share bodies plus stripe records) the store will hold.
    /// See [`crate::default_quota`].
    pub quota_bytes: u64,
}

/// What [`Store::put_share`] and [`Store::put_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Newly stored.
    Stored,
    /// The store already held it; nothing changed.
    AlreadyHad,
}

/// How full the store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Bytes held: share bodies plus stripe records.
    pub bytes: u64,
    /// Shares held.
    pub shares: u64,
    /// Stripe records held.
    pub records: u64,
    /// The quota the store was opened with.
    pub quota: u64,
}

impl Usage {
    /// Bytes still free under the quota.
    pub fn free(&self) -> u64 {
        self.quota.saturating_sub(self.bytes)
    }
}

/// A share the store found damaged (and removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptShare {
    /// The share.
    pub id: ContentId,
    /// The stripe it belonged to: the one to repair.
    pub stripe: ContentId,
    /// Its index in that stripe.
    pub index: u8,
}

/// A node's local share store. Cheap to clone; all clones share one
/// database and one quota. Safe to use from many threads: the node calls it
/// through `tokio::task::spawn_blocking`, since every call may block on disk.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.layout.dir)
            .field("usage", &self.usage())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) db: Database,
    quota: u64,
    counters: Mutex<Counters>,
    /// Bytes held per owner (see [`crate::owners`]).
    owners: crate::owners::OwnerBytes,
    id_locks: Vec<Mutex<()>>,
    recovery: RecoveryReport,
    /// Disk space puts leave free (see [`headroom_for`]).
    headroom: u64,
    /// Where share puts commit their metadata rows, together.
    commits: GroupCommit<Committed>,
}

/// How [`Store::put_stripe_share`] keeps a share.
#[derive(Debug, Clone, Copy)]
pub enum Holding<'a> {
    /// For the lease's owner until the lease ends (see
    /// [`Store::put_owned_share`]); the lease is kept as the stripe's.
    Leased(&'a Lease),
    /// As a cached copy, with no owner and no expiry. A lease given is kept
    /// as the stripe's, so that this node can take part in its repair.
    Cached(Option<&'a Lease>),
}

/// The share a put names, and the record to check it against (and store)
/// when the caller has one.
#[derive(Clone, Copy)]
struct ShareTarget<'a> {
    stripe: ContentId,
    index: u8,
    share_id: ContentId,
    record: Option<&'a StripeRecord>,
}

impl ShareTarget<'_> {
    /// A share named by the caller, with no record to check it against.
    fn named(stripe: ContentId, index: u8, share_id: ContentId) -> Self {
        Self {
            stripe,
            index,
            share_id,
            record: None,
        }
    }
}

/// What a share's metadata commit inserted.
#[derive(Debug, Clone, Copy, Default)]
struct Committed {
    /// The share's rows (false: they were there already).
    share: bool,
    /// The stripe's record.
    record: bool,
    /// A cached copy already held was taken over by the put's owner.
    taken_over: bool,
}

/// In-memory totals, rebuilt from the database on open and updated after
/// every commit. `reserved` is quota promised to puts in flight.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    bytes: u64,
    shares: u64,
    records: u64,
    reserved: u64,
}

impl From<&recovery::Totals> for Counters {
    fn from(totals: &recovery::Totals) -> Self {
        Self {
            bytes: totals.bytes,
            shares: totals.shares,
            records: totals.records,
            reserved: 0,
        }
    }
}

/// Quota promised to one put. Dropping it unused gives the bytes back, so
/// every early return releases its reservation.
struct Reservation<'a> {
    counters: &'a Mutex<Counters>,
    bytes: u64,
}

impl Reservation<'_> {
    /// Turns the reservation into stored bytes.
    fn stored(self, share: bool) {
        let mut counters = lock(self.counters);
        counters.reserved -= self.bytes;
        counters.bytes += self.bytes;
        if share {
            counters.shares += 1;
        } else {
            counters.records += 1;
        }
        drop(counters);
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(self.counters).reserved -= self.bytes;
    }
}

/// Where a test wants `put_share` to "crash": stop without any cleanup,
/// leaving the disk exactly as a power cut at that point would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum CrashAt {
    Never,
    /// After the body is written, before its row commits.
    AfterBody,
}

/// The outcome of reading a share and checking it against its id.
enum Loaded {
    Absent,
    Good(Vec<u8>),
    Bad(ShareInfo),
}

/// The group commit's barrier for share bodies: one `syncfs` of the file
/// system holding the store, which makes every body written so far, and
/// the folders naming them, durable with one device flush (a body written
/// in place needs its data, its name and perhaps its new folder synced:
/// three flushes each if done one by one). It also flushes other programs'
/// pending writes on that file system, which costs time on a busy laptop
/// disk but never correctness. The folder is kept open for the store's
/// life: since Linux 5.8, `syncfs` reports a write-back error that
/// happened on the file system since the last call on the same handle.
/// Elsewhere, `sync` of everything does the same.
fn bodies_durable(dir: &Path) -> Result<crate::group_commit::Barrier> {
    let handle = File::open(dir).map_err(|error| io_error("open", dir, error))?;
    let dir = dir.to_owned();
    Ok(Box::new(move || {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let synced = rustix::fs::syncfs(&handle);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let synced = {
            let _ = &handle;
            rustix::fs::sync();
            Ok(())
        };
        synced.map_err(|errno| io_error("sync the file system of", &dir, errno.into()))
    }))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data are plain counters (or nothing) that every critical
    // section leaves consistent, so a panic elsewhere does not poison them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens the store in `dir`, creating it if needed, and runs the recovery
    /// pass that removes whatever a crash left half-done.
    ///
    /// Fails with [`StoreError::Locked`] if another `Store` (in this process
    /// or another) has it open: redb takes an exclusive lock on its file.
    /// Opening takes time proportional to the number of shares (each body
    /// file's length is checked).
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let dir = dir.as_ref();
        let layout = Layout::new(dir);
        layout.create()?;
        let mut builder = redb::Builder::new();
        builder.set_cache_size(DB_CACHE_BYTES);
        let open_error = |error: OpenDbError| match error {
            OpenDbError::Locked { .. } => StoreError::Locked {
                dir: layout.dir.clone(),
            },
            OpenDbError::Damaged { path, detail } => StoreError::DamagedIndex { path, detail },
            OpenDbError::Other { path, source } => crate::error::db_error(&path, source),
        };
        let db = open_database(&layout.db, &builder).map_err(open_error)?;
        // redb may panic on a garbled page the checksums did not cover;
        // the first reads and writes are where it would.
        let (counters, report) = guard(&layout.db, || {
            let fresh = init_tables(&layout, &db)?;
            recovery::recover(&layout, &db, fresh)
        })
        .map_err(open_error)??;
        if report.rebuilt_shares > 0 || report.quarantined > 0 {
            tracing::warn!(
                dir = %layout.dir.display(),
                rebuilt = report.rebuilt_shares,
                quarantined = report.quarantined,
                "the store's index was missing or empty while share bodies were present: \
                 rebuilt it from the bodies (each verified against its id); their stripes, \
                 owners and leases are unknown until peers store them again, and bodies that \
                 failed verification were moved to {}",
                layout.quarantine.display()
            );
        } else if !report.is_clean() {
            tracing::warn!(dir = %layout.dir.display(), ?report, "store recovered from an unclean shutdown");
        }
        let commits = GroupCommit::with_barrier(bodies_durable(&layout.dir)?);
        Ok(Self {
            inner: Arc::new(Inner {
                layout,
                db,
                quota: config.quota_bytes,
                counters: Mutex::new((&counters).into()),
                owners: crate::owners::OwnerBytes::new(counters.owners),
                id_locks: (0..ID_LOCKS).map(|_| Mutex::new(())).collect(),
                recovery: report,
                headroom: headroom_for(disk_size(dir)?),
                commits,
            }),
        })
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.inner.layout.dir
    }

    /// What the recovery pass at open found and removed.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// How full the store is. Never blocks on disk.
    pub fn usage(&self) -> Usage {
        let counters = *lock(&self.inner.counters);
        Usage {
            bytes: counters.bytes,
            shares: counters.shares,
            records: counters.records,
            quota: self.inner.quota,
        }
    }

    /// Bytes of shares held here under `owner`'s leases (puts of its
    /// under way included). Never blocks on disk.
    pub fn owner_bytes(&self, owner: &[u8; 32]) -> u64 {
        self.inner.owners.get(owner)
    }

    /// Every owner's bytes held here, largest first (cached copies, which
    /// have no owner, are not listed). Never blocks on disk.
    pub fn owners_usage(&self) -> Vec<([u8; 32], u64)> {
        self.inner.owners.all()
    }

    /// Moves `len` bytes from owner `from` to owner `to`, after a lease
    /// changed hands outside a put.
    pub(crate) fn owner_moved(&self, from: [u8; 32], to: [u8; 32], len: u64) {
        if from != to {
            self.inner.owners.sub(from, len);
            self.inner.owners.add(to, len);
        }
    }

    /// Stores share `index` of `stripe`, named `share_id`.
    ///
    /// The bytes must hash to `share_id` ([`StoreError::Mismatch`]); if the
    /// store holds the stripe's record, the share must also be the record's
    /// share `index` ([`StoreError::NotInStripe`]). Returns once the share
    /// is durable. A share already held is not rewritten, and keeps the
    /// stripe and index it was first stored under.
    pub fn put_share(
        &self,
        stripe: ContentId,
        index: u8,
        share_id: ContentId,
        bytes: &[u8],
    ) -> Result<PutOutcome> {
        self.put_share_at(stripe, index, share_id, bytes, CrashAt::Never)
    }

    /// Like [`Store::put_share`], and records `owner` (the key of the node
    /// whose lease keeps it; see [`ShareInfo::owner`]) and when that lease
    /// ends in the same transaction. A share already held keeps its owner
    /// and takes the later of the two expiries when the owner is the same;
    /// one held without an owner (a cached copy) takes `owner` and
    /// `expires_at`.
    pub fn put_owned_share(
        &self,
        stripe: ContentId,
        index: u8,
        share_id: ContentId,
        bytes: &[u8],
        owner: [u8; 32],
        expires_at: Option<u64>,
    ) -> Result<PutOutcome> {
        self.put_share_inner(
            ShareTarget::named(stripe, index, share_id),
            bytes,
            (owner, expires_at),
            None,
            CrashAt::Never,
            u64::MAX,
        )
    }

    /// Stores share `index` of `record`'s stripe together with the record
    /// and, when there is one, the stripe's lease, in **one** metadata
    /// commit, which concurrent puts share (group commit: `docs/store.md`).
    /// This is what a holder does with every share it accepts.
    ///
    /// The bytes must be the record's share `index` ([`StoreError::Mismatch`]
    /// if they do not hash to its id, [`StoreError::NotInStripe`] if the
    /// index or length is wrong). With [`Holding::Leased`], the share is the
    /// lease owner's until the lease ends, as [`Store::put_owned_share`]
    /// says; with [`Holding::Cached`] it is an ownerless cached copy. A
    /// lease is kept as the stripe's lease ([`Store::stripe_lease`]) unless
    /// the store keeps one that ends later. Quota is reserved for the share
    /// and the record before anything is written, so a refused put leaves
    /// nothing behind.
    pub fn put_stripe_share(
        &self,
        record: &StripeRecord,
        index: u8,
        bytes: &[u8],
        holding: Holding<'_>,
    ) -> Result<PutOutcome> {
        self.put_stripe_share_capped(record, index, bytes, holding, u64::MAX)
    }

    /// [`Store::put_stripe_share`] for a peer: refused with
    /// [`StoreError::PeerShareExceeded`] if the share's owner (the lease's)
    /// would then hold more than `owner_cap` bytes here, counting its
    /// shares held and those being stored. A share the owner holds here
    /// already is never refused; a cached copy it takes over counts.
    pub fn put_stripe_share_capped(
        &self,
        record: &StripeRecord,
        index: u8,
        bytes: &[u8],
        holding: Holding<'_>,
        owner_cap: u64,
    ) -> Result<PutOutcome> {
        let stripe = record.id();
        let share_id = match record.share_ids().get(usize::from(index)) {
            Some(id) => *id,
            None => {
                return Err(StoreError::NotInStripe {
                    stripe,
                    index,
                    share: ContentId::of(bytes),
                });
            }
        };
        let (owner, expires_at, lease) = match holding {
            Holding::Leased(lease) => (lease.owner(), Some(lease.expires_at()), Some(*lease)),
            Holding::Cached(lease) => ([0; 32], None, lease.copied()),
        };
        self.put_share_inner(
            ShareTarget {
                stripe,
                index,
                share_id,
                record: Some(record),
            },
            bytes,
            (owner, expires_at),
            lease,
            CrashAt::Never,
            owner_cap,
        )
    }

    pub(crate) fn put_share_at(
        &self,
        stripe: ContentId,
        index: u8,
        share_id: ContentId,
        bytes: &[u8],
        crash: CrashAt,
    ) -> Result<PutOutcome> {
        self.put_share_inner(
            ShareTarget::named(stripe, index, share_id),
            bytes,
            ([0; 32], None),
            None,
            crash,
            u64::MAX,
        )
    }

    fn put_share_inner(
        &self,
        target: ShareTarget<'_>,
        bytes: &[u8],
        (owner, expires_at): ([u8; 32], Option<u64>),
        lease: Option<Lease>,
        crash: CrashAt,
        owner_cap: u64,
    ) -> Result<PutOutcome> {
        let ShareTarget {
            stripe,
            index,
            share_id,
            record,
        } = target;
        let len = bytes.len() as u64;
        if len > MAX_SHARE_LEN {
            return Err(StoreError::TooLarge {
                len,
                max: MAX_SHARE_LEN,
            });
        }
        let actual = ContentId::of(bytes);
        if actual != share_id {
            return Err(StoreError::Mismatch {
                expected: share_id,
                actual,
            });
        }
        let not_in_stripe = StoreError::NotInStripe {
            stripe,
            index,
            share: share_id,
        };
        // The hash is checked above; a given record needs only its length.
        if record.is_some_and(|record| u64::from(record.share_len()) != len) {
            return Err(not_in_stripe);
        }
        let _id_lock = self.lock_id(&share_id);
        let (had_share, unattached, had_record, held_owner) = {
            let txn = self.read_txn()?;
            let db = self.db_path();
            let held = txn
                .open_table(SHARES)
                .db(db)?
                .get(share_id.as_bytes())
                .db(db)?
                .map(|row| ShareInfo::decode(row.value()));
            let had_share = held.is_some();
            // Held, but rebuilt from its body with no stripe: this put
            // attaches it to the stripe it names.
            let unattached = held.is_some_and(|info| info.is_some_and(|info| !info.stripe_known()));
            let stored_record = txn
                .open_table(RECORDS)
                .db(db)?
                .get(stripe.as_bytes())
                .db(db)?
                .map(|row| row.value().to_vec());
            if record.is_none()
                && (!had_share || unattached)
                && let Some(stored) = stored_record.as_deref()
                && let Ok(stored) = StripeRecord::from_bytes(stored)
                && stored.verify_share(usize::from(index), bytes).is_err()
            {
                return Err(not_in_stripe);
            }
            let held_owner = held.flatten().map(|info| info.owner);
            (had_share, unattached, stored_record.is_some(), held_owner)
        };
        if had_share && !unattached && record.is_none() && lease.is_none() && owner == [0; 32] {
            // Nothing to write at all.
            return Ok(PutOutcome::AlreadyHad);
        }
        let record_bytes = record.filter(|_| !had_record).map(StripeRecord::to_bytes);
        let share_reservation = if had_share {
            None
        } else {
            Some(self.reserve(len)?)
        };
        let record_reservation = match &record_bytes {
            Some(bytes) => Some(self.reserve(bytes.len() as u64)?),
            None => None,
        };
        // The owner's bytes grow with a new share, or with a cached copy
        // (held for nobody) it takes over; then its cap applies (after the
        // quota: a full store says it is full).
        let owner_gains = owner != crate::owners::NO_OWNER
            && (!had_share || held_owner == Some(crate::owners::NO_OWNER));
        let owner_reservation = if owner_gains {
            Some(self.inner.owners.reserve(owner, len, owner_cap)?)
        } else {
            None
        };

        let body = if had_share {
            None
        } else {
            let body = self.write_body(&share_id, bytes)?;
            if crash == CrashAt::AfterBody {
                return Ok(PutOutcome::Stored);
            }
            Some(body)
        };

        let info = ShareInfo {
            stripe,
            index,
            len,
            owner,
            expires_at,
        };
        let job = share_rows_job(
            self.db_path().to_owned(),
            share_id,
            info,
            body.is_some(),
            record_bytes,
            lease,
        );
        // A new body must be durable before its row commits: the commit's
        // barrier (one syncfs for the whole batch) makes it so.
        let committed = if body.is_some() {
            self.inner
                .commits
                .commit_after_barrier(&self.inner.db, self.db_path(), job)
        } else {
            self.inner
                .commits
                .commit(&self.inner.db, self.db_path(), job)
        };
        match committed {
            Ok(committed) => {
                if committed.share
                    && let Some(reservation) = share_reservation
                {
                    reservation.stored(true);
                }
                if committed.record
                    && let Some(reservation) = record_reservation
                {
                    reservation.stored(false);
                }
                if (committed.share || committed.taken_over)
                    && let Some(reservation) = owner_reservation
                {
                    reservation.keep();
                }
                // A row already there cannot happen while we hold the id
                // lock; if it did, the body written over the old one has
                // the same bytes, so all is well.
                Ok(if committed.share {
                    PutOutcome::Stored
                } else {
                    PutOutcome::AlreadyHad
                })
            }
            Err(error) => {
                // No row points at the body: remove it so that nothing is
                // half there even before the next recovery pass.
                if let Some(body) = body
                    && let Err(cleanup) = remove_file_if_present(&body)
                {
                    tracing::warn!(%cleanup, "could not remove an uncommitted share body");
                }
                Err(error)
            }
        }
    }

    /// Writes `bytes` as share `id`'s body, in place and not yet synced:
    /// the group commit's barrier makes it durable before its row commits.
    /// Until then no row points at it, so nothing reads it; a crash before
    /// the commit leaves a body without a row, which the recovery pass
    /// deletes (a half-written one included). On failure the partial body is
    /// removed.
    fn write_body(&self, id: &ContentId, bytes: &[u8]) -> Result<PathBuf> {
        let layout = &self.inner.layout;
        let dir = layout.body_dir(id);
        let body = layout.body_path(id);
        let written = fs::create_dir_all(&dir)
            .and_then(|()| File::create(&body))
            .and_then(|mut file| file.write_all(bytes));
        match written {
            Ok(()) => Ok(body),
            Err(error) => {
                let _ = fs::remove_file(&body);
                Err(io_error("write", &body, error))
            }
        }
    }

    /// The bytes of share `id`, checked against the id; `None` if the store
    /// does not hold it.
    ///
    /// If the bytes on disk are damaged, the share is removed and
    /// [`StoreError::Corrupt`] names it and its stripe, so the caller can
    /// repair the stripe. Wrong bytes are never returned.
    pub fn get_share(&self, id: &ContentId) -> Result<Option<Vec<u8>>> {
        match self.load(id)? {
            Loaded::Absent => Ok(None),
            Loaded::Good(bytes) => Ok(Some(bytes)),
            Loaded::Bad(_) => match self.confirm_corrupt(id)? {
                Ok(bytes) => Ok(bytes),
                Err(corrupt) => Err(StoreError::Corrupt {
                    id: corrupt.id,
                    stripe: corrupt.stripe,
                    index: corrupt.index,
                }),
            },
        }
    }

    /// Reads a share and checks its length and hash.
    fn load(&self, id: &ContentId) -> Result<Loaded> {
        let Some(info) = self.share_info(id)? else {
            return Ok(Loaded::Absent);
        };
        let path = self.inner.layout.body_path(id);
        let read = File::open(&path).and_then(|file| {
            if file.metadata()?.len() != info.len {
                return Ok(None);
            }
            let mut bytes = Vec::with_capacity(info.len as usize);
            file.take(info.len).read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        });
        match read {
            Ok(Some(bytes)) if bytes.len() as u64 == info.len && id.verifies(&bytes) => {
                Ok(Loaded::Good(bytes))
            }
            Ok(_) => Ok(Loaded::Bad(info)),
            // A missing body, or a disk that cannot read it (EIO), is as lost
            // as a damaged one.
            Err(error)
                if error.kind() == io::ErrorKind::NotFound
                    || error.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                Ok(Loaded::Bad(info))
            }
            Err(error) => Err(io_error("read", &path, error)),
        }
    }

    /// A read found share `id` damaged. Under its lock (a concurrent remove
    /// or put may explain what we saw), read it again; if it is still bad,
    /// remove it. Returns the good bytes (or `None` if it vanished), or the
    /// share that was removed.
    fn confirm_corrupt(&self, id: &ContentId) -> Result<Result<Option<Vec<u8>>, CorruptShare>> {
        let _id_lock = self.lock_id(id);
        match self.load(id)? {
            Loaded::Absent => Ok(Ok(None)),
            Loaded::Good(bytes) => Ok(Ok(Some(bytes))),
            Loaded::Bad(info) => {
                tracing::warn!(share = %id, stripe = %info.stripe, index = info.index,
                    "share damaged on disk; removing it");
                self.remove_locked(id)?;
                Ok(Err(CorruptShare {
                    id: *id,
                    stripe: info.stripe,
                    index: info.index,
                }))
            }
        }
    }

    /// For each id, whether the store holds that share (metadata only: the
    /// bytes are checked when read).
    pub fn has_shares(&self, ids: &[ContentId]) -> Result<Vec<bool>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let shares = txn.open_table(SHARES).db(db)?;
        ids.iter()
            .map(|id| Ok(shares.get(id.as_bytes()).db(db)?.is_some()))
            .collect()
    }

    /// What the store knows about share `id` besides its bytes.
    pub fn share_info(&self, id: &ContentId) -> Result<Option<ShareInfo>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let shares = txn.open_table(SHARES).db(db)?;
        let row = shares.get(id.as_bytes()).db(db)?;
        Ok(row.and_then(|row| ShareInfo::decode(row.value())))
    }

    /// Removes share `id`. Returns whether the store held it.
    pub fn remove_share(&self, id: &ContentId) -> Result<bool> {
        let _id_lock = self.lock_id(id);
        Ok(self.remove_locked(id)?.is_some())
    }

    /// Removes a share's rows, then its body (the caller holds its id
    /// lock). A crash in between leaves a body without a row, which the
    /// recovery pass deletes.
    fn remove_locked(&self, id: &ContentId) -> Result<Option<ShareInfo>> {
        let db = self.db_path();
        let txn = self.write_txn()?;
        let removed = remove_share_rows(&txn, db, id)?;
        txn.commit().db(db)?;
        if let Some(info) = removed {
            remove_file_if_present(&self.inner.layout.body_path(id))?;
            let mut counters = lock(&self.inner.counters);
            counters.bytes = counters.bytes.saturating_sub(info.len);
            counters.shares = counters.shares.saturating_sub(1);
            drop(counters);
            self.inner.owners.sub(info.owner, info.len);
        }
        Ok(removed)
    }

    /// The shares of `stripe` the store holds, as (index, id), by index.
    pub fn shares_of_stripe(&self, stripe: &ContentId) -> Result<Vec<(u8, ContentId)>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let table = txn.open_table(BY_STRIPE).db(db)?;
        let low = stripe_key(stripe, 0, &ContentId::from_bytes([0; 32]));
        let high = stripe_key(stripe, u8::MAX, &ContentId::from_bytes([0xff; 32]));
        let mut out = Vec::new();
        for entry in table.range::<&[u8; 65]>(&low..=&high).db(db)? {
            let (key, _) = entry.db(db)?;
            let (_, index, share) = split_stripe_key(key.value());
            out.push((index, share));
        }
        Ok(out)
    }

    /// Stores a stripe record (named by its hash, the stripe id).
    pub fn put_record(&self, record: &StripeRecord) -> Result<PutOutcome> {
        let bytes = record.to_bytes();
        let stripe = ContentId::of(&bytes);
        let db = self.db_path();
        {
            let txn = self.read_txn()?;
            let records = txn.open_table(RECORDS).db(db)?;
            if records.get(stripe.as_bytes()).db(db)?.is_some() {
                return Ok(PutOutcome::AlreadyHad);
            }
        }
        let reservation = self.reserve(bytes.len() as u64)?;
        let txn = self.write_txn()?;
        let existed = txn
            .open_table(RECORDS)
            .db(db)?
            .insert(stripe.as_bytes(), bytes.as_slice())
            .db(db)?
            .is_some();
        txn.commit().db(db)?;
        if existed {
            // A concurrent put of the same record won; it counted the bytes.
            return Ok(PutOutcome::AlreadyHad);
        }
        reservation.stored(false);
        Ok(PutOutcome::Stored)
    }

    /// The record of `stripe`, checked against the stripe id; `None` if the
    /// store does not hold it. A damaged record is removed and reported as
    /// [`StoreError::CorruptRecord`].
    pub fn get_record(&self, stripe: &ContentId) -> Result<Option<StripeRecord>> {
        let db = self.db_path();
        let bytes = {
            let txn = self.read_txn()?;
            let records = txn.open_table(RECORDS).db(db)?;
            let Some(row) = records.get(stripe.as_bytes()).db(db)? else {
                return Ok(None);
            };
            row.value().to_vec()
        };
        if stripe.verifies(&bytes)
            && let Ok(record) = StripeRecord::from_bytes(&bytes)
        {
            return Ok(Some(record));
        }
        tracing::warn!(%stripe, "stripe record damaged; removing it");
        self.remove_record_if(stripe, Some(&bytes))?;
        Err(StoreError::CorruptRecord { stripe: *stripe })
    }

    /// Removes the record of `stripe`, and the lease kept for it. Returns
    /// whether the store held the record.
    pub fn remove_record(&self, stripe: &ContentId) -> Result<bool> {
        self.remove_record_if(stripe, None)
    }

    /// Removes a record, only if it still has `expected` bytes when given
    /// (a damaged record may have been replaced by a good one meanwhile).
    fn remove_record_if(&self, stripe: &ContentId, expected: Option<&[u8]>) -> Result<bool> {
        let db = self.db_path();
        let txn = self.write_txn()?;
        let removed = {
            let mut records = txn.open_table(RECORDS).db(db)?;
            let current = records
                .get(stripe.as_bytes())
                .db(db)?
                .map(|row| row.value().to_vec());
            match current {
                Some(bytes) if expected.is_none_or(|expected| expected == bytes.as_slice()) => {
                    records.remove(stripe.as_bytes()).db(db)?;
                    Some(bytes.len() as u64)
                }
                _ => None,
            }
        };
        if expected.is_none() {
            // Removed on purpose (not for damage): the stripe's lease goes
            // with it.
            txn.open_table(LEASES)
                .db(db)?
                .remove(stripe.as_bytes())
                .db(db)?;
        }
        txn.commit().db(db)?;
        if let Some(len) = removed {
            let mut counters = lock(&self.inner.counters);
            counters.bytes = counters.bytes.saturating_sub(len);
            counters.records = counters.records.saturating_sub(1);
        }
        Ok(removed.is_some())
    }

    /// Up to `limit` stripe ids the store knows (holds a record or at least
    /// one share of), in id order, strictly after `after`. Pass the last id
    /// of a page as `after` to get the next page; an empty page is the end.
    pub fn list_stripes(&self, after: Option<&ContentId>, limit: usize) -> Result<Vec<ContentId>> {
        let db = self.db_path();
        let txn = self.read_txn()?;
        let mut from_records = Vec::new();
        {
            let records = txn.open_table(RECORDS).db(db)?;
            let range = match after {
                Some(after) => records.range::<&[u8; 32]>((
                    std::ops::Bound::Excluded(after.as_bytes()),
                    std::ops::Bound::Unbounded,
                )),
                None => records.range::<&[u8; 32]>(..),
            };
            for entry in range.db(db)?.take(limit) {
                let (key, _) = entry.db(db)?;
                from_records.push(ContentId::from_bytes(*key.value()));
            }
        }
        let mut from_shares: Vec<ContentId> = Vec::new();
        {
            let table = txn.open_table(BY_STRIPE).db(db)?;
            let start =
                after.map(|after| stripe_key(after, u8::MAX, &ContentId::from_bytes([0xff; 32])));
            let range = match &start {
                Some(start) => table.range::<&[u8; 65]>((
                    std::ops::Bound::Excluded(start),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&[u8; 65]>(..),
            };
            for entry in range.db(db)? {
                let (key, _) = entry.db(db)?;
                let (stripe, _, _) = split_stripe_key(key.value());
                if from_shares.last() != Some(&stripe) {
                    if from_shares.len() == limit {
                        break;
                    }
                    from_shares.push(stripe);
                }
            }
        }
        // Each list holds its first `limit` stripes, so their merge holds the
        // first `limit` of the union.
        from_records.extend(from_shares);
        from_records.sort_unstable();
        from_records.dedup();
        from_records.truncate(limit);
        Ok(from_records)
    }

    /// Promises `needed` bytes of quota to a put, or refuses: past the
    /// quota, or when the disk itself would be left with less than the
    /// headroom the metadata database needs.
    fn reserve(&self, needed: u64) -> Result<Reservation<'_>> {
        let free_disk = free_space(&self.inner.layout.dir)?;
        if free_disk < needed.saturating_add(self.inner.headroom) {
            return Err(StoreError::DiskFull {
                path: self.inner.layout.dir.clone(),
            });
        }
        let mut counters = lock(&self.inner.counters);
        let quota = self.inner.quota;
        let used = counters.bytes + counters.reserved;
        if used.saturating_add(needed) > quota {
            return Err(StoreError::QuotaExceeded {
                needed,
                free: quota.saturating_sub(used),
                quota,
            });
        }
        counters.reserved += needed;
        Ok(Reservation {
            counters: &self.inner.counters,
            bytes: needed,
        })
    }

    fn lock_id(&self, id: &ContentId) -> MutexGuard<'_, ()> {
        lock(&self.inner.id_locks[usize::from(id.as_bytes()[0]) % ID_LOCKS])
    }

    pub(crate) fn db_path(&self) -> &Path {
        &self.inner.layout.db
    }

    pub(crate) fn read_txn(&self) -> Result<ReadTransaction> {
        self.inner.db.begin_read().db(self.db_path())
    }

    pub(crate) fn write_txn(&self) -> Result<WriteTransaction> {
        self.inner.db.begin_write().db(self.db_path())
    }
}

/// Disk space a put must leave free: 1% of the file system, between
/// 256 KiB and 64 MiB.
///
/// Without it, the store's own body writes could fill the disk to the last
/// byte, and the next metadata commit — even one that removes a share, since
/// redb copies pages on write — would fail with ENOSPC. redb then refuses
/// every write until the database is reopened, so a node could not free
/// space without a restart. The headroom keeps our own writes from getting
/// there; another program filling the disk still can (see
/// [`StoreError::DatabaseStopped`]).
fn headroom_for(disk_size: u64) -> u64 {
    (disk_size / 100).clamp(256 << 10, 64 << 20)
}

/// Deletes a share's row and its index entries inside `txn`; returns what
/// the row said, if there was one.
/// Whether expiry `new` is later than `old` (`None` = never, the latest).
/// The metadata write of a share put, run by the group commit (so it may
/// run twice, and only writes to its transaction):
///
/// - a share whose body was just written gets its rows (`shares`,
///   `by_stripe`, `expiry`), unless they are already there;
/// - a share already held with no stripe known (rebuilt from its body
///   after the index was lost) is attached to `info`'s stripe and index;
/// - a share already held that was cached (no owner) is taken over by
///   `info.owner`, and one already the owner's takes the later expiry;
/// - the stripe record is inserted if given and absent;
/// - the lease is kept as the stripe's unless the kept one ends later.
fn share_rows_job(
    db: PathBuf,
    id: ContentId,
    info: ShareInfo,
    body_written: bool,
    record: Option<Vec<u8>>,
    lease: Option<Lease>,
) -> Job<Committed> {
    Box::new(move |txn: &WriteTransaction| {
        let db = db.as_path();
        let mut committed = Committed::default();
        {
            let mut shares = txn.open_table(SHARES).db(db)?;
            let held = shares
                .get(id.as_bytes())
                .db(db)?
                .and_then(|row| ShareInfo::decode(row.value()));
            match held {
                None if body_written => {
                    shares
                        .insert(id.as_bytes(), info.encode().as_slice())
                        .db(db)?;
                    txn.open_table(BY_STRIPE)
                        .db(db)?
                        .insert(&stripe_key(&info.stripe, info.index, &id), ())
                        .db(db)?;
                    if let Some(at) = info.expires_at {
                        txn.open_table(EXPIRY)
                            .db(db)?
                            .insert((at, id.as_bytes()), ())
                            .db(db)?;
                    }
                    committed.share = true;
                }
                // Not held and not written: removed under us, which the id
                // lock rules out; there is nothing to lease.
                None => {}
                Some(mut held) => {
                    if !held.stripe_known() && info.stripe_known() {
                        held.stripe = info.stripe;
                        held.index = info.index;
                        shares
                            .insert(id.as_bytes(), held.encode().as_slice())
                            .db(db)?;
                        txn.open_table(BY_STRIPE)
                            .db(db)?
                            .insert(&stripe_key(&held.stripe, held.index, &id), ())
                            .db(db)?;
                    }
                    let cached = held.owner == [0; 32];
                    let extended =
                        held.owner == info.owner && later(info.expires_at, held.expires_at);
                    if info.owner != [0; 32] && (cached || extended) {
                        committed.taken_over = cached;
                        write_lease(
                            txn,
                            db,
                            &mut shares,
                            &id,
                            &mut held,
                            info.owner,
                            info.expires_at,
                        )?;
                    }
                }
            }
        }
        if let Some(bytes) = &record {
            let mut records = txn.open_table(RECORDS).db(db)?;
            if records.get(info.stripe.as_bytes()).db(db)?.is_none() {
                records
                    .insert(info.stripe.as_bytes(), bytes.as_slice())
                    .db(db)?;
                committed.record = true;
            }
        }
        if let Some(lease) = &lease {
            let mut leases = txn.open_table(LEASES).db(db)?;
            let newer = match leases.get(lease.stripe().as_bytes()).db(db)? {
                Some(kept) => Lease::from_bytes(kept.value())
                    .map_or(true, |kept| kept.expires_at() < lease.expires_at()),
                None => true,
            };
            if newer {
                leases
                    .insert(lease.stripe().as_bytes(), lease.as_bytes().as_slice())
                    .db(db)?;
            }
        }
        Ok(committed)
    })
}

fn later(new: Option<u64>, old: Option<u64>) -> bool {
    match (new, old) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(new), Some(old)) => new > old,
    }
}

/// Creates the tables (so that read transactions can open them, the
/// node's included) and checks the schema version. Returns true if the
/// database is fresh (no version yet): just created, or replaced by an
/// empty one, or a rebuild from the bodies was cut short. The recovery pass
/// records the version once it has rebuilt the index, so a crash during the
/// rebuild makes the next open rebuild again rather than take the bodies
/// for orphans.
///
/// A version above [`SCHEMA_VERSION`] is [`StoreError::NewerSchema`], and
/// the file is left untouched. An older one is upgraded in this same
/// transaction (every schema change so far only adds tables).
fn init_tables(layout: &Layout, db: &Database) -> Result<bool> {
    let path = &layout.db;
    let found = {
        let txn = db.begin_read().db(path)?;
        match txn.open_table(META) {
            Ok(meta) => meta
                .get(META_FORMAT)
                .db(path)?
                .map(|row| crate::tables::decode_schema(row.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(crate::error::db_error(path, error)),
        }
    };
    if let Some(found) = found
        && found > SCHEMA_VERSION
    {
        return Err(StoreError::NewerSchema {
            path: path.clone(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let txn = db.begin_write().db(path)?;
    txn.open_table(SHARES).db(path)?;
    txn.open_table(BY_STRIPE).db(path)?;
    txn.open_table(RECORDS).db(path)?;
    txn.open_table(EXPIRY).db(path)?;
    txn.open_table(LEASES).db(path)?;
    txn.open_table(META).db(path)?;
    crate::messages::create_tables(&txn, path)?;
    crate::owned::create_tables(&txn, path)?;
    crate::names::create_tables(&txn, path)?;
    crate::feeds::create_tables(&txn, path)?;
    if found.is_some_and(|found| found < SCHEMA_VERSION) {
        record_format(&txn, path)?;
    }
    txn.commit().db(path)?;
    Ok(found.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Store {
        Store::open(
            dir,
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap()
    }

    /// Writes schema version `version` into the store in `dir` (closed).
    fn set_schema(dir: &Path, version: u32) {
        let db = Database::create(dir.join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(
                META_FORMAT,
                crate::tables::encode_schema(version).as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }

    fn schema(dir: &Path) -> u32 {
        let db = Database::create(dir.join("store.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        crate::tables::decode_schema(meta.get(META_FORMAT).unwrap().unwrap().value())
    }

    #[test]
    fn a_newer_schema_is_refused_naming_the_file_and_an_older_one_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let share = b"kept across the upgrade".to_vec();
        let id = ContentId::of(&share);
        let stripe = ContentId::of(b"stripe");
        open(dir.path()).put_share(stripe, 0, id, &share).unwrap();
        assert_eq!(schema(dir.path()), SCHEMA_VERSION);

        set_schema(dir.path(), SCHEMA_VERSION + 1);
        let error = Store::open(
            dir.path(),
            StoreConfig {
                quota_bytes: 1 << 20,
            },
        )
        .unwrap_err();
        let file = dir.path().join("store.redb");
        assert!(
            matches!(&error, StoreError::NewerSchema { path, found, supported }
                if *path == file && *found == SCHEMA_VERSION + 1 && *supported == SCHEMA_VERSION),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{} was written by a newer kith (schema {}, this one reads up to {}); upgrade kith",
                file.display(),
                SCHEMA_VERSION + 1,
                SCHEMA_VERSION
            )
        );
        // Refusing changed nothing.
        assert_eq!(schema(dir.path()), SCHEMA_VERSION + 1);

        // Schema 1 (the share tables only) opens, keeps its shares, and is
        // upgraded: the node's tables are there and the version is current.
        set_schema(dir.path(), 1);
        let store = open(dir.path());
        assert_eq!(store.get_share(&id).unwrap(), Some(share));
        assert_eq!(store.recovery_report().rebuilt_shares, 0);
        assert_eq!(store.owned_files().due(u64::MAX).unwrap(), vec![]);
        assert_eq!(
            store.messages(dir.path().join("seq")).mail_held().unwrap(),
            (0, 0)
        );
        drop(store);
        assert_eq!(schema(dir.path()), SCHEMA_VERSION);
    }

    #[test]
    fn a_crash_at_each_step_of_put_leaves_nothing_half_there() {
        let stripe = ContentId::of(b"stripe");
        let kept = b"stored before the crash".to_vec();
        let kept_id = ContentId::of(&kept);
        let lost = b"being stored when the power went".to_vec();
        let lost_id = ContentId::of(&lost);
        for half_written in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::new(dir.path());
            {
                let store = open(dir.path());
                store.put_share(stripe, 0, kept_id, &kept).unwrap();
                store
                    .put_share_at(stripe, 1, lost_id, &lost, CrashAt::AfterBody)
                    .unwrap();
                // The disk now looks as a power cut between the body's
                // write and its commit can leave it: the body there whole,
                // or only part of it.
                let body = layout.body_path(&lost_id);
                assert!(body.exists());
                if half_written {
                    fs::write(&body, &lost[..lost.len() / 2]).unwrap();
                }
            }
            let store = open(dir.path());
            let report = *store.recovery_report();
            assert_eq!(report.orphan_bodies, 1, "{report:?}");
            assert_eq!(fs::read_dir(&layout.tmp).unwrap().count(), 0);
            assert!(!layout.body_path(&lost_id).exists());
            assert_eq!(store.get_share(&lost_id).unwrap(), None);
            assert_eq!(
                store.has_shares(&[kept_id, lost_id]).unwrap(),
                vec![true, false]
            );
            assert_eq!(store.get_share(&kept_id).unwrap(), Some(kept.clone()));
            assert_eq!(store.shares_of_stripe(&stripe).unwrap(), vec![(0, kept_id)]);
            assert_eq!(store.usage().bytes, kept.len() as u64);
            // The sender retries, and this time it works.
            assert_eq!(
                store.put_share(stripe, 1, lost_id, &lost).unwrap(),
                PutOutcome::Stored
            );
            assert_eq!(store.get_share(&lost_id).unwrap(), Some(lost.clone()));
        }
    }

    #[test]
    fn a_failed_put_releases_its_reservation_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let bytes = vec![1u8; 1000];
        let id = ContentId::of(&bytes);
        // Writing the body fails: a file stands where its folder goes.
        let folder = store.inner.layout.body_dir(&id);
        fs::create_dir_all(folder.parent().unwrap()).unwrap();
        fs::write(&folder, b"in the way").unwrap();
        let error = store.put_share(id, 0, id, &bytes).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Io {
                    action: "write",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(lock(&store.inner.counters).reserved, 0);
        assert_eq!(store.usage().bytes, 0);
        assert!(!store.inner.layout.body_path(&id).exists());
        fs::remove_file(&folder).unwrap();
        store.put_share(id, 0, id, &bytes).unwrap();
        let counters = *lock(&store.inner.counters);
        assert_eq!((counters.reserved, counters.bytes), (0, 1000));
    }
}
