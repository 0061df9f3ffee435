//! How `embargo run` gets its data plane: the maps a previous agent pinned, reused with the
//! policy applied as a diff when the state file agrees with them ([`StartKind::Adopted`]), or a
//! fresh generation ([`StartKind::Fresh`]) with the reason logged and shown by `embargo status`.
//!
//! Invariants: nothing is attached or detached here (the caller attaches, taking over any
//! pinned links atomically); a reused data plane carries the previous agent's counters (from
//! the state file) so totals never go back; nothing to reuse on a first start or with
//! `--no-pin` is logged at info, any other reason at warn.

use std::collections::HashMap;

use super::{RunError, RunOptions};
use crate::{
    dataplane::{Dataplane, EntityCounters, state},
    observe::status::{StartKind, StartStatus},
    policy::{EntityIndex, Policy, compile::Compiled},
};

/// The data plane an agent starts with, and what goes with it.
pub(super) struct Started {
    pub(super) dataplane: Dataplane,
    pub(super) index: EntityIndex,
    pub(super) policy: Policy,
    pub(super) carried: HashMap<String, EntityCounters>,
    /// By group ([`state::group_carry_key`]).
    pub(super) carried_groups: HashMap<String, EntityCounters>,
    pub(super) start: StartStatus,
}

pub(super) fn to_carried(c: &EntityCounters) -> state::Carried {
    c.slots.map(|d| d.map(|v| (v.packets, v.bytes)))
}

fn from_carried(c: &state::Carried) -> EntityCounters {
    EntityCounters {
        slots: c.map(|d| d.map(|(packets, bytes)| embargo_abi::Counter { packets, bytes })),
    }
}

/// Reuses the maps a previous agent pinned, with `compiled` applied as a diff, when the state
/// file agrees with them; else loads a fresh generation, saying why. Either way nothing is
/// attached or detached yet.
pub(super) fn start_dataplane(opts: &RunOptions, compiled: &Compiled) -> Result<Started, RunError> {
    let mut netlink_left = Vec::new();
    // Nothing to reuse is expected (first start, no pins); anything else is worth a warning.
    let mut expected = false;
    let reason = match &opts.pin_dir {
        None => {
            expected = true;
            "pinning is off (--no-pin)".to_owned()
        }
        Some(pin_dir) => match state::read(&opts.state_dir) {
            Ok(None) => {
                expected = true;
                format!(
                    "no state file in {} (first start, or removed by `embargo detach`)",
                    opts.state_dir.display()
                )
            }
            Err(e) => {
                if let state::StateError::OldFormat {
                    netlink_filters, ..
                } = &e
                {
                    netlink_left = netlink_filters.clone();
                }
                e.to_string()
            }
            Ok(Some(st)) => {
                netlink_left = st.netlink_filters.clone();
                match Dataplane::reuse(pin_dir, &st) {
                    Err(why) => why.to_string(),
                    Ok(mut dataplane) => {
                        let mut index =
                            EntityIndex::from_state(st.entity_ids.clone(), st.groups.clone());
                        let policy = index.policy(compiled);
                        match dataplane.apply(&policy) {
                            Ok(stats) => {
                                tracing::info!(
                                    generation = dataplane.generation(),
                                    prefixes_changed = stats.prefixes_changed,
                                    entries_written = stats.entries_written,
                                    policies_written = stats.policies_written,
                                    "adopted the pinned maps and applied the policy as a diff"
                                );
                                let start = StartStatus {
                                    kind: StartKind::Adopted,
                                    reason: format!(
                                        "the pinned maps agree with the state file (policy {} before)",
                                        st.digest.get(..16).unwrap_or(&st.digest)
                                    ),
                                    generation: dataplane.generation().to_owned(),
                                    prefixes_changed: stats.prefixes_changed,
                                    entries_written: stats.entries_written,
                                    policies_written: stats.policies_written,
                                    pins: None,
                                };
                                return Ok(Started {
                                    dataplane,
                                    index,
                                    policy,
                                    carried: st
                                        .carried
                                        .iter()
                                        .map(|(id, c)| (id.clone(), from_carried(c)))
                                        .collect(),
                                    carried_groups: st
                                        .carried_groups
                                        .iter()
                                        .map(|(id, c)| (id.clone(), from_carried(c)))
                                        .collect(),
                                    start,
                                });
                            }
                            Err(e) => format!("the policy does not fit the pinned maps: {e}"),
                        }
                    }
                }
            }
        },
    };
    if expected {
        tracing::info!(%reason, "not reusing pinned maps; loading a fresh data-plane generation");
    } else {
        tracing::warn!(%reason, "not reusing pinned maps; loading a fresh data-plane generation");
    }
    let mut index = EntityIndex::default();
    let policy = index.policy(compiled);
    let mut dataplane = Dataplane::load(&policy)?;
    dataplane.set_netlink_left(netlink_left);
    let start = StartStatus {
        kind: StartKind::Fresh,
        reason,
        generation: dataplane.generation().to_owned(),
        ..Default::default()
    };
    Ok(Started {
        dataplane,
        index,
        policy,
        carried: HashMap::new(),
        carried_groups: HashMap::new(),
        start,
    })
}
