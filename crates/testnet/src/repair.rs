//! `kith-testnet repair`: how fast the network heals. Starts N nodes on
//! 127.0.0.1 TCP in one process, stores one large file, then kills the node
//! holding the most shares, wave after wave, and times each wave from the
//! death to every stripe being healthy again (n shares on n distinct live
//! peers), with what repair moved to get there.

use std::fmt::{self, Write as _};
use std::io::Read;
use std::time::{Duration, Instant};

use kith_node::{FileMeta, Params, StatReport, UpkeepCounters, UpkeepSettings};

use crate::{Testnet, TestnetConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct RepairBenchConfig {
    /// Nodes to start.
    pub nodes: usize,
    /// Bytes in the file.
    pub size: u64,
    /// Waves of one death each.
    pub waves: usize,
    /// The nodes' upkeep settings (repair interval and rate).
    pub upkeep: UpkeepSettings,
    /// Longest wait for a wave to heal.
    pub limit: Duration,
}

/// One wave's figures.
#[derive(Debug, Clone)]
pub struct Wave {
    /// Shares the dead node held.
    pub shares_lost: usize,
    /// From the kill to every stripe healthy.
    pub healed_in: Duration,
    /// Shares rebuilt and placed, over all nodes.
    pub shares_rebuilt: u64,
    /// Bytes fetched to rebuild them.
    pub fetched: u64,
    /// Bytes of rebuilt shares sent.
    pub sent: u64,
    /// Stripes healthy / degraded / lost just after the kill.
    pub after_kill: [usize; 3],
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// Nodes started.
    pub nodes: usize,
    /// Bytes stored.
    pub size: u64,
    /// Stripes of the file, the manifest's included.
    pub stripes: usize,
    /// Time the put took.
    pub put: Duration,
    /// One per wave.
    pub waves: Vec<Wave>,
    /// Whether the file read back byte-identical at the end.
    pub verified: bool,
}

/// Runs the benchmark.
///
/// # Errors
///
/// A node that does not start, or a put, stat or get that fails.
pub async fn run(config: &RepairBenchConfig) -> Result<RepairReport, anyhow::Error> {
    let mut net = Testnet::start(
        config.nodes,
        TestnetConfig {
            upkeep: config.upkeep.clone(),
            ..TestnetConfig::default()
        },
    )
    .await?;
    let result = run_on(&mut net, config).await;
    net.shutdown().await;
    result
}

async fn run_on(
    net: &mut Testnet,
    config: &RepairBenchConfig,
) -> Result<RepairReport, anyhow::Error> {
    net.wait_joined(
        config.nodes.saturating_sub(1).min(8),
        Duration::from_secs(120),
    )
    .await?;
    let started = Instant::now();
    let put = net
        .node(0)
        .files()
        .put(
            Box::new(content(config.size)),
            Params::default(),
            FileMeta::none(),
        )
        .await?;
    let put_time = started.elapsed();
    let cap = put.capability;
    let stat = net.node(0).files().stat(&cap).await?;
    let stripes = stat.stripes.len() + 1;

    let mut waves = Vec::new();
    for _ in 0..config.waves {
        // The node (other than node 0, which asks) holding the most shares.
        let now = stat_now(net, &cap).await;
        let victim = (1..net.len())
            .filter(|&i| net.is_running(i))
            .max_by_key(|&i| now.held_by(net.peer_id(i)))
            .ok_or_else(|| anyhow::anyhow!("no node left to kill"))?;
        let victim_id = net.peer_id(victim);
        let shares_lost = now.held_by(victim_id);
        let before = totals(net, Some(victim)).await;
        let killed = Instant::now();
        net.kill(victim).await?;
        let after_kill = net.node(0).files().stat(&cap).await?.health_counts();
        let asker = net.node(0).clone();
        net.wait_for("every stripe is healthy again", config.limit, || async {
            asker.files().stat(&cap).await.is_ok_and(|stat| {
                stat.health_counts() == [stripes, 0, 0] && stat.held_by(victim_id) == 0
            })
        })
        .await?;
        let healed_in = killed.elapsed();
        let after = totals(net, None).await;
        waves.push(Wave {
            shares_lost,
            healed_in,
            shares_rebuilt: after.shares_repaired.saturating_sub(before.shares_repaired),
            fetched: after
                .repair_bytes_fetched
                .saturating_sub(before.repair_bytes_fetched),
            sent: after
                .repair_bytes_sent
                .saturating_sub(before.repair_bytes_sent),
            after_kill,
        });
    }

    let reader = (1..net.len()).find(|&i| net.is_running(i)).unwrap_or(0);
    let mut chunks = net.node(reader).files().get(&cap).await?.into_stream();
    let mut expected = content(config.size);
    let mut verified = true;
    let mut want = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        want.resize(chunk.len(), 0);
        expected.read_exact(&mut want)?;
        verified &= want == chunk;
    }
    Ok(RepairReport {
        nodes: config.nodes,
        size: config.size,
        stripes,
        put: put_time,
        waves,
        verified,
    })
}

