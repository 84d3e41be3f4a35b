//! The [`Testnet`]: `n` real nodes in one process, each on its own data
//! folder, started, stopped and restarted by index.
//!
//! Long because: a quarter of it documents the public test API (start, grow, kill, restart, wait).
//!
//! Nodes start in bounded batches ([`TestnetConfig::start_concurrency`]):
//! one at a time would make 200 nodes take minutes (each start binds a
//! socket, writes an identity and waits for its listener), while all at once
//! would open every node's bootstrap connection to node 0 in the same
//! instant and overrun its pending-connection limit.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use kith_base::PeerId;
use kith_net::{Multiaddr, NetError};
use kith_node::{DataDir, Node, NodeConfig, NodeError};
use libp2p::multiaddr::Protocol;
use tempfile::TempDir;
use tracing::{debug, warn};

use crate::TestnetError;
use crate::wait::wait_for;

/// How a [`Testnet`] starts its nodes.
#[derive(Debug, Clone)]
pub struct TestnetConfig {
    /// How many nodes start at once (at least 1). Default 16: well under
    /// node 0's limit of 64 pending inbound handshakes, so no bootstrap
    /// connection is refused while everyone joins.
    pub start_concurrency: usize,
    /// Whether nodes offer to relay for others. Off by default: nodes on
    /// loopback reach each other directly, and a relay server costs memory.
    pub relay: bool,
    /// Connection idle timeout, ping interval and DHT refresh of every
    /// node (default: a real node's). In one process every TCP connection
    /// holds two file descriptors, one per end, so big testnets close idle
    /// ones sooner; and hundreds of nodes share two cores, so big
    /// simulations stretch the background clocks.
    pub timing: kith_net::Timing,
    /// One-way delay on every link between nodes, with
    /// [`Transport::Memory`] only (zero by default): a round trip takes
    /// twice this, as between machines far apart.
    pub latency: std::time::Duration,
    /// How the nodes reach each other. Default: TCP on 127.0.0.1.
    pub transport: Transport,
    /// How many nodes others join through (at least 1). Default 1: node 0
    /// is everyone's bootstrap address. With `s` seeds, nodes 1..s join
    /// through node 0 and node `i` through node `i % s`, as users of a big
    /// network are given different addresses; it keeps any one node under
    /// its connection limit (256) when a thousand join at once.
    pub seeds: usize,
    /// Message and mailbox settings of every node (e.g. a short mail check
    /// for tests).
    pub friends: kith_node::FriendSettings,
    /// Lease, repair and scrub settings of every node (e.g. short leases and
    /// a fast repair interval for tests).
    pub upkeep: kith_node::UpkeepSettings,
    /// Most connections each node keeps at once (`None`: a real node's
    /// limit). A few hundred nodes under a real node's limit end up all
    /// connected to all, and lookups never have to route; a cap well below
    /// the node count makes them route as in a big network.
    pub max_connections: Option<u32>,
}

/// The wire between the nodes of a testnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// TCP on 127.0.0.1, with Noise and Yamux: real sockets, as on a LAN.
    /// Each connection costs two file descriptors in the process, which
    /// caps a testnet at a few hundred nodes under a 20 000-file limit.
    #[default]
    Tcp,
    /// libp2p's in-process memory transport, with the same Noise and Yamux
    /// on top: no sockets, so a thousand nodes fit in one process. Only the
    /// kernel's part is skipped; every byte still goes through the same
    /// handshakes, multiplexing and protocols.
    Memory,
}

impl Default for TestnetConfig {
    fn default() -> Self {
        Self {
            start_concurrency: 16,
            relay: false,
            timing: kith_net::Timing::default(),
            latency: std::time::Duration::ZERO,
            transport: Transport::default(),
            seeds: 1,
            friends: kith_node::FriendSettings::default(),
            upkeep: kith_node::UpkeepSettings::default(),
            max_connections: None,
        }
    }
}

/// Many kith nodes in one process. Node `i` keeps its index, peer id and
/// data folder for the testnet's whole life, also across restarts.
///
/// Stop it with [`Testnet::shutdown`]. If it is dropped instead, the nodes
/// are shut down in a background task on the current runtime, and the data
/// folder is removed once they have stopped (or when the runtime ends).
#[derive(Debug)]
pub struct Testnet {
    /// `Some` until dropped; taken by `shutdown` and `Drop`.
    dir: Option<TempDir>,
    root: PathBuf,
    config: TestnetConfig,
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    node: Option<Node>,
    peer: PeerId,
    addr: Multiaddr,
    dir: PathBuf,
}

