//! Loads Embargo's XDP program, sizes and fills its maps, attaches it, and reads its counters.
//!
//! Maps are sized from the policy before the object is loaded; the tries are copied in through
//! `mmap` (the arrays are `BPF_F_MMAPABLE`), so a million-prefix policy loads in one memory copy
//! rather than a syscall per entry. Everything is filled before the first interface is attached:
//! the program never sees a half-loaded policy.
//!
//! Host egress: on an `outside` interface with `egress` enabled, the object's TC classifier
//! ([`embargo_abi::programs::EGRESS`], same maps) is attached at egress too, and the interface's
//! role-map entry gets [`IFACE_EGRESS`]. How it is attached depends on the kernel ([`TcApi`]):
//! a TCX link on 6.6+, else a `cls_bpf` filter on a `clsact` qdisc (added if missing, removed
//! on detach only if this agent added it). A new generation takes the TC attachment over as
//! atomically as the XDP one (see [`Dataplane::take_over`]).
//!
//! Restarts: with a pin folder, the XDP links (`link-<interface>`), the TCX egress links
//! (`tc-<interface>`) and the maps of the current generation (`maps-<generation>/`, see
//! [`pins`]) are pinned in bpffs, so enforcement and counters outlive the agent. A restarted
//! agent reuses the pinned maps when the state file agrees with them ([`Dataplane::reuse`]) and
//! applies its policy as a diff; a netlink `cls_bpf` filter has no pin, but it stays in the
//! kernel after the agent dies (only a clean detach removes it), and its priority and handle
//! are in the state file for the next agent to take it over.
//!
//! Uplinks: what a packet on an interface starts with is read from the interface's hardware
//! type at attach ([`system::arphrd`], [`Link::from_arphrd`]) and written into its role-map
//! entry, where both programs read it: Ethernet (VLAN, bond, bridge, veth, tap: possibly
//! tagged, possibly PPPoE), or raw IP on layer-3 devices (tun, WireGuard, PPP, IPIP/SIT/GRE
//! tunnels). Those get generic XDP in `auto` mode (no driver of theirs runs XDP natively on
//! received traffic), and so do bonds (a native program runs on the slaves, under their
//! ifindex). A hardware type the parser cannot read is refused at attach.
//!
//! Events: both programs (XDP and TC egress) send drop and monitor events over a ring buffer,
//! limited per entity by a token bucket whose settings the agent writes
//! ([`Dataplane::set_event_limits`]). They are off at load ([`EventLimits::OFF`]): with them on,
//! every drop reads a clock, which costs 17-25 ns. The ring is handed to the reader ([`Dataplane::take_events`], see [`crate::observe::events`]) and the events
//! the limit or a full ring stopped are counted per entity ([`Dataplane::events_lost`]).

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, Map, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType, TcError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::{NlOptions, SchedClassifierLink, TcAttachOptions},
        xdp::{XdpLink, XdpLinkId},
    },
};
use embargo_abi::{
    Counter, Direction, EVENTS_RING_BYTES, EntityPolicy, EventLimits, IFACE_EGRESS, IfaceConfig,
    Link, MAX_IFINDEX, MAX_INTERFACES, Stat, Verdict, counter_index, maps, trie as abi_trie,
};
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;

pub mod bpffs;
pub mod pins;
pub mod state;
pub mod system;
pub mod trie;

use trie::{
    build::{self, Shape, Table, TableError},
    live::{Change, LiveTrie},
    mapped::Mirrored,
};

use crate::{
    config::{self, Role},
    policy::Policy,
};

/// The production object, built by `build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/embargo-xdp"));
/// The bench reference programs (`XDP_DROP`, LPM trie), built by `build.rs`.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/embargo-xdp-bench"));

/// Errors a person can act on, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The policy's tries cannot be built.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The pin folder is not, and cannot be put, on a bpf file system.
    #[error(transparent)]
    Bpffs(#[from] bpffs::BpffsError),
    /// Not enough privilege to load BPF programs or attach XDP.
    #[error(
        "permission denied while {doing}: embargo needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or root)"
    )]
    Privileges { doing: String },
    /// The kernel lacks a feature the program needs.
    #[error("kernel {found} is too old: embargo needs Linux {needed} or newer")]
    KernelTooOld { found: String, needed: String },
    /// The kernel would not create a map of the size the policy needs.
    #[error(
        "the kernel refused map {map} with {entries} entries ({bytes} bytes): {source}; the policy does not fit, reduce it or raise the memory limits"
    )]
    MapTooLarge {
        map: &'static str,
        entries: u64,
        bytes: u64,
        #[source]
        source: Box<EbpfError>,
    },
    /// The verifier rejected a program; the log says why.
    #[error("the kernel verifier rejected the {program} ({io_error}); verifier log:\n{log}")]
    Verifier {
        /// `XDP program` or `TC egress program`.
        program: &'static str,
        io_error: std::io::Error,
        log: String,
    },
    /// The change does not fit the loaded maps; nothing was written. Load a new generation.
    #[error("the change does not fit in place: {reason}")]
    NeedsRebuild { reason: String },
    /// More interfaces than the counters have slots for.
    #[error("embargo counts at most {max} interfaces per agent; attach to fewer")]
    TooManyInterfaces { max: u32 },
    /// No interface with that name.
    #[error(
        "no interface named `{name}` (see `ip link`); check the name in the config or --interface"
    )]
    UnknownInterface { name: String },
    /// Interface index beyond the role map.
    #[error("interface `{name}` has ifindex {ifindex}, over the supported {max}")]
    IfindexTooLarge {
        name: String,
        ifindex: u32,
        max: u32,
    },
    /// The interface's hardware type is one the programs cannot parse.
    #[error(
        "interface `{name}` has hardware type {arphrd} (ARPHRD_*, see /sys/class/net/{name}/type), \
         which embargo cannot parse: it reads Ethernet (with VLAN tags or PPPoE) and layer-3 \
         devices (tun, WireGuard, PPP, IPIP, SIT, GRE); attach to one of those instead"
    )]
    UnsupportedLink { name: String, arphrd: u16 },
    /// Attaching failed in every allowed mode.
    #[error("cannot attach XDP to `{name}` in {mode} mode: {source}")]
    Attach {
        name: String,
        mode: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    /// The TC egress classifier could not be attached (nothing of it was left behind, and the
    /// interface's XDP attachment was undone).
    #[error("cannot attach the TC egress classifier to `{name}` ({api}): {source}")]
    AttachEgress {
        name: String,
        api: TcApi,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Egress is enforced on `outside` interfaces only.
    #[error(
        "egress is only for outside interfaces; `{name}` is {role}: enable it on the interface that faces the world"
    )]
    EgressNotOutside { name: String, role: Role },
    /// The egress flag lives in an interface's role-map entry, which needs a role.
    #[error("ifindex {ifindex} has no role: give it one before enabling egress")]
    EgressWithoutRole { ifindex: u32 },
    /// The link type lives in an interface's role-map entry, which needs a role.
    #[error("ifindex {ifindex} has no role: give it one before setting its link type")]
    LinkWithoutRole { ifindex: u32 },
    /// The pin folder or a generation's folder in it is owned by another user or writable by
    /// group or others: whoever controls it could unpin the links and end enforcement.
    #[error(transparent)]
    PinFolder(#[from] crate::files::write::SafeFsError),
    /// Any other aya or kernel error, with what was being done.
    #[error("{doing}: {source}")]
    Other {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn other(
    doing: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DataplaneError {
    DataplaneError::Other {
        doing: doing.into(),
        source: Box::new(source),
    }
}

/// An interface the program is attached to.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub ifindex: u32,
    pub role: Role,
    /// `native` or `generic`.
    pub mode: &'static str,
    /// The TC egress classifier is attached too (host egress is enforced).
    pub egress: bool,
    /// What its packets start with, from its hardware type (not serialized).
    #[serde(skip)]
    pub link: Link,
}

/// How the TC egress classifier is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcApi {
    /// A TCX link (Linux 6.6+): no qdisc involved; a new generation replaces the program in
    /// the link atomically (`bpf_link_update`).
    Tcx,
    /// A direct-action `cls_bpf` filter on the interface's `clsact` qdisc (older kernels): the
    /// qdisc is added if missing and removed on detach only if this agent added it; a new
    /// generation replaces the filter's program in place (same priority and handle), which
    /// the kernel does atomically.
    Netlink,
}

impl TcApi {
    /// TCX where the kernel has it (6.6+, or when the version cannot be read), else netlink.
    pub fn for_running_kernel() -> Self {
        match system::kernel_release() {
            Some(found) if system::version_less(&found, (6, 6)) => TcApi::Netlink,
            _ => TcApi::Tcx,
        }
    }
}

impl std::fmt::Display for TcApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TcApi::Tcx => "tcx",
            TcApi::Netlink => "netlink",
        })
    }
}

