//! The bytes each owner's leases hold, and the cap a node puts on them
//! (`quota_per_peer`): refused past it with a typed error, other owners
//! unaffected, removals and expiries give bytes back, cached copies count
//! once taken over, and the counts come back the same after a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestStripe, open};
use kith_base::{Identity, Lease};
use kith_store::{Holding, PutOutcome, StoreError};

const MIB: u64 = 1 << 20;

fn lease_for(owner: &Identity, stripe: &TestStripe, expires_at: u64) -> Lease {
    Lease::sign(owner, stripe.id, [7; 32], expires_at)
}

#[test]
fn an_owner_past_its_cap_is_refused_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 16 * MIB);
    let (greedy, polite) = (Identity::generate(), Identity::generate());
    // Four shares of 1000 bytes each; the cap lets an owner hold 2500.
    let stripe = TestStripe::new(1, 1, 4, 1000);
    let cap = 2_500;
    let lease = lease_for(&greedy, &stripe, 1_000);
    let put = |index: usize, lease: &Lease| {
        store.put_stripe_share_capped(
            &stripe.record,
            index as u8,
            &stripe.shares[index],
            Holding::Leased(lease),
            cap,
        )
    };
    assert_eq!(put(0, &lease).unwrap(), PutOutcome::Stored);
    assert_eq!(put(1, &lease).unwrap(), PutOutcome::Stored);
    let refused = put(2, &lease).unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::PeerShareExceeded {
                held: 2_000,
                needed: 1_000,
                cap: 2_500
            }
        ),
        "{refused:?}"
    );
    assert!(refused.is_refusal());
    assert!(refused.to_string().contains("another peer"), "{refused}");
    assert!(!store.has_shares(&[stripe.share_id(2)]).unwrap()[0]);
    // A share the owner holds already is never refused (a renewal).
    assert_eq!(put(0, &lease).unwrap(), PutOutcome::AlreadyHad);
    // Another owner has a cap of its own.
    let theirs = lease_for(&polite, &stripe, 1_000);
    assert_eq!(put(2, &theirs).unwrap(), PutOutcome::Stored);
    assert_eq!(store.owner_bytes(&greedy.public_key()), 2_000);
    assert_eq!(store.owner_bytes(&polite.public_key()), 1_000);
    assert_eq!(
        store.owners_usage(),
        vec![(greedy.public_key(), 2_000), (polite.public_key(), 1_000)]
    );

    // A removal (a drop, an expiry) gives the bytes back.
    assert!(store.remove_share(&stripe.share_id(1)).unwrap());
    assert_eq!(store.owner_bytes(&greedy.public_key()), 1_000);
    assert_eq!(put(3, &lease).unwrap(), PutOutcome::Stored);
    assert_eq!(store.owner_bytes(&greedy.public_key()), 2_000);
}

#[test]
fn a_cached_copy_counts_once_an_owner_takes_it_over_and_counts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Identity::generate();
    let stripe = TestStripe::new(2, 1, 3, 1000);
    let lease = lease_for(&owner, &stripe, 1_000);
    {
        let store = open(dir.path(), 16 * MIB);
        store
            .put_stripe_share(
                &stripe.record,
                0,
                &stripe.shares[0],
                Holding::Cached(Some(&lease)),
            )
            .unwrap();
        assert_eq!(store.owner_bytes(&owner.public_key()), 0, "a cache");
        assert!(store.owners_usage().is_empty());
        // Taking the copy over counts, and is capped like a new share.
        let over = store.put_stripe_share_capped(
            &stripe.record,
            0,
            &stripe.shares[0],
            Holding::Leased(&lease),
            999,
        );
        assert!(matches!(over, Err(StoreError::PeerShareExceeded { .. })));
        assert_eq!(
            store
                .share_info(&stripe.share_id(0))
                .unwrap()
                .unwrap()
                .owner,
            [0; 32]
        );
        store
            .put_stripe_share_capped(
                &stripe.record,
                0,
                &stripe.shares[0],
                Holding::Leased(&lease),
                1_000,
            )
            .unwrap();
        assert_eq!(store.owner_bytes(&owner.public_key()), 1_000);
        store
            .put_stripe_share(
                &stripe.record,
                1,
                &stripe.shares[1],
                Holding::Leased(&lease),
            )
            .unwrap();
        assert_eq!(store.owner_bytes(&owner.public_key()), 2_000);
        // A lease moved by hand moves the bytes too.
        let other = [9; 32];
        assert!(
            store
                .set_lease(&stripe.share_id(1), other, Some(5))
                .unwrap()
        );
        assert_eq!(store.owner_bytes(&owner.public_key()), 1_000);
        assert_eq!(store.owner_bytes(&other), 1_000);
    }
    // Rebuilt from the rows at open.
    let store = open(dir.path(), 16 * MIB);
    assert_eq!(store.owner_bytes(&owner.public_key()), 1_000);
    assert_eq!(store.owner_bytes(&[9; 32]), 1_000);
    let refused = store.put_stripe_share_capped(
        &stripe.record,
        2,
        &stripe.shares[2],
        Holding::Leased(&lease),
        1_500,
    );
    assert!(matches!(
        refused,
        Err(StoreError::PeerShareExceeded { held: 1_000, .. })
    ));
    // Expired shares removed by the node give their bytes back.
    for id in store.expired(10, 10).unwrap() {
        store.remove_share(&id).unwrap();
    }
    assert_eq!(store.owner_bytes(&[9; 32]), 0);
}

#[test]
fn concurrent_puts_of_one_owner_never_pass_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 64 * MIB);
    let owner = Identity::generate();
    let stripes: Vec<TestStripe> = (0..16)
        .map(|i| TestStripe::new(100 + i, 1, 2, 1000))
        .collect();
    let cap = 5_000;
    let stored: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = stripes
            .iter()
            .map(|stripe| {
                let store = store.clone();
                let owner = &owner;
                scope.spawn(move || {
                    let lease = lease_for(owner, stripe, 1_000);
                    (0..2)
                        .filter(|index| {
                            store
                                .put_stripe_share_capped(
                                    &stripe.record,
                                    *index as u8,
                                    &stripe.shares[*index],
                                    Holding::Leased(&lease),
                                    cap,
                                )
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .sum()
    });
    assert_eq!(stored, 5);
    assert_eq!(store.owner_bytes(&owner.public_key()), 5_000);
}
