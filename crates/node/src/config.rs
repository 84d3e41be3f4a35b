//! Node settings: defaults, the `config.toml` file, and command-line flags.
//!
//! The same settings can come from three places, later ones winning:
//! built-in defaults, `DIR/config.toml`, and `kith up` flags. List settings
//! (listen and bootstrap addresses) given on the command line replace the
//! file's list rather than adding to it, so a flag always means exactly what
//! it says. `kith up` reads the file again on `SIGHUP` and applies what
//! can change live ([`crate::Reload`]).
//!
//! ```toml
//! # DIR/config.toml — every key is optional
//! listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
//! bootstrap = ["/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…"]
//! mdns = true
//! relay = true          # offer to relay for others when reachable
//! relay_circuit_bytes = "1GiB"  # most bytes one relayed connection carries
//! relay_circuit_time = "1h"     # longest a relayed connection lasts
//! relay_circuits = 16           # relayed connections at once [per peer: relay_circuits_per_peer = 4]
//! external = ["/ip4/198.51.100.4/tcp/4001"]   # where others can reach us
//! relays = ["/ip4/198.51.100.4/tcp/4001/p2p/12D3KooW…"]  # listen through these
//! auto_relays = 2            # relays picked among peers when behind NAT (0: none)
//! autonat_private_addresses = false  # let AutoNAT test 10.x/192.168.x addresses too
//! reachability = "auto"      # or "private": behind NAT for sure, pick relays at once
//! max_upload = "10MiB"       # bytes per second sent, all peers together [no cap]
//! max_download = "20MiB"     # received [no cap]; per peer: max_upload_per_peer, max_download_per_peer
//! quota_per_peer = "10%"     # of the quota, that one peer's shares may take ["25%"]; or a size, or "none"
//! max_connections_per_peer = 4  # connections with one peer at once [4; at least 2]
//! mailbox_letters_per_peer = 100  # letters held for offline peers from one sender [128]
//! mailbox_bytes_per_peer = "1MiB" # bytes of those letters from one sender ["4MiB"]
//! api = "127.0.0.1:5050"
//! gateway = "127.0.0.1:8080"  # the HTTP gateway for browsers [127.0.0.1, any port]
//! gateway_rate = 20          # requests per second per client address [20 when public, else no limit; 0: none]
//! gateway_max_response = "1GiB" # largest file the gateway sends whole [no cap]
//! gateway_max_upload_per_client = "2MiB" # bytes per second to one client address [no cap]
//! gateway_serves = "mirrored" # only what this node mirrors ["everything"]
//! gateway_log = "requests"   # one line per request; "requests-and-addresses" adds the client ["off"]
//! quota = "50G"
//! inbox = "/home/me/Inbox"   # where files from friends land [DIR/inbox]
//! accept = "friends"         # letters from friends only ["anyone"]
//! mail_check_secs = 60       # how often to check the mailbox
//! mail_expiry_days = 14      # how long mail for an offline friend is kept
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use kith_base::ByteSize;
use kith_net::{Multiaddr, parse_multiaddr};
use serde::Deserialize;

use crate::files::UpkeepSettings;
use crate::friends::FriendSettings;

/// The file in the data folder that holds the node's settings.
pub const CONFIG_FILE: &str = "config.toml";

/// Everything a node needs to start, after defaults, file and flags.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Addresses to listen on; port 0 picks a free port.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (each ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// Relay for peers that cannot be reached directly (when reachable).
    pub relay: bool,
    /// Addresses at which others can reach this node (a public address or a
    /// forwarded port); announced to peers, and they make the relay server
    /// available.
    pub external: Vec<Multiaddr>,
    /// Relays to listen through (each ending in `/p2p/<relay id>`), for a
    /// node that others cannot reach directly.
    pub relays: Vec<Multiaddr>,
    /// Where the HTTP API listens.
    pub api: SocketAddr,
    /// Where the HTTP gateway (published content for browsers, no token,
    /// read-only) listens; a port of its own, never the API's origin.
    pub gateway: SocketAddr,
    /// Most bytes of other peers' shares this node stores; `None` picks a
    /// share of the free disk when the store opens.
    pub quota: Option<ByteSize>,
    /// Connection idle timeout, ping interval and DHT refresh. Not in the
    /// settings file: the defaults suit a node on its own machine, and only
    /// simulations of many nodes in one process (`kith-testnet`) change them.
    pub timing: kith_net::Timing,
    /// One-way delay on every connection of the in-process memory
    /// transport (see [`kith_net::NetConfig::simulated_latency`]); zero by
    /// default. Not in the settings file: only simulations use it.
    pub simulated_latency: std::time::Duration,
    /// Most established connections at once, when not the network
    /// layer's default ([`kith_net::ConnectionLimits::max_established`]).
    /// Not in the settings file: simulations cap it to make a few hundred
    /// nodes route like a big network, where no node is connected to
    /// every other.
    pub max_connections: Option<u32>,
    /// Messages, files from friends and mailboxes.
    pub friends: FriendSettings,
    /// Leases, repair and scrub.
    pub upkeep: UpkeepSettings,
    /// Names: validity, republishing, mirrors.
    pub names: crate::NameSettings,
    /// Feeds: how often followed feeds are fetched, limits.
    pub feeds: crate::FeedSettings,
    /// What this node's relay server gives others: circuits, bytes, time.
    pub relay_limits: kith_net::RelayLimits,
    /// AutoNAT and the relays picked when behind NAT.
    pub reachability: kith_net::ReachabilitySettings,
    /// Caps on bytes per second sent and received (none by default).
    pub rate_limits: kith_net::RateLimits,
    /// What any one peer may take of this node: its part of the quota and
    /// connections at once (the mailbox's are in `friends.mail_limits`).
    pub peer_limits: PeerLimits,
    /// What one client of the gateway may ask: requests per second and
    /// the largest response. Public gateways get a request rate by default.
    pub gateway_limits: GatewayLimits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                fixed("/ip4/0.0.0.0/tcp/0"),
                fixed("/ip4/0.0.0.0/udp/0/quic-v1"),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            relay: true,
            external: Vec::new(),
            relays: Vec::new(),
            api: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            gateway: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            quota: None,
            timing: kith_net::Timing::default(),
            simulated_latency: std::time::Duration::ZERO,
            max_connections: None,
            friends: FriendSettings::default(),
            upkeep: UpkeepSettings::default(),
            names: crate::NameSettings::default(),
            feeds: crate::FeedSettings::default(),
            relay_limits: kith_net::RelayLimits::default(),
            reachability: kith_net::ReachabilitySettings::default(),
            rate_limits: kith_net::RateLimits::default(),
            peer_limits: PeerLimits::default(),
            gateway_limits: GatewayLimits::default(),
        }
    }
}

