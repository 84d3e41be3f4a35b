//! Behaviour tests of the share store, one section per feature: put/get,
//! quota, records, crash leftovers, scrub, leases, disk full.
//!
//! The model-based test lives in `model.rs`; the crash points inside
//! `put_share` itself are unit tests in `src/store.rs` (they need a hook).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::sync::Arc;

use common::{TestStripe, body_path, flip_bit, open};
use kith_base::{Identity, Lease};
use kith_store::{ContentId, Holding, PutOutcome, Store, StoreConfig, StoreError};

const MIB: u64 = 1 << 20;

// ---- put / get ---------------------------------------------------------

#[test]
fn put_get_has_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripe = TestStripe::new(1, 2, 4, 1000);
    let id0 = stripe.share_id(0);

    assert_eq!(
        store
            .put_share(stripe.id, 0, id0, &stripe.shares[0])
            .unwrap(),
        PutOutcome::Stored
    );
    assert_eq!(
        store
            .put_share(stripe.id, 0, id0, &stripe.shares[0])
            .unwrap(),
        PutOutcome::AlreadyHad
    );
    assert_eq!(
        store.get_share(&id0).unwrap().as_deref(),
        Some(&stripe.shares[0][..])
    );
    assert_eq!(store.get_share(&stripe.share_id(1)).unwrap(), None);
    assert_eq!(
        store.has_shares(&[id0, stripe.share_id(1), id0]).unwrap(),
        vec![true, false, true]
    );
    let usage = store.usage();
    assert_eq!((usage.shares, usage.bytes), (1, 500));

    let info = store.share_info(&id0).unwrap().unwrap();
    assert_eq!((info.stripe, info.index, info.len), (stripe.id, 0, 500));

    assert!(store.remove_share(&id0).unwrap());
    assert!(!store.remove_share(&id0).unwrap());
    assert_eq!(store.get_share(&id0).unwrap(), None);
    assert!(!body_path(dir.path(), &id0).exists());
    assert_eq!(store.usage().bytes, 0);
}

#[test]
fn refuses_bytes_that_are_not_the_share_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripe = TestStripe::new(2, 2, 4, 1000);
    let error = store
        .put_share(stripe.id, 0, stripe.share_id(0), &stripe.shares[1])
        .unwrap_err();
    match &error {
        StoreError::Mismatch { expected, actual } => {
            assert_eq!(*expected, stripe.share_id(0));
            assert_eq!(*actual, stripe.share_id(1));
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert!(error.is_refusal());
    assert_eq!(store.usage().shares, 0);
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

    // Larger than any share can be: refused before hashing (a calloc'd
    // buffer, so this costs no real memory).
    let huge = vec![0u8; kith_store::MAX_SHARE_LEN as usize + 1];
    assert!(matches!(
        store.put_share(stripe.id, 0, ContentId::of(b"x"), &huge),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn once_the_record_is_known_shares_must_match_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripe = TestStripe::new(3, 2, 4, 1000);
    store.put_record(&stripe.record).unwrap();
    // Share 1 offered as index 0: hashes fine, but the record says no.
    let error = store
        .put_share(stripe.id, 0, stripe.share_id(1), &stripe.shares[1])
        .unwrap_err();
    assert!(
        matches!(error, StoreError::NotInStripe { index: 0, .. }),
        "{error:?}"
    );
    // An index past n.
    assert!(matches!(
        store.put_share(stripe.id, 9, stripe.share_id(1), &stripe.shares[1]),
        Err(StoreError::NotInStripe { .. })
    ));
    stripe.put_all(&store);
    let held = store.shares_of_stripe(&stripe.id).unwrap();
    let expected: Vec<(u8, ContentId)> = (0..4).map(|i| (i as u8, stripe.share_id(i))).collect();
    assert_eq!(held, expected);
}

#[test]
fn second_open_of_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path(), MIB);
    let error = Store::open(dir.path(), StoreConfig { quota_bytes: MIB }).unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    assert!(error.to_string().contains("already open"), "{error}");
}

#[test]
fn concurrent_puts_from_clones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 64 * MIB);
    let stripes: Arc<Vec<TestStripe>> = Arc::new(
        (0..8)
            .map(|seed| TestStripe::new(seed, 3, 5, 3000))
            .collect(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, stripes) = (store.clone(), stripes.clone());
            std::thread::spawn(move || {
                // Every thread puts every stripe: each share is stored once
                // and reported AlreadyHad the other three times.
                let mut stored = 0;
                for stripe in stripes.iter().cycle().skip(t).take(8) {
                    for (i, share) in stripe.shares.iter().enumerate() {
                        let outcome = store
                            .put_share(stripe.id, i as u8, ContentId::of(share), share)
                            .unwrap();
                        stored += usize::from(outcome == PutOutcome::Stored);
                    }
                }
                stored
            })
        })
        .collect();
    let stored: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(stored, 8 * 5);
    assert_eq!(store.usage().shares, 40);
    assert_eq!(store.usage().bytes, 40 * 1000);
}

