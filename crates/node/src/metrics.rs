//! The node's metrics in the Prometheus / OpenMetrics text format, for
//! `GET /v1/metrics`: kith's own figures (store, peers, repair, scrub,
//! leases, serving and swarming) followed by libp2p's (connections, bytes
//! per protocol, DHT queries, pings).
//!
//! kith's counters live as plain atomics in the node (they also feed `kith
//! status`); a scrape copies a snapshot of them into a registry made for
//! that scrape, so nothing here keeps state of its own.

use std::fmt::Write as _;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::status::NodeStatus;

/// Upkeep counters that are levels, not running totals.
const GAUGES: &[&str] = &["repairs_running", "stripes_sending"];

/// Levels of the names part, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameFigures {
    /// Name records held (for the network, resolved, and this node's own).
    pub(crate) records: u64,
    /// Names this node publishes.
    pub(crate) published: u64,
    /// Mirrors this node keeps.
    pub(crate) mirrors: u64,
}

/// The limits on what one peer may take, for the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitFigures {
    /// Refusals since start, by kind.
    pub(crate) refusals: [(crate::slots::Refused, u64); crate::slots::Refused::ALL.len()],
    /// Most bytes one peer's leases may hold here (`u64::MAX`: no cap).
    pub(crate) peer_cap: u64,
    /// Most bytes any one peer's leases hold here now.
    pub(crate) peer_bytes_max: u64,
    /// Peers whose leases hold shares here.
    pub(crate) peers_holding: u64,
}

/// Renders `status` (and `records`, the stripe records held, the names
/// part's levels and the per-peer limits), then `libp2p`'s metrics, then
/// the closing `# EOF`.
pub(crate) fn render(
    status: &NodeStatus,
    records: u64,
    names: NameFigures,
    limits: &LimitFigures,
    reachability: &kith_net::ReachabilityReport,
    libp2p: &kith_net::Client,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("kith");
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let metric = Gauge::<i64>::default();
        metric.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, metric);
    };
    for (name, help, value) in [
        (
            "peers_connected",
            "Peers connected now",
            status.peers as u64,
        ),
        (
            "uptime_seconds",
            "Seconds since the node started",
            status.uptime_secs,
        ),
        (
            "store_shares",
            "Shares held for the network",
            status.shares_held,
        ),
        ("store_records", "Stripe records held", records),
        (
            "store_bytes",
            "Bytes held: shares and stripe records",
            status.bytes_held,
        ),
        (
            "store_quota_bytes",
            "Most bytes the store will hold",
            status.quota,
        ),
        (
            "name_records",
            "Name records held: for the network, resolved, and this node's own",
            names.records,
        ),
        (
            "names_published",
            "Names this node publishes",
            names.published,
        ),
        ("mirrors", "Mirrors this node keeps", names.mirrors),
        (
            "store_peer_cap_bytes",
            "Most bytes the shares leased by any one peer may take (quota_per_peer; \
             absent cap shown as the largest value)",
            limits.peer_cap,
        ),
        (
            "store_peer_bytes_max",
            "Most bytes the shares leased by any one peer take now",
            limits.peer_bytes_max,
        ),
        (
            "store_peers_holding",
            "Peers whose leased shares this node holds",
            limits.peers_holding,
        ),
        (
            "reachability_public",
            "1 while peers can dial this node directly (AutoNAT), else 0",
            u64::from(reachability.reachability == kith_net::Reachability::Public),
        ),
        (
            "reachability_private",
            "1 while AutoNAT finds this node behind a NAT or firewall, else 0",
            u64::from(reachability.reachability == kith_net::Reachability::Private),
        ),
        (
            "relays",
            "Relays holding a reservation for this node",
            reachability.relays.len() as u64,
        ),
    ] {
        gauge(&mut registry, name, help, value);
    }
    // Every upkeep counter, by its field name, so that a counter added to
    // `UpkeepCounters` shows here without a second list to keep in step.
    let upkeep = serde_json::to_value(&status.upkeep).map_err(|_| std::fmt::Error)?;
    if let serde_json::Value::Object(fields) = upkeep {
        for (name, value) in fields {
            let Some(value) = value.as_u64() else {
                continue;
            };
            let help = format!("Since start: {}", name.replace('_', " "));
            if GAUGES.contains(&name.as_str()) {
                gauge(&mut registry, &name, &help, value);
            } else {
                let counter = Counter::<u64>::default();
                counter.inc_by(value);
                registry.register(name, help, counter);
            }
        }
    }
    let refused = Family::<Vec<(String, String)>, Counter>::default();
    for (kind, count) in limits.refusals {
        refused
            .get_or_create(&vec![("reason".to_owned(), kind.label().to_owned())])
            .inc_by(count);
    }
    registry.register(
        "refused",
        "Requests refused to a peer since start, by the limit that refused them \
         (quota_per_peer, mailbox_per_peer, streams_per_peer, streams)",
        refused,
    );
    let mut out = String::new();
    encode_registry(&mut out, &registry)?;
    libp2p.write_metrics(&mut out)?;
    encode_eof(&mut out)?;
    // Not needed by Prometheus; keeps `curl` output ending in a newline.
    if !out.ends_with('\n') {
        out.write_char('\n')?;
    }
    Ok(out)
}
