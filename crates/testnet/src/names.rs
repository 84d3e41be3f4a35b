//! The benchmark behind `kith-testnet names`: how long a name takes to
//! resolve on a network of real nodes.
//!
//! N nodes start on 127.0.0.1 TCP and join; a few of them publish a name
//! each (pointing at a capability nobody needs to fetch: resolving reads
//! records, not content). Then random nodes other than the publisher
//! resolve random names, three ways:
//!
//! - **first**: the node holds no record of the name (it is neither among
//!   the name's closest peers nor has resolved it): a lookup of the
//!   closest peers, and a fetch from each;
//! - **fresh**: `--fresh`, a network lookup whatever the node holds, on a
//!   network whose routing tables are warm;
//! - **cached**: the node resolved it before: answered from its own table
//!   (a lookup runs in the background when the last is a few seconds old).

use std::fmt;
use std::time::{Duration, Instant};

use kith_base::{Capability, ContentId, FileKey};

use crate::stats::{SplitMix64, percentile};
use crate::{Testnet, TestnetConfig, TestnetError};

/// What to run.
#[derive(Debug, Clone)]
pub struct NamesBenchConfig {
    /// Nodes in the network.
    pub nodes: usize,
    /// Names published (by distinct nodes).
    pub names: usize,
    /// Resolves timed of each kind.
    pub resolves: usize,
    /// Seed for choosing who resolves what.
    pub seed: u64,
}

/// Times of one kind of resolve.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Resolves that found the newest record.
    pub found: usize,
    /// Resolves tried.
    pub tried: usize,
    /// Median.
    pub median: Duration,
    /// 95th percentile.
    pub p95: Duration,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct NamesReport {
    /// The configuration.
    pub config: NamesBenchConfig,
    /// How long publishing took, median.
    pub publish_median: Duration,
    /// Peers that took each record, median.
    pub stored_on_median: usize,
    /// A node's first resolve of a name it holds no record of.
    pub first: Timings,
    /// `--fresh` resolves on a warm network.
    pub fresh: Timings,
    /// Resolves answered from the node's own table.
    pub cached: Timings,
}

/// Runs the benchmark.
pub async fn run(config: &NamesBenchConfig) -> Result<NamesReport, TestnetError> {
    let net = Testnet::start(config.nodes, TestnetConfig::default()).await?;
    let peers = config.nodes.saturating_sub(1).min(20);
    net.wait_joined(peers, Duration::from_secs(300)).await?;
    let names = config.names.clamp(1, config.nodes);
    let mut published = Vec::with_capacity(names);
    let mut publish_times = Vec::with_capacity(names);
    let mut stored_on = Vec::with_capacity(names);
    for i in 0..names {
        let target = Capability::new(ContentId::of(&i.to_le_bytes()), FileKey::random());
        let started = Instant::now();
        let done = net
            .node(i)
            .names()
            .publish(&target, None)
            .await
            .map_err(|error| TestnetError::Node(error.to_string()))?;
        publish_times.push(started.elapsed());
        stored_on.push(done.stored_on);
        published.push((i, done.record.name(), done.record.sequence()));
    }
    let mut random = SplitMix64::new(config.seed);
    let pick = |random: &mut SplitMix64| {
        let (publisher, name, sequence) = published[random.below(published.len())];
        let mut node = random.below(config.nodes);
        if node == publisher {
            node = (node + 1) % config.nodes;
        }
        (node, name, sequence)
    };
    let mut first = Vec::new();
    let mut fresh = Vec::new();
    let mut cached = Vec::new();
    let mut report = [Timings::default(), Timings::default(), Timings::default()];
    // First resolves: (node, name) pairs not seen before.
    let mut seen = std::collections::HashSet::new();
    let mut attempts = 0;
    while first.len() < config.resolves && attempts < config.resolves * 20 {
        attempts += 1;
        let (node, name, sequence) = pick(&mut random);
        if !seen.insert((node, name)) {
            continue;
        }
        let started = Instant::now();
        let resolved = net.node(node).names().resolve(name, false).await;
        let took = started.elapsed();
        match resolved {
            // A node among the name's holders answers from its table: not
            // a first resolve, and not counted.
            Ok(resolved) if resolved.cached => {}
            Ok(resolved) if resolved.record.sequence() == sequence => {
                report[0].tried += 1;
                report[0].found += 1;
                first.push(took);
            }
            _ => report[0].tried += 1,
        }
    }
    for (kind, times, fresh_lookup) in [(1, &mut fresh, true), (2, &mut cached, false)] {
        for _ in 0..config.resolves {
            let (node, name, sequence) = pick(&mut random);
            if !fresh_lookup {
                // Make sure it is held: resolve once first.
                let _ = net.node(node).names().resolve(name, false).await;
            }
            let started = Instant::now();
            let resolved = net.node(node).names().resolve(name, fresh_lookup).await;
            let took = started.elapsed();
            report[kind].tried += 1;
            if let Ok(resolved) = resolved
                && resolved.record.sequence() == sequence
            {
                report[kind].found += 1;
                times.push(took);
            }
        }
    }
    for (timings, times) in report.iter_mut().zip([&mut first, &mut fresh, &mut cached]) {
        timings.median = percentile(times, 50.0).unwrap_or_default();
        timings.p95 = percentile(times, 95.0).unwrap_or_default();
    }
    net.shutdown().await;
    let [first, fresh, cached] = report;
    Ok(NamesReport {
        config: config.clone(),
        publish_median: percentile(&mut publish_times, 50.0).unwrap_or_default(),
        stored_on_median: percentile(&mut stored_on, 50.0).unwrap_or_default(),
        first,
        fresh,
        cached,
    })
}

impl fmt::Display for NamesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "names on {} nodes (127.0.0.1 TCP): {} names published, median {:.1} ms, each on {} peers (median)",
            self.config.nodes,
            self.config.names,
            ms(self.publish_median),
            self.stored_on_median
        )?;
        writeln!(f, "| resolve | found | median | p95 |")?;
        writeln!(f, "|---|---|---|---|")?;
        for (kind, timings) in [
            ("first (no record held)", &self.first),
            ("fresh (network lookup, warm tables)", &self.fresh),
            ("cached (a record held)", &self.cached),
        ] {
            writeln!(
                f,
                "| {kind} | {}/{} | {:.1} ms | {:.1} ms |",
                timings.found,
                timings.tried,
                ms(timings.median),
                ms(timings.p95)
            )?;
        }
        Ok(())
    }
}
