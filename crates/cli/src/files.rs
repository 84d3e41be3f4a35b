//! `kith put`, `kith get` and `kith stat`: files on the network, through the
//! running node's API.
//!
//! Results go to stdout (the capability; the file with `-o -`; stat's
//! lines), progress to stderr: a bar on a terminal, a plain line every few
//! seconds otherwise. `get -o PATH` writes into a hidden temporary file
//! beside PATH and renames it into place only once the whole file has
//! arrived, so an interrupted or failed get leaves nothing half-written.

use std::fs::File;
use std::io::{IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kith_api::types::{DownloadReport, Resolved, StatAnswer, StatStripe, Stored};
use kith_base::{ByteSize, Capability, CapabilityPath};

use crate::client::ApiClient;

/// Query-string escaping for the few characters a name may carry.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `kith put PATH [--shares K/N]`: a file, or a folder
/// ([`crate::folders::put`]); returns the capability.
pub(crate) fn put(api: &ApiClient, file: &Path, shares: Option<&str>) -> anyhow::Result<String> {
    if let Some(shares) = shares {
        // Checked here too, so a typo fails before a byte is sent.
        shares
            .parse::<kith_node::Params>()
            .map_err(|error| anyhow!("--shares {shares:?}: {error}"))?;
    }
    if file != Path::new("-") && std::fs::symlink_metadata(file).is_ok_and(|meta| meta.is_dir()) {
        return crate::folders::put(api, file, shares);
    }
    let (reader, len, name): (Box<dyn Read + Send>, Option<u64>, Option<&str>) = if file
        == Path::new("-")
    {
        (Box::new(std::io::stdin()), None, None)
    } else {
        let opened = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let meta = opened
            .metadata()
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.file_name().and_then(|name| name.to_str());
        (Box::new(opened), meta.is_file().then_some(meta.len()), name)
    };
    let progress = Progress::new("stored", len);
    let result = put_stream(api, reader, len, name, shares, &progress);
    progress.finish(result.is_ok());
    let stored = result?;
    eprintln!(
        "stored {} in {} stripe(s), {} shares each on distinct peers ({} peers)",
        ByteSize(stored.size),
        stored.stripes,
        stored.shares,
        stored.peers
    );
    Ok(stored.capability)
}

/// Stores what `reader` yields (`len` bytes, if known) under `name`,
/// counting bytes into `progress`.
pub(crate) fn put_stream(
    api: &ApiClient,
    reader: Box<dyn Read + Send>,
    len: Option<u64>,
    name: Option<&str>,
    shares: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<Stored> {
    let mut query = Vec::new();
    if let Some(shares) = shares {
        query.push(format!("shares={}", escape(shares)));
    }
    if let Some(name) = name {
        query.push(format!("name={}", escape(name)));
    }
    let reader = CountingReader {
        inner: reader,
        progress: progress.clone(),
    };
    let path = if query.is_empty() {
        "/v1/put".to_owned()
    } else {
        format!("/v1/put?{}", query.join("&"))
    };
    api.post_stream(&path, reader, len)
}

/// `kith get CAP[/PATH] [-o PATH] [--no-cache]`: a file, or a folder
/// ([`crate::folders::get`]). `cache`: whether the node keeps what it
/// fetched in its store to serve it later.
pub(crate) fn get(
    api: &ApiClient,
    cap: &str,
    output: Option<&Path>,
    cache: bool,
) -> anyhow::Result<()> {
    let target: CapabilityPath = cap
        .parse()
        .map_err(|error| anyhow!("not a valid capability: {error}"))?;
    let mut file_cap = target.capability.to_string();
    if target.capability.is_folder() {
        let resolved: Resolved = api.get(&format!("/v1/resolve?cap={}", escape(cap.trim())))?;
        if resolved.kind == "folder" {
            return crate::folders::get(api, &resolved.capability, output, cache);
        }
        file_cap = resolved.capability;
    }
    let target = output.filter(|path| *path != Path::new("-"));
    if let Some(path) = target
        && api.is_local_and_mine()
        && save_here(api, &file_cap, path, cache)?
    {
        return Ok(());
    }
    // Check the destination before fetching anything.
    let mut temp = match target {
        Some(path) => Some(temp_beside(path)?),
        None => None,
    };
    let progress = Progress::new("fetched", None);
    let copied = match temp.as_mut() {
        Some(file) => fetch(api, &file_cap, cache, file.as_file_mut(), &progress),
        None => fetch(
            api,
            &file_cap,
            cache,
            &mut std::io::stdout().lock(),
            &progress,
        ),
    };
    progress.finish(copied.is_ok());
    let size = copied?;
    if let (Some(temp), Some(path)) = (temp, target) {
        temp.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        temp.persist(path)
            .map_err(|error| anyhow!("cannot write {}: {}", path.display(), error.error))?;
        eprintln!("wrote {} to {}", ByteSize(size), path.display());
    }
    Ok(())
}

/// Has the node write the file `cap` reads to `path` itself
/// (`POST /v1/save`: no copy of every byte through the API), into a new
/// file beside `path` that is renamed into place once complete. `false`
/// if the node may not write there (it runs as another user, say): the
/// caller then fetches through the API.
fn save_here(api: &ApiClient, cap: &str, path: &Path, cache: bool) -> anyhow::Result<bool> {
    use kith_api::types::{SaveLine, SaveRequest};
    if path.is_dir() {
        bail!("{} is a folder; give a file path to -o", path.display());
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let folder = std::path::absolute(&folder)
        .with_context(|| format!("cannot write to {}", folder.display()))?;
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let temp = folder.join(format!(
        ".kith-get-{}-{}.part",
        std::process::id(),
        u64::from_le_bytes(seed)
    ));
    let request = SaveRequest {
        cap: cap.to_owned(),
        path: temp.display().to_string(),
        cache,
    };
    let mut response = match api.post_for_stream("/v1/save", &request) {
        Ok(response) => response,
        Err(error)
            if error
                .downcast_ref::<crate::client::NodeRefusal>()
                .is_some_and(|refusal| refusal.kind == "forbidden") =>
        {
            return Ok(false);
        }
        Err(error) => return Err(error),
    };
    // Whatever happens below, no partial file stays behind.
    let cleanup = TempGuard(Some(temp.clone()));
    let progress = Progress::new("fetched", None);
    let mut shown = 0u64;
    let mut outcome: anyhow::Result<(u64, Option<String>)> = Err(anyhow!(
        "the node stopped before the file was written (see its log for why); nothing was written"
    ));
    let mut download = None;
    let lines = std::io::BufReader::new(response.body_mut().as_reader());
    for line in std::io::BufRead::lines(lines) {
        let line = line.context("the node's answer broke off")?;
        match serde_json::from_str::<SaveLine>(&line)
            .context("the node's answer is not what this kith expects")?
        {
            SaveLine::Started {
                size, download: id, ..
            } => {
                progress.set_total_if_unknown(size);
                download = Some(id.to_string());
            }
            SaveLine::Written { written } => {
                progress.add(written.saturating_sub(shown));
                shown = shown.max(written);
            }
            SaveLine::Done { done } => {
                progress.add(done.size.saturating_sub(shown));
                outcome = Ok((done.size, download.clone()));
                break;
            }
            SaveLine::Failed { error } => {
                outcome = Err(crate::client::NodeRefusal {
                    kind: error.error,
                    message: error.message,
                }
                .into());
                break;
            }
        }
    }
    progress.finish(outcome.is_ok());
    if let Some(id) = download.as_deref() {
        report_bad_shares(api, id);
    }
    let (size, _) = outcome?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    cleanup.disarm();
    eprintln!("wrote {} to {}", ByteSize(size), path.display());
    Ok(true)
}

/// Removes a file when dropped, unless disarmed.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Fetches the file `cap` reads into `to`, counting into `progress` (whose
/// total is set from the answer when it has none); returns its size. An
/// answer that ends short is an error. `cache`: whether the node keeps
/// what it fetched.
pub(crate) fn fetch(
    api: &ApiClient,
    cap: &str,
    cache: bool,
    to: &mut impl Write,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let mut path = format!("/v1/get?cap={}", escape(cap));
    if !cache {
        path.push_str("&cache=false");
    }
    let mut response = api.get_stream(&path)?;
    let size: u64 = response
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| anyhow!("the node did not say how large the file is"))?;
    let download = response
        .headers()
        .get("x-kith-download")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    progress.set_total_if_unknown(size);
    let mut body = response.body_mut().as_reader();
    let copied = copy(&mut body, to, progress);
    if let Some(id) = download.as_deref() {
        report_bad_shares(api, id);
    }
    let copied = copied.map_err(|error| match error.kind() {
        std::io::ErrorKind::BrokenPipe => anyhow!("stdout was closed before the file ended"),
        _ => anyhow!("the download failed midway: {error} (see the node's log for why)"),
    })?;
    if copied != size {
        bail!(
            "the download ended after {copied} of {size} bytes (see the node's log for why); \
             nothing was written"
        );
    }
    Ok(size)
}

/// A hidden temporary file in `path`'s folder, removed unless persisted.
fn temp_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    if path.is_dir() {
        bail!("{} is a folder; give a file path to -o", path.display());
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".kith-get-")
        .suffix(".part")
        .tempfile_in(&parent)
        .with_context(|| format!("cannot write to {}", parent.display()))
}

fn copy(from: &mut impl Read, to: &mut impl Write, progress: &Progress) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        to.write_all(&buffer[..n])?;
        total += n as u64;
        progress.add(n as u64);
    }
    to.flush()?;
    Ok(total)
}

