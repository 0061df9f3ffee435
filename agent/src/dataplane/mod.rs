//! Loads Embargo's XDP program, sizes and fills its maps, and holds it with its attachments.
//!
//! Maps are sized from the policy before the object is loaded: each family's compact trie
//! ([`embargo_abi::trie`]) takes its 256 KiB direct array plus what the policy's subtrees need,
//! with headroom for reloads ([`SPARE_DIVISOR`], at least [`MIN_SPARE_NODES`]); a reload that
//! does not fit loads a new generation sized afresh. The tries are copied in through `mmap`
//! (the arrays are `BPF_F_MMAPABLE`), so a million-prefix policy loads in one memory copy
//! rather than a syscall per entry. Everything is filled before the first interface is attached:
//! the program never sees a half-loaded policy.
//!
//! The wing, by what it does:
//! - here: [`Dataplane`] (the loaded object, its attachments, its role map) and its load;
//! - [`attach`]: XDP attach and detach, the interfaces' role-map entries, the move of every
//!   attachment to a new generation ([`Dataplane::take_over`]);
//! - [`egress`]: the TC egress classifier on `outside` interfaces (TCX or netlink);
//! - [`update`]: a new policy applied in place ([`Dataplane::apply`]);
//! - [`attest`]: the maps read back and compared with what was written;
//! - [`read`]: counters, stats, lost events and map fill levels;
//! - [`pins`]: pin paths, links kept or adopted across restarts, the maps of a generation
//!   pinned and reused ([`Dataplane::reuse`]), pins removed by `embargo detach`;
//! - [`error`]: [`DataplaneError`], each variant saying what to do;
//! - [`trie`] (build, live, mapped, space), [`state`] (the state file), [`system`] (kernel and
//!   interface facts), [`bpffs`] (the pin folder's file system).
//!
//! Evidence groups: the tries' leaves hold group indices; the group table (`EMB_GROUPS`) maps
//! each to its entity, whose policy-map entry gives the action; counters are per group
//! ([`Dataplane::group_counters`]), an entity's are their sum ([`Dataplane::counters`]). The
//! group table is sized like the policy map (a quarter more than the policy needs, at least
//! 64: the counters, per group and interface, are most of the maps of a small policy) and,
//! like it, filled before the first interface is attached.
//!
//! Invariant: the attached interfaces are one list, each entry with its attachment, its XDP
//! link and its TC egress link ([`Attached`]), so they cannot fall out of step.
//!
//! Events: both programs (XDP and TC egress) send drop and monitor events over a ring buffer,
//! limited per entity by a per-CPU budget the agent sets ([`Dataplane::set_event_limits`]) and
//! refills once a second ([`Dataplane::refill_event_budgets`]); the kernel reads no clock for
//! it, only when it sends an event. They are off at load ([`EventLimits::OFF`]). The ring is handed to the reader ([`Dataplane::take_events`], see [`crate::observe::events`]) and the events
//! the limit or a full ring stopped are counted per entity ([`Dataplane::events_lost`]).

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, Map, MapData, MapError, PerCpuArray, PerCpuValues},
    programs::{ProgramError, SchedClassifier, Xdp},
};
use embargo_abi::{
    EVENTS_OFF, EVENTS_RING_BYTES, EntityPolicy, EventLimits, GroupEntry, IfaceConfig, Link,
    MAX_INTERFACES, maps, trie as abi_trie,
};
use serde::Serialize;

mod attach;
mod attest;
pub mod bpffs;
mod egress;
mod error;
pub mod pins;
mod read;
pub mod state;
pub mod system;
pub mod trie;
mod update;

use attach::Held;
pub use attest::Drift;
use egress::{EgressLink, TcHeld};
pub use egress::{TcApi, remove_netlink_filters};
pub use error::DataplaneError;
pub(crate) use error::{detach_error, link_error, load_error, map_error, pin_error};
pub use pins::{ReuseError, detach_pinned, link_pin_path, tc_pin_path};
pub use read::{EntityCounters, GroupCounters};
use trie::{
    build::{self, Table},
    live::LiveTrie,
    mapped::Mirrored,
};
pub use update::ApplyStats;
use update::{key4, key6, normalized};

