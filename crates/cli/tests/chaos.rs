//! Chaos with real processes: a dozen `kith up` nodes in network namespaces
//! on one bridge, with impaired links, lose nodes to SIGKILL in waves, get
//! cut in two and mended, get their dead restarted — and every file put
//! before all that must come back byte-identical.
//!
//! The run, in order:
//! 1. [`NODES`] namespaces on one bridge (10.232.1.0/24), each bridge port
//!    impaired with [`LINK`] (`tc netem`; loss alone by nftables where the
//!    kernel has no netem; see `Lab::impair`), a `config.toml` with fast
//!    maintenance settings in each data folder, `kith up` in each;
//! 2. waits until every node lists at least [`MIN_PEERS`] peers;
//! 3. puts [`FILES`] files of mixed sizes, each from another node;
//! 4. [`WAVES`] waves: SIGKILL the [`KILLS_PER_WAVE`] (n − k) live nodes
//!    that hold the most shares, then wait until `kith stat` reports every
//!    stripe of every file healthy again (n shares on n peers), which only
//!    automatic repair can do — so never more than n − k nodes are lost
//!    between two repairs, and more than n − k over the whole run;
//! 5. cuts the live nodes in two (the bridge ports of one half go down),
//!    waits until each side has dropped the other, mends the cut and waits
//!    until the sides reconnect (the namespaces' TCP gives up on a dead
//!    connection after [`TCP_RETRIES2`] retransmissions, so the cut is
//!    noticed in seconds; without it kith-net's rule of closing a
//!    connection after two failed pings takes about a minute);
//! 6. restarts every killed node on its data folder;
//! 7. gets every file on a node that was never killed and compares it with
//!    the original;
//! 8. prints a table (`--nocapture` shows it): files, nodes killed, files
//!    hit, shares repaired, bytes moved by repair (fetched + sent, summed
//!    over the live nodes' `kith status --json`), time back to full health
//!    per wave.
//!
//! The lab deletes every namespace it made and stops every node, on
//! success and on panic alike (see `netns_support`).
//!
//! Environment:
//! - `KITH_CHAOS_SCALE=full`: bigger files (up to 64 MiB + 1, about
//!   450 MiB in all) and longer limits; `bench/chaos.sh` runs it in release.
//!   The default is a CI size: about 25 MiB, a few minutes in debug.
//! - `KITH_CHAOS_NO_REPAIR=1`: for checking the harness on a node without
//!   automatic repair: one wave of n − k kills (so files stay readable),
//!   then a check that exactly the files hit are degraded instead of a wait
//!   for health, no repair settings in `config.toml` (a node without repair
//!   rejects unknown keys), and repair counters shown as "n/a" where
//!   `kith status --json` is missing (a marked fallback in `counters`).
//!
//! Needs root and iproute2 like `netns.rs`; skips (passes) with a message
//! where namespaces cannot be created.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netns_support::{Impairment, Lab, Netem, eventually, ids};

