//! Ethernet, up to two VLAN tags (802.1Q, 802.1ad), then the fixed IPv4 or IPv6 header.
//!
//! Generic over the context ([`Packet`]): XDP frames and TC socket buffers are parsed by the
//! same code through the same accessor.

use aya_ebpf::programs::{TcContext, XdpContext};
use embargo_abi::Stat;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// The most the parser reads from the start of a packet: Ethernet, two VLAN tags and the fixed
/// IPv6 header. A socket buffer whose linear part is shorter is pulled to this first.
pub const MAX_HEADERS: usize = ETH_HLEN + 2 * VLAN_HLEN + IPV6_HLEN;

/// A packet the parser can read directly: the `[data, data_end)` window the kernel gives the
/// program (the whole frame for XDP; the linear part of a socket buffer for TC).
pub trait Packet {
    /// Address of the first byte.
    fn data(&self) -> usize;
    /// Address one past the last readable byte.
    fn data_end(&self) -> usize;
    /// The packet's length on the wire, which a socket buffer may hold partly outside the
    /// readable window; counted as the packet's bytes.
    fn wire_len(&self) -> u64;
}

impl Packet for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn wire_len(&self) -> u64 {
        (XdpContext::data_end(self) - XdpContext::data(self)) as u64
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn wire_len(&self) -> u64 {
        u64::from(self.len())
    }
}

/// The address to classify, as a number (network byte order read big-endian).
pub enum Addr {
    V4(u32),
    /// High and low halves.
    V6(u64, u64),
}

/// Which address of the packet to read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Source,
    Destination,
}

/// A parsed packet: the picked address and the informational stats it earned on the way.
pub struct Parsed {
    pub addr: Addr,
    /// 0, 1 or 2 VLAN tags.
    pub vlan_tags: u8,
    pub ipv4_fragment: bool,
    /// Offset of the IP header from the start of the frame (14, 18 or 22), for the rare paths
    /// that read more of the packet (events).
    pub l3: usize,
}

/// Reads a `T` at `offset` from the start of the packet, or `None` past its end. The only way
/// this crate touches packet memory.
#[inline(always)]
pub fn read<T: Copy>(ctx: &impl Packet, offset: usize) -> Option<T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    // SAFETY: the range was bounds-checked against data_end just above, which is also what the
    // verifier requires; packet memory has no alignment guarantee, so read unaligned.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
}

#[inline(always)]
fn be16(ctx: &impl Packet, offset: usize) -> Option<u16> {
    read::<[u8; 2]>(ctx, offset).map(u16::from_be_bytes)
}

// Whole-word reads: one load and a byte swap rather than a load per byte.
#[inline(always)]
fn be32(ctx: &impl Packet, offset: usize) -> Option<u32> {
    read::<u32>(ctx, offset).map(u32::from_be)
}

#[inline(always)]
fn be64(ctx: &impl Packet, offset: usize) -> Option<u64> {
    read::<u64>(ctx, offset).map(u64::from_be)
}

/// Parses the packet and reads the `pick`ed address, or returns the terminal [`Stat`] that says
/// why it cannot be classified.
#[inline(always)]
pub fn parse(ctx: &impl Packet, pick: Pick) -> Result<Parsed, Stat> {
    let mut ethertype = be16(ctx, 12).ok_or(Stat::TruncatedEthernet)?;
    // Ethernet needs all 14 bytes, not just the type field.
    if ctx.data() + ETH_HLEN > ctx.data_end() {
        return Err(Stat::TruncatedEthernet);
    }
    let mut offset = ETH_HLEN;
    let mut vlan_tags = 0u8;
    // Unrolled: at most two tags (QinQ); a third is refused below.
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(ctx, offset + 2).ok_or(Stat::TruncatedVlan)?;
        offset += VLAN_HLEN;
        vlan_tags = 1;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = be16(ctx, offset + 2).ok_or(Stat::TruncatedVlan)?;
            offset += VLAN_HLEN;
            vlan_tags = 2;
            if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
                return Err(Stat::VlanTooDeep);
            }
        }
    }
    match ethertype {
        ETH_P_IPV4 => parse_ipv4(ctx, offset, vlan_tags, pick),
        ETH_P_IPV6 => parse_ipv6(ctx, offset, vlan_tags, pick),
        _ => Err(Stat::NonIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &impl Packet, l3: usize, vlan_tags: u8, pick: Pick) -> Result<Parsed, Stat> {
    if ctx.data() + l3 + IPV4_HLEN > ctx.data_end() {
        return Err(Stat::TruncatedIpv4);
    }
    let ver_ihl = read::<u8>(ctx, l3).ok_or(Stat::TruncatedIpv4)?;
    if ver_ihl >> 4 != 4 || ver_ihl & 0x0f < 5 {
        return Err(Stat::MalformedIpv4);
    }
    let frag = be16(ctx, l3 + 6).ok_or(Stat::TruncatedIpv4)?;
    let at = if pick == Pick::Source { 12 } else { 16 };
    let addr = be32(ctx, l3 + at).ok_or(Stat::TruncatedIpv4)?;
    Ok(Parsed {
        addr: Addr::V4(addr),
        vlan_tags,
        // More-fragments flag or a non-zero offset.
        ipv4_fragment: frag & 0x3fff != 0,
        l3,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &impl Packet, l3: usize, vlan_tags: u8, pick: Pick) -> Result<Parsed, Stat> {
    if ctx.data() + l3 + IPV6_HLEN > ctx.data_end() {
        return Err(Stat::TruncatedIpv6);
    }
    let ver = read::<u8>(ctx, l3).ok_or(Stat::TruncatedIpv6)?;
    if ver >> 4 != 6 {
        return Err(Stat::MalformedIpv6);
    }
    let at = if pick == Pick::Source { 8 } else { 24 };
    let hi = be64(ctx, l3 + at).ok_or(Stat::TruncatedIpv6)?;
    let lo = be64(ctx, l3 + at + 8).ok_or(Stat::TruncatedIpv6)?;
    Ok(Parsed {
        addr: Addr::V6(hi, lo),
        vlan_tags,
        ipv4_fragment: false,
        l3,
    })
}
