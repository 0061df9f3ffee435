//! A new policy applied in place to the loaded maps ([`Dataplane::apply`]).
//!
//! Order keeps every packet's verdict consistent: the policy map and the group table first (so
//! no prefix ever points at a group without its entity, nor a group at an entity without its
//! action), then the changed trie regions, then retired entities. A group index keeps its
//! entity for the whole generation: a policy that would move one to another entity (only a
//! caller that does not keep indices stable, see [`crate::policy::EntityIndex`], builds such a
//! policy) is refused as [`DataplaneError::NeedsRebuild`], so no packet is ever counted
//! against, or given the action of, another entity while the tries are rewritten.
//! Capacity is checked for everything before anything is written: [`DataplaneError::NeedsRebuild`]
//! means nothing was changed and the caller loads a new generation.

use std::borrow::Cow;

use aya::maps::Array;
use embargo_abi::{EntityPolicy, GroupEntry, addr, maps};
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;

use super::{Dataplane, DataplaneError, array, map_error, trie::live::Change};
use crate::policy::Policy;

/// What [`Dataplane::apply`] changed.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ApplyStats {
    pub prefixes_changed: u64,
    /// Trie words stored.
    pub entries_written: u64,
    /// Subtrees rebuilt (each switched in with one store of its direct entry).
    pub subtrees_rebuilt: u64,
    /// Nodes' worth of trie array taken by new subtree blocks and given up by old ones.
    pub nodes_allocated: u64,
    pub nodes_released: u64,
    pub policies_written: u64,
    /// Group table entries written (new groups).
    pub groups_written: u64,
}

/// `prefixes` sorted by key, each key once (of two equal keys the later one kept, as a map
/// would keep it): borrowed as it is when, as compiled, it already is (a linear check).
pub(super) fn normalized<N: Copy>(
    prefixes: &[(N, u32)],
    key: impl Fn(&N) -> (u128, u8),
) -> Cow<'_, [(N, u32)]> {
    if prefixes.is_sorted_by(|a, b| key(&a.0) < key(&b.0)) {
        return Cow::Borrowed(prefixes);
    }
    let mut v = prefixes.to_vec();
    // Stable: equal keys keep their order, and the dedup below keeps the last.
    v.sort_by_key(|(n, _)| key(n));
    let mut out: Vec<(N, u32)> = Vec::with_capacity(v.len());
    for item in v {
        match out.last_mut() {
            Some(last) if key(&last.0) == key(&item.0) => *last = item,
            _ => out.push(item),
        }
    }
    Cow::Owned(out)
}

/// The prefixes whose group differs between the loaded set and `next`, both [`normalized`]
/// (added, moved or removed): one merge walk over two sorted vectors, a few nanoseconds a
/// prefix (no tree is walked and no map of the next policy is built).
fn changes<N: Copy>(
    loaded: &[(N, u32)],
    next: &[(N, u32)],
    key: impl Fn(&N) -> (u128, u8),
) -> Vec<Change> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let add = |out: &mut Vec<Change>, k: (u128, u8), group| {
        out.push(Change {
            addr: k.0,
            len: k.1,
            group,
        });
    };
    while i < loaded.len() && j < next.len() {
        let (lk, lg) = (key(&loaded[i].0), loaded[i].1);
        let (nk, ng) = (key(&next[j].0), next[j].1);
        if lk == nk {
            if lg != ng {
                add(&mut out, nk, Some(ng));
            }
            i += 1;
            j += 1;
        } else if lk < nk {
            add(&mut out, lk, None);
            i += 1;
        } else {
            add(&mut out, nk, Some(ng));
            j += 1;
        }
    }
    for (n, _) in &loaded[i..] {
        add(&mut out, key(n), None);
    }
    for (n, g) in &next[j..] {
        add(&mut out, key(n), Some(*g));
    }
    out
}

pub(super) fn key4(n: &Ipv4Network) -> (u128, u8) {
    (addr::v4(n.network()), n.prefix())
}

pub(super) fn key6(n: &Ipv6Network) -> (u128, u8) {
    (addr::v6(n.network()), n.prefix())
}

