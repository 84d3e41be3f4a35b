//! The codec's own speed on a file, in-process: the ceiling `bench/put-get.sh`
//! compares `kith put` and `kith get` against.
//!
//!     cargo run --release -p kith-codec --example codec_speed -- FILE [K/N]
//!
//! Prints two lines on stdout, `encode MB/s` and `decode MB/s` (10^6 bytes of
//! plaintext per second), with details on stderr.
//!
//! - Encode: the streaming [`Encoder`] over the file, as `kith put` drives it;
//!   every stripe is dropped as soon as it comes out (its buffer goes back to
//!   the encoder's pool), so the shares are discarded. Timed from opening the
//!   file to the encoded manifest.
//! - Decode: the file is encoded a second time with the same key (encoding
//!   is deterministic given the key, so the stripes match the manifest of the
//!   first pass), eight stripes at a time; each batch is decoded with
//!   [`decode_stripe`] from its k data shares (what `kith get` fetches first),
//!   the stripes of a batch in parallel on the rayon pool. Only the decoding
//!   is timed; the plaintext is compared with the file (untimed) and
//!   discarded.
//!
//! Memory stays bounded whatever the file size: the encoder's window plus
//! one batch of stripes.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use kith_codec::{EncodedStripe, Encoder, FileKey, FileMeta, Params, decode_stripe};
use rayon::prelude::*;

/// Stripes decoded at once (the node's get keeps 8 stripes in flight).
const BATCH: usize = 8;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: codec_speed FILE [K/N]  (default 3/5)")?;
    let params: Params = match args.next() {
        Some(shares) => shares.parse()?,
        None => Params::default(),
    };
    let k = usize::from(params.k());
    let n = usize::from(params.n());
    let key = FileKey::random();

    // Encode, shares discarded.
    let start = Instant::now();
    let mut encoder = Encoder::new(File::open(&path)?, params, key.clone(), FileMeta::none());
    let mut stripes = 0usize;
    for stripe in &mut encoder {
        drop(stripe?);
        stripes += 1;
    }
    let file = encoder.finish()?;
    let encode_time = start.elapsed();
    let size = file.manifest.file_size();
    let manifest = file.manifest;

    // Decode from the k data shares, batch by batch.
    let mut original = File::open(&path)?;
    let segment = params.segment_size() as usize;
    let mut expected = vec![0u8; segment];
    let mut encoder = Encoder::new(File::open(&path)?, params, key.clone(), FileMeta::none());
    let mut decode_time = Duration::ZERO;
    let mut index = 0u32;
    let mut decoded_bytes = 0u64;
    loop {
        let batch: Vec<EncodedStripe> = (&mut encoder).take(BATCH).collect::<Result<_, _>>()?;
        if batch.is_empty() {
            break;
        }
        let first = index;
        let started = Instant::now();
        let plaintexts: Vec<Vec<u8>> = batch
            .par_iter()
            .enumerate()
            .map(|(offset, stripe)| {
                let shares: Vec<Option<&[u8]>> =
                    (0..n).map(|i| (i < k).then(|| stripe.share(i))).collect();
                decode_stripe(
                    &key,
                    &manifest,
                    first + offset as u32,
                    stripe.record(),
                    &shares,
                )
            })
            .collect::<Result<_, _>>()?;
        decode_time += started.elapsed();
        drop(batch);
        for plaintext in &plaintexts {
            let want = &mut expected[..plaintext.len()];
            original.read_exact(want)?;
            if plaintext[..] != want[..] {
                return Err(format!("segment {index} decoded to other bytes than the file").into());
            }
            decoded_bytes += plaintext.len() as u64;
            index += 1;
        }
    }
    if decoded_bytes != size || index as usize != stripes {
        return Err(format!(
            "decoded {decoded_bytes} bytes in {index} stripes, expected {size} in {stripes}"
        )
        .into());
    }

    let mbps = |time: Duration| size as f64 / time.as_secs_f64() / 1e6;
    eprintln!(
        "codec {params}, {stripes} stripes of {segment} B, {} rayon threads: \
         encode {:.3} s, decode (k data shares) {:.3} s",
        rayon::current_num_threads(),
        encode_time.as_secs_f64(),
        decode_time.as_secs_f64(),
    );
    println!("encode {:.0}", mbps(encode_time));
    println!("decode {:.0}", mbps(decode_time));
    Ok(())
}
