//! The DHT benchmark behind `kith-testnet dht`: start a network in one
//! process, let the routing tables settle, then time random peer lookups.
//!
//! Long because: the benchmark, its diagnosis of misses and lost files, and its report are one tool.
//!
//! Kademlia (libp2p's implementation) does not count hops: a lookup keeps
//! α = 3 requests in flight and stops when the k closest peers it has heard
//! of have all answered. The number of requests a lookup sent
//! ([`kith_net::PeerLookup::requests`]) is therefore the measure of its
//! cost reported here, standing in for "hops × α" — it is not a hop count.
//!
//! Settling: after every node has started, each node runs one Kademlia
//! bootstrap (a lookup of its own id, then one random lookup per more
//! distant bucket); that is the *join*. Further bootstrap rounds follow
//! until the routing tables together grow by less than 1 % in a round (or
//! [`DhtBenchConfig::max_settle_rounds`] is reached), so the lookups
//! measure a settled network rather than one still filling its tables.
//! [`JoinMode`] has two gentler joins for big runs: `Quiet` (only each
//! node's own bootstrap) and `Waves` (the network grows a wave at a time,
//! as a real one does), which is how `scale` brings up a thousand nodes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_base::{ContentId, PeerId};
use kith_node::Node;
use tracing::{info, warn};

use crate::stats::{SplitMix64, open_files, percentile, resident_bytes};
use crate::{Testnet, TestnetConfig, TestnetError, Transport, raise_fd_limit};

/// The longest one node's bootstrap may take in a round before the round
/// counts it as failed and moves on (the bootstrap itself runs to its end in
/// the background). Keeps a round bounded when some nodes cannot be reached.
const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(30);

/// What the benchmark does.
#[derive(Debug, Clone)]
pub struct DhtBenchConfig {
    /// Nodes to start.
    pub nodes: usize,
    /// Random lookups to time.
    pub lookups: usize,
    /// Lookups in flight at once, over all nodes.
    pub concurrency: usize,
    /// Nodes starting, or bootstrapping, at once.
    pub start_concurrency: usize,
    /// Most bootstrap rounds after the join, while tables still grow.
    pub max_settle_rounds: usize,
    /// Seed for choosing (querier, target) pairs.
    pub seed: u64,
    /// Idle timeout, ping interval and DHT refresh of every node (a real
    /// node's by default). In one process each TCP connection holds two
    /// file descriptors; shortening the idle timeout did not help a
    /// 200-node run under a 20 000-descriptor limit (the join churned
    /// instead). `scale` stretches the ping and refresh clocks: a thousand
    /// nodes share two cores, where real nodes each have their own.
    pub timing: kith_net::Timing,
    /// How often every node checks its mailbox (a lookup and a stream to
    /// each of the 20 closest peers); a real node's 60 s by default.
    pub mail_check: Duration,
    /// One-way delay on every link, memory transport only (zero: none).
    pub latency: Duration,
    /// How the nodes reach each other: TCP on loopback (real sockets, a few
    /// hundred nodes at most in one process) or the in-process memory
    /// transport (a thousand and more).
    pub transport: Transport,
    /// Small files to put on one random node and get on another, after the
    /// lookups (0: none).
    pub files: usize,
    /// Size of each of those files in bytes.
    pub file_size: usize,
    /// Nodes the others join through (see [`TestnetConfig::seeds`]).
    pub seeds: usize,
    /// How the join is done and timed.
    pub join: JoinMode,
    /// Most connections per node (`None`: a real node's limit, 256). Below
    /// the node count, no node can be connected to all others and lookups
    /// must route, as in a big network.
    pub max_connections: Option<u32>,
}

/// How [`run`] lets the nodes join, and what its "time to join" measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinMode {
    /// Once all have started, every node runs one more Kademlia bootstrap,
    /// [`DhtBenchConfig::start_concurrency`] at a time; joined when all
    /// have finished (or taken over 30 s).
    #[default]
    Bootstrap,
    /// Only the bootstrap each node runs by itself when it starts; joined
    /// when the routing tables together grew by under 1 % in the last
    /// [`QUIET_WINDOW`]. Half the lookups of `Bootstrap`, which matters when a
    /// thousand nodes share two cores.
    Quiet,
    /// The network grows as a real one does: the first this-many nodes
    /// start and settle as in `Quiet`, then the same number more at a time,
    /// each joining through a random node already in, and the next wave
    /// starts once the routing tables are quiet again. Joined when the last
    /// wave is quiet. At a thousand nodes on two cores this spreads the
    /// join storm out, so no bootstrap waits behind a thousand others.
    Waves(usize),
}