impl Testnet {
    /// Starts `n` nodes on the current tokio runtime: node 0 first, then
    /// the others in batches, each bootstrapping from node 0 (or from one
    /// of [`TestnetConfig::seeds`]). Returns once every node listens;
    /// joining the DHT goes on in the background (wait for what a test
    /// needs with [`Testnet::wait_for`]).
    ///
    /// Every node listens on `127.0.0.1` on a free TCP port (or a memory
    /// port, see [`TestnetConfig::transport`]), with mDNS off
    /// (nodes must find each other through the DHT, not the LAN, and two
    /// tests must not find each other's nodes).
    ///
    /// Also raises the soft open-file limit to the hard limit
    /// ([`raise_fd_limit`]): every connection between two nodes of the
    /// testnet costs two file descriptors in this process.
    ///
    /// # Errors
    ///
    /// [`TestnetError::TempDir`] if the folder cannot be created;
    /// [`TestnetError::Start`] naming the first node that failed (the
    /// others are shut down again).
    pub async fn start(n: usize, config: TestnetConfig) -> Result<Self, TestnetError> {
        raise_fd_limit();
        let dir = tempfile::Builder::new()
            .prefix("kith-testnet-")
            .tempdir()
            .map_err(TestnetError::TempDir)?;
        let mut net = Self {
            root: dir.path().to_owned(),
            dir: Some(dir),
            config,
            slots: Vec::with_capacity(n),
        };
        if n == 0 {
            return Ok(net);
        }
        let options = NodeOptions::of(&net.config);
        let transport = net.config.transport;
        let first = start_node(
            0,
            net.node_dir(0),
            any_addr(transport),
            Vec::new(),
            options.clone(),
        )
        .await?;
        let seed = first.addr.clone();
        net.slots.push(first);

        // The other seeds join through node 0, then everyone else through
        // a seed, round robin.
        let seeds = net.config.seeds.clamp(1, n);
        let mut started: Vec<Result<Slot, TestnetError>> = futures::stream::iter(1..seeds)
            .map(|index| {
                start_node(
                    index,
                    net.node_dir(index),
                    any_addr(transport),
                    vec![seed.clone()],
                    options.clone(),
                )
            })
            .buffered(net.config.start_concurrency.max(1))
            .collect()
            .await;
        let seed_addrs: Vec<Multiaddr> = std::iter::once(seed)
            .chain(
                started
                    .iter()
                    .filter_map(|slot| slot.as_ref().ok().map(|s| s.addr.clone())),
            )
            .collect();
        let rest: Vec<Result<Slot, TestnetError>> = futures::stream::iter(seeds..n)
            .map(|index| {
                start_node(
                    index,
                    net.node_dir(index),
                    any_addr(transport),
                    vec![seed_addrs[index % seed_addrs.len()].clone()],
                    options.clone(),
                )
            })
            .buffered(net.config.start_concurrency.max(1))
            .collect()
            .await;
        started.extend(rest);
        let mut failure = None;
        for result in started {
            match result {
                Ok(slot) => net.slots.push(slot),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            None => Ok(net),
            Some(error) => {
                net.shutdown().await;
                Err(error)
            }
        }
    }

    /// Starts `count` more nodes, as newcomers join a running network: the
    /// new node `i` bootstraps through the running node `through(i)`, as a
    /// user is handed the address of someone already in. Returns once every
    /// new node listens; its bootstrap goes on in the background.
    ///
    /// # Errors
    ///
    /// [`TestnetError::Start`] naming the first new node that failed (the
    /// nodes started before it stay); [`TestnetError::NotRunning`] if
    /// `through` names a stopped node.
    pub async fn grow(
        &mut self,
        count: usize,
        mut through: impl FnMut(usize) -> usize,
    ) -> Result<(), TestnetError> {
        let first = self.slots.len();
        let options = NodeOptions::of(&self.config);
        let transport = self.config.transport;
        let mut plan = Vec::with_capacity(count);
        for index in first..first + count {
            let seed = through(index);
            self.try_node(seed)?;
            plan.push((index, self.node_dir(index), self.addr(seed).clone()));
        }
        let started: Vec<Result<Slot, TestnetError>> = futures::stream::iter(plan)
            .map(|(index, dir, seed)| {
                start_node(index, dir, any_addr(transport), vec![seed], options.clone())
            })
            .buffered(self.config.start_concurrency.max(1))
            .collect()
            .await;
        // Slot i must stay node i: after a failure, the nodes that started
        // behind it are stopped again.
        let mut failure = None;
        for result in started {
            match (result, &failure) {
                (Ok(slot), None) => self.slots.push(slot),
                (Ok(slot), Some(_)) => {
                    if let Some(node) = slot.node {
                        node.shutdown().await;
                    }
                }
                (Err(error), _) => {
                    failure.get_or_insert(error);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// How many nodes the testnet has, running or stopped.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the testnet has no nodes at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The folder that holds every node's data folder (`node-0`, …).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Node `i`.
    ///
    /// # Panics
    ///
    /// If there is no node `i` or it is stopped; see [`Testnet::try_node`].
    pub fn node(&self, i: usize) -> &Node {
        match self.try_node(i) {
            Ok(node) => node,
            Err(error) => panic!("{error}"),
        }
    }

    /// Node `i`, or why it cannot be had.
    ///
    /// # Errors
    ///
    /// [`TestnetError::NoSuchNode`] or [`TestnetError::NotRunning`].
    pub fn try_node(&self, i: usize) -> Result<&Node, TestnetError> {
        self.slot(i)?
            .node
            .as_ref()
            .ok_or(TestnetError::NotRunning { index: i })
    }

    /// Whether node `i` exists and is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.try_node(i).is_ok()
    }

    /// The running nodes with their indexes.
    pub fn nodes(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.node.as_ref().map(|node| (i, node)))
    }

    /// Node `i`'s peer id (known while it is stopped, too).
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    pub fn peer_id(&self, i: usize) -> PeerId {
        self.slots[i].peer
    }

    /// Node `i`'s first listen address, ending in `/p2p/<peer id>`: the
    /// address it was last running on.
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    pub fn addr(&self, i: usize) -> &Multiaddr {
        &self.slots[i].addr
    }

    /// Node `i`'s data folder.
    ///
    /// # Panics
    ///
    /// If there is no node `i`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.slots[i].dir
    }

    /// Stops node `i` with [`Node::shutdown`] (which saves its peer table)
    /// and keeps its data folder for [`Testnet::restart`].
    ///
    /// The folder's lock is released when the last handle to the node is
    /// dropped: drop any clone of it taken from [`Testnet::node`] before
    /// restarting it.
    ///
    /// # Errors
    ///
    /// [`TestnetError::NoSuchNode`] or [`TestnetError::NotRunning`].
    pub async fn kill(&mut self, i: usize) -> Result<(), TestnetError> {
        let node = self
            .slot_mut(i)?
            .node
            .take()
            .ok_or(TestnetError::NotRunning { index: i })?;
        node.shutdown().await;
        debug!(index = i, "testnet node stopped");
        Ok(())
    }

    /// Starts node `i` again on its data folder (same identity, same saved
    /// peer table), on the port it had if that port is still free.
    ///
    /// With `bootstrap` it is given node 0's address (or, to restart node
    /// 0, the first other running node's). Without it, it has only the peer
    /// table it saved when it stopped to find the network again.
    ///
    /// # Errors
    ///
    /// [`TestnetError::NoSuchNode`], [`TestnetError::AlreadyRunning`], or
    /// [`TestnetError::Start`] if the node does not start.
    pub async fn restart(&mut self, i: usize, bootstrap: bool) -> Result<(), TestnetError> {
        let slot = self.slot(i)?;
        if slot.node.is_some() {
            return Err(TestnetError::AlreadyRunning { index: i });
        }
        let seeds: Vec<Multiaddr> = if bootstrap {
            self.nodes()
                .map(|(j, _)| j)
                .find(|&j| j != i)
                .map(|j| self.slots[j].addr.clone())
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let dir = slot.dir.clone();
        let options = NodeOptions::of(&self.config);
        // Peers remember the old address, so take the old port if it is
        // still free; otherwise any port (they learn it through identify).
        let transport = self.config.transport;
        let started = match same_port(&slot.addr) {
            Some(addr) => {
                match start_node(i, dir.clone(), addr, seeds.clone(), options.clone()).await {
                    Err(TestnetError::Start {
                        source: NodeError::Net(NetError::Listen { .. }),
                        ..
                    }) => None,
                    other => Some(other),
                }
            }
            None => None,
        };
        let started = match started {
            Some(started) => started,
            None => start_node(i, dir, any_addr(transport), seeds, options).await,
        }?;
        let slot = self.slot_mut(i)?;
        if started.peer != slot.peer {
            warn!(index = i, "restarted node has a new identity");
        }
        *slot = started;
        Ok(())
    }

    /// Waits until `condition` holds, polling; see [`wait_for`].
    ///
    /// # Errors
    ///
    /// [`TestnetError::Timeout`] with `description`.
    pub async fn wait_for<F, Fut>(
        &self,
        description: &str,
        timeout: Duration,
        condition: F,
    ) -> Result<(), TestnetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        wait_for(description, timeout, condition).await
    }

    /// Waits until every running node knows at least `peers` others in its
    /// routing table.
    ///
    /// # Errors
    ///
    /// [`TestnetError::Timeout`] after `timeout`.
    pub async fn wait_joined(&self, peers: usize, timeout: Duration) -> Result<(), TestnetError> {
        self.wait_for("every node knows its peers", timeout, || async {
            for (_, node) in self.nodes() {
                if node.net().known_peers().await.unwrap_or_default().len() < peers {
                    return false;
                }
            }
            true
        })
        .await
    }

    /// Stops every running node (all at once) and removes the data folder.
    pub async fn shutdown(mut self) {
        let nodes: Vec<Node> = self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.node.take())
            .collect();
        join_all(nodes.iter().map(Node::shutdown)).await;
        drop(nodes);
        drop(self.dir.take());
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("node-{i}"))
    }