use crate::{config::Role, policy::Policy};

/// The production object, built by `build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/embargo-xdp"));
/// The bench reference programs (`XDP_DROP`, LPM trie), built by `build.rs`.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/embargo-xdp-bench"));

/// An interface the program is attached to.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub ifindex: u32,
    pub role: Role,
    pub mode: AttachMode,
    /// The TC egress classifier is attached too (host egress is enforced).
    pub egress: bool,
    /// What its packets start with, from its hardware type (not serialized).
    #[serde(skip)]
    pub link: Link,
}

/// How an attachment's XDP program runs: serialized (and shown) as `native`, `generic` or
/// `adopted` (a pinned link a previous agent attached, taken over as it was).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the generic path (`XDP_FLAGS_SKB_MODE`).
    Generic,
    /// Taken over from a previous agent's pinned link, in whatever mode it was attached.
    Adopted,
}

impl AttachMode {
    /// The name status, metrics and logs show.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Adopted => "adopted",
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sizes of what was loaded, for logs and status.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LoadStats {
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
    /// Trie nodes in use.
    pub v4_nodes: u32,
    pub v6_nodes: u32,
    /// Trie words in use: the direct array and every subtree block (nodes and leaves).
    pub v4_words: u64,
    pub v6_words: u64,
    /// `max_entries` of the trie maps (64-byte chunks of 16 words).
    pub v4_chunks: u32,
    pub v6_chunks: u32,
    /// `max_entries` of the policy map (entities it can hold).
    pub policy_capacity: u32,
    /// `max_entries` of the group table (evidence groups it can hold; the counters map holds
    /// as many groups' counters).
    pub group_capacity: u32,
    pub map_bytes: u64,
}

/// An attached interface with its links: one entry per interface, so the attachment and its
/// links cannot fall out of step.
struct Attached {
    attachment: Attachment,
    /// Its XDP link.
    xdp: Held,
    /// Its TC egress classifier's link, where egress is enforced.
    egress: Option<EgressLink>,
}

/// The loaded program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    entities: u32,
    /// Counter slot -> ifindex using it.
    slots: [Option<u32>; MAX_INTERFACES as usize],
    /// The interfaces attached, in attach order, each with its links.
    attached: Vec<Attached>,
    /// Where XDP links are pinned (bpffs), so enforcement survives the agent; `None`: not pinned.
    pin_dir: Option<PathBuf>,
    /// Role-map flags ([`IFACE_EGRESS`]) of the interface in each counter slot.
    flags: [u8; MAX_INTERFACES as usize],
    /// Role-map link type ([`IfaceConfig::link`]) of the interface in each counter slot.
    link_types: [Link; MAX_INTERFACES as usize],
    /// How the TC egress classifier is attached on this kernel.
    tc_api: TcApi,
    /// Each family's trie: its mapped memory (with the mirror of what we wrote) and its prefix
    /// set, for in-place updates and attestation.
    v4: Family,
    v6: Family,
    /// The prefix sets the tries hold, [`update::normalized`]: what the next reload's diff
    /// walks (a merge of two sorted vectors, cheaper than walking the tries' prefix trees).
    prev_v4: Vec<(ipnetwork::Ipv4Network, u32)>,
    prev_v6: Vec<(ipnetwork::Ipv6Network, u32)>,
    /// What the policy map holds, by entity index (for updates and attestation).
    policies: Vec<EntityPolicy>,
    /// Entities the policy map has room for.
    entity_capacity: u32,
    /// What the group table holds, by group index (for updates, attestation and summing the
    /// groups' counters by entity).
    groups: Vec<GroupEntry>,
    /// Groups the group table and the counters map have room for.
    group_capacity: u32,
    /// The event limits the budgets follow; `None`: unknown (adopted maps), so the next
    /// [`Dataplane::set_event_limits`] writes them whatever they are.
    event_limits: Option<EventLimits>,
    /// This generation's id: its maps are pinned at `<pin dir>/maps-<generation>`.
    generation: String,
    /// Where this generation's maps are pinned, once they are.
    maps_dir: Option<PathBuf>,
    /// Netlink egress filters a previous agent left, by interface (from the state file), for
    /// [`Dataplane::adopt`] to take over.
    netlink_left: Vec<state::NetlinkFilter>,
    pub load_stats: LoadStats,
}

