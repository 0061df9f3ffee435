//! The contract between Embargo's XDP program and its user-space agent.
//!
//! Both sides compile this crate (the XDP program as `no_std` for `bpfel-unknown-none`, the agent
//! with the `user` feature), so every map name, key and value layout, and code that crosses the
//! kernel boundary is written exactly once.
//!
//! Byte order: every multi-byte field in these types is in the host's (little-endian on bpfel)
//! byte order, because they are written and read by the CPU, never put on the wire. Addresses are
//! looked up as big-endian integers (network order read as a number), see [`trie`].
#![no_std]

pub mod trie;

/// Addresses as the integers the tries are keyed by (an IPv4 address in the low 32 bits): the
/// one conversion the agent's trie builder, in-place updates, range import and exports share.
pub mod addr {
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// An IPv4 address as a trie key.
    pub fn v4(a: Ipv4Addr) -> u128 {
        u128::from(u32::from(a))
    }

    /// An IPv6 address as a trie key.
    pub fn v6(a: Ipv6Addr) -> u128 {
        u128::from(a)
    }

    /// Either family's address as a trie key.
    pub fn bits(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => v6(a),
        }
    }
}

/// Map names, as they appear in the compiled object. The XDP crate spells them in its `#[map]`
/// attributes (the attribute needs a literal); the agent's tests check each one below exists.
pub mod maps {
    /// `ARRAY<u32, IfaceConfig>` keyed by ifindex: the interface's role, counter slot and flags.
    pub const IFACE_ROLES: &str = "EMB_ROLES";
    /// `ARRAY<u32, trie::Chunk>`, mmap-able: the IPv4 compact trie, see [`trie`](super::trie).
    pub const V4_TRIE: &str = "EMB_V4";
    /// `ARRAY<u32, trie::Chunk>`, mmap-able: the IPv6 compact trie, see [`trie`](super::trie).
    pub const V6_TRIE: &str = "EMB_V6";
    /// `ARRAY<u32, EntityPolicy>` keyed by entity index.
    pub const POLICY: &str = "EMB_POLICY";
    /// `ARRAY<u32, GroupEntry>` keyed by evidence group index (what a trie leaf holds): the
    /// group's entity, see [`GroupEntry`](super::GroupEntry).
    pub const GROUPS: &str = "EMB_GROUPS";
    /// `PERCPU_ARRAY<u32, Counter>` keyed by [`counter_index`](super::counter_index) (per
    /// evidence group: an entity's counters are the sum of its groups').
    pub const COUNTERS: &str = "EMB_COUNTERS";
    /// `PERCPU_ARRAY<u32, u64>` keyed by [`Stat`](super::Stat).
    pub const STATS: &str = "EMB_STATS";
    /// `RINGBUF` of [`Event`](super::Event)s, [`EVENTS_RING_BYTES`](super::EVENTS_RING_BYTES)
    /// long: one per dropped or monitored packet its entity's event budget lets through.
    pub const EVENTS: &str = "EMB_EVENTS";
    /// `PERCPU_ARRAY<u32, u64>` keyed by entity index: each entity's event budget on each CPU,
    /// which the agent refills once a second ([`EventLimits::refill`](super::EventLimits::refill)).
    /// Above 0 an event is sent and the budget taken down by one; 0: the event is counted in
    /// [`EVENTS_LOST`]; [`EVENTS_OFF`](super::EVENTS_OFF): events off (none sent, none lost).
    pub const EVENT_BUDGETS: &str = "EMB_EVENTS_BUDGET";
    /// `PERCPU_ARRAY<u32, u64>` keyed by entity index: events not sent, over the entity's rate
    /// limit or because the ring buffer was full.
    pub const EVENTS_LOST: &str = "EMB_EVENTS_LOST";
    /// Every map the production program defines.
    pub const ALL: [&str; 10] = [
        IFACE_ROLES,
        V4_TRIE,
        V6_TRIE,
        POLICY,
        GROUPS,
        COUNTERS,
        STATS,
        EVENTS,
        EVENT_BUDGETS,
        EVENTS_LOST,
    ];
}

