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

/// Map names, as they appear in the compiled object. The XDP crate spells them in its `#[map]`
/// attributes (the attribute needs a literal); the agent's tests check each one below exists.
pub mod maps {
    /// `ARRAY<u32, IfaceConfig>` keyed by ifindex: the interface's role, counter slot and flags.
    pub const IFACE_ROLES: &str = "EMB_ROLES";
    /// `ARRAY<u32, trie::Chunk>`, mmap-able: the IPv4 stride trie, see [`trie`](super::trie).
    pub const V4_TRIE: &str = "EMB_V4";
    /// `ARRAY<u32, trie::Chunk>`, mmap-able: the IPv6 stride trie, see [`trie`](super::trie).
    pub const V6_TRIE: &str = "EMB_V6";
    /// `ARRAY<u32, EntityPolicy>` keyed by entity index.
    pub const POLICY: &str = "EMB_POLICY";
    /// `PERCPU_ARRAY<u32, Counter>` keyed by [`counter_index`](super::counter_index).
    pub const COUNTERS: &str = "EMB_COUNTERS";
    /// `PERCPU_ARRAY<u32, u64>` keyed by [`Stat`](super::Stat).
    pub const STATS: &str = "EMB_STATS";
    /// Every map the production program defines.
    pub const ALL: [&str; 6] = [IFACE_ROLES, V4_TRIE, V6_TRIE, POLICY, COUNTERS, STATS];
}

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
pub enum Role {
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
    /// [`Role`] as `u8`; `0` (none) passes everything unclassified.
    pub role: u8,
    /// The interface's slot in the counters, below [`MAX_INTERFACES`].
    pub slot: u8,
    /// Bit set of `IFACE_*` flags ([`IFACE_EGRESS`]); undefined bits are zero.
    pub flags: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
}
const _: () = assert!(size_of::<IfaceConfig>() == 4);

/// [`IfaceConfig::flags`]: host egress is enforced on this interface. The TC egress classifier
/// ([`programs::EGRESS`]) acts only on interfaces with this bit: it matches the *destination* of
/// every packet sent out of the interface, whatever the [`Role`] says (the role picks the
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

/// Packets and bytes, per CPU, per entity x interface x direction x verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

/// Counter slots per entity: interfaces x 2 directions x 2 verdicts.
pub const COUNTERS_PER_ENTITY: u32 = MAX_INTERFACES * 4;

/// Index of the counter for `entity` x interface `slot` x `direction` x `verdict` in
/// [`maps::COUNTERS`]. Entity-major, so the kernel needs no entity count to compute it.
#[inline(always)]
pub const fn counter_index(entity: u32, slot: u32, direction: Direction, verdict: Verdict) -> u32 {
    (entity * MAX_INTERFACES + slot) * 4 + (direction as u32) * 2 + verdict as u32
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
    /// Shorter than an Ethernet header; passed.
    TruncatedEthernet,
    /// A VLAN tag cut short; passed.
    TruncatedVlan,
    /// More than two VLAN tags; passed.
    VlanTooDeep,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...); passed.
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
    /// Well-formed IPv6 whose matched address is in no prefix; passed.
    MissIpv6,
    /// Matched an entity whose policy does not cover this direction; passed.
    OtherDirection,
    /// Matched an entity index without an action (never happens with a consistent load;
    /// counted so it would be seen); passed.
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
    unsafe impl aya::Pod for super::IfaceConfig {}
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
    fn counter_indices_are_distinct_and_dense() {
        const N: usize = (2 * COUNTERS_PER_ENTITY) as usize;
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
}
