//! `kith demo`: the whole idea in one command, on one machine.
//!
//! Starts a small network of real nodes in this process (each with its own
//! identity, data folder and 127.0.0.1 port, talking real libp2p), makes a
//! file of random bytes, puts it from one node with a progress bar, draws
//! which node holds which share of every stripe, stops two holders (the
//! uploader among them), fetches the file on another node, checks that it
//! came back byte-identical and prints the timings. Everything lives in
//! temporary folders that are removed at the end, also on failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kith_base::PeerId;
use kith_node::{FileMeta, Params, StatReport};
use kith_testnet::{Testnet, TestnetConfig};

/// The smallest network the demo runs on: 5 holders for a 3-of-5 code, two
/// of which it stops, and still a node left to fetch from.
pub(crate) const MIN_NODES: usize = 6;

/// Stripes placed together around one DHT key (see docs/storage.md).
const EXTENT_STRIPES: usize = 64;

/// How long the nodes may take to find each other.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the user asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DemoOptions {
    /// Nodes in the network (at least [`MIN_NODES`]).
    pub(crate) nodes: usize,
    /// Size of the random file, in bytes.
    pub(crate) size: u64,
}

/// Runs the demo on a fresh multi-threaded runtime. Prints the story on
/// stdout; the progress bar and any logs go to stderr.
pub(crate) fn run(options: DemoOptions) -> anyhow::Result<()> {
    if options.nodes < MIN_NODES {
        bail!(
            "the demo needs at least {MIN_NODES} nodes (5 hold each stripe, 2 are stopped, 1 fetches); got {}",
            options.nodes
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let work = tempfile::Builder::new()
            .prefix("kith-demo-")
            .tempdir()
            .context("cannot create a temporary folder for the demo file")?;
        let started = Instant::now();
        say(format_args!(
            "Starting {} kith nodes on 127.0.0.1 (each its own identity, data folder and port)…",
            options.nodes
        ))?;
        let mut net = Testnet::start(options.nodes, TestnetConfig::default())
            .await
            .context("cannot start the demo network")?;
        let result = story(&mut net, work.path(), options, started).await;
        net.shutdown().await;
        result
    })
}

/// Timings of the steps, printed at the end.
#[derive(Debug, Default)]
struct Timings {
    rows: Vec<(String, Duration, Option<u64>)>,
}

impl Timings {
    fn add(&mut self, step: &str, took: Duration, bytes: Option<u64>) {
        self.rows.push((step.to_owned(), took, bytes));
    }

    fn render(&self) -> String {
        let mut text = String::new();
        for (step, took, bytes) in &self.rows {
            let speed = match bytes {
                Some(bytes) if !took.is_zero() => format!(
                    "  {:>7.1} MB/s",
                    *bytes as f64 / took.as_secs_f64() / 1_000_000.0
                ),
                _ => String::new(),
            };
            let _ = writeln!(text, "  {step:<34} {:>7.2} s{speed}", took.as_secs_f64());
        }
        text
    }
}

