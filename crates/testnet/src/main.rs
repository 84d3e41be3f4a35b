//! `kith-testnet`: many kith nodes in one process, from the command line.
//!
//! Only argument parsing and printing live here; the work is in the
//! library (`kith_testnet::dht`).

use anyhow::Result;
use clap::{Parser, Subcommand};
use kith_testnet::dht::{self, DhtBenchConfig};

/// Many kith nodes in one process.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N nodes, let the DHT settle, time random peer lookups, and
    /// print a table (lookup cost, time, memory per node).
    Dht {
        /// Nodes to start.
        #[arg(long, default_value_t = 200)]
        nodes: usize,
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
        /// Seed for choosing lookups.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds an unused connection stays open (each costs two file
        /// descriptors in one process).
        #[arg(long, default_value_t = 60)]
        idle_secs: u64,
    },
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
    match cli.command {
        Command::Dht {
            nodes,
            lookups,
            concurrency,
            start_concurrency,
            settle_rounds,
            seed,
            idle_secs,
        } => {
            let config = DhtBenchConfig {
                nodes,
                lookups,
                concurrency,
                start_concurrency,
                max_settle_rounds: settle_rounds,
                seed,
                idle_timeout: std::time::Duration::from_secs(idle_secs),
            };
            eprintln!("starting {nodes} nodes…");
            let report = runtime.block_on(dht::run(&config))?;
            print!("{report}");
        }
    }
    Ok(())
}