/// One family's loaded trie.
struct Family {
    trie: Mirrored,
    live: LiveTrie,
}

/// Headroom at load for reloads: a trie array gets room for `1 / SPARE_DIVISOR` more than its
/// subtrees take (a reload rebuilds each touched subtree in free space before switching to it)...
pub const SPARE_DIVISOR: u32 = 4;
/// ... and at least this many nodes' worth (32 bytes each: 128 KiB).
pub const MIN_SPARE_NODES: u32 = 4 * 1024;
/// Entities the maps hold at least (so adding some later fits in place).
const MIN_ENTITY_CAPACITY: u32 = 64;
/// Evidence groups the maps hold at least.
const MIN_GROUP_CAPACITY: u32 = 64;

/// `n` and a quarter more: room for entities or groups a reload adds in place.
fn with_headroom(n: u32) -> u32 {
    n.saturating_add(n / SPARE_DIVISOR)
}

/// Words of the trie array for `table` with headroom: the direct array, the subtrees, the
/// spare room, in whole chunks.
fn trie_len(table: &Table) -> usize {
    let spare = (table.used / SPARE_DIVISOR).max(MIN_SPARE_NODES) as usize;
    (table.entries.len() + spare * abi_trie::NODE_WORDS as usize)
        .next_multiple_of(abi_trie::LANES as usize)
}

/// Minimum kernel: bounded loops (5.3), mmap-able arrays (5.5), XDP bpf_link (5.9).
const MIN_KERNEL: (u32, u32) = (5, 10);

impl Dataplane {
    /// Builds the tries for `policy`, loads the program with maps sized to fit, and fills them.
    pub fn load(policy: &Policy) -> Result<Self, DataplaneError> {
        let v4 = build::build_v4(&policy.v4)?;
        let v6 = build::build_v6(&policy.v6)?;
        Self::load_tables(policy, &v4, &v6)
    }