    fn slot(&self, i: usize) -> Result<&Slot, TestnetError> {
        let len = self.slots.len();
        self.slots
            .get(i)
            .ok_or(TestnetError::NoSuchNode { index: i, len })
    }

    fn slot_mut(&mut self, i: usize) -> Result<&mut Slot, TestnetError> {
        let len = self.slots.len();
        self.slots
            .get_mut(i)
            .ok_or(TestnetError::NoSuchNode { index: i, len })
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let nodes: Vec<Node> = self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.node.take())
            .collect();
        let dir = self.dir.take();
        if nodes.is_empty() {
            return;
        }
        // Nodes keep running until shut down (each holds a handle to
        // itself in its background tasks), so shut them down here, and
        // remove the folder only after they stopped writing to it. If the
        // runtime is gone or ends first, the task is dropped with it, and
        // dropping the task removes the folder.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                join_all(nodes.iter().map(Node::shutdown)).await;
                drop(nodes);
                drop(dir);
            });
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and
/// returns the new soft limit (`None` where there is no such limit or it
/// cannot be read). Each connection between two nodes in one process uses
/// two descriptors, so a few hundred nodes can need tens of thousands.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            debug!(%error, "cannot raise the open-file limit");
            None
        }
    }
}

/// The per-node settings a [`TestnetConfig`] carries.
#[derive(Debug, Clone)]
struct NodeOptions {
    relay: bool,
    timing: kith_net::Timing,
    latency: std::time::Duration,
    friends: kith_node::FriendSettings,
    upkeep: kith_node::UpkeepSettings,
    max_connections: Option<u32>,
}

