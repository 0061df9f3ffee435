//! What the data plane loads: entities with their action, evidence groups with their entity,
//! and per family each prefix with its group index. Built from a [`Compiled`] policy.
//!
//! A group is one network group of an entity's configuration (its `networks` entry): the trie
//! leaf names the group, the group its entity, so counters and events say which evidence a
//! packet's match rests on. [`EntityIndex`] keeps both kinds of index stable across reloads.

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;

use crate::{
    config::{Action, DirectionSet},
    policy::compile::Compiled,
};

/// One entity as the data plane knows it; its position in [`Policy::entities`] is its index.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EntityInfo {
    pub id: String,
    pub name: String,
    pub action: Action,
    pub direction: DirectionSet,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    /// A slot kept for an entity that left the policy (indices stay stable across reloads);
    /// it has no action and no prefixes.
    #[serde(skip)]
    pub retired: bool,
}

impl EntityInfo {
    /// The value for the data plane's policy map.
    pub fn abi_policy(&self) -> embargo_abi::EntityPolicy {
        if self.retired {
            return embargo_abi::EntityPolicy::default();
        }
        embargo_abi::EntityPolicy {
            action: match self.action {
                Action::Drop => embargo_abi::ACTION_DROP,
                Action::Monitor => embargo_abi::ACTION_MONITOR,
            },
            directions: self.direction.bits(),
            _pad: [0; 2],
        }
    }
}

/// One evidence group as the data plane knows it; its position in [`Policy::groups`] is its
/// index, the value the trie leaves hold.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its entity's index in [`Policy::entities`].
    pub entity: u32,
    /// Its identity within the entity ([`crate::policy::compile::GroupName::key`]).
    pub key: String,
    /// What counters, metrics (`evidence`), status and events call it: its `name`, else its
    /// evidence's source.
    pub label: String,
    /// Its evidence's source (URL or document).
    pub source: String,
    /// A slot kept for a group that left the policy (indices stay stable across reloads); no
    /// prefix points at it.
    #[serde(skip)]
    pub retired: bool,
}

impl GroupInfo {
    /// The value for the data plane's group table.
    pub fn abi(&self) -> embargo_abi::GroupEntry {
        embargo_abi::GroupEntry {
            entity: self.entity,
        }
    }
}

/// The data plane's input.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub entities: Vec<EntityInfo>,
    /// Evidence groups by index.
    pub groups: Vec<GroupInfo>,
    /// Prefixes with their group index.
    pub v4: Vec<(Ipv4Network, u32)>,
    pub v6: Vec<(Ipv6Network, u32)>,
}

impl Policy {
    /// A policy with one evidence group per entity, group `i` of entity `i`, whose prefixes
    /// carry entity indices (benches and tests that build a policy by hand).
    pub fn one_group_per_entity(
        entities: Vec<EntityInfo>,
        v4: Vec<(Ipv4Network, u32)>,
        v6: Vec<(Ipv6Network, u32)>,
    ) -> Self {
        let groups = entities
            .iter()
            .enumerate()
            .map(|(i, e)| GroupInfo {
                entity: i as u32,
                key: "name:all".into(),
                label: e.id.clone(),
                source: String::new(),
                retired: e.retired,
            })
            .collect();
        Self {
            entities,
            groups,
            v4,
            v6,
        }
    }

    /// The groups of entity `entity`, with their indices.
    pub fn groups_of(&self, entity: u32) -> impl Iterator<Item = (u32, &GroupInfo)> {
        self.groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.entity == entity)
            .map(|(i, g)| (i as u32, g))
    }
}

impl From<&Compiled> for Policy {
    /// Indices in compiled order: entity `i` of the compiled policy is entity `i`, its groups
    /// follow those of the entities before it.
    fn from(c: &Compiled) -> Self {
        EntityIndex::default().policy(c)
    }
}

/// Data-plane entity and group indices that stay the same across reloads, so a reload changes
/// only what changed: an entity keeps its index (and its counters) while it stays in the
/// policy, a new one gets the next free index, and one that leaves keeps its slot, retired.
/// Groups likewise, identified by their entity and key
/// ([`crate::policy::compile::GroupName::key`]): an index is never given to another group,
/// so a group index always names the same entity, and a reload that renumbers nothing cannot
/// attribute a packet to the wrong entity while the tries are rewritten.
#[derive(Clone, Debug, Default)]
pub struct EntityIndex {
    ids: Vec<String>,
    /// `(entity index, key)` by group index.
    groups: Vec<(u32, String)>,
}

impl EntityIndex {
    /// The index a previous agent used (entity ids and groups by index, from its state file).
    pub fn from_state(ids: Vec<String>, groups: Vec<(u32, String)>) -> Self {
        Self { ids, groups }
    }

    /// Entity ids by index.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Groups by index: `(entity index, key)`.
    pub fn groups(&self) -> &[(u32, String)] {
        &self.groups
    }

