//! Stat: where the shares of each stripe of a file are, and how healthy
//! each stripe is.
//!
//! - `healthy`: all n shares held, on n distinct peers;
//! - `degraded`: at least k distinct shares held, so the stripe can be
//!   read (and repaired), but fewer than n on distinct peers;
//! - `lost`: fewer than k distinct shares held.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kith_base::{Capability, ContentId};
use kith_codec::Manifest;
use kith_net::PeerId;

use super::Shares;
use super::get::{Caching, GetError};
use super::placement::{extent_count, extent_key, extent_stripes};

/// The health of one stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// n shares on n distinct peers.
    Healthy,
    /// Readable (≥ k shares) but below full redundancy.
    Degraded,
    /// Fewer than k shares: unreadable.
    Lost,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Lost => "lost",
        })
    }
}

/// One stripe's holders.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StripeStat {
    /// The stripe id.
    pub id: ContentId,
    /// Who holds which share: (index, holder), by index.
    pub holders: Vec<(u8, PeerId)>,
    /// Distinct share indices held.
    pub shares: usize,
    /// Distinct peers holding a share.
    pub peers: usize,
    /// The verdict.
    pub health: Health,
    /// Whether this node is repairing the stripe right now.
    pub repairing: bool,
}

/// A file's stripes and their holders.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatReport {
    /// The manifest (sizes, code, name).
    pub manifest: Manifest,
    /// The manifest's own stripe.
    pub manifest_stripe: StripeStat,
    /// The data stripes, in file order.
    pub stripes: Vec<StripeStat>,
    /// Peers asked.
    pub asked: usize,
}

impl StatReport {
    /// Every stripe, the manifest's first.
    pub fn all_stripes(&self) -> impl Iterator<Item = &StripeStat> {
        std::iter::once(&self.manifest_stripe).chain(&self.stripes)
    }

    /// How many stripes (the manifest's included) are healthy, degraded
    /// and lost.
    pub fn health_counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for stripe in self.all_stripes() {
            counts[match stripe.health {
                Health::Healthy => 0,
                Health::Degraded => 1,
                Health::Lost => 2,
            }] += 1;
        }
        counts
    }

    /// How many shares of the file `peer` holds.
    pub fn held_by(&self, peer: PeerId) -> usize {
        self.all_stripes()
            .map(|s| s.holders.iter().filter(|(_, p)| *p == peer).count())
            .sum()
    }
}

impl Shares {
    /// Reports where the shares of `capability`'s file are.
    pub(crate) async fn stat(&self, capability: &Capability) -> Result<StatReport, GetError> {
        self.stat_with(capability, Caching::Keep).await
    }

    /// [`Shares::stat`], saying whether the manifest is cached on the way.
    pub(crate) async fn stat_with(
        &self,
        capability: &Capability,
        caching: Caching,
    ) -> Result<StatReport, GetError> {
        let download = self.open_with(capability, caching).await?;
        let manifest = download.manifest().clone();
        let (k, n) = (
            usize::from(manifest.params().k()),
            usize::from(manifest.params().n()),
        );
        let manifest_id = capability.manifest();
        let (holders, mut asked) = self
            .locator
            .locate(*manifest_id.as_bytes(), &[manifest_id])
            .await;
        let mut manifest_stripe = judge(manifest_id, &holders[0], k, n);
        manifest_stripe.repairing = self.repair.is_under_way(&manifest_id);
        let stripes = manifest.stripes();
        let mut stats = Vec::with_capacity(stripes.len());
        for extent in 0..extent_count(stripes.len()) {
            let ids = extent_stripes(stripes, extent);
            let (holders, extent_asked) =
                self.locator.locate(extent_key(stripes, extent), ids).await;
            asked = asked.max(extent_asked);
            for (id, holders) in ids.iter().zip(&holders) {
                let mut stat = judge(*id, holders, k, n);
                stat.repairing = self.repair.is_under_way(id);
                stats.push(stat);
            }
        }
        Ok(StatReport {
            manifest,
            manifest_stripe,
            stripes: stats,
            asked,
        })
    }
}

/// Classifies a stripe from its holders.
fn judge(id: ContentId, holders: &[(u8, PeerId)], k: usize, n: usize) -> StripeStat {
    let mut by_index: BTreeMap<u8, Vec<PeerId>> = BTreeMap::new();
    for (index, peer) in holders {
        if usize::from(*index) < n {
            by_index.entry(*index).or_default().push(*peer);
        }
    }
    let shares = by_index.len();
    let peers: HashSet<PeerId> = by_index.values().flatten().copied().collect();
    let placed = distinct_placement(&by_index);
    let health = if shares == n && placed == n {
        Health::Healthy
    } else if shares >= k {
        Health::Degraded
    } else {
        Health::Lost
    };
    let mut sorted = holders.to_vec();
    sorted.sort_by_key(|(index, peer)| (*index, peer.to_string()));
    StripeStat {
        id,
        holders: sorted,
        shares,
        peers: peers.len(),
        health,
        repairing: false,
    }
}

/// The most share indices that can be given each to a different peer (a
/// bipartite matching, by augmenting paths; n ≤ 255, so this is cheap).
fn distinct_placement(by_index: &BTreeMap<u8, Vec<PeerId>>) -> usize {
    distinct_assignment(by_index).len()
}

/// A maximum matching of share indices to distinct peers: index → peer.
/// The indices left out are the ones repair must place anew.
pub(super) fn distinct_assignment(by_index: &BTreeMap<u8, Vec<PeerId>>) -> BTreeMap<u8, PeerId> {
    let mut owner: BTreeMap<PeerId, u8> = BTreeMap::new();
    fn augment(
        index: u8,
        by_index: &BTreeMap<u8, Vec<PeerId>>,
        owner: &mut BTreeMap<PeerId, u8>,
        seen: &mut BTreeSet<PeerId>,
    ) -> bool {
        for peer in by_index.get(&index).into_iter().flatten() {
            if seen.insert(*peer) {
                let free = match owner.get(peer) {
                    None => true,
                    Some(&other) => augment(other, by_index, owner, seen),
                };
                if free {
                    owner.insert(*peer, index);
                    return true;
                }
            }
        }
        false
    }
    for index in by_index.keys() {
        augment(*index, by_index, &mut owner, &mut BTreeSet::new());
    }
    owner
        .into_iter()
        .map(|(peer, index)| (index, peer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_verdicts() {
        let id = ContentId::of(b"s");
        let p: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let all: Vec<(u8, PeerId)> = (0..5).map(|i| (i as u8, p[i])).collect();
        assert_eq!(judge(id, &all, 3, 5).health, Health::Healthy);
        assert_eq!(judge(id, &all[..3], 3, 5).health, Health::Degraded);
        assert_eq!(judge(id, &all[..2], 3, 5).health, Health::Lost);
        // All five shares, but two on one peer: degraded.
        let mut doubled = all[..4].to_vec();
        doubled.push((4, p[0]));
        let stat = judge(id, &doubled, 3, 5);
        assert_eq!(
            (stat.health, stat.shares, stat.peers),
            (Health::Degraded, 5, 4)
        );
        // A cached extra copy does not hurt, and matching finds the spread.
        let mut extra = all.clone();
        extra.push((0, p[1]));
        assert_eq!(judge(id, &extra, 3, 5).health, Health::Healthy);
    }
}
