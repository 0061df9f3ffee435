//! Embargo's production programs: the XDP classifier and the TC egress classifier.
//!
//! One XDP program serves every attached interface: the interface's role (from [`ROLES`], keyed
//! by ifindex) says whether the destination (`inside`: the packet leaves the protected network)
//! or the source (`outside`: it comes from the world) is matched. A match yields an evidence
//! group index (the network group whose prefix matched); the group table ([`GROUPS`]) names its
//! entity, and the entity's policy says drop or monitor and for which directions. Every packet
//! ends in exactly one terminal stat; every drop is counted against an evidence group (an
//! entity's counters are the sum of its groups'). A dropped or monitored
//! packet also sends an event to user space, if events are on and as far as its entity's event
//! budget allows (`sample.rs`).
//!
//! XDP sees only received packets. The TC classifier (`embargo_tc_egress`, attached at egress)
//! covers what the host itself sends out of an interface whose role map entry has
//! [`IFACE_EGRESS`]: it always matches the destination, as direction outbound, in that
//! interface's counter slot. Both programs are in this object and use the same statics, so they
//! share one set of maps: tries, policy, counters, stats and the event ring. Both sample
//! events the same way: a TC egress drop or monitor is reported with the egress interface's
//! index and direction outbound.
//!
//! Where a packet starts is the interface's [`Link`](embargo_abi::Link), from its role-map
//! entry: Ethernet (optionally tagged, optionally PPPoE), or the IP header itself on layer-3
//! devices (tun, WireGuard, PPP, IP tunnels). An IPv6 address carrying an IPv4 one (mapped or
//! compatible) is matched as that IPv4 address first ([`trie::lookup_v6_or_v4`]).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod sample;

#[cfg(target_arch = "bpf")]
mod xdp {
    use aya_ebpf::{
        bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
        macros::{classifier, map, xdp},
        maps::{Array, PerCpuArray},
        programs::{TcContext, XdpContext},
    };
    use embargo_abi::{
        ACTION_DROP, ACTION_MONITOR, BPF_F_MMAPABLE, Counter, Direction, EntityPolicy, GroupEntry,
        IFACE_EGRESS, IfaceConfig, IfaceRole, Link, MAX_IFINDEX, MAX_INTERFACES, Stat, Verdict,
        counter_index, trie,
    };
    use embargo_xdp::parse::{Addr, MAX_HEADERS, Packet, Pick, parse};

