//! Builds raw Ethernet frames for BPF_PROG_TEST_RUN fixtures and benchmarks.
//!
//! Deliberately plain: every header is written byte by byte in network order, so a fixture
//! reads like the wire. Checksums are left zero; the XDP program never checks them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

/// A frame under construction.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Outer-to-inner VLAN tags: (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
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
    /// Any other EtherType with raw bytes after it.
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
            l3,
            payload_len: 8,
        }
    }

    pub fn vlan(mut self, tpid: u16, id: u16) -> Self {
        self.vlans.push((tpid, id));
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
        b.extend_from_slice(&ethertype.to_be_bytes());
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
/// addresses, end of each VLAN tag, end of the EtherType, end of the fixed IP header.
pub fn boundaries(frame: &Frame) -> Vec<usize> {
    let mut v = vec![12];
    let mut off = 12;
    for _ in &frame.vlans {
        off += 4;
        v.push(off);
    }
    off += 2;
    v.push(off);
    match frame.l3 {
        L3::V4 { .. } => v.push(off + 20),
        L3::V6 { .. } => v.push(off + 40),
        L3::Other { .. } => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

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
