//! One transfer stream, the path every share and every `kith send` takes:
//! 16 MiB written into one kith-net stream between two nodes in this
//! process (TCP + Noise + Yamux on 127.0.0.1) until the receiver has read
//! the last byte, beside the same bytes over a raw tokio loopback socket in
//! the same run (the ceiling).
//!
//! ```text
//! cargo bench -p kith-net --bench stream
//! ```
//!
//! A new stream is opened for each iteration on the one connection, as the
//! share protocols do per share; the clock runs from the first write. The
//! end-to-end figure at 1 GiB, with QUIC and several streams, is the `bulk`
//! example's (`bench/run` prints it); this bench is the quick check of a
//! change on the stream path.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kith_base::Identity;
use kith_net::{Client, NetConfig, PeerId, StreamProtocol, parse_multiaddr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::runtime::Runtime;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/bench-stream/1.0.0");
/// Bytes per iteration.
const BYTES: usize = 16 << 20;
/// One write (and the receiver's read buffer): a 1 MiB segment's share.
const WRITE: usize = 1 << 20;

/// Bytes that no layer on the path could compress.
fn payload() -> Vec<u8> {
    let mut bytes = vec![0u8; WRITE];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for byte in &mut bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = (state >> 32) as u8;
    }
    bytes
}

/// Two nodes, the second sinking every stream on [`PROTOCOL`] and sending
/// the byte count and the moment it read the last byte.
struct Nodes {
    sender: Client,
    receiver: Client,
    receiver_id: PeerId,
    finished: tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)>,
}

async fn two_nodes() -> Nodes {
    let config = || {
        NetConfig::default()
            .with_listen([parse_multiaddr("/ip4/127.0.0.1/tcp/0").unwrap()])
            .with_mdns(false)
            .with_relay_server(false)
    };
    let (receiver, _) = kith_net::spawn(&Identity::generate(), config())
        .await
        .unwrap();
    let (sender, _) = kith_net::spawn(&Identity::generate(), config())
        .await
        .unwrap();
    let receiver_id = receiver.local_peer_id();
    let address = receiver.listen_addrs().await.unwrap()[0]
        .clone()
        .with_p2p(receiver_id)
        .unwrap();
    sender.dial(address).await.unwrap();

    let (finished_tx, finished) = tokio::sync::mpsc::unbounded_channel();
    let mut incoming = receiver.streams().accept(PROTOCOL).unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; WRITE];
        // One stream at a time: the bench opens the next only after this
        // one has been read to its end.
        while let Some((_, mut stream)) = incoming.next().await {
            let mut total = 0;
            loop {
                match stream.read(&mut buffer).await.unwrap() {
                    0 => break,
                    read => total += read,
                }
            }
            let _ = finished_tx.send((total, Instant::now()));
        }
    });
    Nodes {
        sender,
        receiver,
        receiver_id,
        finished,
    }
}

impl Nodes {
    async fn transfer(&mut self, data: &[u8]) -> Duration {
        let mut stream = self
            .sender
            .streams()
            .open_stream(self.receiver_id, PROTOCOL)
            .await
            .unwrap();
        let started = Instant::now();
        for _ in 0..BYTES / WRITE {
            stream.write_all(data).await.unwrap();
        }
        stream.close().await.unwrap();
        let (total, ended) = self.finished.recv().await.unwrap();
        assert_eq!(total, BYTES, "the receiver read every byte");
        ended - started
    }
}

/// The ceiling: the same bytes through a raw loopback TCP socket.
async fn raw_loopback(data: &[u8]) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let sink = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; WRITE];
        let mut total = 0;
        loop {
            match socket.read(&mut buffer).await.unwrap() {
                0 => break,
                read => total += read,
            }
        }
        (total, Instant::now())
    });
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let started = Instant::now();
    for _ in 0..BYTES / WRITE {
        socket.write_all(data).await.unwrap();
    }
    socket.shutdown().await.unwrap();
    let (total, ended) = sink.await.unwrap();
    assert_eq!(total, BYTES);
    ended - started
}

fn stream(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let data = payload();
    let mut nodes = runtime.block_on(two_nodes());
    let mut group = c.benchmark_group("one stream, 16 MiB");
    group.throughput(Throughput::Bytes(BYTES as u64));
    group.sample_size(10);
    group.bench_function("raw loopback TCP (the ceiling)", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += raw_loopback(&data).await;
                }
                total
            })
        })
    });
    group.bench_function("kith-net TCP + Noise + Yamux", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += nodes.transfer(&data).await;
                }
                total
            })
        })
    });
    group.finish();
    runtime.block_on(async {
        nodes.sender.shutdown().await.unwrap();
        nodes.receiver.shutdown().await.unwrap();
    });
}

criterion_group!(benches, stream);
criterion_main!(benches);