/// Version of the maps' layout (names, key and value types, and what their entries mean). A
/// restarted agent reuses the maps a previous one pinned only if both were built with the same
/// version: bump it whenever any map in [`maps`] changes its key, value or meaning.
/// Version 3: trie leaves hold evidence group indices ([`maps::GROUPS`] maps them to entities),
/// counters are per group, events carry the group.
/// Version 4: the event token buckets (`EMB_EVENTS_CFG`, `EMB_EVENTS_BKT`) gave way to per-CPU
/// budgets ([`maps::EVENT_BUDGETS`]).
/// Version 5: the tries ([`maps::V4_TRIE`], [`maps::V6_TRIE`]) are the compact trie of
/// [`trie`] (a 16-bit direct array, 6-bit nodes and leaves in one array per family) instead of
/// the stride trie with its 24-bit root.
pub const LAYOUT_VERSION: u32 = 5;

/// Program names in the compiled objects.
pub mod programs {
    /// The production XDP classifier.
    pub const CLASSIFY: &str = "embargo_xdp";
    /// The production TC classifier for host egress (`SCHED_CLS`, attached at egress), in the
    /// same object and sharing every map with [`CLASSIFY`]; see [`IFACE_EGRESS`](super::IFACE_EGRESS).
    pub const EGRESS: &str = "embargo_tc_egress";
    /// Bench reference: `XDP_DROP` and nothing else.
    pub const BENCH_DROP: &str = "bench_drop";
    /// Bench reference: the same parser, then the kernel LPM trie.
    pub const BENCH_LPM: &str = "bench_lpm";
    /// Bench reference maps: kernel LPM tries for each family.
    pub const BENCH_LPM_V4: &str = "BENCH_LPM4";
    pub const BENCH_LPM_V6: &str = "BENCH_LPM6";
}

/// Highest ifindex the role map can hold (exclusive). The role map is an array so the lookup on
/// the hot path is a bounds check and a load, not a hash.
pub const MAX_IFINDEX: u32 = 65_536;

/// What an interface is: which address of a received packet is matched.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfaceRole {
    /// Not configured: packets pass and count as [`Stat::NoRole`].
    None = 0,
    /// Faces the protected network: received packets are leaving it, match the destination.
    Inside = 1,
    /// Faces the world: received packets come from it, match the source.
    Outside = 2,
}

/// Interfaces one program can count separately ([`IfaceConfig::slot`] is below this).
pub const MAX_INTERFACES: u32 = 16;

/// Value of the role map for one ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceConfig {
    /// [`IfaceRole`] as `u8`; `0` (none) passes everything unclassified.
    pub role: u8,
    /// The interface's slot in the counters, below [`MAX_INTERFACES`].
    pub slot: u8,
    /// Bit set of `IFACE_*` flags ([`IFACE_EGRESS`]); undefined bits are zero.
    pub flags: u8,
    /// [`Link`] as `u8`: what a packet on this interface starts with, where both programs
    /// start parsing. `0` (Ethernet) is what an interface the agent has not configured gets.
    pub link: u8,
}
const _: () = assert!(size_of::<IfaceConfig>() == 4);

/// What the first byte of a packet on an interface is, as both programs see it (XDP: the
/// received frame; TC egress: the socket buffer's data), recorded per interface in
/// [`IfaceConfig::link`]. The agent reads the interface's hardware type at attach
/// (`/sys/class/net/<name>/type`, an `ARPHRD_*` number) and maps it with
/// [`Link::from_arphrd`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    /// An Ethernet header (with up to two VLAN tags, possibly PPPoE session), then IP:
    /// Ethernet, veth, VLAN sub-interfaces, bonds, bridges, tap, loopback.
    #[default]
    Ethernet = 0,
    /// The IP header itself, its version nibble telling IPv4 from IPv6: layer-3 devices
    /// without a link-layer header (tun, WireGuard, PPP, IPIP/SIT/GRE tunnels, raw-IP modems).
    RawIp = 1,
}