fn report_bad_shares(api: &ApiClient, id: &str) {
    match api.get::<DownloadReport>(&format!("/v1/downloads/{id}")) {
        Ok(report) => {
            for bad in &report.corrupt {
                if bad.detected == "holder" {
                    eprintln!(
                        "warning: peer {} found its copy of share {} of stripe {} damaged on \
                         disk and dropped it; the share was fetched elsewhere",
                        bad.peer_id, bad.index, bad.stripe
                    );
                } else {
                    eprintln!(
                        "warning: peer {} served a damaged share (share {} of stripe {}); it \
                         was detected, skipped and fetched elsewhere, and the peer is avoided",
                        bad.peer_id, bad.index, bad.stripe
                    );
                }
            }
        }
        Err(error) => eprintln!("(cannot read the download's report: {error})"),
    }
}

/// `kith stat CAP`: one line per stripe, then a summary.
pub(crate) fn stat(api: &ApiClient, cap: &str) -> anyhow::Result<Vec<String>> {
    let cap: Capability = cap
        .trim()
        .parse()
        .map_err(|error| anyhow!("not a valid capability: {error}"))?;
    let answer: StatAnswer = api.get(&format!("/v1/stat?cap={cap}"))?;
    let line = |label: String, stripe: &StatStripe| {
        let holders: Vec<String> = stripe
            .holders
            .iter()
            .map(|holder| format!("{}:{}", holder.index, holder.peer_id))
            .collect();
        format!(
            "{label} {} {} {} shares on {} peers {}{}",
            stripe.id,
            stripe.health,
            stripe.shares,
            stripe.peers,
            holders.join(" "),
            if stripe.repairing {
                " (this node is repairing it)"
            } else {
                ""
            }
        )
    };
    let mut lines = vec![line("manifest".into(), &answer.manifest)];
    let mut counts = [0usize; 3];
    for (index, stripe) in answer.stripes.iter().enumerate() {
        lines.push(line(format!("stripe {index}"), stripe));
        match stripe.health.as_str() {
            "healthy" => counts[0] += 1,
            "degraded" => counts[1] += 1,
            _ => counts[2] += 1,
        }
    }
    let repairing = answer
        .stripes
        .iter()
        .chain(std::iter::once(&answer.manifest))
        .filter(|stripe| stripe.repairing)
        .count();
    let mut extra = String::new();
    if answer.manifest.health != "healthy" {
        extra.push_str(&format!(", manifest {}", answer.manifest.health));
    }
    if repairing > 0 {
        extra.push_str(&format!(", {repairing} being repaired here"));
    }
    lines.push(format!(
        "{}{} ({} bytes), {} code, {} stripes: {} healthy, {} degraded, {} lost{extra} ({} peers asked)",
        answer
            .name
            .as_deref()
            .map(|name| format!("{name}: "))
            .unwrap_or_default(),
        ByteSize(answer.size),
        answer.size,
        answer.shares,
        answer.stripes.len(),
        counts[0],
        counts[1],
        counts[2],
        answer.asked,
    ));
    Ok(lines)
}

