//! Settings read again while the node runs: `kith up` reloads
//! `config.toml` on `SIGHUP` (systemd's `ExecReload`) and hands the old and
//! new [`NodeConfig`] to [`Node::reload`].
//!
//! What can change live changes at once, for open connections too: the
//! rate caps (`max_upload`, `max_download`, and their `_per_peer` forms),
//! the part of the quota one peer may take (`quota_per_peer`, from
//! the next share a peer sends), and everything about the gateway but its
//! address (`gateway_rate`, `gateway_max_response`,
//! `gateway_max_upload_per_client`, `gateway_serves`, `gateway_log`, from
//! the next request).
//! Every other setting that differs is named in [`Reload::at_restart`], so
//! the operator reads in the log that it waits for the next start, rather
//! than believing it took effect.

use kith_net::RateLimits;

use crate::config::GatewayLimits;
use crate::{Node, NodeConfig};

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    /// Settings now in force, each as `key: old → new`.
    pub applied: Vec<String>,
    /// Settings that differ but wait for the next start (their keys).
    pub at_restart: Vec<&'static str>,
}

impl Reload {
    /// Whether nothing differed.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.at_restart.is_empty()
    }
}

impl Node {
    /// Applies what of `new` can change while the node runs, and names
    /// what differs from `old` but needs a restart.
    ///
    /// What can change live is compared with what is in force, so a
    /// setting changed and changed back is applied both times; `old` is
    /// the configuration the node started with.
    pub fn reload(&self, old: &NodeConfig, new: &NodeConfig) -> Reload {
        let mut reload = Reload::default();
        let in_force = self.net().rate_limits();
        if in_force != new.rate_limits {
            self.net().set_rate_limits(new.rate_limits);
            reload
                .applied
                .extend(rate_changes(&in_force, &new.rate_limits));
        }
        let quota = self.store().usage().quota;
        let (before, after) = (
            self.shares().peer_cap(),
            new.peer_limits.quota_per_peer.of(quota),
        );
        if before != after {
            self.shares().set_peer_cap(after);
            let show = |cap: u64| match cap {
                u64::MAX => "no cap".to_owned(),
                cap => kith_base::ByteSize(cap).to_string(),
            };
            reload.applied.push(format!(
                "quota_per_peer: {} → {} per peer",
                show(before),
                show(after)
            ));
        }
        let gateway = self.gateway_limits();
        if gateway != new.gateway_limits {
            self.set_gateway_limits(new.gateway_limits);
            reload
                .applied
                .extend(gateway_changes(&gateway, &new.gateway_limits));
        }
        reload.at_restart = needing_restart(old, new);
        reload
    }
}

/// One `key: old → new` line per gateway setting that changed.
fn gateway_changes(old: &GatewayLimits, new: &GatewayLimits) -> Vec<String> {
    let per_second = |rate: Option<u64>, unit: &str| match rate {
        Some(rate) if unit == "bytes" => format!("{}/s", kith_base::ByteSize(rate)),
        Some(rate) => format!("{rate}/s"),
        None => "no cap".to_owned(),
    };
    let size = |size: Option<u64>| {
        size.map_or("no cap".to_owned(), |size| {
            kith_base::ByteSize(size).to_string()
        })
    };
    [
        (
            "gateway_rate",
            per_second(old.requests_per_second.map(u64::from), "requests"),
            per_second(new.requests_per_second.map(u64::from), "requests"),
        ),
        (
            "gateway_max_response",
            size(old.max_response),
            size(new.max_response),
        ),
        (
            "gateway_max_upload_per_client",
            per_second(old.max_upload_per_client, "bytes"),
            per_second(new.max_upload_per_client, "bytes"),
        ),
        (
            "gateway_serves",
            format!("{:?}", old.serves),
            format!("{:?}", new.serves),
        ),
        (
            "gateway_log",
            format!("{:?}", old.log),
            format!("{:?}", new.log),
        ),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .map(|(key, old, new)| format!("{key}: {old} → {new}"))
    .collect()
}

/// One `key: old → new` line per cap that changed.
fn rate_changes(old: &RateLimits, new: &RateLimits) -> Vec<String> {
    let show = |rate: Option<u64>| match rate {
        Some(rate) => format!("{}/s", kith_base::ByteSize(rate)),
        None => "no cap".to_owned(),
    };
    [
        ("max_upload", old.upload, new.upload),
        ("max_download", old.download, new.download),
        (
            "max_upload_per_peer",
            old.upload_per_peer,
            new.upload_per_peer,
        ),
        (
            "max_download_per_peer",
            old.download_per_peer,
            new.download_per_peer,
        ),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .map(|(key, old, new)| format!("{key}: {} → {}", show(old), show(new)))
    .collect()
}

/// The keys of settings that differ between `old` and `new` and take
/// effect only at the next start.
fn needing_restart(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    // The settings' types are compared by their `Debug` form: several are
    // libp2p or nested settings types without `PartialEq`, and a reload is
    // rare enough that formatting them costs nothing.
    macro_rules! differing {
        ($($field:ident => $key:literal),* $(,)?) => {{
            let mut keys = Vec::new();
            $(
                if format!("{:?}", old.$field) != format!("{:?}", new.$field) {
                    keys.push($key);
                }
            )*
            keys
        }};
    }
    let mut keys = differing!(
        listen => "listen",
        bootstrap => "bootstrap",
        mdns => "mdns",
        relay => "relay",
        external => "external",
        relays => "relays",
        api => "api",
        gateway => "gateway",
        quota => "quota",
        friends => "friends (inbox, accept, mail_check_secs, mail_expiry_days)",
        upkeep => "upkeep (lease, repair, repair_interval, repair_rate, scrub_rate)",
        names => "names (mirror_check, name_republish)",
        feeds => "feeds (feed_check, feed_attachments)",
        relay_limits => "relay limits (relay_circuit_bytes, relay_circuit_time, relay_circuits…)",
        reachability => "reachability (auto_relays, autonat_private_addresses, reachability)",
    );
    if old.peer_limits.max_connections_per_peer != new.peer_limits.max_connections_per_peer {
        keys.push("max_connections_per_peer");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_caps_are_reported_with_old_and_new() {
        let old = RateLimits::default();
        let mut new = RateLimits::default();
        new.upload = Some(10 << 20);
        assert_eq!(
            rate_changes(&old, &new),
            vec!["max_upload: no cap → 10.0 MiB/s".to_owned()]
        );
        assert!(rate_changes(&new, &new).is_empty());
    }

    #[test]
    fn gateway_changes_name_each_setting() {
        let old = GatewayLimits::default();
        let mut new = old;
        new.requests_per_second = Some(5);
        new.max_upload_per_client = Some(1 << 20);
        new.serves = crate::config::GatewayServes::Mirrored;
        assert_eq!(
            gateway_changes(&old, &new),
            vec![
                "gateway_rate: no cap → 5/s".to_owned(),
                "gateway_max_upload_per_client: no cap → 1.0 MiB/s".to_owned(),
                "gateway_serves: Everything → Mirrored".to_owned(),
            ]
        );
        assert!(gateway_changes(&new, &new).is_empty());
    }

    #[test]
    fn settings_that_wait_for_a_restart_are_named() {
        let old = NodeConfig::default();
        let mut new = old.clone();
        assert!(needing_restart(&old, &new).is_empty());
        new.mdns = !old.mdns;
        new.quota = Some(kith_base::ByteSize(1 << 30));
        assert_eq!(needing_restart(&old, &new), vec!["mdns", "quota"]);
    }
}
