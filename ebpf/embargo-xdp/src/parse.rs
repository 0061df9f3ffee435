//! From the start of a packet to its fixed IPv4 or IPv6 header, as the interface's [`Link`]
//! says it starts: Ethernet, up to two VLAN tags (802.1Q, 802.1ad), optionally a PPPoE session
//! header (what DSL gateways run), then IP; or, on layer-3 devices (tun, WireGuard, PPP, IP
//! tunnels), the IP header itself, whose version nibble tells IPv4 from IPv6.
//!
//! Generic over the context ([`Packet`]): XDP frames and TC socket buffers are parsed by the
//! same code through the same accessor.

use aya_ebpf::programs::{TcContext, XdpContext};
use embargo_abi::{Link, Stat};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// PPPoE session stage (RFC 2516); discovery (0x8863) is not IP and passes as such.
const ETH_P_PPP_SES: u16 = 0x8864;
/// PPPoE header (version/type, code, session id, length) and the PPP protocol field.
const PPPOE_HLEN: usize = 8;
/// PPPoE version 1, type 1.
const PPPOE_VER_TYPE: u8 = 0x11;
/// PPPoE code of session data.
const PPPOE_CODE_SESSION: u8 = 0x00;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// The most the parser reads from the start of a packet: Ethernet, two VLAN tags, PPPoE and
/// the fixed IPv6 header. A socket buffer whose linear part is shorter is pulled to this first.
pub const MAX_HEADERS: usize = ETH_HLEN + 2 * VLAN_HLEN + PPPOE_HLEN + IPV6_HLEN;

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
    /// Offset of the IP header from the start of the frame (0 on a raw-IP link; 14, 18 or 22
    /// on Ethernet, 8 more behind PPPoE), for the rare paths that read more of the packet
    /// (events).
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

/// Parses the packet, which starts as `link` says, and reads the `pick`ed address, or returns
/// the terminal [`Stat`] that says why it cannot be classified.
#[inline(always)]
pub fn parse(ctx: &impl Packet, pick: Pick, link: Link) -> Result<Parsed, Stat> {
    match link {
        Link::Ethernet => parse_ethernet(ctx, pick),
        Link::RawIp => parse_raw_ip(ctx, pick),
    }
}

/// A layer-3 device's packet: the IP header at offset 0, its version nibble says which.
#[inline(always)]
fn parse_raw_ip(ctx: &impl Packet, pick: Pick) -> Result<Parsed, Stat> {
    // Two bytes, not one: the compiler turns a one-byte check at offset 0 into `data >=
    // data_end`, from which the verifier learns no readable range. No IP header is that short.
    let version = read::<[u8; 2]>(ctx, 0).ok_or(Stat::TruncatedEthernet)?[0] >> 4;
    match version {
        4 => parse_ipv4(ctx, 0, 0, pick),
        6 => parse_ipv6(ctx, 0, 0, pick),
        _ => Err(Stat::NonIp),
    }
}

#[inline(always)]
fn parse_ethernet(ctx: &impl Packet, pick: Pick) -> Result<Parsed, Stat> {
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
        ETH_P_PPP_SES => parse_pppoe(ctx, offset, vlan_tags, pick),
        _ => Err(Stat::NonIp),
    }
}

/// A PPPoE session frame whose header starts at `offset`: IP if its PPP protocol is IPv4 or
/// IPv6 (uncompressed, as RFC 2516 asks); LCP, IPCP, other PPP protocols, other PPPoE versions
/// or codes, and a header cut short are not IP.
#[inline(always)]
fn parse_pppoe(
    ctx: &impl Packet,
    offset: usize,
    vlan_tags: u8,
    pick: Pick,
) -> Result<Parsed, Stat> {
    let h = read::<[u8; PPPOE_HLEN]>(ctx, offset).ok_or(Stat::NonIp)?;
    if h[0] != PPPOE_VER_TYPE || h[1] != PPPOE_CODE_SESSION {
        return Err(Stat::NonIp);
    }
    match u16::from_be_bytes([h[6], h[7]]) {
        PPP_IPV4 => parse_ipv4(ctx, offset + PPPOE_HLEN, vlan_tags, pick),
        PPP_IPV6 => parse_ipv6(ctx, offset + PPPOE_HLEN, vlan_tags, pick),
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
