//! What one client of the gateway may ask, and what the gateway logs
//! ([`GatewayLimits`], from `config.toml`'s `gateway_*` settings, read from
//! the node for each request, so a reload applies from the next one).
//!
//! - **Requests per second per client address**: a token bucket per
//!   address (an IPv6 client's whole /64, which one household or host
//!   usually holds), with a burst of twice the rate, so a browser opening a
//!   page with its images is not slowed. Past it the answer is `429 Too
//!   Many Requests` with `Retry-After`. The table of addresses is bounded
//!   ([`MAX_CLIENTS`]): when full, clients whose bucket has refilled and
//!   who are not being paced are forgotten first (they lose nothing), then
//!   the longest idle.
//! - **Bytes per second per client address** (`gateway_max_upload_per_client`):
//!   the answers' bodies are paced, all of one client's requests together,
//!   with a burst of one second's worth ([`SEND_BURST`]).
//! - **The largest response**: a file larger than `gateway_max_response`
//!   is refused with `403` and a page saying to fetch it with `kith get`;
//!   a `Range` request whose part is within the cap is served.
//! - **The request log** (`gateway_log`): off by default. `requests` logs
//!   one line per request (method, host, path, status, bytes, time) at
//!   `info` under the target `kith_gateway`; `requests-and-addresses` adds
//!   the client's address. Nothing else about a client is ever logged.
//!
//! Hand-written rather than `governor`: the bucket is ten lines, the
//! bound on the table and its eviction order are what matter here, and
//! `governor`'s keyed limiter grows without a bound until it is shrunk
//! from outside.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use kith_base::ByteSize;
use kith_node::Node;
use kith_node::config::{GatewayLimits, GatewayLog};

/// Most client addresses tracked at once.
pub(crate) const MAX_CLIENTS: usize = 10_000;

/// How far ahead of its rate a client's downloads may run: a page's
/// first second arrives at full speed.
pub(crate) const SEND_BURST: Duration = Duration::from_secs(1);

/// Largest piece of a body sent at once when paced, so the pacing is
/// smooth at low rates.
const PACED_PIECE: usize = 64 << 10;

/// The gateway's per-client state. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientLimits {
    clients: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Requests this client may send now.
    tokens: f64,
    last: Instant,
    /// When what was sent to this client so far has been paid for at its
    /// byte rate (in the past: nothing owed).
    sent_until: Instant,
}

impl ClientLimits {
    /// Runs `f` on `client`'s bucket, made first if it is new.
    fn with_bucket<T>(
        &self,
        client: IpAddr,
        now: Instant,
        burst: f64,
        f: impl FnOnce(&mut Bucket) -> T,
    ) -> T {
        let key = client_key(client);
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            make_room(&mut clients, now);
        }
        let bucket = clients.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
            sent_until: now.checked_sub(SEND_BURST).unwrap_or(now),
        });
        f(bucket)
    }

    /// Takes one request's token for `client` at `now` under `rate`
    /// requests per second; `Err` with how long until one is there.
    fn admit(&self, client: IpAddr, now: Instant, rate: u32) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let burst = rate * 2.0;
        self.with_bucket(client, now, burst, |bucket| {
            let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
            }
        })
    }

    /// Books `bytes` to send to `client` at `rate` bytes per second; how
    /// long to wait before sending them (zero within the burst).
    fn pace(&self, client: IpAddr, bytes: usize, rate: u64, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        // A client first seen here has its request bucket full.
        self.with_bucket(client, now, f64::INFINITY, |bucket| {
            // Owing nothing, a client starts a burst's worth back.
            let floor = now.checked_sub(SEND_BURST).unwrap_or(now);
            bucket.sent_until = bucket.sent_until.max(floor) + cost;
            bucket.last = bucket.last.max(now);
            bucket.sent_until.saturating_duration_since(now)
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients
            .lock()
            .map(|clients| clients.len())
            .unwrap_or(0)
    }
}

/// Forgets clients that owe nothing (idle long enough for their request
/// bucket to refill at any rate of one a second or more, their bytes paid
/// for), else the longest idle one, until there is room for one more.
fn make_room(clients: &mut HashMap<IpAddr, Bucket>, now: Instant) {
    clients.retain(|_, bucket| {
        let refilled = now.saturating_duration_since(bucket.last) >= Duration::from_secs(2);
        !(refilled && bucket.sent_until <= now)
    });
    while clients.len() >= MAX_CLIENTS {
        let Some(oldest) = clients
            .iter()
            .min_by_key(|(_, bucket)| bucket.last)
            .map(|(key, _)| *key)
        else {
            break;
        };
        clients.remove(&oldest);
    }
}

/// An IPv4 address as it is; an IPv6 address by its /64 (an IPv4-mapped
/// one as the IPv4 address).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// The middleware: the rate per client before the request; the size cap
/// and the byte rate on the answer; the log line.
pub(crate) async fn enforce(
    State((node, limits)): State<(Node, ClientLimits)>,
    request: Request,
    next: Next,
) -> Response {
    let settings = node.gateway_limits();
    let started = Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let logged = (settings.log != GatewayLog::Off).then(|| {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (
            request.method().clone(),
            host,
            request.uri().path().to_owned(),
        )
    });
    let response = answer(&limits, &settings, client, request, next).await;
    if let Some((method, host, path)) = logged {
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        let status = response.status().as_u16();
        let millis = started.elapsed().as_millis();
        match (settings.log, client) {
            (GatewayLog::RequestsAndAddresses, Some(client)) => tracing::info!(
                target: "kith_gateway",
                "{client} {method} {host}{path} {status} {bytes} bytes {millis} ms"
            ),
            _ => tracing::info!(
                target: "kith_gateway",
                "{method} {host}{path} {status} {bytes} bytes {millis} ms"
            ),
        }
    }
    response
}

/// The answer to `request` within `settings`' limits for `client`.
async fn answer(
    limits: &ClientLimits,
    settings: &GatewayLimits,
    client: Option<IpAddr>,
    request: Request,
    next: Next,
) -> Response {
    if let (Some(client), Some(rate)) = (client, settings.requests_per_second)
        && let Err(wait) = limits.admit(client, Instant::now(), rate)
    {
        let seconds = wait.as_secs().max(1);
        let mut response = crate::gateway::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many requests from your address: this gateway answers {rate} a second. \
                 Try again in {seconds} s."
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let response = next.run(request).await;
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let (Some(cap), Some(length)) = (settings.max_response, length)
        && length > cap
        && response.status().is_success()
    {
        // Dropping the answer stops its download.
        return crate::gateway::error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "This file ({}) is larger than this gateway sends ({}). Fetch it with \
                 kith get, or ask for a part of it with a Range request.",
                ByteSize(length),
                ByteSize(cap)
            ),
        );
    }
    match (client, settings.max_upload_per_client) {
        (Some(client), Some(rate)) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, paced(body, limits.clone(), client, rate))
        }
        _ => response,
    }
}