/// Reads the lease, repair, scrub, mirror and name keys of `config.toml`.
fn background_settings(
    file: &ConfigFile,
    upkeep: &mut UpkeepSettings,
    names: &mut crate::NameSettings,
    feeds: &mut crate::FeedSettings,
) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Value {
        source_name: CONFIG_FILE.to_owned(),
        message: format!("{key}: {message}"),
    };
    let duration = |key: &str, text: &str| {
        humantime::parse_duration(text.trim()).map_err(|error| {
            invalid(
                key,
                format!(
                    "{text:?} is not a duration ({error}); write e.g. \"30d\", \"10m\" or \"90s\""
                ),
            )
        })
    };
    let rate = |key: &str, text: &str| {
        text.trim()
            .trim_end_matches("/s")
            .parse::<ByteSize>()
            .map(|size| size.0)
            .map_err(|error| {
                invalid(
                    key,
                    format!("{error} (a rate is bytes per second, e.g. \"32MiB\")"),
                )
            })
    };
    if let Some(text) = &file.lease {
        let lease = duration("lease", text)?;
        if lease < std::time::Duration::from_secs(2) || lease > crate::files::MAX_LEASE {
            return Err(invalid(
                "lease",
                format!(
                    "{text:?} is outside what holders accept: from 2 seconds to {} days",
                    crate::files::MAX_LEASE.as_secs() / 86_400
                ),
            ));
        }
        upkeep.lease = lease;
    }
    if let Some(repair) = file.repair {
        upkeep.repair = repair;
    }
    if let Some(text) = &file.repair_interval {
        let interval = duration("repair_interval", text)?;
        if interval < std::time::Duration::from_secs(1) {
            return Err(invalid("repair_interval", "must be at least 1s".to_owned()));
        }
        upkeep.repair_interval = interval;
    }
    for (key, value, slot) in [
        ("repair_rate", &file.repair_rate, &mut upkeep.repair_rate),
        ("scrub_rate", &file.scrub_rate, &mut upkeep.scrub_rate),
    ] {
        if let Some(text) = value {
            let bytes = rate(key, text)?;
            if bytes < 4096 {
                return Err(invalid(key, "must be at least 4KiB per second".to_owned()));
            }
            *slot = bytes;
        }
    }
    for (key, value, slot) in [
        (
            "mirror_check",
            &file.mirror_check,
            &mut names.mirror_check_every,
        ),
        (
            "name_republish",
            &file.name_republish,
            &mut names.republish_every,
        ),
        ("feed_check", &file.feed_check, &mut feeds.check_every),
    ] {
        if let Some(text) = value {
            let interval = duration(key, text)?;
            if interval < std::time::Duration::from_secs(1) {
                return Err(invalid(key, "must be at least 1s".to_owned()));
            }
            *slot = interval;
        }
    }
    if let Some(text) = &file.feed_attachments {
        feeds.attachment_bytes = text
            .trim()
            .parse::<ByteSize>()
            .map_err(|error| {
                invalid(
                    "feed_attachments",
                    format!("{error} (a size, e.g. \"256MiB\", or \"0\" for none)"),
                )
            })?
            .0;
    }
    Ok(())
}

/// Reads the relay server's limits from `config.toml`.
fn relay_settings(
    file: &ConfigFile,
    limits: &mut kith_net::RelayLimits,
) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Value {
        source_name: CONFIG_FILE.to_owned(),
        message: format!("{key}: {message}"),
    };
    if let Some(text) = &file.relay_circuit_bytes {
        let bytes = text
            .trim()
            .parse::<ByteSize>()
            .map_err(|error| invalid("relay_circuit_bytes", format!("{error} (e.g. \"1GiB\")")))?
            .0;
        if bytes < 64 << 10 {
            return Err(invalid(
                "relay_circuit_bytes",
                "must be at least 64KiB: less cannot carry a connection's handshakes".to_owned(),
            ));
        }
        limits.max_circuit_bytes = bytes;
    }
    if let Some(text) = &file.relay_circuit_time {
        let time = humantime::parse_duration(text.trim()).map_err(|error| {
            invalid(
                "relay_circuit_time",
                format!("{text:?} is not a duration ({error}); write e.g. \"1h\" or \"10m\""),
            )
        })?;
        if time < std::time::Duration::from_secs(10) {
            return Err(invalid(
                "relay_circuit_time",
                "must be at least 10s".to_owned(),
            ));
        }
        limits.max_circuit_duration = time;
    }
    for (key, value, slot) in [
        (
            "relay_circuits",
            file.relay_circuits,
            &mut limits.max_circuits,
        ),
        (
            "relay_circuits_per_peer",
            file.relay_circuits_per_peer,
            &mut limits.max_circuits_per_peer,
        ),
        (
            "relay_reservations",
            file.relay_reservations,
            &mut limits.max_reservations,
        ),
    ] {
        if let Some(count) = value {
            if !(1..=4096).contains(&count) {
                return Err(invalid(key, "must be from 1 to 4096".to_owned()));
            }
            *slot = count;
        }
    }
    Ok(())
}

