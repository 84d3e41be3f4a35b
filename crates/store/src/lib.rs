//! kith's local share store: the bytes a node holds for the network.
//!
//! # Modules
//!
//! Dependencies point one way, down this table's groups: the `Store`
//! modules use the leaves, never the reverse.
//!
//! | module | what it is for |
//! |---|---|
//! | `store` | the [`Store`] handle: open, put, get and remove shares and stripe records (the crash-safe write path) |
//! | `lease` | more `Store` methods: who leased a share and until when, the stripes' signed leases, expiry |
//! | `scrub` | more `Store` methods: the background re-reading that finds bit rot ([`Store::scrub_step`]) |
//! | `recovery` | the pass run on open that clears what a crash left, and rebuilds a lost index from the bodies ([`RecoveryReport`]) |
//! | `group_commit` | concurrent metadata writes sharing one redb transaction |
//! | `rows` | leaf: edits of share rows and their indexes inside one transaction, used by `store`, `lease` and `recovery` |
//! | `tables` | leaf: the redb tables and the byte layout of a share row ([`ShareInfo`]) |
//! | `layout` | leaf: where files live in the store folder; durable create and rename |
//! | `quota` | leaf: the default quota and free disk space |
//! | `owners` | leaf: bytes held per owner (peer), for the per-peer share of the quota |
//! | [`open_db`] | leaf: opening any redb file so that damage is a typed error, not a panic |
//! | `error` | leaf: [`StoreError`], the one error type |
//! | `fuzzing` | doors to private row codecs for `fuzz/` (hidden) |
//!
//! # The store
//!
//! A storage node keeps *shares* (opaque ciphertext, named by the BLAKE3
//! hash of its bytes) and the public *stripe records* that say which shares
//! make up a stripe. This crate keeps them on local disk so that:
//!
//! - a share is either fully present and verified, or absent — after any
//!   crash (the write order and the recovery pass on open see to it);
//! - every read is checked against the share's id, so a damaged disk yields
//!   a typed [`StoreError::Corrupt`] naming the stripe to repair, never
//!   wrong bytes;
//! - peers cannot fill the disk past the quota, and a full disk is reported
//!   as [`StoreError::DiskFull`] with nothing left half-written;
//! - a background [`Store::scrub_step`] finds bit rot at a bounded rate, and
//!   leases say when a share may be dropped.
//!
//! Share bodies are plain files (`shares/ab/cd/<id>`), metadata lives in
//! [redb](https://docs.rs/redb). The same database holds the node's own
//! tables — its [`messages`] and the files it [`owned`] — so that a data
//! folder has one database, with one schema version
//! ([`SCHEMA_VERSION`]) checked at open. `docs/store.md` explains the layout, the
//! crash-safety argument and the measurement behind "bodies as files".
//!
//! The API is synchronous; the node calls it through
//! `tokio::task::spawn_blocking`. [`Store`] is a cheap, cloneable handle.
//!
//! ```
//! use kith_base::ContentId;
//! use kith_store::{PutOutcome, Store, StoreConfig, StoreError};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), StoreConfig { quota_bytes: 1 << 20 })?;
//! let stripe = ContentId::of(b"some stripe record");
//! let share = b"opaque ciphertext".to_vec();
//! let id = ContentId::of(&share);
//!
//! assert_eq!(store.put_share(stripe, 0, id, &share)?, PutOutcome::Stored);
//! assert_eq!(store.get_share(&id)?, Some(share));
//! assert_eq!(store.shares_of_stripe(&stripe)?, vec![(0, id)]);
//!
//! // Bytes that are not the share named are refused.
//! assert!(matches!(
//!     store.put_share(stripe, 1, id, b"something else"),
//!     Err(StoreError::Mismatch { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod feeds;
#[doc(hidden)]
pub mod fuzzing;
mod group_commit;
mod layout;
mod lease;
mod legacy;
pub mod messages;
pub mod names;
pub mod open_db;
pub mod owned;
mod owners;
mod quota;
mod recovery;
mod rows;
mod scrub;
mod store;
mod tables;

pub use error::{Result, StoreError};
pub use feeds::{EntryDecision, FeedTables, ReplyDecision, ReplyKey, ReplyLimits};
pub use kith_base::ContentId;
pub use legacy::{ImportError, Imported};
pub use names::{NameTables, RecordPut};
pub use open_db::OpenDbError;
pub use quota::{DEFAULT_QUOTA_CAP, DEFAULT_QUOTA_DIVISOR, default_quota, free_space};
pub use recovery::RecoveryReport;
pub use scrub::ScrubReport;
pub use store::{CorruptShare, Holding, MAX_SHARE_LEN, PutOutcome, Store, StoreConfig, Usage};
pub use tables::{SCHEMA_VERSION, ShareInfo, UNKNOWN_STRIPE};
