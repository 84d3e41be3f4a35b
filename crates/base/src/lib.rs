//! kith's vocabulary: the small, pure types every other crate speaks in.
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | [`content_id`] | [`ContentId`]: the BLAKE3 name of immutable bytes |
//! | [`feed`] | [`feed::Entry`]: signed, hash-linked entries of an identity's feed |
//! | [`file_key`] | [`FileKey`]: the random secret that encrypts one file |
//! | [`capability`] | [`Capability`]: the `kith:…` text that grants reading one file |
//! | [`identity`] | [`Identity`]: the node's Ed25519 key pair and its file text |
//! | [`layout`] | pinned byte layouts of records and messages, read and written with postcard |
//! | [`lease`] | [`Lease`]: an owner's signed word to keep a stripe's shares until a time |
//! | [`letter`] | [`Letter`]: signed letters between friends, sealed for offline mailboxes |
//! | [`name`] | [`Name`] and [`NameRecord`]: self-certifying names and their signed records |
//! | [`size`] | [`ByteSize`]: byte sizes as people write them (`500M`, `1.5T`) |
//!
//! # What it is
//!
//! Nothing here does I/O or runs async code, so everything can be unit- and
//! property-tested in isolation and reused by the codec, the store, the
//! network layer and the command line alike.
//!
//! - [`ContentId`]: a BLAKE3 hash naming immutable bytes (shares, stripe
//!   records, manifests), with a lowercase-hex text form.
//! - [`FileKey`]: the random per-file secret that encrypts a file.
//! - [`Capability`]: the `kith:…` text a user shares to grant reading one
//!   file; it carries the manifest id and the file key, versioned and
//!   checksummed so a typo is caught before anything is fetched.
//! - [`identity`]: the node's Ed25519 key pair and its on-disk text form.
//! - [`letter`]: signed letters between friends, sealed to the recipient
//!   for offline mailboxes.
//!
//! ```
//! use kith_base::{Capability, ContentId, FileKey};
//!
//! let cap = Capability::new(ContentId::of(b"manifest stripe"), FileKey::random());
//! let text = cap.to_string();
//! assert!(text.starts_with("kith:"));
//! assert_eq!(text.parse::<Capability>().unwrap(), cap);
//! ```

pub mod capability;
pub mod content_id;
pub mod feed;
pub mod file_key;
pub mod identity;
pub mod layout;
pub mod lease;
pub mod letter;
pub mod name;
pub mod size;

pub use capability::{Capability, CapabilityError, CapabilityKind, CapabilityPath};
pub use content_id::{ContentId, ContentIdError};
pub use file_key::FileKey;
pub use identity::{Identity, IdentityError};
pub use lease::{LEASE_LEN, Lease, LeaseError};
pub use letter::{Body, Letter, LetterError};
pub use libp2p_identity::PeerId;
pub use name::{Name, NameError, NameRecord, NameSigner};
pub use size::{ByteSize, ByteSizeError};
