//! The special-purpose address ranges a sanctions policy must not block without saying so:
//! private, shared, loopback, link-local, multicast, broadcast, documentation, benchmarking,
//! unique-local and the other blocks the IANA special-purpose registries reserve. Blocking one
//! on a gateway blocks its own network, its cloud metadata service (169.254.169.254) or its
//! name resolution (224.0.0.251), never a sanctioned entity.
//!
//! The list ([`RANGES`]) follows the IANA registries as of their 2025 editions:
//! * IPv4: <https://www.iana.org/assignments/iana-ipv4-special-registry> (RFC 6890, RFC 8190
//!   and the RFCs each entry names), plus the multicast block 224.0.0.0/4 (RFC 5771, in the
//!   IPv4 multicast registry). Left out: the registry's globally reachable anycast service
//!   blocks (192.31.196.0/24 and 192.175.48.0/24 AS112, 192.52.193.0/24 AMT), which are
//!   ordinary routed destinations;
//! * IPv6: <https://www.iana.org/assignments/iana-ipv6-special-registry> (RFC 6890, RFC 8190,
//!   RFC 9602 for 5f00::/16, RFC 9637 for 3fff::/20, and the dummy prefix 100:0:0:1::/64 next
//!   to RFC 6666's discard-only 100::/64), with 2001::/23 taken whole, plus the multicast block
//!   ff00::/8 (RFC 4291, in the IPv6 address space registry). Left out: 2620:4f:8000::/48
//!   (AS112, globally reachable).
//!
//! When the registries gain an entry, add it to [`RANGES`] (and its kind's test below).
//!
//! A prefix *overlaps* a range when either contains the other: `10.1.2.0/24` and `8.0.0.0/6`
//! both overlap `10.0.0.0/8`.
//!
//! Where the rule applies (see the README, "Special-purpose ranges"): a network group's
//! prefixes (files, sources, range tables included) are refused at their place unless the group
//! has a `guard_override` (the compiler's guard, [`crate::policy::compile`]); a remote source's
//! body is refused unless every group naming it has one ([`crate::inputs::sources::guard`]);
//! `embargo import` skips them and counts them by kind on standard error. `[[allow]]` entries
//! are never checked: allowing a special range is always safe.

use ipnetwork::IpNetwork;

use super::cidr;

/// What a special-purpose range is for; [`Kind::label`] is the word messages and counts use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// 0.0.0.0/8, ::/128.
    ThisNetwork,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64/10 (carrier-grade NAT).
    Shared,
    /// 127/8, ::1/128.
    Loopback,
    /// 169.254/16 (cloud metadata services live here), fe80::/10.
    LinkLocal,
    /// 192.0.0/24, 2001::/23: IETF protocol assignments.
    Protocol,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 192.88.99/24 (6to4 relay anycast, deprecated), 2002::/16.
    SixToFour,
    /// 198.18/15.
    Benchmarking,
    /// 224/4, ff00::/8.
    Multicast,
    /// 240/4.
    Reserved,
    /// 255.255.255.255/32.
    Broadcast,
    /// ::ffff:0:0/96 (the data plane matches these against the IPv4 prefixes anyway).
    Ipv4Mapped,
    /// 64:ff9b::/96, 64:ff9b:1::/48.
    Translation,
    /// 100::/64, 100:0:0:1::/64.
    DiscardOnly,
    /// fc00::/7.
    UniqueLocal,
    /// 5f00::/16 (SRv6 segment identifiers).
    Srv6,
}

impl Kind {
    /// The word for it in messages and in `embargo import`'s counts.
    pub const fn label(self) -> &'static str {
        match self {
            Kind::ThisNetwork => "this-network",
            Kind::Private => "private",
            Kind::Shared => "shared",
            Kind::Loopback => "loopback",
            Kind::LinkLocal => "link-local",
            Kind::Protocol => "protocol-assignment",
            Kind::Documentation => "documentation",
            Kind::SixToFour => "6to4",
            Kind::Benchmarking => "benchmarking",
            Kind::Multicast => "multicast",
            Kind::Reserved => "reserved",
            Kind::Broadcast => "broadcast",
            Kind::Ipv4Mapped => "ipv4-mapped",
            Kind::Translation => "nat64",
            Kind::DiscardOnly => "discard-only",
            Kind::UniqueLocal => "unique-local",
            Kind::Srv6 => "srv6-sid",
        }
    }
}

