//! Builds the stride tries the data plane loads (layout and lookup in [`embargo_abi::trie`]).
//!
//! Prefixes are inserted shortest first, so a longer prefix always overwrites the slots of the
//! shorter one it refines: the trie answers "most specific prefix wins" with one load per level
//! and no length bookkeeping. Building is linear in the number of prefixes plus the slots they
//! expand to; a million prefixes build in well under a second.

use embargo_abi::{addr, trie};
use ipnetwork::{Ipv4Network, Ipv6Network};

/// Why a table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The policy needs more trie nodes than an entry can address.
    #[error(
        "the {family} policy needs {nodes} trie nodes, over the limit of {max}; split the policy or aggregate prefixes"
    )]
    TooManyNodes {
        family: &'static str,
        nodes: u64,
        max: u64,
    },
}

/// A built trie: the flat array exactly as the kernel map holds it (a whole number of
/// [`trie::Chunk`]s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub entries: Vec<u32>,
    pub nodes: u32,
}

impl Table {
    /// Bytes of kernel memory the array takes.
    pub fn bytes(&self) -> usize {
        self.entries.len() * 4
    }

    /// Number of map values ([`trie::Chunk`]s): the map's `max_entries`.
    pub fn chunks(&self) -> u32 {
        (self.entries.len() / trie::LANES as usize) as u32
    }
}

/// The geometry of one family's trie.
#[derive(Debug)]
pub struct Shape {
    pub family: &'static str,
    pub addr_bits: u32,
    pub root_bits: u32,
    pub stride: u32,
}

pub const V4: Shape = Shape {
    family: "IPv4",
    addr_bits: 32,
    root_bits: trie::V4_ROOT_BITS,
    stride: trie::V4_STRIDE,
};
pub const V6: Shape = Shape {
    family: "IPv6",
    addr_bits: 128,
    root_bits: trie::V6_ROOT_BITS,
    stride: trie::V6_STRIDE,
};

/// Builds the IPv4 trie for `(prefix, entity index)` pairs.
pub fn build_v4(prefixes: &[(Ipv4Network, u32)]) -> Result<Table, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, e)| (addr::v4(n.network()), n.prefix() as u32, *e));
    build(&V4, items)
}

/// Builds the IPv6 trie for `(prefix, entity index)` pairs.
pub fn build_v6(prefixes: &[(Ipv6Network, u32)]) -> Result<Table, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, e)| (addr::v6(n.network()), n.prefix() as u32, *e));
    build(&V6, items)
}

fn build(
    shape: &Shape,
    items: impl Iterator<Item = (u128, u32, u32)>,
) -> Result<Table, TableError> {
    let mut items: Vec<(u32, u128, u32)> = items.map(|(a, l, e)| (l, a, e)).collect();
    // Shortest first; ties by address so the result does not depend on input order.
    items.sort_unstable();
    if items.is_empty() {
        // A family with no prefixes gets a one-chunk array: every root index past it fails the
        // kernel's bounds check and reads as "no match", and no 64 MiB root is spent on nothing.
        return Ok(Table {
            entries: vec![trie::EMPTY; trie::LANES as usize],
            nodes: 0,
        });
    }
    let root_len = 1usize << shape.root_bits;
    let node_len = 1usize << shape.stride;
    let mut entries = vec![trie::EMPTY; root_len];
    let mut nodes: u32 = 0;
    let max_nodes =
        u64::from(trie::PAYLOAD).min((u64::from(u32::MAX) - root_len as u64) / node_len as u64);
    let bits = |addr: u128, from: u32, width: u32| -> usize {
        ((addr >> (shape.addr_bits - from - width)) & ((1u128 << width) - 1)) as usize
    };
    for (len, addr, entity) in items {
        let value = trie::leaf(entity);
        if len <= shape.root_bits {
            let start = if shape.root_bits == 0 {
                0
            } else {
                bits(addr, 0, shape.root_bits)
            };
            let count = 1usize << (shape.root_bits - len);
            // Shorter prefixes come first, so no child exists under these slots yet.
            entries[start..start + count].fill(value);
            continue;
        }
        let mut index = bits(addr, 0, shape.root_bits);
        let mut depth = shape.root_bits;
        loop {
            // Descend into (or create) the child node under `index`.
            let entry = entries[index];
            let node = if entry & trie::CHILD != 0 {
                entry & trie::PAYLOAD
            } else {
                if u64::from(nodes) >= max_nodes {
                    return Err(TableError::TooManyNodes {
                        family: shape.family,
                        nodes: u64::from(nodes) + 1,
                        max: max_nodes,
                    });
                }
                let node = nodes;
                nodes += 1;
                // Push the covering value down into the new node.
                entries.resize(entries.len() + node_len, entry);
                entries[index] = trie::child(node);
                node
            };
            let base = trie::node_slot(shape.root_bits, shape.stride, node, 0) as usize;
            let slot = bits(addr, depth, shape.stride);
            if len <= depth + shape.stride {
                let count = 1usize << (depth + shape.stride - len);
                entries[base + slot..base + slot + count].fill(value);
                break;
            }
            index = base + slot;
            depth += shape.stride;
        }
    }
    let chunks = entries.len().div_ceil(trie::LANES as usize);
    entries.resize(chunks * trie::LANES as usize, trie::EMPTY);
    Ok(Table { entries, nodes })
}

/// Looks an IPv4 address up in a built table: the entity index, if any.
pub fn lookup_v4(table: &Table, addr: std::net::Ipv4Addr) -> Option<u32> {
    let entry = trie::lookup_v4(u32::from(addr), |i| table.entries.get(i as usize).copied());
    trie::entity_of(entry)
}

