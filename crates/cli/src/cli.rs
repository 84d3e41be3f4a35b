//! The command-line grammar (clap). DESIGN.md's "Command line" section is the
//! contract; this file is where it is spelled out.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// kith: a node for a decentralized internet.
///
/// Store files encrypted and erasure-coded across peers, share them with a
/// capability, and talk to friends directly, with no server in the middle.
#[derive(Debug, Parser)]
#[command(name = "kith", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The node's data folder [default: ~/.local/share/kith].
    #[arg(long, global = true, env = "KITH_DIR", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data folder and this node's identity (safe to run again).
    ///
    /// Prints the node's peer id on stdout. An existing identity is kept; a
    /// damaged one is reported and never replaced.
    Init,
    /// Print this node's peer id (works with no node running).
    Id,
}
