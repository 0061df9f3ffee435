//! What the data plane loads: entities with their action, and per family each prefix with its
//! entity index. Built from a [`Compiled`] policy.

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;

use crate::{
    compile::Compiled,
    config::{Action, DirectionSet},
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
                })
                .collect(),
            v4: c.v4(),
            v6: c.v6(),
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
        };
        let v = e.abi_policy();
        assert_eq!(v.action, embargo_abi::ACTION_MONITOR);
        assert_eq!(v.directions, embargo_abi::Direction::Inbound.bit());
    }
}
