//! The kith node as a library.
//!
//! Everything a running node owns lives here, so the command line, the HTTP
//! API and the tests all drive the same code. For now it holds the data
//! folder ([`data_dir::DataDir`]): where the identity and, later, the share
//! store, peer table and API token live.
//!
//! ```no_run
//! use kith_node::data_dir::DataDir;
//!
//! let dir = DataDir::new("/tmp/kith-example");
//! let (identity, created) = dir.init()?;
//! println!("{} (new: {created})", identity.peer_id());
//! # Ok::<(), kith_node::data_dir::DataDirError>(())
//! ```

pub mod data_dir;
