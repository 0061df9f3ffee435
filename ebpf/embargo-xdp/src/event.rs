//! What an event says about its packet, read only for the few packets that send one.
//!
//! The parser reads one address; an event also wants the other one, the protocol and, for TCP
//! and UDP, the ports. They are read here, through the same bounds-checked accessor, and only
//! after the entity's event budget let the event through, so the common path never pays for
//! them. This is the one place the program looks past the IP header, and it stays bounded: the
//! IPv4 header length comes from IHL, IPv6 ports are read only when the fixed header's next
//! header is TCP or UDP (no extension-header walk), and non-first IPv4 fragments have no ports.

use embargo_abi::{EVENT_PORTS, Event, FAMILY_IPV4, FAMILY_IPV6};

use crate::parse::{Packet, read};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV6_HLEN: usize = 40;

/// Fills `ev`'s family, addresses, protocol and ports from the IP header at `l3` (IPv6 when
/// `v6`). Whatever cannot be read (past the frame's end) stays zero.
#[inline(always)]
pub fn fill_packet(ctx: &impl Packet, l3: usize, v6: bool, ev: &mut Event) {
    if v6 {
        ev.family = FAMILY_IPV6;
        if let Some(a) = read::<[u8; 16]>(ctx, l3 + 8) {
            ev.src = a;
        }
        if let Some(a) = read::<[u8; 16]>(ctx, l3 + 24) {
            ev.dst = a;
        }
        let Some(next) = read::<u8>(ctx, l3 + 6) else {
            return;
        };
        ev.protocol = next;
        if next == IPPROTO_TCP || next == IPPROTO_UDP {
            ports(ctx, l3 + IPV6_HLEN, ev);
        }
    } else {
        ev.family = FAMILY_IPV4;
        if let Some(a) = read::<[u8; 4]>(ctx, l3 + 12) {
            ev.src[..4].copy_from_slice(&a);
        }
        if let Some(a) = read::<[u8; 4]>(ctx, l3 + 16) {
            ev.dst[..4].copy_from_slice(&a);
        }
        // Version/IHL with the byte after it: a one-byte read at offset 0 (a raw-IP link) is
        // checked as `data >= data_end`, which the verifier does not take as a bound.
        let (Some([ver_ihl, _]), Some(proto), Some(frag)) = (
            read::<[u8; 2]>(ctx, l3),
            read::<u8>(ctx, l3 + 9),
            read::<[u8; 2]>(ctx, l3 + 6),
        ) else {
            return;
        };
        ev.protocol = proto;
        // A non-zero fragment offset: the L4 header is in the first fragment only.
        let first = u16::from_be_bytes(frag) & 0x1fff == 0;
        if first && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
            // IHL is 5..=15 here (the parser refused less); masked so the verifier sees it.
            ports(ctx, l3 + usize::from(ver_ihl & 0x0f) * 4, ev);
        }
    }
}

/// Reads the TCP or UDP ports at `l4`, if they are within the frame.
#[inline(always)]
fn ports(ctx: &impl Packet, l4: usize, ev: &mut Event) {
    if let Some(p) = read::<[u8; 4]>(ctx, l4) {
        ev.src_port = u16::from_be_bytes([p[0], p[1]]);
        ev.dst_port = u16::from_be_bytes([p[2], p[3]]);
        ev.flags |= EVENT_PORTS;
    }
}
