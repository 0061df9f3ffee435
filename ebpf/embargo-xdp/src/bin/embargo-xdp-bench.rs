//! Reference programs for `cargo xtask bench`, kept out of the production object.
//!
//! * `bench_drop`: `XDP_DROP` and nothing else, the floor every XDP program pays.
//! * `bench_lpm`: the production parser followed by the kernel's LPM trie, the structure most
//!   XDP blocklists use; it shows what the compact tries buy.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod xdp {
    use aya_ebpf::{
        bindings::xdp_action,
        macros::{map, xdp},
        maps::{LpmTrie, lpm_trie::Key},
        programs::XdpContext,
    };
    use embargo_abi::Link;
    use embargo_xdp::parse::{Addr, Pick, parse};

    #[map(name = "BENCH_LPM4")]
    static LPM4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(1, 0);
    #[map(name = "BENCH_LPM6")]
    static LPM6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(1, 0);

    #[xdp]
    pub fn bench_drop(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_DROP
    }

    /// Destination match, as on an `inside` interface; drop on a hit.
    #[xdp]
    pub fn bench_lpm(ctx: XdpContext) -> u32 {
        let Ok(parsed) = parse(&ctx, Pick::Destination, Link::Ethernet) else {
            return xdp_action::XDP_PASS;
        };
        let hit = match parsed.addr {
            Addr::V4(dst) => LPM4.get(Key::new(32, dst.to_be_bytes())).is_some(),
            Addr::V6(hi, lo) => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&hi.to_be_bytes());
                b[8..].copy_from_slice(&lo.to_be_bytes());
                LPM6.get(Key::new(128, b)).is_some()
            }
        };
        if hit {
            xdp_action::XDP_DROP
        } else {
            xdp_action::XDP_PASS
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