/// The TC egress classifier on one interface.
struct EgressLink {
    held: TcHeld,
    /// This agent added the interface's `clsact` qdisc (netlink only): removed on detach.
    added_clsact: bool,
}

/// How an interface's TC egress link is held.
enum TcHeld {
    /// Held by the agent: dropping it detaches the classifier (a TCX link without a pin
    /// folder, or a netlink filter, which [`Dataplane::leave_attached`] leaves in the kernel).
    Owned(SchedClassifierLink),
    /// A TCX link pinned under bpffs at `path`: it outlives the agent; removing the pin and
    /// closing the fd detaches it.
    Pinned { path: PathBuf, link: FdLink },
}

/// The pin path of interface `name`'s TCX egress link under `dir`.
pub fn tc_pin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("tc-{name}"))
}

/// Packets and bytes for one entity, summed over CPUs, by direction and verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntityCounters {
    /// `[direction][verdict]`, see [`Direction`] and [`Verdict`].
    pub slots: [[Counter; 2]; 2],
}

impl EntityCounters {
    pub fn get(&self, direction: Direction, verdict: Verdict) -> Counter {
        self.slots[direction as usize][verdict as usize]
    }
}

/// Sizes of what was loaded, for logs and status.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LoadStats {
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
    pub v4_nodes: u32,
    pub v6_nodes: u32,
    /// `max_entries` of the trie maps (64-byte chunks of 16 entries).
    pub v4_chunks: u32,
    pub v6_chunks: u32,
    /// `max_entries` of the policy map (entities it can hold).
    pub policy_capacity: u32,
    pub map_bytes: u64,
}

/// The clock of the event token buckets (see [`embargo_abi::globals::COARSE_CLOCK`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventClock {
    /// `bpf_ktime_get_coarse_ns` (Linux 5.11+): one tick's resolution, half the cost.
    Coarse,
    /// `bpf_ktime_get_ns`.
    Precise,
}

impl EventClock {
    /// The coarse clock where the running kernel has it (5.11+), else the precise one.
    pub fn detect() -> Self {
        match system::kernel_release() {
            Some(r) if !system::version_less(&r, (5, 11)) => EventClock::Coarse,
            _ => EventClock::Precise,
        }
    }
}

/// The loaded program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    entities: u32,
    /// Counter slot -> ifindex using it.
    slots: [Option<u32>; MAX_INTERFACES as usize],
    attachments: Vec<Attachment>,
    /// One link per attachment, same order.
    links: Vec<Held>,
    /// Where XDP links are pinned (bpffs), so enforcement survives the agent; `None`: not pinned.
    pin_dir: Option<PathBuf>,
    /// The TC egress classifier's link per attachment, same order, where egress is enforced.
    egress_links: Vec<Option<EgressLink>>,
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
    /// What the policy map holds, by entity index (for updates and attestation).
    policies: Vec<EntityPolicy>,
    /// Entities the policy and counter maps have room for.
    entity_capacity: u32,
    /// What the event limits map holds.
    event_limits: EventLimits,
    /// The event token buckets' clock.
    event_clock: EventClock,
    /// This generation's id: its maps are pinned at `<pin dir>/maps-<generation>`.
    generation: String,
    /// Where this generation's maps are pinned, once they are.
    maps_dir: Option<PathBuf>,
    /// Netlink egress filters a previous agent left, by interface (from the state file), for
    /// [`Dataplane::adopt`] to take over.
    netlink_left: Vec<state::NetlinkFilter>,
    pub load_stats: LoadStats,
}

/// How an attachment's XDP link is held.
enum Held {
    /// Owned by the program: dropping the program detaches it.
    Program(XdpLinkId),
    /// Pinned under bpffs at `path`: the link (and with it the program and its maps) outlives
    /// the agent; removing the pin and closing the fd detaches it.
    Pinned { path: PathBuf, link: FdLink },
}

/// Keeps link `fd` pinned: where it already is (`pinned`, a link adopted from its pin), else
/// at `path`, replacing a pin left there by an agent that was not adopted (an interface no
/// longer in the configuration, say). `what` names the link in errors (`XDP`, `TC egress`).
fn keep_pinned(
    fd: FdLink,
    pinned: Option<PathBuf>,
    path: PathBuf,
    what: &str,
    name: &str,
) -> Result<(PathBuf, FdLink), DataplaneError> {
    if let Some(pinned) = pinned {
        return Ok((pinned, fd));
    }
    let _ = std::fs::remove_file(&path);
    let link = fd.pin(&path).map_err(|e| {
        other(
            format!("pinning the {what} link of {name} at {}", path.display()),
            e,
        )
    })?;
    Ok((path, FdLink::from(link)))
}

/// The pin path of interface `name`'s XDP link under `dir`.
pub fn link_pin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("link-{name}"))
}

/// Removes the pinned XDP and TCX egress links in `dir` whose interface `keep` does not want
/// (all of them for `embargo detach`): without its pin and with no agent holding it, a link is
/// destroyed and its program detached. Returns each link (the interface, with ` (TC egress)`
/// for a TCX link) with the outcome.
pub fn detach_pinned(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, Result<(), DataplaneError>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let (name, label) = if let Some(name) = file.strip_prefix("link-") {
            (name, name.to_owned())
        } else if let Some(name) = file.strip_prefix("tc-") {
            (name, format!("{name} (TC egress)"))
        } else {
            continue;
        };
        if keep(name) {
            continue;
        }
        let r = std::fs::remove_file(entry.path())
            .map_err(|e| other(format!("removing the pin {}", entry.path().display()), e));
        out.push((label, r));
    }
    out
}