/// Hosts on the bridge.
const NODES: usize = 12;
/// The hosts' subnet (/24): node `i` is `.{i + 1}`.
const SUBNET: &str = "10.232.1";
/// What every bridge port does to the packets it sends towards its node.
const LINK: Netem = Netem {
    delay_ms: 5,
    jitter_ms: 1,
    loss_percent: 0.5,
};
/// The erasure code of every put: any `K` of `N` shares rebuild a stripe.
const K: usize = 3;
/// See [`K`].
const N: usize = 5;
/// Peers every node must list before the first put.
const MIN_PEERS: usize = 6;
/// Waves of kills.
const WAVES: usize = 3;
/// Nodes killed per wave: as many as a stripe can lose and stay readable.
const KILLS_PER_WAVE: usize = N - K;
/// Files put.
const FILES: usize = 20;
/// The node that runs `kith stat`; never killed.
const STAT_NODE: usize = 0;
/// The node that gets the files at the end; never killed.
const GET_NODE: usize = 1;
/// Node 0's fixed listen port: the others bootstrap from it.
const BOOTSTRAP_PORT: u16 = 4001;
/// `config.toml` of every node.
const BASE_CONFIG: &str = "mdns = true\n";
/// Added to [`BASE_CONFIG`] unless `KITH_CHAOS_NO_REPAIR` is set: check
/// held stripes every 3 s instead of every 10 minutes.
const MAINTENANCE_CONFIG: &str = "repair_interval = \"3s\"\n";
/// TCP retransmissions before a connection is given up (per namespace;
/// Linux's default of 15 takes about 15 minutes). A cut link is noticed by
/// nothing but TCP timing out (a failed libp2p ping does not close the
/// connection), so the partition lowers it to a few seconds' worth.
const TCP_RETRIES2: &str = "5";

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// File sizes for CI: empty, tiny, around page, segment (1 MiB) and
/// multi-segment boundaries, up to 3 MiB; 25 MiB in all.
const CI_SIZES: [u64; FILES] = [
    0,
    1,
    1000,
    4096,
    12_345,
    65_537,
    300_000,
    700 * KIB,
    MIB - 1,
    MIB,
    MIB + 1,
    1_234_567,
    3 * MIB / 2,
    2 * MIB,
    2 * MIB + 7,
    5 * MIB / 2,
    2_900_000,
    3 * MIB - 1,
    3 * MIB,
    3 * MIB,
];

/// File sizes for `bench/chaos.sh`: up to two extents (64 MiB + 1).
const FULL_SIZES: [u64; FILES] = [
    0,
    1,
    4096,
    MIB - 1,
    MIB + 1,
    3 * MIB,
    7 * MIB,
    8 * MIB,
    10 * MIB,
    16 * MIB,
    16 * MIB + 1,
    20 * MIB,
    24 * MIB,
    32 * MIB,
    33 * MIB,
    40 * MIB,
    48 * MIB,
    63 * MIB,
    64 * MIB,
    64 * MIB + 1,
];

/// How the run is sized and what it expects of the nodes; from the
/// environment (see the module docs).
struct Plan {
    /// `KITH_CHAOS_SCALE=full`.
    full: bool,
    /// Whether nodes repair on their own (no `KITH_CHAOS_NO_REPAIR`).
    repair: bool,
    /// Waves of kills.
    waves: usize,
    /// Limit on each wait for every file to be healthy again.
    health_limit: Duration,
    /// Limit on the other waits (peers, partition noticed, healed).
    wait_limit: Duration,
}

impl Plan {
    /// Reads `KITH_CHAOS_SCALE` and `KITH_CHAOS_NO_REPAIR`.
    fn from_env() -> Self {
        let full = std::env::var("KITH_CHAOS_SCALE").is_ok_and(|v| v == "full");
        let repair =
            !std::env::var("KITH_CHAOS_NO_REPAIR").is_ok_and(|v| !v.is_empty() && v != "0");
        Self {
            full,
            repair,
            waves: if repair { WAVES } else { 1 },
            health_limit: Duration::from_secs(if full { 900 } else { 180 }),
            wait_limit: Duration::from_secs(if full { 300 } else { 120 }),
        }
    }

    /// The sizes of the files to put.
    fn sizes(&self) -> &'static [u64; FILES] {
        if self.full { &FULL_SIZES } else { &CI_SIZES }
    }
}

/// A file put at the start, and what it must come back as.
struct Original {
    path: PathBuf,
    size: u64,
    hash: blake3::Hash,
    cap: String,
}

/// The repair counters of `kith status --json` that the table sums.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
struct RepairCounters {
    shares_repaired: u64,
    repair_bytes_fetched: u64,
    repair_bytes_sent: u64,
}

/// What `kith stat` said about one file.
#[derive(Debug)]
struct FileStat {
    /// Every stripe, the manifest included, has n shares on n peers.
    healthy: bool,
    /// The summary line.
    summary: String,
    /// `(share index, peer id)` for every share found.
    holders: Vec<(usize, String)>,
}

