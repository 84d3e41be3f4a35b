//! Bulk throughput of kith-net byte streams against the machine's ceiling.
//!
//! ```text
//! cargo run --release -p kith-net --example bulk -- --bytes 1G [--runs 3] [--parallel 4]
//! ```
//!
//! In one process, on 127.0.0.1, it moves N bytes
//!
//! - over a raw tokio `TcpStream` (1 MiB writes): the loopback ceiling;
//! - over one kith-net stream between two nodes over TCP + Noise + Yamux;
//! - the same over QUIC;
//! - and with `--parallel P` (default 4; 0 to skip) over P streams at once
//!   on each transport, N/P bytes each.
//!
//! Each case runs `--runs` times (default 3), interleaved (case A, B, C, A,
//! B, C, …) so a burst of load from elsewhere on the machine does not hit
//! one case only, and the best run counts. The clock runs from the first
//! write until the receiving side has read the last byte. MB/s are 10^6
//! bytes per second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kith_base::Identity;
use kith_net::{Client, Control, NetConfig, PeerId, StreamProtocol, parse_multiaddr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/bench-sink/1.0.0");
/// Size of one write (and of the receive buffer).
const CHUNK: usize = 1 << 20;

struct Args {
    bytes: u64,
    runs: usize,
    parallel: usize,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("not a size: {text:?} (try 512M or 1G)"))?;
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("unknown unit in {text:?} (use K, M or G)")),
    };
    Ok(number << shift)
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bytes: 1 << 30,
        runs: 3,
        parallel: 4,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or(format!("{word} needs a value"));
        match word.as_str() {
            "--bytes" => args.bytes = parse_size(&value()?)?,
            "--runs" => args.runs = value()?.parse().map_err(|_| "--runs: a number")?,
            "--parallel" => args.parallel = value()?.parse().map_err(|_| "--parallel: a number")?,
            "-h" | "--help" => {
                return Err("usage: bulk [--bytes 1G] [--runs 3] [--parallel 4]".to_owned());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.bytes == 0 || args.runs == 0 {
        return Err("--bytes and --runs must be positive".to_owned());
    }
    Ok(args)
}

/// Bytes to send: not all zero, in case anything on the path compresses.
fn chunk() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Raw loopback TCP: the ceiling.
async fn raw_tcp(bytes: u64, data: &[u8]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let read = socket.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            total += read as u64;
        }
        (total, Instant::now())
    });
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let started = Instant::now();
    send_tokio(&mut socket, bytes, data).await;
    socket.shutdown().await.unwrap();
    let (total, ended) = sink.await.unwrap();
    assert_eq!(total, bytes);
    ended - started
}

async fn send_tokio(socket: &mut TcpStream, bytes: u64, data: &[u8]) {
    let mut left = bytes;
    while left > 0 {
        let len = left.min(data.len() as u64) as usize;
        socket.write_all(&data[..len]).await.unwrap();
        left -= len as u64;
    }
}

