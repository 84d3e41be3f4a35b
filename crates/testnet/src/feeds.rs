//! The benchmark behind `kith-testnet feeds`: how fast posts reach
//! followers, and how fast a new follower fetches a long feed.
//!
//! One author and `--followers` followers on 127.0.0.1 TCP. The author
//! posts `--posts` times, one at a time, and the time from each post to its
//! arrival at each follower is measured (each follower's feeds wake a
//! watcher when an entry is appended). Then the author's feed grows to
//! `--entries` and a node that never saw it follows it: entries per second
//! of that initial sync, every entry verified.

use std::fmt;
use std::time::{Duration, Instant};

use kith_base::feed::{Body, Post};

use crate::stats::percentile;
use crate::{Testnet, TestnetConfig, TestnetError};

/// What to run.
#[derive(Debug, Clone)]
pub struct FeedsBenchConfig {
    /// Followers of the author.
    pub followers: usize,
    /// Posts whose delivery is timed.
    pub posts: usize,
    /// Entries in the feed a new follower fetches.
    pub entries: usize,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct FeedsReport {
    /// The configuration.
    pub config: FeedsBenchConfig,
    /// Deliveries seen (post × follower) of those expected.
    pub delivered: usize,
    /// Post to shown at a follower: median.
    pub median: Duration,
    /// … and 95th percentile.
    pub p95: Duration,
    /// Entries the new follower fetched.
    pub synced: u64,
    /// How long that took.
    pub sync_time: Duration,
}

fn post(text: String) -> Body {
    Body::Post(Post {
        text,
        ..Post::default()
    })
}

fn err(error: impl fmt::Display) -> TestnetError {
    TestnetError::Node(error.to_string())
}

/// Runs the benchmark.
pub async fn run(config: &FeedsBenchConfig) -> Result<FeedsReport, TestnetError> {
    let nodes = config.followers + 2;
    let net = Testnet::start(nodes, TestnetConfig::default()).await?;
    net.wait_joined(nodes - 1, Duration::from_secs(120)).await?;
    let author = net.node(0).clone();
    author
        .feeds()
        .post(post("hello".into()))
        .await
        .map_err(err)?;
    for i in 1..=config.followers {
        net.node(i)
            .feeds()
            .follow(net.peer_id(0))
            .await
            .map_err(err)?;
    }
    let mut latencies = Vec::new();
    let peer = net.peer_id(0);
    for n in 0..config.posts {
        let mut watchers: Vec<_> = (1..=config.followers)
            .map(|i| (net.node(i).clone(), net.node(i).feeds().watch()))
            .collect();
        let started = Instant::now();
        let entry = author
            .feeds()
            .post(post(format!("post {n}")))
            .await
            .map_err(err)?;
        let sequence = entry.sequence();
        let waits = watchers.iter_mut().map(|(node, watch)| async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let heads = node.feeds().list().await.unwrap_or_default();
                if heads
                    .iter()
                    .any(|feed| feed.author == peer.to_string() && feed.head >= sequence)
                {
                    return Some(started.elapsed());
                }
                if tokio::time::timeout_at(deadline, watch.changed())
                    .await
                    .is_err()
                {
                    return None;
                }
            }
        });
        latencies.extend(futures::future::join_all(waits).await.into_iter().flatten());
    }
    let delivered = latencies.len();
    let median = percentile(&mut latencies, 50.0).unwrap_or_default();
    let p95 = percentile(&mut latencies, 95.0).unwrap_or_default();

    let have = 1 + config.posts;
    for n in have..config.entries {
        author
            .feeds()
            .post(post(format!("entry {n}")))
            .await
            .map_err(err)?;
    }
    let newcomer = net.node(nodes - 1);
    let started = Instant::now();
    let followed = newcomer.feeds().follow(peer).await.map_err(err)?;
    let sync_time = started.elapsed();
    net.shutdown().await;
    Ok(FeedsReport {
        config: config.clone(),
        delivered,
        median,
        p95,
        synced: followed.head,
        sync_time,
    })
}

impl fmt::Display for FeedsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(f, "| figure | value |")?;
        writeln!(f, "|---|---|")?;
        writeln!(
            f,
            "| post → shown at {} followers | {}/{} delivered, median {:.1} ms, p95 {:.1} ms |",
            self.config.followers,
            self.delivered,
            self.config.posts * self.config.followers,
            ms(self.median),
            ms(self.p95)
        )?;
        writeln!(
            f,
            "| initial sync of a {}-entry feed by a new follower | {} entries in {:.2} s: {:.0} entries/s |",
            self.config.entries,
            self.synced,
            self.sync_time.as_secs_f64(),
            self.synced as f64 / self.sync_time.as_secs_f64().max(1e-9)
        )
    }
}
