//! Received files on disk: written to a hidden partial file in the inbox
//! folder, hashed as they arrive, and only once complete and verified given
//! their name — never a path from the sender, never over an existing file.
//!
//! The name a letter carries was already checked to be a plain name (no
//! folders, no `..`, no control characters; [`kith_base::letter`]). Here it
//! is only ever joined to the inbox folder, and placed with a hard link,
//! which fails rather than replaces when the name is taken; then the next
//! free "name (1).ext" is tried. A partial file that is abandoned (a
//! dropped connection, a bad hash, a crash) is removed, by its guard or at
//! the next start.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const PARTIAL_PREFIX: &str = kith_base::letter::RESERVED_NAME_PREFIX;
/// Chunks queued between the network and the writer thread.
const WRITE_AHEAD: usize = 8;

/// A file being received: bytes go to a writer thread that writes and
/// hashes them, overlapping the network.
pub(crate) struct Incoming {
    partial: PathBuf,
    sender: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<blake3::Hash>>>,
    /// Buffers the writer is done with, for the next chunks: a fresh 1 MiB
    /// buffer per chunk cost page faults, zeroing and TLB shootdowns when
    /// it was freed (a tenth of a receiving node's CPU in a profile).
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    received: u64,
}

impl Incoming {
    /// Creates the partial file in `dir` (creating `dir` if needed).
    pub(crate) fn create(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let partial = dir.join(format!(
            "{PARTIAL_PREFIX}{}",
            data_encoding::HEXLOWER.encode(&random)
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_AHEAD);
        let (give_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITE_AHEAD + 2);
        let writer = std::thread::Builder::new()
            .name("kith-inbox-writer".into())
            .spawn(move || {
                let mut hasher = blake3::Hasher::new();
                for chunk in receiver {
                    hasher.update(&chunk);
                    file.write_all(&chunk)?;
                    let _ = give_back.try_send(chunk);
                }
                file.sync_all()?;
                Ok(hasher.finalize())
            })?;
        Ok(Self {
            partial,
            sender: Some(sender),
            writer: Some(writer),
            spare,
            received: 0,
        })
    }

    /// A buffer for the next chunk: one the writer is done with if there
    /// is one (at its old length, so a frame of that length is read into
    /// it without zeroing), else a new one.
    pub(crate) fn spare_buffer(&self, capacity: usize) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }

    /// Bytes handed over so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Hands over a chunk. Blocks the calling thread only while the writer
    /// is [`WRITE_AHEAD`] chunks behind; call from a blocking context or
    /// accept that short wait.
    pub(crate) async fn write(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        let sender = self
            .sender
            .clone()
            .ok_or_else(|| std::io::Error::other("already finished"))?;
        self.received += chunk.len() as u64;
        let sent = match sender.try_send(chunk) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Full(chunk)) => {
                tokio::task::spawn_blocking(move || sender.send(chunk))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(|_| ())
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() {
            // The writer stopped: its error says why.
            return Err(self
                .join()
                .await
                .err()
                .unwrap_or_else(|| std::io::Error::other("the writer stopped early")));
        }
        Ok(())
    }

    async fn join(&mut self) -> std::io::Result<blake3::Hash> {
        self.sender = None;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("already finished"))?;
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the writer thread panicked"))?
    }

    /// Waits until every byte is on disk (synced) and returns their hash.
    pub(crate) async fn finish(&mut self) -> std::io::Result<blake3::Hash> {
        self.join().await
    }

    /// Gives the finished file its name in the inbox folder: `name`, or
    /// `name (1)`, `name (2)`… if taken. Returns the path.
    pub(crate) fn place(mut self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self
            .partial
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let placed = place(&self.partial, &dir, name)?;
        let _ = fs::remove_file(&self.partial);
        self.partial = PathBuf::new();
        sync_dir(&dir);
        Ok(placed)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            // Unblocks once the channel is closed; the file is removed after.
            let _ = writer.join();
        }
        if !self.partial.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// Links `from` into `dir` under `name` or the first free variant of it.
