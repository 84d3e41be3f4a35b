//! The API's accept loop: HTTP/1.1 over TCP with bounds on what a local
//! client that never finishes can hold.
//!
//! `axum::serve` sets no timeouts and accepts every connection, so idle or
//! half-sent requests could pile up until the process ran out of file
//! descriptors — and then the node could no longer open share files or
//! accept peers. This loop, built on the hyper and hyper-util that axum
//! uses, bounds three things ([`ApiLimits`]):
//!
//! - **headers**: a request's head must arrive within
//!   [`ApiLimits::header_timeout`] of the connection being ready for it —
//!   also between requests on a kept-alive connection, so a connection that
//!   sends nothing is closed then (hyper's `header_read_timeout`);
//! - **request bodies**: a body that sends nothing for
//!   [`ApiLimits::body_idle_timeout`] fails (tower-http's
//!   `RequestBodyTimeoutLayer`, which restarts its clock on every chunk), so
//!   an upload may take minutes as long as bytes keep coming;
//! - **connections**: at most [`ApiLimits::max_connections`] are served at
//!   once; further ones wait in the kernel's listen queue, costing this
//!   process no descriptor, until one ends.
//!
//! Responses are not timed: a download or a long-poll (`/v1/inbox?wait=`)
//! lasts as long as it needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::{debug, warn};

/// Most API connections served at once, whatever the descriptor limit.
pub const MAX_API_CONNECTIONS: usize = 256;

/// How long a stopping API waits for requests under way to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long the loop pauses after the operating system refused to accept a
/// connection (e.g. out of file descriptors), before it tries again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The API server's bounds. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiLimits {
    /// Time for a request's head (request line and headers), counted from
    /// when the connection is ready for one. Default 10 s.
    pub header_timeout: Duration,
    /// Most time a request body may go without sending a byte. Default 30 s.
    pub body_idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl ApiLimits {
    /// The defaults for this process: [`MAX_API_CONNECTIONS`] connections,
    /// or a quarter of the open-file limit if that is less, so that three
    /// quarters of the descriptors stay for the store and the peers.
    pub fn for_this_process() -> Self {
        let soft = rlimit::Resource::NOFILE
            .get()
            .map(|(soft, _hard)| soft)
            .unwrap_or(1024);
        Self {
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: connection_cap(soft),
        }
    }

    /// These limits with other timeouts (tests use short ones).
    pub fn with_timeouts(mut self, header: Duration, body_idle: Duration) -> Self {
        self.header_timeout = header;
        self.body_idle_timeout = body_idle;
        self
    }

    /// These limits with another connection cap (at least one).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// The connection cap for an open-file limit of `soft`.
fn connection_cap(soft: u64) -> usize {
    let quarter = usize::try_from(soft / 4).unwrap_or(usize::MAX);
    quarter.clamp(1, MAX_API_CONNECTIONS)
}

/// Serves `router` on `listener` within `limits` until `stop` fires, then
/// stops accepting, asks open connections to finish their request and
/// close, and waits for them (at most [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiLimits,
    stop: impl Future<Output = ()>,
) {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        // A free slot first, then a connection: past the cap, connections
        // wait in the kernel's queue, not in this process.
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "the API cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Handlers that need the client's address (the gateway's
        // per-client limits) read it as `ConnectInfo`.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request
            },
        ));
        let header_timeout = limits.header_timeout;
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, remote, service, header_timeout, &mut closing).await;
        });
    }
    let _ = closing_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
    if drained.is_err() {
        warn!(
            after = ?SHUTDOWN_GRACE,
            "API connections still open at shutdown were left to end with the process"
        );
    }
}

/// One connection, HTTP/1.1 with the header timeout, until it ends or the
/// server stops (then the request under way is finished first).
async fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    service: TowerToHyperService<S>,
    header_timeout: Duration,
    closing: &mut watch::Receiver<bool>,
) where
    S: tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut told_to_close = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    debug!(%remote, %error, "API connection ended");
                }
                return;
            }
            _ = closing.changed(), if !told_to_close => {
                told_to_close = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_three_quarters_of_the_descriptors() {
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(256), 64);
        assert_eq!(connection_cap(1 << 20), MAX_API_CONNECTIONS);
        assert_eq!(connection_cap(2), 1);
    }
}