impl Dataplane {
    /// Applies `next` in place: the policy map first (so no prefix ever points at an entity
    /// without its action), then the changed trie regions, then retired entities. Capacity is
    /// checked for everything before anything is written; [`DataplaneError::NeedsRebuild`]
    /// means nothing was changed and the caller should load a new generation.
    pub fn apply(&mut self, next: &Policy) -> Result<ApplyStats, DataplaneError> {
        if next.entities.len() as u32 > self.entity_capacity {
            return Err(DataplaneError::NeedsRebuild {
                reason: format!(
                    "{} entities, the maps hold {}",
                    next.entities.len(),
                    self.entity_capacity
                ),
            });
        }
        if next.groups.len() as u32 > self.group_capacity {
            return Err(DataplaneError::NeedsRebuild {
                reason: format!(
                    "{} evidence groups, the maps hold {}",
                    next.groups.len(),
                    self.group_capacity
                ),
            });
        }
        let wanted_groups: Vec<GroupEntry> = next.groups.iter().map(|g| g.abi()).collect();
        if let Some(i) = self
            .groups
            .iter()
            .zip(&wanted_groups)
            .position(|(old, new)| old != new)
        {
            return Err(DataplaneError::NeedsRebuild {
                reason: format!(
                    "evidence group {i} would move from entity {} to entity {}",
                    self.groups[i].entity, wanted_groups[i].entity
                ),
            });
        }
        let (n4, n6) = (normalized(&next.v4, key4), normalized(&next.v6, key6));
        let c4 = changes(&self.prev_v4, &n4, key4);
        let c6 = changes(&self.prev_v6, &n6, key6);
        // Both families' new subtrees are built and given room before anything is written.
        let p4 =
            self.v4
                .live
                .prepare(&self.v4.trie, &c4)
                .map_err(|e| DataplaneError::NeedsRebuild {
                    reason: e.to_string(),
                })?;
        let p6 = match self.v6.live.prepare(&self.v6.trie, &c6) {
            Ok(p) => p,
            Err(e) => {
                self.v4.live.abort(p4);
                return Err(DataplaneError::NeedsRebuild {
                    reason: e.to_string(),
                });
            }
        };
        let mut stats = ApplyStats {
            prefixes_changed: (c4.len() + c6.len()) as u64,
            ..Default::default()
        };
        let wanted: Vec<EntityPolicy> = next.entities.iter().map(|e| e.abi_policy()).collect();
        let retired = |p: &EntityPolicy| p.action == embargo_abi::ACTION_NONE;
        // Entities that act (new or changed) before the tries can point at them.
        let written = self.write_policies(&wanted, |p| !retired(p)).and_then(|n| {
            // New groups before the tries can point at them (existing ones never change,
            // above).
            Ok((n, self.write_groups(&wanted_groups)?))
        });
        let (policies, groups) = match written {
            Ok(w) => w,
            Err(e) => {
                self.v4.live.abort(p4);
                self.v6.live.abort(p6);
                return Err(e);
            }
        };
        stats.policies_written += policies;
        stats.groups_written += groups;
        // What the next diff walks: copied only for a family that changed.
        if !c4.is_empty() {
            self.prev_v4 = n4.into_owned();
        }
        if !c6.is_empty() {
            self.prev_v6 = n6.into_owned();
        }
        for (fam, p) in [(&mut self.v4, p4), (&mut self.v6, p6)] {
            let s = fam.live.commit(&mut fam.trie, p);
            stats.entries_written += s.entries_written;
            stats.subtrees_rebuilt += s.subtrees_rebuilt;
            stats.nodes_allocated += s.nodes_allocated;
            stats.nodes_released += s.nodes_released;
        }
        // Retired entities last, when no prefix points at them any more.
        stats.policies_written += self.write_policies(&wanted, retired)?;
        self.entities = next.entities.len() as u32;
        self.load_stats.v4_prefixes = next.v4.len();
        self.load_stats.v6_prefixes = next.v6.len();
        self.load_stats.v4_nodes = self.v4.live.nodes_in_use();
        self.load_stats.v6_nodes = self.v6.live.nodes_in_use();
        self.load_stats.v4_words = self.v4.live.words_in_use();
        self.load_stats.v6_words = self.v6.live.words_in_use();
        Ok(stats)
    }