async fn story(
    net: &mut Testnet,
    folder: &Path,
    options: DemoOptions,
    started: Instant,
) -> anyhow::Result<()> {
    let mut timings = Timings::default();
    let count = net.len();
    timings.add("start the nodes", started.elapsed(), None);

    // Everyone joins through node 0; wait until every node knows enough
    // peers to place a 3-of-5 stripe on five of them.
    let joining = Instant::now();
    net.wait_for(
        "every node to find at least 5 peers",
        JOIN_TIMEOUT,
        || async {
            for (_, node) in net.nodes() {
                if node.peers().await.map_or(true, |peers| peers.len() < 5) {
                    return false;
                }
            }
            true
        },
    )
    .await
    .context("the nodes did not find each other")?;
    timings.add("find each other (DHT)", joining.elapsed(), None);
    say(format_args!(
        "{count} nodes are up and know each other, found through the DHT from one address.\n"
    ))?;

    // The file: random bytes, so nothing about it can be guessed.
    let making = Instant::now();
    let path = folder.join("demo.bin");
    let original = make_random_file(&path, options.size)?;
    timings.add("make the file", making.elapsed(), Some(options.size));

    let params = Params::default();
    say(format_args!(
        "Putting a {} file of random bytes from node 0: encrypted with a fresh key,\n\
         cut into {} MiB segments, each erasure-coded into {} shares of which any {} rebuild it…",
        kith_base::ByteSize(options.size),
        params.segment_size() >> 20,
        params.n(),
        params.k(),
    ))?;
    let putting = Instant::now();
    let bar = indicatif::ProgressBar::new(options.size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = Box::new(bar.wrap_read(file));
    let meta = FileMeta::none()
        .with_name("demo.bin")
        .context("demo.bin is not a valid file name")?;
    let report = net
        .node(0)
        .files()
        .put(reader, params, meta)
        .await
        .context("the put failed")?;
    bar.finish_and_clear();
    timings.add(
        "put (encode + place 5 shares)",
        putting.elapsed(),
        Some(options.size),
    );
    say(format_args!(
        "Stored: {} stripes on {} peers. The capability is all anyone needs to fetch it:\n  {}\n",
        report.stripes, report.peers, report.capability
    ))?;

    let names: BTreeMap<PeerId, usize> = (0..count).map(|i| (net.peer_id(i), i)).collect();
    let stating = Instant::now();
    let stat = net
        .node(0)
        .files()
        .stat(&report.capability)
        .await
        .context("cannot see where the shares are")?;
    timings.add("stat (ask who holds what)", stating.elapsed(), None);
    say(format_args!(
        "Who holds what: one row per node, one column per stripe (M = the manifest);\n\
         a digit is the share of that stripe the node holds, + several, · none.\n{}{}",
        picture(&stat, &names, &[]),
        if stat.stripes.len() <= EXTENT_STRIPES {
            "(Stripes are placed in extents of 64, each around its own point of the DHT:\n \
             a file this size sits on one set of 5 peers; a bigger one spreads wider.)\n"
        } else {
            ""
        }
    ))?;

    // Stop the two nodes holding the most shares (as many as a 3-of-5 code
    // can lose), and fetch on the node holding the fewest of the others.
    let held = shares_per_node(&stat, &names);
    let mut by_load: Vec<usize> = (0..count).collect();
    by_load.sort_by_key(|&i| (std::cmp::Reverse(held.get(&i).copied().unwrap_or(0)), i));
    let victims = [by_load[0], by_load[1]];
    let getter = *by_load.last().context("no node left to fetch from")?;
    say(format_args!(
        "Stopping the two biggest holders: {}…",
        victims
            .iter()
            .map(|&i| format!(
                "node {i} ({})",
                plural(held.get(&i).copied().unwrap_or(0), "share")
            ))
            .collect::<Vec<_>>()
            .join(" and ")
    ))?;
    for victim in victims {
        net.kill(victim)
            .await
            .with_context(|| format!("cannot stop node {victim}"))?;
    }
    let after = net
        .node(getter)
        .files()
        .stat(&report.capability)
        .await
        .context("cannot see where the shares are after the stop")?;
    say(format_args!(
        "{}{}\n",
        picture(&after, &names, &victims),
        summary(&after)
    ))?;

    say(format_args!(
        "Fetching the file on node {getter}, from the nodes that are left…"
    ))?;
    let getting = Instant::now();
    let download = net
        .node(getter)
        .files()
        .get(&report.capability)
        .await
        .context("cannot open the file on the network")?;
    let get_report = download.report_handle();
    let mut segments = download.into_stream();
    let mut hasher = blake3::Hasher::new();
    let mut fetched = 0u64;
    while let Some(segment) = segments.recv().await {
        let segment = segment.context("the get failed")?;
        fetched += segment.len() as u64;
        hasher.update(&segment);
    }
    let copy = hasher.finalize();
    timings.add(
        "get (fetch + verify + decode)",
        getting.elapsed(),
        Some(fetched),
    );
    let got = get_report();
    if fetched != options.size || copy != original {
        bail!(
            "the file did NOT come back intact: {fetched} of {} bytes, BLAKE3 {} instead of {}",
            options.size,
            copy.to_hex(),
            original.to_hex()
        );
    }
    say(format_args!(
        "It came back verified: {fetched} bytes, byte-identical (BLAKE3 {}…),\n\
         from {} shares on {} peers, with two of the holders gone.\n",
        &copy.to_hex()[..16],
        got.shares,
        got.peers
    ))?;
    timings.add("total", started.elapsed(), None);
    say(format_args!("Timings:\n{}", timings.render()))?;
    Ok(())
}

/// Writes `size` random bytes to `path` and returns their BLAKE3 hash.
fn make_random_file(path: &Path, size: u64) -> anyhow::Result<blake3::Hash> {
    // BLAKE3's extendable output under a random key is a fast source of
    // unguessable bytes, and the key comes from the OS generator.
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("no randomness from the operating system")?;
    let mut source = blake3::Hasher::new_keyed(&seed).finalize_xof();
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let take = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        source.fill(&mut chunk[..take]);
        hasher.update(&chunk[..take]);
        file.write_all(&chunk[..take])
            .with_context(|| format!("cannot write {}", path.display()))?;
        left -= take as u64;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hasher.finalize())
}