// ---- quota ---------------------------------------------------------------

#[test]
fn quota_refusal_has_a_message_a_sender_can_show() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two 500-byte shares, not three.
    let store = open(dir.path(), 1200);
    let stripe = TestStripe::new(4, 2, 4, 1000);
    for i in 0..2 {
        store
            .put_share(stripe.id, i as u8, stripe.share_id(i), &stripe.shares[i])
            .unwrap();
    }
    let error = store
        .put_share(stripe.id, 2, stripe.share_id(2), &stripe.shares[2])
        .unwrap_err();
    match &error {
        StoreError::QuotaExceeded {
            needed,
            free,
            quota,
        } => assert_eq!((*needed, *free, *quota), (500, 200, 1200)),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert!(error.is_refusal());
    assert_eq!(
        format!("peer 12D3KooWAbc's {error}"),
        "peer 12D3KooWAbc's store is full: 200 B free of its 1.2 KiB quota, 500 B needed"
    );
    // Nothing of the refused share is on disk.
    assert!(!body_path(dir.path(), &stripe.share_id(2)).exists());
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

    let big = StoreError::QuotaExceeded {
        needed: MIB,
        free: 12 * MIB,
        quota: 1 << 30,
    };
    assert_eq!(
        big.to_string(),
        "store is full: 12.0 MiB free of its 1.0 GiB quota, 1.0 MiB needed"
    );
}

#[test]
fn quota_holds_across_reopen_and_counts_records() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = TestStripe::new(5, 2, 4, 1000);
    let record_len = stripe.record.encoded_len() as u64;
    let quota = 2 * 500 + record_len;
    {
        let store = open(dir.path(), quota);
        store.put_record(&stripe.record).unwrap();
        for i in 0..2 {
            store
                .put_share(stripe.id, i as u8, stripe.share_id(i), &stripe.shares[i])
                .unwrap();
        }
        assert_eq!(store.usage().free(), 0);
    }
    let store = open(dir.path(), quota);
    let usage = store.usage();
    assert_eq!((usage.bytes, usage.shares, usage.records), (quota, 2, 1));
    assert!(matches!(
        store.put_share(stripe.id, 2, stripe.share_id(2), &stripe.shares[2]),
        Err(StoreError::QuotaExceeded { free: 0, .. })
    ));
    drop(store);
    // A larger quota at the next start makes room.
    let store = open(dir.path(), quota + 500);
    store
        .put_share(stripe.id, 2, stripe.share_id(2), &stripe.shares[2])
        .unwrap();
}

