//! The data folder: one node's identity and state on disk.
//!
//! Long because: every file of the folder, its atomic write and permission checks, and tests.
//!
//! Layout (each file is described where it is written):
//!
//! ```text
//! DIR/
//!   identity.key     the node's secret key (mode 0600), see kith_base::identity
//!   config.toml      optional settings (see crate::config)
//!   lock             held by the running `kith up`; holds its process id
//!   api.addr         HOST:PORT of the running node's HTTP API (removed at exit)
//!   api.token        the API's bearer token (mode 0600)
//!   peers            the peer table, to rejoin after a restart (crate::peer_table)
//! ```
//!
//! Rules every writer here follows, so that a crash or a bad input never
//! costs data:
//! - secrets are created with mode 0600 from the first byte (never chmod-ed
//!   after the fact, which would leave a window);
//! - files are written to a temporary name, flushed to disk, and then linked
//!   into place, so a reader sees the whole file or none of it;
//! - an existing file that cannot be read is reported and left untouched:
//!   kith never "repairs" a damaged identity by replacing it.
//!
//! Permissions are checked at every [`DataDir::init`] (so at every `kith up`
//! and `kith init`): a data folder that others may enter (any group or other
//! bit) is set to 0700, and `identity.key` or `api.token` readable or
//! writable by others is set to 0600, each with a warning naming the path
//! and its old mode. ssh refuses such keys instead; kith fixes them, because
//! the mode is the whole of the mistake and the fix loses nothing. Whoever
//! could read them before may have copied them: the warning says so.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kith_base::{Identity, IdentityError};

/// The file in the data folder that holds the node's secret key.
pub const IDENTITY_FILE: &str = "identity.key";
/// The lock file held by the running node.
pub const LOCK_FILE: &str = "lock";
/// The file with the running node's API address.
pub const API_ADDR_FILE: &str = "api.addr";
/// Where the running node's gateway listens (`HOST:PORT`), for `kith
/// gateway`; removed at shutdown.
pub const GATEWAY_ADDR_FILE: &str = "gateway.addr";
/// The file with the API's bearer token.
pub const API_TOKEN_FILE: &str = "api.token";

/// A node's data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What went wrong with the data folder. Messages name the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// No `--dir`, no `KITH_DIR` and no home folder to put a default in.
    #[error(
        "no data folder given and no home folder to put one in; pass --dir DIR or set KITH_DIR"
    )]
    NoDefault,
    /// The folder (or a file in it) could not be created, read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What kith was doing, e.g. "cannot create".
        action: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The data folder has no identity yet.
    #[error("{path} has no identity yet; run `kith init` (or `kith up`, which creates one)")]
    NoIdentity {
        /// Where the identity was looked for.
        path: PathBuf,
    },
    /// The identity file exists but is damaged. It is left as it is.
    #[error(
        "cannot read the identity in {path}: {source}. \
         The file was left untouched; restore it from a backup, or move it away to \
         start this node with a new identity"
    )]
    CorruptIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        source: IdentityError,
    },
    /// Another process holds the folder's lock.
    #[error(
        "another kith node ({holder}) is already running with the data folder {path}; \
         stop it first, or give this one its own --dir"
    )]
    Locked {
        /// The data folder.
        path: PathBuf,
        /// Who holds it, e.g. "process 1234".
        holder: String,
    },
    /// No node is running with this folder (or it did not say where its API is).
    #[error(
        "no kith node is running with the data folder {path}; start one with `kith --dir {path} up`"
    )]
    NotRunning {
        /// The data folder.
        path: PathBuf,
    },
    /// The API token file was removed while the node runs: the running node
    /// still knows the old token, but no one else can read it any more.
    #[error(
        "the API token {path} is missing (deleted while the node runs?); \
         restart `kith up`, which writes a new one"
    )]
    TokenMissing {
        /// Where the token should be.
        path: PathBuf,
    },
    /// A small state file is damaged.
    #[error("{path} is damaged ({what}); delete it and restart the node to recreate it")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

