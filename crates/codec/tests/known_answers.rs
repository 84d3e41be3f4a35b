//! Known answers pinning the storage format, and an independent re-derivation
//! of it (RustCrypto's AES-GCM and hand-built records instead of the codec's
//! own code), so that `docs/storage-format.md` and the code cannot drift.
//!
//! If a pinned value changes, every stored file and every capability ever
//! shared breaks: change the format only with a new magic, keep reading the
//! old one, and add new known answers beside these.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use common::{decode, encode, pattern};
use kith_codec::{ContentId, FileKey, FileMeta, Manifest, Params, StripeRecord};

const KEY: [u8; 32] = [7; 32];

fn sample() -> (Vec<kith_codec::EncodedStripe>, kith_codec::EncodedFile) {
    let params = Params::new(3, 5, 4096).unwrap();
    encode(
        &pattern(10_000),
        params,
        FileKey::from_bytes(KEY),
        FileMeta::none(),
    )
}

#[test]
fn pinned_ids_and_capability() {
    let (stripes, file) = sample();
    assert_eq!(stripes.len(), 3);
    assert_eq!(
        stripes[0].id().to_string(),
        "ceb1218ff29e25ff4cf0b6bf3c88433f2cfbf014f9944e01113a05484934aaf0"
    );
    assert_eq!(
        file.manifest_stripe.id().to_string(),
        "cedab07eef6dd86d1e33e698ea9217bbe8f427b7728e83d639d4b25a62ca771a"
    );
    assert_eq!(
        file.capability.to_string(),
        "kith:23ZAPWQv6dunkbijeFTLfMimN8WXjeaUJrEapybDNWz3xbhUPgTRxpZpPCa32cCMH4feb8hS8GbWB44gJFZcSdrH1teJiM"
    );
}

#[test]
fn pinned_with_name_and_media_type() {
    let params = Params::new(2, 4, 4096).unwrap();
    let meta = FileMeta::none()
        .with_name("notes.txt")
        .unwrap()
        .with_media_type("text/plain")
        .unwrap();
    let (_, file) = encode(b"", params, FileKey::from_bytes(KEY), meta);
    assert_eq!(
        file.manifest_stripe.id().to_string(),
        "4bd20779945039e38405bb6b65a980e43f5cca8a5c7f3c5f4e4339933f7e2a01"
    );
}

fn aes(context: &str) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&blake3::derive_key(context, &KEY)).unwrap()
}

/// Concatenates the k data shares and cuts off the padding.
fn ciphertext(stripe: &kith_codec::EncodedStripe) -> Vec<u8> {
    let record = stripe.record();
    let mut out: Vec<u8> = (0..usize::from(record.k()))
        .flat_map(|index| stripe.share(index).to_vec())
        .collect();
    assert!(
        out[record.cipher_len() as usize..].iter().all(|&b| b == 0),
        "padding is zero"
    );
    out.truncate(record.cipher_len() as usize);
    out
}

#[test]
fn format_matches_the_document() {
    let (stripes, file) = sample();
    let data = pattern(10_000);

    // Segments: AES-256-GCM under derive_key("kith 2026 segment key v1"),
    // nonce = 4 zero bytes ‖ index u64 LE, AAD "kith-segment-v1".
    let cipher = aes("kith 2026 segment key v1");
    for (index, stripe) in stripes.iter().enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(index as u64).to_le_bytes());
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext(stripe),
                    aad: b"kith-segment-v1",
                },
            )
            .unwrap();
        let start = index * 4096;
        assert_eq!(plain, data[start..(start + 4096).min(10_000)]);

        // Record: "KSR1" k n 0 0 share_len cipher_len ids; share id = BLAKE3.
        let record = stripe.record();
        let cipher_len = plain.len() as u32 + 16;
        let share_len = cipher_len.div_ceil(3).next_multiple_of(2);
        let mut expected = b"KSR1\x03\x05\x00\x00".to_vec();
        expected.extend_from_slice(&share_len.to_le_bytes());
        expected.extend_from_slice(&cipher_len.to_le_bytes());
        for share in stripe.shares() {
            assert_eq!(share.len(), share_len as usize);
            expected.extend_from_slice(blake3::hash(share).as_bytes());
        }
        assert_eq!(record.to_bytes(), expected);
        assert_eq!(stripe.id(), ContentId::from(blake3::hash(&expected)));
        assert_eq!(StripeRecord::from_bytes(&expected).unwrap(), *record);
        // Systematic: share 0 starts with the ciphertext's first bytes.
        assert_eq!(&stripe.share(0)[..16], &ciphertext(stripe)[..16]);
    }

    // Manifest: AES-256-GCM under derive_key("kith 2026 manifest key v1"),
    // zero nonce, AAD "kith-manifest-v1".
    let plain = aes("kith 2026 manifest key v1")
        .decrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &ciphertext(&file.manifest_stripe),
                aad: b"kith-manifest-v1",
            },
        )
        .unwrap();
    let mut expected = b"KMF1".to_vec();
    expected.extend_from_slice(&10_000u64.to_le_bytes());
    expected.extend_from_slice(&4096u32.to_le_bytes());
    expected.extend_from_slice(&[3, 5, 0, 0]);
    expected.extend_from_slice(&3u32.to_le_bytes());
    for stripe in &stripes {
        expected.extend_from_slice(stripe.id().as_bytes());
    }
    expected.extend_from_slice(&[0, 0, 0]); // no name, no media type
    assert_eq!(plain, expected);
    assert_eq!(Manifest::from_bytes(&plain).unwrap(), file.manifest);

    // Capability: kith: + base58(1 ‖ manifest stripe id ‖ key ‖ checksum).
    let cap = file.capability.to_bytes();
    assert_eq!(cap[0], 1);
    assert_eq!(&cap[1..33], file.manifest_stripe.id().as_bytes());
    assert_eq!(&cap[33..65], &KEY);
    assert_eq!(
        &cap[65..],
        &blake3::derive_key("kith 2026 capability checksum v1", &cap[..65])[..4]
    );

    let out = decode(
        &file.capability,
        &file.manifest_stripe,
        &stripes,
        |_, share| share >= 2,
    )
    .unwrap();
    assert_eq!(out, data);
}
