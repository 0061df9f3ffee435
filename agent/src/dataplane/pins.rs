//! What outlives the agent in bpffs: pinned links, a generation's pinned maps, and a restarted
//! agent keeping, adopting or removing them.
//!
//! Links: with a pin folder, the XDP links (`link-<interface>`) and the TCX egress links
//! (`tc-<interface>`) are pinned, so enforcement and counters outlive the agent
//! ([`Dataplane::leave_attached`]); a restarted agent takes each over atomically
//! ([`Dataplane::adopt`], `bpf_link_update`), and `embargo detach` removes them
//! ([`detach_pinned`]).
//!
//! Every map but the event ring is pinned at `<pin dir>/maps-<generation>/<map name>` (the ring
//! is each agent's own: a reader starts with an empty one). The state file
//! ([`crate::dataplane::state`]) describes what they hold. [`Dataplane::reuse`] loads the program against
//! the pinned maps only if everything agrees: the file's format and the maps' layout version,
//! the generation's pins, each pinned map's kernel id and sizes, each trie's content fingerprint,
//! the policy map's values and the tries' node bookkeeping. Otherwise it says why, and the agent
//! loads a fresh generation as before.
//!
//! The pin folder and each generation's folder are created 0700 and refused when another user
//! owns them or group or others can write in them ([`prepare_pin_dir`]): whoever can change
//! their names can unpin the links and end enforcement.

use std::{
    collections::BTreeMap,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
};

