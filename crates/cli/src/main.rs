//! `kith`, the command line.
//!
//! This binary only parses arguments and calls into the libraries: the data
//! folder and node live in `kith-node`, formats in `kith-base`. Results go to
//! stdout (so `cap=$(kith put f)` works), progress and messages to stderr, and
//! every error is one sentence and a non-zero exit.

mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use kith_node::data_dir::DataDir;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kith: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Joins an error and its causes into one line: "doing X: because Y".
fn chain(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = match cli.dir {
        Some(path) => DataDir::new(path),
        None => DataDir::default_location()?,
    };
    match cli.command {
        Command::Init => {
            let (identity, created) = dir.init()?;
            if created {
                eprintln!(
                    "created a new identity in {}",
                    dir.path(kith_node::data_dir::IDENTITY_FILE).display()
                );
            } else {
                eprintln!("{} already has an identity", dir.root().display());
            }
            println!("{}", identity.peer_id());
        }
        Command::Id => {
            let identity = dir.load_identity().with_context(|| {
                format!("cannot read this node's id from {}", dir.root().display())
            })?;
            println!("{}", identity.peer_id());
        }
    }
    Ok(())
}
