//! Encoding a file: read segments, encode batches of them in parallel, yield
//! stripes in file order, then build and encode the manifest.
//!
//! The [`Encoder`] is an iterator so the caller decides what happens to each
//! stripe (store it, send it, count it) and how fast: it pulls, the encoder
//! reads. Memory is therefore bounded by one batch — `B` segments of
//! `segment_size × n/k` bytes of shares — plus whatever the caller keeps,
//! whatever the file size. `B` is twice the number of rayon threads (at least
//! 2), enough to keep every core busy even when segments take uneven time.
//!
//! Inside a batch each segment is independent (own nonce, own buffer), so
//! rayon encodes them with no coordination. Rejected alternatives: a pipeline
//! of stage threads (encrypt → code → hash) moves each segment between cores
//! and caches three times and balances only as well as its slowest stage;
//! parallelism inside one segment (hash shares on several cores) only pays
//! when there are fewer segments than cores, i.e. for files of a few MiB, where
//! the whole encode takes milliseconds anyway.
//!
//! Reading is overlapped with encoding: while rayon encodes batch `i`, the
//! calling thread reads batch `i + 1` (reading is a copy from the page cache
//! or a socket buffer, and would otherwise leave the cores idle between
//! batches). So at most two batches are in memory: about
//! `2 × B × segment_size × n/k` bytes (24 MiB at 3-of-5, 1 MiB segments, two
//! cores), plus the stripes the caller has taken and not yet dropped.

use std::collections::VecDeque;
use std::io::{self, Read};

use kith_base::{Capability, ContentId, FileKey};
use rayon::prelude::*;

use crate::crypto::FileCipher;
use crate::error::{EncodeError, Part};
use crate::manifest::{FileMeta, Manifest, max_stripes};
use crate::params::Params;
use crate::stripe::{EncodedStripe, buffer_len, seal_stripe};

/// The result of encoding a file, once all data stripes have been taken.
#[derive(Debug)]
#[non_exhaustive]
pub struct EncodedFile {
    /// The stripe holding the encrypted manifest; store it like the others.
    pub manifest_stripe: EncodedStripe,
    /// The manifest (plaintext form, for the caller's bookkeeping).
    pub manifest: Manifest,
    /// The read capability: manifest stripe id and file key.
    pub capability: Capability,
}

/// A segment read from the input, waiting to be encoded.
struct Pending {
    index: u32,
    /// Exactly the segment's plaintext, with room for its shares.
    buffer: Vec<u8>,
}

/// Streams a file into encoded stripes. See the module docs.
///
/// ```
/// use kith_base::FileKey;
/// use kith_codec::{Encoder, FileMeta, Params};
///
/// let data = vec![42u8; 10_000];
/// let params = Params::new(3, 5, 4096)?;
/// let mut encoder = Encoder::new(&data[..], params, FileKey::random(), FileMeta::none());
/// let mut stripes = Vec::new();
/// for stripe in &mut encoder {
///     stripes.push(stripe?);
/// }
/// let file = encoder.finish()?;
/// assert_eq!(stripes.len(), 3);
/// assert_eq!(file.manifest.stripes().len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Encoder<R> {
    input: Input<R>,
    params: Params,
    key: FileKey,
    cipher: FileCipher,
    meta: FileMeta,
    /// Encoded, waiting to be yielded.
    ready: VecDeque<EncodedStripe>,
    /// Read ahead, waiting to be encoded.
    read_ahead: Vec<Pending>,
    stripes: Vec<ContentId>,
    failed: bool,
}

/// The reading side, split from the rest so that it can read the next batch
/// while the cipher encodes this one.
struct Input<R> {
    reader: R,
    params: Params,
    batch: usize,
    max_stripes: u64,
    next_index: u32,
    file_size: u64,
    done: bool,
    /// An error met while reading, reported after the stripes before it.
    error: Option<EncodeError>,
    /// Buffers given back with [`Encoder::recycle`].
    spares: Vec<Vec<u8>>,
}

impl<R: Read> Encoder<R> {
    /// An encoder reading the file from `reader`.
    pub fn new(reader: R, params: Params, key: FileKey, meta: FileMeta) -> Self {
        let batch = (2 * rayon::current_num_threads()).max(2);
        Self {
            input: Input {
                reader,
                params,
                batch,
                max_stripes: max_stripes(&meta),
                next_index: 0,
                file_size: 0,
                done: false,
                error: None,
                spares: Vec::new(),
            },
            params,
            cipher: FileCipher::new(&key),
            key,
            meta,
            ready: VecDeque::with_capacity(batch),
            read_ahead: Vec::new(),
            stripes: Vec::new(),
            failed: false,
        }
    }