    /// As [`Dataplane::load`], with tries already built.
    pub fn load_tables(policy: &Policy, v4: &Table, v6: &Table) -> Result<Self, DataplaneError> {
        if let Some(found) = system::kernel_release()
            && system::version_less(&found, MIN_KERNEL)
        {
            return Err(DataplaneError::KernelTooOld {
                found,
                needed: format!("{}.{}", MIN_KERNEL.0, MIN_KERNEL.1),
            });
        }
        let entities = with_headroom(policy.entities.len() as u32).max(MIN_ENTITY_CAPACITY);
        let group_capacity = with_headroom(policy.groups.len() as u32).max(MIN_GROUP_CAPACITY);
        let counters = group_capacity * embargo_abi::COUNTERS_PER_GROUP;
        let (v4_len, v6_len) = (trie_len(v4), trie_len(v6));
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::V4_TRIE, (v4_len / abi_trie::LANES as usize) as u32)
            .map_max_entries(maps::V6_TRIE, (v6_len / abi_trie::LANES as usize) as u32)
            .map_max_entries(maps::POLICY, entities)
            .map_max_entries(maps::GROUPS, group_capacity)
            .map_max_entries(maps::COUNTERS, counters)
            .map_max_entries(maps::EVENT_BUDGETS, entities)
            .map_max_entries(maps::EVENTS_LOST, entities);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| classify_load_error(e, v4_len, v6_len))?;

        let v4_trie = map_trie(&ebpf, maps::V4_TRIE, v4_len, &v4.entries)?;
        let v6_trie = map_trie(&ebpf, maps::V6_TRIE, v6_len, &v6.entries)?;
        let policies: Vec<EntityPolicy> = policy.entities.iter().map(|e| e.abi_policy()).collect();
        {
            let mut pol: Array<_, EntityPolicy> = array(&mut ebpf, maps::POLICY)?;
            for (i, p) in policies.iter().enumerate() {
                pol.set(i as u32, p, 0)
                    .map_err(|e| map_error("writing the policy map", e))?;
            }
        }
        let groups: Vec<GroupEntry> = policy.groups.iter().map(|g| g.abi()).collect();
        {
            let mut table: Array<_, GroupEntry> = array(&mut ebpf, maps::GROUPS)?;
            for (i, g) in groups.iter().enumerate() {
                table
                    .set(i as u32, g, 0)
                    .map_err(|e| map_error("writing the group table", e))?;
            }
        }
        // Events are off until the agent turns them on (a zeroed budget would count every drop
        // lost).
        write_budgets(&mut ebpf, entities, |_| EVENTS_OFF)?;
        load_programs(&mut ebpf)?;
        let map_bytes = map_bytes(v4_len, v6_len, entities, group_capacity);
        Ok(Self {
            ebpf,
            entities: policy.entities.len() as u32,
            slots: [None; MAX_INTERFACES as usize],
            attached: Vec::new(),
            pin_dir: None,
            flags: [0; MAX_INTERFACES as usize],
            link_types: [Link::Ethernet; MAX_INTERFACES as usize],
            tc_api: TcApi::for_running_kernel(),
            v4: Family {
                trie: v4_trie,
                live: LiveTrie::new(
                    build::V4,
                    policy.v4.iter().map(|(n, e)| {
                        let k = key4(n);
                        (k.0, k.1, *e)
                    }),
                    v4,
                    v4_len,
                ),
            },
            v6: Family {
                trie: v6_trie,
                live: LiveTrie::new(
                    build::V6,
                    policy.v6.iter().map(|(n, e)| {
                        let k = key6(n);
                        (k.0, k.1, *e)
                    }),
                    v6,
                    v6_len,
                ),
            },
            prev_v4: normalized(&policy.v4, key4).into_owned(),
            prev_v6: normalized(&policy.v6, key6).into_owned(),
            policies,
            entity_capacity: entities,
            groups,
            group_capacity,
            event_limits: Some(EventLimits::OFF),
            generation: pins::new_generation_id(),
            maps_dir: None,
            netlink_left: Vec::new(),
            load_stats: LoadStats {
                v4_prefixes: policy.v4.len(),
                v6_prefixes: policy.v6.len(),
                v4_nodes: v4.nodes,
                v6_nodes: v6.nodes,
                v4_words: v4.entries.len() as u64,
                v6_words: v6.entries.len() as u64,
                v4_chunks: (v4_len / abi_trie::LANES as usize) as u32,
                v6_chunks: (v6_len / abi_trie::LANES as usize) as u32,
                policy_capacity: entities,
                group_capacity,
                map_bytes,
            },
        })
    }

    /// Sets an interface's role without attaching (tests use this with BPF_PROG_TEST_RUN),
    /// giving it a counter slot; [`Role::None`](embargo_abi::IfaceRole::None) frees the slot.
    /// Returns the slot.
    pub fn set_role(
        &mut self,
        ifindex: u32,
        role: embargo_abi::IfaceRole,
    ) -> Result<u32, DataplaneError> {
        let existing = self.slots.iter().position(|s| *s == Some(ifindex));
        let slot = match (existing, role) {
            (Some(slot), _) => slot,
            (None, embargo_abi::IfaceRole::None) => 0,
            (None, _) => self.slots.iter().position(Option::is_none).ok_or(
                DataplaneError::TooManyInterfaces {
                    max: MAX_INTERFACES,
                },
            )?,
        };
        // An interface keeps its flags and link type while it has a role; losing the role
        // clears them.
        let (flags, link) = match role {
            embargo_abi::IfaceRole::None => (0, Link::Ethernet),
            _ => (self.flags[slot], self.link_types[slot]),
        };
        let value = IfaceConfig {
            role: role as u8,
            slot: slot as u8,
            flags,
            link: link as u8,
        };
        let mut roles: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| map_error("writing the interface role map", e))?;
        self.slots[slot] = match role {
            embargo_abi::IfaceRole::None => None,
            _ => Some(ifindex),
        };
        if existing.is_some() && role == embargo_abi::IfaceRole::None {
            self.flags[slot] = 0;
            self.link_types[slot] = Link::Ethernet;
        }
        Ok(slot as u32)
    }

    /// Sets the link type in an interface's role-map entry (what its packets start with)
    /// without attaching (tests use this with BPF_PROG_TEST_RUN; [`Dataplane::attach`] sets
    /// the one its hardware type says). The interface must have a role; it keeps the link type
    /// while it does.
    pub fn set_link(&mut self, ifindex: u32, link: Link) -> Result<(), DataplaneError> {
        let slot = self
            .slots
            .iter()
            .position(|s| *s == Some(ifindex))
            .ok_or(DataplaneError::LinkWithoutRole { ifindex })?;
        let mut roles: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        let mut value = roles
            .get(&ifindex, 0)
            .map_err(|e| map_error("reading the interface role map", e))?;
        value.link = link as u8;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| map_error("writing the interface role map", e))?;
        self.link_types[slot] = link;
        Ok(())
    }

    /// How the TC egress classifier is attached ([`TcApi::for_running_kernel`] at load).
    pub fn tc_api(&self) -> TcApi {
        self.tc_api
    }

    /// Attaches the TC egress classifier through `api` from now on. Tests force
    /// [`TcApi::Netlink`] to cover older kernels' path on a new one; TCX needs Linux 6.6.
    pub fn set_tc_api(&mut self, api: TcApi) {
        self.tc_api = api;
    }

    /// The counter slots in use, with their ifindex.
    pub fn slots(&self) -> Vec<(u32, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, i)| i.map(|i| (slot as u32, i)))
            .collect()
    }

    /// Pins XDP links under `dir` from now on: it must be on bpffs (under `/sys/fs/bpf` one is
    /// mounted if there is none, [`bpffs::ensure`]); created 0700 if missing, refused if another
    /// user owns it or others can write in it ([`pins::prepare_pin_dir`]).
    pub fn set_pin_dir(&mut self, dir: &Path) -> Result<(), DataplaneError> {
        bpffs::ensure(dir)?;
        pins::prepare_pin_dir(dir)?;
        self.pin_dir = Some(dir.to_owned());
        Ok(())
    }

    fn xdp_program_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(embargo_abi::programs::CLASSIFY)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program")
    }

    fn egress_program_mut(&mut self) -> &mut SchedClassifier {
        self.ebpf
            .program_mut(embargo_abi::programs::EGRESS)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("a TC classifier")
    }

    /// The production program, for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(embargo_abi::programs::CLASSIFY)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program")
    }

    /// The TC egress classifier, for BPF_PROG_TEST_RUN.
    pub fn egress_program(&self) -> &SchedClassifier {
        self.ebpf
            .program(embargo_abi::programs::EGRESS)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("a TC classifier")
    }

    /// Sets every entity's event limits ([`EventLimits::OFF`]: no events). When they change,
    /// every budget is set afresh ([`EventLimits::initial`]); the same limits again leave the
    /// budgets as they are (a reload does not refill them).
    pub fn set_event_limits(&mut self, limits: EventLimits) -> Result<(), DataplaneError> {
        if self.event_limits != Some(limits) {
            let cpus = cpu_count()?;
            write_budgets(&mut self.ebpf, self.entity_capacity, |_| {
                limits.initial(cpus)
            })?;
            self.event_limits = Some(limits);
        }
        Ok(())
    }

    /// Refills every entity's event budget on every CPU ([`EventLimits::refill`]): called once
    /// a second while events are on. Only the budget map is written: not a reload.
    pub fn refill_event_budgets(&mut self) -> Result<(), DataplaneError> {
        let Some(limits) = self.event_limits else {
            return Ok(());
        };
        if !limits.enabled() {
            return Ok(());
        }
        let cpus = cpu_count()?;
        write_budgets(&mut self.ebpf, self.entity_capacity, |old| {
            limits.refill(old, cpus)
        })
    }

    /// Names of the maps in the loaded object (to check the ABI constants).
    pub fn map_names(&self) -> Vec<String> {
        self.ebpf.maps().map(|(n, _)| n.to_owned()).collect()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // Links detach when the program drops; clear roles explicitly for a clean state.
        let _ = self.detach_all();
    }
}