pub(crate) fn place(from: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    // A second check, in case a caller skipped the letter's: never a path.
    if kith_base::letter::check_file_name(name).is_err() || name.starts_with(PARTIAL_PREFIX) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    for attempt in 0..10_000u32 {
        let candidate = if attempt == 0 {
            name.to_owned()
        } else {
            numbered(stem, extension, attempt)
        };
        let target = dir.join(&candidate);
        match fs::hard_link(from, &target) {
            Ok(()) => return Ok(target),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(std::io::Error::other(format!(
        "ten thousand files called {name:?} are already in the inbox"
    )))
}

/// `stem (n)extension`, the stem shortened (at a character boundary) so
/// that the whole stays within the file system's 255-byte name limit; an
/// extension too long to leave room is shortened too.
fn numbered(stem: &str, extension: &str, attempt: u32) -> String {
    let suffix = format!(" ({attempt})");
    let limit = kith_base::letter::MAX_FILE_NAME;
    let shorten = |text: &str, room: usize| {
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    };
    let extension = shorten(extension, limit / 2);
    let room = limit.saturating_sub(suffix.len() + extension.len());
    format!("{}{suffix}{extension}", shorten(stem, room))
}

/// Removes partial files a crash left in `dir`.
pub(crate) fn remove_leftovers(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_lands_under_a_free_name_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.jpg"), b"older").unwrap();
        let mut incoming = Incoming::create(dir.path()).unwrap();
        incoming.write(b"new ".to_vec()).await.unwrap();
        incoming.write(b"bytes".to_vec()).await.unwrap();
        let hash = incoming.finish().await.unwrap();
        assert_eq!(hash, blake3::hash(b"new bytes"));
        let placed = incoming.place("photo.jpg").unwrap();
        assert_eq!(placed, dir.path().join("photo (1).jpg"));
        assert_eq!(std::fs::read(&placed).unwrap(), b"new bytes");
        assert_eq!(
            std::fs::read(dir.path().join("photo.jpg")).unwrap(),
            b"older"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no partial file left: {names:?}");
    }

    /// A second file with a 255-byte name lands shortened to fit the limit
    /// (was "File name too long"), and so do a third and a multibyte one.
    #[test]
    fn a_duplicate_of_a_longest_name_is_shortened_to_fit() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, b"x").unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let long = format!("{}.txt", "n".repeat(251));
        let multibyte = format!("{}x.txt", "é".repeat(125));
        for name in [long.as_str(), multibyte.as_str()] {
            assert_eq!(name.len(), 255);
            let mut placed = Vec::new();
            for _ in 0..3 {
                let path = place(&source, &inbox, name).unwrap();
                let file_name = path.file_name().unwrap().to_str().unwrap().to_owned();
                assert!(file_name.len() <= 255, "{}", file_name.len());
                assert!(file_name.ends_with(".txt"), "{file_name}");
                placed.push(file_name);
            }
            assert_eq!(placed[0], name);
            assert!(placed[1].ends_with(" (1).txt"), "{}", placed[1]);
            assert!(placed[2].ends_with(" (2).txt"), "{}", placed[2]);
        }
        let long_extension = format!("a.{}", "e".repeat(253));
        place(&source, &inbox, &long_extension).unwrap();
        let second = place(&source, &inbox, &long_extension).unwrap();
        assert!(second.file_name().unwrap().len() <= 255);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_file_leaves_nothing_and_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut incoming = Incoming::create(dir.path()).unwrap();
        incoming.write(vec![1; 1000]).await.unwrap();
        drop(incoming);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let source = dir.path().join("source");
        std::fs::write(&source, b"x").unwrap();
        for bad in ["../escape", "..", "a/b", ".kith-partial-0"] {
            assert!(place(&source, dir.path(), bad).is_err(), "{bad:?}");
        }
        assert!(!dir.path().parent().unwrap().join("escape").exists());
        std::fs::write(dir.path().join(".kith-partial-left"), b"x").unwrap();
        assert_eq!(remove_leftovers(dir.path()), 1);
    }
}