/// Reads the rate caps: `--max-upload`/`--max-download` over the file's
/// `max_upload`/`max_download`, and the file's per-peer caps. `"0"` or
/// `"none"` is no cap.
fn rate_settings(
    file: &ConfigFile,
    flags: &Flags,
    limits: &mut kith_net::RateLimits,
) -> Result<(), ConfigError> {
    /// Less than this per second cannot carry a connection's pings and
    /// handshakes in good time.
    const SLOWEST: u64 = 16 << 10;
    let parse = |origin: &str, text: &str| -> Result<Option<u64>, ConfigError> {
        let text = text.trim();
        if text == "0" || text.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let invalid = |message: String| ConfigError::Value {
            source_name: origin.to_owned(),
            message,
        };
        let bytes = text
            .trim_end_matches("/s")
            .parse::<ByteSize>()
            .map_err(|error| {
                invalid(format!(
                    "{error} (a rate is bytes per second, e.g. \"10MiB\"; \"0\" for no cap)"
                ))
            })?
            .0;
        if bytes < SLOWEST {
            return Err(invalid(format!(
                "{text:?} is too slow: at least 16KiB per second (or \"0\" for no cap)"
            )));
        }
        Ok(Some(bytes))
    };
    for (flag, flag_name, key, value, slot) in [
        (
            &flags.max_upload,
            "--max-upload",
            "max_upload",
            &file.max_upload,
            &mut limits.upload,
        ),
        (
            &flags.max_download,
            "--max-download",
            "max_download",
            &file.max_download,
            &mut limits.download,
        ),
        (
            &None,
            "",
            "max_upload_per_peer",
            &file.max_upload_per_peer,
            &mut limits.upload_per_peer,
        ),
        (
            &None,
            "",
            "max_download_per_peer",
            &file.max_download_per_peer,
            &mut limits.download_per_peer,
        ),
    ] {
        if let Some(text) = flag {
            *slot = parse(flag_name, text)?;
        } else if let Some(text) = value {
            *slot = parse(&format!("{CONFIG_FILE}: {key}"), text)?;
        }
    }
    Ok(())
}

/// What any one peer may take of this node (see [`NodeConfig::peer_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerLimits {
    /// The part of the store quota the shares leased by one peer may
    /// take; a put past it is refused and the uploader places the share
    /// on another peer.
    pub quota_per_peer: QuotaShare,
    /// Most established connections with one peer at once (a relayed and
    /// a direct one during hole punching need two).
    pub max_connections_per_peer: u32,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            quota_per_peer: QuotaShare::Percent(DEFAULT_QUOTA_PER_PEER_BP),
            max_connections_per_peer: kith_net::ConnectionLimits::default()
                .max_established_per_peer,
        }
    }
}

/// The default part of the quota one peer may take: 25 %, in basis points.
/// A quarter: a stranger cannot take the whole store, and a small group of
/// friends (three or four nodes holding each other's files) is not held
/// back.
pub const DEFAULT_QUOTA_PER_PEER_BP: u32 = 2_500;

/// How much of the quota one peer may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaShare {
    /// A part of the quota, in basis points (1/100 of a percent): 1000 is
    /// 10 %. With no `quota` set, the quota is the one the node picks (a
    /// tenth of the free disk, at most 100 GiB), and this is a part of it.
    Percent(u32),
    /// At most this many bytes.
    Bytes(u64),
    /// No cap: any one peer may fill the quota.
    Unlimited,
}

impl QuotaShare {
    /// The cap in bytes under a quota of `quota` bytes (`u64::MAX`: none).
    pub fn of(self, quota: u64) -> u64 {
        match self {
            Self::Percent(bp) => {
                u64::try_from(u128::from(quota) * u128::from(bp) / 10_000).unwrap_or(u64::MAX)
            }
            Self::Bytes(bytes) => bytes,
            Self::Unlimited => u64::MAX,
        }
    }
}

/// Why a `quota_per_peer` value is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaShareError {
    /// Ends in `%` but is not a number before it.
    #[error("{0:?} is not a percentage; write e.g. \"10%\" or \"2.5%\"")]
    NotAPercentage(String),
    /// A percentage outside 0.01 % to 100 %.
    #[error("{0:?}: a percentage from 0.01% to 100% (or \"none\" for no cap)")]
    OutOfRange(String),
    /// Neither a percentage nor a size.
    #[error(
        "{0:?} is neither a percentage of the quota such as \"10%\", a size such as \"5GiB\", \
         nor \"none\""
    )]
    NotASize(String),
}

impl std::str::FromStr for QuotaShare {
    type Err = QuotaShareError;

    /// `"10%"`, `"2.5%"`, a size such as `"5GiB"`, or `"none"` (also `"0"`).
    fn from_str(text: &str) -> Result<Self, QuotaShareError> {
        let text = text.trim();
        if text == "0" || text.eq_ignore_ascii_case("none") {
            return Ok(Self::Unlimited);
        }
        if let Some(number) = text.strip_suffix('%') {
            let percent: f64 = number
                .trim()
                .parse()
                .map_err(|_| QuotaShareError::NotAPercentage(text.to_owned()))?;
            if !(0.01..=100.0).contains(&percent) {
                return Err(QuotaShareError::OutOfRange(text.to_owned()));
            }
            return Ok(Self::Percent((percent * 100.0).round() as u32));
        }
        let bytes = text
            .parse::<ByteSize>()
            .map_err(|_| QuotaShareError::NotASize(text.to_owned()))?;
        Ok(Self::Bytes(bytes.0))
    }
}

/// What the gateway serves, what one client address may ask of it, and
/// what it logs. All of it changes live on `SIGHUP`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayLimits {
    /// Requests per second from one client address (an IPv6 client's /64),
    /// with a burst of twice as many; `None`: no limit.
    pub requests_per_second: Option<u32>,
    /// Largest file sent whole; a `Range` request for a part within it is
    /// served. `None`: no cap.
    pub max_response: Option<u64>,
    /// Bytes per second sent to one client address, all its requests
    /// together; `None`: no cap.
    pub max_upload_per_client: Option<u64>,
    /// Everything a capability or name reaches, or only what is mirrored.
    pub serves: GatewayServes,
    /// Whether requests are logged, and with the client's address.
    pub log: GatewayLog,
}

