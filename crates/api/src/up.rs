//! `kith up`: a node and its API, started and stopped together.

use std::net::SocketAddr;

use kith_node::{DataDir, DataDirError, Node, NodeConfig, NodeError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::serve::ApiLimits;

/// Why `kith up` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpError {
    /// The node itself could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The data folder refused (lock, token).
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The gateway address could not be bound.
    #[error("cannot listen for the gateway on {addr}: {source}")]
    GatewayListen {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The API address could not be bound.
    #[error("cannot listen for the API on {addr}: {source}")]
    ApiListen {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A running node with its API.
#[derive(Debug)]
pub struct Running {
    node: Node,
    api_addr: SocketAddr,
    stop_api: oneshot::Sender<()>,
    api_task: JoinHandle<()>,
    gateway_addr: SocketAddr,
    stop_gateway: oneshot::Sender<()>,
    gateway_task: JoinHandle<()>,
}

/// Starts the node on `data_dir` with `config`, then its API, and records
/// the API's address in the data folder for the command line. The API's
/// bounds are [`ApiLimits::for_this_process`].
pub async fn up(data_dir: DataDir, config: NodeConfig) -> Result<Running, UpError> {
    up_with(data_dir, config, ApiLimits::for_this_process()).await
}

/// [`up`] with the API's bounds given.
pub async fn up_with(
    data_dir: DataDir,
    config: NodeConfig,
    limits: ApiLimits,
) -> Result<Running, UpError> {
    if !config.api.ip().is_loopback() {
        warn!(
            addr = %config.api,
            "the API listens beyond this machine; anyone who can reach it still needs the token"
        );
    }
    if !config.gateway.ip().is_loopback() {
        info!(
            addr = %config.gateway,
            "the gateway listens beyond this machine: anyone who can reach it can read what \
             its capabilities and names reach (never write)"
        );
    }
    let node = Node::start(data_dir.clone(), config.clone()).await?;
    let started = serve(&node, &data_dir, &config, limits).await;
    match started {
        Ok(running) => Ok(running),
        Err(error) => {
            node.shutdown().await;
            Err(error)
        }
    }
}

async fn serve(
    node: &Node,
    data_dir: &DataDir,
    config: &NodeConfig,
    limits: ApiLimits,
) -> Result<Running, UpError> {
    let addr = config.api;
    let token = data_dir.api_token()?;
    // The gateway first: a port taken fails the start before the API is
    // announced. Its own connection cap, half the API's.
    let gateway_listener =
        TcpListener::bind(config.gateway)
            .await
            .map_err(|source| UpError::GatewayListen {
                addr: config.gateway,
                source,
            })?;
    let gateway_addr = gateway_listener
        .local_addr()
        .map_err(|source| UpError::GatewayListen {
            addr: config.gateway,
            source,
        })?;
    let gateway_limits = limits.with_max_connections((limits.max_connections / 2).max(1));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| UpError::ApiListen { addr, source })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| UpError::ApiListen { addr, source })?;
    let router = crate::router(node.clone(), &token, api_addr);
    let (stop_api, stopped) = oneshot::channel::<()>();
    let api_task = tokio::spawn(crate::serve::serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    let (stop_gateway, gateway_stopped) = oneshot::channel::<()>();
    let gateway_task = tokio::spawn(crate::serve::serve(
        gateway_listener,
        crate::gateway::router(node.clone()),
        gateway_limits,
        async {
            let _ = gateway_stopped.await;
        },
    ));
    data_dir.write_gateway_addr(gateway_addr)?;
    data_dir.write_api_addr(api_addr)?;
    info!(
        %api_addr,
        max_connections = limits.max_connections,
        "API listening"
    );
    info!(%gateway_addr, max_connections = gateway_limits.max_connections, "gateway listening");
    Ok(Running {
        node: node.clone(),
        api_addr,
        stop_api,
        api_task,
        gateway_addr,
        stop_gateway,
        gateway_task,
    })
}

impl Running {
    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Where the gateway listens.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// Runs until `shutdown` completes, then stops in stages: the API stops
    /// taking requests, the node saves its state and closes its connections,
    /// and the API address is removed from the data folder.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }

    /// Stops now (see [`Running::run_until`]).
    pub async fn stop(self) {
        info!("shutting down");
        self.node.data_dir().remove_api_addr();
        self.node.data_dir().remove_gateway_addr();
        let _ = self.stop_api.send(());
        let _ = self.stop_gateway.send(());
        let _ = self.api_task.await;
        let _ = self.gateway_task.await;
        self.node.shutdown().await;
    }
}