/// How many shares (manifest included) each node holds.
fn shares_per_node(stat: &StatReport, names: &BTreeMap<PeerId, usize>) -> BTreeMap<usize, usize> {
    let mut held = BTreeMap::new();
    for stripe in std::iter::once(&stat.manifest_stripe).chain(&stat.stripes) {
        for (_, holder) in &stripe.holders {
            if let Some(&node) = names.get(holder) {
                *held.entry(node).or_insert(0) += 1;
            }
        }
    }
    held
}

/// Widest share map drawn; longer files get several stripes per column.
const MAP_COLUMNS: usize = 64;

/// The share map: a row per node, a column per stripe (or per run of
/// stripes, for long files). A cell shows the share index the node holds,
/// `+` for several (a node that fetched a file caches what it fetched), `·`
/// for none. Stopped nodes are marked; nobody lists their shares any more.
fn picture(stat: &StatReport, names: &BTreeMap<PeerId, usize>, stopped: &[usize]) -> String {
    let per_column = stat.stripes.len().div_ceil(MAP_COLUMNS).max(1);
    let columns = stat.stripes.len().div_ceil(per_column);
    // cells[node][column]: the share indices held there.
    let mut cells = vec![vec![std::collections::BTreeSet::new(); columns + 1]; names.len()];
    let placed = std::iter::once((0, &stat.manifest_stripe)).chain(
        stat.stripes
            .iter()
            .enumerate()
            .map(|(i, stripe)| (1 + i / per_column, stripe)),
    );
    for (column, stripe) in placed {
        for (index, holder) in &stripe.holders {
            if let Some(&node) = names.get(holder) {
                cells[node][column].insert(*index);
            }
        }
    }
    let mut text = String::new();
    let unit = if per_column == 1 {
        "stripes →".to_owned()
    } else {
        format!("stripes, {per_column} per column →")
    };
    let _ = writeln!(text, "             M {unit}");
    for (node, row) in cells.iter().enumerate() {
        let mut line = String::new();
        for (column, held) in row.iter().enumerate() {
            line.push(match held.len() {
                0 => '·',
                1 => held
                    .first()
                    .and_then(|&index| char::from_digit(u32::from(index), 36))
                    .unwrap_or('+'),
                _ => '+',
            });
            if column == 0 {
                line.push(' ');
            }
        }
        let mark = if stopped.contains(&node) {
            "  ✗ stopped"
        } else {
            ""
        };
        let _ = writeln!(text, "  node {node:<3}    {line}{mark}");
    }
    text
}

/// One line: how many stripes are healthy, degraded and lost.
fn summary(stat: &StatReport) -> String {
    let counts = stat.health_counts();
    format!(
        "Now {} stripes are healthy, {} degraded (fewer than {} copies, but at least {}) and {} lost.",
        counts[0],
        counts[1],
        stat.manifest.params().n(),
        stat.manifest.params().k(),
        counts[2]
    )
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Prints a line of the story on stdout.
fn say(text: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_file_has_its_size_and_hash() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        let hash = make_random_file(&path, 3 * (1 << 20) + 5)?;
        let bytes = std::fs::read(&path)?;
        assert_eq!(bytes.len(), 3 * (1 << 20) + 5);
        assert_eq!(blake3::hash(&bytes), hash);
        assert_ne!(make_random_file(&path, 64)?, make_random_file(&path, 64)?);
        Ok(())
    }
}