/// One wave's row of the table.
struct WaveRow {
    killed: Vec<String>,
    /// Files with a share on a killed node.
    files_hit: usize,
    /// Shares repaired and bytes moved by repair; `None` when the nodes
    /// have no `kith status --json` (the fallback, see [`counters`]).
    repair: Option<(u64, u64)>,
    back_to_healthy: Option<Duration>,
}

/// The chaos run of the module docs, steps 1 to 8.
#[test]
fn files_survive_kills_partition_and_restarts() {
    let plan = Plan::from_env();
    let Some(mut lab) = Lab::new("chaos") else {
        return;
    };

    // 1. The LAN: one bridge, NODES hosts, impaired ports.
    let switch = lab.namespace("sw");
    lab.bridge(&switch);
    let mut hosts = Vec::new();
    let mut impairment = None;
    for i in 0..NODES {
        let name = format!("n{i}");
        let ns = lab.namespace(&name);
        let port = port_name(i);
        lab.attach(&ns, &format!("{SUBNET}.{}/24", i + 1), &switch, &port);
        let applied = lab.impair(&switch, &port, &LINK);
        if let Some(first) = &impairment {
            assert_eq!(
                std::mem::discriminant(first),
                std::mem::discriminant(&applied),
                "the same kind of impairment on every port: {first:?}, {applied:?}"
            );
        }
        impairment = Some(applied);
        lab.sysctl(&ns, "net.ipv4.tcp_retries2", TCP_RETRIES2);
        let mut config = BASE_CONFIG.to_owned();
        if plan.repair {
            config.push_str(MAINTENANCE_CONFIG);
        }
        lab.write_config(&name, &config);
        hosts.push((name, ns));
    }
    let impairment = impairment.expect("at least one port");
    eprintln!("links: {impairment:?}");
    let impairment = describe(&impairment);

    let started = Instant::now();
    let first = lab.start(
        &hosts[0].0,
        &hosts[0].1,
        &["--listen", &format!("/ip4/0.0.0.0/tcp/{BOOTSTRAP_PORT}")],
    );
    assert_eq!(first, 0);
    let bootstrap = format!(
        "/ip4/{SUBNET}.1/tcp/{BOOTSTRAP_PORT}/p2p/{}",
        lab.node(0).peer_id
    );
    for (name, ns) in &hosts[1..] {
        lab.start(
            name,
            ns,
            &["--listen", "/ip4/0.0.0.0/tcp/0", "--bootstrap", &bootstrap],
        );
    }
    let peer_ids: Vec<String> = (0..NODES).map(|i| lab.node(i).peer_id.clone()).collect();
    assert_eq!(
        peer_ids.iter().collect::<BTreeSet<_>>().len(),
        NODES,
        "distinct peer ids"
    );

    // 2. Everyone knows enough peers to place 3-of-5 shares.
    for i in 0..NODES {
        eventually(
            &format!("n{i} lists at least {MIN_PEERS} peers"),
            plan.wait_limit,
            || {
                let peers = lab.peers(i)?;
                if peers.len() >= MIN_PEERS {
                    Ok(())
                } else {
                    Err(format!("{} peers: {:?}", peers.len(), ids(&peers)))
                }
            },
        );
    }
    let joined = started.elapsed();

    // 3. FILES files of mixed sizes, each put from another node.
    let inputs = lab.scratch("files");
    let put_started = Instant::now();
    let mut originals = Vec::new();
    for (f, &size) in plan.sizes().iter().enumerate() {
        let path = inputs.join(format!("file{f:02}"));
        let bytes = pseudo_random(f as u64, size);
        std::fs::write(&path, &bytes).unwrap();
        let putter = f % NODES;
        let shares = format!("{K}/{N}");
        let cap = lab
            .kith(
                putter,
                &["put", path.to_str().unwrap(), "--shares", &shares],
            )
            .unwrap_or_else(|e| panic!("put of file{f:02} ({size} bytes) on n{putter}: {e}"));
        let cap = cap.trim().to_owned();
        assert!(
            cap.starts_with("kith:"),
            "capability of file{f:02}: {cap:?}"
        );
        originals.push(Original {
            path,
            size,
            hash: blake3::hash(&bytes),
            cap,
        });
    }
    let put_time = put_started.elapsed();
    let total_bytes: u64 = originals.iter().map(|o| o.size).sum();
    let caps: Vec<&str> = originals.iter().map(|o| o.cap.as_str()).collect();

    // Every put stored all n shares, so every file starts healthy.
    let mut stats = stat_all(&lab, STAT_NODE, &caps);
    for (f, stat) in stats.iter().enumerate() {
        let stat = stat
            .as_ref()
            .unwrap_or_else(|e| panic!("stat of file{f:02}: {e}"));
        assert!(
            stat.healthy,
            "file{f:02} right after its put: {}",
            stat.summary
        );
    }

    // 4. Waves of kills, each followed by repair back to full health.
    let keepers = [STAT_NODE, GET_NODE];
    let mut killed: Vec<usize> = Vec::new();
    let mut waves = Vec::new();
    for wave in 1..=plan.waves {
        let alive: Vec<usize> = (0..NODES).filter(|i| !killed.contains(i)).collect();
        let victims = biggest_holders(&stats, &peer_ids, &alive, &keepers, KILLS_PER_WAVE);
        // The files with a share on a victim: those the wave damages.
        let victim_ids: BTreeSet<&str> = victims.iter().map(|&v| peer_ids[v].as_str()).collect();
        let hit: BTreeSet<usize> = stats
            .iter()
            .enumerate()
            .filter(|(_, stat)| {
                stat.as_ref().is_ok_and(|stat| {
                    stat.holders
                        .iter()
                        .any(|(_, peer)| victim_ids.contains(peer.as_str()))
                })
            })
            .map(|(f, _)| f)
            .collect();
        let before = sample(&lab, &alive, plan.repair);
        let kill_time = Instant::now();
        for &victim in &victims {
            lab.kill(victim);
            killed.push(victim);
        }
        eprintln!("wave {wave}: killed {victims:?}");
        let alive: Vec<usize> = (0..NODES).filter(|i| !killed.contains(i)).collect();
        let back_to_healthy = if plan.repair {
            Some(wait_healthy(
                &lab,
                &caps,
                kill_time,
                plan.health_limit,
                wave,
            ))
        } else {
            // Nothing repairs: exactly the files hit must now be degraded
            // (which also shows that `kith stat` is read right, so that the
            // health waits of the real run mean something).
            for (f, stat) in stat_all(&lab, STAT_NODE, &caps).iter().enumerate() {
                let stat = stat
                    .as_ref()
                    .unwrap_or_else(|e| panic!("stat of file{f:02}: {e}"));
                assert_eq!(
                    !stat.healthy,
                    hit.contains(&f),
                    "file{f:02} after wave {wave} (hit: {}): {}",
                    hit.contains(&f),
                    stat.summary
                );
            }
            None
        };
        let after = sample(&lab, &alive, plan.repair);
        waves.push(WaveRow {
            killed: victims.iter().map(|v| format!("n{v}")).collect(),
            files_hit: hit.len(),
            repair: repair_delta(&before, &after),
            back_to_healthy,
        });
        stats = stat_all(&lab, STAT_NODE, &caps);
    }

    // 5. Partition: the live nodes in two halves; the second half's bridge
    // ports go down.
    let alive: Vec<usize> = (0..NODES).filter(|i| !killed.contains(i)).collect();
    let (side_a, side_b) = alive.split_at(alive.len().div_ceil(2));
    assert!(side_a.contains(&STAT_NODE) && side_a.contains(&GET_NODE));
    let ids_of = |side: &[usize]| -> BTreeSet<String> {
        side.iter().map(|&i| peer_ids[i].clone()).collect()
    };
    let (ids_a, ids_b) = (ids_of(side_a), ids_of(side_b));
    let cut_time = Instant::now();
    for &i in side_b {
        lab.set_link(&switch, &port_name(i), false);
    }
    for (side, other) in [(side_a, &ids_b), (side_b, &ids_a)] {
        for &i in side {
            eventually(
                &format!("n{i} drops the other side of the partition"),
                plan.wait_limit,
                || {
                    let seen = ids(&lab.peers(i)?);
                    let across: Vec<&String> = seen.intersection(other).collect();
                    if across.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("still lists {across:?}"))
                    }
                },
            );
        }
    }
    let held = cut_time.elapsed();
    let heal_time = Instant::now();
    for &i in side_b {
        lab.set_link(&switch, &port_name(i), true);
    }
    for (side, other) in [(side_a, &ids_b), (side_b, &ids_a)] {
        for &i in side {
            eventually(
                &format!("n{i} reconnects across the healed partition"),
                plan.wait_limit,
                || {
                    let seen = ids(&lab.peers(i)?);
                    if seen.intersection(other).next().is_some() {
                        Ok(())
                    } else {
                        Err(format!("lists only {seen:?}"))
                    }
                },
            );
        }
    }
    let healed = heal_time.elapsed();

    // 6. The dead come back, on their own data folders.
    let restart_time = Instant::now();
    for &i in &killed {
        lab.restart(i);
    }
    for &i in &killed {
        eventually(
            &format!("restarted n{i} lists a peer"),
            plan.wait_limit,
            || {
                let peers = lab.peers(i)?;
                if peers.is_empty() {
                    Err("no peers".to_owned())
                } else {
                    Ok(())
                }
            },
        );
    }
    let restarted = restart_time.elapsed();

    // 7. Every file, byte for byte.
    let downloads = lab.scratch("downloads");
    let get_started = Instant::now();
    let mut identical = 0;
    let mut failures = Vec::new();
    for (f, original) in originals.iter().enumerate() {
        let out = downloads.join(format!("file{f:02}"));
        match lab.kith(
            GET_NODE,
            &["get", &original.cap, "-o", out.to_str().unwrap()],
        ) {
            Ok(_) => match same_bytes(&out, original) {
                Ok(()) => identical += 1,
                Err(why) => failures.push(format!("file{f:02}: {why}")),
            },
            Err(error) => failures.push(format!("file{f:02}: get failed: {error}")),
        }
    }
    let get_time = get_started.elapsed();
    let final_health: usize = stat_all(&lab, STAT_NODE, &caps)
        .iter()
        .filter(|stat| stat.as_ref().is_ok_and(|s| s.healthy))
        .count();

    // 8. The table.
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\nchaos: {NODES} nodes, {} files ({}), {K}-of-{N}, {impairment}{}",
        originals.len(),
        mib(total_bytes),
        if plan.repair {
            ""
        } else {
            " [KITH_CHAOS_NO_REPAIR: no health waits]"
        }
    );
    let _ = writeln!(
        table,
        "joined in {:.1} s; {} files put from {} nodes in {:.1} s",
        joined.as_secs_f64(),
        originals.len(),
        NODES.min(originals.len()),
        put_time.as_secs_f64()
    );
    let _ = writeln!(
        table,
        "{:<6}{:<14}{:<11}{:<17}{:<18}back to healthy",
        "wave", "killed", "files hit", "shares repaired", "repair MiB moved"
    );
    for (w, row) in waves.iter().enumerate() {
        let (shares, moved) = row.repair.map_or_else(
            || ("n/a".to_owned(), "n/a".to_owned()),
            |(shares, bytes)| {
                (
                    shares.to_string(),
                    format!("{:.1}", bytes as f64 / MIB as f64),
                )
            },
        );
        let _ = writeln!(
            table,
            "{:<6}{:<14}{:<11}{shares:<17}{moved:<18}{}",
            w + 1,
            format!("{} ({})", row.killed.len(), row.killed.join(",")),
            format!("{}/{}", row.files_hit, originals.len()),
            row.back_to_healthy.map_or_else(
                || "not waited for".to_owned(),
                |t| format!("{:.1} s", t.as_secs_f64())
            )
        );
    }
    let _ = writeln!(
        table,
        "partition {}|{} for {:.1} s (until both sides noticed), healed in {:.1} s; \
         restarted {} nodes in {:.1} s",
        side_a.len(),
        side_b.len(),
        held.as_secs_f64(),
        healed.as_secs_f64(),
        killed.len(),
        restarted.as_secs_f64()
    );
    let _ = writeln!(
        table,
        "files back byte-identical: {identical}/{} (got on n{GET_NODE} in {:.1} s); \
         healthy at the end: {final_health}/{}",
        originals.len(),
        get_time.as_secs_f64(),
        originals.len()
    );
    println!("{table}");

    assert!(
        failures.is_empty(),
        "files not back byte-identical:\n{}",
        failures.join("\n")
    );
    assert_eq!(identical, originals.len());
    assert!(
        killed.len() > N - K || !plan.repair,
        "more than n - k nodes killed over the run"
    );
}