/// The clocks of `scale`'s nodes. A thousand nodes share two cores, so
/// each gets 1/500 of a core where a real node has a machine: pings every
/// 5 min instead of 15 s, and no routing-table refresh after each node's
/// first bootstrap (a real node's comes every 5 min). Nodes do not fail
/// in this run, so nothing depends on noticing a dead connection. The mail
/// check goes with them: [`SCALE_MAIL_CHECK`].
pub const SCALE_TIMING: kith_net::Timing = kith_net::Timing {
    idle_timeout: std::time::Duration::from_secs(60),
    ping_interval: std::time::Duration::from_secs(300),
    dht_refresh: None,
};

/// How often `scale`'s nodes check their mailboxes: once an hour instead
/// of a real node's once a minute, for the reason of [`SCALE_TIMING`]. At
/// once a minute, a thousand nodes would run 17 lookups a second between
/// them just for that.
pub const SCALE_MAIL_CHECK: Duration = Duration::from_secs(3600);

/// How long the routing tables must stay (almost) unchanged for
/// [`JoinMode::Quiet`] to call the network joined.
pub const QUIET_WINDOW: Duration = Duration::from_secs(10);

/// The longest [`JoinMode::Quiet`] waits for the tables to settle.
const QUIET_LIMIT: Duration = Duration::from_secs(3600);

impl Default for DhtBenchConfig {
    fn default() -> Self {
        Self {
            nodes: 200,
            lookups: 1000,
            concurrency: 32,
            start_concurrency: 16,
            max_settle_rounds: 3,
            seed: 1,
            timing: kith_net::Timing::default(),
            mail_check: Duration::from_secs(60),
            latency: Duration::ZERO,
            transport: Transport::Tcp,
            files: 0,
            file_size: 16 << 10,
            seeds: 1,
            join: JoinMode::Bootstrap,
            max_connections: None,
        }
    }
}

/// What the benchmark measured. [`fmt::Display`] prints it as a table.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DhtReport {
    /// The configuration that ran.
    pub nodes: usize,
    /// Lookups in flight at once.
    pub concurrency: usize,
    /// From the first start until every node listened.
    pub start_time: Duration,
    /// From the first start until every node had also finished one bootstrap.
    pub join_time: Duration,
    /// Bootstraps in the join round that failed or timed out.
    pub join_failures: usize,
    /// Waves the nodes joined in ([`JoinMode::Waves`]; 1 otherwise).
    pub waves: usize,
    /// The nodes' idle timeout, ping interval and DHT refresh.
    pub timing: kith_net::Timing,
    /// How often each node checked its mailbox.
    pub mail_check: Duration,
    /// One-way delay on every link.
    pub latency: Duration,
    /// How the join was done.
    pub join: JoinMode,
    /// Bootstrap rounds run after the join.
    pub settle_rounds: usize,
    /// How long those rounds took.
    pub settle_time: Duration,
    /// Routing-table sizes after settling: median and smallest.
    pub table_median: usize,
    /// Smallest routing table after settling.
    pub table_min: usize,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups that found their peer.
    pub found: usize,
    /// Why the others failed, with counts.
    pub failures: BTreeMap<String, usize>,
    /// Each failed lookup looked at afterwards (at most
    /// [`MISSES_EXAMINED`]): what it cost and who knew the target.
    pub misses: Vec<Miss>,
    /// Requests per successful lookup: median and 95th percentile.
    pub requests: Option<(u32, u32)>,
    /// Wall-clock time per successful lookup: median and 95th percentile.
    pub lookup_time: Option<(Duration, Duration)>,
    /// Successful lookups answered from a connection the querier already
    /// had to the target (no request sent).
    pub from_connection: usize,
    /// Wall-clock time of the successful lookups that sent requests:
    /// median and 95th percentile.
    pub routed_time: Option<(Duration, Duration)>,
    /// Time for all lookups.
    pub lookups_time: Duration,
    /// Process RSS before the first node started.
    pub rss_before: Option<u64>,
    /// Process RSS after the network settled.
    pub rss_settled: Option<u64>,
    /// Process RSS after the lookups.
    pub rss_after: Option<u64>,
    /// Connected peers per node after the lookups (median).
    pub connections_median: usize,
    /// Open files (mostly sockets) in the process after the lookups.
    pub open_files: Option<usize>,
    /// The process's open-file limit.
    pub fd_limit: Option<u64>,
    /// Open files the network needs once every node has a connection to
    /// every other: two sockets per pair, plus one listener per node.
    pub fd_full_mesh: u64,
    /// The transport the nodes used.
    pub transport: Transport,
    /// Files put (each on a random node).
    pub files: usize,
    /// Size of each file.
    pub file_size: usize,
    /// Puts that succeeded.
    pub puts_ok: usize,
    /// Gets (on another random node) that returned the same bytes.
    pub gets_ok: usize,
    /// Why puts or gets failed, with counts.
    pub file_failures: BTreeMap<String, usize>,
    /// Time for all the puts and gets.
    pub files_time: Duration,
    /// Each file that was put but did not come back, examined afterwards
    /// (at most [`MISSES_EXAMINED`]).
    pub lost_files: Vec<LostFile>,
    /// Connected peers of the best-connected node after the lookups.
    pub connections_max: usize,
    /// The connection cap per node, if not a real node's.
    pub max_connections: Option<u32>,
}