    /// Checks up front that a file of `file_size` bytes fits in one manifest
    /// with these parameters and metadata, so a caller that knows the size
    /// fails before reading anything. The encoder also checks as it reads.
    pub fn check_file_size(
        params: Params,
        meta: &FileMeta,
        file_size: u64,
    ) -> Result<(), EncodeError> {
        let stripes = params.stripe_count(file_size);
        let max_stripes = max_stripes(meta);
        if stripes > max_stripes {
            return Err(EncodeError::ManifestTooLarge {
                stripes,
                max_stripes,
            });
        }
        Ok(())
    }

    /// Gives a stripe's buffer back once its shares have been stored or
    /// sent, to be reused for a later segment. Optional: it spares the
    /// allocator fresh multi-MiB buffers (a page fault per 4 KiB on first
    /// touch), which is worth several percent of encoding speed.
    pub fn recycle(&mut self, stripe: EncodedStripe) {
        if self.input.spares.len() < 2 * self.input.batch {
            self.input.spares.push(stripe.into_parts().1);
        }
    }

    /// Builds and encodes the manifest. Call it after the iterator returned
    /// `None`; before that, or after an error, it returns
    /// [`EncodeError::Unfinished`].
    pub fn finish(self) -> Result<EncodedFile, EncodeError> {
        if self.failed
            || !self.input.done
            || self.input.error.is_some()
            || !self.ready.is_empty()
            || !self.read_ahead.is_empty()
        {
            return Err(EncodeError::Unfinished);
        }
        let manifest = Manifest::new(self.input.file_size, self.params, self.stripes, self.meta)
            .map_err(|error| EncodeError::Internal(error.to_string()))?;
        let plain = manifest.to_bytes();
        let (k, n) = (self.params.k(), self.params.n());
        let mut buffer = Vec::with_capacity(buffer_len(plain.len(), k, n));
        buffer.extend_from_slice(&plain);
        let manifest_stripe = seal_stripe(&self.cipher, Part::Manifest, buffer, k, n)?;
        let capability = Capability::new(manifest_stripe.id(), self.key);
        Ok(EncodedFile {
            manifest_stripe,
            manifest,
            capability,
        })
    }
}

impl<R: Read> Input<R> {
    /// Reads up to one batch of segments. Stops early at the end of the input
    /// or on an error, which is kept to be reported after the segments before
    /// it. Each segment is read straight into the front of the buffer its
    /// shares will occupy.
    fn read_batch(&mut self) -> Vec<Pending> {
        let mut batch = Vec::with_capacity(self.batch);
        let (k, n) = (self.params.k(), self.params.n());
        let segment = self.params.segment_size() as usize;
        while batch.len() < self.batch && !self.done {
            if u64::from(self.next_index) >= self.max_stripes {
                // One more segment would overflow the manifest. Only an
                // error if there is more input: peek one byte.
                let mut probe = [0u8; 1];
                self.done = true;
                match read_full(&mut self.reader, &mut probe) {
                    Ok(0) => {}
                    Ok(_) => {
                        self.error = Some(EncodeError::ManifestTooLarge {
                            stripes: u64::from(self.next_index) + 1,
                            max_stripes: self.max_stripes,
                        });
                    }
                    Err(error) => self.error = Some(error.into()),
                }
                break;
            }
            // Read into spare capacity: `read_to_end` on a `Take` fills it
            // without zeroing it first (for readers that implement
            // `read_buf`, as files, sockets and slices do).
            let mut buffer = self.spares.pop().unwrap_or_default();
            buffer.clear();
            buffer.reserve_exact(buffer_len(segment, k, n));
            match (&mut self.reader)
                .take(segment as u64)
                .read_to_end(&mut buffer)
            {
                Ok(len) => {
                    if len < segment {
                        self.done = true;
                    }
                    // A file whose size is a multiple of the segment size
                    // ends with an empty read; only the first segment of a
                    // file (the empty file) may be empty.
                    if len == 0 && self.next_index > 0 {
                        break;
                    }
                    self.file_size += len as u64;
                    batch.push(Pending {
                        index: self.next_index,
                        buffer,
                    });
                    self.next_index += 1;
                }
                Err(error) => {
                    self.error = Some(error.into());
                    self.done = true;
                }
            }
        }
        batch
    }
}

fn encode_batch(
    cipher: &FileCipher,
    params: Params,
    batch: Vec<Pending>,
) -> Vec<Result<EncodedStripe, EncodeError>> {
    let (k, n) = (params.k(), params.n());
    batch
        .into_par_iter()
        .map(|pending| seal_stripe(cipher, Part::Segment(pending.index), pending.buffer, k, n))
        .collect()
}