impl Link {
    /// `ARPHRD_ETHER`.
    pub const ARPHRD_ETHER: u16 = 1;
    /// `ARPHRD_PPP`: `ppp0` (the PPP header is gone by the time a program sees the packet).
    pub const ARPHRD_PPP: u16 = 512;
    /// `ARPHRD_RAWIP`: cellular modems in raw-IP mode (`qmi_wwan`, `mhi_net`).
    pub const ARPHRD_RAWIP: u16 = 519;
    /// `ARPHRD_TUNNEL`: IPIP.
    pub const ARPHRD_TUNNEL: u16 = 768;
    /// `ARPHRD_TUNNEL6`: IPv6-in-IPv6 and IPv4-in-IPv6 (`ip6tnl`).
    pub const ARPHRD_TUNNEL6: u16 = 769;
    /// `ARPHRD_LOOPBACK`: `lo`, which carries a (zeroed) Ethernet header.
    pub const ARPHRD_LOOPBACK: u16 = 772;
    /// `ARPHRD_SIT`: IPv6-in-IPv4.
    pub const ARPHRD_SIT: u16 = 776;
    /// `ARPHRD_IPGRE`: GRE over IPv4 (`gre`; `gretap` is Ethernet).
    pub const ARPHRD_IPGRE: u16 = 778;
    /// `ARPHRD_IP6GRE`: GRE over IPv6 (`ip6gre`; `ip6gretap` is Ethernet).
    pub const ARPHRD_IP6GRE: u16 = 823;
    /// `ARPHRD_NONE`: tun devices in tun (layer-3) mode, WireGuard.
    pub const ARPHRD_NONE: u16 = 0xfffe;

    /// The link of an interface of hardware type `arphrd`, or `None` for a type the parser
    /// cannot read (the agent refuses to attach there rather than pass everything unparsed).
    pub const fn from_arphrd(arphrd: u16) -> Option<Link> {
        match arphrd {
            Self::ARPHRD_ETHER | Self::ARPHRD_LOOPBACK => Some(Link::Ethernet),
            Self::ARPHRD_NONE
            | Self::ARPHRD_PPP
            | Self::ARPHRD_RAWIP
            | Self::ARPHRD_TUNNEL
            | Self::ARPHRD_TUNNEL6
            | Self::ARPHRD_SIT
            | Self::ARPHRD_IPGRE
            | Self::ARPHRD_IP6GRE => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// [`IfaceConfig::flags`]: host egress is enforced on this interface. The TC egress classifier
/// ([`programs::EGRESS`]) acts only on interfaces with this bit: it matches the *destination* of
/// every packet sent out of the interface, whatever the [`IfaceRole`] says (the role picks the
/// address for received packets only), and counts it as [`Direction::Outbound`] in the
/// interface's counter slot. The agent sets it on `outside` interfaces configured with
/// `egress = true`; elsewhere the classifier passes packets as [`Stat::EgressOff`].
pub const IFACE_EGRESS: u8 = 1 << 0;

/// Direction of a matched packet; part of the counter index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received on an `inside` interface, or sent by the host out of an interface with
    /// [`IFACE_EGRESS`]; destination matched.
    Outbound = 0,
    /// Received on an `outside` interface, source matched.
    Inbound = 1,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Outbound, Direction::Inbound];

    /// The name status, metrics, events and audit records use.
    pub const fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
    /// The bit of this direction in [`EntityPolicy::directions`].
    pub const fn bit(self) -> u8 {
        1 << self as u32
    }
}

/// What happened to a matched packet; part of the counter index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Dropped = 0,
    Monitored = 1,
}

impl Verdict {
    pub const ALL: [Verdict; 2] = [Verdict::Dropped, Verdict::Monitored];

    /// The name status, metrics, events and audit records use.
    pub const fn label(self) -> &'static str {
        match self {
            Verdict::Dropped => "dropped",
            Verdict::Monitored => "monitored",
        }
    }
}