/// A person-readable error for a program `load()` failure; `program` is `XDP program` or
/// `TC egress program`.
fn program_load_error(e: ProgramError, program: &'static str) -> DataplaneError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if io_error.raw_os_error() == Some(libc::EPERM) {
                DataplaneError::Privileges {
                    doing: format!("loading the {program}"),
                }
            } else if io_error.raw_os_error() == Some(libc::EACCES) && !verifier_trusts_us() {
                // Without CAP_PERFMON the verifier applies the Spectre v1 rules and refuses
                // the program's packet-pointer arithmetic ("prohibited for !root").
                DataplaneError::Privileges {
                    doing: format!(
                        "loading the {program} (the verifier refused it without CAP_PERFMON)"
                    ),
                }
            } else {
                DataplaneError::Verifier {
                    program,
                    io_error,
                    log: verifier_log.to_string(),
                }
            }
        }
        e => load_error(format!("loading the {program}"), e),
    }
}

/// Loads the XDP program and the TC egress classifier of a loaded object (both, used or not: a
/// kernel that refuses either is found at start).
fn load_programs(ebpf: &mut Ebpf) -> Result<(), DataplaneError> {
    let program: &mut Xdp = ebpf
        .program_mut(embargo_abi::programs::CLASSIFY)
        .ok_or_else(|| {
            load_error(
                "finding the XDP program",
                MapError::InvalidName {
                    name: "embargo_xdp".into(),
                },
            )
        })?
        .try_into()
        .map_err(|e| load_error("finding the XDP program", e))?;
    program
        .load()
        .map_err(|e| program_load_error(e, "XDP program"))?;
    let egress: &mut SchedClassifier = ebpf
        .program_mut(embargo_abi::programs::EGRESS)
        .ok_or_else(|| {
            load_error(
                "finding the TC egress program",
                MapError::InvalidName {
                    name: embargo_abi::programs::EGRESS.into(),
                },
            )
        })?
        .try_into()
        .map_err(|e| load_error("finding the TC egress program", e))?;
    egress
        .load()
        .map_err(|e| program_load_error(e, "TC egress program"))?;
    Ok(())
}