/// The bridge port of node `i`.
fn port_name(i: usize) -> String {
    format!("p-n{i}")
}

/// The impairment, as the table's first line says it.
fn describe(impairment: &Impairment) -> String {
    let Netem {
        delay_ms,
        jitter_ms,
        loss_percent,
    } = LINK;
    match impairment {
        Impairment::Netem => format!("netem {delay_ms}ms±{jitter_ms}ms loss {loss_percent}%"),
        Impairment::LossOnly { .. } => {
            format!("loss {loss_percent}% by nftables (no netem in this kernel: no added delay)")
        }
        Impairment::None { .. } => "links not impaired (neither netem nor nftables here)".into(),
    }
}

/// `size` bytes of a deterministic pseudo-random stream (SplitMix64) seeded
/// with `seed`: incompressible, and different for every file.
fn pseudo_random(seed: u64, size: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap());
    while (bytes.len() as u64) < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let take = usize::try_from((size - bytes.len() as u64).min(8)).unwrap();
        bytes.extend_from_slice(&z.to_le_bytes()[..take]);
    }
    bytes
}

/// Whether the downloaded file at `path` is `original`, byte for byte.
fn same_bytes(path: &Path, original: &Original) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the download: {e}"))?;
    if bytes.len() as u64 != original.size {
        return Err(format!(
            "{} bytes instead of {}",
            bytes.len(),
            original.size
        ));
    }
    if blake3::hash(&bytes) != original.hash {
        let first = std::fs::read(&original.path)
            .ok()
            .and_then(|orig| orig.iter().zip(&bytes).position(|(a, b)| a != b));
        return Err(format!("content differs (first at byte {first:?})"));
    }
    Ok(())
}