/// Descriptors `nodes` in one process need when all are connected to all:
/// both ends of each of the n(n−1)/2 connections live in this process.
pub fn full_mesh_files(nodes: usize) -> u64 {
    let n = nodes as u64;
    n * n.saturating_sub(1) + n + 64
}

/// Runs the benchmark on the current tokio runtime.
///
/// # Errors
///
/// A [`TestnetError`] if the network cannot be started; failed lookups
/// are counted in the report, not returned as errors.
pub async fn run(config: &DhtBenchConfig) -> Result<DhtReport, TestnetError> {
    let mut report = DhtReport {
        nodes: config.nodes,
        concurrency: config.concurrency.max(1),
        fd_limit: raise_fd_limit(),
        rss_before: resident_bytes(),
        fd_full_mesh: full_mesh_files(config.nodes),
        transport: config.transport,
        files: config.files,
        file_size: config.file_size,
        join: config.join,
        max_connections: config.max_connections,
        timing: config.timing,
        mail_check: config.mail_check,
        latency: if config.transport == Transport::Memory {
            config.latency
        } else {
            Duration::ZERO
        },
        ..DhtReport::default()
    };
    let sockets = config.transport == Transport::Tcp;
    if let Some(limit) = report
        .fd_limit
        .filter(|&limit| sockets && limit < report.fd_full_mesh)
    {
        warn!(
            limit,
            full_mesh = report.fd_full_mesh,
            "the open-file limit is below what {} nodes need once each has talked to every \
             other (connections stay open {:?} after their last use); expect \
             'Too many open files' and failed lookups",
            config.nodes,
            config.timing.idle_timeout
        );
    }
    let started = Instant::now();
    let first_wave = match config.join {
        JoinMode::Waves(size) => size.clamp(1, config.nodes.max(1)),
        _ => config.nodes,
    };
    let mut net = Testnet::start(
        first_wave,
        TestnetConfig {
            start_concurrency: config.start_concurrency,
            timing: config.timing,
            latency: config.latency,
            transport: config.transport,
            seeds: config.seeds,
            max_connections: config.max_connections,
            friends: kith_node::FriendSettings {
                mail_check: config.mail_check,
                ..kith_node::FriendSettings::default()
            },
            ..TestnetConfig::default()
        },
    )
    .await?;
    report.waves = 1;
    match config.join {
        JoinMode::Bootstrap => {
            report.start_time = started.elapsed();
            info!(nodes = config.nodes, after = ?report.start_time, "all nodes listen; joining");
            report.join_failures = bootstrap_round(&net, config.start_concurrency).await;
        }
        JoinMode::Quiet => {
            report.start_time = started.elapsed();
            info!(nodes = config.nodes, after = ?report.start_time, "all nodes listen; joining");
            wait_until_quiet(&net).await;
        }
        JoinMode::Waves(size) => {
            let mut rng = SplitMix64::new(config.seed ^ 0x3a7e_5eed);
            wait_until_quiet(&net).await;
            while net.len() < config.nodes {
                let count = size.max(1).min(config.nodes - net.len());
                let already = net.len();
                net.grow(count, |_| rng.below(already)).await?;
                report.waves += 1;
                report.start_time = started.elapsed();
                info!(wave = report.waves, nodes = net.len(), after = ?report.start_time, "a wave listens; joining");
                wait_until_quiet(&net).await;
            }
        }
    }
    report.join_time = started.elapsed();
    info!(after = ?report.join_time, failures = report.join_failures, "joined");

    let settling = Instant::now();
    let mut sizes = table_sizes(&net).await;
    while report.settle_rounds < config.max_settle_rounds {
        let before: usize = sizes.iter().sum();
        bootstrap_round(&net, config.start_concurrency).await;
        report.settle_rounds += 1;
        sizes = table_sizes(&net).await;
        let after: usize = sizes.iter().sum();
        info!(
            round = report.settle_rounds,
            entries_before = before,
            entries_after = after,
            open_files = open_files(),
            "settling"
        );
        if after.saturating_sub(before) * 100 < before.max(1) {
            break;
        }
    }
    report.settle_time = settling.elapsed();
    report.table_median = percentile(&mut sizes, 50.0).unwrap_or(0);
    report.table_min = sizes.first().copied().unwrap_or(0);
    report.rss_settled = resident_bytes();

    if config.nodes >= 2 {
        info!(lookups = config.lookups, "looking up random peers");
        lookups(&net, config, &mut report).await;
    }
    report.rss_after = resident_bytes();
    report.open_files = open_files();
    if config.files > 0 && config.nodes >= 2 {
        info!(files = config.files, "putting and getting small files");
        files(&net, config, &mut report).await;
    }
    let mut connections = peer_counts(&net, PeerCount::Connected).await;
    report.connections_median = percentile(&mut connections, 50.0).unwrap_or(0);
    report.connections_max = connections.last().copied().unwrap_or(0);
    net.shutdown().await;
    Ok(report)
}