/// `kith rm CAP`: the summary line, or an error if nothing could be
/// deleted because this node did not store the file.
pub(crate) fn remove(api: &ApiClient, cap: &str) -> anyhow::Result<String> {
    let removed: kith_node::RmReport =
        api.post(&format!("/v1/rm?cap={}", escape(cap.trim())), &())?;
    if removed.refused > 0 && removed.dropped == 0 {
        bail!(
            "nothing was deleted: the {} holder(s) refused, because this node did not store \
             that file (only the node that put a file may delete it)",
            removed.peers
        );
    }
    if removed.refused > 0 || removed.unreachable > 0 {
        eprintln!(
            "{} share(s) were refused (stored by another node) and {} holder(s) did not answer",
            removed.refused, removed.unreachable
        );
    }
    if removed.cached > 0 {
        eprintln!(
            "{} cached copies stay on nodes that fetched the file without the owner's lease (a shared capability cannot be taken back)",
            removed.cached
        );
    }
    Ok(format!(
        "deleted {} share(s) from {} peer(s){}",
        removed.dropped,
        removed.peers,
        if removed.not_held > 0 {
            format!("; {} were already gone", removed.not_held)
        } else {
            String::new()
        }
    ))
}

/// Progress on stderr: a bar on a terminal, a line every few seconds
/// otherwise.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: std::sync::Arc<std::sync::Mutex<PlainProgress>>,
    verb: &'static str,
}

