//! The kith node as a library.
//!
//! Everything a running node owns lives here, so the command line, the HTTP
//! API and the tests all drive the same code:
//!
//! - [`data_dir::DataDir`]: the node's folder — identity, lock, API token,
//!   peer table — written atomically, secrets 0600;
//! - [`config`]: defaults, `config.toml` and flags, merged;
//! - [`Node`]: the running node, a cloneable handle started with a config and
//!   stopped with [`Node::shutdown`];
//! - files on the network ([`handles::Files::put`], [`handles::Files::get`], [`handles::Files::stat`]):
//!   the share protocol, placement, swarming (module `share`);
//! - [`friends`]: petnames, direct messages and files, offline mailboxes
//!   ([`handles::Friends::send_message`], [`handles::Friends::send_file`], [`handles::Friends::inbox`]).
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
mod files;
pub mod friends;
#[doc(hidden)]
pub mod fuzzing;
pub mod handles;
mod lifecycle;
mod metrics;
mod node;
pub mod peer_table;
pub mod protocols;
mod side_db;
mod slots;
mod status;

pub use chunk_reader::ChunkReader;
pub use config::{ConfigError, ConfigFile, Flags, NodeConfig};
pub use data_dir::{DataDir, DataDirError};
pub use files::{
    CorruptShareReport, Detected, Download, Faults, GetError, GetReport, Health, MAX_LEASE,
    OWNED_FILE, PutError, PutReport, RmReport, StatReport, StripeStat, UpkeepCounters,
    UpkeepSettings,
};
pub use friends::address_book::{AddressBook, FriendError};
pub use friends::db::{Content, FileState, InboxEntry, Via};
pub use friends::{Delivery, FriendSettings, InboxItem, RefusalReason, SendError};
pub use kith_base::Capability;
pub use kith_codec::{FileMeta, Manifest, Params};
// The network types the node's callers name (the API parses addresses and
// peer ids and maps network errors), so they need not depend on kith-net.
pub use kith_net::{Multiaddr, NetError, PeerId, parse_multiaddr};
pub use kith_store::StoreError;
pub use node::{Node, NodeError, NodeStatus, PeerInfo, STORE_DIR};