/// `kith stat` of every capability on node `index`, a few at a time.
fn stat_all(lab: &Lab, index: usize, caps: &[&str]) -> Vec<Result<FileStat, String>> {
    const AT_ONCE: usize = 5;
    let mut all = Vec::with_capacity(caps.len());
    for chunk in caps.chunks(AT_ONCE) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|cap| scope.spawn(move || parse_stat(&lab.kith(index, &["stat", cap])?)))
                .collect();
            for handle in handles {
                all.push(handle.join().expect("a stat thread"));
            }
        });
    }
    all
}

/// Parses `kith stat` output: lines `<label> <id> <health> X shares on Y
/// peers idx:peer …` (label `manifest` or `stripe N`), then a summary
/// `… S stripes: H healthy, D degraded, L lost (P peers asked)`.
fn parse_stat(out: &str) -> Result<FileStat, String> {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let (summary, stripes) = lines
        .split_last()
        .ok_or_else(|| format!("empty stat output: {out:?}"))?;
    let count = |word: &str| -> Result<usize, String> {
        let words: Vec<&str> = summary
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        let at = words
            .iter()
            .rposition(|w| *w == word)
            .filter(|&at| at > 0)
            .ok_or_else(|| format!("no {word:?} count in {summary:?}"))?;
        words[at - 1]
            .parse()
            .map_err(|_| format!("bad {word:?} count in {summary:?}"))
    };
    let (degraded, lost) = (count("degraded")?, count("lost")?);
    let mut every_stripe_healthy = !stripes.is_empty();
    let mut holders = Vec::new();
    for line in stripes {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| *w == "shares")
            .filter(|&at| at >= 2)
            .ok_or_else(|| format!("unexpected stat line {line:?}"))?;
        every_stripe_healthy &= words[at - 2] == "healthy";
        for word in &words[at..] {
            if let Some((index, peer)) = word.split_once(':')
                && let Ok(index) = index.parse()
            {
                holders.push((index, peer.to_owned()));
            }
        }
    }
    Ok(FileStat {
        healthy: degraded == 0 && lost == 0 && every_stripe_healthy,
        summary: (*summary).to_owned(),
        holders,
    })
}