impl<R: Read> Iterator for Encoder<R> {
    type Item = Result<EncodedStripe, EncodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(stripe) = self.ready.pop_front() {
            return Some(Ok(stripe));
        }
        if self.failed {
            return None;
        }
        if self.read_ahead.is_empty() && !self.input.done {
            self.read_ahead = self.input.read_batch();
        }
        if self.read_ahead.is_empty() {
            // Nothing left to encode: report a pending read error, or end.
            return self.input.error.take().map(|error| {
                self.failed = true;
                Err(error)
            });
        }
        let batch = std::mem::take(&mut self.read_ahead);
        let (cipher, params, input) = (&self.cipher, self.params, &mut self.input);
        // Encode this batch on the pool while this thread reads the next.
        // `in_place_scope` keeps the reading here, so the reader need not be
        // `Send` (a locked stdin is not).
        let mut encoded = Vec::new();
        let mut next = Vec::new();
        rayon::in_place_scope(|scope| {
            scope.spawn(|_| encoded = encode_batch(cipher, params, batch));
            if !input.done {
                next = input.read_batch();
            }
        });
        self.read_ahead = next;
        for result in encoded {
            match result {
                Ok(stripe) => {
                    self.stripes.push(stripe.id());
                    self.ready.push_back(stripe);
                }
                Err(error) => {
                    self.failed = true;
                    self.ready.clear();
                    self.read_ahead.clear();
                    return Some(Err(error));
                }
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// Encodes a whole file, handing each data stripe to `sink` in order, and
/// returns the manifest stripe and capability (the manifest stripe is not
/// passed to `sink`: store it from the result). The sink's error type absorbs
/// [`EncodeError`], so a caller can use its own error type throughout.
pub fn encode_all<R, E, F>(
    reader: R,
    params: Params,
    key: FileKey,
    meta: FileMeta,
    mut sink: F,
) -> Result<EncodedFile, E>
where
    R: Read,
    E: From<EncodeError>,
    F: FnMut(EncodedStripe) -> Result<(), E>,
{
    let mut encoder = Encoder::new(reader, params, key, meta);
    for stripe in &mut encoder {
        sink(stripe?)?;
    }
    Ok(encoder.finish()?)
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(len) => filled += len,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
impl<R> Encoder<R> {
    /// Lowers the manifest limit so tests can reach it with small files.
    pub(crate) fn set_max_stripes(&mut self, max_stripes: u64) {
        self.input.max_stripes = max_stripes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_segments_is_a_clear_error() {
        let params = Params::new(2, 3, 4096).unwrap();
        let data = vec![1u8; 3 * 4096 + 1];
        let mut encoder = Encoder::new(
            &data[..],
            params,
            FileKey::from_bytes([1; 32]),
            FileMeta::none(),
        );
        encoder.set_max_stripes(3);
        let results: Vec<_> = (&mut encoder).collect();
        assert_eq!(results.len(), 4);
        assert!(results[..3].iter().all(Result::is_ok));
        assert!(matches!(
            results[3],
            Err(EncodeError::ManifestTooLarge {
                stripes: 4,
                max_stripes: 3
            })
        ));
        assert!(matches!(encoder.finish(), Err(EncodeError::Unfinished)));

        // Exactly at the limit is fine.
        let data = vec![1u8; 3 * 4096];
        let mut encoder = Encoder::new(
            &data[..],
            params,
            FileKey::from_bytes([1; 32]),
            FileMeta::none(),
        );
        encoder.set_max_stripes(3);
        assert_eq!((&mut encoder).filter(Result::is_ok).count(), 3);
        assert!(encoder.finish().is_ok());

        let error =
            Encoder::<&[u8]>::check_file_size(params, &FileMeta::none(), 1 << 40).unwrap_err();
        assert!(error.to_string().contains("larger segments"), "{error}");
        assert!(Encoder::<&[u8]>::check_file_size(params, &FileMeta::none(), 1 << 30).is_ok());
    }

    #[test]
    fn finish_before_the_end_is_refused() {
        let params = Params::new(2, 3, 4096).unwrap();
        let data = vec![1u8; 100_000];
        let mut encoder = Encoder::new(
            &data[..],
            params,
            FileKey::from_bytes([1; 32]),
            FileMeta::none(),
        );
        assert!(encoder.next().is_some());
        assert!(matches!(encoder.finish(), Err(EncodeError::Unfinished)));
    }

    #[test]
    fn read_errors_come_after_the_stripes_before_them() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let len = buf.len().min(self.0);
                buf[..len].fill(9);
                self.0 -= len;
                Ok(len)
            }
        }
        let params = Params::new(2, 3, 4096).unwrap();
        let encoder = Encoder::new(
            Failing(2 * 4096 + 5),
            params,
            FileKey::from_bytes([1; 32]),
            FileMeta::none(),
        );
        let results: Vec<_> = encoder.collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(
            matches!(&results[2], Err(EncodeError::Io(error)) if error.to_string() == "disk on fire")
        );
    }
}
