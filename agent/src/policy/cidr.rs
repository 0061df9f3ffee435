//! CIDR arithmetic the compiler needs: address ranges to minimal CIDR sets, and subtracting
//! one prefix from another. Works on both families through their integer form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

/// Address width in bits of the family of `net`.
fn width(net: &IpNetwork) -> u32 {
    if net.is_ipv4() { 32 } else { 128 }
}

fn make(v4: bool, addr: u128, len: u32) -> IpNetwork {
    if v4 {
        IpNetwork::V4(Ipv4Network::new(Ipv4Addr::from(addr as u32), len as u8).expect("len <= 32"))
    } else {
        IpNetwork::V6(Ipv6Network::new(Ipv6Addr::from(addr), len as u8).expect("len <= 128"))
    }
}

/// Whether `outer` contains all of `inner` (same family).
pub fn covers(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4()
        && outer.prefix() <= inner.prefix()
        && outer.contains(inner.network())
}

/// Whether two prefixes share any address.
pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    covers(a, b) || covers(b, a)
}

/// The first and last address of `net` as trie keys ([`embargo_abi::addr`]).
pub fn bounds(net: &IpNetwork) -> (u128, u128) {
    let lo = embargo_abi::addr::bits(net.network());
    let host_bits = width(net) - u32::from(net.prefix());
    let span = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (lo, lo | span)
}

/// The minimal set of CIDRs covering exactly `start..=end` (same family, start <= end).
pub fn range_to_cidrs(start: IpAddr, end: IpAddr) -> Option<Vec<IpNetwork>> {
    let v4 = match (start, end) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        (IpAddr::V6(_), IpAddr::V6(_)) => false,
        _ => return None,
    };
    let bits = if v4 { 32 } else { 128 };
    let (mut lo, hi) = (embargo_abi::addr::bits(start), embargo_abi::addr::bits(end));
    if lo > hi {
        return None;
    }
    let mut out = Vec::new();
    loop {
        // The largest block aligned at `lo` that does not pass `hi`.
        let mut k = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        let last = loop {
            let last = if k == 128 {
                u128::MAX
            } else {
                lo + ((1u128 << k) - 1)
            };
            if last <= hi {
                break last;
            }
            k -= 1;
        };
        out.push(make(v4, lo, bits - k));
        if last >= hi {
            break;
        }
        lo = last + 1;
    }
    Some(out)
}

/// `net` minus `hole`: the CIDRs covering every address of `net` not in `hole`.
pub fn subtract(net: &IpNetwork, hole: &IpNetwork) -> Vec<IpNetwork> {
    if !overlaps(net, hole) {
        return vec![*net];
    }
    if covers(hole, net) {
        return Vec::new();
    }
    // `hole` is strictly inside `net`: split `net` in halves down to `hole`, keeping the
    // sibling that does not contain it at each level.
    let v4 = net.is_ipv4();
    let bits = width(net);
    let target = embargo_abi::addr::bits(hole.network());
    let mut base = embargo_abi::addr::bits(net.network());
    let mut out = Vec::new();
    for len in u32::from(net.prefix()) + 1..=u32::from(hole.prefix()) {
        let bit = 1u128 << (bits - len);
        if target & bit != 0 {
            out.push(make(v4, base, len));
            base |= bit;
        } else {
            out.push(make(v4, base | bit, len));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn bounds_are_the_first_and_last_address() {
        assert_eq!(bounds(&n("10.0.0.0/8")), (0x0a00_0000, 0x0aff_ffff));
        assert_eq!(bounds(&n("0.0.0.0/0")), (0, 0xffff_ffff));
        assert_eq!(bounds(&n("192.0.2.7/32")), (0xc000_0207, 0xc000_0207));
        assert_eq!(bounds(&n("::/0")), (0, u128::MAX));
        assert_eq!(
            bounds(&n("2001:db8::/32")),
            (0x2001_0db8 << 96, (0x2001_0db8 << 96) | ((1u128 << 96) - 1))
        );
        assert_eq!(bounds(&n("::1/128")), (1, 1));
    }

    #[test]
    fn ranges_become_minimal_cidrs() {
        let r = range_to_cidrs("1.0.0.0".parse().unwrap(), "1.0.0.255".parse().unwrap()).unwrap();
        assert_eq!(r, vec![n("1.0.0.0/24")]);
        let r = range_to_cidrs("10.0.0.1".parse().unwrap(), "10.0.0.6".parse().unwrap()).unwrap();
        assert_eq!(
            r,
            vec![
                n("10.0.0.1/32"),
                n("10.0.0.2/31"),
                n("10.0.0.4/31"),
                n("10.0.0.6/32")
            ]
        );
        let r = range_to_cidrs(
            "0.0.0.0".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(r, vec![n("0.0.0.0/0")]);
        let r = range_to_cidrs(
            "::".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(r, vec![n("::/0")]);
        let r = range_to_cidrs(
            "2001:200::".parse().unwrap(),
            "2001:200:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(r, vec![n("2001:200::/32")]);
        assert!(range_to_cidrs("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()).is_none());
        assert!(range_to_cidrs("10.0.0.2".parse().unwrap(), "::1".parse().unwrap()).is_none());
    }

    #[test]
    fn range_cover_is_exact() {
        // Every address of a small awkward range is covered exactly once.
        let (a, b) = (0x0a00_0003u32, 0x0a00_0119u32);
        let r = range_to_cidrs(Ipv4Addr::from(a).into(), Ipv4Addr::from(b).into()).unwrap();
        for x in a - 5..=b + 5 {
            let hits = r
                .iter()
                .filter(|c| c.contains(Ipv4Addr::from(x).into()))
                .count();
            assert_eq!(hits, usize::from((a..=b).contains(&x)), "{x:#x}");
        }
    }

    #[test]
    fn subtraction_leaves_exactly_the_rest() {
        assert_eq!(
            subtract(&n("10.0.0.0/24"), &n("10.0.1.0/24")),
            vec![n("10.0.0.0/24")]
        );
        assert!(subtract(&n("10.0.0.0/24"), &n("10.0.0.0/16")).is_empty());
        let rest = subtract(&n("10.0.0.0/24"), &n("10.0.0.5/32"));
        assert_eq!(rest.len(), 8);
        for x in 0..=255u32 {
            let ip: IpAddr = Ipv4Addr::from(0x0a00_0000 | x).into();
            let hits = rest.iter().filter(|c| c.contains(ip)).count();
            assert_eq!(hits, usize::from(x != 5), "{ip}");
        }
        let rest = subtract(&n("2001:db8::/32"), &n("2001:db8:1::/48"));
        assert_eq!(rest.len(), 16);
        assert!(
            !rest
                .iter()
                .any(|c| c.contains("2001:db8:1::1".parse().unwrap()))
        );
        assert!(
            rest.iter()
                .any(|c| c.contains("2001:db8:2::1".parse().unwrap()))
        );
    }
}
