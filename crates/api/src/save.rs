//! `POST /v1/save`: the node fetches a file and writes it to a path on this
//! machine itself, instead of streaming every byte to the command line over
//! HTTP.
//!
//! `kith get CAP -o PATH` with the node on the same machine (the API is on
//! a loopback address) asks for this first: the copy through the API cost
//! more CPU than fetching, verifying and decrypting the file (issue 20's
//! profile: per GiB, 4.8 CPU-seconds in the node and 1.9 in the command
//! line, for bytes that only moved between two processes).
//!
//! - The body is `{"cap": "CAP[/PATH]", "path": "/absolute/new/file"}`,
//!   with `"cache": false` to keep nothing in the node's store. The
//!   file is created new (`O_EXCL`, mode 0600): the call never overwrites
//!   anything, and the caller renames it into place once it is complete.
//! - Whatever fails before any byte is written is an ordinary error answer
//!   (a bad capability, not found, a folder). A path the node may not write
//!   (another user's folder when the node runs as its own user) is
//!   `403 forbidden`, and the command line then fetches through the API as
//!   before.
//! - Otherwise the answer is `application/x-ndjson`, one JSON object per
//!   line: first `{"size","download","name"}`, then `{"written"}` at most
//!   a few times a second, then `{"done": {"size"}}` once the file is
//!   written and synced, or `{"error": {"error","message"}}`, in which case
//!   the partial file has been removed. A failure halfway is thus a
//!   sentence, not a cut connection.
//!
//! The API token already lets its holder do anything the node can; this
//! route adds only "create a new file where the node's user may write".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use tokio::sync::mpsc;

use crate::error::{ApiError, ErrorKind};
use crate::files::Files;

/// Longest pause between two progress lines while bytes are written.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Progress lines buffered for a slow reader; a full buffer drops a
/// progress line (the next one says more), never the last line.
const LINES_AHEAD: usize = 16;

/// `POST /v1/save`'s body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SaveRequest {
    /// The file's capability, with an optional `/path` inside a folder.
    pub cap: String,
    /// Where to write it: an absolute path that does not exist yet, in a
    /// folder that does.
    pub path: String,
    /// Whether the node keeps what it fetched in its store, to serve it
    /// later (`true` when left out; `kith get --no-cache` sends `false`).
    #[serde(default = "crate::files::keep_by_default")]
    pub cache: bool,
}

/// One line of `POST /v1/save`'s answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SaveLine {
    /// The first line: what is coming.
    Started {
        /// The file's size in bytes.
        size: u64,
        /// The download's id, for `GET /v1/downloads/ID`.
        download: u64,
        /// The file's name, if its manifest has one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        name: Option<String>,
    },
    /// Bytes written so far.
    Written {
        /// Bytes written.
        written: u64,
    },
    /// The last line on success: the file is complete and synced.
    Done {
        /// What was written.
        done: SaveDone,
    },
    /// The last line on failure: the partial file is gone.
    Failed {
        /// The kind and the sentence, as in any error answer.
        error: SaveFailure,
    },
}

/// `{"done": …}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaveDone {
    /// Bytes written.
    pub size: u64,
}

/// `{"error": …}`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SaveFailure {
    /// The error's kind, as in the `error` field of an error answer.
    pub error: String,
    /// What went wrong, in one sentence.
    pub message: String,
}