/// [`EntityPolicy::action`]: 0 means "no policy" and the packet passes unattributed-safe.
pub const ACTION_NONE: u8 = 0;
/// Count against the entity and drop.
pub const ACTION_DROP: u8 = 1;
/// Count against the entity and pass.
pub const ACTION_MONITOR: u8 = 2;

/// Per-entity policy, indexed by entity index. Changing an entity's action or directions rewrites
/// this one value and never touches the tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntityPolicy {
    /// [`ACTION_DROP`], [`ACTION_MONITOR`] or [`ACTION_NONE`].
    pub action: u8,
    /// Bit set of [`Direction::bit`] this policy applies to.
    pub directions: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<EntityPolicy>() == 4);

/// One evidence group, the value of [`maps::GROUPS`] at the group's index: a trie leaf names a
/// group (the network group of the configuration whose prefix matched), the group names its
/// entity, whose [`EntityPolicy`] gives the action. Group indices stay the same across reloads
/// while the group stays in the policy (the agent never gives an index to another group, nor a
/// group to another entity, within one generation of maps).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupEntry {
    /// The entity index (key of [`maps::POLICY`]).
    pub entity: u32,
}
const _: () = assert!(size_of::<GroupEntry>() == 4);

/// Packets and bytes, per CPU, per evidence group x interface x direction x verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

impl Counter {
    /// Adds `other`'s packets and bytes (per-CPU values summed, generations carried).
    pub fn add(&mut self, other: Counter) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// Counter slots per evidence group: interfaces x 2 directions x 2 verdicts.
pub const COUNTERS_PER_GROUP: u32 = MAX_INTERFACES * 4;

/// Index of the counter for evidence `group` x interface `slot` x `direction` x `verdict` in
/// [`maps::COUNTERS`]. Group-major, so the kernel needs no group count to compute it.
#[inline(always)]
pub const fn counter_index(group: u32, slot: u32, direction: Direction, verdict: Verdict) -> u32 {
    (group * MAX_INTERFACES + slot) * 4 + (direction as u32) * 2 + verdict as u32
}

/// Global per-CPU counters of what the parser and classifier saw. Every packet ends in exactly
/// one *terminal* outcome: one of the terminal stats (indices below [`Stat::TERMINAL`]), or, when
/// an entity's action applied, that entity's counter (dropped or monitored). So the sum of the
/// terminal stats and the entity counters is the number of packets the program saw, and nothing
/// passes uncounted; the hot path of a match bumps one counter only. The informational stats
/// after the terminal ones describe a packet further and are counted on top. The XDP and the TC
/// egress programs share these maps and each ends every packet it runs on in one terminal
/// outcome, so the sum counts program runs: a packet seen by both (received on one interface,
/// sent out of another with egress enforced) counts once per program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Received on an interface without a role; passed.
    NoRole = 0,
    /// Shorter than an Ethernet header, or (raw-IP interfaces, see [`Link::RawIp`]) than two
    /// bytes; passed.
    TruncatedEthernet,
    /// A VLAN tag cut short; passed.
    TruncatedVlan,
    /// More than two VLAN tags; passed.
    VlanTooDeep,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, PPPoE discovery, a PPPoE session frame carrying
    /// LCP or another PPP protocol or whose PPPoE header is cut short, a packet on a raw-IP
    /// interface whose version nibble is neither 4 nor 6, ...); passed.
    NonIp,
    /// IPv4 header cut short; passed.
    TruncatedIpv4,
    /// IPv4 version or header length field invalid; passed.
    MalformedIpv4,
    /// IPv6 header cut short; passed.
    TruncatedIpv6,
    /// IPv6 version field invalid; passed.
    MalformedIpv6,
    /// Well-formed IPv4 whose matched address is in no prefix; passed.
    MissIpv4,
    /// Well-formed IPv6 whose matched address is in no prefix (for an IPv4-mapped or
    /// IPv4-compatible address, in neither the IPv4 nor the IPv6 prefixes, see
    /// [`trie::lookup_v6_or_v4`]); passed.
    MissIpv6,
    /// Matched an entity whose policy does not cover this direction; passed.
    OtherDirection,
    /// Matched a group index outside the group table, or an entity index without an action
    /// (never happens with a consistent load; counted so it would be seen); passed.
    NoPolicy,
    /// TC egress: sent out of an interface without [`IFACE_EGRESS`]; passed.
    EgressOff,
    /// TC egress: forwarded from an `inside` interface, whose XDP program already matched its
    /// destination (a second match would count a monitored packet twice); passed.
    EgressForwarded,
    /// Informational: one 802.1Q/802.1ad tag seen on a packet that parsed as IP.
    Vlan,
    /// Informational: two tags seen (QinQ) on a packet that parsed as IP.
    QinQ,
    /// Informational: an IPv4 fragment (classified by its addresses like any packet).
    Ipv4Fragment,
}