/// Looks at failed lookups once the others are done: who knew the
/// target, and whether it can be reached at all. Tells a DHT that lost a
/// peer from a machine too busy to answer in time.
async fn examine_misses(net: &Testnet, missed: Vec<(Node, PeerId, u32, Duration)>) -> Vec<Miss> {
    // All tables at once, as in `peer_counts`.
    let tables: Vec<(PeerId, std::collections::HashSet<PeerId>)> =
        futures::stream::iter(net.nodes())
            .map(|(_, node)| async move {
                let known = node
                    .net()
                    .known_peers()
                    .await
                    .map(|peers| peers.into_iter().map(|(peer, _)| peer).collect())
                    .unwrap_or_default();
                (node.peer_id(), known)
            })
            .buffer_unordered(TABLE_QUERIES_IN_FLIGHT)
            .collect()
            .await;
    let mut misses = Vec::with_capacity(missed.len());
    for (querier, target, requests, elapsed) in missed {
        let querier_id = querier.peer_id();
        let target_addr = match net.nodes().find(|(_, node)| node.peer_id() == target) {
            Some((_, node)) => node.net().listen_addrs().await.ok(),
            None => None,
        }
        .and_then(|addrs| addrs.into_iter().next());
        let reachable = match target_addr {
            Some(addr) => querier.net().dial(addr).await.is_ok(),
            None => false,
        };
        misses.push(Miss {
            requests,
            elapsed,
            querier_knew: tables
                .iter()
                .any(|(id, known)| *id == querier_id && known.contains(&target)),
            known_by: tables
                .iter()
                .filter(|(_, known)| known.contains(&target))
                .count(),
            reachable,
        });
    }
    misses
}

/// Failed lookups examined one by one in the report.
pub const MISSES_EXAMINED: usize = 10;

/// A failed lookup, examined once all lookups are done.
#[derive(Debug, Clone)]
pub struct Miss {
    /// Requests the lookup sent.
    pub requests: u32,
    /// How long it ran.
    pub elapsed: Duration,
    /// Whether the querier had the target in its own routing table.
    pub querier_knew: bool,
    /// How many nodes' routing tables held the target afterwards.
    pub known_by: usize,
    /// Whether the querier can dial the target's listen address now.
    pub reachable: bool,
}