/// `POST /v1/save`.
pub(crate) async fn save(
    State(files): State<Files>,
    Json(request): Json<SaveRequest>,
) -> Result<Response, ApiError> {
    let path = PathBuf::from(&request.path);
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "{} is not an absolute path",
            path.display()
        )));
    }
    let (capability, _) = crate::files::resolve_query(&files, &request.cap).await?;
    if capability.is_folder() {
        return Err(ApiError::bad_request(
            "this is a folder, not a file: kith get CAP -o FOLDER writes a whole folder",
        ));
    }
    let download = crate::files::open_file(&files, &capability, request.cache).await?;
    let size = download.manifest().file_size();
    let name = download.manifest().meta().name().map(str::to_owned);
    let file = create_new(&path)?;
    let id = files.keep_report(Box::new(download.report_handle()));
    let segments = download.into_stream();

    let (lines, answer) = mpsc::channel::<SaveLine>(LINES_AHEAD);
    let _ = lines.try_send(SaveLine::Started {
        size,
        download: id,
        name,
    });
    // Writing blocks: on a thread of its own, taking segments as they
    // come (no copy into an async file's buffer).
    tokio::task::spawn_blocking(move || {
        let last = match write_all(file, &path, segments, &lines) {
            Ok(size) => SaveLine::Done {
                done: SaveDone { size },
            },
            Err(error) => {
                if let Err(remove) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), %remove, "cannot remove a partial file");
                }
                SaveLine::Failed { error }
            }
        };
        // Waits for room: the last line is never dropped. A reader that
        // went away makes this fail, which is fine.
        let _ = lines.blocking_send(last);
    });
    let body = futures::stream::unfold(answer, |mut answer| async move {
        let line = answer.recv().await?;
        let mut text = serde_json::to_vec(&line).unwrap_or_default();
        text.push(b'\n');
        Some((
            Ok::<_, std::io::Error>(axum::body::Bytes::from(text)),
            answer,
        ))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Creates `path` new, mode 0600; refusals are error answers a person
/// understands.
fn create_new(path: &Path) -> Result<std::fs::File, ApiError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options.open(path).map_err(|error| {
        let shown = path.display();
        match error.kind() {
            std::io::ErrorKind::AlreadyExists => {
                ApiError::bad_request(format!("{shown} already exists; nothing was written"))
            }
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                ApiError::new(
                    ErrorKind::Forbidden,
                    format!("the node may not write {shown}: {error}"),
                )
            }
            std::io::ErrorKind::NotFound => {
                ApiError::bad_request(format!("cannot write {shown}: its folder does not exist"))
            }
            _ => ApiError::internal(format!("cannot write {shown}: {error}")),
        }
    })
}

/// Writes every segment to `file`, sending progress lines; the size
/// written, synced to disk.
fn write_all(
    mut file: std::fs::File,
    path: &Path,
    mut segments: mpsc::Receiver<Result<Vec<u8>, kith_node::GetError>>,
    lines: &mpsc::Sender<SaveLine>,
) -> Result<u64, SaveFailure> {
    let disk = |error: std::io::Error| {
        let kind = if error.raw_os_error() == Some(28) {
            ErrorKind::StorageFull
        } else {
            ErrorKind::Internal
        };
        SaveFailure {
            error: kind.name().to_owned(),
            message: format!("cannot write {}: {error}", path.display()),
        }
    };
    let mut written = 0u64;
    let mut reported = Instant::now();
    while let Some(segment) = segments.blocking_recv() {
        let segment = segment.map_err(|error| {
            let answer = ApiError::from(error);
            SaveFailure {
                error: answer.kind().name().to_owned(),
                message: answer.message().to_owned(),
            }
        })?;
        file.write_all(&segment).map_err(disk)?;
        written += segment.len() as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            // Dropped when the reader is behind: the next one says more.
            let _ = lines.try_send(SaveLine::Written { written });
        }
    }
    file.sync_all().map_err(disk)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_request_without_cache_keeps_what_it_fetches() {
        // Clients from before `cache` existed send only cap and path.
        let old: SaveRequest = serde_json::from_str(r#"{"cap":"kith:x","path":"/tmp/a"}"#).unwrap();
        assert!(old.cache);
        let uncached: SaveRequest =
            serde_json::from_str(r#"{"cap":"kith:x","path":"/tmp/a","cache":false}"#).unwrap();
        assert!(!uncached.cache);
    }

    #[test]
    fn each_line_reads_back_as_what_it_was() {
        let lines = [
            SaveLine::Started {
                size: 5,
                download: 1,
                name: Some("a.txt".into()),
            },
            SaveLine::Written { written: 3 },
            SaveLine::Done {
                done: SaveDone { size: 5 },
            },
            SaveLine::Failed {
                error: SaveFailure {
                    error: "network".into(),
                    message: "too few holders".into(),
                },
            },
        ];
        for line in lines {
            let text = serde_json::to_string(&line).unwrap();
            assert_eq!(
                serde_json::from_str::<SaveLine>(&text).unwrap(),
                line,
                "{text}"
            );
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("there");
        std::fs::write(&path, b"keep").unwrap();
        let error = create_new(&path).unwrap_err();
        assert!(
            error.message().contains("already exists"),
            "{}",
            error.message()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
        let missing = dir.path().join("no/such/folder/file");
        let error = create_new(&missing).unwrap_err();
        assert!(
            error.message().contains("does not exist"),
            "{}",
            error.message()
        );
    }
}
