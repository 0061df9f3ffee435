//! Loads Embargo's XDP program, sizes and fills its maps, attaches it, and reads its counters.
//!
//! Maps are sized from the policy before the object is loaded; the tries are copied in through
//! `mmap` (the arrays are `BPF_F_MMAPABLE`), so a million-prefix policy loads in one memory copy
//! rather than a syscall per entry. Everything is filled before the first interface is attached:
//! the program never sees a half-loaded policy.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr,
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, Map, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use embargo_abi::{
    Counter, Direction, EntityPolicy, IfaceConfig, MAX_IFINDEX, MAX_INTERFACES, Stat, Verdict,
    counter_index, maps,
};
use serde::Serialize;

use crate::{
    config::{self, Role},
    policy::Policy,
    system,
    table::{self, Table, TableError},
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
    /// The verifier rejected the program; the log says why.
    #[error("the kernel verifier rejected the XDP program ({io_error}); verifier log:\n{log}")]
    Verifier {
        io_error: std::io::Error,
        log: String,
    },
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
    /// Attaching failed in every allowed mode.
    #[error("cannot attach XDP to `{name}` in {mode} mode: {source}")]
    Attach {
        name: String,
        mode: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
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

/// The loaded program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    entities: u32,
    /// Counter slot -> ifindex using it.
    slots: [Option<u32>; MAX_INTERFACES as usize],
    attachments: Vec<Attachment>,
    /// One link per attachment, same order.
    links: Vec<XdpLinkId>,
    pub load_stats: LoadStats,
}

/// Minimum kernel: bounded loops (5.3), mmap-able arrays (5.5), XDP bpf_link (5.9).
const MIN_KERNEL: (u32, u32) = (5, 10);

impl Dataplane {
    /// Builds the tries for `policy`, loads the program with maps sized to fit, and fills them.
    pub fn load(policy: &Policy) -> Result<Self, DataplaneError> {
        let v4 = table::build_v4(&policy.v4)?;
        let v6 = table::build_v6(&policy.v6)?;
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
        let entities = policy.entities.len().max(1) as u32;
        let counters = entities * embargo_abi::COUNTERS_PER_ENTITY;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::V4_TRIE, v4.chunks())
            .map_max_entries(maps::V6_TRIE, v6.chunks())
            .map_max_entries(maps::POLICY, entities)
            .map_max_entries(maps::COUNTERS, counters);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| classify_load_error(e, v4, v6))?;

        fill_mmap(&ebpf, maps::V4_TRIE, &v4.entries)?;
        fill_mmap(&ebpf, maps::V6_TRIE, &v6.entries)?;
        {
            let mut pol: Array<_, EntityPolicy> = array(&mut ebpf, maps::POLICY)?;
            for (i, e) in policy.entities.iter().enumerate() {
                pol.set(i as u32, e.abi_policy(), 0)
                    .map_err(|e| other("writing the policy map", e))?;
            }
        }
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
        program.load().map_err(|e| match e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                if io_error.raw_os_error() == Some(libc::EPERM) {
                    DataplaneError::Privileges {
                        doing: "loading the XDP program".into(),
                    }
                } else {
                    DataplaneError::Verifier {
                        io_error,
                        log: verifier_log.to_string(),
                    }
                }
            }
            e => other("loading the XDP program", e),
        })?;
        let map_bytes = (v4.bytes() + v6.bytes()) as u64
            + u64::from(entities) * 4
            + u64::from(counters) * 16 * system::possible_cpus() as u64;
        Ok(Self {
            ebpf,
            entities: policy.entities.len() as u32,
            slots: [None; MAX_INTERFACES as usize],
            attachments: Vec::new(),
            links: Vec::new(),
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
        let value = IfaceConfig {
            role: role as u8,
            slot: slot as u8,
            _pad: [0; 2],
        };
        let mut roles: Array<_, IfaceConfig> = array(&mut self.ebpf, maps::IFACE_ROLES)?;
        roles
            .set(ifindex, value, 0)
            .map_err(|e| other("writing the interface role map", e))?;
        self.slots[slot] = match role {
            embargo_abi::Role::None => None,
            _ => Some(ifindex),
        };
        Ok(slot as u32)
    }

    /// The counter slots in use, with their ifindex.
    pub fn slots(&self) -> Vec<(u32, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, i)| i.map(|i| (slot as u32, i)))
            .collect()
    }

    /// Attaches to `iface`: native mode first in `auto`, falling back to generic with a log line.
    pub fn attach(&mut self, iface: &config::Interface) -> Result<&Attachment, DataplaneError> {
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
        self.set_role(ifindex, iface.role.abi())?;
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
        let (link, mode) = match iface.mode {
            config::XdpMode::Native => (attach(program, XdpMode::Driver, "native")?, "native"),
            config::XdpMode::Generic => (attach(program, XdpMode::Skb, "generic")?, "generic"),
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
        self.links.push(link);
        self.attachments.push(Attachment {
            name: iface.name.clone(),
            ifindex,
            role: iface.role,
            mode,
        });
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Detaches from every interface and clears their roles.
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), DataplaneError>)> {
        let mut results = Vec::new();
        let attachments = std::mem::take(&mut self.attachments);
        let links = std::mem::take(&mut self.links);
        let program: &mut Xdp = self
            .ebpf
            .program_mut(embargo_abi::programs::CLASSIFY)
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program");
        for (link, att) in links.into_iter().zip(attachments.iter()) {
            let r = program
                .detach(link)
                .map_err(|e| other(format!("detaching from {}", att.name), e));
            results.push((att.name.clone(), r));
        }
        for att in &attachments {
            let _ = self.set_role(att.ifindex, embargo_abi::Role::None);
        }
        results
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
fn fill_mmap(ebpf: &Ebpf, name: &'static str, entries: &[u32]) -> Result<(), DataplaneError> {
    let Some(Map::Array(data)) = ebpf.map(name) else {
        return Err(other(
            format!("finding map {name}"),
            MapError::InvalidName { name: name.into() },
        ));
    };
    mmap_copy(data, entries).map_err(|e| other(format!("filling map {name} through mmap"), e))
}

fn mmap_copy(data: &MapData, entries: &[u32]) -> std::io::Result<()> {
    // The kernel lays array values out at a stride of their size rounded up to 8 bytes; a
    // 64-byte `Chunk` needs no rounding, so the map's memory is exactly `entries` back to back.
    debug_assert!(
        entries
            .len()
            .is_multiple_of(embargo_abi::trie::LANES as usize)
    );
    let len = size_of_val(entries);
    if len == 0 {
        return Ok(());
    }
    let fd = data.fd().as_fd().as_raw_fd();
    // SAFETY: mapping an array map fd we own, for exactly its value area; the kernel rounds the
    // mapping to pages and rejects lengths past the map. Nothing else maps it at this point.
    unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        ptr::copy_nonoverlapping(entries.as_ptr(), p.cast::<u32>(), entries.len());
        if libc::munmap(p, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