/// Runs `config.lookups` random lookups and records them in `report`.
async fn lookups(net: &Testnet, config: &DhtBenchConfig, report: &mut DhtReport) {
    let mut rng = SplitMix64::new(config.seed);
    let n = net.len();
    let pairs: Vec<(Node, PeerId)> = (0..config.lookups)
        .map(|_| {
            let querier = rng.below(n);
            let target = (querier + 1 + rng.below(n - 1)) % n;
            (net.node(querier).clone(), net.peer_id(target))
        })
        .collect();
    let began = Instant::now();
    let results: Vec<_> = futures::stream::iter(pairs)
        .map(|(node, target)| async move {
            let asked = Instant::now();
            let result = node.net().find_peer(target).await;
            (node, target, result, asked.elapsed())
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    report.lookups_time = began.elapsed();
    report.lookups = results.len();
    let mut requests = Vec::new();
    let mut times = Vec::new();
    let mut routed_times = Vec::new();
    let mut missed = Vec::new();
    for (node, target, result, elapsed) in results {
        match result {
            Ok(lookup) => {
                requests.push(lookup.requests);
                times.push(elapsed);
                if lookup.requests == 0 {
                    report.from_connection += 1;
                } else {
                    routed_times.push(elapsed);
                }
            }
            Err(error) => {
                *report.failures.entry(failure_kind(&error)).or_default() += 1;
                if let kith_net::NetError::PeerNotFound { requests, .. } = error {
                    missed.push((node, target, requests, elapsed));
                }
            }
        }
    }
    missed.truncate(MISSES_EXAMINED);
    if !missed.is_empty() {
        report.misses = examine_misses(net, missed).await;
    }
    report.found = requests.len();
    report.requests = percentile(&mut requests, 50.0).zip(percentile(&mut requests, 95.0));
    report.lookup_time = percentile(&mut times, 50.0).zip(percentile(&mut times, 95.0));
    report.routed_time =
        percentile(&mut routed_times, 50.0).zip(percentile(&mut routed_times, 95.0));
}

/// Files in flight at once in the files round.
const FILES_IN_FLIGHT: usize = 8;

/// Puts `config.files` files of random bytes, each on a random node, and
/// gets each on another random node, comparing the bytes. Failed files are
/// examined afterwards (at most [`MISSES_EXAMINED`]): see [`LostFile`].
async fn files(net: &Testnet, config: &DhtBenchConfig, report: &mut DhtReport) {
    let mut rng = SplitMix64::new(config.seed ^ 0x5eed_f11e);
    let n = net.len();
    let jobs: Vec<(Node, Node, Vec<u8>)> = (0..config.files)
        .map(|_| {
            let uploader = rng.below(n);
            let getter = (uploader + 1 + rng.below(n - 1)) % n;
            let mut bytes = Vec::with_capacity(config.file_size + 8);
            while bytes.len() < config.file_size {
                bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            bytes.truncate(config.file_size);
            (net.node(uploader).clone(), net.node(getter).clone(), bytes)
        })
        .collect();
    let began = Instant::now();
    let outcomes: Vec<Result<(), FileFailure>> = futures::stream::iter(jobs)
        .map(|(uploader, getter, bytes)| async move {
            let failed = |capability: Option<&kith_node::Capability>,
                          stripe: Option<ContentId>,
                          reason: String| FileFailure {
                uploader: uploader.clone(),
                getter: getter.clone(),
                manifest: capability.map(kith_node::Capability::manifest),
                stripe,
                reason,
            };
            let reader = Box::new(std::io::Cursor::new(bytes.clone()));
            let put = uploader
                .files()
                .put(
                    reader,
                    kith_node::Params::default(),
                    kith_node::FileMeta::none(),
                )
                .await
                .map_err(|error| failed(None, None, error.to_string()))?;
            let cap = &put.capability;
            let lost = |error: kith_node::GetError| {
                let stripe = match &error {
                    kith_node::GetError::Lost { stripe, .. } => Some(*stripe),
                    kith_node::GetError::NotFound { .. } => Some(cap.manifest()),
                    _ => None,
                };
                failed(Some(cap), stripe, error.to_string())
            };
            let download = getter.files().get(cap).await.map_err(lost)?;
            let mut segments = download.into_stream();
            let mut got = Vec::with_capacity(bytes.len());
            while let Some(segment) = segments.recv().await {
                got.extend(segment.map_err(lost)?);
            }
            if got == bytes {
                Ok(())
            } else {
                Err(failed(
                    Some(cap),
                    None,
                    "the bytes came back different".to_owned(),
                ))
            }
        })
        .buffer_unordered(FILES_IN_FLIGHT)
        .collect()
        .await;
    report.files_time = began.elapsed();
    let mut lost = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(()) => {
                report.puts_ok += 1;
                report.gets_ok += 1;
            }
            Err(failure) => {
                warn!(
                    uploader = %failure.uploader.peer_id(),
                    getter = %failure.getter.peer_id(),
                    manifest = ?failure.manifest,
                    reason = %failure.reason,
                    "a file did not come back"
                );
                let put_ok = failure.manifest.is_some();
                report.puts_ok += usize::from(put_ok);
                let stage = if put_ok { "get" } else { "put" };
                *report
                    .file_failures
                    .entry(format!("{stage}: {}", blank_ids(&failure.reason)))
                    .or_default() += 1;
                if failure.stripe.is_some() && lost.len() < MISSES_EXAMINED {
                    lost.push(failure);
                }
            }
        }
    }
    if !lost.is_empty() {
        report.lost_files = examine_lost_files(net, lost).await;
    }
}

/// A put or get that failed, with what is needed to examine it.
struct FileFailure {
    uploader: Node,
    getter: Node,
    /// The manifest's stripe id, when the put succeeded.
    manifest: Option<ContentId>,
    /// The stripe the get could not fetch (lost, or the manifest not found).
    stripe: Option<ContentId>,
    reason: String,
}

/// A file that was put but did not come back, examined once all files are
/// done: where the stripe it could not fetch was placed, and what the
/// writer's and the reader's lookups of its placement key return now.
#[derive(Debug, Clone)]
pub struct LostFile {
    /// Whether the stripe was the manifest's (else a data stripe).
    pub manifest: bool,
    /// The nodes holding shares of the stripe, closest to its placement
    /// key first.
    pub holders: Vec<HolderSeen>,
    /// The reader's lookup of the placement key, made afterwards.
    pub reader: LookupSeen,
    /// The writer's lookup of the placement key, made afterwards.
    pub writer: LookupSeen,
    /// Holders the reader could dial afterwards.
    pub reader_dials: usize,
    /// Providers of the placement key the reader finds afterwards.
    pub providers: usize,
    /// Why the get failed.
    pub reason: String,
}

/// One holder of a lost file's stripe.
#[derive(Debug, Clone)]
pub struct HolderSeen {
    /// Its rank by distance to the placement key among all nodes (1: the
    /// closest).
    pub rank: usize,
    /// The share indexes it holds.
    pub indexes: Vec<u8>,
    /// Its routing-table size.
    pub table: usize,
    /// Its connected peers.
    pub connected: usize,
}

/// A lookup of a lost file's placement key, made afterwards.
#[derive(Debug, Clone)]
pub struct LookupSeen {
    /// Peers it returned (at most 20), or the error.
    pub returned: Result<usize, kith_net::NetError>,
    /// Of those, how many are among the 20 nodes truly closest to the key.
    pub true_closest: usize,
    /// Of those, how many hold shares of the stripe.
    pub holders: usize,
    /// The looking node's routing-table size.
    pub table: usize,
    /// The looking node's connected peers.
    pub connected: usize,
}

/// Looks at files that did not come back: see [`LostFile`].
async fn examine_lost_files(net: &Testnet, failures: Vec<FileFailure>) -> Vec<LostFile> {
    let mut lost = Vec::with_capacity(failures.len());
    for failure in failures {
        let Some(stripe) = failure.stripe else {
            continue;
        };
        // Who holds shares of the stripe, straight from every store.
        // (holder, share indexes, placement key from its lease, node)
        type Holder = (PeerId, Vec<u8>, Option<[u8; 32]>, Node);
        let mut holders: Vec<Holder> = Vec::new();
        for (_, node) in net.nodes() {
            let store = node.store().clone();
            let held = tokio::task::spawn_blocking(move || {
                let indexes: Vec<u8> = store
                    .shares_of_stripe(&stripe)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(index, _)| index)
                    .collect();
                let placement = store
                    .stripe_lease(&stripe)
                    .ok()
                    .flatten()
                    .and_then(|bytes| kith_base::Lease::from_bytes(&bytes).ok())
                    .map(|lease| lease.placement());
                (indexes, placement)
            })
            .await
            .unwrap_or_default();
            if !held.0.is_empty() {
                holders.push((node.peer_id(), held.0, held.1, node.clone()));
            }
        }
        let key = holders
            .iter()
            .find_map(|(_, _, placement, _)| *placement)
            .unwrap_or(*stripe.as_bytes());
        let mut everyone: Vec<PeerId> = net.nodes().map(|(_, node)| node.peer_id()).collect();
        kith_net::sort_by_distance(&key, &mut everyone);
        let rank = |peer: &PeerId| everyone.iter().position(|p| p == peer).map_or(0, |r| r + 1);
        let true_closest: std::collections::HashSet<PeerId> =
            everyone.iter().take(20).copied().collect();
        let holder_ids: std::collections::HashSet<PeerId> =
            holders.iter().map(|(peer, ..)| *peer).collect();
        let mut seen = Vec::with_capacity(holders.len());
        for (peer, indexes, _, node) in &holders {
            seen.push(HolderSeen {
                rank: rank(peer),
                indexes: indexes.clone(),
                table: node.net().known_peers().await.map_or(0, |p| p.len()),
                connected: node.net().connected_peers().await.map_or(0, |p| p.len()),
            });
        }
        seen.sort_by_key(|holder| holder.rank);
        let look = |node: Node| {
            let true_closest = &true_closest;
            let holder_ids = &holder_ids;
            async move {
                let found = node.net().closest_peers(key).await;
                let mut lookup = LookupSeen {
                    returned: Ok(0),
                    true_closest: 0,
                    holders: 0,
                    table: node.net().known_peers().await.map_or(0, |p| p.len()),
                    connected: node.net().connected_peers().await.map_or(0, |p| p.len()),
                };
                match found {
                    Ok(peers) => {
                        lookup.true_closest =
                            peers.iter().filter(|p| true_closest.contains(p)).count();
                        lookup.holders = peers.iter().filter(|p| holder_ids.contains(p)).count();
                        lookup.returned = Ok(peers.len());
                    }
                    Err(error) => lookup.returned = Err(error),
                }
                lookup
            }
        };
        let reader = look(failure.getter.clone()).await;
        let writer = look(failure.uploader.clone()).await;
        let providers = failure
            .getter
            .net()
            .providers(key)
            .await
            .map_or(0, |p| p.len());
        let mut reader_dials = 0;
        for (_, _, _, node) in &holders {
            let addr = node
                .listen_addrs()
                .await
                .ok()
                .and_then(|a| a.into_iter().next());
            if let Some(addr) = addr
                && failure.getter.net().dial(addr).await.is_ok()
            {
                reader_dials += 1;
            }
        }
        lost.push(LostFile {
            manifest: failure.manifest == Some(stripe),
            holders: seen,
            reader,
            writer,
            reader_dials,
            providers,
            reason: blank_ids(&failure.reason),
        });
    }
    lost
}

