//! The speed of each building block of the codec alone, on one core: the
//! ceilings `bench/run` puts kith's own figures beside.
//!
//!     cargo run --release -p kith-codec --example ceilings -- [MIB]
//!
//! Over MIB MiB (default 256) of bytes in memory, in 1 MiB segments as the
//! codec cuts a file, it times
//!
//! - `blake3`: hashing every segment (what share ids cost);
//! - `aead`: AES-256-GCM (ring) sealing every segment in place;
//! - `rs-encode`: Reed–Solomon 3-of-5 (reed-solomon-simd) parity for every
//!   segment split into 3 shards;
//! - `rs-decode`: rebuilding a segment from one data and two parity shards
//!   (two data shards lost: the slow case).
//!
//! Prints one line per block on stdout: `name MB/s` (10^6 bytes of segment
//! per second), the best of three passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const SEGMENT: usize = 1 << 20;
const PASSES: usize = 3;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|text| text.parse().expect("usage: ceilings [MIB]"))
        .unwrap_or(256);
    let mut data = vec![0u8; mib * SEGMENT];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    let bytes = data.len() as f64;
    let report = |name: &str, took: Duration| {
        println!("{name} {:.0}", bytes / took.as_secs_f64() / 1e6);
    };

    report(
        "blake3",
        best(|| {
            for segment in data.chunks(SEGMENT) {
                std::hint::black_box(blake3::hash(segment));
            }
        }),
    );

    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut buffer = data.clone();
    report(
        "aead",
        best(|| {
            for (i, segment) in buffer.chunks_mut(SEGMENT).enumerate() {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        segment,
                    )
                    .unwrap();
                let _ = std::hint::black_box(tag);
            }
        }),
    );
    drop(buffer);

    let (k, n) = (3usize, 5usize);
    // Shards must have an even length for reed-solomon-simd.
    let shard = (SEGMENT.div_ceil(k) + 1) & !1;
    let shards: Vec<Vec<Vec<u8>>> = data
        .chunks(SEGMENT)
        .map(|segment| {
            let mut padded = segment.to_vec();
            padded.resize(shard * k, 0);
            padded.chunks(shard).map(<[u8]>::to_vec).collect()
        })
        .collect();
    let mut parities: Vec<Vec<Vec<u8>>> = Vec::new();
    report(
        "rs-encode",
        best(|| {
            parities.clear();
            for originals in &shards {
                let parity = reed_solomon_simd::encode(k, n - k, originals.iter()).expect("encode");
                parities.push(parity);
            }
        }),
    );
    report(
        "rs-decode",
        best(|| {
            for (originals, parity) in shards.iter().zip(&parities) {
                let restored = reed_solomon_simd::decode(
                    k,
                    n - k,
                    [(0, &originals[0])],
                    parity.iter().enumerate(),
                )
                .expect("decode");
                std::hint::black_box(restored);
            }
        }),
    );
}

/// The fastest of [`PASSES`] runs of `work`.
fn best(mut work: impl FnMut()) -> Duration {
    (0..PASSES)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}