/// `size` pseudo-random bytes (BLAKE3's output stream), the same each time.
fn content(size: u64) -> impl Read + Send + 'static {
    blake3::Hasher::new()
        .update(b"kith repair bench")
        .finalize_xof()
        .take(size)
}

async fn stat_now(net: &Testnet, cap: &kith_node::Capability) -> StatReport {
    loop {
        match net.node(0).files().stat(cap).await {
            Ok(stat) => return stat,
            Err(error) => tracing::warn!(%error, "stat failed; asking again"),
        }
    }
}

/// The repair counters summed over the running nodes, leaving out `skip`
/// (the node about to be killed, whose counts go with it).
async fn totals(net: &Testnet, skip: Option<usize>) -> UpkeepCounters {
    let mut sum = UpkeepCounters::default();
    for (i, node) in net.nodes() {
        if Some(i) == skip {
            continue;
        }
        if let Ok(status) = node.status().await {
            let u = status.upkeep;
            sum.shares_repaired += u.shares_repaired;
            sum.repair_bytes_fetched += u.repair_bytes_fetched;
            sum.repair_bytes_sent += u.repair_bytes_sent;
        }
    }
    sum
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "repair: {} nodes (TCP on 127.0.0.1, one process), {:.0} MiB stored as 3-of-5 \
             ({} stripes) in {:.1} s",
            self.nodes,
            mib(self.size),
            self.stripes,
            self.put.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<5} {:>11} {:>22} {:>15} {:>14} {:>12} {:>10} {:>16}",
            "wave",
            "shares lost",
            "after the kill (h/d/l)",
            "back to healthy",
            "shares rebuilt",
            "fetched MiB",
            "sent MiB",
            "fetched/rebuilt"
        )?;
        for (i, wave) in self.waves.iter().enumerate() {
            let ratio = if wave.sent > 0 {
                format!("{:.2}", wave.fetched as f64 / wave.sent as f64)
            } else {
                "-".into()
            };
            let mut health = String::new();
            let _ = write!(
                health,
                "{}/{}/{}",
                wave.after_kill[0], wave.after_kill[1], wave.after_kill[2]
            );
            writeln!(
                f,
                "{:<5} {:>11} {:>22} {:>13.1} s {:>14} {:>12.1} {:>10.1} {:>16}",
                i + 1,
                wave.shares_lost,
                health,
                wave.healed_in.as_secs_f64(),
                wave.shares_rebuilt,
                mib(wave.fetched),
                mib(wave.sent),
                ratio
            )?;
        }
        writeln!(
            f,
            "read back after {} waves: {}",
            self.waves.len(),
            if self.verified {
                "byte-identical"
            } else {
                "DIFFERENT"
            }
        )
    }
}