impl Stat {
    /// Stats below this index are terminal outcomes.
    pub const TERMINAL: u32 = 15;
    /// Number of stats, the size of [`maps::STATS`].
    pub const COUNT: u32 = 18;
    /// Every stat, in index order, with its stable metric label.
    pub const ALL: [(Stat, &'static str); Self::COUNT as usize] = [
        (Stat::NoRole, "no_role"),
        (Stat::TruncatedEthernet, "truncated_ethernet"),
        (Stat::TruncatedVlan, "truncated_vlan"),
        (Stat::VlanTooDeep, "vlan_too_deep"),
        (Stat::NonIp, "non_ip"),
        (Stat::TruncatedIpv4, "truncated_ipv4"),
        (Stat::MalformedIpv4, "malformed_ipv4"),
        (Stat::TruncatedIpv6, "truncated_ipv6"),
        (Stat::MalformedIpv6, "malformed_ipv6"),
        (Stat::MissIpv4, "miss_ipv4"),
        (Stat::MissIpv6, "miss_ipv6"),
        (Stat::OtherDirection, "other_direction"),
        (Stat::NoPolicy, "no_policy"),
        (Stat::EgressOff, "egress_off"),
        (Stat::EgressForwarded, "egress_forwarded"),
        (Stat::Vlan, "vlan"),
        (Stat::QinQ, "qinq"),
        (Stat::Ipv4Fragment, "ipv4_fragment"),
    ];
}

/// Bytes of the [`maps::EVENTS`] ring buffer (a power of two, a multiple of the page size):
/// 3,276 events of 72 bytes plus the kernel's 8-byte record header.
pub const EVENTS_RING_BYTES: u32 = 256 * 1024;

/// [`Event::family`] of an IPv4 packet.
pub const FAMILY_IPV4: u8 = 4;
/// [`Event::family`] of an IPv6 packet.
pub const FAMILY_IPV6: u8 = 6;
/// [`Event::flags`]: [`Event::src_port`] and [`Event::dst_port`] were read from the packet (TCP
/// or UDP, not a non-first fragment, the ports within the frame).
pub const EVENT_PORTS: u8 = 1;

/// One dropped or monitored packet, sent over [`maps::EVENTS`].
///
/// Byte order: addresses are as on the wire (network order); every other field is in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` when the packet was classified: CLOCK_MONOTONIC, nanoseconds.
    pub timestamp_ns: u64,
    /// The interface the packet was received on.
    pub ifindex: u32,
    /// The entity index the packet matched.
    pub entity: u32,
    /// Source address: IPv4 in the first 4 bytes (the rest zero), IPv6 all 16; see `family`.
    pub src: [u8; 16],
    /// Destination address, laid out like `src`.
    pub dst: [u8; 16],
    /// Frame length as XDP saw it (Ethernet header included), bytes.
    pub packet_len: u32,
    /// TCP or UDP source port when `flags` has [`EVENT_PORTS`], else 0.
    pub src_port: u16,
    /// TCP or UDP destination port when `flags` has [`EVENT_PORTS`], else 0.
    pub dst_port: u16,
    /// [`Direction`] as `u8`.
    pub direction: u8,
    /// [`Verdict`] as `u8`.
    pub verdict: u8,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// IPv4 protocol, or the IPv6 fixed header's next header (an extension header's number
    /// when there is one: they are never walked).
    pub protocol: u8,
    /// Bit set of [`EVENT_PORTS`].
    pub flags: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 3],
    /// The evidence group index the packet matched (key of [`maps::GROUPS`]).
    pub group: u32,
    /// Explicit padding; always zero.
    pub _pad2: [u8; 4],
}
const _: () = assert!(size_of::<Event>() == 72);