#[test]
fn concurrent_puts_never_exceed_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    // Room for exactly 7 of the 20 shares.
    let store = open(dir.path(), 7 * 1000 + 999);
    let stripes: Arc<Vec<TestStripe>> = Arc::new(
        (0..4)
            .map(|seed| TestStripe::new(seed + 40, 3, 5, 3000))
            .collect(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, stripes) = (store.clone(), stripes.clone());
            std::thread::spawn(move || {
                let stripe = &stripes[t];
                for (i, share) in stripe.shares.iter().enumerate() {
                    match store.put_share(stripe.id, i as u8, ContentId::of(share), share) {
                        Ok(_) | Err(StoreError::QuotaExceeded { .. }) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.usage().shares, 7);
    drop(store);
    assert_eq!(open(dir.path(), 1).usage().shares, 7);
}

// ---- records -------------------------------------------------------------

#[test]
fn records_round_trip_and_a_tampered_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestStripe::new(6, 3, 5, 4000);
    let b = TestStripe::new(7, 1, 2, 100);
    {
        let store = open(dir.path(), MIB);
        assert_eq!(store.put_record(&a.record).unwrap(), PutOutcome::Stored);
        assert_eq!(store.put_record(&a.record).unwrap(), PutOutcome::AlreadyHad);
        store.put_record(&b.record).unwrap();
        assert_eq!(store.get_record(&a.id).unwrap(), Some(a.record.clone()));
        assert_eq!(store.get_record(&ContentId::of(b"nope")).unwrap(), None);
    }
    // Damage record a inside the database file, as bit rot that redb's own
    // checks missed would.
    {
        const RECORDS: redb::TableDefinition<'_, &[u8; 32], &[u8]> =
            redb::TableDefinition::new("records");
        let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(RECORDS).unwrap();
            let mut bytes = a.record.to_bytes();
            bytes[20] ^= 1;
            table.insert(a.id.as_bytes(), bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open(dir.path(), MIB);
    let error = store.get_record(&a.id).unwrap_err();
    assert!(
        matches!(error, StoreError::CorruptRecord { stripe } if stripe == a.id),
        "{error:?}"
    );
    assert_eq!(
        store.get_record(&a.id).unwrap(),
        None,
        "removed after the report"
    );
    assert_eq!(store.get_record(&b.id).unwrap(), Some(b.record.clone()));
    assert_eq!(store.usage().records, 1);
    assert!(store.remove_record(&b.id).unwrap());
    assert!(!store.remove_record(&b.id).unwrap());
    assert_eq!(store.usage().bytes, 0);
}

#[test]
fn list_stripes_pages_through_records_and_shares() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripes: Vec<TestStripe> = (0..9)
        .map(|seed| TestStripe::new(seed + 10, 2, 3, 100))
        .collect();
    for (i, stripe) in stripes.iter().enumerate() {
        // A third with a record only, a third with shares only, a third both.
        if i % 3 != 1 {
            store.put_record(&stripe.record).unwrap();
        }
        if i % 3 != 0 {
            stripe.put_all(&store);
        }
    }
    let mut expected: Vec<ContentId> = stripes.iter().map(|s| s.id).collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_stripes(after.as_ref(), 4).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        after = page.last().copied();
        seen.extend(page);
    }
    assert_eq!(seen, expected);
}

// ---- a holder's put: share, record and lease in one commit -----------------

fn lease_for(owner: &Identity, stripe: ContentId, expires_at: u64) -> Lease {
    Lease::sign(owner, stripe, [7; 32], expires_at)
}

#[test]
fn a_leased_put_stores_the_share_the_record_and_the_lease_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripe = TestStripe::new(40, 2, 4, 1000);
    let owner = Identity::generate();
    let lease = lease_for(&owner, stripe.id, 1_000);

    let put = |index: usize, lease: &Lease| {
        store.put_stripe_share(
            &stripe.record,
            index as u8,
            &stripe.shares[index],
            Holding::Leased(lease),
        )
    };
    assert_eq!(put(0, &lease).unwrap(), PutOutcome::Stored);
    let info = store.share_info(&stripe.share_id(0)).unwrap().unwrap();
    assert_eq!(
        (info.stripe, info.index, info.owner, info.expires_at),
        (stripe.id, 0, owner.public_key(), Some(1_000))
    );
    assert_eq!(
        store.get_record(&stripe.id).unwrap().unwrap().id(),
        stripe.id
    );
    assert_eq!(
        store.stripe_lease(&stripe.id).unwrap().as_deref(),
        Some(&lease.as_bytes()[..])
    );
    let record_len = stripe.record.encoded_len() as u64;
    let usage = store.usage();
    assert_eq!(
        (usage.shares, usage.records, usage.bytes),
        (1, 1, 500 + record_len)
    );

    // A second share of the stripe: the record is not counted twice.
    assert_eq!(put(1, &lease).unwrap(), PutOutcome::Stored);
    let usage = store.usage();
    assert_eq!(
        (usage.shares, usage.records, usage.bytes),
        (2, 1, 1000 + record_len)
    );

    // A lease that ends sooner does not replace the kept one; a later one
    // does, and extends the owner's share it comes with.
    let sooner = lease_for(&owner, stripe.id, 500);
    assert_eq!(put(0, &sooner).unwrap(), PutOutcome::AlreadyHad);
    assert_eq!(
        store.stripe_lease(&stripe.id).unwrap().as_deref(),
        Some(&lease.as_bytes()[..])
    );
    let later = lease_for(&owner, stripe.id, 2_000);
    assert_eq!(put(0, &later).unwrap(), PutOutcome::AlreadyHad);
    assert_eq!(
        store.stripe_lease(&stripe.id).unwrap().as_deref(),
        Some(&later.as_bytes()[..])
    );
    let info = store.share_info(&stripe.share_id(0)).unwrap().unwrap();
    assert_eq!(info.expires_at, Some(2_000));
    assert_eq!(store.expired(1_999, 10).unwrap(), vec![stripe.share_id(1)]);

    // Another owner's lease does not take the share over.
    let stranger = Identity::generate();
    let theirs = lease_for(&stranger, stripe.id, 9_000);
    assert_eq!(put(0, &theirs).unwrap(), PutOutcome::AlreadyHad);
    let info = store.share_info(&stripe.share_id(0)).unwrap().unwrap();
    assert_eq!(
        (info.owner, info.expires_at),
        (owner.public_key(), Some(2_000))
    );
}

#[test]
fn a_cached_copy_has_no_owner_until_a_lease_takes_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let stripe = TestStripe::new(41, 2, 4, 1000);
    let owner = Identity::generate();
    let lease = lease_for(&owner, stripe.id, 1_000);

    let cached = store
        .put_stripe_share(
            &stripe.record,
            2,
            &stripe.shares[2],
            Holding::Cached(Some(&lease)),
        )
        .unwrap();
    assert_eq!(cached, PutOutcome::Stored);
    let info = store.share_info(&stripe.share_id(2)).unwrap().unwrap();
    assert_eq!((info.owner, info.expires_at), ([0; 32], None));
    assert!(
        store.stripe_lease(&stripe.id).unwrap().is_some(),
        "the stripe's lease is kept beside a cached copy"
    );
    assert!(store.expired(u64::MAX, 10).unwrap().is_empty());

    store
        .put_stripe_share(
            &stripe.record,
            2,
            &stripe.shares[2],
            Holding::Leased(&lease),
        )
        .unwrap();
    let info = store.share_info(&stripe.share_id(2)).unwrap().unwrap();
    assert_eq!(
        (info.owner, info.expires_at),
        (owner.public_key(), Some(1_000))
    );
}

