//! kith's codec: files to verified, encrypted, erasure-coded shares and back.
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | [`params`] | [`Params`]: k, n and the segment size |
//! | [`encode`] | a file to stripes, segments in parallel and in order, then the manifest ([`encode_all`], [`Encoder`]) |
//! | [`decode`] | any k verified shares back to plaintext, or to all n shares (repair) |
//! | [`stripe`] | [`EncodedStripe`] and the public [`StripeRecord`] that names its shares |
//! | [`manifest`] | [`Manifest`]: what a file is made of, encrypted with the file key |
//! | [`folder`] | [`Folder`]: a folder's listing, stored as a file and read through a folder capability |
//! | `crypto` | key derivation and AES-256-GCM |
//! | `erasure` | the Reed–Solomon code |
//! | [`error`] | every way the codec fails, as typed errors |
//!
//! # What it does
//!
//! Pure and synchronous: bytes come in through [`std::io::Read`] and leave
//! through [`std::io::Write`] or as values; there is no async, no file system
//! and no network here, so every transform is unit-, property- and
//! known-answer-tested in isolation, and the node layer decides where bytes go.
//!
//! The pipeline, per file:
//!
//! 1. cut into segments of `segment_size` bytes (1 MiB by default; the empty
//!    file is one empty segment);
//! 2. encrypt each segment with AES-256-GCM under a key derived from the file
//!    key, nonce = segment index;
//! 3. pad the ciphertext to k equal shares and add n − k Reed–Solomon recovery
//!    shares, so any k rebuild it;
//! 4. name each share by its BLAKE3 hash, list the ids in a public
//!    [`StripeRecord`], and name the stripe by the record's hash;
//! 5. list the stripe ids in a [`Manifest`], encrypt it, and code it as one
//!    more stripe; its id and the file key make the [`Capability`].
//!
//! Decoding checks every step backwards: record against the trusted id, each
//! share against its id, ciphertext against its tag.
//!
//! ```
//! use kith_base::FileKey;
//! use kith_codec::{EncodeError, EncodedStripe, FileMeta, Params};
//! use kith_codec::{decode_stripe, encode_all, open_manifest};
//!
//! let data = b"hello, kith".repeat(1000);
//! let mut stored = Vec::new();
//! let params = Params::new(2, 4, 4096)?;
//! let file = encode_all(&data[..], params, FileKey::random(), FileMeta::none(), |stripe| {
//!     stored.push(stripe);
//!     Ok::<_, EncodeError>(())
//! })?;
//!
//! // A reader holding only the capability, with shares 0 and 1 of every
//! // stripe lost:
//! fn survivors(stripe: &EncodedStripe) -> Vec<Option<&[u8]>> {
//!     (0..4).map(|i| (i >= 2).then(|| stripe.share(i))).collect()
//! }
//! let cap = file.capability;
//! let record = file.manifest_stripe.record();
//! let manifest = open_manifest(&cap, record, &survivors(&file.manifest_stripe))?;
//! let mut out = Vec::new();
//! for (index, stripe) in stored.iter().enumerate() {
//!     let shares = survivors(stripe);
//!     out.extend(decode_stripe(cap.key(), &manifest, index as u32, stripe.record(), &shares)?);
//! }
//! assert_eq!(out, data);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `docs/storage-format.md` pins every byte; `docs/codec.md` explains the
//! choices and the measured speed.

mod crypto;
pub mod decode;
pub mod encode;
mod erasure;
pub mod error;
pub mod folder;
pub mod manifest;
pub mod params;
pub mod stripe;

pub use decode::{
    DecodedStripe, decode_stripe, decode_stripe_checked, decode_stripe_tolerant, decode_to_writer,
    open_manifest, reconstruct_shares,
};
pub use encode::{EncodedFile, Encoder, encode_all};
pub use error::{
    DecodeError, EncodeError, ManifestError, NameError, ParamsError, Part, RecordError,
};
pub use folder::{Folder, FolderEntry, FolderError};
pub use kith_base::{Capability, ContentId, FileKey};
pub use manifest::{FileMeta, Manifest};
pub use params::Params;
pub use stripe::{EncodedStripe, StripeRecord};
