//! Attestation: the kernel maps read back and compared with what this agent wrote.
//!
//! The tries are compared with their mirrors, the policy map with the policies written, the
//! group table with the groups written, the role
//! map with the interfaces configured (an entry for an interface this agent did not configure is
//! drift too). With `repair`, every difference is written back. Reading never changes a map.

use aya::maps::Array;
use embargo_abi::{EntityPolicy, GroupEntry, IfaceConfig, maps};
use serde::Serialize;

use super::{Dataplane, DataplaneError, array, map_error};

/// What [`Dataplane::attest`] found (and repaired).
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Drift {
    pub v4_entries: u64,
    pub v6_entries: u64,
    pub policies: u64,
    pub roles: u64,
    /// Group table entries (evidence group -> entity).
    #[serde(default)]
    pub groups: u64,
}

impl Drift {
    pub fn total(&self) -> u64 {
        self.v4_entries + self.v6_entries + self.policies + self.roles + self.groups
    }
}

impl Dataplane {
    /// Reads the kernel maps back and compares them with what this agent wrote: the tries
    /// (against their mirrors), the policy map and the interface roles with their flags (a
    /// cleared [`IFACE_EGRESS`] counts as role drift, and so does an entry for an interface
    /// this agent did not configure). With `repair`,
    /// every difference is written back.
    pub fn attest(&mut self, repair: bool) -> Result<Drift, DataplaneError> {
        let mut drift = Drift::default();
        for (fam, n) in [
            (&self.v4, &mut drift.v4_entries),
            (&self.v6, &mut drift.v6_entries),
        ] {
            let bad = fam.trie.drift();
            *n = bad.len() as u64;
            if repair {
                fam.trie.repair(&bad);
            }
        }
        let policies = self.policies.clone();
        let mut pol: Array<_, EntityPolicy> = array(&mut self.ebpf, maps::POLICY)?;
        for (i, want) in policies.iter().enumerate() {
            let got = pol
                .get(&(i as u32), 0)
                .map_err(|e| map_error("reading the policy map", e))?;
            if got != *want {
                drift.policies += 1;
                if repair {
                    pol.set(i as u32, want, 0)
                        .map_err(|e| map_error("repairing the policy map", e))?;
                }
            }
        }
        let groups = self.groups.clone();
        let mut table: Array<_, GroupEntry> = array(&mut self.ebpf, maps::GROUPS)?;
        for (i, want) in groups.iter().enumerate() {
            let got = table
                .get(&(i as u32), 0)
                .map_err(|e| map_error("reading the group table", e))?;
            if got != *want {
                drift.groups += 1;
                if repair {
                    table
                        .set(i as u32, want, 0)
                        .map_err(|e| map_error("repairing the group table", e))?;
                }
            }
        }
        let roles: Vec<(u32, IfaceConfig)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, i)| i.map(|i| (slot, i)))
            .map(|(slot, ifindex)| {
                let role = self
                    .attached
                    .iter()
                    .find(|a| a.attachment.ifindex == ifindex)
                    .map_or(embargo_abi::IfaceRole::None, |a| a.attachment.role.abi());
                (
                    ifindex,
                    IfaceConfig {
                        role: role as u8,
                        slot: slot as u8,
                        flags: self.flags[slot],
                        link: self.link_types[slot] as u8,
                    },
                )
            })
            .filter(|(_, c)| c.role != embargo_abi::IfaceRole::None as u8)
            .collect();
        let mut map: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        for (ifindex, want) in roles {
            let got = map
                .get(&ifindex, 0)
                .map_err(|e| map_error("reading the role map", e))?;
            if got != want {
                drift.roles += 1;
                if repair {
                    map.set(ifindex, want, 0)
                        .map_err(|e| map_error("repairing the role map", e))?;
                }
            }
        }
        // An entry for an interface this agent did not configure (written behind its back)
        // is drift too: the repair clears it.
        let known: Vec<u32> = self.slots.iter().flatten().copied().collect();
        for ifindex in 0..map.len() {
            if known.contains(&ifindex) {
                continue;
            }
            let got = map
                .get(&ifindex, 0)
                .map_err(|e| map_error("reading the role map", e))?;
            if got != IfaceConfig::default() {
                drift.roles += 1;
                if repair {
                    map.set(ifindex, IfaceConfig::default(), 0)
                        .map_err(|e| map_error("repairing the role map", e))?;
                }
            }
        }
        Ok(drift)
    }
}