struct PlainProgress {
    done: u64,
    total: Option<u64>,
    last: Instant,
    started: Instant,
}

impl Progress {
    pub(crate) fn new(verb: &'static str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{spinner} {bytes} {bytes_per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            plain: std::sync::Arc::new(std::sync::Mutex::new(PlainProgress {
                done: 0,
                total,
                last: now,
                started: now,
            })),
            verb,
        }
    }

    /// Gives a progress started without a total its total.
    pub(crate) fn set_total_if_unknown(&self, total: u64) {
        if let Some(bar) = &self.bar
            && bar.length().is_none()
        {
            bar.set_length(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
        }
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        plain.total.get_or_insert(total);
    }

    fn add(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        plain.done += n;
        if plain.last.elapsed() >= Duration::from_secs(5) {
            plain.last = Instant::now();
            let of = plain
                .total
                .map(|total| format!(" of {}", ByteSize(total)))
                .unwrap_or_default();
            eprintln!("{} {}{of}", self.verb, ByteSize(plain.done));
        }
    }

    pub(crate) fn finish(&self, ok: bool) {
        if let Some(bar) = &self.bar {
            if ok {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
            return;
        }
        let plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        if ok && plain.started.elapsed() >= Duration::from_secs(5) {
            eprintln!("{} {}", self.verb, ByteSize(plain.done));
        }
    }
}

/// Counts bytes read, for the progress display.
pub(crate) struct CountingReader {
    pub(crate) inner: Box<dyn Read + Send>,
    pub(crate) progress: Progress,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}