/// Deletes the netlink egress filters an agent left (named by its state file), and the
/// `clsact` qdiscs it added: a `cls_bpf` filter has no pin and stays in the kernel after the
/// agent. Returns each interface (with ` (TC egress)`) with the outcome.
pub fn remove_netlink_filters(
    filters: &[state::NetlinkFilter],
) -> Vec<(String, Result<(), DataplaneError>)> {
    filters
        .iter()
        .map(|f| {
            let label = format!("{} (TC egress)", f.interface);
            let r = SchedClassifierLink::attached(
                &f.interface,
                TcAttachType::Egress,
                f.priority,
                f.handle.into(),
                None,
            )
            .map_err(|e| other(format!("the TC egress filter on {}", f.interface), e))
            .and_then(|link| {
                // Dropping the link deletes the filter.
                drop(link);
                match (f.added_clsact, system::ifindex(&f.interface)) {
                    (true, Some(ifindex)) => system::qdisc_del_clsact(ifindex).map_err(|e| {
                        other(format!("removing the clsact qdisc of {}", f.interface), e)
                    }),
                    _ => Ok(()),
                }
            });
            (label, r)
        })
        .collect()
}

/// One family's loaded trie.
struct Family {
    trie: Mirrored,
    live: LiveTrie,
}

/// What [`Dataplane::apply`] changed.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ApplyStats {
    pub prefixes_changed: u64,
    pub entries_written: u64,
    pub nodes_allocated: u64,
    pub nodes_released: u64,
    pub policies_written: u64,
}

/// What [`Dataplane::attest`] found (and repaired).
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Drift {
    pub v4_entries: u64,
    pub v6_entries: u64,
    pub policies: u64,
    pub roles: u64,
}

impl Drift {
    pub fn total(&self) -> u64 {
        self.v4_entries + self.v6_entries + self.policies + self.roles
    }
}

/// Spare trie nodes allocated at load, so later updates fit in place: a quarter of what the
/// policy uses, at least this many.
const MIN_SPARE_NODES: u32 = 1024;
/// Entities the maps hold at least (so adding some later fits in place).
const MIN_ENTITY_CAPACITY: u32 = 64;

fn trie_len(shape: &Shape, table: &Table) -> usize {
    if table.entries.len() < 1 << shape.root_bits {
        // No prefixes: no root; the first prefix of this family needs a new generation.
        return table.entries.len();
    }
    let spare = (table.nodes / 4).max(MIN_SPARE_NODES) as usize;
    (table.entries.len() + (spare << shape.stride)).next_multiple_of(abi_trie::LANES as usize)
}

/// The prefixes whose entity differs between the loaded set and `next` (added, moved or
/// removed). One merge walk over both in key order: no map of the next policy is built, so the
/// scan costs a sort of `next` (linear when, as compiled, it is already in order).
fn changes<N: Copy>(
    live: &LiveTrie,
    next: &[(N, u32)],
    key: impl Fn(&N) -> (u128, u8),
) -> Vec<Change> {
    let mut next: Vec<((u128, u8), u32)> = next.iter().map(|(n, e)| (key(n), *e)).collect();
    // Stable, so that of two equal keys the later one is kept, as a map would keep it.
    next.sort_by_key(|(k, _)| *k);
    let mut out = Vec::new();
    let mut loaded = live.prefixes().iter().peekable();
    let mut i = 0;
    while i < next.len() {
        let (k, e) = next[i];
        if next.get(i + 1).is_some_and(|(k2, _)| *k2 == k) {
            i += 1;
            continue;
        }
        i += 1;
        // Loaded prefixes before `k` are not in `next`: removed.
        while let Some((lk, _)) = loaded.next_if(|(lk, _)| **lk < k) {
            out.push(Change {
                addr: lk.0,
                len: lk.1,
                entity: None,
            });
        }
        match loaded.next_if(|(lk, _)| **lk == k) {
            Some((_, le)) if *le == e => {}
            _ => out.push(Change {
                addr: k.0,
                len: k.1,
                entity: Some(e),
            }),
        }
    }
    out.extend(loaded.map(|(lk, _)| Change {
        addr: lk.0,
        len: lk.1,
        entity: None,
    }));
    out
}

fn key4(n: &Ipv4Network) -> (u128, u8) {
    (u128::from(u32::from(n.network())), n.prefix())
}