impl NodeOptions {
    fn of(config: &TestnetConfig) -> Self {
        Self {
            relay: config.relay,
            timing: config.timing,
            latency: config.latency,
            friends: config.friends.clone(),
            upkeep: config.upkeep.clone(),
            max_connections: config.max_connections,
        }
    }
}

/// Starts one node on `dir` and reads its address.
async fn start_node(
    index: usize,
    dir: PathBuf,
    listen: Multiaddr,
    bootstrap: Vec<Multiaddr>,
    options: NodeOptions,
) -> Result<Slot, TestnetError> {
    let config = NodeConfig {
        listen: vec![listen],
        bootstrap,
        mdns: false,
        relay: options.relay,
        timing: options.timing,
        simulated_latency: options.latency,
        max_connections: options.max_connections,
        friends: options.friends,
        upkeep: options.upkeep,
        ..NodeConfig::default()
    };
    let node = Node::start(DataDir::new(&dir), config)
        .await
        .map_err(|source| TestnetError::Start { index, source })?;
    let addr = match node
        .listen_addrs()
        .await
        .map(|addrs| addrs.into_iter().next())
    {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            node.shutdown().await;
            return Err(TestnetError::NoListenAddr { index });
        }
        Err(source) => {
            node.shutdown().await;
            return Err(TestnetError::Start { index, source });
        }
    };
    Ok(Slot {
        peer: node.peer_id(),
        node: Some(node),
        addr,
        dir,
    })
}

/// A listen address on a free port of `transport`.
fn any_addr(transport: Transport) -> Multiaddr {
    match transport {
        Transport::Tcp => Multiaddr::empty()
            .with(Protocol::Ip4(Ipv4Addr::LOCALHOST))
            .with(Protocol::Tcp(0)),
        Transport::Memory => Multiaddr::empty().with(Protocol::Memory(0)),
    }
}

/// The listen address `addr` was bound to (its `/p2p/…` suffix dropped),
/// to bind the same port again.
fn same_port(addr: &Multiaddr) -> Option<Multiaddr> {
    let bound: Multiaddr = addr
        .iter()
        .filter(|part| !matches!(part, Protocol::P2p(_)))
        .collect();
    let port = bound.iter().find_map(|part| match part {
        Protocol::Tcp(port) => Some(u64::from(port)),
        Protocol::Memory(port) => Some(port),
        _ => None,
    })?;
    (port != 0).then_some(bound)
}
