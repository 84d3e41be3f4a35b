//! Where share bodies should live: plain files (what `kith-store` does) or
//! redb values. Puts 64 shares of 1 MiB, each durable before the next (as a
//! node acknowledges each share it receives), then gets them back with the
//! hash check a read always does.
//!
//! Run with `CARGO_TARGET_DIR=... cargo bench -p kith-store --bench store`;
//! `docs/store.md` records the numbers. The temp folders are created under
//! `KITH_BENCH_DIR` if set (to measure a particular disk), else the system
//! temp folder.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kith_base::{Identity, Lease};
use kith_codec::StripeRecord;
use kith_codec::stripe::share_len_for;
use kith_store::{ContentId, Holding, Store, StoreConfig};
use redb::{Database, ReadableDatabase, TableDefinition};
use tempfile::TempDir;

const SHARES: usize = 64;
const SHARE_LEN: usize = 1 << 20;
const BODIES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("bodies");

/// Cheap pseudo-random bytes (xorshift), different per seed.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn shares() -> Vec<(ContentId, Vec<u8>)> {
    (0..SHARES)
        .map(|s| {
            let bytes = pseudo_random(SHARE_LEN, s as u64);
            (ContentId::of(&bytes), bytes)
        })
        .collect()
}

fn temp_dir() -> TempDir {
    match std::env::var_os("KITH_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(PathBuf::from(dir)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn open_store(dir: &TempDir) -> Store {
    Store::open(
        dir.path(),
        StoreConfig {
            quota_bytes: 1 << 30,
        },
    )
    .unwrap()
}

/// An empty store in a fresh temp folder (kept alive beside it).
fn fresh_store() -> (TempDir, Store) {
    let dir = temp_dir();
    let store = open_store(&dir);
    (dir, store)
}

fn put_store(store: &Store, shares: &[(ContentId, Vec<u8>)]) {
    let stripe = ContentId::of(b"bench stripe");
    for (i, (id, bytes)) in shares.iter().enumerate() {
        store.put_share(stripe, i as u8, *id, bytes).unwrap();
    }
}

/// Bodies as redb values, with redb's default (1 GiB) cache: its best case.
fn put_redb(db: &Database, shares: &[(ContentId, Vec<u8>)], one_txn: bool) {
    if one_txn {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(BODIES).unwrap();
            for (id, bytes) in shares {
                table.insert(id.as_bytes(), bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        return;
    }
    for (id, bytes) in shares {
        let txn = db.begin_write().unwrap();
        txn.open_table(BODIES)
            .unwrap()
            .insert(id.as_bytes(), bytes.as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
}

fn bench_put(c: &mut Criterion) {
    let shares = shares();
    let mut group = c.benchmark_group("put_64x1MiB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes((SHARES * SHARE_LEN) as u64));

    group.bench_function("files (kith-store)", |b| {
        b.iter_batched(
            fresh_store,
            |(dir, store)| {
                put_store(&store, &shares);
                (dir, store)
            },
            BatchSize::PerIteration,
        );
    });
    for (name, one_txn) in [
        ("redb values, commit per share", false),
        ("redb values, one commit", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = temp_dir();
                    let db = Database::create(dir.path().join("bodies.redb")).unwrap();
                    (dir, db)
                },
                |(dir, db)| {
                    put_redb(&db, &shares, one_txn);
                    (dir, db)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn bench_get(c: &mut Criterion) {
    let shares = shares();
    let mut group = c.benchmark_group("get_64x1MiB");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((SHARES * SHARE_LEN) as u64));

    let store_dir = temp_dir();
    let store = open_store(&store_dir);
    put_store(&store, &shares);
    group.bench_function("files (kith-store)", |b| {
        b.iter(|| {
            for (id, _) in &shares {
                black_box(store.get_share(id).unwrap().unwrap());
            }
        });
    });

    // redb's default 1 GiB cache holds all 64 MiB; the 32 MiB cache the
    // store gives redb (sized for a Raspberry Pi) does not.
    for (name, cache) in [
        ("redb values, 1 GiB cache", 1usize << 30),
        ("redb values, 32 MiB cache", 32 << 20),
    ] {
        bench_get_redb(&mut group, &shares, name, cache);
    }
    group.finish();
}

fn bench_get_redb(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    shares: &[(ContentId, Vec<u8>)],
    name: &str,
    cache: usize,
) {
    let redb_dir = temp_dir();
    let db = redb::Builder::new()
        .set_cache_size(cache)
        .create(redb_dir.path().join("bodies.redb"))
        .unwrap();
    put_redb(&db, shares, false);
    group.bench_function(name, |b| {
        b.iter(|| {
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(BODIES).unwrap();
            for (id, _) in shares {
                let value = redb::ReadableTable::get(&table, id.as_bytes())
                    .unwrap()
                    .unwrap();
                // The same check and the same owned copy as `get_share`.
                assert!(id.verifies(value.value()));
                black_box(value.value().to_vec());
            }
        });
    });
}

/// A holder's side of a put: six writers at once (a putter keeps six
/// stripes in flight), each storing shares of 1 MiB stripes (3-of-5: 350 KiB
/// shares) with the stripe's record and the owner's lease. "three commits"
/// is how a holder stored them before the group commit (share, then record,
/// then lease); "one grouped commit" is [`Store::put_stripe_share`].
fn bench_holder_put(c: &mut Criterion) {
    const WRITERS: usize = 6;
    const STRIPES: usize = 96;
    let owner = Identity::generate();
    let stripes: Arc<Vec<(StripeRecord, Lease, Vec<u8>)>> = Arc::new(
        (0..STRIPES)
            .map(|s| holder_stripe(&owner, s as u64))
            .collect(),
    );
    let share_len = stripes[0].2.len();
    let mut group = c.benchmark_group("holder_put_6_writers_96x350KiB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes((STRIPES * share_len) as u64));
    for (name, grouped) in [("three commits", false), ("one grouped commit", true)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                fresh_store,
                |(dir, store)| {
                    let writers: Vec<_> = (0..WRITERS)
                        .map(|w| {
                            let (store, stripes) = (store.clone(), stripes.clone());
                            std::thread::spawn(move || {
                                for (record, lease, share) in
                                    stripes.iter().skip(w).step_by(WRITERS)
                                {
                                    if grouped {
                                        store
                                            .put_stripe_share(
                                                record,
                                                0,
                                                share,
                                                Holding::Leased(lease),
                                            )
                                            .unwrap();
                                    } else {
                                        let id = record.share_ids()[0];
                                        store
                                            .put_owned_share(
                                                record.id(),
                                                0,
                                                id,
                                                share,
                                                lease.owner(),
                                                Some(lease.expires_at()),
                                            )
                                            .unwrap();
                                        store.put_record(record).unwrap();
                                        store
                                            .set_stripe_lease(&record.id(), lease.as_bytes())
                                            .unwrap();
                                    }
                                }
                            })
                        })
                        .collect();
                    for writer in writers {
                        writer.join().unwrap();
                    }
                    (dir, store)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// A 3-of-5 stripe record for 1 MiB of "ciphertext" whose share 0 is real
/// bytes (the others are only ids), with a lease on it.
fn holder_stripe(owner: &Identity, seed: u64) -> (StripeRecord, Lease, Vec<u8>) {
    let cipher_len: u32 = 1 << 20;
    let share_len = share_len_for(cipher_len, 3);
    let share = pseudo_random(share_len as usize, seed);
    let mut bytes = b"KSR1".to_vec();
    bytes.extend_from_slice(&[3, 5, 0, 0]);
    bytes.extend_from_slice(&share_len.to_le_bytes());
    bytes.extend_from_slice(&cipher_len.to_le_bytes());
    bytes.extend_from_slice(ContentId::of(&share).as_bytes());
    for other in 1..5u64 {
        bytes.extend_from_slice(ContentId::of(&(seed * 8 + other).to_le_bytes()).as_bytes());
    }
    let record = StripeRecord::from_bytes(&bytes).unwrap();
    let lease = Lease::sign(owner, record.id(), [0; 32], 4_000_000_000);
    (record, lease, share)
}

criterion_group!(benches, bench_put, bench_get, bench_holder_put);
criterion_main!(benches);