#[test]
fn a_refused_stripe_put_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = TestStripe::new(42, 2, 4, 1000);
    let owner = Identity::generate();
    let lease = lease_for(&owner, stripe.id, 1_000);
    let nothing_stored = |store: &Store| {
        assert_eq!(store.usage().bytes, 0);
        assert_eq!(store.get_record(&stripe.id).unwrap(), None);
        assert_eq!(store.stripe_lease(&stripe.id).unwrap(), None);
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    };

    let store = open(dir.path(), 16 * MIB);
    // Share 1's bytes offered as share 0.
    let wrong = store.put_stripe_share(
        &stripe.record,
        0,
        &stripe.shares[1],
        Holding::Leased(&lease),
    );
    assert!(
        matches!(wrong, Err(StoreError::Mismatch { .. })),
        "{wrong:?}"
    );
    // An index the stripe does not have.
    let outside = store.put_stripe_share(
        &stripe.record,
        9,
        &stripe.shares[0],
        Holding::Leased(&lease),
    );
    assert!(
        matches!(outside, Err(StoreError::NotInStripe { index: 9, .. })),
        "{outside:?}"
    );
    nothing_stored(&store);
    drop(store);

    // Room for the share but not for the share and the record.
    let store = open(dir.path(), 500 + 10);
    let full = store.put_stripe_share(
        &stripe.record,
        0,
        &stripe.shares[0],
        Holding::Leased(&lease),
    );
    assert!(
        matches!(full, Err(StoreError::QuotaExceeded { .. })),
        "{full:?}"
    );
    nothing_stored(&store);
    assert_eq!(store.usage().shares, 0);
}