    #[map(name = "EMB_ROLES")]
    static ROLES: Array<IfaceConfig> = Array::with_max_entries(MAX_IFINDEX, 0);
    // Tries and per-entity maps are resized by the agent at load to fit the policy.
    #[map(name = "EMB_V4")]
    static V4: Array<trie::Chunk> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "EMB_V6")]
    static V6: Array<trie::Chunk> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "EMB_POLICY")]
    static POLICY: Array<EntityPolicy> = Array::with_max_entries(1, 0);
    #[map(name = "EMB_GROUPS")]
    static GROUPS: Array<GroupEntry> = Array::with_max_entries(1, 0);
    #[map(name = "EMB_COUNTERS")]
    static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(4, 0);
    #[map(name = "EMB_STATS")]
    static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

    #[xdp]
    pub fn embargo_xdp(ctx: XdpContext) -> u32 {
        match classify(&ctx) {
            Ok(Verdict::Dropped) => xdp_action::XDP_DROP,
            Ok(Verdict::Monitored) => xdp_action::XDP_PASS,
            Err(stat) => {
                bump(stat);
                xdp_action::XDP_PASS
            }
        }
    }

    /// Host egress: drops with `TC_ACT_SHOT`, passes with `TC_ACT_OK`.
    #[classifier]
    pub fn embargo_tc_egress(ctx: TcContext) -> i32 {
        match egress(&ctx) {
            Ok(Verdict::Dropped) => TC_ACT_SHOT,
            Ok(Verdict::Monitored) => TC_ACT_OK,
            Err(stat) => {
                bump(stat);
                TC_ACT_OK
            }
        }
    }

    /// Returns the verdict for a packet whose outcome was counted here, or the terminal stat
    /// of a packet that passes unclassified (counted by the caller).
    #[inline(always)]
    fn classify(ctx: &XdpContext) -> Result<Verdict, Stat> {
        let iface = ROLES
            .get(ctx.ingress_ifindex() as u32)
            .copied()
            .unwrap_or_default();
        let (direction, pick) = if iface.role == IfaceRole::Inside as u8 {
            (Direction::Outbound, Pick::Destination)
        } else if iface.role == IfaceRole::Outside as u8 {
            (Direction::Inbound, Pick::Source)
        } else {
            return Err(Stat::NoRole);
        };
        let (group, l3) = match_group(ctx, pick, link_of(&iface))?;
        // The mask keeps the slot in range for the verifier; the agent never sets more.
        let slot = u32::from(iface.slot) & (MAX_INTERFACES - 1);
        enforce(
            ctx,
            group,
            slot,
            direction,
            l3,
            ctx.ingress_ifindex() as u32,
        )
    }

    /// The TC egress counterpart of [`classify`]: only on interfaces with [`IFACE_EGRESS`], the
    /// destination always (the role picks the address of received packets, not sent ones),
    /// direction outbound, in the interface's counter slot.
    #[inline(always)]
    fn egress(ctx: &TcContext) -> Result<Verdict, Stat> {
        // SAFETY: the context the kernel passed in; SCHED_CLS programs may read both fields.
        let (ifindex, ingress) =
            unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).ingress_ifindex) };
        let iface = ROLES.get(ifindex).copied().unwrap_or_default();
        if iface.flags & IFACE_EGRESS == 0 {
            return Err(Stat::EgressOff);
        }
        // The host's own packets have no ingress interface. One forwarded from an `inside`
        // interface was matched by destination there already, by XDP.
        if ingress != 0
            && ROLES
                .get(ingress)
                .is_some_and(|i| i.role == IfaceRole::Inside as u8)
        {
            return Err(Stat::EgressForwarded);
        }
        pull_headers(ctx);
        let (group, l3) = match_group(ctx, Pick::Destination, link_of(&iface))?;
        let slot = u32::from(iface.slot) & (MAX_INTERFACES - 1);
        enforce(ctx, group, slot, Direction::Outbound, l3, ifindex)
    }

    /// A socket buffer may hold only the start of a packet in its linear part, the only part the
    /// parser reads. If that is shorter than the headers the parser may need ([`MAX_HEADERS`])
    /// and the packet is longer, pull them in (`bpf_skb_pull_data`; only then, as it may copy
    /// the buffer). If the pull fails, the parser sees the short linear part and the packet
    /// passes counted as truncated: never dropped unattributed.
    #[inline(always)]
    fn pull_headers(ctx: &TcContext) {
        let linear = ctx.data_end() - ctx.data();
        let len = ctx.len() as usize;
        if linear < MAX_HEADERS && len > linear {
            let _ = ctx.skb.pull_data(len.min(MAX_HEADERS) as u32);
        }
    }

    /// The interface's link type; anything but raw IP is Ethernet (the agent writes no other).
    #[inline(always)]
    fn link_of(iface: &IfaceConfig) -> Link {
        if iface.link == Link::RawIp as u8 {
            Link::RawIp
        } else {
            Link::Ethernet
        }
    }

    /// Parses the packet (starting as `link` says), counts the informational stats it earned,
    /// and looks the `pick`ed address up: the matched evidence group's index with the IP
    /// header's offset and whether it is IPv6 (for the event), or the terminal stat of a packet
    /// without one.
    #[inline(always)]
    fn match_group(
        ctx: &impl Packet,
        pick: Pick,
        link: Link,
    ) -> Result<(u32, (usize, bool)), Stat> {
        let parsed = parse(ctx, pick, link)?;
        if parsed.vlan_tags == 1 {
            bump(Stat::Vlan);
        } else if parsed.vlan_tags == 2 {
            bump(Stat::QinQ);
        }
        if parsed.ipv4_fragment {
            bump(Stat::Ipv4Fragment);
        }
        let (entry, miss) = match parsed.addr {
            Addr::V4(addr) => (trie::lookup_v4(addr, |c| V4.get(c)), Stat::MissIpv4),
            Addr::V6(hi, lo) => (
                trie::lookup_v6_or_v4(hi, lo, |c| V4.get(c), |c| V6.get(c)),
                Stat::MissIpv6,
            ),
        };
        let group = trie::group_of(entry).ok_or(miss)?;
        Ok((group, (parsed.l3, matches!(parsed.addr, Addr::V6(..)))))
    }

    /// Applies the policy of the group's entity and counts the packet against the group (its
    /// terminal outcome), or returns the terminal stat of a match that does not apply. `l3` is
    /// the IP header's offset and whether it is IPv6, and `ifindex` the interface (XDP:
    /// received on; TC: sent out of), for the event.
    #[inline(always)]
    fn enforce(
        ctx: &impl Packet,
        group: u32,
        slot: u32,
        direction: Direction,
        l3: (usize, bool),
        ifindex: u32,
    ) -> Result<Verdict, Stat> {
        let Some(entity) = GROUPS.get(group).map(|g| g.entity) else {
            return Err(Stat::NoPolicy);
        };
        let Some(policy) = POLICY.get(entity).copied() else {
            return Err(Stat::NoPolicy);
        };
        if policy.directions & direction.bit() == 0 {
            return Err(Stat::OtherDirection);
        }
        let verdict = match policy.action {
            ACTION_DROP => Verdict::Dropped,
            ACTION_MONITOR => Verdict::Monitored,
            // Never drop what cannot be attributed to an action.
            _ => return Err(Stat::NoPolicy),
        };
        let Some(c) = COUNTERS.get_ptr_mut(counter_index(group, slot, direction, verdict)) else {
            // Without its counter the drop could not be attributed: pass and say so.
            return Err(Stat::NoPolicy);
        };
        let len = ctx.wire_len();
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
        crate::sample::sample(ctx, ifindex, (entity, group), direction, verdict, len, l3);
        Ok(verdict)
    }

    #[inline(always)]
    fn bump(stat: Stat) {
        if let Some(p) = STATS.get_ptr_mut(stat as u32) {
            // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
            unsafe { *p += 1 };
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    /// The licence the kernel sees: this crate is Apache-2.0 OR GPL-2.0-only (ebpf/LICENSE.md),
    /// and the object is loaded under the GPL, which the kernel's GPL-only helpers require.
    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
