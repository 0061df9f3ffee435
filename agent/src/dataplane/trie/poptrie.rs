//! Builds the compact trie of issue 13 (layout and lookup in [`embargo_abi::poptrie`]).
//! **The next data plane, not yet used**: the programs and [`crate::dataplane::Dataplane`]
//! still load the stride trie of [`super::build`]; this builder is tested against a
//! longest-match oracle (below) so the wiring can rely on it.
//!
//! Prefixes of /16 and shorter are painted into the direct array, shortest first, so a longer
//! one overwrites the slots of the shorter one it refines. Longer prefixes are grouped by the
//! direct entry (top 16 bits) they fall under, and each group becomes one **subtree**, built
//! with the direct entry's painted value as its default: every slot of every node carries the
//! most specific prefix covering it (leaf pushing), so the kernel walk never backtracks.
//!
//! A subtree is laid out contiguously and position-independently ([`Subtree`]: node and leaf
//! indices relative to its own start), then placed at any offset of the shared node and leaf
//! arrays ([`Subtree::place`]). That is what in-place updates need: rebuild the subtree under
//! a touched direct entry into free space, then flip the direct entry with one store.
//!
//! Duplicate prefixes (same network and length) resolve as in [`super::build`]: the one with
//! the larger entity index wins, whatever the input order.
//!
//! Building is linear in the prefixes times the levels they sit under (at most 3 for IPv4,
//! 19 for IPv6).

use embargo_abi::{
    addr,
    poptrie::{self, CHILD, DIRECT_BITS, DIRECT_ENTRIES, EMPTY, Node, PAYLOAD, SLOTS, STRIDE},
};
use ipnetwork::{Ipv4Network, Ipv6Network};

use super::build::TableError;

/// One family's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub addr_bits: u32,
    pub max_levels: u32,
}

pub const V4: Family = Family {
    name: "IPv4",
    addr_bits: 32,
    max_levels: poptrie::V4_MAX_LEVELS,
};
pub const V6: Family = Family {
    name: "IPv6",
    addr_bits: 128,
    max_levels: poptrie::V6_MAX_LEVELS,
};

/// A prefix as the builder sees it: the network left-aligned in 128 bits, its length, and the
/// leaf value (entity + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    len: u32,
    key: u128,
    value: u32,
}

/// The subtree under one direct entry, with node and leaf indices relative to its start: node
/// 0 is its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subtree {
    pub nodes: Vec<Node>,
    pub leaves: Vec<u32>,
}

impl Subtree {
    /// The subtree's nodes as they read when its first node is at `node_base` and its first
    /// leaf at `leaf_base`.
    pub fn place(&self, node_base: u32, leaf_base: u32) -> impl Iterator<Item = Node> + '_ {
        self.nodes.iter().map(move |n| Node {
            base1: if n.vector == 0 {
                0
            } else {
                n.base1 + node_base
            },
            base0: n.base0 + leaf_base,
            ..*n
        })
    }
}

/// A built trie: the three arrays exactly as the kernel maps hold them (before any padding to
/// map values), and where each direct entry's subtree sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trie {
    pub family: Family,
    /// [`DIRECT_ENTRIES`] entries.
    pub direct: Vec<u32>,
    pub nodes: Vec<Node>,
    pub leaves: Vec<u32>,
}

impl Trie {
    /// Bytes of the three arrays.
    pub fn bytes(&self) -> usize {
        self.direct.len() * 4 + self.nodes.len() * size_of::<Node>() + self.leaves.len() * 4
    }

    /// The entry for a key left-aligned in 128 bits: [`EMPTY`] or entity + 1, by the very walk
    /// the kernel runs.
    pub fn lookup_key(&self, key: u128) -> u32 {
        poptrie::lookup(
            (key >> 64) as u64,
            key as u64,
            self.family.max_levels,
            |i| self.direct.get(i as usize).copied(),
            |i| self.nodes.get(i as usize),
            |i| self.leaves.get(i as usize).copied(),
        )
    }

    /// The entry for an address as a trie key ([`embargo_abi::addr`]).
    pub fn lookup(&self, addr: u128) -> u32 {
        self.lookup_key(addr << (128 - self.family.addr_bits))
    }
}

/// Builds the IPv4 trie for `(prefix, entity index)` pairs.
pub fn build_v4(prefixes: &[(Ipv4Network, u32)]) -> Result<Trie, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, e)| (addr::v4(n.network()), u32::from(n.prefix()), *e));
    build(V4, items)
}