/// Every special-purpose range, IPv4 then IPv6, each with its kind (see the module docs for
/// the source).
pub const RANGES: [(&str, Kind); 31] = [
    ("0.0.0.0/8", Kind::ThisNetwork),
    ("10.0.0.0/8", Kind::Private),
    ("100.64.0.0/10", Kind::Shared),
    ("127.0.0.0/8", Kind::Loopback),
    ("169.254.0.0/16", Kind::LinkLocal),
    ("172.16.0.0/12", Kind::Private),
    ("192.0.0.0/24", Kind::Protocol),
    ("192.0.2.0/24", Kind::Documentation),
    ("192.88.99.0/24", Kind::SixToFour),
    ("192.168.0.0/16", Kind::Private),
    ("198.18.0.0/15", Kind::Benchmarking),
    ("198.51.100.0/24", Kind::Documentation),
    ("203.0.113.0/24", Kind::Documentation),
    ("224.0.0.0/4", Kind::Multicast),
    ("240.0.0.0/4", Kind::Reserved),
    ("255.255.255.255/32", Kind::Broadcast),
    ("::/128", Kind::ThisNetwork),
    ("::1/128", Kind::Loopback),
    ("::ffff:0:0/96", Kind::Ipv4Mapped),
    ("64:ff9b::/96", Kind::Translation),
    ("64:ff9b:1::/48", Kind::Translation),
    ("100::/64", Kind::DiscardOnly),
    ("100:0:0:1::/64", Kind::DiscardOnly),
    ("2001::/23", Kind::Protocol),
    ("2001:db8::/32", Kind::Documentation),
    ("2002::/16", Kind::SixToFour),
    ("3fff::/20", Kind::Documentation),
    ("5f00::/16", Kind::Srv6),
    ("fc00::/7", Kind::UniqueLocal),
    ("fe80::/10", Kind::LinkLocal),
    ("ff00::/8", Kind::Multicast),
];

/// The first special-purpose range `net` overlaps (most specific first, so 255.255.255.255
/// is `broadcast` rather than `reserved`), with its kind.
pub fn overlap(net: &IpNetwork) -> Option<(IpNetwork, Kind)> {
    let mut best: Option<(IpNetwork, Kind)> = None;
    for (text, kind) in RANGES {
        let range: IpNetwork = text.parse().expect("a valid range");
        if cidr::overlaps(net, &range)
            && best.is_none_or(|(b, _)| range.prefix() > b.prefix() && cidr::overlaps(&b, &range))
        {
            best = Some((range, kind));
        }
    }
    best
}

/// The sentence a refusal or a skip says about `net`, which overlaps `range` of `kind`.
pub fn describe(net: &IpNetwork, range: &IpNetwork, kind: Kind) -> String {
    if net == range {
        format!("{net} is the {} range", kind.label())
    } else {
        format!("{net} overlaps the {} range {range}", kind.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> Option<&'static str> {
        overlap(&p.parse().unwrap()).map(|(_, k)| k.label())
    }

    #[test]
    fn every_range_parses_and_the_issue_examples_are_caught() {
        for (text, _) in RANGES {
            text.parse::<IpNetwork>()
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        for (p, want) in [
            ("10.0.0.0/8", "private"),
            ("127.0.0.1/32", "loopback"),
            ("169.254.169.254/32", "link-local"),
            ("224.0.0.251/32", "multicast"),
            ("255.255.255.255/32", "broadcast"),
            ("::1/128", "loopback"),
            ("100.64.1.0/24", "shared"),
            ("192.0.2.7/32", "documentation"),
            ("198.19.255.0/24", "benchmarking"),
            ("2001:db8:bad::/48", "documentation"),
            ("3fff:1::/32", "documentation"),
            ("fd00::/8", "unique-local"),
            ("ff02::fb/128", "multicast"),
            ("::ffff:10.1.2.0/120", "ipv4-mapped"),
            ("240.1.0.0/16", "reserved"),
            // Broader prefixes that hold a range overlap it too.
            ("8.0.0.0/6", "private"),
            ("192.0.0.0/16", "protocol-assignment"),
        ] {
            assert_eq!(kind(p), Some(want), "{p}");
        }
        for public in [
            "8.8.8.0/24",
            "114.255.70.20/32",
            "192.0.1.0/24",
            "198.20.0.0/14",
            "203.0.112.0/24",
            "2a00:1450::/32",
            "2001:200::/23",
        ] {
            assert_eq!(kind(public), None, "{public}");
        }
    }
}
