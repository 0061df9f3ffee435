//! What the data plane loads: entities with their action, and per family each prefix with its
//! entity index. Built from a [`Compiled`] policy.

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

/// The data plane's input.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub entities: Vec<EntityInfo>,
    pub v4: Vec<(Ipv4Network, u32)>,
    pub v6: Vec<(Ipv6Network, u32)>,
}

impl From<&Compiled> for Policy {
    fn from(c: &Compiled) -> Self {
        Self {
            entities: c
                .entities
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
                .collect(),
            v4: c.v4(),
            v6: c.v6(),
        }
    }
}

/// Data-plane entity indices that stay the same across reloads, so a reload changes only what
/// changed: an entity keeps its index (and its counters) while it stays in the policy, a new
/// one gets the next free index, and one that leaves keeps its slot, retired.
#[derive(Clone, Debug, Default)]
pub struct EntityIndex {
    ids: Vec<String>,
}

impl EntityIndex {
    /// The index a previous agent used (entity ids by index, from its state file).
    pub fn from_ids(ids: Vec<String>) -> Self {
        Self { ids }
    }

    /// Entity ids by index.
    pub fn ids(&self) -> &[String] {
        &self.ids
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
        let positional = Policy::from(c);
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
        for (info, &i) in positional.entities.into_iter().zip(&by_compiled) {
            entities[i as usize] = info;
        }
        Policy {
            entities,
            v4: positional
                .v4
                .into_iter()
                .map(|(n, e)| (n, by_compiled[e as usize]))
                .collect(),
            v6: positional
                .v6
                .into_iter()
                .map(|(n, e)| (n, by_compiled[e as usize]))
                .collect(),
        }
    }
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
}