/// Two kith-net nodes connected over one transport, the receiver sinking
/// every stream on [`PROTOCOL`] and reporting when each one ended.
struct Pair {
    sender: Client,
    sender_control: Control,
    receiver: Client,
    receiver_id: PeerId,
    done: tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    accepted: tokio::sync::mpsc::UnboundedReceiver<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pair {
    async fn start(listen: &str) -> Self {
        let config = || {
            NetConfig::default()
                .with_listen([parse_multiaddr(listen).unwrap()])
                .with_mdns(false)
                .with_relay_server(false)
        };
        let (receiver, receiver_task) = kith_net::spawn(&Identity::generate(), config())
            .await
            .unwrap();
        let (sender, sender_task) = kith_net::spawn(&Identity::generate(), config())
            .await
            .unwrap();
        let receiver_id = receiver.local_peer_id();
        let addr = receiver.listen_addrs().await.unwrap()[0]
            .clone()
            .with_p2p(receiver_id)
            .unwrap();
        sender.dial(addr).await.unwrap();

        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        let mut incoming = receiver.streams().accept(PROTOCOL).unwrap();
        let acceptor = tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let _ = accepted_tx.send(());
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; CHUNK];
                    let mut total = 0u64;
                    loop {
                        let read = stream.read(&mut buffer).await.unwrap();
                        if read == 0 {
                            break;
                        }
                        total += read as u64;
                    }
                    let _ = done_tx.send((total, Instant::now()));
                });
            }
        });
        Self {
            sender_control: sender.streams(),
            sender,
            receiver,
            receiver_id,
            done,
            accepted,
            tasks: vec![receiver_task, sender_task, acceptor],
        }
    }

    /// Sends `bytes` split over `streams` streams at once; returns the time
    /// until the receiver read the last byte of the last stream.
    async fn run(&mut self, bytes: u64, streams: usize, data: &[u8]) -> Duration {
        let share = bytes / streams as u64;
        // Open every stream first: the measurement is of the bytes. Wait
        // until the receiver has taken each stream before opening the next:
        // libp2p-stream holds one unaccepted inbound stream per protocol and
        // resets any further one (see docs/network.md).
        let mut opened = Vec::with_capacity(streams);
        for _ in 0..streams {
            let stream = self
                .sender_control
                .open_stream(self.receiver_id, PROTOCOL)
                .await
                .unwrap();
            self.accepted.recv().await.unwrap();
            opened.push(stream);
        }
        let started = Instant::now();
        let senders: Vec<_> = opened
            .into_iter()
            .map(|mut stream| {
                let data = data.to_vec();
                tokio::spawn(async move {
                    let mut left = share;
                    while left > 0 {
                        let len = left.min(data.len() as u64) as usize;
                        stream.write_all(&data[..len]).await.unwrap();
                        left -= len as u64;
                    }
                    stream.close().await.unwrap();
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        let mut last = started;
        for _ in 0..streams {
            let (total, ended) = self.done.recv().await.unwrap();
            assert_eq!(total, share);
            last = last.max(ended);
        }
        last - started
    }

    async fn stop(self) {
        self.sender.shutdown().await.unwrap();
        self.receiver.shutdown().await.unwrap();
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Raw,
    Tcp(usize),
    Quic(usize),
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Raw => "raw loopback TCP (tokio, 1 MiB writes)".to_owned(),
            Case::Tcp(1) => "kith-net TCP+Noise+Yamux, 1 stream".to_owned(),
            Case::Tcp(p) => format!("kith-net TCP+Noise+Yamux, {p} streams"),
            Case::Quic(1) => "kith-net QUIC, 1 stream".to_owned(),
            Case::Quic(p) => format!("kith-net QUIC, {p} streams"),
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(args));
}

async fn bench(args: Args) {
    let data = chunk();
    let mut cases = vec![Case::Raw, Case::Tcp(1), Case::Quic(1)];
    if args.parallel > 1 {
        cases.push(Case::Tcp(args.parallel));
        cases.push(Case::Quic(args.parallel));
    }
    let mut tcp = Pair::start("/ip4/127.0.0.1/tcp/0").await;
    let mut quic = Pair::start("/ip4/127.0.0.1/udp/0/quic-v1").await;
    // Warm up: grow yamux's and QUIC's windows, fault in the buffers.
    let warm = (64u64 << 20).min(args.bytes);
    tcp.run(warm, 1, &data).await;
    quic.run(warm, 1, &data).await;

    let mut best = vec![Duration::MAX; cases.len()];
    for run in 1..=args.runs {
        for (i, case) in cases.iter().enumerate() {
            let took = match *case {
                Case::Raw => raw_tcp(args.bytes, &data).await,
                Case::Tcp(p) => tcp.run(args.bytes, p, &data).await,
                Case::Quic(p) => quic.run(args.bytes, p, &data).await,
            };
            eprintln!(
                "run {run}: {:<44} {:>8.0} MB/s",
                case.name(),
                mb_per_s(args.bytes, took)
            );
            best[i] = best[i].min(took);
        }
    }
    tcp.stop().await;
    quic.stop().await;

    let ceiling = mb_per_s(args.bytes, best[0]);
    println!(
        "\n{} bytes ({} MiB) per case, best of {} interleaved runs\n",
        args.bytes,
        args.bytes >> 20,
        args.runs
    );
    println!("| path | MB/s | ratio to raw loopback |");
    println!("|---|---:|---:|");
    for (case, took) in cases.iter().zip(&best) {
        let speed = mb_per_s(args.bytes, *took);
        println!(
            "| {} | {:.0} | {:.2} |",
            case.name(),
            speed,
            speed / ceiling
        );
    }
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e6
}
