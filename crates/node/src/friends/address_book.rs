//! The address book: petnames for peer ids, in `DIR/friends.txt`.
//!
//! A petname is the user's own short name for a peer ("alice"); it means
//! nothing to anyone else and is never sent. Every command that takes a
//! friend accepts a petname or a peer id. The file is plain text, one
//! friend per line, so it can be read, diffed and backed up by hand:
//!
//! ```text
//! # kith address book: petname and peer id, one friend per line
//! alice 12D3KooWRm…
//! ```
//!
//! The command line edits the file directly (no node needs to run), always
//! by an atomic replace; the node reads it when it needs it, so a friend
//! added while the node runs counts at once.

use std::collections::BTreeMap;

use kith_base::PeerId;

use crate::data_dir::{DataDir, DataDirError};

/// The address book's file in the data folder.
pub const FRIENDS_FILE: &str = "friends.txt";
/// Longest petname, in characters.
pub const MAX_NAME: usize = 32;
const HEADER: &str = "# kith address book: petname and peer id, one friend per line\n";

/// Petnames → peer ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressBook {
    friends: BTreeMap<String, PeerId>,
}

/// What went wrong with a friend or the address book.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FriendError {
    /// A petname that is not allowed.
    #[error(
        "{name:?} cannot be a friend's name: {reason} (use up to 32 letters, digits, '-', '_' or '.')"
    )]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Neither a known petname nor a peer id.
    #[error(
        "no friend is called {0:?}, and it is not a peer id; add one with `kith friend add {0} PEER_ID` (see `kith friend ls`)"
    )]
    Unknown(String),
    /// A peer id that does not parse.
    #[error("{0:?} is not a peer id (they look like 12D3KooW…)")]
    NotAPeerId(String),
    /// The name is already used for another peer.
    #[error("{name:?} is already the name of {peer}; remove it first with `kith friend rm {name}`")]
    Taken {
        /// The name.
        name: String,
        /// The peer it names.
        peer: PeerId,
    },
    /// A line of the file could not be read.
    #[error("{path}, line {line}, is not \"NAME PEER_ID\"; fix or remove that line")]
    Damaged {
        /// The file.
        path: String,
        /// The line number (from 1).
        line: usize,
    },
    /// Reading or writing the file failed.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

impl AddressBook {
    /// Reads the address book of `dir`; a missing file is an empty book.
    pub fn load(dir: &DataDir) -> Result<Self, FriendError> {
        let path = dir.path(FRIENDS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(DataDirError::Io {
                    action: "cannot read",
                    path,
                    source,
                }
                .into());
            }
        };
        Self::parse(&text).map_err(|line| FriendError::Damaged {
            path: path.display().to_string(),
            line,
        })
    }

    /// Parses the file's text; the error is the first bad line's number.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut book = Self::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(peer), None) = (words.next(), words.next(), words.next()) else {
                return Err(number + 1);
            };
            let peer: PeerId = peer.parse().map_err(|_| number + 1)?;
            check_name(name).map_err(|_| number + 1)?;
            book.friends.insert(name.to_owned(), peer);
        }
        Ok(book)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = HEADER.to_owned();
        for (name, peer) in &self.friends {
            text.push_str(&format!("{name} {peer}\n"));
        }
        text
    }

    /// Writes the book to `dir`, atomically, readable by the owner only.
    pub fn save(&self, dir: &DataDir) -> Result<(), FriendError> {
        dir.write_replace(FRIENDS_FILE, self.render().as_bytes(), 0o600)?;
        Ok(())
    }

    /// Adds `name` for `peer`. Adding the same pair again is fine; reusing a
    /// name for another peer is refused. Returns whether it was new.
    pub fn add(&mut self, name: &str, peer: PeerId) -> Result<bool, FriendError> {
        check_name(name)?;
        match self.friends.get(name) {
            Some(existing) if *existing == peer => Ok(false),
            Some(existing) => Err(FriendError::Taken {
                name: name.to_owned(),
                peer: *existing,
            }),
            None => {
                self.friends.insert(name.to_owned(), peer);
                Ok(true)
            }
        }
    }

    /// Removes `name`, returning the peer it named.
    pub fn remove(&mut self, name: &str) -> Result<PeerId, FriendError> {
        self.friends
            .remove(name)
            .ok_or_else(|| FriendError::Unknown(name.to_owned()))
    }

    /// Every friend, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PeerId)> {
        self.friends
            .iter()
            .map(|(name, peer)| (name.as_str(), peer))
    }

    /// How many friends.
    pub fn len(&self) -> usize {
        self.friends.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.friends.is_empty()
    }

    /// The peer a petname or a peer id's text names.
    pub fn resolve(&self, text: &str) -> Result<PeerId, FriendError> {
        let text = text.trim();
        if let Some(peer) = self.friends.get(text) {
            return Ok(*peer);
        }
        if let Ok(peer) = text.parse::<PeerId>() {
            return Ok(peer);
        }
        if text.starts_with("12D3Koo") || text.starts_with("Qm") {
            return Err(FriendError::NotAPeerId(text.to_owned()));
        }
        Err(FriendError::Unknown(text.to_owned()))
    }

    /// The petname of `peer`, if it has one.
    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.friends
            .iter()
            .find(|(_, known)| *known == peer)
            .map(|(name, _)| name.as_str())
    }

    /// Whether `peer` is a friend.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.name_of(peer).is_some()
    }
}