/// Looks an IPv6 address up in a built table: the entity index, if any.
pub fn lookup_v6(table: &Table, addr: std::net::Ipv6Addr) -> Option<u32> {
    let n = u128::from(addr);
    let entry = trie::lookup_v6((n >> 64) as u64, n as u64, |i| {
        table.entries.get(i as usize).copied()
    });
    trie::entity_of(entry)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    /// The reference: evaluate every prefix, keep the longest that contains the address.
    fn naive<N: Copy>(prefixes: &[(N, u32)], contains: impl Fn(N) -> Option<u32>) -> Option<u32> {
        prefixes
            .iter()
            .filter_map(|(n, e)| contains(*n).map(|len| (len, *e)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, e)| e)
    }

    fn dedup<N: Copy + Eq + std::hash::Hash>(v: Vec<(N, u32)>) -> Vec<(N, u32)> {
        let mut seen = std::collections::HashSet::new();
        v.into_iter().filter(|(n, _)| seen.insert(*n)).collect()
    }

    #[test]
    fn most_specific_wins_v4() {
        let p = vec![
            ("10.0.0.0/8".parse().unwrap(), 0),
            ("10.1.0.0/16".parse().unwrap(), 1),
            ("10.1.2.0/25".parse().unwrap(), 2),
            ("10.1.2.3/32".parse().unwrap(), 3),
        ];
        let t = build_v4(&p).unwrap();
        let l = |s: &str| lookup_v4(&t, s.parse().unwrap());
        assert_eq!(l("10.9.9.9"), Some(0));
        assert_eq!(l("10.1.9.9"), Some(1));
        assert_eq!(l("10.1.2.100"), Some(2));
        assert_eq!(l("10.1.2.128"), Some(1));
        assert_eq!(l("10.1.2.3"), Some(3));
        assert_eq!(l("11.0.0.0"), None);
        assert_eq!(t.nodes, 2);
    }

    #[test]
    fn empty_family_is_one_entry_and_misses() {
        let t = build_v6(&[]).unwrap();
        assert_eq!(t.entries.len(), trie::LANES as usize);
        assert_eq!(lookup_v6(&t, "::".parse().unwrap()), None);
        assert_eq!(lookup_v6(&t, "2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut p: Vec<(Ipv4Network, u32)> = vec![
            ("10.1.2.3/32".parse().unwrap(), 3),
            ("10.0.0.0/8".parse().unwrap(), 0),
            ("10.1.2.0/28".parse().unwrap(), 2),
        ];
        let a = build_v4(&p).unwrap();
        p.reverse();
        assert_eq!(a, build_v4(&p).unwrap());
    }

    #[test]
    fn default_routes_and_hosts_v6() {
        let p = vec![
            ("::/0".parse().unwrap(), 0),
            ("2001:db8::/32".parse().unwrap(), 1),
            ("2001:db8::1/128".parse().unwrap(), 2),
        ];
        let t = build_v6(&p).unwrap();
        let l = |s: &str| lookup_v6(&t, s.parse().unwrap());
        assert_eq!(l("::1"), Some(0));
        assert_eq!(l("2001:db8::2"), Some(1));
        assert_eq!(l("2001:db8::1"), Some(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn v4_agrees_with_naive(
            raw in prop::collection::vec((any::<u32>(), 0u8..=32, 0u32..5), 1..60),
            probes in prop::collection::vec(any::<u32>(), 64),
        ) {
            // Cluster prefixes under a few /8s so they overlap often.
            let p = dedup(raw.into_iter().map(|(a, l, e)| {
                let a = (a & 0x03ff_ffff) | 0x0a00_0000;
                (Ipv4Network::new(Ipv4Addr::from(a), l).unwrap(), e)
            }).map(|(n, e)| (Ipv4Network::new(n.network(), n.prefix()).unwrap(), e)).collect());
            let t = build_v4(&p).unwrap();
            for (i, probe) in probes.into_iter().enumerate() {
                // Half the probes land inside the clustered space.
                let addr = Ipv4Addr::from(if i % 2 == 0 { (probe & 0x03ff_ffff) | 0x0a00_0000 } else { probe });
                let want = naive(&p, |n: Ipv4Network| n.contains(addr).then(|| u32::from(n.prefix())));
                prop_assert_eq!(lookup_v4(&t, addr), want, "addr {}", addr);
            }
        }

        #[test]
        fn v6_agrees_with_naive(
            raw in prop::collection::vec((any::<u128>(), 0u8..=128, 0u32..5), 1..40),
            probes in prop::collection::vec(any::<u128>(), 64),
        ) {
            let mask = (1u128 << 100) - 1;
            let base = 0x2001_0db8u128 << 96;
            let p = dedup(raw.into_iter().map(|(a, l, e)| {
                let n = Ipv6Network::new(Ipv6Addr::from((a & mask) | base), l).unwrap();
                (Ipv6Network::new(n.network(), n.prefix()).unwrap(), e)
            }).collect());
            let t = build_v6(&p).unwrap();
            for (i, probe) in probes.into_iter().enumerate() {
                let addr = Ipv6Addr::from(if i % 2 == 0 { (probe & mask) | base } else { probe });
                let want = naive(&p, |n: Ipv6Network| n.contains(addr).then(|| u32::from(n.prefix())));
                prop_assert_eq!(lookup_v6(&t, addr), want, "addr {}", addr);
            }
        }
    }
}