/// What a gateway serves (`gateway_serves`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GatewayServes {
    /// Anything a capability or a name reaches, and the feeds held here.
    #[default]
    Everything,
    /// Only the names and capabilities this node mirrors (`kith mirror`):
    /// a community server that hosts its members' sites and is not an
    /// open door to the whole network.
    Mirrored,
}

/// What the gateway logs (`gateway_log`). Nothing by default: a log of
/// who read what is personal data, kept only where the operator asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GatewayLog {
    /// No line per request.
    #[default]
    Off,
    /// Method, path, status, bytes and time of each request; no address.
    Requests,
    /// The same with the client's address.
    RequestsAndAddresses,
}

/// Requests per second per client for a gateway that listens beyond
/// loopback, unless `gateway_rate` says otherwise: a browser opening a
/// page with its stylesheets, scripts and images stays well under it.
pub const DEFAULT_PUBLIC_GATEWAY_RATE: u32 = 20;

/// Reads `gateway_rate`, `gateway_max_response`,
/// `gateway_max_upload_per_client`, `gateway_serves` and `gateway_log`
/// (after the gateway's address, whose reach decides the default rate).
fn gateway_limit_settings(file: &ConfigFile, config: &mut NodeConfig) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Value {
        source_name: CONFIG_FILE.to_owned(),
        message: format!("{key}: {message}"),
    };
    config.gateway_limits.requests_per_second = match file.gateway_rate {
        Some(0) => None,
        Some(rate) if rate > 100_000 => {
            return Err(invalid(
                "gateway_rate",
                format!("{rate}: at most 100000 (0: no limit)"),
            ));
        }
        Some(rate) => Some(rate),
        None if !config.gateway.ip().is_loopback() => Some(DEFAULT_PUBLIC_GATEWAY_RATE),
        None => None,
    };
    if let Some(text) = &file.gateway_max_response {
        let size = text
            .trim()
            .parse::<ByteSize>()
            .map_err(|error| invalid("gateway_max_response", error.to_string()))?;
        config.gateway_limits.max_response = (size.0 > 0).then_some(size.0);
    }
    if let Some(text) = &file.gateway_max_upload_per_client {
        let size = text
            .trim()
            .parse::<ByteSize>()
            .map_err(|error| invalid("gateway_max_upload_per_client", error.to_string()))?;
        config.gateway_limits.max_upload_per_client = (size.0 > 0).then_some(size.0);
    }
    if let Some(text) = &file.gateway_serves {
        config.gateway_limits.serves = match text.trim() {
            "everything" => GatewayServes::Everything,
            "mirrored" => GatewayServes::Mirrored,
            other => {
                return Err(invalid(
                    "gateway_serves",
                    format!("{other:?}: \"everything\" or \"mirrored\""),
                ));
            }
        };
    }
    if let Some(text) = &file.gateway_log {
        config.gateway_limits.log = match text.trim() {
            "off" => GatewayLog::Off,
            "requests" => GatewayLog::Requests,
            "requests-and-addresses" => GatewayLog::RequestsAndAddresses,
            other => {
                return Err(invalid(
                    "gateway_log",
                    format!("{other:?}: \"off\", \"requests\" or \"requests-and-addresses\""),
                ));
            }
        };
    }
    Ok(())
}

/// Reads the per-peer limits: `quota_per_peer`, `max_connections_per_peer`,
/// `mailbox_letters_per_peer` and `mailbox_bytes_per_peer`.
fn peer_limit_settings(file: &ConfigFile, config: &mut NodeConfig) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Value {
        source_name: CONFIG_FILE.to_owned(),
        message: format!("{key}: {message}"),
    };
    if let Some(text) = &file.quota_per_peer {
        config.peer_limits.quota_per_peer = text
            .parse()
            .map_err(|error: QuotaShareError| invalid("quota_per_peer", error.to_string()))?;
    }
    if let Some(count) = file.max_connections_per_peer {
        if !(2..=64).contains(&count) {
            return Err(invalid(
                "max_connections_per_peer",
                format!(
                    "{count}: from 2 to 64 (a relayed and a direct connection to the same peer \
                     are both needed while hole punching)"
                ),
            ));
        }
        config.peer_limits.max_connections_per_peer = count;
    }
    if let Some(count) = file.mailbox_letters_per_peer {
        if !(1..=100_000).contains(&count) {
            return Err(invalid(
                "mailbox_letters_per_peer",
                format!("{count}: from 1 to 100000"),
            ));
        }
        config.friends.mail_limits.per_sender_items = count;
    }
    if let Some(text) = &file.mailbox_bytes_per_peer {
        let bytes = text
            .trim()
            .parse::<ByteSize>()
            .map_err(|error| invalid("mailbox_bytes_per_peer", format!("{error} (e.g. \"4MiB\")")))?
            .0;
        let largest = kith_base::letter::MAX_SEALED_LETTER as u64;
        if bytes < largest {
            return Err(invalid(
                "mailbox_bytes_per_peer",
                format!(
                    "{text:?} is less than one letter can be ({}); at least that",
                    ByteSize(largest)
                ),
            ));
        }
        config.friends.mail_limits.per_sender_bytes = bytes;
    }
    Ok(())
}

#[allow(clippy::expect_used)]
fn fixed(text: &str) -> Multiaddr {
    text.parse().expect("a built-in address parses")
}

