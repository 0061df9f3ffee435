//! Embargo's production XDP program.
//!
//! One program serves every attached interface: the interface's role (from [`ROLES`], keyed by
//! ifindex) says whether the destination (`inside`: the packet leaves the protected network) or
//! the source (`outside`: it comes from the world) is matched. A match yields an entity index;
//! the entity's policy says drop or monitor and for which directions. Every packet ends in
//! exactly one terminal stat; every drop is counted against an entity. A dropped or monitored
//! packet also sends an event to user space, as far as its entity's token bucket allows
//! (`sample.rs`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The atomic add of the event token buckets: the BPF target has no `Atomic*` read-modify-write
// methods (no CAS), but LLVM lowers this intrinsic to BPF's `lock xadd`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod sample;

#[cfg(target_arch = "bpf")]
mod xdp {
    use aya_ebpf::{
        bindings::xdp_action,
        macros::{map, xdp},
        maps::{Array, PerCpuArray},
        programs::XdpContext,
    };
    use embargo_abi::{
        ACTION_DROP, ACTION_MONITOR, BPF_F_MMAPABLE, Counter, Direction, EntityPolicy, IfaceConfig,
        MAX_IFINDEX, MAX_INTERFACES, Role, Stat, Verdict, counter_index, trie,
    };
    use embargo_xdp::parse::{Addr, Pick, parse};

    #[map(name = "EMB_ROLES")]
    static ROLES: Array<IfaceConfig> = Array::with_max_entries(MAX_IFINDEX, 0);
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

    /// Returns the XDP action for a packet whose outcome was counted here, or the terminal stat
    /// of a packet that passes unclassified (counted by the caller).
    #[inline(always)]
    fn classify(ctx: &XdpContext) -> Result<u32, Stat> {
        let iface = ROLES
            .get(ctx.ingress_ifindex() as u32)
            .copied()
            .unwrap_or_default();
        let (direction, pick) = if iface.role == Role::Inside as u8 {
            (Direction::Outbound, Pick::Destination)
        } else if iface.role == Role::Outside as u8 {
            (Direction::Inbound, Pick::Source)
        } else {
            return Err(Stat::NoRole);
        };
        let parsed = parse(ctx, pick)?;
        if parsed.vlan_tags == 1 {
            bump(Stat::Vlan);
        } else if parsed.vlan_tags == 2 {
            bump(Stat::QinQ);
        }
        if parsed.ipv4_fragment {
            bump(Stat::Ipv4Fragment);
        }
        let (entry, miss) = match parsed.addr {
            Addr::V4(addr) => (
                trie::lookup_v4(addr, |i| trie::read_entry(i, |c| V4.get(c))),
                Stat::MissIpv4,
            ),
            Addr::V6(hi, lo) => (
                trie::lookup_v6(hi, lo, |i| trie::read_entry(i, |c| V6.get(c))),
                Stat::MissIpv6,
            ),
        };
        let Some(entity) = trie::entity_of(entry) else {
            return Err(miss);
        };
        // The mask keeps the slot in range for the verifier; the agent never sets more.
        let slot = u32::from(iface.slot) & (MAX_INTERFACES - 1);
        let v6 = matches!(parsed.addr, Addr::V6(..));
        enforce(ctx, entity, slot, direction, (parsed.l3, v6))
    }

    /// Applies the entity's policy and counts the packet against the entity (its terminal
    /// outcome), or returns the terminal stat of a match that does not apply. `l3` is the IP
    /// header's offset and whether it is IPv6, for the event.
    #[inline(always)]
    fn enforce(
        ctx: &XdpContext,
        entity: u32,
        slot: u32,
        direction: Direction,
        l3: (usize, bool),
    ) -> Result<u32, Stat> {
        let Some(policy) = POLICY.get(entity).copied() else {
            return Err(Stat::NoPolicy);
        };
        if policy.directions & direction.bit() == 0 {
            return Err(Stat::OtherDirection);
        }
        let (verdict, action) = match policy.action {
            ACTION_DROP => (Verdict::Dropped, xdp_action::XDP_DROP),
            ACTION_MONITOR => (Verdict::Monitored, xdp_action::XDP_PASS),
            // Never drop what cannot be attributed to an action.
            _ => return Err(Stat::NoPolicy),
        };
        let Some(c) = COUNTERS.get_ptr_mut(counter_index(entity, slot, direction, verdict)) else {
            // Without its counter the drop could not be attributed: pass and say so.
            return Err(Stat::NoPolicy);
        };
        let len = (ctx.data_end() - ctx.data()) as u64;
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
        crate::sample::sample(ctx, entity, direction, verdict, len, l3);
        Ok(action)
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
