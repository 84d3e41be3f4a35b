//! Fuzzes the codec's decoding of peers' shares: `open_manifest` and
//! `decode_stripe_checked`, with a capability, a stripe record, a manifest
//! and share slots all taken from the input (rebuild from k of n, length
//! checks, decryption). Layout: `manifest id 32 ‖ key 32 ‖ u16 len ‖
//! record ‖ u16 len ‖ manifest ‖ index u32 ‖ (present u8 ‖ u32 len ‖
//! share)*`, all little-endian, so real encodings seed it.
//!
//! Asserts: no panic, whatever the shares' count and lengths; decoded
//! plaintext is exactly the manifest's segment length.
#![no_main]

use kith_base::{Capability, ContentId, FileKey};
use kith_codec::{Manifest, StripeRecord, decode_stripe_checked, open_manifest};
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(len)?;
    *data = tail;
    Some(head)
}

fn take_u16(data: &mut &[u8]) -> Option<usize> {
    take(data, 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(ids) = take(&mut data, 64) else {
        return;
    };
    let (id, key) = ids.split_at(32);
    let cap = Capability::new(
        ContentId::from_bytes(id.try_into().unwrap()),
        FileKey::from_bytes(key.try_into().unwrap()),
    );
    let Some(record) = take_u16(&mut data).and_then(|len| take(&mut data, len)) else {
        return;
    };
    let Some(manifest) = take_u16(&mut data).and_then(|len| take(&mut data, len)) else {
        return;
    };
    let Some(index) = take(&mut data, 4) else {
        return;
    };
    let index = u32::from_le_bytes(index.try_into().unwrap());
    let mut shares: Vec<Option<&[u8]>> = Vec::new();
    while let Some(present) = take(&mut data, 1) {
        let Some(len) = take(&mut data, 4) else { break };
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let len = len.min(data.len());
        let share = take(&mut data, len).unwrap_or_default();
        shares.push((present[0] != 0).then_some(share));
    }
    let Ok(record) = StripeRecord::from_bytes(record) else {
        return;
    };
    let _ = open_manifest(&cap, &record, &shares);
    if let Ok(manifest) = Manifest::from_bytes(manifest)
        && let Ok(plain) = decode_stripe_checked(cap.key(), &manifest, index, &record, &shares)
    {
        let len = manifest.segment_len(index);
        assert!(len.is_some_and(|len| plain.len() == len as usize));
    }
});