/// An [`maps::EVENT_BUDGETS`] value: events off for that entity on that CPU (none sent, none
/// counted lost).
pub const EVENTS_OFF: u64 = u64::MAX;

/// The event rate every entity gets, as the agent turns it into per-CPU budgets
/// ([`maps::EVENT_BUDGETS`]). The kernel reads no clock for it: it only takes a budget down by
/// one per event, and the agent refills the budgets once a second ([`EventLimits::refill`]).
///
/// Budgets are divided across CPUs: each CPU gets `ceil(rate / cpus)` per second and may save
/// unused budget up to `ceil(max(burst, rate) / cpus)`. Over all CPUs an entity so sends at most
/// `rate` events a second (plus the rounding, fewer than one per CPU), and after an idle spell
/// at most `burst` at once, however its packets spread over CPUs; the ring buffer is sized for
/// that, not for `rate` times the number of CPUs. The price: an entity whose packets all land
/// on one CPU (one flow, RSS) gets that CPU's share only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventLimits {
    /// Events per second per entity (over all CPUs); 0 turns events off.
    pub rate: u32,
    /// Events at once after an idle spell (over all CPUs); at least `rate` in effect.
    pub burst: u32,
}

impl EventLimits {
    /// No events at all.
    pub const OFF: EventLimits = EventLimits { rate: 0, burst: 0 };
    /// The default: 100 events per second per entity, bursts of 100.
    pub const DEFAULT: EventLimits = EventLimits::per_second(100, 100);

    /// `rate` events per second (at least 1) in bursts of up to `burst`.
    pub const fn per_second(rate: u32, burst: u32) -> Self {
        Self {
            rate: if rate == 0 { 1 } else { rate },
            burst,
        }
    }

    /// Whether events are sent at all.
    pub const fn enabled(&self) -> bool {
        self.rate != 0
    }

    /// What one CPU gets per refill: `ceil(rate / cpus)`.
    pub const fn share(&self, cpus: u32) -> u64 {
        let cpus = if cpus == 0 { 1 } else { cpus } as u64;
        (self.rate as u64).div_ceil(cpus)
    }

    /// The most one CPU may hold: `ceil(max(burst, rate) / cpus)`.
    pub const fn cap(&self, cpus: u32) -> u64 {
        let cpus = if cpus == 0 { 1 } else { cpus } as u64;
        let b = if self.burst > self.rate {
            self.burst
        } else {
            self.rate
        };
        (b as u64).div_ceil(cpus)
    }

    /// One CPU's budget after a refill, given what it held (`old`): `old` plus its share, at
    /// most its cap; [`EVENTS_OFF`] when events are off. A budget that was off starts empty.
    pub const fn refill(&self, old: u64, cpus: u32) -> u64 {
        if !self.enabled() {
            return EVENTS_OFF;
        }
        let old = if old == EVENTS_OFF { 0 } else { old };
        let new = old.saturating_add(self.share(cpus));
        let cap = self.cap(cpus);
        if new > cap { cap } else { new }
    }

    /// One CPU's budget when events are (re)configured: a full one (its cap), or
    /// [`EVENTS_OFF`].
    pub const fn initial(&self, cpus: u32) -> u64 {
        if self.enabled() {
            self.cap(cpus)
        } else {
            EVENTS_OFF
        }
    }
}