/// The error's message with peer ids and numbers blanked, so that equal
/// failures count together.
fn failure_kind(error: &kith_net::NetError) -> String {
    blank_ids(&error.to_string())
}

/// `text` with peer ids and numbers blanked.
fn blank_ids(text: &str) -> String {
    text.split_whitespace()
        .map(|word| {
            if word.starts_with("12D3Koo") || word.chars().any(|c| c.is_ascii_digit()) {
                "…"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every running node runs one Kademlia bootstrap, `concurrency` at once.
/// Returns how many failed.
async fn bootstrap_round(net: &Testnet, concurrency: usize) -> usize {
    futures::stream::iter(net.nodes())
        .map(|(_, node)| async move {
            !matches!(
                tokio::time::timeout(BOOTSTRAP_LIMIT, node.net().bootstrap()).await,
                Ok(Ok(()))
            )
        })
        .buffer_unordered(concurrency.max(1))
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await
}

/// Waits until the routing tables together grew by under 1 % in the last
/// [`QUIET_WINDOW`] (at most [`QUIET_LIMIT`]).
async fn wait_until_quiet(net: &Testnet) {
    let began = Instant::now();
    let mut before: usize = table_sizes(net).await.iter().sum();
    // Growth is a rate, so it is sampled once per window; the loop ends on
    // the condition (quiet) or at the limit.
    let mut windows =
        tokio::time::interval_at(tokio::time::Instant::now() + QUIET_WINDOW, QUIET_WINDOW);
    while began.elapsed() < QUIET_LIMIT {
        windows.tick().await;
        let after: usize = table_sizes(net).await.iter().sum();
        info!(entries = after, after = ?began.elapsed(), "routing tables");
        if after.saturating_sub(before) * 100 < before.max(1) {
            return;
        }
        before = after;
    }
    warn!("routing tables still growing after {QUIET_LIMIT:?}; measuring anyway");
}

/// Every running node's routing-table size, sorted.
async fn table_sizes(net: &Testnet) -> Vec<usize> {
    peer_counts(net, PeerCount::Known).await
}

/// Which peers [`peer_counts`] counts.
#[derive(Debug, Clone, Copy)]
enum PeerCount {
    /// In the routing table.
    Known,
    /// With an open connection.
    Connected,
}

/// Every running node's count of `which` peers, sorted (0 for a node that
/// does not answer). Asked of all nodes at once: asked one after another,
/// a thousand busy event loops take minutes.
async fn peer_counts(net: &Testnet, which: PeerCount) -> Vec<usize> {
    let mut counts: Vec<usize> = futures::stream::iter(net.nodes())
        .map(|(_, node)| async move {
            let count = match which {
                PeerCount::Known => node.net().known_peers().await.map(|p| p.len()),
                PeerCount::Connected => node.net().connected_peers().await.map(|p| p.len()),
            };
            count.unwrap_or(0)
        })
        .buffer_unordered(TABLE_QUERIES_IN_FLIGHT)
        .collect()
        .await;
    counts.sort_unstable();
    counts
}

/// Routing tables asked for at once by [`table_sizes`] and
/// [`examine_misses`].
const TABLE_QUERIES_IN_FLIGHT: usize = 256;

impl fmt::Display for DhtReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "| {name} | {value} |")
        };
        writeln!(f, "| figure | value |")?;
        writeln!(f, "|---|---|")?;
        row(
            f,
            "nodes",
            format!(
                "{} ({})",
                self.nodes,
                match self.transport {
                    Transport::Tcp => "TCP on 127.0.0.1",
                    Transport::Memory => "in-process memory transport, Noise + Yamux",
                }
            ),
        )?;
        if !self.latency.is_zero() {
            row(
                f,
                "simulated link latency, one way / round trip",
                format!("{} / {}", millis(self.latency), millis(self.latency * 2)),
            )?;
        }
        row(
            f,
            "each node's clocks: idle timeout / ping / DHT refresh / mail check",
            format!(
                "{} / {} / {} / {}",
                secs(self.timing.idle_timeout),
                secs(self.timing.ping_interval),
                self.timing
                    .dht_refresh
                    .map_or_else(|| "off".to_owned(), secs),
                secs(self.mail_check)
            ),
        )?;
        row(
            f,
            "all nodes started (listening)",
            if matches!(self.join, JoinMode::Waves(_)) {
                format!("{} (the last wave)", secs(self.start_time))
            } else {
                secs(self.start_time)
            },
        )?;
        match self.join {
            JoinMode::Bootstrap => row(
                f,
                "time to join (all started + one bootstrap each)",
                format!(
                    "{} ({} bootstraps failed or took over 30 s)",
                    secs(self.join_time),
                    self.join_failures
                ),
            )?,
            JoinMode::Quiet => row(
                f,
                "time to join (all started, each bootstrapped once, tables grew < 1 % in 10 s)",
                secs(self.join_time),
            )?,
            JoinMode::Waves(size) => row(
                f,
                "time to join (in waves, each bootstrapped once through a random node already in)",
                format!(
                    "{} ({} waves of {size}, each until the tables grew < 1 % in 10 s)",
                    secs(self.join_time),
                    self.waves
                ),
            )?,
        }
        row(
            f,
            "settling",
            format!(
                "{} more bootstrap rounds, {}",
                self.settle_rounds,
                secs(self.settle_time)
            ),
        )?;
        row(
            f,
            "routing-table size, median / smallest",
            format!("{} / {}", self.table_median, self.table_min),
        )?;
        let rate = if self.lookups == 0 {
            0.0
        } else {
            100.0 * self.found as f64 / self.lookups as f64
        };
        row(
            f,
            "lookup success",
            format!(
                "{}/{} ({rate:.1} %), {} in flight, all done in {}",
                self.found,
                self.lookups,
                self.concurrency,
                secs(self.lookups_time)
            ),
        )?;
        row(
            f,
            "requests per lookup (proxy for hops), median / p95",
            self.requests
                .map_or_else(|| "–".to_owned(), |(m, p)| format!("{m} / {p}")),
        )?;
        row(
            f,
            "lookup time, median / p95",
            millis_pair(self.lookup_time),
        )?;
        row(
            f,
            "answered from a connection already open to the target",
            format!("{} of {}", self.from_connection, self.found),
        )?;
        row(
            f,
            "lookup time of the others (requests sent), median / p95",
            millis_pair(self.routed_time),
        )?;
        let per_node = |rss: Option<u64>| match (rss, self.rss_before) {
            (Some(after), Some(before)) if self.nodes > 0 => {
                mib(after.saturating_sub(before) / self.nodes as u64)
            }
            _ => "–".to_owned(),
        };
        row(
            f,
            "memory per node (RSS after settling − before) / N",
            per_node(self.rss_settled),
        )?;
        row(
            f,
            "memory per node after the lookups",
            format!(
                "{} (process RSS {})",
                per_node(self.rss_after),
                self.rss_after.map_or_else(|| "–".to_owned(), mib)
            ),
        )?;
        row(
            f,
            "connected peers per node after the files, median / most",
            format!(
                "{} / {}{}",
                self.connections_median,
                self.connections_max,
                self.max_connections
                    .map_or_else(String::new, |max| format!(" (capped at {max} connections)"))
            ),
        )?;
        row(
            f,
            "open files after the lookups / limit / full mesh would need",
            format!(
                "{} / {} / {}",
                self.open_files
                    .map_or_else(|| "–".to_owned(), |n| n.to_string()),
                self.fd_limit
                    .map_or_else(|| "–".to_owned(), |n| n.to_string()),
                self.fd_full_mesh
            ),
        )?;
        if self.files > 0 {
            row(
                f,
                "small files: put / got back identical",
                format!(
                    "{}/{} / {}/{} ({} B each, 3-of-5, {} in flight, {})",
                    self.puts_ok,
                    self.files,
                    self.gets_ok,
                    self.files,
                    self.file_size,
                    FILES_IN_FLIGHT,
                    secs(self.files_time)
                ),
            )?;
        }
        for (kind, count) in &self.failures {
            writeln!(f, "\nfailed lookups ({count}): {kind}")?;
        }
        for miss in &self.misses {
            writeln!(
                f,
                "- a miss: {} requests in {}; the target was in {} of {} routing tables{}, \
                 and the querier {} it afterwards",
                miss.requests,
                secs(miss.elapsed),
                miss.known_by,
                self.nodes,
                if miss.querier_knew {
                    " (the querier's among them)"
                } else {
                    ""
                },
                if miss.reachable {
                    "could dial"
                } else {
                    "could not dial"
                },
            )?;
        }
        for (kind, count) in &self.file_failures {
            writeln!(f, "\nfailed files ({count}): {kind}")?;
        }
        for lost in &self.lost_files {
            write_lost_file(f, lost)?;
        }
        Ok(())
    }
}