use aya::{
    EbpfError, EbpfLoader,
    maps::{Array, Map, MapData, MapError},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use embargo_abi::{
    Counter, EntityPolicy, GroupEntry, IfaceConfig, LAYOUT_VERSION, MAX_INTERFACES, maps, trie,
};

use super::{
    AttachMode, Attached, Attachment, Dataplane, DataplaneError, Family, Held, LoadStats, OBJECT,
    TcHeld, array, attach::link_of, link_error, load_programs, map_bytes, map_error, pin_error,
    system,
};
use crate::{
    config,
    dataplane::{
        state::{
            self, Carried, MapRecord, NetlinkFilter, SlotState, State, StateUpdate, TrieState,
        },
        trie::{build, live::LiveTrie, mapped::Mirrored},
    },
    files::write,
    policy::EntityIndex,
};

/// Counters of earlier generations: by entity id, and by group ([`state::group_carry_key`]).
pub type CarriedCounters = (BTreeMap<String, Carried>, BTreeMap<String, Carried>);

/// Why the maps a previous agent pinned cannot be reused ([`Dataplane::reuse`]): the agent
/// says so and loads a fresh generation; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    #[error("the state file has format {found}, this agent reads {reads}")]
    Format { found: u32, reads: u32 },
    #[error("the pinned maps have layout version {found}, this agent's program {LAYOUT_VERSION}")]
    Layout { found: u32 },
    #[error("the maps of generation {generation} are not pinned at {}", dir.display())]
    NotPinned { generation: String, dir: PathBuf },
    /// Pins in folders someone else controls may not be what the state file describes.
    #[error(transparent)]
    PinFolder(#[from] write::SafeFsError),
    #[error("the state file does not describe map {map}")]
    Undescribed { map: &'static str },
    #[error("opening the pinned map {}: {source}", path.display())]
    OpenMap { path: PathBuf, source: MapError },
    #[error("{} is map id {found}, the state file names map id {named}", path.display())]
    MapId {
        path: PathBuf,
        found: u32,
        named: u32,
    },
    #[error("the pinned map {map} has (key, value, entries) {got:?}, this agent needs {want:?}")]
    MapShape {
        map: &'static str,
        got: (u32, u32, u32),
        want: (u32, u32, u32),
    },
    #[error("loading the program against the pinned maps: {0}")]
    Load(Box<EbpfError>),
    /// aya creates (and pins) a map whose pin vanished meanwhile.
    #[error("map {map} changed while it was being opened (id {found:?}, expected {expected})")]
    Changed {
        map: &'static str,
        found: Option<u32>,
        expected: u32,
    },
    #[error("the {family} trie's length {len} does not fit its map")]
    TrieLength { family: &'static str, len: usize },
    #[error("mapping the pinned {family} trie: {source}")]
    MapTrie {
        family: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the pinned {family} trie is not what the state file describes (an update cut short, or the map changed behind the agent's back)"
    )]
    Fingerprint { family: &'static str },
    #[error("the state file's {family} node bookkeeping does not fit the map")]
    Bookkeeping { family: &'static str },
    #[error("the state file's entities do not fit the policy map")]
    Entities,
    #[error("the state file's evidence groups do not fit the group table")]
    Groups,
    #[error("reading the pinned group table: {0}")]
    ReadGroups(MapError),
    #[error("the pinned group table's entry {index} differs from the state file")]
    GroupEntry { index: usize },
    #[error("reading the pinned policy map: {0}")]
    ReadPolicy(MapError),
    #[error("the pinned policy map's entry {index} differs from the state file")]
    PolicyEntry { index: usize },
    #[error("the state file's counter slot {slot} is not valid")]
    Slot { slot: u32 },
    /// Opening a map of, or loading a program into, the object failed.
    #[error(transparent)]
    Dataplane(Box<DataplaneError>),
}

impl From<DataplaneError> for ReuseError {
    fn from(e: DataplaneError) -> Self {
        ReuseError::Dataplane(Box::new(e))
    }
}

/// The maps pinned per generation: all but the event ring.
pub const PINNED: [&str; 9] = [
    maps::IFACE_ROLES,
    maps::V4_TRIE,
    maps::V6_TRIE,
    maps::POLICY,
    maps::GROUPS,
    maps::COUNTERS,
    maps::STATS,
    maps::EVENT_BUDGETS,
    maps::EVENTS_LOST,
];

/// The value size this agent's program expects of pinned map `name` (keys are all `u32`).
fn value_size(name: &str) -> u32 {
    (match name {
        maps::IFACE_ROLES => size_of::<IfaceConfig>(),
        maps::V4_TRIE | maps::V6_TRIE => size_of::<trie::Chunk>(),
        maps::POLICY => size_of::<EntityPolicy>(),
        maps::GROUPS => size_of::<GroupEntry>(),
        maps::COUNTERS => size_of::<Counter>(),
        _ => size_of::<u64>(),
    }) as u32
}

/// A new generation's id: unique per load (time and process).
pub fn new_generation_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

/// The folder generation `generation`'s maps are pinned in.
pub fn maps_dir(pin_dir: &Path, generation: &str) -> PathBuf {
    pin_dir.join(format!("maps-{generation}"))
}

/// Creates the pin folder `dir` 0700 (with any missing parent) if it is missing, then refuses
/// it unless the agent's user (or root) owns it and neither group nor others can write in it:
/// whoever can change its names can unpin the links and maps and so end enforcement.
pub fn prepare_pin_dir(dir: &Path) -> Result<(), DataplaneError> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(pin_error(
                format!("creating the pin folder {}", dir.display()),
                e,
            ));
        }
    }
    write::check_dir(dir, "pin folder")?;
    Ok(())
}

fn map_data<'a>(ebpf: &'a aya::Ebpf, name: &str) -> Option<&'a MapData> {
    match ebpf.map(name)? {
        Map::Array(d) | Map::PerCpuArray(d) => Some(d),
        _ => None,
    }
}

/// Removes every generation's pinned maps under `pin_dir` (for `embargo detach`). Returns each
/// folder with the outcome.
pub fn remove_generations(pin_dir: &Path) -> Vec<(PathBuf, std::io::Result<()>)> {
    let Ok(entries) = std::fs::read_dir(pin_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("maps-"))
        .map(|e| {
            let path = e.path();
            let r = std::fs::remove_dir_all(&path);
            (path, r)
        })
        .collect()
}

/// A trie's state without its prefix set (see [`Dataplane::state_update`]).
fn trie_head(f: &Family) -> TrieState {
    TrieState {
        len: f.trie.mirror.len(),
        fingerprint: f.trie.fingerprint(),
        prefixes: Default::default(),
        bookkeeping: f.live.bookkeeping(),
    }
}

