//! What the loaded program counted: per-group and per-entity counters, global stats, lost
//! events, map fill.
//!
//! The kernel counts per evidence group; an entity's counters are the sum of its groups' (the
//! group table this agent wrote says whose each is). Per-CPU values are summed here; counters
//! are read only for the counter slots in use, so a scrape costs groups x interfaces x 4
//! lookups. Reading never writes a map.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use embargo_abi::{Counter, Direction, EventLimits, Stat, Verdict, counter_index, maps};

use super::{Attachment, Dataplane, DataplaneError, Family, map_error};

/// Packets and bytes of one evidence group, summed over CPUs, by direction and verdict.
pub type GroupCounters = EntityCounters;

/// Packets and bytes for one entity (or group), summed over CPUs, by direction and verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntityCounters {
    /// `[direction][verdict]`, see [`Direction`] and [`Verdict`].
    pub slots: [[Counter; 2]; 2],
}

impl EntityCounters {
    pub fn get(&self, direction: Direction, verdict: Verdict) -> Counter {
        self.slots[direction as usize][verdict as usize]
    }

    /// Adds `other`'s counters, slot by slot (interfaces summed, generations carried).
    pub fn add(&mut self, other: &EntityCounters) {
        for (mine, theirs) in self.slots.iter_mut().zip(&other.slots) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.add(*t);
            }
        }
    }
}

impl Dataplane {
    /// Map fill levels for metrics: (map, entries in use, capacity).
    pub fn map_usage(&self) -> Vec<(&'static str, u64, u64)> {
        let trie = |f: &Family| (f.live.words_in_use(), f.trie.mirror.len() as u64);
        let (v4u, v4c) = trie(&self.v4);
        let (v6u, v6c) = trie(&self.v6);
        vec![
            ("ipv4_trie", v4u, v4c),
            ("ipv6_trie", v6u, v6c),
            (
                "policy",
                u64::from(self.entities),
                u64::from(self.entity_capacity),
            ),
            (
                "groups",
                self.groups.len() as u64,
                u64::from(self.group_capacity),
            ),
        ]
    }

    /// The interfaces attached, in attach order.
    pub fn attachments(&self) -> Vec<Attachment> {
        self.attached.iter().map(|a| a.attachment.clone()).collect()
    }

    /// Per-entity counters summed over CPUs and interfaces, in entity order.
    pub fn counters(&self) -> Result<Vec<EntityCounters>, DataplaneError> {
        let mut out = vec![EntityCounters::default(); self.entities as usize];
        for (_, per_entity) in self.counters_by_slot()? {
            for (total, c) in out.iter_mut().zip(per_entity) {
                total.add(&c);
            }
        }
        Ok(out)
    }

    /// Per-entity counters summed over CPUs, for each counter slot in use (with its ifindex):
    /// the sums of [`Dataplane::group_counters_by_slot`] by entity.
    pub fn counters_by_slot(&self) -> Result<Vec<(u32, Vec<EntityCounters>)>, DataplaneError> {
        Ok(self
            .group_counters_by_slot()?
            .into_iter()
            .map(|(ifindex, per_group)| (ifindex, self.by_entity(&per_group)))
            .collect())
    }

    /// Per-group counters summed over CPUs and interfaces, in group order.
    pub fn group_counters(&self) -> Result<Vec<GroupCounters>, DataplaneError> {
        let mut out = vec![GroupCounters::default(); self.groups.len()];
        for (_, per_group) in self.group_counters_by_slot()? {
            for (total, c) in out.iter_mut().zip(per_group) {
                total.add(&c);
            }
        }
        Ok(out)
    }

    /// Sums per-group counters (in group order) by entity, in entity order.
    fn by_entity(&self, per_group: &[GroupCounters]) -> Vec<EntityCounters> {
        let mut out = vec![EntityCounters::default(); self.entities as usize];
        for (g, c) in self.groups.iter().zip(per_group) {
            if let Some(total) = out.get_mut(g.entity as usize) {
                total.add(c);
            }
        }
        out
    }

    /// Per-group counters summed over CPUs, for each counter slot in use (with its ifindex).
    /// Reads only the slots in use: a scrape costs groups x interfaces x 4 lookups.
    pub fn group_counters_by_slot(&self) -> Result<Vec<(u32, Vec<GroupCounters>)>, DataplaneError> {
        let map: PerCpuArray<_, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map(maps::COUNTERS)
                .expect("defined by the object"),
        )
        .map_err(|e| map_error("opening the counters map", e))?;
        let mut out = Vec::new();
        for (slot, ifindex) in self.slots() {
            let mut per_group = vec![GroupCounters::default(); self.groups.len()];
            for (group, counters) in per_group.iter_mut().enumerate() {
                for d in Direction::ALL {
                    for v in Verdict::ALL {
                        let values = map
                            .get(&counter_index(group as u32, slot, d, v), 0)
                            .map_err(|e| map_error("reading the counters map", e))?;
                        let c = &mut counters.slots[d as usize][v as usize];
                        for cpu in values.iter() {
                            c.add(*cpu);
                        }
                    }
                }
            }
            out.push((ifindex, per_group));
        }
        Ok(out)
    }

    /// Global stats summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> Result<Vec<u64>, DataplaneError> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(maps::STATS).expect("defined by the object"))
                .map_err(|e| map_error("opening the stats map", e))?;
        (0..Stat::COUNT)
            .map(|i| {
                map.get(&i, 0)
                    .map(|v| v.iter().sum())
                    .map_err(|e| map_error("reading the stats map", e))
            })
            .collect()
    }

    /// The event limits in force (off until set).
    pub fn event_limits(&self) -> EventLimits {
        self.event_limits.unwrap_or(EventLimits::OFF)
    }

    /// Each entity's event budget summed over CPUs (`u64::MAX` where any CPU has events off),
    /// by entity index: what is left until the next refill.
    pub fn event_budgets(&self) -> Result<Vec<u64>, DataplaneError> {
        let map = self.ebpf.map(maps::EVENT_BUDGETS).ok_or_else(|| {
            map_error(
                format!("finding map {}", maps::EVENT_BUDGETS),
                aya::maps::MapError::InvalidName {
                    name: maps::EVENT_BUDGETS.into(),
                },
            )
        })?;
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(map)
            .map_err(|e| map_error(format!("opening map {}", maps::EVENT_BUDGETS), e))?;
        (0..self.entities)
            .map(|i| {
                map.get(&i, 0)
                    .map(|v| {
                        v.iter()
                            .try_fold(0u64, |sum, b| {
                                (*b != embargo_abi::EVENTS_OFF).then(|| sum.saturating_add(*b))
                            })
                            .unwrap_or(embargo_abi::EVENTS_OFF)
                    })
                    .map_err(|e| map_error("reading the event budget map", e))
            })
            .collect()
    }

    /// Takes the event ring buffer out of the loaded object, for the one reader: `None` once
    /// taken. The ring stays this generation's: a new generation has its own.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        RingBuf::try_from(self.ebpf.take_map(maps::EVENTS)?).ok()
    }

    /// Events not sent, per entity index (over the entity's limit or the ring full), summed
    /// over CPUs; as many as the policy has entities.
    pub fn events_lost(&self) -> Result<Vec<u64>, DataplaneError> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(maps::EVENTS_LOST)
                .expect("defined by the object"),
        )
        .map_err(|e| map_error("opening the lost-events map", e))?;
        (0..self.entities)
            .map(|i| {
                map.get(&i, 0)
                    .map(|v| v.iter().sum())
                    .map_err(|e| map_error("reading the lost-events map", e))
            })
            .collect()
    }
}
