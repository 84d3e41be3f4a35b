//! Encoding a file: read segments, encode them in parallel through a sliding
//! window, yield stripes in file order, then build and encode the manifest.
//!
//! The [`Encoder`] is an iterator so the caller decides what happens to each
//! stripe (store it, send it, count it) and how fast: it pulls, the encoder
//! reads. Memory is therefore bounded by the window — `W` segments of
//! `segment_size × n/k` bytes of shares in flight — plus as many spare
//! buffers and whatever the caller keeps, whatever the file size. `W` is
//! four times the number of rayon threads (at least 4).
//!
//! The calling thread reads (so the reader need not be `Send`: a locked
//! stdin is not) and hands each segment to the rayon pool as soon as it is
//! read; each segment is one independent task (own nonce, own buffer:
//! encrypt, Reed–Solomon, hash). Results come back in file order. As soon as
//! the oldest segment is yielded, one more is read and started, so the
//! workers always have up to `W` segments to work on: a worker that is slow
//! or descheduled (another process on the machine) delays only its own
//! segment, never a whole batch. An earlier version encoded fixed batches
//! of `B` segments with a barrier between them; the window replaced it
//! (`docs/codec.md` has the figures).
//!
//! Buffers: each stripe gives its buffer back to the encoder's pool when the
//! caller drops it (or passes it to [`Encoder::recycle`]), and the next
//! segment is read into it. Fresh multi-MiB allocations are served by `mmap`,
//! so every 4 KiB page would be faulted in and zeroed by the kernel, then
//! unmapped again, which cost about a quarter of the encoder's time.
//!
//! Rejected alternatives: a pipeline of stage threads (encrypt → code →
//! hash) moves each segment between cores and caches three times and
//! balances only as well as its slowest stage.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};

use kith_base::{Capability, ContentId, FileKey};

use crate::crypto::FileCipher;
use crate::error::{EncodeError, Part};
use crate::manifest::{FileMeta, Manifest, max_stripes};
use crate::params::Params;
use crate::stripe::{BufferPool, EncodedStripe, buffer_len, seal_stripe};

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

/// A segment handed to the pool; its stripe arrives on the channel.
type InFlight = mpsc::Receiver<Result<EncodedStripe, EncodeError>>;

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
    cipher: Arc<FileCipher>,
    meta: FileMeta,
    /// Most segments encoding at once.
    window: usize,
    /// Segments on the pool, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Buffers given back by dropped or recycled stripes.
    pool: Arc<BufferPool>,
    stripes: Vec<ContentId>,
    failed: bool,
}

/// The reading side.
struct Input<R> {
    reader: R,
    params: Params,
    max_stripes: u64,
    next_index: u32,
    file_size: u64,
    done: bool,
    /// An error met while reading, reported after the stripes before it.
    error: Option<EncodeError>,
}

