//! From a parsed configuration to the prefix lists the data plane loads.
//!
//! Deterministic: the same configuration always yields the same lists in the same order. When
//! two entities list the same prefix, the one listed first in the file keeps it and the other
//! is reported; a more specific prefix always wins over a broader one in the data plane.

use std::collections::{HashMap, HashSet};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::Serialize;

use crate::config::{self, Action, ConfigError, DirectionSet, Loaded};

/// One entity as the data plane knows it; its position in [`Policy::entities`] is its index.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EntityInfo {
    pub id: String,
    pub name: String,
    pub action: Action,
    pub direction: DirectionSet,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
}

impl EntityInfo {
    /// The value for the data plane's policy map.
    pub fn abi_policy(&self) -> embargo_abi::EntityPolicy {
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

/// The compiled policy: entities and, per family, each prefix with its entity index.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub entities: Vec<EntityInfo>,
    pub v4: Vec<(Ipv4Network, u32)>,
    pub v6: Vec<(Ipv6Network, u32)>,
    /// Things decided that a person should know about (warnings; they do not block).
    pub notes: Vec<String>,
}

/// Compiles a loaded configuration.
pub fn compile(loaded: &Loaded) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut owner: HashMap<IpNetwork, u32> = HashMap::new();
    if loaded.config.entities.len() as u64 > u64::from(embargo_abi::trie::MAX_ENTITY) {
        return Err(ConfigError::Invalid {
            at: loaded.at(0),
            message: "too many entities for the data plane".into(),
        });
    }
    for (index, entity) in loaded.config.entities.iter().enumerate() {
        let index = index as u32;
        let id = entity.id.get_ref().as_str();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid {
                at: loaded.at(entity.id.span().start),
                message: format!(
                    "entity id `{id}` must be a slug: lowercase letters, digits, `-` and `_`"
                ),
            });
        }
        if let Some(first) = ids.insert(id, index as usize) {
            return Err(ConfigError::Invalid {
                at: loaded.at(entity.id.span().start),
                message: format!(
                    "entity id `{id}` is used twice (first by entity #{}); ids must be unique",
                    first + 1
                ),
            });
        }
        let mut info = EntityInfo {
            id: id.to_owned(),
            name: entity.name.clone(),
            action: entity.action,
            direction: entity.direction,
            prefixes_v4: 0,
            prefixes_v6: 0,
        };
        let mut own = HashSet::new();
        for prefix in &entity.prefixes {
            let net =
                config::parse_prefix(prefix.get_ref()).map_err(|message| ConfigError::Invalid {
                    at: loaded.at(prefix.span().start),
                    message,
                })?;
            if !own.insert(net) {
                policy
                    .notes
                    .push(format!("entity `{id}` lists {net} twice; counted once"));
                continue;
            }
            if let Some(&first) = owner.get(&net) {
                policy.notes.push(format!(
                    "{net} is listed by `{}` and `{id}`; `{}` (listed first) keeps it",
                    policy.entities[first as usize].id, policy.entities[first as usize].id
                ));
                continue;
            }
            owner.insert(net, index);
            match net {
                IpNetwork::V4(n) => {
                    info.prefixes_v4 += 1;
                    policy.v4.push((n, index));
                }
                IpNetwork::V6(n) => {
                    info.prefixes_v6 += 1;
                    policy.v6.push((n, index));
                }
            }
        }
        policy.entities.push(info);
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn compile_str(text: &str) -> Result<Policy, ConfigError> {
        compile(&config::parse(Path::new("p.toml"), text.to_owned())?)
    }

    #[test]
    fn first_entity_keeps_a_shared_prefix() {
        let p = compile_str(
            r#"
[[entities]]
id = "a"
name = "A"
action = "drop"
prefixes = ["192.0.2.0/24"]
[[entities]]
id = "b"
name = "B"
action = "monitor"
prefixes = ["192.0.2.0/24", "2001:db8::/32"]
"#,
        )
        .unwrap();
        assert_eq!(p.v4, vec![("192.0.2.0/24".parse().unwrap(), 0)]);
        assert_eq!(p.v6, vec![("2001:db8::/32".parse().unwrap(), 1)]);
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.entities[1].prefixes_v4, 0);
    }

    #[test]
    fn duplicate_ids_are_refused_with_location() {
        let err = compile_str(
            "[[entities]]\nid = \"a\"\nname = \"A\"\naction = \"drop\"\n\
             [[entities]]\nid = \"a\"\nname = \"B\"\naction = \"drop\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("p.toml:6:"), "{err}");
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn bad_prefix_points_at_its_line() {
        let err = compile_str(
            "[[entities]]\nid = \"a\"\nname = \"A\"\naction = \"drop\"\nprefixes = [\n  \"192.0.2.0/24\",\n  \"10.1.2.3/8\",\n]\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("p.toml:7:3"), "{err}");
        assert!(err.to_string().contains("10.0.0.0/8"), "{err}");
    }

    #[test]
    fn policy_values_follow_action_and_direction() {
        let p = compile_str(
            "[[entities]]\nid = \"a\"\nname = \"A\"\naction = \"monitor\"\ndirection = \"inbound\"\n",
        )
        .unwrap();
        let v = p.entities[0].abi_policy();
        assert_eq!(v.action, embargo_abi::ACTION_MONITOR);
        assert_eq!(v.directions, embargo_abi::Direction::Inbound.bit());
    }
}