/// The `count` nodes of `alive`, other than `keep`, that hold the most
/// shares according to `stats` (lowest index first on a tie).
fn biggest_holders(
    stats: &[Result<FileStat, String>],
    peer_ids: &[String],
    alive: &[usize],
    keep: &[usize],
    count: usize,
) -> Vec<usize> {
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for stat in stats.iter().flatten() {
        for (_, peer) in &stat.holders {
            *held.entry(peer.as_str()).or_default() += 1;
        }
    }
    let mut candidates: Vec<(usize, usize)> = alive
        .iter()
        .filter(|i| !keep.contains(i))
        .map(|&i| (held.get(peer_ids[i].as_str()).copied().unwrap_or(0), i))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert!(
        candidates.len() >= count,
        "only {} nodes left to kill",
        candidates.len()
    );
    candidates.iter().take(count).map(|&(_, i)| i).collect()
}

/// Waits (polling `kith stat`) until every file is healthy; returns the
/// time since `since` (the kills). A file found healthy is not asked again.
fn wait_healthy(
    lab: &Lab,
    caps: &[&str],
    since: Instant,
    limit: Duration,
    wave: usize,
) -> Duration {
    let mut pending: Vec<usize> = (0..caps.len()).collect();
    eventually(
        &format!("wave {wave}: every file healthy again"),
        limit,
        || {
            let asked: Vec<&str> = pending.iter().map(|&f| caps[f]).collect();
            let answers = stat_all(lab, STAT_NODE, &asked);
            let mut still = Vec::new();
            let mut why = String::new();
            for (&f, answer) in pending.iter().zip(&answers) {
                match answer {
                    Ok(stat) if stat.healthy => {}
                    Ok(stat) => {
                        still.push(f);
                        let _ = write!(why, "\nfile{f:02}: {}", stat.summary);
                    }
                    Err(error) => {
                        still.push(f);
                        let _ = write!(why, "\nfile{f:02}: {error}");
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                Ok(())
            } else {
                Err(format!("{} file(s) not healthy:{why}", pending.len()))
            }
        },
    );
    since.elapsed()
}

/// The repair counters of every node in `nodes` (`None` for a node
/// without them, see [`counters`]).
fn sample(lab: &Lab, nodes: &[usize], repair: bool) -> BTreeMap<usize, Option<RepairCounters>> {
    nodes
        .iter()
        .map(|&i| (i, counters(lab, i, repair)))
        .collect()
}

/// Node `index`'s repair counters from `kith status --json`.
fn counters(lab: &Lab, index: usize, repair: bool) -> Option<RepairCounters> {
    match lab.kith(index, &["status", "--json"]) {
        Ok(json) => Some(
            serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("n{index}: `kith status --json`: {e}: {json:?}")),
        ),
        // Harness-only mode (KITH_CHAOS_NO_REPAIR, e.g. against an older
        // `kith` without `status`): no counters, and the table says "n/a".
        // In the real run the command must work.
        Err(error) if !repair => {
            eprintln!("n{index}: no repair counters (fallback): {error}");
            None
        }
        Err(error) => panic!("n{index}: `kith status --json`: {error}"),
    }
}

/// Shares repaired and bytes moved by repair (fetched + sent) between two
/// samples, summed over the nodes in both; `None` if a node had no
/// counters.
fn repair_delta(
    before: &BTreeMap<usize, Option<RepairCounters>>,
    after: &BTreeMap<usize, Option<RepairCounters>>,
) -> Option<(u64, u64)> {
    let mut shares = 0;
    let mut bytes = 0;
    for (node, now) in after {
        let now = (*now)?;
        let then = before.get(node).copied().flatten().unwrap_or_default();
        shares += now.shares_repaired.saturating_sub(then.shares_repaired);
        bytes += now
            .repair_bytes_fetched
            .saturating_sub(then.repair_bytes_fetched)
            + now.repair_bytes_sent.saturating_sub(then.repair_bytes_sent);
    }
    Some((shares, bytes))
}

/// `bytes` in MiB with one decimal, e.g. `24.1 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// The parts of the harness that read other commands' output, on samples:
/// `kith stat` (health and holders) and `kith status --json` (counters).
#[test]
fn stat_and_status_output_is_read_right() {
    let healthy = "manifest 7f3a healthy 5 shares on 5 peers 0:A 1:B 2:C 3:D 4:E\n\
                   stripe 0 9c1d healthy 5 shares on 5 peers 0:A 1:B 2:C 3:D 4:F\n\
                   file03: 4.0 KiB (4096 bytes), 3/5 code, 1 stripes: 1 healthy, 0 degraded, 0 lost (11 peers asked)\n";
    let stat = parse_stat(healthy).unwrap();
    assert!(stat.healthy, "{stat:?}");
    assert_eq!(stat.holders.len(), 10);
    assert!(stat.holders.contains(&(4, "F".to_owned())));

    // A degraded manifest is not counted in the summary; it still counts.
    let manifest_degraded = healthy.replacen("healthy 5 shares", "degraded 4 shares", 1);
    assert!(!parse_stat(&manifest_degraded).unwrap().healthy);
    let stripe_lost = "manifest 7f3a healthy 5 shares on 5 peers 0:A 1:B 2:C 3:D 4:E\n\
                       stripe 0 9c1d lost 2 shares on 2 peers 0:A 1:B\n\
                       lost and degraded: 1 B (1 bytes), 3/5 code, 1 stripes: 0 healthy, 0 degraded, 1 lost (9 peers asked)\n";
    let stat = parse_stat(stripe_lost).unwrap();
    assert!(!stat.healthy);
    assert_eq!(stat.holders.len(), 7);
    assert!(parse_stat("").is_err());

    let json = r#"{"peers":9,"shares_held":40,"bytes_held":1000,"repair_rounds":3,
        "stripes_checked":12,"stripes_repaired":2,"shares_repaired":3,
        "repair_bytes_fetched":3000,"repair_bytes_sent":1000,"repairs_running":0,
        "repair_failures":0,"scrub_checked":0,"scrub_damaged":0,"leases_renewed":0,
        "shares_expired":0}"#;
    let now: RepairCounters = serde_json::from_str(json).unwrap();
    let before = BTreeMap::from([(1, Some(RepairCounters::default())), (2, None)]);
    let after = BTreeMap::from([(1, Some(now))]);
    assert_eq!(repair_delta(&before, &after), Some((3, 4000)));
    let after_unknown = BTreeMap::from([(1, Some(now)), (2, None)]);
    assert_eq!(repair_delta(&before, &after_unknown), None);
}