/// Checks a petname: 1–32 letters, digits, `-`, `_` or `.`, not starting
/// with `.` or `-`, and not something that reads as a peer id.
pub fn check_name(name: &str) -> Result<(), FriendError> {
    let bad = |reason| {
        Err(FriendError::BadName {
            name: name.chars().take(40).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.chars().count() > MAX_NAME {
        return bad("it is too long");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("it contains a character other than a letter, digit, '-', '_' or '.'");
    }
    if name.starts_with(['.', '-']) {
        return bad("it starts with '.' or '-'");
    }
    if name.parse::<PeerId>().is_ok() {
        return bad("it is a peer id itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kith_base::Identity;

    use super::*;

    #[test]
    fn add_resolve_remove_and_the_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let alice = Identity::generate().peer_id();
        let mut book = AddressBook::load(&data).unwrap();
        assert!(book.is_empty());
        assert!(book.add("alice", alice).unwrap());
        assert!(!book.add("alice", alice).unwrap(), "re-adding is a no-op");
        book.save(&data).unwrap();
        let book = AddressBook::load(&data).unwrap();
        assert_eq!(book.resolve("alice").unwrap(), alice);
        assert_eq!(book.resolve(&alice.to_string()).unwrap(), alice);
        assert_eq!(book.name_of(&alice), Some("alice"));
        let mode = std::fs::metadata(data.path(FRIENDS_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let mut book = book;
        assert_eq!(book.remove("alice").unwrap(), alice);
        assert!(matches!(book.remove("alice"), Err(FriendError::Unknown(_))));
    }

    #[test]
    fn names_are_checked_and_not_reused() {
        let mut book = AddressBook::default();
        let (a, b) = (
            Identity::generate().peer_id(),
            Identity::generate().peer_id(),
        );
        for bad in ["", "a b", "../x", ".hidden", "-flag", &"n".repeat(33)] {
            assert!(
                matches!(book.add(bad, a), Err(FriendError::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            book.add(&b.to_string(), a),
            Err(FriendError::BadName { .. })
        ));
        book.add("bob", a).unwrap();
        assert!(matches!(book.add("bob", b), Err(FriendError::Taken { .. })));
        assert!(matches!(
            book.resolve("carol"),
            Err(FriendError::Unknown(_))
        ));
        assert!(matches!(
            book.resolve("12D3KooWnotapeer"),
            Err(FriendError::NotAPeerId(_))
        ));
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_number() {
        let peer = Identity::generate().peer_id();
        assert_eq!(
            AddressBook::parse(&format!("# c\nalice {peer}\nbob\n")),
            Err(3)
        );
        assert_eq!(AddressBook::parse("alice notapeer\n"), Err(1));
        assert_eq!(
            AddressBook::parse(&format!("alice {peer}\n"))
                .unwrap()
                .len(),
            1
        );
    }
}
