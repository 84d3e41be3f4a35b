//! The file routes: put (streamed request body), get (streamed answer
//! body), the report of a finished download, and stat.
//!
//! - `POST /v1/put?shares=K/N&name=NAME` — the body is the file; the answer
//!   is [`Stored`] once every share is placed. The body is read as it
//!   arrives (a bounded channel feeds the encoder), so a 10 GiB file never
//!   sits in memory. On failure the rest of the body is read and dropped
//!   before the error is sent, so the client sees the error, not a reset.
//! - `GET /v1/get?cap=CAP` — the manifest is opened first (so "not found"
//!   and a bad capability are proper error answers), then the file is
//!   streamed with its `Content-Length`; a failure midway cuts the body
//!   short, which the client detects by the length. The `x-kith-download`
//!   header names the download, whose report (bad shares met, peers used)
//!   `GET /v1/downloads/ID` gives once the body has ended.
//!   `CAP/PATH` reads a file inside a folder. `&cache=false` keeps nothing
//!   of it in the node's store (`kith get --no-cache`); by default the node
//!   keeps what it fetched and serves it to later downloaders.
//! - `POST /v1/folder?shares=K/N` — the body is [`NewFolder`], the entries
//!   of one folder (their files stored already); the answer is [`Stored`]
//!   with the folder's capability. Media types come from the names.
//! - `GET /v1/ls?cap=CAP[/PATH]` — [`Listing`], a folder's entries.
//! - `GET /v1/resolve?cap=CAP[/PATH]` — [`Resolved`]: what the path names.
//! - `GET /v1/stat?cap=CAP` — [`StatAnswer`].
//! - `POST /v1/rm?cap=CAP` — deletes the shares this node stored from
//!   every holder; [`kith_node::RmReport`] counts what happened.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use kith_base::{Capability, CapabilityKind, CapabilityPath};
use kith_node::{ChunkReader, Detected, FileMeta, Folder, FolderEntry, GetReport, Node, Params};
use serde::Deserialize;

use crate::error::ApiError;
use crate::types::{
    CorruptShare, DownloadReport, Holder, Listing, ListingEntry, NewFolder, Resolved, StatAnswer,
    StatStripe, Stored,
};

/// Finished or running downloads whose reports are kept.
const REPORTS_KEPT: usize = 64;
/// Batches of request body buffered between the connection and the
/// encoder.
const BODY_BATCHES_AHEAD: usize = 8;
/// Request-body chunks (a few KiB each from the HTTP layer) are gathered
/// into batches of about this size before crossing to the encoder's thread:
/// one hand-over per chunk cost more CPU in thread wake-ups than the
/// encoding itself.
const BODY_BATCH: usize = 1 << 20;
/// Largest `POST /v1/folder` body: a listing is at most 64 MiB, and its
/// JSON (capabilities as text, field names) about half as large again.
const MAX_FOLDER_REQUEST: usize = 100 << 20;

type ReportFn = Box<dyn Fn() -> GetReport + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Files {
    pub(crate) node: Node,
    next_id: Arc<AtomicU64>,
    reports: Arc<Mutex<VecDeque<(u64, ReportFn)>>>,
}

impl Files {
    /// Keeps a download's report (the last [`REPORTS_KEPT`] are kept);
    /// its id, for `GET /v1/downloads/ID`.
    pub(crate) fn keep_report(&self, report: ReportFn) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if reports.len() >= REPORTS_KEPT {
            reports.pop_front();
        }
        reports.push_back((id, report));
        id
    }
}

/// The file routes, with their state.
pub(crate) fn router(node: Node) -> Router {
    let files = Files {
        node,
        next_id: Arc::new(AtomicU64::new(1)),
        reports: Arc::new(Mutex::new(VecDeque::new())),
    };
    Router::new()
        .route("/v1/put", post(put))
        .route("/v1/get", get(get_file))
        .route("/v1/save", post(crate::save::save))
        .route(
            "/v1/folder",
            post(put_folder).layer(DefaultBodyLimit::max(MAX_FOLDER_REQUEST)),
        )
        .route("/v1/ls", get(list))
        .route("/v1/resolve", get(resolve))
        .route("/v1/downloads/{id}", get(download_report))
        .route("/v1/stat", get(stat))
        .route("/v1/rm", post(remove))
        .with_state(files)
}

