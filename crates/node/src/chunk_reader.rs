//! A blocking [`Read`] over chunks that arrive on a channel: the bridge from
//! async byte sources (an HTTP body, a stream of a friend's file) to the
//! encoder, which reads on a blocking thread.

use std::io::Read;

use futures::{AsyncRead, AsyncReadExt};

/// Chunks handed over between the async side and the reader.
const CHUNKS_AHEAD: usize = 8;
/// Size of the chunks [`ChunkReader::from_async`] hands over.
const CHUNK: usize = 1 << 20;

/// Reads the chunks a channel yields, in order; an `Err` chunk is returned
/// as the read error, a closed channel is the end.
pub struct ChunkReader {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChunkReader {
    /// A reader over what `receiver` yields.
    pub fn new(receiver: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        Self {
            receiver,
            chunk: Vec::new(),
            at: 0,
        }
    }

    /// A reader over an async source, pumped by a task on the current
    /// runtime. Read it only on a blocking thread.
    pub fn from_async(mut source: impl AsyncRead + Send + Unpin + 'static) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        tokio::spawn(async move {
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match source.read(&mut chunk[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(error) => {
                            let _ = sender.send(Err(error)).await;
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                chunk.truncate(filled);
                let last = filled < CHUNK;
                if sender.send(Ok(chunk)).await.is_err() || last {
                    return;
                }
            }
        });
        Self::new(receiver)
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            // The reader runs on a blocking thread, where blocking on the
            // channel is allowed.
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_everything_an_async_source_yields() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let reader = ChunkReader::from_async(futures::io::Cursor::new(data.clone()));
        let read = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert_eq!(read, data);
    }
}