/// Why the settings are not usable. Messages name the file or flag.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("{path} is not a valid kith config: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("{source_name}: {message}")]
    Value {
        /// Where the value came from: the file, or the flag.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The settings as written in `config.toml`; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listen addresses.
    pub listen: Option<Vec<String>>,
    /// Bootstrap addresses.
    pub bootstrap: Option<Vec<String>>,
    /// mDNS on or off.
    pub mdns: Option<bool>,
    /// Relay server on or off.
    pub relay: Option<bool>,
    /// External addresses.
    pub external: Option<Vec<String>>,
    /// Relays to listen through.
    pub relays: Option<Vec<String>>,
    /// Relays picked among peers when AutoNAT finds this node private.
    pub auto_relays: Option<usize>,
    /// Whether AutoNAT tests private addresses too.
    pub autonat_private_addresses: Option<bool>,
    /// `auto` (AutoNAT decides) or `private` (behind NAT for sure).
    pub reachability: Option<String>,
    /// Most bytes per second sent, all peers together, e.g. `10MiB`.
    pub max_upload: Option<String>,
    /// Most bytes per second received, all peers together.
    pub max_download: Option<String>,
    /// Most bytes per second sent to any one peer.
    pub max_upload_per_peer: Option<String>,
    /// Most bytes per second received from any one peer.
    pub max_download_per_peer: Option<String>,
    /// The part of the quota the shares leased by any one peer may take:
    /// `"10%"`, a size such as `"5GiB"`, or `"none"`.
    pub quota_per_peer: Option<String>,
    /// Most connections with any one peer at once.
    pub max_connections_per_peer: Option<u32>,
    /// Most letters held for offline peers from any one sender.
    pub mailbox_letters_per_peer: Option<u64>,
    /// Most bytes of letters held for offline peers from any one sender.
    pub mailbox_bytes_per_peer: Option<String>,
    /// Requests per second one client address may send the gateway (`0`:
    /// no limit) [20 when the gateway listens beyond loopback, else none].
    pub gateway_rate: Option<u32>,
    /// Largest file the gateway sends whole, e.g. `1GiB` (a range within
    /// it is fine) [no cap].
    pub gateway_max_response: Option<String>,
    /// Bytes per second the gateway sends one client address, e.g. `2MiB`
    /// [no cap].
    pub gateway_max_upload_per_client: Option<String>,
    /// `everything` (the default) or `mirrored`.
    pub gateway_serves: Option<String>,
    /// `off` (the default), `requests` or `requests-and-addresses`.
    pub gateway_log: Option<String>,
    /// API address, `HOST:PORT`.
    pub api: Option<String>,
    /// Gateway address, `HOST:PORT`.
    pub gateway: Option<String>,
    /// Storage quota, e.g. `50G`.
    pub quota: Option<String>,
    /// Where files from friends land.
    pub inbox: Option<std::path::PathBuf>,
    /// Whose letters to accept: `anyone` or `friends`.
    pub accept: Option<String>,
    /// Seconds between mailbox checks.
    pub mail_check_secs: Option<u64>,
    /// Days mail left for an offline friend is kept.
    pub mail_expiry_days: Option<u64>,
    /// How long holders keep a put's shares without renewal, e.g. `30d`.
    pub lease: Option<String>,
    /// Whether the node repairs on its own (default true).
    pub repair: Option<bool>,
    /// How often the node checks the stripes it holds, e.g. `10m`.
    pub repair_interval: Option<String>,
    /// Most repair traffic per second, e.g. `32MiB`.
    pub repair_rate: Option<String>,
    /// Most bytes per second the background scrub reads, e.g. `4MiB`.
    pub scrub_rate: Option<String>,
    /// How often each mirror looks for a new version, e.g. `30s`.
    pub mirror_check: Option<String>,
    /// How often the node stores its names' and mirrors' records again,
    /// e.g. `1h`.
    pub name_republish: Option<String>,
    /// How often each followed feed is fetched again, e.g. `30s`.
    pub feed_check: Option<String>,
    /// Most bytes of attachments copied for one followed feed, e.g.
    /// `256MiB` (`0`: none).
    pub feed_attachments: Option<String>,
    /// Most bytes one relayed connection through this node may carry, e.g.
    /// `1GiB`.
    pub relay_circuit_bytes: Option<String>,
    /// Longest a relayed connection through this node may last, e.g. `1h`.
    pub relay_circuit_time: Option<String>,
    /// Relayed connections through this node at once.
    pub relay_circuits: Option<usize>,
    /// Relayed connections through this node per peer at once.
    pub relay_circuits_per_peer: Option<usize>,
    /// Peers listening through this node at once (reservations).
    pub relay_reservations: Option<usize>,
}

impl ConfigFile {
    /// Reads `config.toml` from `dir`; a missing file is an empty config.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|error| ConfigError::Syntax {
            path: path.display().to_string(),
            message: error.to_string().trim().replace('\n', " "),
        })
    }
}