#[derive(Debug, Deserialize)]
struct PutQuery {
    shares: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CapQuery {
    cap: String,
}

/// `GET /v1/get`'s query.
#[derive(Debug, Deserialize)]
struct GetQuery {
    cap: String,
    /// `false`: keep nothing of the file in the node's store.
    #[serde(default = "keep_by_default")]
    cache: bool,
}

/// What a get does when the caller does not say: keep what it fetched.
pub(crate) fn keep_by_default() -> bool {
    true
}

/// Opens the file `capability` reads, keeping what it fetches in the
/// node's store or not (`cache`).
pub(crate) async fn open_file(
    files: &Files,
    capability: &Capability,
    cache: bool,
) -> Result<kith_node::Download, ApiError> {
    let handle = files.node.files();
    Ok(if cache {
        handle.get(capability).await?
    } else {
        handle.get_uncached(capability).await?
    })
}

/// Parses a capability from a query.
fn parse_cap(text: &str) -> Result<Capability, ApiError> {
    text.trim()
        .parse::<Capability>()
        .map_err(|error| ApiError::bad_request(format!("not a valid capability: {error}")))
}

/// What `CAP[/PATH]` in a query names: its capability, and the media type
/// its folder lists for it.
pub(crate) async fn resolve_query(
    files: &Files,
    text: &str,
) -> Result<(Capability, Option<String>), ApiError> {
    let target = text
        .parse::<CapabilityPath>()
        .map_err(|error| ApiError::bad_request(format!("not a valid capability: {error}")))?;
    Ok(files
        .node
        .files()
        .resolve(&target.capability, &target.path)
        .await?)
}

/// The media type a name's extension suggests, if any.
pub(crate) fn media_type_of(name: &str) -> Option<String> {
    mime_guess::from_path(name).first_raw().map(str::to_owned)
}

/// Parses `?shares=K/N` (the default when absent).
fn parse_params(shares: Option<&str>) -> Result<Params, ApiError> {
    match shares {
        None => Ok(Params::default()),
        Some(text) => text
            .parse::<Params>()
            .map_err(|error| ApiError::bad_request(format!("--shares {text:?}: {error}"))),
    }
}

async fn put(
    State(files): State<Files>,
    Query(query): Query<PutQuery>,
    request: Request,
) -> Response {
    let params = match parse_params(query.shares.as_deref()) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let meta = match query.name.as_deref() {
        None => FileMeta::none(),
        Some(name) => {
            let named =
                FileMeta::none()
                    .with_name(name)
                    .and_then(|meta| match media_type_of(name) {
                        Some(media) => meta.with_media_type(&media),
                        None => Ok(meta),
                    });
            match named {
                Ok(meta) => meta,
                Err(error) => {
                    return ApiError::bad_request(format!("file name {name:?}: {error}"))
                        .into_response();
                }
            }
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(BODY_BATCHES_AHEAD);
    let mut body = request.into_body().into_data_stream();
    // Feeds the encoder in batches; once the encoder stops taking (done or
    // failed), keeps reading so the client gets to read the answer.
    let pump = tokio::spawn(async move {
        let mut open = true;
        let mut batch = Vec::with_capacity(BODY_BATCH);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) if open => {
                    for full in fill_batch(&mut batch, &bytes) {
                        open = sender.send(Ok(full)).await.is_ok();
                        if !open {
                            break;
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    if open {
                        let _ = sender
                            .send(Err(std::io::Error::other(error.to_string())))
                            .await;
                    }
                    return;
                }
            }
        }
        if open && !batch.is_empty() {
            let _ = sender.send(Ok(batch)).await;
        }
    });
    let reader = ChunkReader::new(receiver);
    let result = files.node.files().put(Box::new(reader), params, meta).await;
    let _ = pump.await;
    match result {
        Ok(report) => Json(Stored {
            capability: report.capability.to_string(),
            size: report.file_size,
            stripes: report.stripes,
            shares: format!("{}/{}", report.params.k(), report.params.n()),
            peers: report.peers,
        })
        .into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Appends `bytes` to `batch`, never past [`BODY_BATCH`], and returns the
/// batches filled on the way (each exactly `BODY_BATCH` long; usually none
/// or one). A batch allowed to overflow would grow its buffer, and the
/// growth copies the whole megabyte once more: 2 % of the uploading node's
/// CPU in a 1 GiB put (issue 20's profile).
fn fill_batch(batch: &mut Vec<u8>, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut full = Vec::new();
    while !bytes.is_empty() {
        let room = BODY_BATCH - batch.len();
        let (now, later) = bytes.split_at(room.min(bytes.len()));
        batch.extend_from_slice(now);
        bytes = later;
        if batch.len() == BODY_BATCH {
            full.push(std::mem::replace(batch, Vec::with_capacity(BODY_BATCH)));
        }
    }
    full
}

async fn get_file(
    State(files): State<Files>,
    Query(query): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let (capability, listed_media) = resolve_query(&files, &query.cap).await?;
    if capability.is_folder() {
        return Err(ApiError::bad_request(
            "this is a folder, not a file: list it with kith ls, or get it with kith get CAP -o \
             FOLDER to write the whole folder",
        ));
    }
    let download = open_file(&files, &capability, query.cache).await?;
    let size = download.manifest().file_size();
    let name = download.manifest().meta().name().map(str::to_owned);
    let media = listed_media.or_else(|| download.manifest().meta().media_type().map(str::to_owned));
    let id = files.keep_report(Box::new(download.report_handle()));
    let mut response = Response::new(body_of(download.into_stream()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let media = media
        .and_then(|media| HeaderValue::from_str(&media).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, media);
    headers.insert("x-kith-download", HeaderValue::from(id));
    if let Some(name) = name.and_then(|name| HeaderValue::from_str(&name).ok()) {
        headers.insert("x-kith-name", name);
    }
    Ok(response)
}

/// `POST /v1/folder`: stores one folder's listing.
async fn put_folder(
    State(files): State<Files>,
    Query(query): Query<PutQuery>,
    Json(request): Json<NewFolder>,
) -> Result<Json<Stored>, ApiError> {
    let params = parse_params(query.shares.as_deref())?;
    let mut entries = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        let capability = entry.capability.parse::<Capability>().map_err(|error| {
            ApiError::bad_request(format!(
                "entry {:?}: not a valid capability: {error}",
                entry.name
            ))
        })?;
        let media = match capability.kind() {
            CapabilityKind::File => media_type_of(&entry.name),
            CapabilityKind::Folder => None,
        };
        let entry = FolderEntry::new(&entry.name, entry.size, media.as_deref(), capability)
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        entries.push(entry);
    }
    let folder = Folder::new(entries).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let report = files.node.files().put_folder(&folder, params).await?;
    Ok(Json(Stored {
        capability: report.capability.to_string(),
        size: folder.total_size(),
        stripes: report.stripes,
        shares: format!("{}/{}", report.params.k(), report.params.n()),
        peers: report.peers,
    }))
}

/// `GET /v1/resolve`: what a path inside a folder names.
async fn resolve(
    State(files): State<Files>,
    Query(query): Query<CapQuery>,
) -> Result<Json<Resolved>, ApiError> {
    let (capability, media_type) = resolve_query(&files, &query.cap).await?;
    Ok(Json(Resolved {
        kind: capability.kind().as_str().to_owned(),
        capability: capability.to_string(),
        media_type,
    }))
}

/// `GET /v1/ls`: a folder's entries.
async fn list(
    State(files): State<Files>,
    Query(query): Query<CapQuery>,
) -> Result<Json<Listing>, ApiError> {
    let (capability, _) = resolve_query(&files, &query.cap).await?;
    let folder = files.node.files().folder(&capability).await?;
    Ok(Json(Listing {
        capability: capability.to_string(),
        entries: folder
            .entries()
            .iter()
            .map(|entry| ListingEntry {
                name: entry.name().to_owned(),
                kind: entry.kind().as_str().to_owned(),
                size: entry.size(),
                media_type: entry.media_type().map(str::to_owned),
                capability: entry.capability().to_string(),
            })
            .collect(),
    }))
}

/// A response body of a download's segments as they arrive; a failure
/// midway ends the body short (the reader detects it by the length) and
/// is logged.
pub(crate) fn body_of(
    segments: tokio::sync::mpsc::Receiver<Result<Vec<u8>, kith_node::GetError>>,
) -> Body {
    let body = futures::stream::unfold(segments, |mut segments| async move {
        let item = segments.recv().await?;
        let item = item.map(axum::body::Bytes::from).map_err(|error| {
            tracing::warn!(%error, "download failed midway");
            std::io::Error::other(error.to_string())
        });
        Some((item, segments))
    });
    Body::from_stream(body)
}

async fn download_report(
    State(files): State<Files>,
    Path(id): Path<u64>,
) -> Result<Json<DownloadReport>, ApiError> {
    let reports = files.reports.lock().unwrap_or_else(|e| e.into_inner());
    let Some((_, report)) = reports.iter().find(|(kept, _)| *kept == id) else {
        return Err(ApiError::not_found(format!(
            "no download {id} (only the last {REPORTS_KEPT} are kept)"
        )));
    };
    let report = report();
    Ok(Json(DownloadReport {
        corrupt: report
            .corrupt
            .iter()
            .map(|bad| CorruptShare {
                peer_id: bad.peer.to_string(),
                stripe: bad.stripe.to_string(),
                index: bad.index,
                detected: match bad.detected {
                    Detected::OnHolderDisk => "holder",
                    Detected::ByVerification => "verification",
                }
                .to_owned(),
            })
            .collect(),
        peers: report.peers,
        shares: report.shares,
    }))
}

async fn remove(
    State(files): State<Files>,
    Query(query): Query<CapQuery>,
) -> Result<Json<kith_node::RmReport>, ApiError> {
    let capability = parse_cap(&query.cap)?;
    Ok(Json(files.node.files().remove(&capability).await?))
}

async fn stat(
    State(files): State<Files>,
    Query(query): Query<CapQuery>,
) -> Result<Json<StatAnswer>, ApiError> {
    let capability = parse_cap(&query.cap)?;
    let report = files.node.files().stat(&capability).await?;
    let stripe = |stat: &kith_node::StripeStat| StatStripe {
        id: stat.id.to_string(),
        health: stat.health.to_string(),
        repairing: stat.repairing,
        shares: stat.shares,
        peers: stat.peers,
        holders: stat
            .holders
            .iter()
            .map(|(index, peer)| Holder {
                index: *index,
                peer_id: peer.to_string(),
            })
            .collect(),
    };
    Ok(Json(StatAnswer {
        size: report.manifest.file_size(),
        name: report.manifest.meta().name().map(str::to_owned),
        shares: format!(
            "{}/{}",
            report.manifest.params().k(),
            report.manifest.params().n()
        ),
        asked: report.asked,
        manifest: stripe(&report.manifest_stripe),
        stripes: report.stripes.iter().map(stripe).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_keeps_what_it_fetches_unless_told_not_to() {
        let query = |uri: &str| {
            Query::<GetQuery>::try_from_uri(&uri.parse().expect("a URI"))
                .map(|Query(query)| query.cache)
        };
        assert!(matches!(query("/v1/get?cap=kith:x"), Ok(true)));
        assert!(matches!(query("/v1/get?cap=kith:x&cache=true"), Ok(true)));
        assert!(matches!(query("/v1/get?cap=kith:x&cache=false"), Ok(false)));
        assert!(query("/v1/get?cap=kith:x&cache=no").is_err());
    }

    #[test]
    fn body_batches_are_whole_and_never_grow() {
        // Chunks of awkward sizes, as the HTTP layer hands them over.
        let sizes = [
            1,
            7_000,
            BODY_BATCH - 1,
            3,
            BODY_BATCH,
            2 * BODY_BATCH + 5,
            4_096,
        ];
        let input: Vec<u8> = (0..sizes.iter().sum::<usize>())
            .map(|i| (i % 251) as u8)
            .collect();
        let mut batch = Vec::with_capacity(BODY_BATCH);
        let mut batches = Vec::new();
        let mut at = 0;
        for size in sizes {
            batches.extend(fill_batch(&mut batch, &input[at..at + size]));
            at += size;
            assert!(
                batch.len() < BODY_BATCH,
                "a full batch is handed over at once"
            );
        }
        for full in &batches {
            assert_eq!(full.len(), BODY_BATCH);
            assert_eq!(full.capacity(), BODY_BATCH, "the buffer never grew");
        }
        assert_eq!(batch.capacity(), BODY_BATCH);
        let mut joined: Vec<u8> = batches.concat();
        joined.extend_from_slice(&batch);
        assert_eq!(joined, input, "every byte, in order");
        assert!(fill_batch(&mut batch, &[]).is_empty());
    }
}
