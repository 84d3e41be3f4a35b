//! The redb tables that hold the store's metadata, and the byte layout of a
//! share's row.
//!
//! Every key is fixed-width bytes, so the sort order redb keeps is the byte
//! order of ids, which is what the paginated listings and the scrub cursor
//! rely on. A share row is our own fixed-width layout with a version byte
//! rather than a redb tuple: a tuple's type name is part of the table's
//! identity in redb, so adding a field later would need a table migration,
//! while a versioned row can be read old and new side by side. The row's
//! layout is the serde struct `ShareRow`, and the schema version's is
//! `SchemaVersion`, both written and read by [`kith_base::layout`]; test
//! vectors pin their bytes.

use kith_base::{ContentId, layout};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// share id → [`ShareRow`] bytes. A row here means "the body file is fully
/// written, synced, in place and verified".
pub(crate) const SHARES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("shares");

/// stripe id ‖ index ‖ share id → (). Answers "which shares of this stripe
/// do I hold" with one range scan. The share id is part of the key, not the
/// value, so that a wrong share sent for an index (before the record is
/// known) cannot overwrite the right one.
pub(crate) const BY_STRIPE: TableDefinition<'_, &[u8; 65], ()> = TableDefinition::new("by_stripe");

/// stripe id → stripe record bytes.
pub(crate) const RECORDS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("records");

/// (expires_at, share id) → (). Answers "which leases ended before now" with
/// one range scan, oldest first.
pub(crate) const EXPIRY: TableDefinition<'_, (u64, &[u8; 32]), ()> = TableDefinition::new("expiry");

/// stripe id → the owner's signed lease on it, as the node received it
/// (opaque to the store: the node signs, verifies and compares leases). The
/// node keeps it to renew, repair and hand on the stripe.
pub(crate) const LEASES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("leases");

/// Small named values: the schema version and the scrub cursor.
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Key in [`META`] of the schema version (u32 LE). The key keeps its old
/// name ("format") so that every kith reads it.
pub(crate) const META_FORMAT: &str = "format";

/// The schema version as stored under [`META_FORMAT`].
#[derive(Serialize, Deserialize)]
struct SchemaVersion(#[serde(with = "kith_base::layout::le")] u32);

/// The [`META_FORMAT`] value of schema `version`.
pub(crate) fn encode_schema(version: u32) -> Vec<u8> {
    layout::to_vec(&SchemaVersion(version))
}

/// The schema version in a [`META_FORMAT`] value; one that is not 4 bytes
/// reads as "newer than anything", so the file is refused, not rewritten.
pub(crate) fn decode_schema(bytes: &[u8]) -> u32 {
    layout::read_all::<SchemaVersion>(bytes, "schema version").map_or(u32::MAX, |version| version.0)
}
/// Key in [`META`] of the id the scrub checked last (32 bytes; absent at the
/// start of a pass).
pub(crate) const META_SCRUB_CURSOR: &str = "scrub_cursor";

/// The schema version this code writes; it reads this one and every older
/// one (upgrading them in place when it opens the file).
///
/// - 1: the share store's tables (`shares`, `by_stripe`, `records`,
///   `expiry`, `leases`, `meta`).
/// - 2: the node's tables join them (`inbox`, `seen`, `message_counters`,
///   `mail`, `mail_by_box`, `mail_by_sender`, `mail_expiry`: see
///   [`crate::messages`]; `owned`: see [`crate::owned`]), which used to be
///   `messages.redb` and `owned.redb` beside the store. A kith that reads
///   version 1 only would not see them, so it must refuse the file.
/// - 3: the name tables (`names`, `my_names`, `mirrors`: see
///   [`crate::names`]) and the feed tables (`feed_entries`, `feed_forks`,
///   `follows`: see [`crate::feeds`]). A kith that reads version 2 only
///   would neither republish this node's names, keep its mirrors, nor
///   carry the feeds it follows.
pub const SCHEMA_VERSION: u32 = 3;

/// The [`ShareInfo::stripe`] of a share whose stripe the store does not
/// know: one re-registered from its body after the index was lost (see
/// [`crate::RecoveryReport::rebuilt_shares`]). Such a share has no
/// `by_stripe` entry, so no stripe lists it, until a put of the same share
/// with its stripe (a repair, or the owner storing it again) attaches it.
pub const UNKNOWN_STRIPE: ContentId = ContentId::from_bytes([0; 32]);

/// What the store knows about one share, besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareInfo {
    /// The stripe the share belongs to; [`UNKNOWN_STRIPE`] for a share
    /// rebuilt from its body alone.
    pub stripe: ContentId,
    /// Its index in the stripe.
    pub index: u8,
    /// Its length in bytes.
    pub len: u64,
    /// Who leased it (all zeros until [`crate::Store::set_lease`] is called).
    pub owner: [u8; 32],
    /// When its lease ends, in Unix seconds; `None` = no expiry.
    pub expires_at: Option<u64>,
}

/// Length of an encoded share row, version 1.
const ROW_LEN: usize = 1 + 32 + 1 + 8 + 32 + 1 + 8;
const ROW_VERSION: u8 = 1;

