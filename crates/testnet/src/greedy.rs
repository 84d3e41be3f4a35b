//! The benchmark behind `kith-testnet greedy`: one server with low limits
//! per peer, hammered by greedy peers, while a polite peer stores and
//! fetches a little. Does the polite peer stay served, and do the caps
//! hold?
//!
//! The server runs in a process of its own (this same binary, hidden
//! subcommand `greedy-server`), so that its memory is its own: it reads a
//! `config.toml` written here (quota, `quota_per_peer`, mailbox and rate
//! caps per peer), prints its address, and on each line `report` on its
//! standard input prints its metrics and its resident memory. The crowd
//! (greedy peers and the polite one) is a [`Testnet`] in this process,
//! every node connected to the server over TCP on 127.0.0.1.
//!
//! Each greedy peer runs a few loops at once, each until the deadline:
//! store 256 KiB shares on the server (straight to it, ignoring placement,
//! as a greedy client would), fetch what it stored, and leave letters in
//! the server's mailbox. The polite peer stores and fetches
//! [`BenchConfig::polite_rounds`] shares one at a time, first alone, then
//! under the crowd. Every loop stops by itself at the deadline.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kith_node::{DataDir, Node, ProbeError, ProbeShare};

use crate::stats::percentile;
use crate::{Testnet, TestnetConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Greedy peers.
    pub greedy: usize,
    /// How long the crowd hammers the server.
    pub duration: Duration,
    /// Shares the polite peer stores and fetches, alone and then under load.
    pub polite_rounds: usize,
    /// Bytes of each share stored.
    pub share_len: usize,
    /// The server's `config.toml` (its limits).
    pub server_config: String,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            greedy: 50,
            duration: Duration::from_secs(40),
            polite_rounds: 8,
            share_len: 256 << 10,
            server_config: "quota = \"1GiB\"\nquota_per_peer = \"1%\"\n\
                            mailbox_letters_per_peer = 16\nmailbox_bytes_per_peer = \"256KiB\"\n\
                            max_upload_per_peer = \"8MiB\"\nmax_download_per_peer = \"8MiB\"\n\
                            max_connections_per_peer = 2\n"
                .to_owned(),
        }
    }
}

