//! Where shares go: peers chosen by XOR distance from a key derived from the
//! stripes, so that any node finds them again with one DHT lookup.
//!
//! The stripes of a file are grouped in **extents** of [`EXTENT_STRIPES`]
//! consecutive stripes (64 MiB of file at the default segment size). The
//! placement key of an extent is the id of its first stripe; share `i` of
//! every stripe of the extent goes to the `i`-th closest peer to that key
//! (this node included, when it is among the closest). The manifest stripe
//! is an extent of its own, keyed by its own id, which the capability
//! carries.
//!
//! Why extents and not one key per stripe: a lookup costs a DHT query
//! (about log2 N requests) plus a `have` round to the holders. Per stripe,
//! a 1 GiB file needs 1,024 lookups to store and 1,024 more to fetch; per
//! extent it needs 16. Spreading stays good: different extents (and
//! different files) land on different peers, and within an extent the n
//! shares of a stripe are on n distinct peers, which is what survives the
//! loss of n − k of them. Per file would be fewer lookups still but would
//! put a whole 100 GiB file on the same n peers.
//!
//! A peer that refuses or fails is replaced, for the rest of the extent, by
//! the next closest peer not yet used, so the n shares of a stripe always
//! stay on distinct peers. A reader asks the closest peers (and any
//! providers, see swarming) which shares they hold, so replacements are
//! found too.

use std::collections::{HashSet, VecDeque};

use kith_base::ContentId;
use kith_net::PeerId;

/// Stripes per extent.
pub(crate) const EXTENT_STRIPES: usize = 64;

/// The extent of stripe `index`.
pub(crate) fn extent_of(index: usize) -> usize {
    index / EXTENT_STRIPES
}

/// The placement key of extent `extent` of a file with these stripes.
pub(crate) fn extent_key(stripes: &[ContentId], extent: usize) -> [u8; 32] {
    *stripes[extent * EXTENT_STRIPES].as_bytes()
}

/// The stripes of extent `extent`.
pub(crate) fn extent_stripes(stripes: &[ContentId], extent: usize) -> &[ContentId] {
    let start = extent * EXTENT_STRIPES;
    &stripes[start..(start + EXTENT_STRIPES).min(stripes.len())]
}

/// Number of extents of a file with `stripes` stripes.
pub(crate) fn extent_count(stripes: usize) -> usize {
    stripes.div_ceil(EXTENT_STRIPES)
}

/// The peers of one extent: who holds share `i`, and who may step in.
#[derive(Debug)]
pub(crate) struct ExtentPlacement {
    targets: Vec<PeerId>,
    spares: VecDeque<PeerId>,
    failed: HashSet<PeerId>,
    /// Every peer ever a target, so a spare is never a peer some in-flight
    /// stripe already uses for another index.
    used: HashSet<PeerId>,
    candidates: usize,
}

impl ExtentPlacement {
    /// Places `n` shares on `candidates` (closest first). `None` if there
    /// are fewer than `n` candidates.
    pub(crate) fn new(candidates: Vec<PeerId>, n: usize) -> Option<Self> {
        if candidates.len() < n {
            return None;
        }
        let count = candidates.len();
        let mut spares: VecDeque<PeerId> = candidates.into();
        let targets: Vec<PeerId> = spares.drain(..n).collect();
        Some(Self {
            used: targets.iter().copied().collect(),
            targets,
            spares,
            failed: HashSet::new(),
            candidates: count,
        })
    }

    /// The peer for share `index`.
    pub(crate) fn target(&self, index: usize) -> PeerId {
        self.targets[index]
    }

    /// Records that `peer` failed share `index`, and returns who takes
    /// `index` now: the current target if another stripe already replaced
    /// `peer`, the next spare otherwise, `None` when no peer is left.
    pub(crate) fn replace(&mut self, index: usize, peer: PeerId) -> Option<PeerId> {
        self.failed.insert(peer);
        if self.targets[index] != peer {
            return Some(self.targets[index]);
        }
        while let Some(spare) = self.spares.pop_front() {
            if !self.failed.contains(&spare) && self.used.insert(spare) {
                self.targets[index] = spare;
                return Some(spare);
            }
        }
        None
    }

    /// How many peers were candidates, and how many failed.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.candidates, self.failed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(count: usize) -> Vec<PeerId> {
        (0..count).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn too_few_candidates_is_none() {
        assert!(ExtentPlacement::new(peers(4), 5).is_none());
        assert!(ExtentPlacement::new(peers(5), 5).is_some());
    }

    #[test]
    fn replacements_stay_distinct_and_run_out() {
        let all = peers(7);
        let mut placement = ExtentPlacement::new(all.clone(), 5).unwrap();
        assert_eq!(placement.target(0), all[0]);
        // Share 1's peer fails: the first spare steps in.
        assert_eq!(placement.replace(1, all[1]), Some(all[5]));
        // A second stripe in flight reports the same failure: same answer.
        assert_eq!(placement.replace(1, all[1]), Some(all[5]));
        assert_eq!(placement.replace(3, all[3]), Some(all[6]));
        assert_eq!(placement.replace(0, all[0]), None);
        let targets: HashSet<_> = (0..5).map(|i| placement.target(i)).collect();
        assert_eq!(targets.len(), 5, "targets stay distinct");
        assert_eq!(placement.counts(), (7, 3));
    }

    #[test]
    fn extents_cover_the_stripes() {
        let stripes: Vec<ContentId> = (0..130u32)
            .map(|i| ContentId::of(&i.to_le_bytes()))
            .collect();
        assert_eq!(extent_count(130), 3);
        assert_eq!(extent_count(0), 0);
        assert_eq!(extent_of(63), 0);
        assert_eq!(extent_of(64), 1);
        assert_eq!(extent_stripes(&stripes, 2).len(), 2);
        assert_eq!(extent_key(&stripes, 1), *stripes[64].as_bytes());
    }
}
