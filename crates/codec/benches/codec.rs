//! Codec benchmarks: the whole pipeline (encode, decode) on 64 MiB, and each
//! stage alone on the same data, single-threaded, so that the pipeline can be
//! compared with the machine's ceiling (see `docs/codec.md`). Also the
//! rejected alternatives (ChaCha20-Poly1305, RustCrypto's AEADs,
//! `reed-solomon-erasure`), which justify the choices.
//!
//! Every throughput is in bytes of *plaintext* (64 MiB per iteration), so the
//! seconds per byte of the stages add up to the pipeline's cost.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-codec cargo bench -p kith-codec`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use kith_codec::stripe::share_len_for;
use kith_codec::{
    ContentId, EncodeError, EncodedStripe, Encoder, FileKey, FileMeta, Params, StripeRecord,
    decode_to_writer, encode_all,
};

const DATA: usize = 64 << 20;
const SEGMENT: usize = 1 << 20;
const CODES: [(u32, u32); 2] = [(3, 5), (10, 16)];

fn data() -> Vec<u8> {
    // Not compressible, not all zero: a cheap xorshift stream.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..DATA)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(DATA as u64));
    group
}

fn encode(data: &[u8], params: Params) -> (Vec<EncodedStripe>, kith_codec::EncodedFile) {
    let mut stripes = Vec::new();
    let file = encode_all(
        data,
        params,
        FileKey::from_bytes([7; 32]),
        FileMeta::none(),
        |s| {
            stripes.push(s);
            Ok::<_, EncodeError>(())
        },
    )
    .unwrap();
    (stripes, file)
}

fn pipeline(c: &mut Criterion) {
    let data = data();
    let mut group = group(c, "pipeline");
    for (k, n) in CODES {
        let params = Params::new(k, n, SEGMENT as u32).unwrap();
        group.bench_function(format!("encode/{k}of{n}"), |b| {
            b.iter(|| {
                encode_all(
                    &data[..],
                    params,
                    FileKey::from_bytes([7; 32]),
                    FileMeta::none(),
                    |s| {
                        black_box(s);
                        Ok::<_, EncodeError>(())
                    },
                )
                .unwrap()
            })
        });
        group.bench_function(format!("encode/{k}of{n}/recycling buffers"), |b| {
            b.iter(|| {
                let key = FileKey::from_bytes([7; 32]);
                let mut encoder = Encoder::new(&data[..], params, key, FileMeta::none());
                while let Some(stripe) = encoder.next() {
                    encoder.recycle(black_box(stripe.unwrap()));
                }
                encoder.finish().unwrap()
            })
        });
        let (stripes, file) = encode(&data, params);
        let store: HashMap<ContentId, &EncodedStripe> = stripes
            .iter()
            .chain([&file.manifest_stripe])
            .map(|s| (s.id(), s))
            .collect();
        let missing = (n - k) as usize;
        for (label, lost) in [("all data shares", 0), ("first n-k lost", missing)] {
            let source = |id: ContentId| -> Option<(StripeRecord, Vec<Option<&[u8]>>)> {
                let stripe = store.get(&id)?;
                // Exactly k shares: the ones a reader would fetch.
                let shares = (0..n as usize)
                    .map(|i| (i >= lost && i < lost + k as usize).then(|| stripe.share(i)))
                    .collect();
                Some((stripe.record().clone(), shares))
            };
            group.bench_function(format!("decode/{k}of{n}/{label}"), |b| {
                b.iter(|| decode_to_writer(&file.capability, source, std::io::sink()).unwrap())
            });
        }
    }
    group.finish();
}

fn blake3_stage(c: &mut Criterion) {
    let mut group = group(c, "stage/blake3");
    // Encoding hashes n/k × the data (every share); decoding hashes the k
    // shares it uses, 1 × the data.
    for (label, factor_num, factor_den, k) in [
        ("1x (decode 3of5)", 1, 1, 3),
        ("5/3x (encode 3of5)", 5, 3, 3),
        ("16/10x (encode 10of16)", 16, 10, 10),
    ] {
        let bytes = vec![0x5au8; DATA * factor_num / factor_den];
        let share_len = share_len_for((SEGMENT + 16) as u32, k) as usize;
        group.bench_function(label, |b| {
            b.iter(|| {
                for share in bytes.chunks(share_len) {
                    black_box(blake3::hash(share));
                }
            })
        });
    }
    group.finish();
}