    /// Writes the group table entries past those the map holds.
    fn write_groups(&mut self, wanted: &[GroupEntry]) -> Result<u64, DataplaneError> {
        let from = self.groups.len();
        let mut table: Array<_, GroupEntry> = array(&mut self.ebpf, maps::GROUPS)?;
        for (i, g) in wanted.iter().enumerate().skip(from) {
            table
                .set(i as u32, g, 0)
                .map_err(|e| map_error("writing the group table", e))?;
            self.groups.push(*g);
        }
        Ok((wanted.len().max(from) - from) as u64)
    }

    /// Writes the entries of `wanted` selected by `which` that differ from the map's.
    fn write_policies(
        &mut self,
        wanted: &[EntityPolicy],
        which: impl Fn(&EntityPolicy) -> bool,
    ) -> Result<u64, DataplaneError> {
        let mut pol: Array<_, EntityPolicy> = array(&mut self.ebpf, maps::POLICY)?;
        let mut written = 0;
        for (i, p) in wanted.iter().enumerate() {
            if which(p) && self.policies.get(i) != Some(p) {
                pol.set(i as u32, p, 0)
                    .map_err(|e| map_error("writing the policy map", e))?;
                if i >= self.policies.len() {
                    self.policies.resize(i + 1, EntityPolicy::default());
                }
                self.policies[i] = *p;
                written += 1;
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ipnetwork::Ipv4Network;

    use super::*;

    /// What `changes` must find, by building a map of the next policy.
    fn naive(live: &BTreeMap<(u128, u8), u32>, next: &[(Ipv4Network, u32)]) -> Vec<Change> {
        let next: BTreeMap<(u128, u8), u32> = next.iter().map(|(n, e)| (key4(n), *e)).collect();
        let mut out: Vec<Change> = next
            .iter()
            .filter(|(k, e)| live.get(k) != Some(e))
            .map(|(k, e)| Change {
                addr: k.0,
                len: k.1,
                group: Some(*e),
            })
            .collect();
        out.extend(
            live.keys()
                .filter(|k| !next.contains_key(k))
                .map(|k| Change {
                    addr: k.0,
                    len: k.1,
                    group: None,
                }),
        );
        out
    }

    fn sorted(mut c: Vec<Change>) -> Vec<(u128, u8, Option<u32>)> {
        let mut v: Vec<_> = c.drain(..).map(|c| (c.addr, c.len, c.group)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn the_merge_walk_finds_what_a_map_of_the_next_policy_finds() {
        // The tests' seeded generator; prefixes from a narrow space so that loaded and next
        // overlap, collide and repeat.
        let mut seeded = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut rng = move || seeded.next_u64();
        for round in 0..300 {
            let mut prefix = || {
                let len = 22 + (rng() % 4) as u8;
                let addr = 0x0a00_0000 | ((rng() % 64) as u32) << 8;
                Ipv4Network::new(addr.into(), len).unwrap()
            };
            let loaded: Vec<(Ipv4Network, u32)> =
                (0..(round % 40)).map(|_| (prefix(), 0)).collect();
            let mut next: Vec<(Ipv4Network, u32)> =
                (0..(round % 37)).map(|_| (prefix(), 0)).collect();
            let mut loaded: Vec<_> = loaded
                .into_iter()
                .map(|(n, _)| (Ipv4Network::new(n.network(), n.prefix()).unwrap(), 0))
                .collect();
            for (i, p) in loaded.iter_mut().enumerate() {
                p.1 = (i % 3) as u32;
            }
            for (i, p) in next.iter_mut().enumerate() {
                *p = (
                    Ipv4Network::new(p.0.network(), p.0.prefix()).unwrap(),
                    (i % 3) as u32,
                );
            }
            // What the loaded trie holds: a map of the loaded policy (last wins).
            let live: BTreeMap<(u128, u8), u32> =
                loaded.iter().map(|(n, g)| (key4(n), *g)).collect();
            let held = normalized(&loaded, key4);
            assert_eq!(
                held.iter().map(|(n, g)| (key4(n), *g)).collect::<Vec<_>>(),
                live.iter().map(|(k, g)| (*k, *g)).collect::<Vec<_>>()
            );
            assert_eq!(
                sorted(changes(&held, &normalized(&next, key4), key4)),
                sorted(naive(&live, &next)),
                "round {round}"
            );
        }
    }
}