/// Bytes of kernel memory the maps take for tries of `v4_len` and `v6_len` entries and room for
/// `entities` and `groups`.
fn map_bytes(v4_len: usize, v6_len: usize, entities: u32, groups: u32) -> u64 {
    let cpus = system::possible_cpus() as u64;
    let counters = groups * embargo_abi::COUNTERS_PER_GROUP;
    ((v4_len + v6_len) * 4) as u64
        + u64::from(entities) * 4
        + u64::from(groups) * 4
        + u64::from(counters) * 16 * cpus
        // Events: the ring, each entity's per-CPU budget and lost count.
        + u64::from(EVENTS_RING_BYTES)
        + u64::from(entities) * 8 * 2 * cpus
}

fn array<'a, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<Array<&'a mut MapData, V>, DataplaneError> {
    let map = ebpf.map_mut(name).ok_or_else(|| {
        map_error(
            format!("finding map {name}"),
            MapError::InvalidName { name: name.into() },
        )
    })?;
    Array::try_from(map).map_err(|e| map_error(format!("opening map {name}"), e))
}

/// CPUs the per-CPU maps have a slot for.
fn cpu_count() -> Result<u32, DataplaneError> {
    let n = aya::util::nr_cpus()
        .map_err(|(_, e)| map_error("counting the possible CPUs", MapError::IoError(e)))?;
    Ok(n as u32)
}