#[test]
fn concurrent_stripe_puts_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 64 * MIB);
    let owner = Arc::new(Identity::generate());
    let stripes: Arc<Vec<TestStripe>> = Arc::new(
        (0..24)
            .map(|seed| TestStripe::new(seed, 2, 3, 4000))
            .collect(),
    );
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (store, owner, stripes) = (store.clone(), owner.clone(), stripes.clone());
            std::thread::spawn(move || {
                for stripe in stripes.iter().skip(t).step_by(6) {
                    let lease = lease_for(&owner, stripe.id, 1_000);
                    for index in 0..3 {
                        store
                            .put_stripe_share(
                                &stripe.record,
                                index,
                                &stripe.shares[usize::from(index)],
                                Holding::Leased(&lease),
                            )
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let usage = store.usage();
    assert_eq!((usage.shares, usage.records), (72, 24));
    drop(store);
    // Reopened (the recovery pass runs): everything is there and verifies.
    let store = open(dir.path(), 64 * MIB);
    assert!(store.recovery_report().is_clean());
    for stripe in stripes.iter() {
        assert!(store.stripe_lease(&stripe.id).unwrap().is_some());
        for (index, share) in stripe.shares.iter().enumerate() {
            assert_eq!(
                store.get_share(&stripe.share_id(index)).unwrap().as_deref(),
                Some(&share[..])
            );
        }
    }
}

// ---- crash leftovers, made by hand ---------------------------------------

#[test]
fn recovery_removes_every_kind_of_leftover() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = TestStripe::new(8, 2, 6, 1000);
    let ids: Vec<ContentId> = (0..6).map(|i| stripe.share_id(i)).collect();
    {
        let store = open(dir.path(), 16 * MIB);
        stripe.put_all(&store);
        store.set_lease(&ids[3], [1; 32], Some(100)).unwrap();
    }
    // Crash while writing a body: a temp file.
    fs::write(dir.path().join("tmp").join("half-written"), b"abc").unwrap();
    // Crash after the rename, before the commit: a body without a row.
    let orphan = b"a share that was never committed".to_vec();
    let orphan_id = ContentId::of(&orphan);
    let orphan_path = body_path(dir.path(), &orphan_id);
    fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    fs::write(&orphan_path, &orphan).unwrap();
    // A stray file that is not named like a share.
    fs::write(dir.path().join("shares").join("README"), b"hi").unwrap();
    // A body under the wrong folder.
    let misplaced = dir.path().join("shares/00/00").join(orphan_id.to_string());
    fs::create_dir_all(misplaced.parent().unwrap()).unwrap();
    fs::write(&misplaced, &orphan).unwrap();
    // A row whose body vanished, and one whose body is truncated.
    fs::remove_file(body_path(dir.path(), &ids[3])).unwrap();
    let truncated = body_path(dir.path(), &ids[4]);
    fs::write(&truncated, &stripe.shares[4][..10]).unwrap();

    let store = open(dir.path(), 16 * MIB);
    let report = store.recovery_report();
    assert_eq!(report.temp_files, 1);
    assert_eq!(report.orphan_bodies, 4, "{report:?}"); // orphan, README, misplaced, truncated body
    assert_eq!(report.dropped_rows, 2);

    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(!orphan_path.exists() && !misplaced.exists() && !truncated.exists());
    assert_eq!(store.get_share(&orphan_id).unwrap(), None);
    assert_eq!(
        store.has_shares(&ids).unwrap(),
        vec![true, true, true, false, false, true]
    );
    // Everything still present verifies; the index and leases forgot the rest.
    for (i, id) in ids.iter().enumerate() {
        if ![3, 4].contains(&i) {
            assert_eq!(store.get_share(id).unwrap().unwrap(), stripe.shares[i]);
        }
    }
    let indices: Vec<u8> = store
        .shares_of_stripe(&stripe.id)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(indices, vec![0, 1, 2, 5]);
    assert!(store.expired(u64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.usage().shares, 4);
    assert_eq!(store.usage().bytes, 4 * 500);
    drop(store);
    // A clean second open finds nothing.
    assert!(open(dir.path(), 16 * MIB).recovery_report().is_clean());
}

#[test]
fn a_crash_between_a_removes_commit_and_unlink_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = TestStripe::new(9, 1, 2, 100);
    let id = stripe.share_id(0);
    let body = body_path(dir.path(), &id);
    {
        let store = open(dir.path(), MIB);
        stripe.put_all(&store);
        let saved = fs::read(&body).unwrap();
        store.remove_share(&id).unwrap();
        // Put the body back as if the unlink never happened.
        fs::write(&body, saved).unwrap();
    }
    let store = open(dir.path(), MIB);
    assert_eq!(store.recovery_report().orphan_bodies, 1);
    assert!(!body.exists());
    assert_eq!(store.get_share(&id).unwrap(), None);
}

// ---- a lost or damaged index ---------------------------------------------

/// How a test loses the index.
#[derive(Debug, Clone, Copy)]
enum LoseIndex {
    Delete,
    Truncate,
    ReplaceWithEmptyRedb,
}

fn lose_index(dir: &std::path::Path, how: LoseIndex) {
    let db = dir.join("store.redb");
    match how {
        LoseIndex::Delete => fs::remove_file(&db).unwrap(),
        LoseIndex::Truncate => fs::File::create(&db).map(drop).unwrap(),
        LoseIndex::ReplaceWithEmptyRedb => {
            fs::remove_file(&db).unwrap();
            drop(redb::Database::create(&db).unwrap());
        }
    }
}

#[test]
fn a_lost_index_is_rebuilt_from_the_bodies_and_nothing_intact_is_deleted() {
    for how in [
        LoseIndex::Delete,
        LoseIndex::Truncate,
        LoseIndex::ReplaceWithEmptyRedb,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let plain = TestStripe::new(60, 2, 4, 1000);
        let leased = TestStripe::new(61, 1, 3, 600);
        let owner = Identity::generate();
        let lease = lease_for(&owner, leased.id, 1_000);
        {
            let store = open(dir.path(), 16 * MIB);
            plain.put_all(&store);
            for (index, share) in leased.shares.iter().enumerate() {
                store
                    .put_stripe_share(&leased.record, index as u8, share, Holding::Leased(&lease))
                    .unwrap();
            }
        }
        lose_index(dir.path(), how);
        // One body rotted while the index was gone, and a stray file.
        let rotten = plain.share_id(3);
        flip_bit(&body_path(dir.path(), &rotten), 17);
        fs::write(dir.path().join("shares").join("notes.txt"), b"hi").unwrap();

        let store = open(dir.path(), 16 * MIB);
        let report = *store.recovery_report();
        assert_eq!(report.rebuilt_shares, 6, "{how:?}: {report:?}");
        assert_eq!(report.quarantined, 2, "{how:?}: {report:?}");
        assert_eq!(report.orphan_bodies, 0, "{how:?}: {report:?}");
        // Every intact share is still there and reads back verified.
        for (stripe, skip) in [(&plain, Some(3)), (&leased, None)] {
            for (index, share) in stripe.shares.iter().enumerate() {
                if Some(index) == skip {
                    continue;
                }
                let id = ContentId::of(share);
                assert_eq!(store.get_share(&id).unwrap().as_deref(), Some(&share[..]));
                let info = store.share_info(&id).unwrap().unwrap();
                assert!(!info.stripe_known(), "{how:?}");
                assert_eq!((info.owner, info.expires_at), ([0; 32], None));
            }
        }
        // The rotten body is not resurrected; it is kept aside, not deleted.
        assert_eq!(store.get_share(&rotten).unwrap(), None);
        assert!(!body_path(dir.path(), &rotten).exists());
        let aside = dir.path().join("quarantine").join(rotten.to_string());
        assert_eq!(fs::read(&aside).unwrap().len(), 500);
        assert!(dir.path().join("quarantine/notes.txt").exists());
        let usage = store.usage();
        assert_eq!((usage.shares, usage.bytes), (6, 3 * 500 + 3 * 600));
        // No stripe lists a share of unknown stripe …
        assert!(store.shares_of_stripe(&plain.id).unwrap().is_empty());
        assert!(store.list_stripes(None, 10).unwrap().is_empty());
        // … until a put of it names its stripe (no new bytes are written).
        assert_eq!(
            store
                .put_stripe_share(
                    &leased.record,
                    1,
                    &leased.shares[1],
                    Holding::Leased(&lease)
                )
                .unwrap(),
            PutOutcome::AlreadyHad
        );
        assert_eq!(
            store.shares_of_stripe(&leased.id).unwrap(),
            vec![(1, leased.share_id(1))]
        );
        let info = store.share_info(&leased.share_id(1)).unwrap().unwrap();
        assert_eq!(
            (info.stripe, info.index, info.owner, info.expires_at),
            (leased.id, 1, owner.public_key(), Some(1_000))
        );
        assert_eq!(store.usage().shares, 6);
        drop(store);
        // The rebuilt index is the index now: a second open finds nothing
        // to do and keeps everything.
        let store = open(dir.path(), 16 * MIB);
        assert!(store.recovery_report().is_clean(), "{how:?}");
        assert_eq!(store.usage().shares, 6);
        assert_eq!(
            store.get_share(&plain.share_id(0)).unwrap().as_deref(),
            Some(&plain.shares[0][..])
        );
        drop(store);
        // A crash after the rows of a rebuild but before its format version
        // (the last commit): the next open rebuilds again, finds every body
        // already registered, and loses nothing.
        {
            let meta: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("meta");
            let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(meta).unwrap().remove("format").unwrap();
            txn.commit().unwrap();
        }
        let store = open(dir.path(), 16 * MIB);
        let report = *store.recovery_report();
        assert_eq!(
            (
                report.rebuilt_shares,
                report.quarantined,
                report.orphan_bodies
            ),
            (0, 0, 0),
            "{how:?}: {report:?}"
        );
        assert_eq!(store.usage().shares, 6);
        assert_eq!(
            store.shares_of_stripe(&leased.id).unwrap(),
            vec![(1, leased.share_id(1))]
        );
        drop(store);
        assert!(open(dir.path(), 16 * MIB).recovery_report().is_clean());
    }
}

/// A way of damaging a database file in place.
type Damage = fn(&std::path::Path);

#[test]
fn a_damaged_index_is_a_clear_error_naming_it_and_never_a_panic() {
    let patterns: [(&str, Damage); 4] = [
        ("random bytes", |db| {
            let len = fs::metadata(db).unwrap().len() as usize;
            let noise: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            fs::write(db, noise).unwrap();
        }),
        ("truncated to half", |db| {
            let len = fs::metadata(db).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(db)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("garbage over the header", |db| {
            let mut bytes = fs::read(db).unwrap();
            bytes[9..4096].fill(0xa5);
            fs::write(db, bytes).unwrap();
        }),
        ("garbage over the pages", |db| {
            let mut bytes = fs::read(db).unwrap();
            let len = bytes.len();
            bytes[4096..len].fill(0x5a);
            fs::write(db, bytes).unwrap();
        }),
    ];
    for (name, damage) in patterns {
        let dir = tempfile::tempdir().unwrap();
        let stripe = TestStripe::new(62, 2, 4, 1000);
        {
            let store = open(dir.path(), 16 * MIB);
            stripe.put_all(&store);
        }
        let db = dir.path().join("store.redb");
        damage(&db);
        let opened = std::panic::catch_unwind(|| {
            Store::open(
                dir.path(),
                StoreConfig {
                    quota_bytes: 16 * MIB,
                },
            )
        });
        let error = match opened {
            Ok(Err(error)) => error,
            Ok(Ok(_)) => panic!("{name}: a damaged index opened"),
            Err(_) => panic!("{name}: opening a damaged index panicked"),
        };
        assert!(
            matches!(&error, StoreError::DamagedIndex { path, .. } if *path == db),
            "{name}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&db.display().to_string()) && message.contains("move it aside"),
            "{name}: {message}"
        );
        // Doing what the message says loses no share.
        fs::rename(&db, dir.path().join("store.redb.damaged")).unwrap();
        let store = open(dir.path(), 16 * MIB);
        assert_eq!(store.recovery_report().rebuilt_shares, 4, "{name}");
        for share in &stripe.shares {
            assert_eq!(
                store.get_share(&ContentId::of(share)).unwrap().as_deref(),
                Some(&share[..])
            );
        }
    }
}

// ---- damage while running: reads and scrub -------------------------------

#[test]
fn a_damaged_body_reads_as_corrupt_once_then_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), MIB);
    let stripe = TestStripe::new(10, 2, 3, 1000);
    stripe.put_all(&store);
    let (flipped, truncated, deleted) =
        (stripe.share_id(0), stripe.share_id(1), stripe.share_id(2));
    flip_bit(&body_path(dir.path(), &flipped), 77);
    fs::write(body_path(dir.path(), &truncated), b"short").unwrap();
    fs::remove_file(body_path(dir.path(), &deleted)).unwrap();

    for (index, id) in [flipped, truncated, deleted].iter().enumerate() {
        let error = store.get_share(id).unwrap_err();
        match &error {
            StoreError::Corrupt {
                id: bad,
                stripe: s,
                index: i,
            } => assert_eq!((*bad, *s, usize::from(*i)), (*id, stripe.id, index)),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(error.to_string().contains("needs repair"), "{error}");
        assert_eq!(store.get_share(id).unwrap(), None);
        assert!(!body_path(dir.path(), id).exists());
    }
    assert_eq!(store.usage().shares, 0);
    assert!(store.shares_of_stripe(&stripe.id).unwrap().is_empty());
}

#[test]
fn scrub_finds_damage_at_a_bounded_rate_and_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let stripes: Vec<TestStripe> = (0..2)
        .map(|seed| TestStripe::new(seed + 20, 3, 5, 300))
        .collect();
    let mut all: Vec<ContentId> = stripes
        .iter()
        .flat_map(|s| (0..5).map(|i| s.share_id(i)))
        .collect();
    all.sort();
    let bad = all[6];
    {
        let store = open(dir.path(), MIB);
        for stripe in &stripes {
            stripe.put_all(&store);
        }
        flip_bit(&body_path(dir.path(), &bad), 3);
        let first = store.scrub_step(4).unwrap();
        assert_eq!(
            (first.checked, first.corrupt.len(), first.pass_complete),
            (4, 0, false)
        );
    }
    // The cursor survives the restart: the next step checks 4..8, which
    // holds the damaged share.
    let store = open(dir.path(), MIB);
    let second = store.scrub_step(4).unwrap();
    assert_eq!(second.checked, 4);
    assert_eq!(second.corrupt.len(), 1);
    assert_eq!(second.corrupt[0].id, bad);
    assert!(stripes.iter().any(|s| s.id == second.corrupt[0].stripe));
    assert_eq!(store.get_share(&bad).unwrap(), None);
    // The rest of the pass: 8, 9 (the damaged one is gone).
    let third = store.scrub_step(4).unwrap();
    assert_eq!((third.checked, third.pass_complete), (2, true));
    // A new pass starts from the beginning.
    let fourth = store.scrub_step(100).unwrap();
    assert_eq!(
        (fourth.checked, fourth.corrupt.len(), fourth.pass_complete),
        (9, 0, true)
    );
    assert_eq!(store.scrub_step(0).unwrap().checked, 0);
}

// ---- leases ----------------------------------------------------------------

#[test]
fn lease_expiry_lists_the_right_shares() {
    let dir = tempfile::tempdir().unwrap();
    let stripe = TestStripe::new(30, 2, 5, 100);
    let ids: Vec<ContentId> = (0..5).map(|i| stripe.share_id(i)).collect();
    let owner = [7; 32];
    {
        let store = open(dir.path(), MIB);
        stripe.put_all(&store);
        assert!(store.set_lease(&ids[0], owner, Some(100)).unwrap());
        assert!(store.set_lease(&ids[1], owner, Some(200)).unwrap());
        assert!(store.set_lease(&ids[2], owner, Some(300)).unwrap());
        assert!(store.set_lease(&ids[3], owner, None).unwrap());
        // ids[4] never leased.
        assert!(
            !store
                .set_lease(&ContentId::of(b"absent"), owner, Some(1))
                .unwrap()
        );

        assert!(store.expired(99, 10).unwrap().is_empty());
        assert_eq!(store.expired(100, 10).unwrap(), vec![ids[0]]);
        assert_eq!(store.expired(250, 10).unwrap(), vec![ids[0], ids[1]]);
        assert_eq!(store.expired(u64::MAX, 1).unwrap(), vec![ids[0]]);
        // Renewing moves a share out of the expired list.
        store.set_lease(&ids[0], owner, Some(1000)).unwrap();
        assert_eq!(store.expired(250, 10).unwrap(), vec![ids[1]]);
        let info = store.share_info(&ids[0]).unwrap().unwrap();
        assert_eq!((info.owner, info.expires_at), (owner, Some(1000)));
    }
    let store = open(dir.path(), MIB);
    assert_eq!(store.expired(300, 10).unwrap(), vec![ids[1], ids[2]]);
    // The node removes what expired; the lease index forgets it.
    for id in store.expired(300, 10).unwrap() {
        store.remove_share(&id).unwrap();
    }
    assert!(store.expired(300, 10).unwrap().is_empty());
    assert_eq!(store.expired(u64::MAX, 10).unwrap(), vec![ids[0]]);
    assert_eq!(store.share_info(&ids[4]).unwrap().unwrap().expires_at, None);
}