impl<R: Read> Encoder<R> {
    /// An encoder reading the file from `reader`.
    pub fn new(reader: R, params: Params, key: FileKey, meta: FileMeta) -> Self {
        let window = (4 * rayon::current_num_threads()).max(4);
        Self {
            input: Input {
                reader,
                params,
                max_stripes: max_stripes(&meta),
                next_index: 0,
                file_size: 0,
                done: false,
                error: None,
            },
            params,
            cipher: Arc::new(FileCipher::new(&key)),
            key,
            meta,
            window,
            in_flight: VecDeque::with_capacity(window),
            pool: Arc::new(BufferPool::new(window)),
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
    /// sent, to be reused for a later segment. Dropping a stripe made by
    /// this encoder does the same; this also takes stripes from elsewhere.
    /// Reusing buffers spares the allocator fresh multi-MiB buffers (a page
    /// fault per 4 KiB on first touch).
    pub fn recycle(&mut self, stripe: EncodedStripe) {
        self.pool.put(stripe.into_parts().1);
    }

    /// Builds and encodes the manifest. Call it after the iterator returned
    /// `None`; before that, or after an error, it returns
    /// [`EncodeError::Unfinished`].
    pub fn finish(self) -> Result<EncodedFile, EncodeError> {
        if self.failed
            || !self.input.done
            || self.input.error.is_some()
            || !self.in_flight.is_empty()
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

    /// Reads segments and starts them on the pool until the window is full
    /// or the input ends.
    fn fill(&mut self) {
        let (k, n) = (self.params.k(), self.params.n());
        while self.in_flight.len() < self.window {
            let Some(Pending { index, buffer }) = self.input.read_segment(&self.pool) else {
                break;
            };
            let (sender, receiver) = mpsc::sync_channel(1);
            let cipher = Arc::clone(&self.cipher);
            let pool = Arc::clone(&self.pool);
            rayon::spawn(move || {
                let part = Part::Segment(index);
                let result = catch_unwind(AssertUnwindSafe(|| {
                    seal_stripe(&cipher, part, buffer, k, n)
                }))
                .unwrap_or_else(|_| Err(EncodeError::Internal(format!("encoding {part} panicked"))))
                .map(|stripe| stripe.with_pool(pool));
                // The encoder may have been dropped meanwhile: then nobody
                // wants the stripe.
                let _ = sender.send(result);
            });
            self.in_flight.push_back(receiver);
        }
    }
}

/// Waits for a segment's stripe. On a rayon worker thread (an encoder driven
/// from inside the pool) it runs other pool tasks while it waits, so that it
/// cannot block the very worker its segment is queued for.
fn wait(in_flight: &InFlight) -> Result<EncodedStripe, EncodeError> {
    let lost = || EncodeError::Internal("an encoding task vanished".to_owned());
    if rayon::current_thread_index().is_none() {
        return in_flight.recv().map_err(|_| lost())?;
    }
    loop {
        match in_flight.try_recv() {
            Ok(result) => return result,
            Err(mpsc::TryRecvError::Disconnected) => return Err(lost()),
            Err(mpsc::TryRecvError::Empty) => match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {}
                _ => std::thread::yield_now(),
            },
        }
    }
}

impl<R: Read> Input<R> {
    /// Reads the next segment into a buffer from the pool, straight into
    /// the front of the space its shares will occupy. Returns `None` at the
    /// end of the input or on an error, which is kept to be reported after
    /// the segments before it.
    fn read_segment(&mut self, pool: &BufferPool) -> Option<Pending> {
        if self.done {
            return None;
        }
        let (k, n) = (self.params.k(), self.params.n());
        let segment = self.params.segment_size() as usize;
        if u64::from(self.next_index) >= self.max_stripes {
            // One more segment would overflow the manifest. Only an error
            // if there is more input: peek one byte.
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
            return None;
        }
        // Read into spare capacity: `read_to_end` on a `Take` fills it
        // without zeroing it first (for readers that implement `read_buf`,
        // as files, sockets and slices do).
        let mut buffer = pool.take();
        buffer.reserve_exact(buffer_len(segment, k, n));
        match (&mut self.reader)
            .take(segment as u64)
            .read_to_end(&mut buffer)
        {
            Ok(len) => {
                if len < segment {
                    self.done = true;
                }
                // A file whose size is a multiple of the segment size ends
                // with an empty read; only the first segment of a file (the
                // empty file) may be empty.
                if len == 0 && self.next_index > 0 {
                    pool.put(buffer);
                    return None;
                }
                self.file_size += len as u64;
                let index = self.next_index;
                self.next_index += 1;
                Some(Pending { index, buffer })
            }
            Err(error) => {
                pool.put(buffer);
                self.error = Some(error.into());
                self.done = true;
                None
            }
        }
    }
}

impl<R: Read> Iterator for Encoder<R> {
    type Item = Result<EncodedStripe, EncodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.fill();
        let Some(oldest) = self.in_flight.pop_front() else {
            // Nothing left to encode: report a pending read error, or end.
            return self.input.error.take().map(|error| {
                self.failed = true;
                Err(error)
            });
        };
        let result = wait(&oldest);
        match result {
            Ok(stripe) => {
                // Start the next segment before handing this one over, so
                // the pool works while the caller stores the stripe.
                self.fill();
                self.stripes.push(stripe.id());
                Some(Ok(stripe))
            }
            Err(error) => {
                self.failed = true;
                self.in_flight.clear();
                Some(Err(error))
            }
        }
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
    fn encoding_inside_a_one_thread_pool_does_not_deadlock() {
        let params = Params::new(2, 3, 4096).unwrap();
        let data = vec![3u8; 20 * 4096 + 7];
        let encode = || {
            let key = FileKey::from_bytes([1; 32]);
            let mut encoder = Encoder::new(&data[..], params, key, FileMeta::none());
            let ids: Vec<ContentId> = (&mut encoder).map(|s| s.unwrap().id()).collect();
            (ids, encoder.finish().unwrap().capability)
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let inside = pool.install(encode);
        assert_eq!(inside.0.len(), 21);
        assert_eq!(inside, encode());
    }

    #[test]
    fn dropped_stripes_give_their_buffers_back() {
        let params = Params::new(2, 3, 4096).unwrap();
        let data = vec![5u8; 40 * 4096];
        let mut encoder = Encoder::new(
            &data[..],
            params,
            FileKey::from_bytes([1; 32]),
            FileMeta::none(),
        );
        let first = encoder.next().unwrap().unwrap();
        let pool = Arc::clone(&encoder.pool);
        drop(first);
        assert!(!pool.lock_len_is_zero(), "the buffer went back to the pool");
        for stripe in &mut encoder {
            drop(stripe.unwrap());
        }
        encoder.finish().unwrap();
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