/// `BPF_F_MMAPABLE` from the kernel uapi: the trie arrays are filled through `mmap`, which loads a
/// million-prefix policy in milliseconds instead of a syscall per entry.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] integers with explicit padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::EntityPolicy {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Counter {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::GroupEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::IfaceConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Event {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_table_is_in_index_order() {
        for (i, (stat, _)) in Stat::ALL.iter().enumerate() {
            assert_eq!(*stat as usize, i);
        }
    }

    #[test]
    fn terminal_stats_come_first() {
        // The first informational stat ends the terminal range; every passing outcome a
        // program returns is below it.
        assert_eq!(Stat::Vlan as u32, Stat::TERMINAL);
        assert!((Stat::EgressForwarded as u32) < Stat::TERMINAL);
        assert_eq!(Stat::ALL.len() as u32, Stat::COUNT);
    }

    #[test]
    fn hardware_types_map_to_links() {
        for t in [Link::ARPHRD_ETHER, Link::ARPHRD_LOOPBACK] {
            assert_eq!(Link::from_arphrd(t), Some(Link::Ethernet), "{t}");
        }
        // tun, WireGuard, PPP, raw-IP modems, IPIP, ip6tnl, SIT, GRE, ip6gre.
        for t in [0xfffe, 512, 519, 768, 769, 776, 778, 823] {
            assert_eq!(Link::from_arphrd(t), Some(Link::RawIp), "{t}");
        }
        // InfiniBand, IEEE 802.11 radiotap, CAN, `ARPHRD_VOID`: refused.
        for t in [32, 803, 280, 0xffff] {
            assert_eq!(Link::from_arphrd(t), None, "{t}");
        }
        assert_eq!(IfaceConfig::default().link, Link::Ethernet as u8);
    }

    #[test]
    fn counter_indices_are_distinct_and_dense() {
        const N: usize = (2 * COUNTERS_PER_GROUP) as usize;
        let mut seen = [false; N];
        for e in 0..2 {
            for slot in 0..MAX_INTERFACES {
                for d in Direction::ALL {
                    for v in Verdict::ALL {
                        let i = counter_index(e, slot, d, v) as usize;
                        assert!(!seen[i]);
                        seen[i] = true;
                    }
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn refill_divides_the_rate_across_cpus() {
        let l = EventLimits::per_second(100, 100);
        // 4 CPUs: 25 each a second, never more than 25 held.
        assert_eq!(l.share(4), 25);
        assert_eq!(l.refill(0, 4), 25);
        assert_eq!(l.refill(25, 4), 25);
        assert_eq!(l.refill(10, 4), 25);
        // Rounded up: 100 over 3 CPUs is 34 each (102 a second at most).
        assert_eq!(l.share(3), 34);
        // One CPU holds it all; zero CPUs (cannot be told) counts as one.
        assert_eq!(l.refill(0, 1), 100);
        assert_eq!(l.share(0), 100);
        // A rate below the number of CPUs still gives each CPU one.
        assert_eq!(EventLimits::per_second(1, 1).share(8), 1);
    }

    #[test]
    fn unused_budget_saves_up_to_the_burst() {
        // 10/s, burst 50, 2 CPUs: 5 a second each, saved up to 25.
        let l = EventLimits::per_second(10, 50);
        let mut b = 0;
        for want in [5, 10, 15, 20, 25, 25, 25] {
            b = l.refill(b, 2);
            assert_eq!(b, want);
        }
        assert_eq!(l.initial(2), 25);
        // A burst below the rate is the rate.
        assert_eq!(EventLimits::per_second(100, 1).cap(1), 100);
    }

    #[test]
    fn off_is_a_budget_of_its_own() {
        assert!(!EventLimits::OFF.enabled());
        assert_eq!(EventLimits::OFF.refill(7, 2), EVENTS_OFF);
        assert_eq!(EventLimits::OFF.initial(2), EVENTS_OFF);
        // Turned on again, an entity that was off starts from empty, not from u64::MAX.
        assert_eq!(EventLimits::DEFAULT.refill(EVENTS_OFF, 1), 100);
        assert!(EventLimits::per_second(0, 0).enabled());
    }
}