/// The server as a child process.
struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &Path, config: &str) -> Result<(Self, String)> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(kith_node::config::CONFIG_FILE), config)?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("greedy-server")
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the server process")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            stdin,
            lines,
        };
        let addr = server
            .next_line(Duration::from_secs(60))?
            .strip_prefix("addr ")
            .map(str::to_owned)
            .context("the server did not say its address")?;
        Ok((server, addr))
    }

    fn next_line(&mut self, limit: Duration) -> Result<String> {
        self.lines
            .recv_timeout(limit)
            .context("the server stopped answering")
    }

    /// Its metrics and memory, as `name value` lines.
    fn report(&mut self) -> Result<Vec<(String, f64)>> {
        writeln!(self.stdin, "report")?;
        let mut figures = Vec::new();
        loop {
            let line = self.next_line(Duration::from_secs(30))?;
            if line == "end" {
                return Ok(figures);
            }
            if let Some((name, value)) = line.rsplit_once(' ')
                && let Ok(value) = value.parse()
            {
                figures.push((name.to_owned(), value));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn figure(figures: &[(String, f64)], name: &str) -> f64 {
    figures
        .iter()
        .find(|(n, _)| n == name)
        .map_or(f64::NAN, |(_, v)| *v)
}

/// Runs the server side: reads `dir/config.toml`, starts a node on
/// 127.0.0.1, prints `addr ADDR`, answers `report` lines until its input
/// ends.
pub async fn serve(dir: &Path) -> Result<()> {
    let file = kith_node::ConfigFile::load(dir)?;
    let flags = kith_node::Flags {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        no_mdns: true,
        no_relay: true,
        ..kith_node::Flags::default()
    };
    let config = kith_node::NodeConfig::resolve(&file, &flags)?;
    let node = Node::start(DataDir::new(dir), config).await?;
    let addr = node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .context("no listen address")?;
    println!("addr {addr}");
    let (sender, mut requests) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        for line in std::io::stdin()
            .lock()
            .lines()
            .map_while(std::result::Result::ok)
        {
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = requests.recv().await {
        if line.trim() != "report" {
            continue;
        }
        let metrics = node.metrics().await?;
        let mut out = String::new();
        for line in metrics.lines() {
            if line.starts_with("kith_refused_total")
                || line.starts_with("kith_store_")
                || line.starts_with("libp2p_swarm_connections_incoming_error_total")
                || line.starts_with("kith_peers_connected")
            {
                writeln!(out, "{line}")?;
            }
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for key in ["VmRSS:", "VmHWM:"] {
            if let Some(kib) = status
                .lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_whitespace().nth(1))
            {
                writeln!(out, "{} {kib}", key.trim_end_matches(':'))?;
            }
        }
        println!("{out}end");
        std::io::stdout().flush()?;
    }
    node.shutdown().await;
    Ok(())
}

/// What the polite peer saw in one phase.
#[derive(Debug, Default)]
struct Polite {
    store_ms: Vec<u64>,
    fetch_ms: Vec<u64>,
    failures: Vec<String>,
    bytes: u64,
    took: Duration,
}

impl Polite {
    async fn run(node: &Node, server: kith_net::PeerId, rounds: usize, len: usize) -> Self {
        let mut polite = Self::default();
        let started = Instant::now();
        for _ in 0..rounds {
            let at = Instant::now();
            let stored = node.probe_store(server, len).await;
            polite.store_ms.push(at.elapsed().as_millis() as u64);
            match stored {
                Ok(share) => {
                    let at = Instant::now();
                    match node.probe_fetch(server, share).await {
                        Ok(got) => polite.bytes += (share.len + got) as u64,
                        Err(error) => polite.failures.push(format!("fetch: {error}")),
                    }
                    polite.fetch_ms.push(at.elapsed().as_millis() as u64);
                }
                Err(error) => polite.failures.push(format!("store: {error}")),
            }
        }
        polite.took = started.elapsed();
        polite
    }

    fn row(&mut self, what: &str) -> String {
        let ms = |values: &mut Vec<u64>, p| {
            percentile(values, p).map_or_else(|| "–".to_owned(), |v| v.to_string())
        };
        format!(
            "| polite peer, {what} | {}/{} | {}/{} | {:.1} | {} |\n",
            ms(&mut self.store_ms, 50.0),
            ms(&mut self.store_ms, 100.0),
            ms(&mut self.fetch_ms, 50.0),
            ms(&mut self.fetch_ms, 100.0),
            self.bytes as f64 / self.took.as_secs_f64().max(1e-3) / f64::from(1 << 20),
            self.failures.len(),
        )
    }
}

/// What the greedy peers did, together.
#[derive(Debug, Default)]
struct Greedy {
    stored: AtomicU64,
    refused_share: AtomicU64,
    refused_other: AtomicU64,
    failed: AtomicU64,
    fetched_bytes: AtomicU64,
    letters: AtomicU64,
    letters_refused: AtomicU64,
    /// The first failure of each kind, to say what failed.
    failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, (u64, String)>>,
    /// Woken whenever a share is stored or refused: fetch loops with
    /// nothing to fetch yet, and the start of the polite run, wait on it.
    progress: tokio::sync::Notify,
}

impl Greedy {
    fn failed(&self, what: &'static str, error: &ProbeError) {
        bump(&self.failed, 1);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures
            .entry(what)
            .or_insert_with(|| (0, error.to_string()));
        entry.0 += 1;
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// A pause after a failed or refused request, so that a loop whose server
/// keeps failing does not spin: a back-off, not a wait for a condition
/// (there is none to wait for), and never past `deadline`.
async fn back_off(deadline: tokio::time::Instant, pause: Duration) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
}

/// One greedy peer until `deadline`: two store loops, a fetch loop and a
/// mailbox loop at once.
async fn greedy_peer(
    node: Node,
    server: kith_net::PeerId,
    deadline: tokio::time::Instant,
    len: usize,
    totals: Arc<Greedy>,
) {
    let stored: Arc<std::sync::Mutex<Vec<ProbeShare>>> = Arc::default();
    let store = |node: Node,
                 stored: Arc<std::sync::Mutex<Vec<ProbeShare>>>,
                 totals: Arc<Greedy>| async move {
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, node.probe_store(server, len)).await {
                Err(_) => break,
                Ok(Ok(share)) => {
                    bump(&totals.stored, 1);
                    stored.lock().unwrap_or_else(|e| e.into_inner()).push(share);
                    totals.progress.notify_waiters();
                }
                Ok(Err(ProbeError::Refused { reason, .. })) if reason == "PeerShare" => {
                    bump(&totals.refused_share, 1);
                    totals.progress.notify_waiters();
                }
                Ok(Err(ProbeError::Refused { .. })) => bump(&totals.refused_other, 1),
                Ok(Err(error)) => {
                    totals.failed("store", &error);
                    back_off(deadline, Duration::from_millis(100)).await;
                }
            }
        }
    };
    let fetch = |node: Node,
                 stored: Arc<std::sync::Mutex<Vec<ProbeShare>>>,
                 totals: Arc<Greedy>| async move {
        let mut next = 0usize;
        while tokio::time::Instant::now() < deadline {
            let share = {
                let stored = stored.lock().unwrap_or_else(|e| e.into_inner());
                (!stored.is_empty()).then(|| stored[next % stored.len()])
            };
            next += 1;
            let Some(share) = share else {
                // Nothing stored yet: until the next share is (a missed
                // wake-up costs one share's time; the deadline ends it).
                let _ = tokio::time::timeout_at(deadline, totals.progress.notified()).await;
                continue;
            };
            match tokio::time::timeout_at(deadline, node.probe_fetch(server, share)).await {
                Err(_) => break,
                Ok(Ok(bytes)) => bump(&totals.fetched_bytes, bytes as u64),
                Ok(Err(error)) => {
                    totals.failed("fetch", &error);
                    back_off(deadline, Duration::from_millis(100)).await;
                }
            }
        }
    };
    let mail = |node: Node, totals: Arc<Greedy>| async move {
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, node.probe_deposit(server, 16 << 10)).await {
                Err(_) => break,
                Ok(Ok(())) => bump(&totals.letters, 1),
                Ok(Err(ProbeError::Refused { .. })) => {
                    bump(&totals.letters_refused, 1);
                    // Refused for good until some are collected: slow down.
                    back_off(deadline, Duration::from_millis(200)).await;
                }
                Ok(Err(error)) => {
                    totals.failed("mail", &error);
                    back_off(deadline, Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::join!(
        store(node.clone(), stored.clone(), totals.clone()),
        store(node.clone(), stored.clone(), totals.clone()),
        fetch(node.clone(), stored.clone(), totals.clone()),
        mail(node, totals),
    );
}

/// Runs the benchmark; returns its report (Markdown).
pub async fn run(config: &BenchConfig) -> Result<String> {
    let work = tempfile::Builder::new().prefix("kith-greedy-").tempdir()?;
    let (mut server, addr) = Server::start(&work.path().join("server"), &config.server_config)?;
    let server_addr: kith_net::Multiaddr = addr.parse()?;
    let server_id = kith_net::peer_id_of(&server_addr).context("no peer id in the address")?;
    eprintln!(
        "server {server_id} at {addr}; starting {} peers…",
        config.greedy + 1
    );
    let net = Testnet::start(config.greedy + 1, TestnetConfig::default()).await?;
    for (_, node) in net.nodes() {
        node.connect(server_addr.clone()).await?;
    }
    let polite_node = net.node(config.greedy).clone();
    let idle = server.report()?;

    eprintln!("the polite peer alone…");
    let mut alone = Polite::run(
        &polite_node,
        server_id,
        config.polite_rounds,
        config.share_len,
    )
    .await;

    eprintln!("{} greedy peers for {:?}…", config.greedy, config.duration);
    let totals = Arc::new(Greedy::default());
    let deadline = tokio::time::Instant::now() + config.duration;
    let crowd: Vec<_> = (0..config.greedy)
        .map(|i| {
            tokio::spawn(greedy_peer(
                net.node(i).clone(),
                server_id,
                deadline,
                config.share_len,
                totals.clone(),
            ))
        })
        .collect();
    // Let the crowd fill its shares first: the polite peer comes in once
    // every greedy peer has been refused past its share (the server at its
    // busiest), or a quarter of the run has gone by.
    let ramp = tokio::time::Instant::now() + config.duration / 4;
    while totals.refused_share.load(Ordering::Relaxed) < config.greedy as u64 {
        if tokio::time::timeout_at(ramp, totals.progress.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    let mut loaded = Polite::run(
        &polite_node,
        server_id,
        config.polite_rounds,
        config.share_len,
    )
    .await;
    let loaded_done = deadline.saturating_duration_since(tokio::time::Instant::now());
    let busy = server.report()?;
    for task in crowd {
        task.await?;
    }
    let after = server.report()?;
    net.shutdown().await;

    let cap = figure(&after, "kith_store_peer_cap_bytes");
    let held_max = figure(&after, "kith_store_peer_bytes_max");
    if held_max > cap {
        bail!("the cap did not hold: a peer holds {held_max} bytes, over the {cap} cap");
    }
    let mut out = String::new();
    writeln!(
        out,
        "{} greedy peers for {:?} against one server (limits: {}), one polite peer storing and \
         fetching {} shares of {} KiB, one at a time; the polite peer under load finished {:.1} s \
         before the crowd stopped.\n",
        config.greedy,
        config.duration,
        config.server_config.trim().replace('\n', ", "),
        config.polite_rounds,
        config.share_len >> 10,
        loaded_done.as_secs_f64()
    )?;
    out.push_str(
        "| who | store ms p50/max | fetch ms p50/max | MiB/s | failures |\n|---|---|---|---|---|\n",
    );
    out.push_str(&alone.row("alone"));
    out.push_str(&loaded.row("under the crowd"));
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    writeln!(
        out,
        "| greedy peers together | {} stored, {} refused past their share, {} other refusals | \
         {:.0} MiB fetched | | {} failed |",
        get(&totals.stored),
        get(&totals.refused_share),
        get(&totals.refused_other),
        get(&totals.fetched_bytes) as f64 / f64::from(1 << 20),
        get(&totals.failed),
    )?;
    writeln!(
        out,
        "| greedy letters | {} held, {} refused | | | |\n",
        get(&totals.letters),
        get(&totals.letters_refused)
    )?;
    out.push_str("| server | idle | under the crowd | after |\n|---|---|---|---|\n");
    for (name, label) in [
        ("kith_store_peer_cap_bytes", "cap per peer, MiB"),
        ("kith_store_peer_bytes_max", "most held for one peer, MiB"),
        ("kith_store_peers_holding", "peers holding shares"),
        ("kith_store_bytes", "store bytes, MiB"),
        (
            "kith_refused_total{reason=\"quota_per_peer\"}",
            "refused: quota_per_peer",
        ),
        (
            "kith_refused_total{reason=\"mailbox_per_peer\"}",
            "refused: mailbox_per_peer",
        ),
        (
            "kith_refused_total{reason=\"streams_per_peer\"}",
            "refused: streams_per_peer",
        ),
        ("kith_refused_total{reason=\"streams\"}", "refused: streams"),
        ("VmRSS", "RSS, MiB"),
        ("VmHWM", "peak RSS, MiB"),
    ] {
        let show = |figures: &[(String, f64)]| {
            let value = figure(figures, name);
            if label.ends_with("MiB") {
                let scale = if name.starts_with("Vm") {
                    1024.0
                } else {
                    f64::from(1 << 20)
                };
                format!("{:.1}", value / scale)
            } else {
                format!("{value}")
            }
        };
        writeln!(
            out,
            "| {label} | {} | {} | {} |",
            show(&idle),
            show(&busy),
            show(&after)
        )?;
    }
    let denied: f64 = 0.0
        + after
            .iter()
            .filter(|(name, _)| {
                name.starts_with("libp2p_swarm_connections_incoming_error_total")
                    && name.contains("Denied")
            })
            .map(|(_, value)| value)
            .sum::<f64>();
    writeln!(out, "| connections denied (all limits) | | | {denied} |")?;
    let failures = totals.failures.lock().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        out.push_str(
            "\nGreedy requests that failed (not refused), by kind, with the first error:\n\n",
        );
        for (what, (count, first)) in failures.iter() {
            writeln!(out, "- {what}: {count}, first: {first}")?;
        }
    }
    drop(failures);
    drop(server);
    Ok(out)
}
