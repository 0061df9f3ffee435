//! Builds raw Ethernet frames for BPF_PROG_TEST_RUN fixtures and benchmarks: optionally VLAN
//! tagged, optionally inside a PPPoE session; or the bare IP packet, as a layer-3 device (tun,
//! WireGuard, PPP) carries it ([`Frame::ip_bytes`]).
//!
//! Deliberately plain: every header is written byte by byte in network order, so a fixture
//! reads like the wire. Checksums are left zero; the XDP program never checks them. Datagrams
//! the kernel's stack must accept (written into a tun device) come from [`udp_datagram`], with
//! real checksums.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
/// PPPoE session stage.
pub const ETH_P_PPP_SES: u16 = 0x8864;
/// PPP protocol numbers carried in a PPPoE session.
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
pub const PPP_LCP: u16 = 0xc021;

/// A frame under construction.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Outer-to-inner VLAN tags: (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
    /// Inside a PPPoE session (this session id): EtherType 0x8864, the PPPoE header and the
    /// PPP protocol (IPv4, IPv6, or for [`L3::Other`] its `ethertype` field) before `l3`.
    pub pppoe: Option<u16>,
    pub l3: L3,
    pub payload_len: usize,
}

#[derive(Clone, Debug)]
pub enum L3 {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        /// Header length in 32-bit words (5 = no options).
        ihl: u8,
        /// Flags and fragment offset field (e.g. 0x2000 = more fragments).
        frag: u16,
        protocol: u8,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
    },
    /// Any other EtherType (in PPPoE: PPP protocol) with raw bytes after it.
    Other { ethertype: u16, body: Vec<u8> },
}

impl Frame {
    /// A UDP-ish IPv4 or IPv6 packet between two addresses of the same family.
    pub fn ip(src: IpAddr, dst: IpAddr) -> Self {
        let l3 = match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => L3::V4 {
                src,
                dst,
                ihl: 5,
                frag: 0,
                protocol: 17,
            },
            (IpAddr::V6(src), IpAddr::V6(dst)) => L3::V6 {
                src,
                dst,
                next_header: 17,
            },
            _ => panic!("mixed address families"),
        };
        Frame {
            vlans: Vec::new(),
            pppoe: None,
            l3,
            payload_len: 8,
        }
    }

    pub fn vlan(mut self, tpid: u16, id: u16) -> Self {
        self.vlans.push((tpid, id));
        self
    }

    /// Carried in PPPoE session `session`.
    pub fn pppoe(mut self, session: u16) -> Self {
        self.pppoe = Some(session);
        self
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst MAC
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src MAC
        let ethertype = match &self.l3 {
            L3::V4 { .. } => ETH_P_IPV4,
            L3::V6 { .. } => ETH_P_IPV6,
            L3::Other { ethertype, .. } => *ethertype,
        };
        for (tpid, id) in &self.vlans {
            b.extend_from_slice(&tpid.to_be_bytes());
            b.extend_from_slice(&id.to_be_bytes());
        }
        let ip = self.ip_bytes();
        match self.pppoe {
            None => b.extend_from_slice(&ethertype.to_be_bytes()),
            Some(session) => {
                let protocol = match ethertype {
                    ETH_P_IPV4 => PPP_IPV4,
                    ETH_P_IPV6 => PPP_IPV6,
                    other => other,
                };
                b.extend_from_slice(&ETH_P_PPP_SES.to_be_bytes());
                b.extend_from_slice(&[0x11, 0x00]); // version 1, type 1; code: session data
                b.extend_from_slice(&session.to_be_bytes());
                b.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes()); // PPP length
                b.extend_from_slice(&protocol.to_be_bytes());
            }
        }
        b.extend_from_slice(&ip);
        b
    }

    /// What follows the link-layer headers: the IP packet (or [`L3::Other`]'s body) with its
    /// payload, as a layer-3 device carries it.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        match &self.l3 {
            L3::V4 {
                src,
                dst,
                ihl,
                frag,
                protocol,
            } => {
                let hlen = usize::from(*ihl) * 4;
                let total = (hlen.max(20) + self.payload_len) as u16;
                b.push(0x40 | (ihl & 0x0f));
                b.push(0);
                b.extend_from_slice(&total.to_be_bytes());
                b.extend_from_slice(&[0, 1]); // id
                b.extend_from_slice(&frag.to_be_bytes());
                b.push(64);
                b.push(*protocol);
                b.extend_from_slice(&[0, 0]); // checksum
                b.extend_from_slice(&src.octets());
                b.extend_from_slice(&dst.octets());
                // Options: NOPs up to the header length.
                b.resize(b.len() + hlen.saturating_sub(20), 1);
            }
            L3::V6 {
                src,
                dst,
                next_header,
            } => {
                b.extend_from_slice(&[0x60, 0, 0, 0]);
                b.extend_from_slice(&(self.payload_len as u16).to_be_bytes());
                b.push(*next_header);
                b.push(64);
                b.extend_from_slice(&src.octets());
                b.extend_from_slice(&dst.octets());
            }
            L3::Other { body, .. } => b.extend_from_slice(body),
        }
        b.resize(b.len() + self.payload_len, 0xab);
        b
    }
}

