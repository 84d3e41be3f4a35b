//! Byte streams on kith's own protocols: opened and accepted through
//! `Client::streams`, outside the event loop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{loopback_config, start, stop_all};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use kith_net::{OpenStreamError, StreamProtocol};

const ECHO: StreamProtocol = StreamProtocol::new("/kith/test-echo/1.0.0");

/// Deterministic, non-repeating test bytes (so a reordered or duplicated
/// chunk cannot go unnoticed).
fn pattern(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        out.extend_from_slice(blake3::hash(&counter.to_le_bytes()).as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mib_echo_over_a_stream() {
    const LEN: usize = 8 << 20;
    let a = start(loopback_config()).await;
    let b = start(loopback_config()).await;

    // a echoes every stream on the test protocol.
    let mut incoming = a.client.streams().accept(ECHO).unwrap();
    let echo = tokio::spawn(async move {
        let (peer, mut stream) = incoming.next().await.expect("an inbound stream");
        let (mut reader, mut writer) = (&mut stream).split();
        let copied = futures::io::copy(&mut reader, &mut writer).await.unwrap();
        writer.close().await.unwrap();
        (peer, copied)
    });

    // b opens a stream (dialing a on demand is covered by `dial` first:
    // the control only dials peers whose addresses the swarm knows).
    b.client.dial(a.addr.clone()).await.unwrap();
    let a_id = a.client.local_peer_id();
    let mut stream = b.client.streams().open_stream(a_id, ECHO).await.unwrap();

    let data = pattern(LEN);
    let (mut reader, mut writer) = (&mut stream).split();
    let send = async {
        for chunk in data.chunks(256 << 10) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.close().await.unwrap();
    };
    let receive = async {
        let mut back = Vec::with_capacity(LEN);
        reader.read_to_end(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::time::timeout(Duration::from_secs(60), async {
        futures::join!(send, receive)
    })
    .await
    .expect("echo within 60 s");

    assert_eq!(back.len(), LEN);
    assert!(back == data, "echoed bytes differ");
    let (peer, copied) = echo.await.unwrap();
    assert_eq!(peer, b.client.local_peer_id());
    assert_eq!(copied, LEN as u64);

    stop_all(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_is_reported() {
    let a = start(loopback_config()).await;
    let b = start(loopback_config()).await;
    b.client.dial(a.addr.clone()).await.unwrap();

    // a accepts nothing on this protocol.
    let error = b
        .client
        .streams()
        .open_stream(a.client.local_peer_id(), ECHO)
        .await
        .unwrap_err();
    assert!(
        matches!(error, OpenStreamError::UnsupportedProtocol(ref p) if *p == ECHO),
        "{error}"
    );

    // Only one acceptor per protocol.
    let control = a.client.streams();
    let _first = control.clone().accept(ECHO).unwrap();
    assert!(control.clone().accept(ECHO).is_err());

    stop_all(vec![a, b]).await;
}
