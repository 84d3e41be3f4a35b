//! What can go wrong while running a testnet.
//!
//! One enum for the crate: a testnet is a test tool, and its callers (tests,
//! the benchmark binary) report errors rather than recover from them, so a
//! single type whose every variant names the node involved is enough.

use std::time::Duration;

use kith_node::NodeError;

/// An error from a [`Testnet`](crate::Testnet) or [`wait_for`](crate::wait_for).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    /// The temporary folder for the nodes' data could not be created.
    #[error("cannot create the testnet's temporary folder: {0}")]
    TempDir(#[source] std::io::Error),

    /// A node did not start.
    #[error("node {index} did not start: {source}")]
    Start {
        /// The node's index.
        index: usize,
        /// Why.
        #[source]
        source: NodeError,
    },

    /// A node started but reported no listen address.
    #[error("node {index} started but has no listen address")]
    NoListenAddr {
        /// The node's index.
        index: usize,
    },

    /// There is no node with this index.
    #[error("there is no node {index}: the testnet has {len} nodes")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes the testnet has.
        len: usize,
    },

    /// The node is stopped (see [`Testnet::kill`](crate::Testnet::kill)).
    #[error("node {index} is not running")]
    NotRunning {
        /// The node's index.
        index: usize,
    },

    /// The node is already running, so it cannot be restarted.
    #[error("node {index} is already running")]
    AlreadyRunning {
        /// The node's index.
        index: usize,
    },

    /// A node failed an operation a benchmark asked of it.
    #[error("a node failed: {0}")]
    Node(String),

    /// A condition did not hold within its time limit.
    #[error("timed out after {:.1} s waiting until {description}", after.as_secs_f64())]
    Timeout {
        /// What was waited for, as the caller described it.
        description: String,
        /// How long we waited.
        after: Duration,
    },
}
