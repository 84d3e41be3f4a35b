//! The API's bounds against clients that connect and never finish (issue
//! 23, item 9): a real node with its API on 127.0.0.1, raw sockets for the
//! misbehaving clients, and `ureq` for the honest one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kith_api::{ApiLimits, Running};
use kith_node::DataDir;

/// Short timeouts so the tests take seconds.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

struct Api {
    running: Running,
    token: String,
    _temp: tempfile::TempDir,
}

impl Api {
    async fn start(max_connections: usize) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path().join("node"));
        let config = common::lone_node_config();
        let limits = ApiLimits::for_this_process()
            .with_timeouts(HEADER_TIMEOUT, BODY_IDLE_TIMEOUT)
            .with_max_connections(max_connections);
        let running = kith_api::up_with(dir.clone(), config, limits)
            .await
            .unwrap();
        let token = dir.api_token().unwrap();
        Self {
            running,
            token,
            _temp: temp,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.api_addr()
    }
}

/// Reads until the server closes the connection (or `limit` passes, which
/// fails the test); returns what it sent and how long that took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let began = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buf[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server kept the connection open for {limit:?}")
            }
            // Reset by the server: closed too.
            Err(_) => break,
        }
        assert!(began.elapsed() < limit, "the server kept talking");
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        began.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let api = Api::start(16).await;
    let addr = api.addr();
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(format!("GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nX-Slow:").as_bytes())
            .unwrap();
        read_until_closed(&mut stream, HEADER_TIMEOUT + Duration::from_secs(5))
    })
    .await
    .unwrap();
    eprintln!("half-sent head closed after {took:?}: {answer:?}");
    assert!(
        took >= HEADER_TIMEOUT - Duration::from_millis(200),
        "{took:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    api.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_is_closed_after_the_idle_timeout() {
    let api = Api::start(16).await;
    let addr = api.addr();
    let token = api.token.clone();
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(
                format!(
                    "POST /v1/msg HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"to\":"
                )
                .as_bytes(),
            )
            .unwrap();
        read_until_closed(&mut stream, BODY_IDLE_TIMEOUT + Duration::from_secs(5))
    })
    .await
    .unwrap();
    eprintln!("stalled body closed after {took:?}: {answer:?}");
    assert!(
        took >= BODY_IDLE_TIMEOUT - Duration::from_millis(200),
        "{took:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    api.running.stop().await;
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_cost_no_descriptor_and_a_real_call_gets_through() {
    const CAP: usize = 4;
    const IDLE: usize = 40;
    let api = Api::start(CAP).await;
    let addr = api.addr();
    let token = api.token.clone();
    let base = open_fds();

    let (status, took, peak) = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..IDLE)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        // Watch this process's descriptors while the real call waits its
        // turn behind the idle connections.
        let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let watcher = {
            let watching = watching.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while watching.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(open_fds());
                    std::thread::sleep(Duration::from_millis(20));
                }
                peak
            })
        };
        let began = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let response = agent
            .get(format!("http://{addr}/v1/status"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let took = began.elapsed();
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        let peak = watcher.join().unwrap();
        drop(idle);
        (response.status().as_u16(), took, peak)
    })
    .await
    .unwrap();
    eprintln!(
        "status {status} after {took:?} behind {IDLE} idle connections (cap {CAP}); \
         descriptors: {base} before, at most {peak} during"
    );
    assert_eq!(status, 200);
    // The idle clients' own sockets, the served ones and the real call,
    // plus slack for the node's own work; without the cap the server
    // would hold all 40 idle connections too.
    assert!(
        peak <= base + IDLE + CAP + 16,
        "{peak} descriptors open, {base} before"
    );
    api.running.stop().await;
}
