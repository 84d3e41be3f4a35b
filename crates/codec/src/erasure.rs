//! The erasure code: systematic Reed–Solomon over GF(2^16) from
//! `reed-solomon-simd`.
//!
//! Systematic means shares `0..k` are the (padded) ciphertext itself, cut in
//! k pieces; shares `k..n` are recovery shards. A reader that gets the k data
//! shares (the common case on a healthy network) does no erasure decoding at
//! all, only a copy.
//!
//! Why `reed-solomon-simd` and not `reed-solomon-erasure` (the long-time
//! default in Rust): its O(n log n) FFT-based code with SIMD kernels encodes
//! and, above all, decodes several times faster on the stripe shapes kith uses
//! (`docs/codec.md` has the measured figures). `reed-solomon-erasure` inverts a
//! matrix per decode and runs a table-driven GF(2^8) multiply without SIMD
//! unless built with a C compiler. Its only constraint is that shard sizes be
//! even (3.x; 2.x wanted multiples of 64), which the share length formula in
//! [`crate::stripe::share_len_for`] provides.
//!
//! The encoder and decoder keep working buffers that are worth reusing: one of
//! each is cached per thread (rayon's worker threads live for the process), so
//! encoding a file allocates them once per core rather than once per stripe.

use std::cell::RefCell;

use reed_solomon_simd::{Error, ReedSolomonDecoder, ReedSolomonEncoder};

thread_local! {
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
}

/// Appends the n − k recovery shares to `stripe`, which holds the k data
/// shares (`k × share_len` bytes). Appending instead of writing into a
/// zeroed tail spares a memset of the whole recovery area.
pub(crate) fn encode(
    stripe: &mut Vec<u8>,
    k: usize,
    n: usize,
    share_len: usize,
) -> Result<(), Error> {
    debug_assert_eq!(stripe.len(), k * share_len);
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let encoder = match slot.as_mut() {
            Some(encoder) => {
                encoder.reset(k, n - k, share_len)?;
                encoder
            }
            None => slot.insert(ReedSolomonEncoder::new(k, n - k, share_len)?),
        };
        for share in stripe.chunks_exact(share_len) {
            encoder.add_original_shard(share)?;
        }
        let result = encoder.encode()?;
        stripe.reserve_exact((n - k) * share_len);
        for shard in result.recovery_iter() {
            stripe.extend_from_slice(shard);
        }
        Ok(())
    })
}

/// Returns the k data shares (`k × share_len` bytes: the padded
/// ciphertext) rebuilt from any k of the `shares` (index = share index;
/// `None` = missing). The caller has checked every given share against its
/// id and that at least k are given. `out` is a spare buffer to reuse (its
/// contents are discarded).
pub(crate) fn restore_data<S: AsRef<[u8]>>(
    shares: &[Option<S>],
    k: usize,
    share_len: usize,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let n = shares.len();
    out.clear();
    if shares[..k].iter().all(Option::is_some) {
        // The systematic fast path: the data shares are the ciphertext. Built
        // by appending, so the buffer is never zeroed first.
        out.reserve_exact(k * share_len);
        for share in shares[..k].iter().flatten() {
            out.extend_from_slice(share.as_ref());
        }
        return Ok(out);
    }
    out.resize(k * share_len, 0);
    for (index, share) in shares[..k].iter().enumerate() {
        if let Some(share) = share {
            out[index * share_len..(index + 1) * share_len].copy_from_slice(share.as_ref());
        }
    }
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decoder = match slot.as_mut() {
            Some(decoder) => {
                decoder.reset(k, n - k, share_len)?;
                decoder
            }
            None => slot.insert(ReedSolomonDecoder::new(k, n - k, share_len)?),
        };
        // Exactly k shares: more would only cost copies.
        let mut given = 0;
        for (index, share) in shares.iter().enumerate() {
            if given == k {
                break;
            }
            let Some(share) = share else { continue };
            if index < k {
                decoder.add_original_shard(index, share.as_ref())?;
            } else {
                decoder.add_recovery_shard(index - k, share.as_ref())?;
            }
            given += 1;
        }
        let result = decoder.decode()?;
        for (index, shard) in result.restored_original_iter() {
            out[index * share_len..(index + 1) * share_len].copy_from_slice(shard);
        }
        Ok(out)
    })
}
