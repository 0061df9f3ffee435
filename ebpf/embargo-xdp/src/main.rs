//! Embargo's production XDP program.
//!
//! One program serves every attached interface: the interface's role (from [`ROLES`], keyed by
//! ifindex) says whether the destination (`inside`: the packet leaves the protected network) or
//! the source (`outside`: it comes from the world) is matched. A match yields an entity index;
//! the entity's policy says drop or monitor and for which directions. Every packet ends in
//! exactly one terminal stat; every drop is counted against an entity.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod xdp {
    use aya_ebpf::{
        bindings::xdp_action,
        macros::{map, xdp},
        maps::{Array, PerCpuArray},
        programs::XdpContext,
    };
    use embargo_abi::{
        ACTION_DROP, ACTION_MONITOR, BPF_F_MMAPABLE, Counter, Direction, EntityPolicy, MAX_IFINDEX,
        Role, Stat, Verdict, counter_index, trie,
    };
    use embargo_xdp::parse::{Addrs, parse};

    #[map(name = "EMB_ROLES")]
    static ROLES: Array<u32> = Array::with_max_entries(MAX_IFINDEX, 0);
    // Tries and per-entity maps are resized by the agent at load to fit the policy.
    #[map(name = "EMB_V4")]
    static V4: Array<trie::Chunk> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "EMB_V6")]
    static V6: Array<trie::Chunk> = Array::with_max_entries(1, BPF_F_MMAPABLE);
    #[map(name = "EMB_POLICY")]
    static POLICY: Array<EntityPolicy> = Array::with_max_entries(1, 0);
    #[map(name = "EMB_COUNTERS")]
    static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(4, 0);
    #[map(name = "EMB_STATS")]
    static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

    #[xdp]
    pub fn embargo_xdp(ctx: XdpContext) -> u32 {
        match classify(&ctx) {
            Ok(action) => action,
            Err(stat) => {
                bump(stat);
                xdp_action::XDP_PASS
            }
        }
    }

    /// Returns the XDP action for a packet that reached a terminal stat counted here, or the
    /// terminal stat of a packet that passes unclassified (counted by the caller).
    #[inline(always)]
    fn classify(ctx: &XdpContext) -> Result<u32, Stat> {
        let role = ROLES
            .get(ctx.ingress_ifindex() as u32)
            .copied()
            .unwrap_or(Role::None as u32);
        let direction = if role == Role::Inside as u32 {
            Direction::Outbound
        } else if role == Role::Outside as u32 {
            Direction::Inbound
        } else {
            return Err(Stat::NoRole);
        };
        let parsed = parse(ctx)?;
        if parsed.vlan_tags == 1 {
            bump(Stat::Vlan);
        } else if parsed.vlan_tags == 2 {
            bump(Stat::QinQ);
        }
        if parsed.ipv4_fragment {
            bump(Stat::Ipv4Fragment);
        }
        let outbound = matches!(direction, Direction::Outbound);
        let (entry, miss, hit) = match parsed.addrs {
            Addrs::V4 { src, dst } => {
                let addr = if outbound { dst } else { src };
                let entry = trie::lookup_v4(addr, |i| trie::read_entry(i, |c| V4.get(c)));
                (entry, Stat::MissIpv4, Stat::MatchIpv4)
            }
            Addrs::V6 { src, dst } => {
                let (hi, lo) = if outbound { dst } else { src };
                let entry = trie::lookup_v6(hi, lo, |i| trie::read_entry(i, |c| V6.get(c)));
                (entry, Stat::MissIpv6, Stat::MatchIpv6)
            }
        };
        let Some(entity) = trie::entity_of(entry) else {
            return Err(miss);
        };
        bump(hit);
        Ok(enforce(ctx, entity, direction))
    }

    /// Applies the entity's policy and counts the packet against the entity.
    #[inline(always)]
    fn enforce(ctx: &XdpContext, entity: u32, direction: Direction) -> u32 {
        let Some(policy) = POLICY.get(entity).copied() else {
            bump(Stat::NoPolicy);
            return xdp_action::XDP_PASS;
        };
        if policy.directions & direction.bit() == 0 {
            bump(Stat::OtherDirection);
            return xdp_action::XDP_PASS;
        }
        let (verdict, action) = match policy.action {
            ACTION_DROP => (Verdict::Dropped, xdp_action::XDP_DROP),
            ACTION_MONITOR => (Verdict::Monitored, xdp_action::XDP_PASS),
            // Never drop what cannot be attributed to an action.
            _ => {
                bump(Stat::NoPolicy);
                return xdp_action::XDP_PASS;
            }
        };
        if let Some(c) = COUNTERS.get_ptr_mut(counter_index(entity, direction, verdict)) {
            let len = (ctx.data_end() - ctx.data()) as u64;
            // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += len;
            }
        }
        action
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

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