/// One examined [`LostFile`], as a few lines of the report.
fn write_lost_file(f: &mut fmt::Formatter<'_>, lost: &LostFile) -> fmt::Result {
    let lookup = |seen: &LookupSeen| match &seen.returned {
        Ok(count) => format!(
            "{count} peers, {} of the 20 truly closest, {} holders (table {}, {} connected)",
            seen.true_closest, seen.holders, seen.table, seen.connected
        ),
        Err(error) => format!(
            "failed: {error} (table {}, {} connected)",
            seen.table, seen.connected
        ),
    };
    writeln!(
        f,
        "- a lost file ({} stripe): {}",
        if lost.manifest { "manifest" } else { "data" },
        lost.reason
    )?;
    let holders: Vec<String> = lost
        .holders
        .iter()
        .map(|h| {
            format!(
                "rank {} share {:?} table {} conn {}",
                h.rank, h.indexes, h.table, h.connected
            )
        })
        .collect();
    writeln!(f, "  holders: {}", holders.join("; "))?;
    writeln!(f, "  the reader's lookup now: {}", lookup(&lost.reader))?;
    writeln!(f, "  the writer's lookup now: {}", lookup(&lost.writer))?;
    writeln!(
        f,
        "  the reader can dial {} of {} holders; {} providers of the key",
        lost.reader_dials,
        lost.holders.len(),
        lost.providers
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A median and a 95th percentile in milliseconds, or "–".
fn millis_pair(pair: Option<(Duration, Duration)>) -> String {
    pair.map_or_else(
        || "–".to_owned(),
        |(median, p95)| format!("{} / {}", millis(median), millis(p95)),
    )
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}