fn aead_stage(c: &mut Criterion) {
    use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    let mut buffer = data();
    let mut group = group(c, "stage/aead");
    let nonce_for = |i: usize| {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
        nonce
    };
    for (label, algorithm) in [
        ("aes256gcm ring", &AES_256_GCM),
        ("chacha20poly1305 ring", &CHACHA20_POLY1305),
    ] {
        let key = LessSafeKey::new(UnboundKey::new(algorithm, &[7; 32]).unwrap());
        group.bench_function(label, |b| {
            b.iter(|| {
                for (i, segment) in buffer.chunks_mut(SEGMENT).enumerate() {
                    let nonce = Nonce::assume_unique_for_key(nonce_for(i));
                    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(b"x"), segment);
                    let _ = black_box(tag.unwrap());
                }
            })
        });
    }
    {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[7; 32]).unwrap();
        group.bench_function("aes256gcm rustcrypto", |b| {
            b.iter(|| {
                for (i, segment) in buffer.chunks_mut(SEGMENT).enumerate() {
                    let nonce = nonce_for(i);
                    black_box(
                        cipher
                            .encrypt_in_place_detached((&nonce).into(), b"x", segment)
                            .unwrap(),
                    );
                }
            })
        });
    }
    {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let cipher = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&[7; 32]).unwrap();
        group.bench_function("chacha20poly1305 rustcrypto", |b| {
            b.iter(|| {
                for (i, segment) in buffer.chunks_mut(SEGMENT).enumerate() {
                    let nonce = nonce_for(i);
                    black_box(
                        cipher
                            .encrypt_in_place_detached((&nonce).into(), b"x", segment)
                            .unwrap(),
                    );
                }
            })
        });
    }
    group.finish();
}

/// The data of every segment cut into k padded shards, as the codec does.
fn shards(data: &[u8], k: usize) -> (usize, Vec<Vec<Vec<u8>>>) {
    let share_len = share_len_for((SEGMENT + 16) as u32, k as u8) as usize;
    let segments = data
        .chunks(SEGMENT)
        .map(|segment| {
            let mut padded = segment.to_vec();
            padded.resize(k * share_len, 0);
            padded.chunks(share_len).map(<[u8]>::to_vec).collect()
        })
        .collect();
    (share_len, segments)
}

fn erasure_stage(c: &mut Criterion) {
    use reed_solomon_erasure::galois_8::ReedSolomon;
    use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
    let data = data();
    let mut group = group(c, "stage/erasure");
    for (k, n) in CODES {
        let (k, n) = (k as usize, n as usize);
        let (share_len, segments) = shards(&data, k);
        // reed-solomon-simd.
        let mut encoder = ReedSolomonEncoder::new(k, n - k, share_len).unwrap();
        let recovery: Vec<Vec<Vec<u8>>> = segments
            .iter()
            .map(|shards| {
                for shard in shards {
                    encoder.add_original_shard(shard).unwrap();
                }
                encoder
                    .encode()
                    .unwrap()
                    .recovery_iter()
                    .map(<[u8]>::to_vec)
                    .collect()
            })
            .collect();
        group.bench_function(format!("rs-simd encode {k}of{n}"), |b| {
            b.iter(|| {
                for shards in &segments {
                    for shard in shards {
                        encoder.add_original_shard(shard).unwrap();
                    }
                    let result = encoder.encode().unwrap();
                    black_box(result.recovery(0));
                }
            })
        });
        let lost = n - k;
        let mut decoder = ReedSolomonDecoder::new(k, n - k, share_len).unwrap();
        group.bench_function(format!("rs-simd decode {k}of{n}, first n-k lost"), |b| {
            b.iter(|| {
                for (shards, recovery) in segments.iter().zip(&recovery) {
                    for (i, shard) in shards.iter().enumerate().skip(lost) {
                        decoder.add_original_shard(i, shard).unwrap();
                    }
                    for (i, shard) in recovery.iter().enumerate().take(lost) {
                        decoder.add_recovery_shard(i, shard).unwrap();
                    }
                    let result = decoder.decode().unwrap();
                    black_box(result.restored_original(0));
                }
            })
        });
        // reed-solomon-erasure, the long-time default.
        let rs = ReedSolomon::new(k, n - k).unwrap();
        let mut full: Vec<Vec<Vec<u8>>> = segments
            .iter()
            .map(|shards| {
                let mut all = shards.clone();
                all.resize(n, vec![0; share_len]);
                all
            })
            .collect();
        group.bench_function(format!("rs-erasure encode {k}of{n}"), |b| {
            b.iter(|| {
                for all in &mut full {
                    rs.encode(all).unwrap();
                }
            })
        });
        let mut slots: Vec<Vec<Option<Vec<u8>>>> = full
            .iter()
            .map(|all| all.iter().cloned().map(Some).collect())
            .collect();
        group.bench_function(format!("rs-erasure decode {k}of{n}, first n-k lost"), |b| {
            b.iter(|| {
                for all in &mut slots {
                    for slot in all.iter_mut().take(lost) {
                        *slot = None;
                    }
                    rs.reconstruct_data(all).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline, blake3_stage, aead_stage, erasure_stage);
criterion_main!(benches);
