//! Helpers shared by the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// One current-thread Tokio runtime with a timer, for the async readers.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// A stream that hands out at most `step` bytes per read, as a network
/// stream may: the readers must not assume a read fills their buffer.
pub struct Trickle<'a> {
    pub bytes: &'a [u8],
    pub step: usize,
}

impl futures::AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.step.max(1)).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Poll::Ready(Ok(n))
    }
}

/// One frame as the fuzzer builds it: a tag, a payload, and optionally a
/// length in the header that lies about the payload.
#[derive(Debug, arbitrary::Arbitrary)]
pub struct Frame<T> {
    pub tag: T,
    pub payload: Vec<u8>,
    pub announced: Option<u32>,
}

/// `tag ‖ len u32 LE ‖ payload` for every frame, both protocols' layout.
pub fn frames_to_bytes<T: Copy>(frames: &[Frame<T>], tag_byte: impl Fn(T) -> u8) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        out.push(tag_byte(frame.tag));
        let len = frame.announced.unwrap_or(frame.payload.len() as u32);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame.payload);
    }
    out
}
