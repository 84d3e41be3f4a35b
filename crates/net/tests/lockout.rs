//! Handshake flooding: raw TCP sockets that connect to a node's p2p port
//! and never speak must not lock new peers out (issue 23, item 9).
//!
//! The attacker here is a plain `tokio::net::TcpStream` loop from its own
//! loopback address (127.0.0.2), reopening every socket the node closes;
//! the honest peers are real kith-net nodes on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{eventually, loopback_config, start, stop_all};
use kith_net::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The tests of this file run one at a time: the flood churns thousands of
/// loopback connections, which would disturb the others' measurements.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The attacker's own address: another loopback address than the honest
/// peers', as an attacker on the internet has another address than theirs.
const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The TCP socket address inside a `/ip4/…/tcp/…` multiaddr.
fn socket_addr(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    let mut port = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("an ip4 address"), port.expect("a tcp port"))
}

/// Sockets held open against a node by an attacker that never sends a byte.
struct Flood {
    /// Connections the attacker has opened so far.
    opened: Arc<AtomicUsize>,
    /// Connections the node has closed so far.
    closed: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Flood {
    /// Keeps `sockets` idle connections open to `target` from `source`,
    /// reopening each as soon as the node closes it, until [`Flood::stop`]
    /// or `limit` has passed.
    fn start(target: SocketAddr, source: IpAddr, sockets: usize, limit: Duration) -> Self {
        let deadline = tokio::time::Instant::now() + limit;
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..sockets {
            let opened = opened.clone();
            let closed = closed.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                while !*stopped.borrow() && tokio::time::Instant::now() < deadline {
                    let connect = async {
                        let socket = TcpSocket::new_v4()?;
                        socket.bind(SocketAddr::new(source, 0))?;
                        socket.connect(target).await
                    };
                    let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, connect).await
                    else {
                        // Refused or out of time: try again (the loop ends
                        // at the deadline).
                        tokio::task::yield_now().await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    // Say nothing; wait for the node to give up on us.
                    let mut buf = [0u8; 256];
                    let held = async {
                        while let Ok(read) = stream.read(&mut buf).await {
                            if read == 0 {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        () = held => {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ = stopped.changed() => return,
                        () = tokio::time::sleep_until(deadline) => return,
                    }
                }
            });
        }
        Self {
            opened,
            closed,
            stop,
            tasks,
        }
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes every socket and waits for the attacker's tasks to end.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// While 100 idle sockets from one address keep the node's handshake slots
/// busy, a new peer still connects and gets an answer to a ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_do_not_lock_new_peers_out() {
    let _serial = SERIAL.lock().await;
    let node = start(loopback_config()).await;
    let node_id = node.client.local_peer_id();
    let target = socket_addr(&node.addr);

    let flood = Flood::start(target, ATTACKER_IP, 100, Duration::from_secs(90));
    // Wait until all 100 sockets have been connected at least once: the
    // node's handshake slots are as busy as the attacker can make them.
    eventually(Duration::from_secs(30), || async {
        let opened = flood.opened();
        if opened >= 100 {
            Ok(())
        } else {
            Err(format!("the attacker opened {opened} sockets"))
        }
    })
    .await;

    // A dial-only peer, as in `many_peers_on_one_address_connect_at_once`:
    // the flood leaves thousands of loopback 4-tuples in TIME_WAIT, which
    // libp2p's dials from a fixed listen port can run into.
    let (newcomer, newcomer_task) = kith_net::spawn(
        &kith_base::Identity::generate(),
        loopback_config().with_listen([]),
    )
    .await
    .unwrap();
    let began = Instant::now();
    let mut attempts = 0;
    let rtt = eventually(Duration::from_secs(20), || {
        attempts += 1;
        let client = newcomer.clone();
        let addr = node.addr.clone();
        async move {
            let peer = client.dial(addr).await.map_err(|e| e.to_string())?;
            client.ping(peer).await.map_err(|e| e.to_string())
        }
    })
    .await;
    let took = began.elapsed();
    eprintln!(
        "new peer connected and pinged ({rtt:?}) after {took:?} and {attempts} attempt(s); \
         the attacker had opened {} sockets, the node had closed {}",
        flood.opened(),
        flood.closed()
    );
    assert!(newcomer.connected_peers().await.unwrap().contains(&node_id));

    flood.stop().await;
    newcomer.shutdown().await.unwrap();
    newcomer_task.await.unwrap();
    stop_all(vec![node]).await;
}

/// A socket that connects and says nothing is closed after the handshake
/// timeout (5 s by default; libp2p's own is 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_after_the_handshake_timeout() {
    let _serial = SERIAL.lock().await;
    let node = start(loopback_config()).await;
    let limit = kith_net::ConnectionLimits::default().handshake_timeout;
    let mut socket = tokio::net::TcpStream::connect(socket_addr(&node.addr))
        .await
        .unwrap();
    let began = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(limit + Duration::from_secs(5), socket.read(&mut buf))
        .await
        .expect("the node closes a silent socket");
    let took = began.elapsed();
    eprintln!("silent socket closed after {took:?} ({read:?})");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        took >= limit - Duration::from_millis(500) && took < limit + Duration::from_secs(3),
        "closed after {took:?}, the timeout is {limit:?}"
    );
    stop_all(vec![node]).await;
}

/// Honest nodes on one address (as every test network on 127.0.0.1) that
/// all dial the same node at once all get in: the per-address cap is on
/// connections *in their handshake*, which on loopback lasts milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_on_one_address_connect_at_once() {
    let _serial = SERIAL.lock().await;
    const PEERS: usize = 24;
    let node = start(loopback_config()).await;
    // The peers only dial: without a listen address their sockets get
    // fresh ports from the kernel (libp2p dials from its listen port
    // otherwise, which on a busy loopback can meet a 4-tuple still in
    // TIME_WAIT: "Address already in use").
    let mut clients = Vec::with_capacity(PEERS);
    for _ in 0..PEERS {
        clients.push(
            kith_net::spawn(
                &kith_base::Identity::generate(),
                loopback_config().with_listen([]),
            )
            .await
            .unwrap(),
        );
    }
    let dials = clients
        .iter()
        .map(|(client, _task)| client.dial(node.addr.clone()));
    let results = futures::future::join_all(dials).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|result| result.as_ref().err().map(ToString::to_string))
        .collect();
    eprintln!(
        "{} of {PEERS} simultaneous dials failed: {failed:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    for (client, task) in clients {
        client.shutdown().await.unwrap();
        task.await.unwrap();
    }
    stop_all(vec![node]).await;
}
