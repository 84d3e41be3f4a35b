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
    /// a time) or `quiet` (only each node's own bootstrap at start, then
    /// wait until the routing tables stop growing) [dht: bootstrap, scale: quiet].
    #[arg(long, value_enum)]
    join: Option<JoinArg>,
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
    /// Most bootstrap rounds after the join while routing tables grow.
    #[arg(long, default_value_t = 3)]
    settle_rounds: usize,
    /// Seed for choosing lookups and files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds an unused connection stays open (on TCP each costs two file
    /// descriptors in one process).
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum JoinArg {
    /// One more bootstrap per node after all have started.
    Bootstrap,
    /// Only the bootstrap at start; wait for the tables to settle.
    Quiet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// TCP on 127.0.0.1.
    Tcp,
    /// libp2p's in-process memory transport (still Noise and Yamux).
    Memory,
}

impl BenchArgs {
    fn config(
        &self,
        nodes: usize,
        transport: Transport,
        files: usize,
        seeds: usize,
        join: JoinMode,
    ) -> DhtBenchConfig {
        DhtBenchConfig {
            nodes: self.nodes.unwrap_or(nodes),
            lookups: self.lookups,
            concurrency: self.concurrency,
            start_concurrency: self.start_concurrency,
            max_settle_rounds: self.settle_rounds,
            seed: self.seed,
            idle_timeout: std::time::Duration::from_secs(self.idle_secs),
            transport: match self.transport {
                Some(TransportArg::Tcp) => Transport::Tcp,
                Some(TransportArg::Memory) => Transport::Memory,
                None => transport,
            },
            files: self.files.unwrap_or(files),
            file_size: self.file_size,
            seeds: self.seeds.unwrap_or(seeds),
            join: match self.join {
                Some(JoinArg::Bootstrap) => JoinMode::Bootstrap,
                Some(JoinArg::Quiet) => JoinMode::Quiet,
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
    let config = match &cli.command {
        Command::Dht(args) => args.config(200, Transport::Tcp, 0, 1, JoinMode::Bootstrap),
        Command::Scale(args) => args.config(1000, Transport::Memory, 100, 8, JoinMode::Quiet),
    };
    eprintln!("starting {} nodes…", config.nodes);
    let report = runtime.block_on(dht::run(&config))?;
    print!("{report}");
    Ok(())
}