/// Proof that this process owns the data folder; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DataDir {
    /// A data folder at `root` (not created until [`DataDir::init`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default folder: `$XDG_DATA_HOME/kith`, else `~/.local/share/kith`.
    pub fn default_location() -> Result<Self, DataDirError> {
        dirs::data_dir()
            .map(|dir| Self::new(dir.join("kith")))
            .ok_or(DataDirError::NoDefault)
    }

    /// The folder's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a file inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the folder (mode 0700) and an identity if there is none.
    /// Idempotent: an existing identity is read and returned, never replaced.
    /// Returns the identity and whether it was created now.
    pub fn init(&self) -> Result<(Identity, bool), DataDirError> {
        self.create_root()?;
        self.restrict_access()?;
        match self.load_identity() {
            Ok(identity) => Ok((identity, false)),
            Err(DataDirError::NoIdentity { .. }) => {
                let identity = Identity::generate();
                match self.write_new(IDENTITY_FILE, identity.to_file_text().as_bytes(), 0o600) {
                    Ok(()) => Ok((identity, true)),
                    // Another process won the race: use its identity.
                    Err(DataDirError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        Ok((self.load_identity()?, false))
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the identity; an error if it is missing or damaged.
    pub fn load_identity(&self) -> Result<Identity, DataDirError> {
        let path = self.path(IDENTITY_FILE);
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(DataDirError::NoIdentity { path });
            }
            Err(source) => {
                return Err(DataDirError::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let text = String::from_utf8(text).map_err(|_| DataDirError::CorruptIdentity {
            path: path.clone(),
            source: IdentityError::NotAnIdentity,
        })?;
        Identity::from_file_text(&text)
            .map_err(|source| DataDirError::CorruptIdentity { path, source })
    }

    /// Takes the folder's lock, so that no second node runs on it: two nodes
    /// with one identity and one store would corrupt each other's state. The
    /// lock is an OS file lock, so it is released even if the node is killed.
    pub fn lock(&self) -> Result<DirLock, DataDirError> {
        self.create_root()?;
        let path = self.path(LOCK_FILE);
        let io_error = |source| DataDirError::Io {
            action: "cannot open the lock file",
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.trim().parse::<u32>().ok())
                    .map_or_else(
                        || "another process".to_owned(),
                        |pid| format!("process {pid}"),
                    );
                return Err(DataDirError::Locked {
                    path: self.root.clone(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(source)),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        written.map_err(io_error)?;
        Ok(DirLock { _file: file })
    }

    /// The API token, created (0600) on first use and kept across restarts.
    pub fn api_token(&self) -> Result<String, DataDirError> {
        let path = self.path(API_TOKEN_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => check_token(text.trim(), &path),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|error| DataDirError::Io {
                    action: "cannot draw random bytes for",
                    path: path.clone(),
                    source: io::Error::other(error.to_string()),
                })?;
                let token = data_encoding::HEXLOWER.encode(&bytes);
                match self.write_new(API_TOKEN_FILE, format!("{token}\n").as_bytes(), 0o600) {
                    Ok(()) => Ok(token),
                    Err(DataDirError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        self.api_token()
                    }
                    Err(error) => Err(error),
                }
            }
            Err(source) => Err(DataDirError::Io {
                action: "cannot read",
                path,
                source,
            }),
        }
    }

    /// Records where the running node's API listens.
    pub fn write_api_addr(&self, addr: std::net::SocketAddr) -> Result<(), DataDirError> {
        self.write_replace(API_ADDR_FILE, format!("{addr}\n").as_bytes(), 0o644)
    }

    /// Forgets the API address (at shutdown).
    pub fn remove_api_addr(&self) {
        let _ = fs::remove_file(self.path(API_ADDR_FILE));
    }

    /// Records where the running node's gateway listens.
    pub fn write_gateway_addr(&self, addr: std::net::SocketAddr) -> Result<(), DataDirError> {
        self.write_replace(GATEWAY_ADDR_FILE, format!("{addr}\n").as_bytes(), 0o644)
    }

    /// Forgets the gateway address (at shutdown).
    pub fn remove_gateway_addr(&self) {
        let _ = fs::remove_file(self.path(GATEWAY_ADDR_FILE));
    }

    /// The running node's gateway address.
    pub fn gateway_addr(&self) -> Result<std::net::SocketAddr, DataDirError> {
        let path = self.path(GATEWAY_ADDR_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| DataDirError::Io {
                action: "cannot read",
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "not an address and port"),
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(DataDirError::NotRunning {
                    path: self.root.clone(),
                })
            }
            Err(source) => Err(DataDirError::Io {
                action: "cannot read",
                path,
                source,
            }),
        }
    }

    /// The running node's API address and token, for the command line.
    pub fn api_endpoint(&self) -> Result<(std::net::SocketAddr, String), DataDirError> {
        let path = self.path(API_ADDR_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(DataDirError::NotRunning {
                    path: self.root.clone(),
                });
            }
            Err(source) => {
                return Err(DataDirError::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        let addr = text.trim().parse().map_err(|_| DataDirError::Damaged {
            path: path.clone(),
            what: "not an address and port",
        })?;
        let token_path = self.path(API_TOKEN_FILE);
        let token = fs::read_to_string(&token_path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                DataDirError::TokenMissing {
                    path: token_path.clone(),
                }
            } else {
                DataDirError::Io {
                    action: "cannot read the API token",
                    path: token_path.clone(),
                    source,
                }
            }
        })?;
        Ok((addr, check_token(token.trim(), &token_path)?))
    }

    /// Sets the folder to 0700 and the secrets in it to 0600 where they are
    /// open to others, warning for each; returns the paths it changed.
    pub fn restrict_access(&self) -> Result<Vec<PathBuf>, DataDirError> {
        let mut fixed = Vec::new();
        for (path, mode) in [
            (self.root.clone(), 0o700),
            (self.path(IDENTITY_FILE), 0o600),
            (self.path(API_TOKEN_FILE), 0o600),
        ] {
            let old = match fs::metadata(&path) {
                Ok(meta) => meta.permissions().mode() & 0o7777,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(DataDirError::Io {
                        action: "cannot check the permissions of",
                        path,
                        source,
                    });
                }
            };
            if old & 0o077 == 0 {
                continue;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|source| {
                DataDirError::Io {
                    action: "cannot restrict access to",
                    path: path.clone(),
                    source,
                }
            })?;
            tracing::warn!(
                "{} was open to other users (mode {old:04o}); set it to {mode:04o}. Anyone who \
                 could read it may have copied it",
                path.display()
            );
            fixed.push(path);
        }
        Ok(fixed)
    }

    fn create_root(&self) -> Result<(), DataDirError> {
        let exists = self.root.is_dir();
        fs::create_dir_all(&self.root).map_err(|source| DataDirError::Io {
            action: "cannot create the data folder",
            path: self.root.clone(),
            source,
        })?;
        if !exists {
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(
                |source| DataDirError::Io {
                    action: "cannot restrict access to",
                    path: self.root.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }

    /// Writes a file that must not exist yet, atomically: the bytes go to a
    /// temporary file created with `mode`, are synced, and are then hard-linked
    /// to `name` (which fails, rather than overwrites, if `name` exists).
    pub fn write_new(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
        let target = self.path(name);
        let temp = self.write_temp(name, bytes, mode)?;
        let linked = fs::hard_link(&temp, &target);
        let _ = fs::remove_file(&temp);
        linked.map_err(|source| DataDirError::Io {
            action: "cannot create",
            path: target,
            source,
        })?;
        self.sync_root();
        Ok(())
    }

    /// Writes a file atomically, replacing any previous version: readers see
    /// the old file or the new one, never a mix.
    pub fn write_replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
        let target = self.path(name);
        let temp = self.write_temp(name, bytes, mode)?;
        fs::rename(&temp, &target).map_err(|source| {
            let _ = fs::remove_file(&temp);
            DataDirError::Io {
                action: "cannot replace",
                path: target,
                source,
            }
        })?;
        self.sync_root();
        Ok(())
    }

    fn write_temp(&self, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, DataDirError> {
        let temp = self
            .root
            .join(format!(".{name}.{}.tmp", std::process::id()));
        let io_error = |source| DataDirError::Io {
            action: "cannot write",
            path: temp.clone(),
            source,
        };
        let result = (|| {
            let mut file: File = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(source) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error(source));
        }
        Ok(temp)
    }

    /// Makes the new directory entry durable. Best effort: a failure here
    /// does not undo a write that the file system already accepted.
    fn sync_root(&self) {
        if let Ok(dir) = File::open(&self.root) {
            let _ = dir.sync_all();
        }
    }
}

fn check_token(token: &str, path: &Path) -> Result<String, DataDirError> {
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(token.to_owned())
    } else {
        Err(DataDirError::Damaged {
            path: path.to_owned(),
            what: "not 64 hex digits",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_private_identity_once() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path().join("node"));
        let (first, created) = dir.init().unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let root_mode = fs::metadata(dir.root()).unwrap().permissions().mode();
        assert_eq!(root_mode & 0o777, 0o700);
        let (second, created) = dir.init().unwrap();
        assert!(!created);
        assert_eq!(first.peer_id(), second.peer_id());
        assert_eq!(dir.load_identity().unwrap().peer_id(), first.peer_id());
    }

    #[test]
    fn secrets_and_the_folder_open_to_others_are_restricted_at_init() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path().join("node"));
        let (identity, _) = dir.init().unwrap();
        dir.api_token().unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        let set = |path: &Path, mode: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        };
        set(&dir.path(IDENTITY_FILE), 0o644);
        set(&dir.path(API_TOKEN_FILE), 0o666);
        set(dir.root(), 0o777);
        let (again, created) = dir.init().unwrap();
        assert!(!created && again.peer_id() == identity.peer_id());
        assert_eq!(mode(&dir.path(IDENTITY_FILE)), 0o600);
        assert_eq!(mode(&dir.path(API_TOKEN_FILE)), 0o600);
        assert_eq!(mode(dir.root()), 0o700);
        // Already private: nothing to change.
        assert!(dir.restrict_access().unwrap().is_empty());
    }

    #[test]
    fn corrupt_identity_is_reported_and_left_untouched() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        dir.init().unwrap();
        let path = dir.path(IDENTITY_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        for _ in 0..2 {
            let error = dir.init().unwrap_err();
            assert!(
                matches!(error, DataDirError::CorruptIdentity { .. }),
                "{error}"
            );
            assert!(error.to_string().contains("left untouched"));
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        fs::write(&path, b"\xff\xfe not text").unwrap();
        assert!(matches!(
            dir.load_identity(),
            Err(DataDirError::CorruptIdentity { .. })
        ));
    }

    #[test]
    fn missing_identity_says_how_to_create_one() {
        let temp = tempfile::tempdir().unwrap();
        let error = DataDir::new(temp.path()).load_identity().unwrap_err();
        assert!(error.to_string().contains("kith init"), "{error}");
    }

    #[test]
    fn lock_admits_one_holder_at_a_time() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        let held = dir.lock().unwrap();
        let error = dir.lock().unwrap_err();
        assert!(error.to_string().contains("already running"), "{error}");
        assert!(
            error.to_string().contains(&std::process::id().to_string()),
            "{error}"
        );
        drop(held);
        dir.lock().unwrap();
    }

    #[test]
    fn api_token_is_private_and_stable() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        let token = dir.api_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(dir.api_token().unwrap(), token);
        let mode = fs::metadata(dir.path(API_TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            dir.api_endpoint(),
            Err(DataDirError::NotRunning { .. })
        ));
        dir.write_api_addr("127.0.0.1:5050".parse().unwrap())
            .unwrap();
        assert_eq!(
            dir.api_endpoint().unwrap(),
            ("127.0.0.1:5050".parse().unwrap(), token)
        );
        fs::write(dir.path(API_TOKEN_FILE), "short").unwrap();
        assert!(matches!(dir.api_token(), Err(DataDirError::Damaged { .. })));
    }

    #[test]
    fn write_new_never_overwrites() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        dir.write_new("a", b"first", 0o600).unwrap();
        assert!(dir.write_new("a", b"second", 0o600).is_err());
        assert_eq!(fs::read(dir.path("a")).unwrap(), b"first");
        dir.write_replace("a", b"third", 0o600).unwrap();
        assert_eq!(fs::read(dir.path("a")).unwrap(), b"third");
        let leftovers: Vec<_> = fs::read_dir(temp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