/// Offsets of the header boundaries in `frame` (for truncation fixtures): end of Ethernet
/// addresses, end of each VLAN tag, end of the EtherType, end of the PPPoE header with the PPP
/// protocol, end of the fixed IP header.
pub fn boundaries(frame: &Frame) -> Vec<usize> {
    let mut v = vec![12];
    let mut off = 12;
    for _ in &frame.vlans {
        off += 4;
        v.push(off);
    }
    off += 2;
    v.push(off);
    if frame.pppoe.is_some() {
        off += 8;
        v.push(off);
    }
    match frame.l3 {
        L3::V4 { .. } => v.push(off + 20),
        L3::V6 { .. } => v.push(off + 40),
        L3::Other { .. } => {}
    }
    v
}

/// A UDP datagram from `src` to `dst` (same family) carrying `payload`, as a layer-3 device
/// carries it (no link-layer header), with the IPv4 header checksum and the UDP checksum
/// computed: the kernel's stack accepts it when it is written into a tun device.
pub fn udp_datagram(
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    // The pseudo-header: addresses, protocol, UDP length.
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
        }
        _ => panic!("mixed address families"),
    }
    let mut sum = checksum(&[&pseudo, &udp]);
    if sum == 0 {
        sum = 0xffff; // zero means "no checksum"
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut b = Vec::with_capacity(40 + udp.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b.push(0x45);
            b.push(0);
            b.extend_from_slice(&(20 + udp_len).to_be_bytes());
            b.extend_from_slice(&[0, 1, 0x40, 0]); // id 1, DF
            b.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum below
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
            let sum = checksum(&[&b]);
            b[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b.extend_from_slice(&[0x60, 0, 0, 0]);
            b.extend_from_slice(&udp_len.to_be_bytes());
            b.extend_from_slice(&[17, 64]);
            b.extend_from_slice(&s.octets());
            b.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    b.extend_from_slice(&udp);
    b
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`, each of even length but the
/// last.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut bytes = parts.iter().flat_map(|p| p.iter().copied());
    while let Some(hi) = bytes.next() {
        let lo = bytes.next().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pppoe_frame_layout() {
        let f = Frame::ip(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        )
        .vlan(ETH_P_8021Q, 7)
        .pppoe(0x1234);
        let b = f.bytes();
        assert_eq!(&b[12..14], &[0x81, 0x00]);
        assert_eq!(&b[16..18], &[0x88, 0x64]);
        assert_eq!(&b[18..20], &[0x11, 0x00]);
        assert_eq!(&b[20..22], &[0x12, 0x34]);
        assert_eq!(u16::from_be_bytes([b[22], b[23]]), 2 + 20 + 8, "PPP length");
        assert_eq!(&b[24..26], &[0x00, 0x21]);
        assert_eq!(b[26], 0x45);
        assert_eq!(&b[26..], &f.ip_bytes()[..]);
        assert_eq!(boundaries(&f), vec![12, 16, 18, 26, 46]);
    }

    #[test]
    fn udp_datagram_checksums_verify() {
        let d = udp_datagram(
            "203.0.113.7".parse().unwrap(),
            "198.19.0.1".parse().unwrap(),
            40000,
            9,
            b"hello",
        );
        assert_eq!(d.len(), 20 + 8 + 5);
        assert_eq!(checksum(&[&d[..20]]), 0, "IPv4 header");
        let mut pseudo = d[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17, 0, 13]);
        assert_eq!(checksum(&[&pseudo, &d[20..]]), 0, "UDP");
        let d = udp_datagram(
            "2001:db8::7".parse().unwrap(),
            "fd00::1".parse().unwrap(),
            40000,
            9,
            b"hello",
        );
        assert_eq!(d.len(), 40 + 8 + 5);
        let mut pseudo = d[8..40].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 13, 0, 0, 0, 17]);
        assert_eq!(checksum(&[&pseudo, &d[40..]]), 0, "UDP over IPv6");
    }

    #[test]
    fn ipv4_frame_layout() {
        let f = Frame::ip(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        );
        let b = f.bytes();
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[14], 0x45);
        assert_eq!(&b[26..30], &[192, 0, 2, 1]);
        assert_eq!(&b[30..34], &[198, 51, 100, 7]);
        assert_eq!(b.len(), 14 + 20 + 8);
    }

    #[test]
    fn qinq_ipv6_frame_layout() {
        let f = Frame::ip(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
        .vlan(ETH_P_8021AD, 100)
        .vlan(ETH_P_8021Q, 200);
        let b = f.bytes();
        assert_eq!(&b[12..14], &[0x88, 0xa8]);
        assert_eq!(&b[16..18], &[0x81, 0x00]);
        assert_eq!(&b[20..22], &[0x86, 0xdd]);
        assert_eq!(b[22] >> 4, 6);
        assert_eq!(boundaries(&f), vec![12, 16, 20, 22, 62]);
    }
}