/// Settings given on the command line; `None`/empty means "not given".
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen`, repeatable.
    pub listen: Vec<String>,
    /// `--bootstrap`, repeatable.
    pub bootstrap: Vec<String>,
    /// `--no-mdns`.
    pub no_mdns: bool,
    /// `--no-relay`.
    pub no_relay: bool,
    /// `--external`, repeatable.
    pub external: Vec<String>,
    /// `--relay`, repeatable.
    pub relays: Vec<String>,
    /// `--api HOST:PORT`.
    pub api: Option<String>,
    /// `--gateway HOST:PORT`.
    pub gateway: Option<String>,
    /// `--quota SIZE`.
    pub quota: Option<String>,
    /// `--max-upload RATE`.
    pub max_upload: Option<String>,
    /// `--max-download RATE`.
    pub max_download: Option<String>,
}

/// A `HOST:PORT` setting: the flag `flag_name` if given, else the settings
/// file's; `example_port` goes in the error.
fn socket_setting(
    flag: Option<&String>,
    file: Option<&String>,
    flag_name: &str,
    example_port: u16,
) -> Result<Option<SocketAddr>, ConfigError> {
    let (text, origin) = match (flag, file) {
        (Some(text), _) => (text, flag_name),
        (None, Some(text)) => (text, CONFIG_FILE),
        (None, None) => return Ok(None),
    };
    text.trim().parse().map(Some).map_err(|_| ConfigError::Value {
        source_name: origin.to_owned(),
        message: format!(
            "{text:?} is not an address and port; write HOST:PORT, e.g. 127.0.0.1:{example_port}"
        ),
    })
}

impl NodeConfig {
    /// Defaults, overridden by the file, overridden by the flags.
    pub fn resolve(file: &ConfigFile, flags: &Flags) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let file_name = CONFIG_FILE.to_owned();
        if let Some(listen) = &file.listen {
            config.listen = addrs(listen, &file_name)?;
        }
        if !flags.listen.is_empty() {
            config.listen = addrs(&flags.listen, "--listen")?;
        }
        if let Some(bootstrap) = &file.bootstrap {
            config.bootstrap = addrs(bootstrap, &file_name)?;
        }
        if !flags.bootstrap.is_empty() {
            config.bootstrap = addrs(&flags.bootstrap, "--bootstrap")?;
        }
        if let Some(external) = &file.external {
            config.external = addrs(external, &file_name)?;
        }
        if !flags.external.is_empty() {
            config.external = addrs(&flags.external, "--external")?;
        }
        if let Some(relays) = &file.relays {
            config.relays = addrs(relays, &file_name)?;
        }
        if !flags.relays.is_empty() {
            config.relays = addrs(&flags.relays, "--relay")?;
        }
        for (addrs, origin) in [(&config.bootstrap, "bootstrap"), (&config.relays, "relay")] {
            if let Some(addr) = addrs
                .iter()
                .find(|addr| kith_net::peer_id_of(addr).is_none())
            {
                return Err(ConfigError::Value {
                    source_name: origin.to_owned(),
                    message: kith_net::NetError::MissingPeerId { addr: addr.clone() }.to_string(),
                });
            }
        }
        config.mdns = file.mdns.unwrap_or(true) && !flags.no_mdns;
        config.relay = file.relay.unwrap_or(true) && !flags.no_relay;
        if let Some(count) = file.auto_relays {
            if count > 8 {
                return Err(ConfigError::Value {
                    source_name: CONFIG_FILE.to_owned(),
                    message: format!(
                        "auto_relays = {count}: at most 8 (each relay holds a connection \
                         and a reservation open)"
                    ),
                });
            }
            config.reachability.auto_relays = count;
        }
        if let Some(private) = file.autonat_private_addresses {
            config.reachability.private_addresses = private;
        }
        match file.reachability.as_deref().map(str::trim) {
            None | Some("auto") => {}
            Some("private") => config.reachability.assume_private = true,
            Some(other) => {
                return Err(ConfigError::Value {
                    source_name: CONFIG_FILE.to_owned(),
                    message: format!(
                        "reachability = {other:?}: write \"auto\" (AutoNAT decides) or \
                         \"private\" (behind a NAT for sure: pick relays at once)"
                    ),
                });
            }
        }
        if let Some(api) = socket_setting(flags.api.as_ref(), file.api.as_ref(), "--api", 5050)? {
            config.api = api;
        }
        if let Some(gateway) = socket_setting(
            flags.gateway.as_ref(),
            file.gateway.as_ref(),
            "--gateway",
            8080,
        )? {
            config.gateway = gateway;
        }
        if config.gateway.port() != 0 && config.gateway == config.api {
            return Err(ConfigError::Value {
                source_name: "--gateway".to_owned(),
                message: format!(
                    "the gateway and the API cannot share {}: published pages must never \
                     share an origin with the API",
                    config.api
                ),
            });
        }
        if let Some(quota) = flags.quota.as_ref().or(file.quota.as_ref()) {
            let origin = if flags.quota.is_some() {
                "--quota"
            } else {
                CONFIG_FILE
            };
            config.quota = Some(quota.parse().map_err(|error: kith_base::ByteSizeError| {
                ConfigError::Value {
                    source_name: origin.to_owned(),
                    message: error.to_string(),
                }
            })?);
        }
        config.friends.inbox = file.inbox.clone();
        match file.accept.as_deref().map(str::trim) {
            None | Some("anyone") => {}
            Some("friends") => config.friends.friends_only = true,
            Some(other) => {
                return Err(ConfigError::Value {
                    source_name: CONFIG_FILE.to_owned(),
                    message: format!("accept = {other:?}: write \"anyone\" or \"friends\""),
                });
            }
        }
        if let Some(secs) = file.mail_check_secs {
            if secs == 0 {
                return Err(ConfigError::Value {
                    source_name: CONFIG_FILE.to_owned(),
                    message: "mail_check_secs must be at least 1".to_owned(),
                });
            }
            config.friends.mail_check = std::time::Duration::from_secs(secs);
        }
        if let Some(days) = file.mail_expiry_days {
            if !(1..=30).contains(&days) {
                return Err(ConfigError::Value {
                    source_name: CONFIG_FILE.to_owned(),
                    message: "mail_expiry_days must be between 1 and 30".to_owned(),
                });
            }
            config.friends.mail_expiry = std::time::Duration::from_secs(days * 24 * 3600);
        }
        background_settings(
            file,
            &mut config.upkeep,
            &mut config.names,
            &mut config.feeds,
        )?;
        relay_settings(file, &mut config.relay_limits)?;
        rate_settings(file, flags, &mut config.rate_limits)?;
        peer_limit_settings(file, &mut config)?;
        gateway_limit_settings(file, &mut config)?;
        if config.listen.is_empty() {
            return Err(ConfigError::Value {
                source_name: "listen".to_owned(),
                message: "a node needs at least one listen address".to_owned(),
            });
        }
        Ok(config)
    }
}

fn addrs(texts: &[String], origin: &str) -> Result<Vec<Multiaddr>, ConfigError> {
    texts
        .iter()
        .map(|text| {
            parse_multiaddr(text).map_err(|error| ConfigError::Value {
                source_name: origin.to_owned(),
                message: error.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let file: ConfigFile = toml::from_str(
            "listen = [\"/ip4/127.0.0.1/tcp/4001\"]\nmdns = false\nquota = \"1G\"\napi = \"127.0.0.1:5050\"\n",
        )
        .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        assert_eq!(config.listen.len(), 1);
        assert!(!config.mdns);
        assert_eq!(config.quota, Some(ByteSize(1 << 30)));
        assert_eq!(config.api.port(), 5050);

        let flags = Flags {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".into(),
                "/ip4/127.0.0.1/udp/0/quic-v1".into(),
            ],
            quota: Some("2G".into()),
            ..Flags::default()
        };
        let config = NodeConfig::resolve(&file, &flags).unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.quota, Some(ByteSize(2 << 30)));
    }

    #[test]
    fn friend_settings_come_from_the_file() {
        let file: ConfigFile =
            toml::from_str("accept = \"friends\"\nmail_check_secs = 5\ninbox = \"/tmp/in\"\n")
                .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        assert!(config.friends.friends_only);
        assert_eq!(config.friends.mail_check, std::time::Duration::from_secs(5));
        assert_eq!(config.friends.inbox.as_deref(), Some(Path::new("/tmp/in")));
        let file: ConfigFile = toml::from_str("accept = \"strangers\"\n").unwrap();
        let error = NodeConfig::resolve(&file, &Flags::default()).unwrap_err();
        assert!(error.to_string().contains("friends"), "{error}");
    }

    #[test]
    fn relay_and_feed_limits_come_from_the_file() {
        let config = NodeConfig::resolve(&ConfigFile::default(), &Flags::default()).unwrap();
        assert_eq!(config.relay_limits.max_circuit_bytes, 1 << 30);
        assert_eq!(
            config.relay_limits.max_circuit_duration,
            std::time::Duration::from_secs(3600)
        );
        let file: ConfigFile = toml::from_str(
            "relay_circuit_bytes = \"200MiB\"\nrelay_circuit_time = \"10m\"\n\
             relay_circuits = 8\nrelay_circuits_per_peer = 2\nrelay_reservations = 32\n\
             feed_attachments = \"0\"\n",
        )
        .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        let limits = &config.relay_limits;
        assert_eq!(limits.max_circuit_bytes, 200 << 20);
        assert_eq!(
            limits.max_circuit_duration,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(
            (
                limits.max_circuits,
                limits.max_circuits_per_peer,
                limits.max_reservations
            ),
            (8, 2, 32)
        );
        assert_eq!(config.feeds.attachment_bytes, 0);
        for (text, says) in [
            ("relay_circuit_bytes = \"1KiB\"", "at least 64KiB"),
            ("relay_circuit_time = \"soon\"", "not a duration"),
            ("relay_circuits = 0", "from 1 to 4096"),
            ("feed_attachments = \"lots\"", "feed_attachments"),
        ] {
            let file: ConfigFile = toml::from_str(text).unwrap();
            let error = NodeConfig::resolve(&file, &Flags::default()).unwrap_err();
            assert!(error.to_string().contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn reachability_settings_come_from_the_file() {
        let config = NodeConfig::resolve(&ConfigFile::default(), &Flags::default()).unwrap();
        assert_eq!(
            config.reachability,
            kith_net::ReachabilitySettings::default()
        );
        assert_eq!(config.reachability.auto_relays, 2);
        let file: ConfigFile = toml::from_str(
            "auto_relays = 3\nautonat_private_addresses = true\nreachability = \"private\"\n",
        )
        .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        assert_eq!(config.reachability.auto_relays, 3);
        assert!(config.reachability.private_addresses);
        assert!(config.reachability.assume_private);
        for (text, says) in [
            ("auto_relays = 9", "at most 8"),
            ("reachability = \"hidden\"", "\"auto\""),
        ] {
            let file: ConfigFile = toml::from_str(text).unwrap();
            let error = NodeConfig::resolve(&file, &Flags::default()).unwrap_err();
            assert!(error.to_string().contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn rate_caps_come_from_flags_over_the_file() {
        let config = NodeConfig::resolve(&ConfigFile::default(), &Flags::default()).unwrap();
        assert!(!config.rate_limits.any());
        let file: ConfigFile = toml::from_str(
            "max_upload = \"1MiB\"\nmax_download = \"2MiB/s\"\nmax_upload_per_peer = \"256KiB\"\n",
        )
        .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        let limits = config.rate_limits;
        assert_eq!(limits.upload, Some(1 << 20));
        assert_eq!(limits.download, Some(2 << 20));
        assert_eq!(limits.upload_per_peer, Some(256 << 10));
        assert_eq!(limits.download_per_peer, None);
        let flags = Flags {
            max_upload: Some("10MiB".into()),
            max_download: Some("0".into()),
            ..Flags::default()
        };
        let config = NodeConfig::resolve(&file, &flags).unwrap();
        assert_eq!(config.rate_limits.upload, Some(10 << 20));
        assert_eq!(config.rate_limits.download, None, "0 is no cap");
        for (flags, says) in [
            (
                Flags {
                    max_upload: Some("fast".into()),
                    ..Flags::default()
                },
                "--max-upload",
            ),
            (
                Flags {
                    max_download: Some("1KiB".into()),
                    ..Flags::default()
                },
                "too slow",
            ),
        ] {
            let error = NodeConfig::resolve(&ConfigFile::default(), &flags).unwrap_err();
            assert!(error.to_string().contains(says), "{error}");
        }
    }

    #[test]
    fn bad_values_name_their_source() {
        let flags = Flags {
            listen: vec!["not-an-addr".into()],
            ..Flags::default()
        };
        let error = NodeConfig::resolve(&ConfigFile::default(), &flags).unwrap_err();
        assert!(error.to_string().starts_with("--listen:"), "{error}");
        let flags = Flags {
            api: Some("localhost".into()),
            ..Flags::default()
        };
        let error = NodeConfig::resolve(&ConfigFile::default(), &flags).unwrap_err();
        assert!(error.to_string().contains("HOST:PORT"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_errors() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join(CONFIG_FILE), "lisen = []\n").unwrap();
        let error = ConfigFile::load(temp.path()).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
        std::fs::write(temp.path().join(CONFIG_FILE), "listen = [\n").unwrap();
        assert!(ConfigFile::load(temp.path()).is_err());
        std::fs::remove_file(temp.path().join(CONFIG_FILE)).unwrap();
        assert!(ConfigFile::load(temp.path()).unwrap().listen.is_none());
    }

    #[test]
    fn a_public_gateway_gets_a_rate_per_client_by_default() {
        let resolve = |text: &str| {
            let file: ConfigFile = toml::from_str(text).unwrap();
            NodeConfig::resolve(&file, &Flags::default())
        };
        let local = resolve("").unwrap().gateway_limits;
        assert_eq!(local, GatewayLimits::default(), "no limit on loopback");
        let public = resolve("gateway = \"0.0.0.0:8080\"\n")
            .unwrap()
            .gateway_limits;
        assert_eq!(
            public.requests_per_second,
            Some(DEFAULT_PUBLIC_GATEWAY_RATE)
        );
        let open = resolve("gateway = \"0.0.0.0:8080\"\ngateway_rate = 0\n").unwrap();
        assert_eq!(open.gateway_limits.requests_per_second, None);
        let capped = resolve("gateway_rate = 5\ngateway_max_response = \"1GiB\"\n").unwrap();
        assert_eq!(capped.gateway_limits.requests_per_second, Some(5));
        assert_eq!(capped.gateway_limits.max_response, Some(1 << 30));
        let error = resolve("gateway_max_response = \"big\"\n").unwrap_err();
        assert!(
            error.to_string().contains("gateway_max_response"),
            "{error}"
        );
    }

    #[test]
    fn gateway_serves_log_and_client_rate_parse_with_clear_errors() {
        let resolve = |text: &str| {
            let file: ConfigFile = toml::from_str(text).unwrap();
            NodeConfig::resolve(&file, &Flags::default()).map(|config| config.gateway_limits)
        };
        let default = resolve("").unwrap();
        assert_eq!(default.serves, GatewayServes::Everything);
        assert_eq!(default.log, GatewayLog::Off, "no request log unless asked");
        assert_eq!(default.max_upload_per_client, None);
        let set = resolve(
            "gateway_serves = \"mirrored\"\ngateway_log = \"requests-and-addresses\"\n\
             gateway_max_upload_per_client = \"2MiB\"\n",
        )
        .unwrap();
        assert_eq!(set.serves, GatewayServes::Mirrored);
        assert_eq!(set.log, GatewayLog::RequestsAndAddresses);
        assert_eq!(set.max_upload_per_client, Some(2 << 20));
        for (text, key) in [
            ("gateway_serves = \"mine\"\n", "gateway_serves"),
            ("gateway_log = \"all\"\n", "gateway_log"),
            (
                "gateway_max_upload_per_client = \"fast\"\n",
                "gateway_max_upload_per_client",
            ),
        ] {
            let error = resolve(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn per_peer_limits_parse_with_defaults_and_clear_errors() {
        let config = NodeConfig::resolve(&ConfigFile::default(), &Flags::default()).unwrap();
        assert_eq!(config.peer_limits, PeerLimits::default());
        assert_eq!(
            config.peer_limits.quota_per_peer,
            QuotaShare::Percent(2_500)
        );
        assert_eq!(config.peer_limits.quota_per_peer.of(1 << 30), 1 << 28);
        assert!(config.peer_limits.max_connections_per_peer >= 2);
        let file: ConfigFile = toml::from_str(
            "quota_per_peer = \"2.5%\"\nmax_connections_per_peer = 3\n\
             mailbox_letters_per_peer = 100\nmailbox_bytes_per_peer = \"1MiB\"\n",
        )
        .unwrap();
        let config = NodeConfig::resolve(&file, &Flags::default()).unwrap();
        assert_eq!(config.peer_limits.quota_per_peer, QuotaShare::Percent(250));
        assert_eq!(config.peer_limits.quota_per_peer.of(1_000_000), 25_000);
        assert_eq!(config.peer_limits.max_connections_per_peer, 3);
        assert_eq!(config.friends.mail_limits.per_sender_items, 100);
        assert_eq!(config.friends.mail_limits.per_sender_bytes, 1 << 20);
        for (text, share) in [
            ("5GiB", QuotaShare::Bytes(5 << 30)),
            ("none", QuotaShare::Unlimited),
            ("0", QuotaShare::Unlimited),
            ("100%", QuotaShare::Percent(10_000)),
        ] {
            assert_eq!(text.parse::<QuotaShare>().unwrap(), share, "{text}");
        }
        assert_eq!(QuotaShare::Unlimited.of(1 << 30), u64::MAX);
        assert_eq!(QuotaShare::Percent(10_000).of(u64::MAX), u64::MAX);
        for (toml, says) in [
            ("quota_per_peer = \"lots\"", "quota_per_peer"),
            ("quota_per_peer = \"150%\"", "100%"),
            ("quota_per_peer = \"x%\"", "not a percentage"),
            ("max_connections_per_peer = 1", "hole punching"),
            ("mailbox_letters_per_peer = 0", "mailbox_letters_per_peer"),
            ("mailbox_bytes_per_peer = \"1KiB\"", "one letter"),
        ] {
            let file: ConfigFile = toml::from_str(toml).unwrap();
            let error = NodeConfig::resolve(&file, &Flags::default()).unwrap_err();
            assert!(error.to_string().contains(says), "{toml}: {error}");
            assert!(error.to_string().starts_with(CONFIG_FILE), "{error}");
        }
    }
}
