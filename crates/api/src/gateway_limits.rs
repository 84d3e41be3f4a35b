//! What one client of the gateway may ask ([`GatewayLimits`], from
//! `config.toml`'s `gateway_rate` and `gateway_max_response`).
//!
//! - **Requests per second per client address**: a token bucket per
//!   address (an IPv6 client's whole /64, which one household or host
//!   usually holds), with a burst of twice the rate, so a browser opening a
//!   page with its images is not slowed. Past it the answer is `429 Too
//!   Many Requests` with `Retry-After`. The table of addresses is bounded
//!   ([`MAX_CLIENTS`]): when full, clients whose bucket has refilled are
//!   forgotten first (they lose nothing), then the longest idle.
//! - **The largest response**: a file larger than `gateway_max_response`
//!   is refused with `403` and a page saying to fetch it with `kith get`;
//!   a `Range` request whose part is within the cap is served.
//!
//! No client address is logged by the gateway.
//!
//! Hand-written rather than `governor`: the bucket is ten lines, the
//! bound on the table and its eviction order are what matter here, and
//! `governor`'s keyed limiter grows without a bound until it is shrunk
//! from outside.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use kith_base::ByteSize;
use kith_node::config::GatewayLimits;

/// Most client addresses tracked at once.
pub(crate) const MAX_CLIENTS: usize = 10_000;

/// The gateway's per-client state. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ClientLimits {
    limits: GatewayLimits,
    clients: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl ClientLimits {
    pub(crate) fn new(limits: GatewayLimits) -> Self {
        Self {
            limits,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one request's token for `client` at `now`; `Err` with how
    /// long until one is there.
    fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.limits.requests_per_second else {
            return Ok(());
        };
        let rate = f64::from(rate.max(1));
        let burst = rate * 2.0;
        let key = client_key(client);
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            make_room(&mut clients, now, rate, burst);
        }
        let bucket = clients.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients
            .lock()
            .map(|clients| clients.len())
            .unwrap_or(0)
    }
}

/// Forgets clients whose bucket is full again (nothing lost), else the
/// longest idle one, until there is room for one more.
fn make_room(clients: &mut HashMap<IpAddr, Bucket>, now: Instant, rate: f64, burst: f64) {
    clients.retain(|_, bucket| {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens + elapsed * rate < burst
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

/// The middleware: the rate per client before the request, the size cap
/// on the answer.
pub(crate) async fn enforce(
    State(limits): State<ClientLimits>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(client) = client
        && let Err(wait) = limits.admit(client, Instant::now())
    {
        let seconds = wait.as_secs().max(1);
        let mut response = crate::gateway::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many requests from your address: this gateway answers {} a second. \
                 Try again in {seconds} s.",
                limits.limits.requests_per_second.unwrap_or_default()
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    let response = next.run(request).await;
    let Some(cap) = limits.limits.max_response else {
        return response;
    };
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match length {
        Some(length) if length > cap && response.status().is_success() => {
            // Dropping the answer stops its download.
            crate::gateway::error_page(
                StatusCode::FORBIDDEN,
                &format!(
                    "This file ({}) is larger than this gateway sends ({}). Fetch it with \
                     kith get, or ask for a part of it with a Range request.",
                    ByteSize(length),
                    ByteSize(cap)
                ),
            )
        }
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32) -> ClientLimits {
        let mut limits = GatewayLimits::default();
        limits.requests_per_second = Some(rate);
        ClientLimits::new(limits)
    }

    #[test]
    fn a_client_gets_its_burst_then_the_rate_and_others_are_apart() {
        let limits = limits(5);
        let start = Instant::now();
        let one: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::V4(0.into()));
        let two: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::V4(0.into()));
        for _ in 0..10 {
            assert!(limits.admit(one, start).is_ok());
        }
        let wait = limits.admit(one, start).err();
        assert_eq!(wait, Some(Duration::from_millis(200)));
        assert!(limits.admit(two, start).is_ok(), "another client is apart");
        let later = start + Duration::from_millis(200);
        assert!(limits.admit(one, later).is_ok());
        assert!(limits.admit(one, later).is_err());
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
        let limits = limits(1);
        let start = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limits.admit(ip, start).is_ok());
        }
        assert_eq!(limits.tracked(), MAX_CLIENTS);
        // A busy client, then a crowd of new ones: the table never grows
        // past its bound, and the busy client stays limited.
        let busy = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 200));
        let later = start + Duration::from_millis(1);
        assert!(limits.admit(busy, later).is_ok());
        assert!(limits.admit(busy, later).is_ok());
        assert!(limits.admit(busy, later).is_err());
        for i in 0..100u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            assert!(limits.admit(ip, later).is_ok());
            assert!(limits.tracked() <= MAX_CLIENTS);
        }
        assert!(
            limits.admit(busy, later).is_err(),
            "the busy client was kept"
        );
    }
}
