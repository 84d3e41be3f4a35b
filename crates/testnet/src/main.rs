//! `kith-testnet`: many kith nodes in one process, from the command line.
//!
//! Only argument parsing and printing live here; the work is in the
//! library (`kith_testnet::dht`).

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kith_testnet::Transport;
use kith_testnet::dht::{self, DhtBenchConfig, JoinMode};

/// Many kith nodes in one process.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N nodes on 127.0.0.1 TCP, let the DHT settle, time random peer
    /// lookups, and print a table (lookup cost, time, memory per node).
    Dht(BenchArgs),
    /// The same at scale: by default 1,000 nodes on the in-process memory
    /// transport (no sockets), 1,000 lookups, then 100 small files put on
    /// one random node and fetched on another.
    Scale(BenchArgs),
    /// Store one file on N nodes, then kill the node holding the most
    /// shares, wave after wave, timing each wave from the death to every
    /// stripe healthy again, with the bytes repair moved.
    Repair(RepairArgs),
    /// Start N nodes on 127.0.0.1 TCP, publish names on a few, and time
    /// resolves on the others: a node's first resolve of a name, a
    /// `--fresh` network lookup, and a resolve from the node's own table.
    Names(NamesArgs),
    /// One author and N followers on 127.0.0.1 TCP: time from a post to
    /// its arrival at each follower, then a new follower's initial sync of
    /// a long feed, in entries per second.
    Feeds(FeedsArgs),
    /// One server with low limits per peer (its own process), hammered by
    /// greedy peers storing, fetching and leaving mail as fast as they can,
    /// while a polite peer stores and fetches a little: its latency alone
    /// and under the crowd, the refusals, the largest share held for one
    /// peer, and the server's memory.
    Greedy(GreedyArgs),
    /// The server of `greedy` (started by it).
    #[command(hide = true)]
    GreedyServer {
        /// Its data folder, with its `config.toml`.
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct GreedyArgs {
    /// Greedy peers.
    #[arg(long, default_value_t = 50)]
    peers: usize,
    /// Seconds the greedy peers hammer the server.
    #[arg(long, default_value_t = 40)]
    secs: u64,
    /// Shares the polite peer stores and fetches in each phase.
    #[arg(long, default_value_t = 8)]
    rounds: usize,
}

#[derive(Debug, Args)]
struct FeedsArgs {
    /// Followers of the author.
    #[arg(long, default_value_t = 10)]
    followers: usize,
    /// Posts whose delivery is timed.
    #[arg(long, default_value_t = 50)]
    posts: usize,
    /// Entries in the feed a new follower fetches.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
}

#[derive(Debug, Args)]
struct NamesArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Names to publish (one per node).
    #[arg(long, default_value_t = 10)]
    names: usize,
    /// Resolves to time of each kind.
    #[arg(long, default_value_t = 100)]
    resolves: usize,
    /// Seed for choosing who resolves what.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct RepairArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 12)]
    nodes: usize,
    /// Size of the file, e.g. 1G or 256M.
    #[arg(long, default_value = "1G")]
    size: kith_base::ByteSize,
    /// Waves of one death each (at most nodes − 5).
    #[arg(long, default_value_t = 2)]
    waves: usize,
    /// The nodes' repair interval, in seconds (a round also runs 2 s after
    /// a peer disconnects).
    #[arg(long, default_value_t = 600)]
    interval_secs: u64,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Nodes to start [dht: 200, scale: 1000].
    #[arg(long)]
    nodes: Option<usize>,
    /// How the nodes connect [dht: tcp, scale: memory].
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// Small files to put and get after the lookups [dht: 0, scale: 100].
    #[arg(long)]
    files: Option<usize>,
    /// How nodes join: `bootstrap` (one more Kademlia bootstrap each, 16 at
    /// a time), `quiet` (only each node's own bootstrap at start, then
    /// wait until the routing tables stop growing) or `waves` (`--wave`
    /// nodes at a time, each through a random node already in, the next
    /// wave once the tables are quiet) [dht: bootstrap, scale: waves].
    #[arg(long, value_enum)]
    join: Option<JoinArg>,
    /// Nodes per wave with `--join waves`.
    #[arg(long, default_value_t = 100)]
    wave: usize,
    /// Seconds between pings on each connection [dht: 15, scale: 300].
    /// A real node pings every 15 s; a thousand nodes on two cores cannot.
    #[arg(long)]
    ping_secs: Option<u64>,
    /// Seconds between each node's routing-table refreshes, 0 for none
    /// after the first [dht: 300, scale: 0].
    #[arg(long)]
    refresh_secs: Option<u64>,
    /// Seconds between each node's mailbox checks [dht: 60, scale: 3600].
    #[arg(long)]
    mail_secs: Option<u64>,
    /// One-way delay in milliseconds on every link between nodes (memory
    /// transport only; a round trip is twice this).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Nodes the others join through, round robin [dht: 1, scale: 8].
    #[arg(long)]
    seeds: Option<usize>,
    /// Bytes per small file.
    #[arg(long, default_value_t = 16 << 10)]
    file_size: usize,
    /// Random lookups to time.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Lookups in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Nodes starting (or bootstrapping) at once.
    #[arg(long, default_value_t = 16)]
    start_concurrency: usize,
    /// Most bootstrap rounds after the join while routing tables grow
    /// [dht: 3, scale: 0].
    #[arg(long)]
    settle_rounds: Option<usize>,
    /// Seed for choosing lookups and files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds an unused connection stays open (on TCP each costs two file
    /// descriptors in one process).
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Most connections each node keeps at once [a real node's: 256]. Well
    /// below --nodes, lookups must route as in a big network.
    #[arg(long)]
    max_connections: Option<u32>,
}

/// What `dht` and `scale` do unless told otherwise.
struct BenchDefaults {
    nodes: usize,
    transport: Transport,
    files: usize,
    seeds: usize,
    join: JoinMode,
    settle_rounds: usize,
    timing: kith_net::Timing,
    mail_check: std::time::Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum JoinArg {
    /// One more bootstrap per node after all have started.
    Bootstrap,
    /// Only the bootstrap at start; wait for the tables to settle.
    Quiet,
    /// In waves of `--wave` nodes, each through a random node already in.
    Waves,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// TCP on 127.0.0.1.
    Tcp,
    /// libp2p's in-process memory transport (still Noise and Yamux).
    Memory,
}

impl BenchArgs {
    fn config(&self, defaults: BenchDefaults) -> DhtBenchConfig {
        let BenchDefaults {
            nodes,
            transport,
            files,
            seeds,
            join,
            settle_rounds,
            timing,
            mail_check,
        } = defaults;
        let secs = std::time::Duration::from_secs;
        DhtBenchConfig {
            nodes: self.nodes.unwrap_or(nodes),
            lookups: self.lookups,
            concurrency: self.concurrency,
            start_concurrency: self.start_concurrency,
            max_settle_rounds: self.settle_rounds.unwrap_or(settle_rounds),
            mail_check: self.mail_secs.map_or(mail_check, |s| secs(s.max(1))),
            latency: std::time::Duration::from_millis(self.latency_ms),
            seed: self.seed,
            timing: kith_net::Timing {
                idle_timeout: secs(self.idle_secs),
                ping_interval: self
                    .ping_secs
                    .map_or(timing.ping_interval, |s| secs(s.max(1))),
                dht_refresh: match self.refresh_secs {
                    None => timing.dht_refresh,
                    Some(0) => None,
                    Some(s) => Some(secs(s)),
                },
            },
            transport: match self.transport {
                Some(TransportArg::Tcp) => Transport::Tcp,
                Some(TransportArg::Memory) => Transport::Memory,
                None => transport,
            },
            files: self.files.unwrap_or(files),
            file_size: self.file_size,
            seeds: self.seeds.unwrap_or(seeds),
            max_connections: self.max_connections,
            join: match self.join {
                Some(JoinArg::Bootstrap) => JoinMode::Bootstrap,
                Some(JoinArg::Quiet) => JoinMode::Quiet,
                Some(JoinArg::Waves) => JoinMode::Waves(self.wave.max(1)),
                None => join,
            },
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,kith_testnet=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Command::Repair(args) = &cli.command {
        let mut upkeep = kith_node::UpkeepSettings::default();
        upkeep.repair_interval = std::time::Duration::from_secs(args.interval_secs.max(1));
        let config = kith_testnet::repair::RepairBenchConfig {
            nodes: args.nodes,
            size: args.size.0,
            waves: args.waves,
            upkeep,
            limit: std::time::Duration::from_secs(1800),
        };
        eprintln!("starting {} nodes…", config.nodes);
        let report = runtime.block_on(kith_testnet::repair::run(&config))?;
        print!("{report}");
        return Ok(());
    }
    if let Command::GreedyServer { dir } = &cli.command {
        return runtime.block_on(kith_testnet::greedy::serve(dir));
    }
    if let Command::Greedy(args) = &cli.command {
        let config = kith_testnet::greedy::BenchConfig {
            greedy: args.peers,
            duration: std::time::Duration::from_secs(args.secs.max(4)),
            polite_rounds: args.rounds,
            ..kith_testnet::greedy::BenchConfig::default()
        };
        let report = runtime.block_on(kith_testnet::greedy::run(&config))?;
        print!("{report}");
        return Ok(());
    }
    if let Command::Feeds(args) = &cli.command {
        let config = kith_testnet::feeds::FeedsBenchConfig {
            followers: args.followers,
            posts: args.posts,
            entries: args.entries,
        };
        eprintln!("starting {} nodes…", config.followers + 2);
        let report = runtime.block_on(kith_testnet::feeds::run(&config))?;
        print!("{report}");
        return Ok(());
    }
    if let Command::Names(args) = &cli.command {
        let config = kith_testnet::names::NamesBenchConfig {
            nodes: args.nodes,
            names: args.names,
            resolves: args.resolves,
            seed: args.seed,
        };
        eprintln!("starting {} nodes…", config.nodes);
        let report = runtime.block_on(kith_testnet::names::run(&config))?;
        print!("{report}");
        return Ok(());
    }
    let config = match &cli.command {
        Command::Repair(_)
        | Command::Names(_)
        | Command::Feeds(_)
        | Command::Greedy(_)
        | Command::GreedyServer { .. } => {
            unreachable!("handled above")
        }
        Command::Dht(args) => args.config(BenchDefaults {
            nodes: 200,
            transport: Transport::Tcp,
            files: 0,
            seeds: 1,
            join: JoinMode::Bootstrap,
            settle_rounds: 3,
            timing: kith_net::Timing::default(),
            mail_check: std::time::Duration::from_secs(60),
        }),
        Command::Scale(args) => args.config(BenchDefaults {
            nodes: 1000,
            transport: Transport::Memory,
            files: 100,
            seeds: 8,
            join: JoinMode::Waves(args.wave.max(1)),
            settle_rounds: 0,
            timing: dht::SCALE_TIMING,
            mail_check: dht::SCALE_MAIL_CHECK,
        }),
    };
    if !config.latency.is_zero() && config.transport != Transport::Memory {
        anyhow::bail!(
            "--latency-ms works with --transport memory only; for TCP between real \
             processes, add delay to the links with tc netem (see crates/cli/tests/netns.rs)"
        );
    }
    eprintln!("starting {} nodes…", config.nodes);
    let report = runtime.block_on(dht::run(&config))?;
    print!("{report}");
    Ok(())
}
