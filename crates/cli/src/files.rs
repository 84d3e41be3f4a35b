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
use kith_api::types::{DownloadReport, StatAnswer, StatStripe, Stored};
use kith_base::{ByteSize, Capability};

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

/// `kith put FILE [--shares K/N]`: returns the capability.
pub(crate) fn put(api: &ApiClient, file: &Path, shares: Option<&str>) -> anyhow::Result<String> {
    let mut query = Vec::new();
    if let Some(shares) = shares {
        // Checked here too, so a typo fails before a byte is sent.
        shares
            .parse::<kith_node::Params>()
            .map_err(|error| anyhow!("--shares {shares:?}: {error}"))?;
        query.push(format!("shares={}", escape(shares)));
    }
    let (reader, len): (Box<dyn Read + Send>, Option<u64>) = if file == Path::new("-") {
        (Box::new(std::io::stdin()), None)
    } else {
        let opened = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let meta = opened
            .metadata()
            .with_context(|| format!("cannot read {}", file.display()))?;
        if meta.is_dir() {
            bail!("{} is a folder; kith put stores one file", file.display());
        }
        if let Some(name) = file.file_name().and_then(|name| name.to_str()) {
            query.push(format!("name={}", escape(name)));
        }
        (Box::new(opened), meta.is_file().then_some(meta.len()))
    };
    let progress = Progress::new("stored", len);
    let reader = CountingReader {
        inner: reader,
        progress: progress.clone(),
    };
    let path = if query.is_empty() {
        "/v1/put".to_owned()
    } else {
        format!("/v1/put?{}", query.join("&"))
    };
    let result: anyhow::Result<Stored> = api.post_stream(&path, reader, len);
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

/// `kith get CAP [-o PATH]`.
pub(crate) fn get(api: &ApiClient, cap: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let cap: Capability = cap
        .trim()
        .parse()
        .map_err(|error| anyhow!("not a valid capability: {error}"))?;
    let target = output.filter(|path| *path != Path::new("-"));
    // Check the destination before fetching anything.
    let mut temp = match target {
        Some(path) => Some(temp_beside(path)?),
        None => None,
    };
    let mut response = api.get_stream(&format!("/v1/get?cap={cap}"))?;
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
    let progress = Progress::new("fetched", Some(size));
    let mut body = response.body_mut().as_reader();
    let copied = match temp.as_mut() {
        Some(file) => copy(&mut body, file.as_file_mut(), &progress),
        None => copy(&mut body, &mut std::io::stdout().lock(), &progress),
    };
    let complete = matches!(copied, Ok(n) if n == size);
    progress.finish(complete);
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