/// Builds the IPv6 trie for `(prefix, entity index)` pairs.
pub fn build_v6(prefixes: &[(Ipv6Network, u32)]) -> Result<Trie, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, e)| (addr::v6(n.network()), u32::from(n.prefix()), *e));
    build(V6, items)
}

/// Builds a trie from `(address as a trie key, prefix length, entity index)`; host bits past
/// the length are ignored.
pub fn build(
    family: Family,
    prefixes: impl Iterator<Item = (u128, u32, u32)>,
) -> Result<Trie, TableError> {
    let shift = 128 - family.addr_bits;
    let mut items: Vec<Item> = prefixes
        .map(|(a, len, e)| {
            let key = a << shift;
            let key = if len == 0 {
                0
            } else {
                key & (u128::MAX << (128 - len))
            };
            Item {
                len,
                key,
                value: poptrie::leaf(e),
            }
        })
        .collect();
    // Shortest first, ties by address then entity: a deterministic "last wins".
    items.sort_unstable();
    let mut direct = vec![EMPTY; DIRECT_ENTRIES as usize];
    let mut deep: Vec<(u32, Item)> = Vec::new();
    for it in items {
        if it.len <= DIRECT_BITS {
            let start = direct_index(it.key) as usize;
            let count = 1usize << (DIRECT_BITS - it.len);
            direct[start..start + count].fill(it.value);
        } else {
            deep.push((direct_index(it.key), it));
        }
    }
    // Group by direct entry, keeping the shortest-first order inside each group.
    deep.sort_by_key(|(d, _)| *d);
    let mut nodes = Vec::new();
    let mut leaves = Vec::new();
    let mut group: Vec<Item> = Vec::new();
    let mut i = 0;
    while i < deep.len() {
        let d = deep[i].0;
        group.clear();
        while i < deep.len() && deep[i].0 == d {
            group.push(deep[i].1);
            i += 1;
        }
        let sub = build_subtree(&group, direct[d as usize]);
        let node_base = nodes.len() as u64;
        let too_many = node_base + sub.nodes.len() as u64 > u64::from(PAYLOAD)
            || leaves.len() as u64 + sub.leaves.len() as u64 > u64::from(u32::MAX);
        if too_many {
            return Err(TableError::TooManyNodes {
                family: family.name,
                nodes: node_base + sub.nodes.len() as u64,
                max: u64::from(PAYLOAD),
            });
        }
        let leaf_base = leaves.len() as u32;
        nodes.extend(sub.place(node_base as u32, leaf_base));
        leaves.extend_from_slice(&sub.leaves);
        direct[d as usize] = CHILD | node_base as u32;
    }
    Ok(Trie {
        family,
        direct,
        nodes,
        leaves,
    })
}

/// The direct index of a left-aligned key.
fn direct_index(key: u128) -> u32 {
    (key >> (128 - DIRECT_BITS)) as u32
}

/// The slot of `key` at bit offset `off`, exactly as the kernel computes it.
fn slot_of(key: u128, off: u32) -> u32 {
    poptrie::slot((key >> 64) as u64, key as u64, off)
}

/// Builds the subtree for `items` (all longer than /16, under one direct entry, shortest
/// first), whose addresses no item covers answer `default`.
fn build_subtree(items: &[Item], default: u32) -> Subtree {
    let mut sub = Subtree::default();
    sub.nodes.push(Node::default());
    build_node(items, DIRECT_BITS, default, 0, &mut sub);
    sub
}