    /// The policy for `c` with stable indices.
    pub fn policy(&mut self, c: &Compiled) -> Policy {
        let mut position: std::collections::HashMap<&str, u32> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        let mut added = Vec::new();
        for e in &c.entities {
            if !position.contains_key(e.id.as_str()) {
                added.push(e.id.clone());
            }
        }
        drop(position);
        self.ids.extend(added);
        position = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        let by_compiled: Vec<u32> = c.entities.iter().map(|e| position[e.id.as_str()]).collect();
        let positional = entity_infos(c);
        let mut entities: Vec<EntityInfo> = self
            .ids
            .iter()
            .map(|id| EntityInfo {
                id: id.clone(),
                name: String::new(),
                action: Action::Monitor,
                direction: DirectionSet::Both,
                prefixes_v4: 0,
                prefixes_v6: 0,
                retired: true,
            })
            .collect();
        for (info, &i) in positional.into_iter().zip(&by_compiled) {
            entities[i as usize] = info;
        }
        // Groups: by (entity index, key); new ones get the next free index.
        let mut group_at: std::collections::HashMap<(u32, String), u32> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.clone(), i as u32))
            .collect();
        let mut groups: Vec<GroupInfo> = self
            .groups
            .iter()
            .map(|(entity, key)| GroupInfo {
                entity: *entity,
                key: key.clone(),
                label: label_of_key(key).to_owned(),
                source: String::new(),
                retired: true,
            })
            .collect();
        // By compiled entity, by group within it: the group index.
        let mut by_group: Vec<Vec<u32>> = Vec::with_capacity(c.entities.len());
        for (ce, &ei) in c.entities.iter().zip(&by_compiled) {
            let mut indices = Vec::with_capacity(ce.groups.len());
            for (gi, name) in ce.groups.iter().enumerate() {
                let id = (ei, name.key.clone());
                let index = *group_at.entry(id.clone()).or_insert_with(|| {
                    self.groups.push(id);
                    groups.push(GroupInfo {
                        entity: ei,
                        key: name.key.clone(),
                        label: String::new(),
                        source: String::new(),
                        retired: true,
                    });
                    (groups.len() - 1) as u32
                });
                let g = &mut groups[index as usize];
                g.label = name.label.clone();
                g.source = ce
                    .evidence
                    .get(gi)
                    .map(|e| e.source.clone())
                    .unwrap_or_default();
                g.retired = false;
                indices.push(index);
            }
            by_group.push(indices);
        }
        let group_of = |entity: u32, group: u32| by_group[entity as usize][group as usize];
        Policy {
            entities,
            groups,
            v4: c
                .v4_groups()
                .into_iter()
                .map(|(n, e, g)| (n, group_of(e, g)))
                .collect(),
            v6: c
                .v6_groups()
                .into_iter()
                .map(|(n, e, g)| (n, group_of(e, g)))
                .collect(),
        }
    }
}

/// The label of a group that left the policy, from its key
/// ([`crate::policy::compile::GroupName::key`]): its name, or its source.
fn label_of_key(key: &str) -> &str {
    if let Some(name) = key.strip_prefix("name:") {
        name
    } else {
        let source = key.strip_prefix("source:").unwrap_or(key);
        source.rsplit_once('#').map_or(source, |(s, _)| s)
    }
}