impl Dataplane {
    /// This generation's id.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// Pins this generation's maps under `pin_dir` (see [`PINNED`]); all or nothing.
    pub fn pin_maps(&mut self, pin_dir: &Path) -> Result<(), DataplaneError> {
        let dir = maps_dir(pin_dir, &self.generation);
        // A new generation's folder: created here, 0700 (a name already there is refused).
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| pin_error(format!("creating the pin folder {}", dir.display()), e))?;
        write::check_dir(&dir, "pin folder")?;
        for name in PINNED {
            let path = dir.join(name);
            let r = self
                .ebpf
                .map(name)
                .expect("defined by the object")
                .pin(&path);
            if let Err(e) = r {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(pin_error(
                    format!("pinning map {name} at {}", path.display()),
                    e,
                ));
            }
        }
        self.maps_dir = Some(dir);
        Ok(())
    }

    /// Removes this generation's map pins (the maps live on while a program uses them).
    pub fn unpin_maps(&mut self) -> Result<(), DataplaneError> {
        match self.maps_dir.take() {
            Some(dir) => std::fs::remove_dir_all(&dir)
                .map_err(|e| pin_error(format!("removing the pinned maps {}", dir.display()), e)),
            None => Ok(()),
        }
    }

    /// The map pin folders of every other generation under the pin folder: older ones, to
    /// remove once the state file names this one ([`state::Writer`] does).
    pub fn other_generations(&self) -> Vec<PathBuf> {
        let (Some(pin_dir), Some(mine)) = (&self.pin_dir, &self.maps_dir) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(pin_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p != mine
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("maps-"))
            })
            .collect()
    }

    /// Netlink egress filters a previous agent left (from its state file): [`Dataplane::adopt`]
    /// takes them over instead of adding a second filter.
    pub fn set_netlink_left(&mut self, filters: Vec<NetlinkFilter>) {
        self.netlink_left = filters;
    }

    /// Clears the role of every interface that has a counter slot but no attachment (one a
    /// previous agent enforced on and this one does not). Returns their ifindexes.
    pub fn clear_unattached_roles(&mut self) -> Vec<u32> {
        let stale: Vec<u32> = self
            .slots
            .iter()
            .flatten()
            .copied()
            .filter(|i| !self.attached.iter().any(|a| a.attachment.ifindex == *i))
            .collect();
        for i in &stale {
            let _ = self.set_role(*i, embargo_abi::IfaceRole::None);
        }
        stale
    }

    /// What the state file says about this generation once `index`'s entities and groups with
    /// `digest` are applied; `carried` are the counters of earlier generations (by entity id,
    /// and by group, [`state::group_carry_key`]). `None` if the maps are not pinned. Copies the
    /// prefix sets: [`Dataplane::state_update`] is what a reload takes.
    pub fn state(
        &self,
        index: &EntityIndex,
        digest: &str,
        carried: CarriedCounters,
    ) -> Result<Option<State>, DataplaneError> {
        let mut st = self.state_head(index, digest, carried)?;
        if let Some(st) = &mut st {
            st.v4.prefixes = self.v4.live.prefixes().clone();
            st.v6.prefixes = self.v6.live.prefixes().clone();
        }
        Ok(st)
    }

    /// As [`Dataplane::state`], for [`state::Writer`]: the prefix sets as their edits since
    /// the previous call (the whole sets the first time in this generation), so its cost
    /// grows with the change, not with the list; `retired` are the pin folders of other
    /// generations ([`Dataplane::other_generations`]). Every update taken must be sent to the
    /// one writer, in order.
    pub fn state_update(
        &mut self,
        index: &EntityIndex,
        digest: &str,
        carried: CarriedCounters,
    ) -> Result<Option<StateUpdate>, DataplaneError> {
        let Some(head) = self.state_head(index, digest, carried)? else {
            return Ok(None);
        };
        Ok(Some(StateUpdate {
            head,
            v4: self.v4.live.take_log(),
            v6: self.v6.live.take_log(),
            retired: self.other_generations(),
        }))
    }

    /// [`Dataplane::state`] without the prefix sets.
    fn state_head(
        &self,
        index: &EntityIndex,
        digest: &str,
        (carried, carried_groups): CarriedCounters,
    ) -> Result<Option<State>, DataplaneError> {
        if self.maps_dir.is_none() {
            return Ok(None);
        }
        let mut records = Vec::new();
        for name in PINNED {
            let info = map_data(&self.ebpf, name)
                .expect("defined by the object")
                .info()
                .map_err(|e| map_error(format!("reading map {name}'s info"), e))?;
            records.push(MapRecord {
                name: name.to_owned(),
                id: info.id(),
                key_size: info.key_size(),
                value_size: info.value_size(),
                max_entries: info.max_entries(),
            });
        }
        let netlink_filters = self
            .attached
            .iter()
            .filter_map(
                |a| match a.egress.as_ref().map(|l| (&l.held, l.added_clsact)) {
                    Some((TcHeld::Owned(link), added_clsact)) => Some(NetlinkFilter {
                        interface: a.attachment.name.clone(),
                        priority: link.priority().ok()?,
                        handle: link.handle().ok()?.into(),
                        added_clsact,
                    }),
                    _ => None,
                },
            )
            .collect();
        Ok(Some(State {
            format: state::FORMAT_VERSION,
            layout: LAYOUT_VERSION,
            generation: self.generation.clone(),
            digest: digest.to_owned(),
            maps: records,
            entity_ids: index.ids().to_vec(),
            policies: self
                .policies
                .iter()
                .map(|p| (p.action, p.directions))
                .collect(),
            entity_capacity: self.entity_capacity,
            groups: index.groups().to_vec(),
            group_capacity: self.group_capacity,
            v4: trie_head(&self.v4),
            v6: trie_head(&self.v6),
            slots: self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(slot, i)| {
                    i.map(|ifindex| SlotState {
                        slot: slot as u32,
                        ifindex,
                        flags: self.flags[slot],
                    })
                })
                .collect(),
            carried,
            carried_groups,
            netlink_filters,
        }))
    }

    /// Loads the program against the maps a previous agent pinned under `pin_dir`, as `state`
    /// describes them, without writing to them: the caller then applies its policy as a diff
    /// ([`Dataplane::apply`]) and takes the pinned links over ([`Dataplane::adopt`]). Counters
    /// continue. `Err` says why the pinned maps cannot be trusted; nothing was changed.
    pub fn reuse(pin_dir: &Path, state: &State) -> Result<Self, ReuseError> {
        if state.format != state::FORMAT_VERSION {
            return Err(ReuseError::Format {
                found: state.format,
                reads: state::FORMAT_VERSION,
            });
        }
        if state.layout != LAYOUT_VERSION {
            return Err(ReuseError::Layout {
                found: state.layout,
            });
        }
        let dir = maps_dir(pin_dir, &state.generation);
        if !dir.is_dir() {
            return Err(ReuseError::NotPinned {
                generation: state.generation.clone(),
                dir,
            });
        }
        // Pins in folders someone else controls may not be what the state file describes.
        for d in [pin_dir, &dir] {
            write::check_dir(d, "pin folder")?;
        }
        let mut records = Vec::new();
        for name in PINNED {
            let rec = state
                .maps
                .iter()
                .find(|m| m.name == name)
                .ok_or(ReuseError::Undescribed { map: name })?;
            let path = dir.join(name);
            let info = MapData::from_pin(&path)
                .and_then(|d| d.info())
                .map_err(|source| ReuseError::OpenMap {
                    path: path.clone(),
                    source,
                })?;
            if info.id() != rec.id {
                return Err(ReuseError::MapId {
                    path,
                    found: info.id(),
                    named: rec.id,
                });
            }
            let want = (4, value_size(name), rec.max_entries);
            let got = (info.key_size(), info.value_size(), info.max_entries());
            if got != want {
                return Err(ReuseError::MapShape {
                    map: name,
                    got,
                    want,
                });
            }
            records.push((name, rec, path));
        }
        let mut loader = EbpfLoader::new();
        for (name, rec, path) in &records {
            loader
                .map_max_entries(name, rec.max_entries)
                .map_pin_path(name, path.clone());
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| ReuseError::Load(Box::new(e)))?;
        // aya creates (and pins) a map whose pin vanished meanwhile: make sure none did.
        for (name, rec, _) in &records {
            let id = map_data(&ebpf, name)
                .and_then(|d| d.info().ok())
                .map(|i| i.id());
            if id != Some(rec.id) {
                return Err(ReuseError::Changed {
                    map: name,
                    found: id,
                    expected: rec.id,
                });
            }
        }
        let max = |name: &str| {
            records
                .iter()
                .find(|(n, ..)| *n == name)
                .map_or(0, |(_, r, _)| r.max_entries)
        };
        let mut families = Vec::new();
        for (name, t, shape, label) in [
            (maps::V4_TRIE, &state.v4, build::V4, "IPv4"),
            (maps::V6_TRIE, &state.v6, build::V6, "IPv6"),
        ] {
            if t.len == 0 || t.len > max(name) as usize * trie::LANES as usize {
                return Err(ReuseError::TrieLength {
                    family: label,
                    len: t.len,
                });
            }
            let mirrored = Mirrored::adopt(map_data(&ebpf, name).expect("pinned"), t.len).map_err(
                |source| ReuseError::MapTrie {
                    family: label,
                    source,
                },
            )?;
            if mirrored.fingerprint() != t.fingerprint {
                return Err(ReuseError::Fingerprint { family: label });
            }
            let prefixes = t.prefixes.iter().map(|(&(a, l), &e)| (a, l, e));
            let live = LiveTrie::restore(shape, prefixes, t.bookkeeping.clone(), t.len)
                .ok_or(ReuseError::Bookkeeping { family: label })?;
            families.push(Family {
                trie: mirrored,
                live,
            });
        }
        let entity_capacity = state.entity_capacity;
        if entity_capacity != max(maps::POLICY)
            || state.policies.len() != state.entity_ids.len()
            || state.policies.len() > entity_capacity as usize
        {
            return Err(ReuseError::Entities);
        }
        let group_capacity = state.group_capacity;
        if group_capacity != max(maps::GROUPS)
            || state.groups.len() > group_capacity as usize
            || state
                .groups
                .iter()
                .any(|(e, _)| *e as usize >= state.entity_ids.len())
        {
            return Err(ReuseError::Groups);
        }
        let groups: Vec<GroupEntry> = state
            .groups
            .iter()
            .map(|(entity, _)| GroupEntry { entity: *entity })
            .collect();
        {
            let table: Array<_, GroupEntry> = array(&mut ebpf, maps::GROUPS)?;
            for (i, want) in groups.iter().enumerate() {
                let got = table.get(&(i as u32), 0).map_err(ReuseError::ReadGroups)?;
                if got != *want {
                    return Err(ReuseError::GroupEntry { index: i });
                }
            }
        }
        let policies: Vec<EntityPolicy> = state
            .policies
            .iter()
            .map(|(action, directions)| EntityPolicy {
                action: *action,
                directions: *directions,
                _pad: [0; 2],
            })
            .collect();
        {
            let pol: Array<_, EntityPolicy> = array(&mut ebpf, maps::POLICY)?;
            for (i, want) in policies.iter().enumerate() {
                let got = pol.get(&(i as u32), 0).map_err(ReuseError::ReadPolicy)?;
                if got != *want {
                    return Err(ReuseError::PolicyEntry { index: i });
                }
            }
        }
        let mut slots = [None; MAX_INTERFACES as usize];
        let mut flags = [0; MAX_INTERFACES as usize];
        for s in &state.slots {
            let slot = s.slot as usize;
            if slot >= slots.len() || slots[slot].is_some() {
                return Err(ReuseError::Slot { slot: s.slot });
            }
            slots[slot] = Some(s.ifindex);
            flags[slot] = s.flags;
        }
        load_programs(&mut ebpf)?;
        let v6 = families.pop().expect("two families");
        let v4 = families.pop().expect("two families");
        let load_stats = LoadStats {
            v4_prefixes: v4.live.prefixes().len(),
            v6_prefixes: v6.live.prefixes().len(),
            v4_nodes: v4.live.nodes_in_use(),
            v6_nodes: v6.live.nodes_in_use(),
            v4_words: v4.live.words_in_use(),
            v6_words: v6.live.words_in_use(),
            v4_chunks: max(maps::V4_TRIE),
            v6_chunks: max(maps::V6_TRIE),
            policy_capacity: entity_capacity,
            group_capacity,
            map_bytes: map_bytes(
                v4.trie.mirror.len(),
                v6.trie.mirror.len(),
                entity_capacity,
                group_capacity,
            ),
        };
        Ok(Self {
            ebpf,
            entities: policies.len() as u32,
            slots,
            attached: Vec::new(),
            pin_dir: Some(pin_dir.to_owned()),
            flags,
            // Not in the state file: every interface's is read again at adopt or attach.
            link_types: [embargo_abi::Link::Ethernet; MAX_INTERFACES as usize],
            tc_api: super::TcApi::for_running_kernel(),
            // The state file's prefix sets, in key order (as its records are), each key once.
            prev_v4: state
                .v4
                .prefixes
                .iter()
                .filter_map(|(&(a, l), &g)| {
                    let n = ipnetwork::Ipv4Network::new(std::net::Ipv4Addr::from(a as u32), l);
                    n.ok().map(|n| (n, g))
                })
                .collect(),
            prev_v6: state
                .v6
                .prefixes
                .iter()
                .filter_map(|(&(a, l), &g)| {
                    let n = ipnetwork::Ipv6Network::new(std::net::Ipv6Addr::from(a), l);
                    n.ok().map(|n| (n, g))
                })
                .collect(),
            v4,
            v6,
            policies,
            entity_capacity,
            groups,
            group_capacity,
            // The budgets' limits are not recorded: the agent's first `set_event_limits`
            // writes them.
            event_limits: None,
            generation: state.generation.clone(),
            maps_dir: Some(dir),
            netlink_left: state.netlink_filters.clone(),
            load_stats,
        })
    }
}