/// Writes entries `0..entities` of the budget map, each CPU's new value computed from its old
/// one by `f`.
fn write_budgets(
    ebpf: &mut Ebpf,
    entities: u32,
    f: impl Fn(u64) -> u64,
) -> Result<(), DataplaneError> {
    let map = ebpf.map_mut(maps::EVENT_BUDGETS).ok_or_else(|| {
        map_error(
            format!("finding map {}", maps::EVENT_BUDGETS),
            MapError::InvalidName {
                name: maps::EVENT_BUDGETS.into(),
            },
        )
    })?;
    let mut map: PerCpuArray<_, u64> = PerCpuArray::try_from(map)
        .map_err(|e| map_error(format!("opening map {}", maps::EVENT_BUDGETS), e))?;
    for i in 0..entities.min(map.len()) {
        let old = map
            .get(&i, 0)
            .map_err(|e| map_error("reading the event budget map", e))?;
        let new: Vec<u64> = old.iter().map(|v| f(*v)).collect();
        let new = PerCpuValues::try_from(new)
            .map_err(|e| map_error("writing the event budget map", MapError::IoError(e)))?;
        map.set(i, new, 0)
            .map_err(|e| map_error("writing the event budget map", e))?;
    }
    Ok(())
}

/// Whether the verifier gives this process the pointer arithmetic the program needs
/// (`CAP_PERFMON`, or `CAP_SYS_ADMIN` which implies it); assumed so if it cannot be told.
fn verifier_trusts_us() -> bool {
    [system::CAP_PERFMON, system::CAP_SYS_ADMIN]
        .into_iter()
        .any(|cap| system::has_capability(cap).unwrap_or(true))
}

fn classify_load_error(e: EbpfError, v4_len: usize, v6_len: usize) -> DataplaneError {
    let errno = match &e {
        EbpfError::MapError(MapError::CreateError { io_error, .. }) => io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EPERM) => {
            return DataplaneError::Privileges {
                doing: "creating BPF maps".into(),
            };
        }
        Some(libc::ENOMEM | libc::E2BIG) => {
            let v6_failed = matches!(&e, EbpfError::MapError(MapError::CreateError { name, .. }) if name == maps::V6_TRIE);
            let (map, len) = if v6_failed {
                (maps::V6_TRIE, v6_len)
            } else {
                (maps::V4_TRIE, v4_len)
            };
            return DataplaneError::MapTooLarge {
                map,
                entries: (len / abi_trie::LANES as usize) as u64,
                bytes: len as u64 * 4,
                source: Box::new(e),
            };
        }
        _ => {}
    }
    load_error("loading the BPF object", e)
}

/// Maps trie `name` (`len` entries) and writes `entries` into it.
fn map_trie(
    ebpf: &Ebpf,
    name: &'static str,
    len: usize,
    entries: &[u32],
) -> Result<Mirrored, DataplaneError> {
    let Some(Map::Array(data)) = ebpf.map(name) else {
        return Err(map_error(
            format!("finding map {name}"),
            MapError::InvalidName { name: name.into() },
        ));
    };
    Mirrored::fill(data, len, entries).map_err(|source| DataplaneError::Mmap { map: name, source })
}