/// The data plane's view of each compiled entity, in compiled order.
fn entity_infos(c: &Compiled) -> Vec<EntityInfo> {
    c.entities
        .iter()
        .map(|e| EntityInfo {
            id: e.id.clone(),
            name: e.name.clone(),
            action: e.action,
            direction: e.direction,
            prefixes_v4: e.prefixes_v4,
            prefixes_v6: e.prefixes_v6,
            retired: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_values_follow_action_and_direction() {
        let e = EntityInfo {
            id: "a".into(),
            name: "A".into(),
            action: Action::Monitor,
            direction: DirectionSet::Inbound,
            prefixes_v4: 0,
            prefixes_v6: 0,
            retired: false,
        };
        let v = e.abi_policy();
        assert_eq!(v.action, embargo_abi::ACTION_MONITOR);
        assert_eq!(v.directions, embargo_abi::Direction::Inbound.bit());
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    fn compiled(entities: &[(&str, &str)]) -> Compiled {
        let mut text = String::from("enforce = [\"T\"]\n");
        for (id, prefix) in entities {
            text.push_str(&format!(
                "[[entities]]\nid = \"{id}\"\nname = \"{id}\"\naction = \"drop\"\n\
                 designations = [{{ authority = \"T\", regime = \"r\", reference = \"x\", listed_on = 2025-01-01, source = \"s\" }}]\n\
                 networks = [{{ prefixes = [\"{prefix}\"], guard_override = \"documentation ranges in a test\", evidence = {{ kind = \"manual\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }} }}]\n"
            ));
        }
        let c = crate::config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let r = crate::policy::resolve::resolve(&c).unwrap();
        crate::policy::compile::compile(
            &crate::config::validate::validate(&c).unwrap(),
            &r,
            chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn indices_survive_reloads_and_retire_in_place() {
        let mut index = EntityIndex::default();
        let p1 = index.policy(&compiled(&[
            ("a", "192.0.2.0/24"),
            ("b", "198.51.100.0/24"),
        ]));
        assert_eq!(
            p1.entities
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        // `a` leaves, `c` arrives (sorted before `b` in the compiled order): `b` keeps index 1.
        let p2 = index.policy(&compiled(&[
            ("b", "198.51.100.0/24"),
            ("c", "203.0.113.0/24"),
        ]));
        let ids: Vec<(&str, bool)> = p2
            .entities
            .iter()
            .map(|e| (e.id.as_str(), e.retired))
            .collect();
        assert_eq!(ids, [("a", true), ("b", false), ("c", false)]);
        assert_eq!(
            p2.v4,
            vec![
                ("198.51.100.0/24".parse().unwrap(), 1),
                ("203.0.113.0/24".parse().unwrap(), 2)
            ]
        );
        assert_eq!(p2.entities[0].abi_policy().action, embargo_abi::ACTION_NONE);
    }

    /// One entity `a` with network groups `(name, source, prefix)`.
    fn grouped(groups: &[(Option<&str>, &str, &str)]) -> Compiled {
        let mut text = String::from(
            "enforce = [\"T\"]\n[[entities]]\nid = \"a\"\nname = \"a\"\naction = \"drop\"\n\
             designations = [{ authority = \"T\", regime = \"r\", reference = \"x\", listed_on = 2025-01-01, source = \"s\" }]\n",
        );
        for (name, source, prefix) in groups {
            text.push_str("[[entities.networks]]\n");
            if let Some(n) = name {
                text.push_str(&format!("name = \"{n}\"\n"));
            }
            text.push_str(&format!(
                "prefixes = [\"{prefix}\"]\nguard_override = \"documentation ranges in a test\"\n\
                 evidence = {{ kind = \"manual\", source = \"{source}\", retrieved = 2026-01-01, confidence = \"high\" }}\n"
            ));
        }
        let c = crate::config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let r = crate::policy::resolve::resolve(&c).unwrap();
        crate::policy::compile::compile(
            &crate::config::validate::validate(&c).unwrap(),
            &r,
            chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        )
        .unwrap()
    }

    fn labels(p: &Policy) -> Vec<(&str, bool)> {
        p.groups
            .iter()
            .map(|g| (g.label.as_str(), g.retired))
            .collect()
    }

    #[test]
    fn prefixes_carry_their_group_and_group_indices_survive_reloads() {
        let mut index = EntityIndex::default();
        let p1 = index.policy(&grouped(&[
            (None, "https://a.example/whois", "192.0.2.0/24"),
            (
                Some("cisa-aa24"),
                "https://cisa.example/aa24",
                "198.51.100.0/24",
            ),
        ]));
        assert_eq!(
            labels(&p1),
            [("https://a.example/whois", false), ("cisa-aa24", false)]
        );
        assert_eq!(p1.groups[1].source, "https://cisa.example/aa24");
        assert_eq!(
            p1.groups.iter().map(|g| g.entity).collect::<Vec<_>>(),
            [0, 0]
        );
        assert_eq!(
            p1.v4,
            vec![
                ("192.0.2.0/24".parse().unwrap(), 0),
                ("198.51.100.0/24".parse().unwrap(), 1)
            ]
        );
        // A new group first, the named one with another prefix, the unnamed one gone: the named
        // group keeps index 1, the new one gets 2, the one that left stays retired at 0.
        let p2 = index.policy(&grouped(&[
            (
                Some("fbi-flash"),
                "https://fbi.example/flash",
                "203.0.113.0/24",
            ),
            (
                Some("cisa-aa24"),
                "https://cisa.example/aa24",
                "198.51.100.128/25",
            ),
        ]));
        assert_eq!(
            labels(&p2),
            [
                ("https://a.example/whois", true),
                ("cisa-aa24", false),
                ("fbi-flash", false)
            ]
        );
        assert_eq!(
            p2.v4,
            vec![
                ("198.51.100.128/25".parse().unwrap(), 1),
                ("203.0.113.0/24".parse().unwrap(), 2)
            ]
        );
        // The state file's copy of the index gives the same indices.
        let mut again = EntityIndex::from_state(index.ids().to_vec(), index.groups().to_vec());
        assert_eq!(
            again
                .policy(&grouped(&[(Some("cisa-aa24"), "x", "198.51.100.0/24")]))
                .v4[0]
                .1,
            1
        );
    }
}