/// A share row, version 1, field by field: `1 | stripe:32 | index:u8 |
/// len:u64 | owner:32 | has_expiry:u8 | expires_at:u64`, integers
/// little-endian; `expires_at` is 0 when `has_expiry` is 0.
#[derive(Serialize, Deserialize)]
struct ShareRow {
    version: u8,
    stripe: [u8; 32],
    index: u8,
    #[serde(with = "kith_base::layout::le")]
    len: u64,
    owner: [u8; 32],
    has_expiry: u8,
    #[serde(with = "kith_base::layout::le")]
    expires_at: u64,
}

impl ShareInfo {
    /// The row of this share (see `ShareRow`).
    pub(crate) fn encode(&self) -> [u8; ROW_LEN] {
        let row = ShareRow {
            version: ROW_VERSION,
            stripe: *self.stripe.as_bytes(),
            index: self.index,
            len: self.len,
            owner: self.owner,
            has_expiry: u8::from(self.expires_at.is_some()),
            expires_at: self.expires_at.unwrap_or(0),
        };
        layout::to_array(&row)
    }

    /// A share rebuilt from its body after the index was lost: no stripe
    /// known, no owner, no expiry (a cached copy).
    pub(crate) fn unattached(len: u64) -> Self {
        Self {
            stripe: UNKNOWN_STRIPE,
            index: 0,
            len,
            owner: [0; 32],
            expires_at: None,
        }
    }

    /// Whether the store knows the stripe this share belongs to.
    pub fn stripe_known(&self) -> bool {
        self.stripe != UNKNOWN_STRIPE
    }

    /// Reads a row; `None` if it is not a row this code wrote.
    pub(crate) fn decode(row: &[u8]) -> Option<Self> {
        let row: ShareRow = layout::read_all(row, "share row").ok()?;
        if row.version != ROW_VERSION {
            return None;
        }
        let expires_at = match row.has_expiry {
            0 => None,
            1 => Some(row.expires_at),
            _ => return None,
        };
        Some(Self {
            stripe: ContentId::from_bytes(row.stripe),
            index: row.index,
            len: row.len,
            owner: row.owner,
            expires_at,
        })
    }
}

/// The [`BY_STRIPE`] key of a share.
pub(crate) fn stripe_key(stripe: &ContentId, index: u8, share: &ContentId) -> [u8; 65] {
    let mut key = [0u8; 65];
    key[..32].copy_from_slice(stripe.as_bytes());
    key[32] = index;
    key[33..].copy_from_slice(share.as_bytes());
    key
}

/// Splits a [`BY_STRIPE`] key into stripe, index and share.
pub(crate) fn split_stripe_key(key: &[u8; 65]) -> (ContentId, u8, ContentId) {
    let mut stripe = [0u8; 32];
    stripe.copy_from_slice(&key[..32]);
    let mut share = [0u8; 32];
    share.copy_from_slice(&key[33..]);
    (
        ContentId::from_bytes(stripe),
        key[32],
        ContentId::from_bytes(share),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_round_trip() {
        let info = ShareInfo {
            stripe: ContentId::of(b"stripe"),
            index: 7,
            len: 1 << 20,
            owner: [9; 32],
            expires_at: Some(1_800_000_000),
        };
        assert_eq!(ShareInfo::decode(&info.encode()), Some(info));
        let bare = ShareInfo {
            expires_at: None,
            ..info
        };
        assert_eq!(ShareInfo::decode(&bare.encode()), Some(bare));
        let mut bad = info.encode();
        bad[0] = 2;
        assert_eq!(ShareInfo::decode(&bad), None);
        assert_eq!(ShareInfo::decode(&info.encode()[1..]), None);
    }

    /// The row layout of version 1, byte for byte: rows on disk in every
    /// data folder are read with it.
    #[test]
    fn layout_is_pinned_by_a_test_vector() {
        let info = ShareInfo {
            stripe: ContentId::from_bytes([0x11; 32]),
            index: 7,
            len: 0x0102_0304_0506_0708,
            owner: [0x22; 32],
            expires_at: Some(0x1112_1314_1516_1718),
        };
        let expected = format!(
            "01{}07{}{}01{}",
            "11".repeat(32),
            "0807060504030201",
            "22".repeat(32),
            "1817161514131211"
        );
        assert_eq!(hex(&info.encode()), expected);
        let bare = ShareInfo {
            expires_at: None,
            ..info
        };
        let expected = format!(
            "01{}07{}{}00{}",
            "11".repeat(32),
            "0807060504030201",
            "22".repeat(32),
            "00".repeat(8)
        );
        assert_eq!(hex(&bare.encode()), expected);
        assert_eq!(hex(&encode_schema(2)), "02000000");
        assert_eq!(decode_schema(&[2, 0, 0, 0]), 2);
        assert_eq!(decode_schema(&[2, 0, 0]), u32::MAX);
        assert_eq!(decode_schema(&[2, 0, 0, 0, 0]), u32::MAX);
    }

    use kith_base::layout::to_hex as hex;

    #[test]
    fn stripe_key_round_trip() {
        let (stripe, share) = (ContentId::of(b"s"), ContentId::of(b"x"));
        assert_eq!(
            split_stripe_key(&stripe_key(&stripe, 3, &share)),
            (stripe, 3, share)
        );
    }
}