/// `body`, sent to `client` no faster than `rate` bytes per second (all
/// its answers together), in pieces of at most [`PACED_PIECE`].
fn paced(body: Body, limits: ClientLimits, client: IpAddr, rate: u64) -> Body {
    let pieces = body.into_data_stream().flat_map(|chunk| {
        let pieces: Vec<Result<Bytes, axum::Error>> = match chunk {
            Ok(mut bytes) => {
                let mut pieces = Vec::with_capacity(bytes.len().div_ceil(PACED_PIECE));
                while !bytes.is_empty() {
                    pieces.push(Ok(bytes.split_to(bytes.len().min(PACED_PIECE))));
                }
                pieces
            }
            Err(error) => vec![Err(error)],
        };
        futures::stream::iter(pieces)
    });
    let paced = pieces.then(move |piece| {
        let wait = match &piece {
            Ok(bytes) => limits.pace(client, bytes.len(), rate, Instant::now()),
            Err(_) => Duration::ZERO,
        };
        async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            piece
        }
    });
    Body::from_stream(paced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_the_rate_and_others_are_apart() {
        let limits = ClientLimits::default();
        let start = Instant::now();
        let one: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::V4(0.into()));
        let two: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::V4(0.into()));
        for _ in 0..10 {
            assert!(limits.admit(one, start, 5).is_ok());
        }
        let wait = limits.admit(one, start, 5).err();
        assert_eq!(wait, Some(Duration::from_millis(200)));
        assert!(
            limits.admit(two, start, 5).is_ok(),
            "another client is apart"
        );
        let later = start + Duration::from_millis(200);
        assert!(limits.admit(one, later, 5).is_ok());
        assert!(limits.admit(one, later, 5).is_err());
    }

    #[test]
    fn a_client_downloads_a_second_ahead_then_at_its_byte_rate() {
        let limits = ClientLimits::default();
        let start = Instant::now();
        let one: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::V4(0.into()));
        let two: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::V4(0.into()));
        let rate = 100_000;
        // A second's worth goes at once, in any pieces.
        for _ in 0..10 {
            assert_eq!(limits.pace(one, 10_000, rate, start), Duration::ZERO);
        }
        // Then each piece waits its time at the rate, all requests of the
        // client together.
        assert_eq!(
            limits.pace(one, 50_000, rate, start),
            Duration::from_millis(500)
        );
        assert_eq!(
            limits.pace(one, 50_000, rate, start),
            Duration::from_secs(1)
        );
        assert_eq!(
            limits.pace(two, 50_000, rate, start),
            Duration::ZERO,
            "another client is apart"
        );
        // Idle, the client is owed its burst again, no more.
        let later = start + Duration::from_secs(10);
        assert_eq!(limits.pace(one, 100_000, rate, later), Duration::ZERO);
        assert_eq!(
            limits.pace(one, 10_000, rate, later),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::V4(0.into()));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(
            client_key(mapped),
            "192.0.2.7".parse::<IpAddr>().ok().unwrap_or(mapped)
        );
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_idle_clients_first() {
        let limits = ClientLimits::default();
        let start = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limits.admit(ip, start, 1).is_ok());
        }
        assert_eq!(limits.tracked(), MAX_CLIENTS);
        // A busy client, then a crowd of new ones: the table never grows
        // past its bound, and the busy client stays limited.
        let busy = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 200));
        let later = start + Duration::from_millis(1);
        assert!(limits.admit(busy, later, 1).is_ok());
        assert!(limits.admit(busy, later, 1).is_ok());
        assert!(limits.admit(busy, later, 1).is_err());
        for i in 0..100u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            assert!(limits.admit(ip, later, 1).is_ok());
            assert!(limits.tracked() <= MAX_CLIENTS);
        }
        assert!(
            limits.admit(busy, later, 1).is_err(),
            "the busy client was kept"
        );
    }
}