/// Fills node `me` for `items` (all longer than `off`, inside the node's region, shortest
/// first), then its children, depth first; a node's children are consecutive.
fn build_node(items: &[Item], off: u32, default: u32, me: usize, sub: &mut Subtree) {
    let end = off + STRIDE;
    let mut value = [default; SLOTS as usize];
    let mut deeper: Vec<Vec<Item>> = vec![Vec::new(); SLOTS as usize];
    for it in items {
        let s = slot_of(it.key, off) as usize;
        if it.len <= end {
            let count = 1usize << (end - it.len);
            value[s..s + count].fill(it.value);
        } else {
            deeper[s].push(*it);
        }
    }
    let mut node = Node {
        base1: sub.nodes.len() as u32,
        base0: sub.leaves.len() as u32,
        ..Node::default()
    };
    let mut prev = None;
    for s in 0..SLOTS as usize {
        if !deeper[s].is_empty() {
            node.vector |= 1 << s;
        } else if prev != Some(value[s]) {
            node.leafvec |= 1 << s;
            sub.leaves.push(value[s]);
            prev = Some(value[s]);
        }
    }
    let children = node.vector.count_ones() as usize;
    sub.nodes
        .extend(std::iter::repeat_n(Node::default(), children));
    sub.nodes[me] = node;
    let mut k = 0;
    for s in 0..SLOTS as usize {
        if !deeper[s].is_empty() {
            build_node(&deeper[s], end, value[s], node.base1 as usize + k, sub);
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The oracle: the longest prefix covering `addr` (ties: the larger entity), by brute force.
    fn oracle(family: Family, prefixes: &[(u128, u32, u32)], addr: u128) -> u32 {
        let bits = family.addr_bits;
        prefixes
            .iter()
            .filter(|(a, len, _)| *len == 0 || (a ^ addr) >> (bits - len) == 0)
            .max_by_key(|(_, len, e)| (*len, *e))
            .map_or(EMPTY, |(_, _, e)| poptrie::leaf(*e))
    }

    fn mask(family: Family, len: u32) -> u128 {
        let all = u128::MAX >> (128 - family.addr_bits);
        if len == 0 {
            0
        } else {
            all & (all << (family.addr_bits - len))
        }
    }

    /// Checks every address of `addrs` plus, for each prefix, its first and last address and
    /// their neighbours.
    fn check(family: Family, prefixes: &[(u128, u32, u32)], addrs: &[u128]) {
        let t = build(family, prefixes.iter().copied()).expect("builds");
        let all = u128::MAX >> (128 - family.addr_bits);
        let mut probes: Vec<u128> = addrs.iter().map(|a| a & all).collect();
        for (a, len, _) in prefixes {
            let first = a & mask(family, *len);
            let last = first | (all & !mask(family, *len));
            probes.extend([
                first,
                last,
                first.wrapping_sub(1) & all,
                last.wrapping_add(1) & all,
            ]);
        }
        probes.extend([0, all]);
        for addr in probes {
            let want = oracle(family, prefixes, addr);
            let got = t.lookup(addr);
            assert_eq!(
                got, want,
                "{} {addr:#x}: trie {got}, oracle {want}; prefixes {prefixes:x?}",
                family.name
            );
        }
    }

    /// A small generator for nested, overlapping prefix sets and probes (splitmix64).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn wide(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    /// `n` prefixes: a third anywhere, the rest refining (or repeating) an earlier one, so
    /// sets nest and overlap at every depth; lengths /0 to the full width, skewed towards
    /// the stride boundaries. Addresses: inside random prefixes and anywhere.
    fn random_set(family: Family, seed: u64, n: usize) -> (Vec<(u128, u32, u32)>, Vec<u128>) {
        let mut g = Gen(seed);
        let bits = family.addr_bits;
        let all = u128::MAX >> (128 - bits);
        // A small shared top part keeps many prefixes under the same direct entries.
        let hot: Vec<u128> = (0..4).map(|_| g.wide() & all).collect();
        let mut out: Vec<(u128, u32, u32)> = Vec::new();
        for _ in 0..n {
            let len = match g.below(4) {
                0 => g.below(u64::from(bits) + 1) as u32,
                // Around the direct and stride boundaries: 16, 22, 28, ...
                1 => {
                    let b = 16 + 6 * g.below(u64::from((bits - 16) / 6 + 1)) as u32;
                    (b as i64 + g.below(3) as i64 - 1).clamp(0, i64::from(bits)) as u32
                }
                _ => (17 + g.below(u64::from(bits - 16)) as u32).min(bits),
            };
            let base = match (out.len(), g.below(3)) {
                (0, _) | (_, 0) => {
                    if g.below(2) == 0 {
                        hot[g.below(4) as usize] ^ (g.wide() & all >> 20)
                    } else {
                        g.wide() & all
                    }
                }
                (k, _) => {
                    let (a, l, _) = out[g.below(k as u64) as usize];
                    // Inside prefix `a/l`: keep its bits, random below.
                    (a & mask(family, l)) | (g.wide() & all & !mask(family, l))
                }
            };
            let entity = g.below(8) as u32;
            out.push((base & mask(family, len), len, entity));
        }
        let mut addrs = Vec::new();
        for _ in 0..2000 {
            if g.below(2) == 0 && !out.is_empty() {
                let (a, l, _) = out[g.below(out.len() as u64) as usize];
                addrs.push(a | (g.wide() & all & !mask(family, l)));
            } else {
                addrs.push(g.wide() & all);
            }
        }
        (out, addrs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn v4_lookups_equal_the_longest_match(seed in any::<u64>(), n in 0usize..300) {
            let (p, a) = random_set(V4, seed, n);
            check(V4, &p, &a);
        }

        #[test]
        fn v6_lookups_equal_the_longest_match(seed in any::<u64>(), n in 0usize..300) {
            let (p, a) = random_set(V6, seed, n);
            check(V6, &p, &a);
        }
    }

    #[test]
    fn edge_cases() {
        let v4 = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
        // Empty, /0 alone, /0 refined at every length, full-width hosts at both ends.
        check(V4, &[], &[1, 2, 3]);
        check(V4, &[(0, 0, 7)], &[0, 1, 0xffff_ffff]);
        let mut nested: Vec<(u128, u32, u32)> = (0..=32)
            .map(|len| (v4([203, 0, 113, 77]) & mask(V4, len), len, len))
            .collect();
        nested.push((0xffff_ffff, 32, 3));
        nested.push((0, 32, 4));
        check(V4, &nested, &[v4([203, 0, 113, 76]), v4([203, 0, 112, 0])]);
        // The same prefix twice: the larger entity wins.
        check(
            V4,
            &[(v4([10, 0, 0, 0]), 8, 5), (v4([10, 0, 0, 0]), 8, 2)],
            &[v4([10, 1, 2, 3])],
        );
        // Host bits set in the input are ignored.
        let t = build(V4, [(v4([10, 1, 2, 3]), 8, 1)].into_iter()).unwrap();
        assert_eq!(t.lookup(v4([10, 200, 0, 0])), poptrie::leaf(1));
        // IPv6: /0, /128 at both ends, every length along one address.
        let a6 = 0x2001_0db8_85a3_0000_0000_8a2e_0370_7334u128;
        let mut nested6: Vec<(u128, u32, u32)> = (0..=128)
            .map(|len| (a6 & mask(V6, len), len, len))
            .collect();
        nested6.push((u128::MAX, 128, 1));
        nested6.push((0, 128, 2));
        nested6.push((1, 128, 3));
        check(V6, &nested6, &[a6 ^ 1, a6 ^ (1 << 4), a6 ^ (1 << 5), 2]);
        // Lengths around the last IPv6 level (bits 124..130).
        let deep: Vec<(u128, u32, u32)> = (120..=128)
            .map(|len| (a6 & mask(V6, len), len, len % 5))
            .collect();
        check(V6, &deep, &(0..64).map(|k| a6 ^ k).collect::<Vec<_>>());
    }

    #[test]
    fn the_walk_stays_within_its_levels_and_direct_entries_are_leaves_when_shallow() {
        // A /16 and shorter never create nodes.
        let t = build(V4, [(0x0a00_0000, 8, 1), (0xc0a8_0000, 16, 2)].into_iter()).unwrap();
        assert!(t.nodes.is_empty() && t.leaves.is_empty());
        assert_eq!(t.direct[0x0a00], poptrie::leaf(1));
        // A /32 takes exactly 3 nodes, one per level.
        let t = build(V4, [(0x0a00_0001, 32, 1)].into_iter()).unwrap();
        assert_eq!(t.nodes.len(), 3);
        // A /128 takes 19.
        let t = build(V6, [(1, 128, 1)].into_iter()).unwrap();
        assert_eq!(t.nodes.len(), poptrie::V6_MAX_LEVELS as usize);
    }

    #[test]
    fn a_subtree_placed_anywhere_answers_the_same() {
        let (p, addrs) = random_set(V4, 42, 200);
        let t = build(V4, p.iter().copied()).unwrap();
        // Move every subtree by a fixed offset: the same answers.
        let (dn, dl) = (1000u32, 777u32);
        let mut moved = t.clone();
        moved.nodes = std::iter::repeat_n(Node::default(), dn as usize)
            .chain(t.nodes.iter().map(|n| Node {
                base1: if n.vector == 0 { 0 } else { n.base1 + dn },
                base0: n.base0 + dl,
                ..*n
            }))
            .collect();
        moved.leaves = std::iter::repeat_n(0, dl as usize)
            .chain(t.leaves.iter().copied())
            .collect();
        for d in moved.direct.iter_mut() {
            if *d & CHILD != 0 {
                *d += dn;
            }
        }
        for a in addrs {
            assert_eq!(moved.lookup(a), t.lookup(a));
        }
    }
}