fn key6(n: &Ipv6Network) -> (u128, u8) {
    (u128::from(n.network()), n.prefix())
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
        Self::load_tables_with(policy, v4, v6, EventClock::detect())
    }

    /// As [`Dataplane::load_tables`], with the event buckets' clock chosen (tests use the
    /// precise one on kernels that have both).
    pub fn load_tables_with(
        policy: &Policy,
        v4: &Table,
        v6: &Table,
        event_clock: EventClock,
    ) -> Result<Self, DataplaneError> {
        if let Some(found) = system::kernel_release()
            && system::version_less(&found, MIN_KERNEL)
        {
            return Err(DataplaneError::KernelTooOld {
                found,
                needed: format!("{}.{}", MIN_KERNEL.0, MIN_KERNEL.1),
            });
        }
        let entities = (policy.entities.len() as u32)
            .saturating_mul(2)
            .max(MIN_ENTITY_CAPACITY);
        let counters = entities * embargo_abi::COUNTERS_PER_ENTITY;
        let (v4_len, v6_len) = (trie_len(&build::V4, v4), trie_len(&build::V6, v6));
        let coarse = u8::from(event_clock == EventClock::Coarse);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(embargo_abi::globals::COARSE_CLOCK, &coarse, true)
            .map_max_entries(maps::V4_TRIE, (v4_len / abi_trie::LANES as usize) as u32)
            .map_max_entries(maps::V6_TRIE, (v6_len / abi_trie::LANES as usize) as u32)
            .map_max_entries(maps::POLICY, entities)
            .map_max_entries(maps::COUNTERS, counters)
            .map_max_entries(maps::EVENT_BUCKETS, entities)
            .map_max_entries(maps::EVENTS_LOST, entities);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| classify_load_error(e, v4, v6))?;

        let v4_trie = map_trie(&ebpf, maps::V4_TRIE, v4_len, &v4.entries)?;
        let v6_trie = map_trie(&ebpf, maps::V6_TRIE, v6_len, &v6.entries)?;
        let policies: Vec<EntityPolicy> = policy.entities.iter().map(|e| e.abi_policy()).collect();
        {
            let mut pol: Array<_, EntityPolicy> = array(&mut ebpf, maps::POLICY)?;
            for (i, p) in policies.iter().enumerate() {
                pol.set(i as u32, p, 0)
                    .map_err(|e| other("writing the policy map", e))?;
            }
        }
        // Events are off until the agent turns them on (they cost a clock read per drop).
        write_event_limits(&mut ebpf, EventLimits::OFF)?;
        load_programs(&mut ebpf)?;
        let map_bytes = map_bytes(v4_len, v6_len, entities);
        Ok(Self {
            ebpf,
            entities: policy.entities.len() as u32,
            slots: [None; MAX_INTERFACES as usize],
            attachments: Vec::new(),
            links: Vec::new(),
            pin_dir: None,
            egress_links: Vec::new(),
            flags: [0; MAX_INTERFACES as usize],
            link_types: [Link::Ethernet; MAX_INTERFACES as usize],
            tc_api: TcApi::for_running_kernel(),
            v4: Family {
                trie: v4_trie,
                live: LiveTrie::new(
                    &build::V4,
                    policy.v4.iter().map(|(n, e)| {
                        let k = key4(n);
                        (k.0, k.1, *e)
                    }),
                    v4.nodes,
                    v4_len,
                ),
            },
            v6: Family {
                trie: v6_trie,
                live: LiveTrie::new(
                    &build::V6,
                    policy.v6.iter().map(|(n, e)| {
                        let k = key6(n);
                        (k.0, k.1, *e)
                    }),
                    v6.nodes,
                    v6_len,
                ),
            },
            policies,
            entity_capacity: entities,
            event_limits: EventLimits::OFF,
            event_clock,
            generation: pins::new_generation_id(),
            maps_dir: None,
            netlink_left: Vec::new(),
            load_stats: LoadStats {
                v4_prefixes: policy.v4.len(),
                v6_prefixes: policy.v6.len(),
                v4_nodes: v4.nodes,
                v6_nodes: v6.nodes,
                v4_chunks: v4.chunks(),
                v6_chunks: v6.chunks(),
                policy_capacity: entities,
                map_bytes,
            },
        })
    }

    /// Sets an interface's role without attaching (tests use this with BPF_PROG_TEST_RUN),
    /// giving it a counter slot; [`Role::None`](embargo_abi::Role::None) frees the slot.
    /// Returns the slot.
    pub fn set_role(
        &mut self,
        ifindex: u32,
        role: embargo_abi::Role,
    ) -> Result<u32, DataplaneError> {
        let existing = self.slots.iter().position(|s| *s == Some(ifindex));
        let slot = match (existing, role) {
            (Some(slot), _) => slot,
            (None, embargo_abi::Role::None) => 0,
            (None, _) => self.slots.iter().position(Option::is_none).ok_or(
                DataplaneError::TooManyInterfaces {
                    max: MAX_INTERFACES,
                },
            )?,
        };
        // An interface keeps its flags and link type while it has a role; losing the role
        // clears them.
        let (flags, link) = match role {
            embargo_abi::Role::None => (0, Link::Ethernet),
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
            .map_err(|e| other("writing the interface role map", e))?;
        self.slots[slot] = match role {
            embargo_abi::Role::None => None,
            _ => Some(ifindex),
        };
        if existing.is_some() && role == embargo_abi::Role::None {
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
            .map_err(|e| other("reading the interface role map", e))?;
        value.link = link as u8;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| other("writing the interface role map", e))?;
        self.link_types[slot] = link;
        Ok(())
    }

    /// Sets or clears [`IFACE_EGRESS`] in an interface's role-map entry without attaching
    /// (tests use this with BPF_PROG_TEST_RUN). The interface must have a role: its entry
    /// carries the counter slot the TC egress classifier counts in.
    pub fn set_egress(&mut self, ifindex: u32, on: bool) -> Result<(), DataplaneError> {
        let slot = self
            .slots
            .iter()
            .position(|s| *s == Some(ifindex))
            .ok_or(DataplaneError::EgressWithoutRole { ifindex })?;
        let mut roles: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        let mut value = roles
            .get(&ifindex, 0)
            .map_err(|e| other("reading the interface role map", e))?;
        let flags = if on {
            self.flags[slot] | IFACE_EGRESS
        } else {
            self.flags[slot] & !IFACE_EGRESS
        };
        value.flags = flags;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| other("writing the interface role map", e))?;
        self.flags[slot] = flags;
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

    /// Attaches to `iface`: native mode first in `auto`, falling back to generic with a log line;
    /// with `egress`, the TC egress classifier too ([`Dataplane::attach_egress`]). All or
    /// nothing: if the classifier cannot be attached, the XDP attachment is undone.
    pub fn attach(&mut self, iface: &config::Interface) -> Result<&Attachment, DataplaneError> {
        if iface.egress && iface.role != Role::Outside {
            return Err(DataplaneError::EgressNotOutside {
                name: iface.name.clone(),
                role: iface.role,
            });
        }
        let ifindex =
            system::ifindex(&iface.name).ok_or_else(|| DataplaneError::UnknownInterface {
                name: iface.name.clone(),
            })?;
        if ifindex >= MAX_IFINDEX {
            return Err(DataplaneError::IfindexTooLarge {
                name: iface.name.clone(),
                ifindex,
                max: MAX_IFINDEX,
            });
        }
        let link = link_of(&iface.name)?;
        let is_bond = system::driver(&iface.name).is_ok_and(|d| d == "bonding");
        if is_bond && iface.mode == config::XdpMode::Native {
            tracing::warn!(
                interface = %iface.name,
                "native XDP on a bond runs on its slaves, whose packets carry the slave's ifindex: \
                 they pass without a role; use mode auto or generic on bonds"
            );
        }
        self.set_role(ifindex, iface.role.abi())?;
        self.set_link(ifindex, link)?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(embargo_abi::programs::CLASSIFY)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program");
        let attach = |program: &mut Xdp, mode: XdpMode, label: &'static str| {
            program
                .attach_to_if_index(ifindex, mode)
                .map_err(|source| match &source {
                    ProgramError::SyscallError(s)
                        if s.io_error.raw_os_error() == Some(libc::EPERM) =>
                    {
                        DataplaneError::Privileges {
                            doing: format!("attaching to {}", iface.name),
                        }
                    }
                    _ => DataplaneError::Attach {
                        name: iface.name.clone(),
                        mode: label,
                        source: Box::new(source),
                    },
                })
        };
        let (xdp_link, mode) = match iface.mode {
            config::XdpMode::Native => (attach(program, XdpMode::Driver, "native")?, "native"),
            config::XdpMode::Generic => (attach(program, XdpMode::Skb, "generic")?, "generic"),
            // No layer-3 driver runs XDP natively on what it receives (tun's native hook sees
            // only what user space writes, through the generic path anyway): generic, no try.
            config::XdpMode::Auto if link == Link::RawIp => {
                tracing::info!(
                    interface = %iface.name,
                    "layer-3 interface (packets start at the IP header): generic XDP"
                );
                (attach(program, XdpMode::Skb, "generic")?, "generic")
            }
            // A bond runs a native program on its slaves' drivers, which report the slave's
            // ifindex, not the bond's: its role would not apply. Generic sees the bond's.
            config::XdpMode::Auto if is_bond => {
                tracing::info!(
                    interface = %iface.name,
                    "bond: generic XDP (native mode would run on the slaves, under their ifindex)"
                );
                (attach(program, XdpMode::Skb, "generic")?, "generic")
            }
            config::XdpMode::Auto => match attach(program, XdpMode::Driver, "native") {
                Ok(link) => (link, "native"),
                Err(DataplaneError::Attach { source, .. }) => {
                    tracing::warn!(
                        interface = %iface.name,
                        error = %source,
                        "native XDP unavailable, falling back to generic mode"
                    );
                    (attach(program, XdpMode::Skb, "generic")?, "generic")
                }
                Err(e) => return Err(e),
            },
        };
        let egress = if iface.egress {
            match self.attach_egress(ifindex, &iface.name) {
                Ok(e) => Some(e),
                Err(e) => {
                    let _ = self.xdp_program_mut().detach(xdp_link);
                    let _ = self.set_role(ifindex, embargo_abi::Role::None);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let held = self.hold(xdp_link, &iface.name, None)?;
        self.links.push(held);
        self.egress_links.push(egress);
        self.attachments.push(Attachment {
            name: iface.name.clone(),
            ifindex,
            role: iface.role,
            mode,
            egress: iface.egress,
            link,
        });
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Sets the interface's [`IFACE_EGRESS`] flag, then attaches the TC egress classifier at
    /// its egress through [`Dataplane::tc_api`]: a TCX link, or (netlink) a `clsact` qdisc,
    /// added if missing, and a filter on it. On failure the flag is cleared and a qdisc added
    /// here is removed again.
    fn attach_egress(&mut self, ifindex: u32, name: &str) -> Result<EgressLink, DataplaneError> {
        let api = self.tc_api;
        let fail = |errno: Option<i32>, source: Box<dyn std::error::Error + Send + Sync>| {
            if errno == Some(libc::EPERM) {
                DataplaneError::Privileges {
                    doing: format!("attaching the TC egress classifier to {name}"),
                }
            } else {
                DataplaneError::AttachEgress {
                    name: name.to_owned(),
                    api,
                    source,
                }
            }
        };
        self.set_egress(ifindex, true)?;
        let added_clsact = match api {
            TcApi::Tcx => false,
            TcApi::Netlink => match aya::programs::tc::qdisc_add_clsact(name) {
                Ok(()) => true,
                Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => false,
                Err(e) => {
                    let _ = self.set_egress(ifindex, false);
                    return Err(fail(tc_errno(&e), Box::new(e)));
                }
            },
        };
        let options = match api {
            TcApi::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            TcApi::Netlink => TcAttachOptions::Netlink(NlOptions::default()),
        };
        match self
            .egress_program_mut()
            .attach_with_options(name, TcAttachType::Egress, options)
        {
            Ok(id) => {
                if api == TcApi::Netlink {
                    // A fallback is said, not only shown as a field.
                    tracing::info!(
                        interface = %name,
                        "TCX needs Linux 6.6: the TC egress classifier is a netlink cls_bpf filter on a clsact qdisc (not pinned; the state file names it for the next agent)"
                    );
                }
                tracing::info!(
                    interface = %name,
                    api = %api,
                    clsact_added = added_clsact,
                    "TC egress classifier attached"
                );
                let held = self.hold_egress(id, name, None)?;
                Ok(EgressLink { held, added_clsact })
            }
            Err(e) => {
                if added_clsact {
                    let _ = system::qdisc_del_clsact(ifindex);
                }
                let _ = self.set_egress(ifindex, false);
                let errno = match &e {
                    ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
                    ProgramError::TcError(e) => tc_errno(e),
                    _ => None,
                };
                Err(fail(errno, Box::new(e)))
            }
        }
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

    /// Takes link `id` from the program and, with a pin folder, pins it (or keeps it pinned at
    /// `pinned`, where it already is).
    fn hold(
        &mut self,
        id: XdpLinkId,
        name: &str,
        pinned: Option<PathBuf>,
    ) -> Result<Held, DataplaneError> {
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(Held::Program(id));
        };
        let link = self
            .xdp_program_mut()
            .take_link(id)
            .map_err(|e| other(format!("taking the XDP link of {name}"), e))?;
        let fd = FdLink::try_from(link).map_err(|e| other(format!("the XDP link of {name}"), e))?;
        let (path, link) = keep_pinned(fd, pinned, link_pin_path(&dir, name), "XDP", name)?;
        Ok(Held::Pinned { path, link })
    }

    /// Turns a held link back into an [`XdpLink`] (from `program` for a program-owned one).
    fn into_xdp_link(
        held: Held,
        program: &mut Xdp,
        name: &str,
    ) -> Result<(XdpLink, Option<PathBuf>), DataplaneError> {
        match held {
            Held::Program(id) => program
                .take_link(id)
                .map(|l| (l, None))
                .map_err(|e| other(format!("taking the XDP link of {name}"), e)),
            Held::Pinned { path, link } => XdpLink::try_from(link)
                .map(|l| (l, Some(path)))
                .map_err(|e| other(format!("the pinned XDP link of {name}"), e)),
        }
    }

    /// Takes TC egress link `id` from the program: a TCX link is pinned under the pin folder
    /// (or kept pinned at `pinned`); otherwise the agent owns it.
    fn hold_egress(
        &mut self,
        id: aya::programs::tc::SchedClassifierLinkId,
        name: &str,
        pinned: Option<PathBuf>,
    ) -> Result<TcHeld, DataplaneError> {
        let link = self
            .egress_program_mut()
            .take_link(id)
            .map_err(|e| other(format!("taking the TC egress link of {name}"), e))?;
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(TcHeld::Owned(link));
        };
        if link.priority().is_ok() {
            // A netlink filter: no link to pin; it stays in the kernel until removed.
            return Ok(TcHeld::Owned(link));
        }
        let fd = FdLink::try_from(link)
            .map_err(|e| other(format!("the TC egress link of {name}"), e))?;
        let (path, link) = keep_pinned(fd, pinned, tc_pin_path(&dir, name), "TC egress", name)?;
        Ok(TcHeld::Pinned { path, link })
    }

    /// Turns a held TC egress link back into a link a program can take over.
    fn into_tc_link(
        held: TcHeld,
        name: &str,
    ) -> Result<(SchedClassifierLink, Option<PathBuf>), DataplaneError> {
        match held {
            TcHeld::Owned(link) => Ok((link, None)),
            TcHeld::Pinned { path, link } => SchedClassifierLink::try_from(link)
                .map(|l| (l, Some(path)))
                .map_err(|e| other(format!("the pinned TC egress link of {name}"), e)),
        }
    }

    /// Takes over the TC egress classifier a previous agent left on `iface` (a pinned TCX link,
    /// or a netlink filter the state file names) with one atomic switch; attaches it afresh if
    /// there is none.
    fn adopt_egress(
        &mut self,
        ifindex: u32,
        name: &str,
    ) -> Result<(EgressLink, bool), DataplaneError> {
        let pin = self.pin_dir.as_deref().map(|d| tc_pin_path(d, name));
        let left = self
            .netlink_left
            .iter()
            .position(|f| f.interface == name)
            .map(|i| self.netlink_left.remove(i));
        let (link, pinned, added_clsact) = match (pin, left) {
            (Some(path), _) if path.exists() => {
                let pinned = PinnedLink::from_pin(&path)
                    .map_err(|e| other(format!("opening the pinned link {}", path.display()), e))?;
                let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                    .map_err(|e| other(format!("the pinned link {}", path.display()), e))?;
                (link, Some(path), false)
            }
            (_, Some(f)) if self.tc_api == TcApi::Netlink => {
                let link = SchedClassifierLink::attached(
                    name,
                    TcAttachType::Egress,
                    f.priority,
                    f.handle.into(),
                    None,
                )
                .map_err(|e| other(format!("the TC egress filter on {name}"), e))?;
                (link, None, f.added_clsact)
            }
            _ => return Ok((self.attach_egress(ifindex, name)?, false)),
        };
        self.set_egress(ifindex, true)?;
        let id = self
            .egress_program_mut()
            .attach_to_link(link)
            .map_err(|e| other(format!("taking over the TC egress classifier of {name}"), e))?;
        let held = self.hold_egress(id, name, pinned)?;
        Ok((EgressLink { held, added_clsact }, true))
    }

    /// Removes the TC egress classifier a previous agent left on interface `name` (its pinned
    /// TCX link, or the netlink filter the state file names), for an interface that no longer
    /// enforces egress.
    fn drop_egress_left(&mut self, name: &str) {
        if let Some(path) = self.pin_dir.as_deref().map(|d| tc_pin_path(d, name))
            && path.exists()
        {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(interface = %name, "detached the TC egress classifier a previous agent left: egress is off")
                }
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "could not remove the pinned TC egress link")
                }
            }
        }
        let left: Vec<_> = self
            .netlink_left
            .iter()
            .filter(|f| f.interface == name)
            .cloned()
            .collect();
        self.netlink_left.retain(|f| f.interface != name);
        for (label, r) in remove_netlink_filters(&left) {
            if let Err(e) = r {
                tracing::warn!(interface = %label, error = %e, "could not remove the netlink egress filter");
            }
        }
    }

    /// Adopts the XDP link a previous agent pinned for `iface`, if there is one: this program
    /// takes it over atomically (`bpf_link_update`), so the interface is never without a
    /// program across an agent restart, even after `kill -9`.
    pub fn adopt(
        &mut self,
        iface: &config::Interface,
    ) -> Result<Option<&Attachment>, DataplaneError> {
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(None);
        };
        let path = link_pin_path(&dir, &iface.name);
        if !path.exists() {
            return Ok(None);
        }
        let ifindex =
            system::ifindex(&iface.name).ok_or_else(|| DataplaneError::UnknownInterface {
                name: iface.name.clone(),
            })?;
        let pinned = PinnedLink::from_pin(&path)
            .map_err(|e| other(format!("opening the pinned link {}", path.display()), e))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| other(format!("the pinned link {}", path.display()), e))?;
        let link_type = link_of(&iface.name)?;
        self.set_role(ifindex, iface.role.abi())?;
        self.set_link(ifindex, link_type)?;
        let id = self
            .xdp_program_mut()
            .attach_to_link(link)
            .map_err(|e| other(format!("taking over the pinned link of {}", iface.name), e))?;
        let held = self.hold(id, &iface.name, Some(path))?;
        // The TC egress link a previous agent left is taken over too (or attached afresh).
        let egress = if iface.egress {
            let (link, adopted) = self.adopt_egress(ifindex, &iface.name)?;
            if adopted {
                tracing::info!(interface = %iface.name, "adopted the TC egress classifier without detaching");
            }
            Some(link)
        } else {
            // Egress no longer enforced here: the classifier a previous agent left goes.
            self.drop_egress_left(&iface.name);
            None
        };
        self.links.push(held);
        self.egress_links.push(egress);
        self.attachments.push(Attachment {
            name: iface.name.clone(),
            ifindex,
            role: iface.role,
            mode: "adopted",
            egress: iface.egress,
            link: link_type,
        });
        Ok(self.attachments.last())
    }

    /// Lets go of every attachment without detaching: pinned links stay attached (with the
    /// current program and maps) after the agent exits. Returns the interfaces left enforcing;
    /// links that were not pinned cannot outlive the agent and are detached.
    pub fn leave_attached(&mut self) -> Vec<String> {
        let attachments = std::mem::take(&mut self.attachments);
        let links = std::mem::take(&mut self.links);
        // TC egress: a pinned TCX link stays by its pin; a netlink filter stays in the kernel
        // unless removed (the state file names it for the next agent); a TCX link without a pin
        // cannot outlive the agent.
        for link in std::mem::take(&mut self.egress_links).into_iter().flatten() {
            match link.held {
                TcHeld::Owned(link) if link.priority().is_ok() => std::mem::forget(link),
                TcHeld::Owned(link) => drop(link),
                TcHeld::Pinned { link, .. } => drop(link),
            }
        }
        let mut kept = Vec::new();
        for (held, att) in links.into_iter().zip(attachments) {
            match held {
                Held::Pinned { link, .. } => {
                    drop(link); // the pin keeps it
                    kept.push(att.name);
                }
                Held::Program(id) => {
                    let _ = self.xdp_program_mut().detach(id);
                }
            }
        }
        kept
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

    /// Detaches from every interface (the TC egress classifier first, and the `clsact` qdisc
    /// if this agent added it) and clears their roles.
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), DataplaneError>)> {
        let attachments = std::mem::take(&mut self.attachments);
        let links = std::mem::take(&mut self.links);
        let egress_links = std::mem::take(&mut self.egress_links);
        let mut egress_results = Vec::new();
        for (link, att) in egress_links.into_iter().zip(attachments.iter()) {
            let r = link.map_or(Ok(()), |link| {
                let detached = match link.held {
                    // Dropping the link detaches it (a netlink filter is deleted).
                    TcHeld::Owned(l) => {
                        drop(l);
                        Ok(())
                    }
                    TcHeld::Pinned { path, link } => {
                        let r = std::fs::remove_file(&path)
                            .map_err(|e| other(format!("removing the pin {}", path.display()), e));
                        drop(link);
                        r
                    }
                };
                detached.and_then(|()| {
                    if link.added_clsact {
                        system::qdisc_del_clsact(att.ifindex).map_err(|e| {
                            other(
                                format!("removing the clsact qdisc embargo added to {}", att.name),
                                e,
                            )
                        })
                    } else {
                        Ok(())
                    }
                })
            });
            egress_results.push(r);
        }
        let mut results = Vec::new();
        for ((held, att), egress) in links
            .into_iter()
            .zip(attachments.iter())
            .zip(egress_results)
        {
            let r = match held {
                Held::Program(id) => self
                    .xdp_program_mut()
                    .detach(id)
                    .map_err(|e| other(format!("detaching from {}", att.name), e)),
                Held::Pinned { path, link } => {
                    // Without its pin, closing the last fd destroys the link: detached.
                    let r = std::fs::remove_file(&path)
                        .map_err(|e| other(format!("removing the pin {}", path.display()), e));
                    drop(link);
                    r
                }
            };
            results.push((att.name.clone(), r.and(egress)));
        }
        for att in &attachments {
            let _ = self.set_role(att.ifindex, embargo_abi::Role::None);
        }
        results
    }

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
        let c4 = changes(&self.v4.live, &next.v4, key4);
        let c6 = changes(&self.v6.live, &next.v6, key6);
        for (live, c) in [(&self.v4.live, &c4), (&self.v6.live, &c6)] {
            live.check(c).map_err(|e| DataplaneError::NeedsRebuild {
                reason: e.to_string(),
            })?;
        }
        let mut stats = ApplyStats {
            prefixes_changed: (c4.len() + c6.len()) as u64,
            ..Default::default()
        };
        let wanted: Vec<EntityPolicy> = next.entities.iter().map(|e| e.abi_policy()).collect();
        let retired = |p: &EntityPolicy| p.action == embargo_abi::ACTION_NONE;
        // Entities that act (new or changed) before the tries can point at them.
        stats.policies_written += self.write_policies(&wanted, |p| !retired(p))?;
        for (fam, c) in [(&mut self.v4, &c4), (&mut self.v6, &c6)] {
            let s = fam
                .live
                .apply(&mut fam.trie, c)
                .map_err(|e| DataplaneError::NeedsRebuild {
                    reason: e.to_string(),
                })?;
            stats.entries_written += s.entries_written;
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
        Ok(stats)
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
                    .map_err(|e| other("writing the policy map", e))?;
                if i >= self.policies.len() {
                    self.policies.resize(i + 1, EntityPolicy::default());
                }
                self.policies[i] = *p;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Moves every attachment of `old` to this (newly loaded) generation, atomically per
    /// interface: the role (and egress flag) is set here first, then the interface's XDP link
    /// is pointed at this program (`bpf_link_update`); the interface is never without a
    /// program. The TC egress classifier moves the same way, without a gap and without a
    /// packet seen by both generations: a TCX link is updated in place (`bpf_link_update`); a
    /// netlink filter is replaced at its priority and handle, which swaps the program under
    /// the filter atomically. A `clsact` qdisc the old generation added stays and is this
    /// one's to remove.
    pub fn take_over(&mut self, old: &mut Dataplane) -> Result<(), DataplaneError> {
        // Events stay as they were set (on or off, the same limits) before traffic arrives.
        self.set_event_limits(old.event_limits)?;
        let attachments = std::mem::take(&mut old.attachments);
        let links = std::mem::take(&mut old.links);
        let egress_links = std::mem::take(&mut old.egress_links);
        if self.pin_dir.is_none() {
            self.pin_dir = old.pin_dir.clone();
        }
        // This generation's maps are pinned before any interface switches to them, so the pin
        // folder always holds the maps of whatever program is attached (the caller unpins the
        // old generation's once the state file names this one).
        if old.maps_dir.is_some()
            && self.maps_dir.is_none()
            && let Some(dir) = self.pin_dir.clone()
        {
            self.pin_maps(&dir)?;
        }
        let mut taken = Vec::new();
        for (att, held) in attachments.into_iter().zip(links) {
            let link = Self::into_xdp_link(held, old.xdp_program_mut(), &att.name)?;
            taken.push((att, link));
        }
        let mut taken_egress = Vec::new();
        for (egress, (att, _)) in egress_links.into_iter().zip(&taken) {
            taken_egress.push(match egress {
                Some(e) => Some((Self::into_tc_link(e.held, &att.name)?, e.added_clsact)),
                None => None,
            });
        }
        for ((att, (link, pinned)), egress) in taken.into_iter().zip(taken_egress) {
            self.set_role(att.ifindex, att.role.abi())?;
            self.set_link(att.ifindex, att.link)?;
            if egress.is_some() {
                self.set_egress(att.ifindex, true)?;
            }
            let id = self
                .xdp_program_mut()
                .attach_to_link(link)
                .map_err(|e| other(format!("switching {} to the new program", att.name), e))?;
            let held = self.hold(id, &att.name, pinned)?;
            self.links.push(held);
            let egress = match egress {
                Some(((link, pinned), added_clsact)) => {
                    let id = self
                        .egress_program_mut()
                        .attach_to_link(link)
                        .map_err(|e| {
                            other(
                                format!("switching {} to the new TC egress program", att.name),
                                e,
                            )
                        })?;
                    Some(EgressLink {
                        held: self.hold_egress(id, &att.name, pinned)?,
                        added_clsact,
                    })
                }
                None => None,
            };
            self.egress_links.push(egress);
            self.attachments.push(att);
        }
        Ok(())
    }

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
                .map_err(|e| other("reading the policy map", e))?;
            if got != *want {
                drift.policies += 1;
                if repair {
                    pol.set(i as u32, want, 0)
                        .map_err(|e| other("repairing the policy map", e))?;
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
                    .attachments
                    .iter()
                    .find(|a| a.ifindex == ifindex)
                    .map_or(embargo_abi::Role::None, |a| a.role.abi());
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
            .filter(|(_, c)| c.role != embargo_abi::Role::None as u8)
            .collect();
        let mut map: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        for (ifindex, want) in roles {
            let got = map
                .get(&ifindex, 0)
                .map_err(|e| other("reading the role map", e))?;
            if got != want {
                drift.roles += 1;
                if repair {
                    map.set(ifindex, want, 0)
                        .map_err(|e| other("repairing the role map", e))?;
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
                .map_err(|e| other("reading the role map", e))?;
            if got != IfaceConfig::default() {
                drift.roles += 1;
                if repair {
                    map.set(ifindex, IfaceConfig::default(), 0)
                        .map_err(|e| other("repairing the role map", e))?;
                }
            }
        }
        Ok(drift)
    }

    /// Map fill levels for metrics: (map, entries in use, capacity).
    pub fn map_usage(&self) -> Vec<(&'static str, u64, u64)> {
        let trie = |f: &Family, shape: &Shape| {
            let root = if f.trie.mirror.len() >= 1 << shape.root_bits {
                1u64 << shape.root_bits
            } else {
                0
            };
            let node = 1u64 << shape.stride;
            (
                root + u64::from(f.live.nodes_in_use()) * node,
                f.trie.mirror.len() as u64,
            )
        };
        let (v4u, v4c) = trie(&self.v4, &build::V4);
        let (v6u, v6c) = trie(&self.v6, &build::V6);
        vec![
            ("ipv4_trie", v4u, v4c),
            ("ipv6_trie", v6u, v6c),
            (
                "policy",
                u64::from(self.entities),
                u64::from(self.entity_capacity),
            ),
        ]
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
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

    /// Per-entity counters summed over CPUs and interfaces, in entity order.
    pub fn counters(&self) -> Result<Vec<EntityCounters>, DataplaneError> {
        let mut out = vec![EntityCounters::default(); self.entities as usize];
        for (_, per_entity) in self.counters_by_slot()? {
            for (total, c) in out.iter_mut().zip(per_entity) {
                for d in 0..2 {
                    for v in 0..2 {
                        total.slots[d][v].packets += c.slots[d][v].packets;
                        total.slots[d][v].bytes += c.slots[d][v].bytes;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Per-entity counters summed over CPUs, for each counter slot in use (with its ifindex).
    /// Reads only the slots in use: a scrape costs entities x interfaces x 4 lookups.
    pub fn counters_by_slot(&self) -> Result<Vec<(u32, Vec<EntityCounters>)>, DataplaneError> {
        let map: PerCpuArray<_, Counter> = PerCpuArray::try_from(
            self.ebpf
                .map(maps::COUNTERS)
                .expect("defined by the object"),
        )
        .map_err(|e| other("opening the counters map", e))?;
        let mut out = Vec::new();
        for (slot, ifindex) in self.slots() {
            let mut per_entity = vec![EntityCounters::default(); self.entities as usize];
            for (entity, counters) in per_entity.iter_mut().enumerate() {
                for d in Direction::ALL {
                    for v in Verdict::ALL {
                        let values = map
                            .get(&counter_index(entity as u32, slot, d, v), 0)
                            .map_err(|e| other("reading the counters map", e))?;
                        let c = &mut counters.slots[d as usize][v as usize];
                        for cpu in values.iter() {
                            c.packets += cpu.packets;
                            c.bytes += cpu.bytes;
                        }
                    }
                }
            }
            out.push((ifindex, per_entity));
        }
        Ok(out)
    }

    /// Global stats summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> Result<Vec<u64>, DataplaneError> {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(maps::STATS).expect("defined by the object"))
                .map_err(|e| other("opening the stats map", e))?;
        (0..Stat::COUNT)
            .map(|i| {
                map.get(&i, 0)
                    .map(|v| v.iter().sum())
                    .map_err(|e| other("reading the stats map", e))
            })
            .collect()
    }

    /// Sets every entity's event token bucket ([`EventLimits::OFF`]: no events).
    pub fn set_event_limits(&mut self, limits: EventLimits) -> Result<(), DataplaneError> {
        if limits != self.event_limits {
            write_event_limits(&mut self.ebpf, limits)?;
            self.event_limits = limits;
        }
        Ok(())
    }

    /// The event limits in force.
    pub fn event_limits(&self) -> EventLimits {
        self.event_limits
    }

    /// The event token buckets' clock.
    pub fn event_clock(&self) -> EventClock {
        self.event_clock
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
        .map_err(|e| other("opening the lost-events map", e))?;
        (0..self.entities)
            .map(|i| {
                map.get(&i, 0)
                    .map(|v| v.iter().sum())
                    .map_err(|e| other("reading the lost-events map", e))
            })
            .collect()
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
        e => other(format!("loading the {program}"), e),
    }
}

/// Loads the XDP program and the TC egress classifier of a loaded object (both, used or not: a
/// kernel that refuses either is found at start).
fn load_programs(ebpf: &mut Ebpf) -> Result<(), DataplaneError> {
    let program: &mut Xdp = ebpf
        .program_mut(embargo_abi::programs::CLASSIFY)
        .ok_or_else(|| {
            other(
                "finding the XDP program",
                MapError::InvalidName {
                    name: "embargo_xdp".into(),
                },
            )
        })?
        .try_into()
        .map_err(|e| other("finding the XDP program", e))?;
    program
        .load()
        .map_err(|e| program_load_error(e, "XDP program"))?;
    let egress: &mut SchedClassifier = ebpf
        .program_mut(embargo_abi::programs::EGRESS)
        .ok_or_else(|| {
            other(
                "finding the TC egress program",
                MapError::InvalidName {
                    name: embargo_abi::programs::EGRESS.into(),
                },
            )
        })?
        .try_into()
        .map_err(|e| other("finding the TC egress program", e))?;
    egress
        .load()
        .map_err(|e| program_load_error(e, "TC egress program"))?;
    Ok(())
}

/// Bytes of kernel memory the maps take for tries of `v4_len` and `v6_len` entries and room for
/// `entities`.
fn map_bytes(v4_len: usize, v6_len: usize, entities: u32) -> u64 {
    let cpus = system::possible_cpus() as u64;
    let counters = entities * embargo_abi::COUNTERS_PER_ENTITY;
    ((v4_len + v6_len) * 4) as u64
        + u64::from(entities) * 4
        + u64::from(counters) * 16 * cpus
        // Events: the ring, each entity's bucket and per-CPU lost count.
        + u64::from(EVENTS_RING_BYTES)
        + u64::from(entities) * 8 * (1 + cpus)
}

/// The OS error code of a TC error, if it has one.
/// What packets on interface `name` start with, from its hardware type; refuses a type the
/// programs cannot parse.
fn link_of(name: &str) -> Result<Link, DataplaneError> {
    let arphrd = system::arphrd(name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => DataplaneError::UnknownInterface {
            name: name.to_owned(),
        },
        _ => other(format!("reading the hardware type of {name}"), e),
    })?;
    Link::from_arphrd(arphrd).ok_or_else(|| DataplaneError::UnsupportedLink {
        name: name.to_owned(),
        arphrd,
    })
}

fn tc_errno(e: &TcError) -> Option<i32> {
    match e {
        TcError::NetlinkError(e) => e.raw_os_error(),
        TcError::IoError(e) => e.raw_os_error(),
        _ => None,
    }
}

fn array<'a, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<Array<&'a mut MapData, V>, DataplaneError> {
    let map = ebpf.map_mut(name).ok_or_else(|| {
        other(
            format!("finding map {name}"),
            MapError::InvalidName { name: name.into() },
        )
    })?;
    Array::try_from(map).map_err(|e| other(format!("opening map {name}"), e))
}

fn write_event_limits(ebpf: &mut Ebpf, limits: EventLimits) -> Result<(), DataplaneError> {
    let mut map: Array<_, EventLimits> = array(ebpf, maps::EVENT_LIMITS)?;
    map.set(0, limits, 0)
        .map_err(|e| other("writing the event limits map", e))
}

/// Whether the verifier gives this process the pointer arithmetic the program needs
/// (`CAP_PERFMON`, or `CAP_SYS_ADMIN` which implies it); assumed so if it cannot be told.
fn verifier_trusts_us() -> bool {
    [system::CAP_PERFMON, system::CAP_SYS_ADMIN]
        .into_iter()
        .any(|cap| system::has_capability(cap).unwrap_or(true))
}

fn classify_load_error(e: EbpfError, v4: &Table, v6: &Table) -> DataplaneError {
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
            let (map, t) = if v6_failed {
                (maps::V6_TRIE, v6)
            } else {
                (maps::V4_TRIE, v4)
            };
            return DataplaneError::MapTooLarge {
                map,
                entries: u64::from(t.chunks()),
                bytes: t.bytes() as u64,
                source: Box::new(e),
            };
        }
        _ => {}
    }
    other("loading the BPF object", e)
}

/// Copies `entries` into the mmap-able array map `name`.
/// Maps trie `name` (`len` entries) and writes `entries` into it.
fn map_trie(
    ebpf: &Ebpf,
    name: &'static str,
    len: usize,
    entries: &[u32],
) -> Result<Mirrored, DataplaneError> {
    let Some(Map::Array(data)) = ebpf.map(name) else {
        return Err(other(
            format!("finding map {name}"),
            MapError::InvalidName { name: name.into() },
        ));
    };
    Mirrored::fill(data, len, entries)
        .map_err(|e| other(format!("filling map {name} through mmap"), e))
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
                entity: Some(*e),
            })
            .collect();
        out.extend(
            live.keys()
                .filter(|k| !next.contains_key(k))
                .map(|k| Change {
                    addr: k.0,
                    len: k.1,
                    entity: None,
                }),
        );
        out
    }

    fn sorted(mut c: Vec<Change>) -> Vec<(u128, u8, Option<u32>)> {
        let mut v: Vec<_> = c.drain(..).map(|c| (c.addr, c.len, c.entity)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn the_merge_walk_finds_what_a_map_of_the_next_policy_finds() {
        // splitmix64: a small seeded generator; prefixes from a narrow space so that loaded and
        // next overlap, collide and repeat.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rng = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
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
            let live = LiveTrie::new(
                &build::V4,
                loaded.iter().map(|(n, e)| {
                    let (a, l) = key4(n);
                    (a, l, *e)
                }),
                0,
                0,
            );
            assert_eq!(
                sorted(changes(&live, &next, key4)),
                sorted(naive(live.prefixes(), &next)),
                "round {round}"
            );
        }
    }
}