/// The pin path of interface `name`'s TCX egress link under `dir`.
pub fn tc_pin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("tc-{name}"))
}

/// Keeps link `fd` pinned: where it already is (`pinned`, a link adopted from its pin), else
/// at `path`, replacing a pin left there by an agent that was not adopted (an interface no
/// longer in the configuration, say). `what` names the link in errors (`XDP`, `TC egress`).
pub(super) fn keep_pinned(
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
        pin_error(
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
            .map_err(|e| pin_error(format!("removing the pin {}", entry.path().display()), e));
        out.push((label, r));
    }
    out
}

impl Dataplane {
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
            .map_err(|e| link_error(format!("opening the pinned link {}", path.display()), e))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| link_error(format!("the pinned link {}", path.display()), e))?;
        let link_type = link_of(&iface.name)?;
        self.set_role(ifindex, iface.role.abi())?;
        self.set_link(ifindex, link_type)?;
        let id = self
            .xdp_program_mut()
            .attach_to_link(link)
            .map_err(|e| link_error(format!("taking over the pinned link of {}", iface.name), e))?;
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
        self.attached.push(Attached {
            attachment: Attachment {
                name: iface.name.clone(),
                ifindex,
                role: iface.role,
                mode: AttachMode::Adopted,
                egress: iface.egress,
                link: link_type,
            },
            xdp: held,
            egress,
        });
        Ok(self.attached.last().map(|a| &a.attachment))
    }

    /// Lets go of every attachment without detaching: pinned links stay attached (with the
    /// current program and maps) after the agent exits. Returns the interfaces left enforcing;
    /// links that were not pinned cannot outlive the agent and are detached.
    pub fn leave_attached(&mut self) -> Vec<String> {
        let attached = std::mem::take(&mut self.attached);
        let mut xdp = Vec::new();
        // TC egress: a pinned TCX link stays by its pin; a netlink filter stays in the kernel
        // unless removed (the state file names it for the next agent); a TCX link without a pin
        // cannot outlive the agent.
        for a in attached {
            match a.egress.map(|l| l.held) {
                Some(TcHeld::Owned(link)) if link.priority().is_ok() => std::mem::forget(link),
                Some(TcHeld::Owned(link)) => drop(link),
                Some(TcHeld::Pinned { link, .. }) => drop(link),
                None => {}
            }
            xdp.push((a.xdp, a.attachment.name));
        }
        let mut kept = Vec::new();
        for (held, name) in xdp {
            match held {
                Held::Pinned { link, .. } => {
                    drop(link); // the pin keeps it
                    kept.push(name);
                }
                Held::Program(id) => {
                    let _ = self.xdp_program_mut().detach(id);
                }
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;

    /// Regression (issue 10): the pin folder was used whoever owned it or could write in it.
    /// The check itself, on an ordinary folder (bpffs is not needed for it).
    #[test]
    fn a_pin_folder_others_control_is_refused_and_a_new_one_is_private() {
        let base_tmp = tempfile::Builder::new()
            .prefix("embargo-pins-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let base = base_tmp.path().join("t");
        let dir = base.join("embargo");
        prepare_pin_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        for mode in [0o777, 0o775, 0o757] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = prepare_pin_dir(&dir).unwrap_err();
            assert!(matches!(e, DataplaneError::PinFolder(_)), "{mode:o}: {e}");
            let text = e.to_string();
            assert!(
                text.contains("pin folder") && text.contains("chmod go-w"),
                "{text}"
            );
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_pin_dir(&dir).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let e = prepare_pin_dir(&dir).unwrap_err().to_string();
            assert!(
                e.contains("owned by uid 65534") && e.contains("rm -r"),
                "{e}"
            );
        } else {
            eprintln!("the foreign-owner case needs root to chown");
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
