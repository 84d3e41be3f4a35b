//! The kith node as a library.
//!
//! Everything a running node owns lives here, so the command line, the HTTP
//! API and the tests all drive the same code: a [`Node`], started with a
//! config and stopped with [`Node::shutdown`], and its sub-handles
//! [`Node::files`], [`Node::friends`], [`Node::names`] and [`Node::upkeep`].
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | `node` | [`Node`]: the cloneable facade; start, peers, status, metrics, the stop |
//! | `status` | [`NodeStatus`] and [`PeerInfo`]: what `kith status` and `kith peers` show, as plain data |
//! | [`handles`] | the sub-handles: files (put, get, stat, rm), friends (messages, files, inbox), upkeep (counters, repair now) |
//! | `lifecycle` | the staged stop: no new streams, a grace for requests under way, then the network |
//! | [`protocols`] | one room per protocol (share, direct, mailbox, names, feeds): wire, server, client |
//! | `files` | files on the network: placement, locating holders, announcing, put, get, stat, rm, swarming, and the upkeep (leases, repair, scrub) |
//! | [`friends`] | petnames, direct messages and files, offline mailboxes, the inbox |
//! | `names` | names: publish, resolve, republish, and mirrors |
//! | `feeds` | feeds: post, follow, replicate, the timeline |
//! | [`config`] | [`NodeConfig`]: defaults, `config.toml` and flags, merged |
//! | `reload` | [`Reload`]: settings read again on `SIGHUP`, applied live where they can be |
//! | [`data_dir`] | [`DataDir`]: the node's folder (identity, lock, API token), written atomically, secrets 0600 |
//! | [`peer_table`] | the saved peer table, to rejoin after a restart |
//! | `side_db` | old `messages.redb` and `owned.redb` imported into the store at start, or moved aside when damaged |
//! | `metrics` | the Prometheus text of `GET /v1/metrics` |
//! | `slots` | bounds on the inbound streams a protocol serves, in all and per peer |
//! | `chunk_reader` | [`ChunkReader`]: a blocking `Read` over chunks from a channel, for the encoder |
//! | `fuzzing` | doors to private decoders for `fuzz/` (hidden, not part of the API) |
//!
//! ```no_run
//! # async fn demo() -> Result<(), kith_node::NodeError> {
//! use kith_node::{DataDir, Node, NodeConfig};
//!
//! let node = Node::start(DataDir::new("/tmp/kith-example"), NodeConfig::default()).await?;
//! println!("{} listens on {:?}", node.peer_id(), node.listen_addrs().await?);
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod chunk_reader;
pub mod config;
pub mod data_dir;
mod feeds;
mod files;
pub mod friends;
#[doc(hidden)]
pub mod fuzzing;
pub mod handles;
mod lifecycle;
mod metrics;
mod names;
mod node;
pub mod peer_table;
pub mod protocols;
mod reload;
mod side_db;
mod slots;
mod status;

pub use chunk_reader::ChunkReader;
pub use config::{ConfigError, ConfigFile, Flags, NodeConfig};
pub use data_dir::{DataDir, DataDirError};
pub use files::{
    CopyReport, CorruptShareReport, Detected, Download, Faults, GetError, GetReport, Health,
    MAX_LEASE, OWNED_FILE, PathError, PutError, PutReport, RmReport, StatReport, StripeStat,
    UpkeepCounters, UpkeepSettings,
};
#[cfg(feature = "testing")]
pub use files::{ProbeError, ProbeShare};
pub use friends::address_book::{AddressBook, FriendError};
pub use friends::db::{Content, FileState, InboxEntry, Via};
pub use friends::{Delivery, FriendSettings, InboxItem, RefusalReason, SendError};
pub use kith_base::{Capability, CapabilityKind, CapabilityPath, Name, NameError, NameRecord};
pub use kith_codec::folder::check_entry_name as check_folder_entry_name;
pub use kith_codec::{FileMeta, Folder, FolderEntry, FolderError, Manifest, Params};
// The network types the node's callers name (the API parses addresses and
// peer ids and maps network errors), so they need not depend on kith-net.
pub use feeds::{FeedInfo, FeedItem, FeedOpError, FeedSettings, Followed};
pub use kith_net::{
    Multiaddr, NetError, PeerId, Reachability, ReachabilityReport, parse_multiaddr,
};
pub use kith_store::StoreError;
pub use names::{MirrorInfo, MyName, NameOpError, NameSettings, Published, Resolved};
pub use node::{Node, NodeError, NodeStatus, PeerInfo, STORE_DIR};
pub use reload::Reload;
pub use status::RateCaps;
