//! Builds the compact tries the data plane loads (layout and lookup in [`embargo_abi::trie`]).
//!
//! Prefixes of /16 and shorter are painted into the direct array, shortest first, so a longer
//! one overwrites the words of the shorter one it refines. Longer prefixes are grouped by the
//! direct entry (top 16 bits) they fall under, and each group becomes one **subtree**
//! ([`subtree`]), built with the direct entry's painted value as its default: every slot of
//! every node carries the most specific prefix covering it (leaf pushing), so the kernel walk
//! never backtracks.
//!
//! A subtree is laid out position-independently ([`Subtree`]: node and leaf indices relative
//! to its own start) and placed as one block at any node boundary of the array
//! ([`Subtree::words`]): its nodes, then its leaves, rounded up to whole nodes. That is what
//! in-place updates rely on ([`super::live`]): rebuild the subtree under a touched direct entry
//! into free space, then switch the direct entry with one store.
//!
//! Duplicate prefixes (same network and length) resolve the same way everywhere: the one with
//! the larger group index wins, whatever the input order.
//!
//! Building is linear in the prefixes times the levels they sit under (at most 3 for IPv4,
//! 19 for IPv6); a million prefixes build in well under a second.

use embargo_abi::{
    addr,
    trie::{
        self, CHILD, DIRECT_BITS, DIRECT_ENTRIES, EMPTY, FIRST_NODE, LANES, NODE_WORDS, Node,
        PAYLOAD, SLOTS, STRIDE,
    },
};
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
    max_levels: trie::V4_MAX_LEVELS,
};
pub const V6: Family = Family {
    name: "IPv6",
    addr_bits: 128,
    max_levels: trie::V6_MAX_LEVELS,
};

/// Leaf runs a node keeps inline at most ([`Node::inline`]: four 16-bit values).
const INLINE_LEAVES: usize = 4;

/// Nodes (of [`NODE_WORDS`] words) an array can hold at most: node numbers fit in 31 bits and
/// word indices in 32.
pub const MAX_NODES: u64 = (u32::MAX as u64 + 1) / NODE_WORDS as u64;
const _: () = assert!(MAX_NODES <= PAYLOAD as u64 + 1);

/// A prefix as the builder sees it: the network left-aligned in 128 bits, its length, and the
/// leaf value (group + 1). Ordered shortest first, then by address, then by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub len: u32,
    pub key: u128,
    pub value: u32,
}

impl Item {
    /// The item for `addr` (right-aligned in the family's width) / `len` -> `group`; host bits
    /// past the length are ignored.
    pub fn new(family: Family, addr: u128, len: u32, group: u32) -> Self {
        let key = addr << (128 - family.addr_bits);
        let key = if len == 0 {
            0
        } else {
            key & (u128::MAX << (128 - len))
        };
        Self {
            len,
            key,
            value: trie::leaf(group),
        }
    }

    /// The direct entry the item's network falls under.
    pub fn direct(&self) -> u32 {
        direct_index(self.key)
    }
}

/// The direct index of a left-aligned key.
pub fn direct_index(key: u128) -> u32 {
    (key >> (128 - DIRECT_BITS)) as u32
}

/// The subtree under one direct entry, with node and leaf indices relative to its start: node
/// 0 is its root; a node's `base0` is its first leaf's index **plus one**, or 0 when its leaves
/// are inline ([`Node::inline`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subtree {
    pub nodes: Vec<Node>,
    pub leaves: Vec<u32>,
}

impl Subtree {
    /// Nodes' worth of array the block takes: its nodes, then its leaves rounded up.
    pub fn block_nodes(&self) -> u32 {
        Self::block_size(self.nodes.len() as u32, self.leaves.len() as u32)
    }

    /// Nodes' worth of array a block of `nodes` nodes and `leaves` leaves takes.
    pub fn block_size(nodes: u32, leaves: u32) -> u32 {
        nodes + leaves.div_ceil(NODE_WORDS)
    }

    /// The block's words when its root is node `at`: nodes (with absolute indices), then
    /// leaves, then zeros up to a node boundary.
    pub fn words(&self, at: u32) -> Vec<u32> {
        let leaf_base = (at + self.nodes.len() as u32) * NODE_WORDS;
        let mut out = Vec::with_capacity((self.block_nodes() * NODE_WORDS) as usize);
        for n in &self.nodes {
            let placed = Node {
                base1: if n.vector == 0 { 0 } else { n.base1 + at },
                base0: if n.base0 == 0 {
                    0
                } else {
                    n.base0 - 1 + leaf_base
                },
                ..*n
            };
            out.extend_from_slice(&placed.to_words());
        }
        out.extend_from_slice(&self.leaves);
        out.resize((self.block_nodes() * NODE_WORDS) as usize, 0);
        out
    }
}

/// A built trie: the array exactly as the kernel map holds it (a whole number of
/// [`trie::Chunk`]s), before any headroom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub entries: Vec<u32>,
    /// Trie nodes.
    pub nodes: u32,
    /// Nodes' worth of array the subtrees take (nodes and leaves), past the direct array.
    pub used: u32,
}

impl Table {
    /// Bytes of kernel memory the array takes.
    pub fn bytes(&self) -> usize {
        self.entries.len() * 4
    }

    /// Number of map values ([`trie::Chunk`]s).
    pub fn chunks(&self) -> u32 {
        (self.entries.len() / LANES as usize) as u32
    }
}

/// Builds the IPv4 trie for `(prefix, group index)` pairs.
pub fn build_v4(prefixes: &[(Ipv4Network, u32)]) -> Result<Table, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, g)| (addr::v4(n.network()), u32::from(n.prefix()), *g));
    build(V4, items)
}

/// Builds the IPv6 trie for `(prefix, group index)` pairs.
pub fn build_v6(prefixes: &[(Ipv6Network, u32)]) -> Result<Table, TableError> {
    let items = prefixes
        .iter()
        .map(|(n, g)| (addr::v6(n.network()), u32::from(n.prefix()), *g));
    build(V6, items)
}

/// Builds a trie from `(address right-aligned in the family's width, prefix length, group
/// index)`; host bits past the length are ignored.
pub fn build(
    family: Family,
    prefixes: impl Iterator<Item = (u128, u32, u32)>,
) -> Result<Table, TableError> {
    let mut items: Vec<Item> = prefixes
        .map(|(a, len, g)| Item::new(family, a, len, g))
        .collect();
    // Shortest first, ties by address then group: a deterministic "last wins".
    items.sort_unstable();
    let mut entries = vec![EMPTY; DIRECT_ENTRIES as usize];
    let mut deep: Vec<Item> = Vec::new();
    for it in items {
        if it.len <= DIRECT_BITS {
            let start = it.direct() as usize;
            let count = 1usize << (DIRECT_BITS - it.len);
            entries[start..start + count].fill(it.value);
        } else {
            deep.push(it);
        }
    }
    // Group by direct entry, keeping the shortest-first order inside each group.
    deep.sort_by_key(Item::direct);
    let mut next = FIRST_NODE as u64;
    let mut nodes = 0u32;
    let mut i = 0;
    while i < deep.len() {
        let d = deep[i].direct();
        let start = i;
        while i < deep.len() && deep[i].direct() == d {
            i += 1;
        }
        let sub = subtree(&deep[start..i], entries[d as usize]);
        let end = next + u64::from(sub.block_nodes());
        if end > MAX_NODES {
            return Err(TableError::TooManyNodes {
                family: family.name,
                nodes: end - u64::from(FIRST_NODE),
                max: MAX_NODES - u64::from(FIRST_NODE),
            });
        }
        entries.extend(sub.words(next as u32));
        entries[d as usize] = CHILD | next as u32;
        nodes += sub.nodes.len() as u32;
        next = end;
    }
    let used = (next - u64::from(FIRST_NODE)) as u32;
    entries.resize(entries.len().next_multiple_of(LANES as usize), EMPTY);
    Ok(Table {
        entries,
        nodes,
        used,
    })
}

/// The slot of `key` at bit offset `off`, exactly as the kernel computes it.
fn slot_of(key: u128, off: u32) -> u32 {
    trie::slot((key >> 64) as u64, key as u64, off)
}

/// Builds the subtree for `items` (all longer than /16, under one direct entry, shortest
/// first), whose addresses no item covers answer `default`.
pub fn subtree(items: &[Item], default: u32) -> Subtree {
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
        ..Node::default()
    };
    let mut runs: Vec<u32> = Vec::new();
    for s in 0..SLOTS as usize {
        if !deeper[s].is_empty() {
            node.vector |= 1 << s;
        } else if runs.last() != Some(&value[s]) {
            node.leafvec |= 1 << s;
            runs.push(value[s]);
        }
    }
    if runs.len() <= INLINE_LEAVES && runs.iter().all(|v| *v <= 0xffff) {
        // Inline: no leaf words, and the lookup ends in this node.
        node.inline = runs
            .iter()
            .enumerate()
            .fold(0, |acc, (k, v)| acc | (u64::from(*v) << (16 * k)));
    } else {
        node.base0 = sub.leaves.len() as u32 + 1;
        sub.leaves.extend_from_slice(&runs);
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

/// The entry for `addr` (right-aligned in `family`'s width) in a trie array, by the very walk
/// the kernel runs: [`EMPTY`] or group + 1.
pub fn lookup_entry(family: Family, words: &[u32], addr: u128) -> u32 {
    let key = addr << (128 - family.addr_bits);
    trie::lookup((key >> 64) as u64, key as u64, family.max_levels, |c| {
        trie::chunk_of(words, c)
    })
}

/// Looks an IPv4 address up in a built table: the group index, if any.
pub fn lookup_v4(table: &Table, addr: std::net::Ipv4Addr) -> Option<u32> {
    trie::group_of(lookup_entry(V4, &table.entries, addr::v4(addr)))
}

/// Looks an IPv6 address up in a built table: the group index, if any.
pub fn lookup_v6(table: &Table, addr: std::net::Ipv6Addr) -> Option<u32> {
    trie::group_of(lookup_entry(V6, &table.entries, addr::v6(addr)))
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The oracle: the longest prefix covering `addr` (ties: the larger group), by brute force.
    pub(crate) fn oracle(family: Family, prefixes: &[(u128, u32, u32)], addr: u128) -> u32 {
        let bits = family.addr_bits;
        prefixes
            .iter()
            .filter(|(a, len, _)| *len == 0 || (a ^ addr) >> (bits - len) == 0)
            .max_by_key(|(_, len, e)| (*len, *e))
            .map_or(EMPTY, |(_, _, e)| trie::leaf(*e))
    }

    pub(crate) fn mask(family: Family, len: u32) -> u128 {
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
        check_words(family, &t.entries, prefixes, addrs);
    }

    /// As [`check`], for an array built any way.
    pub(crate) fn check_words(
        family: Family,
        words: &[u32],
        prefixes: &[(u128, u32, u32)],
        addrs: &[u128],
    ) {
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
            let got = lookup_entry(family, words, addr);
            assert_eq!(
                got, want,
                "{} {addr:#x}: trie {got}, oracle {want}; prefixes {prefixes:x?}",
                family.name
            );
        }
    }

    /// A small generator for nested, overlapping prefix sets and probes (splitmix64).
    pub(crate) struct Gen(pub(crate) u64);

    impl Gen {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn wide(&mut self) -> u128 {
            (u128::from(self.next()) << 64) | u128::from(self.next())
        }
    }

    /// `n` prefixes: a third anywhere, the rest refining (or repeating) an earlier one, so
    /// sets nest and overlap at every depth; lengths /0 to the full width, skewed towards
    /// the stride boundaries. Addresses: inside random prefixes and anywhere.
    pub(crate) fn random_set(
        family: Family,
        seed: u64,
        n: usize,
    ) -> (Vec<(u128, u32, u32)>, Vec<u128>) {
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
            let group = g.below(8) as u32;
            out.push((base & mask(family, len), len, group));
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
        // The same prefix twice: the larger group wins.
        check(
            V4,
            &[(v4([10, 0, 0, 0]), 8, 5), (v4([10, 0, 0, 0]), 8, 2)],
            &[v4([10, 1, 2, 3])],
        );
        // Groups past 16 bits cannot be inline: such nodes keep leaf words.
        let big = [(v4([10, 0, 0, 0]), 24, 70_000), (v4([10, 0, 1, 0]), 24, 3)];
        check(
            V4,
            &big,
            &[v4([10, 0, 0, 9]), v4([10, 0, 1, 9]), v4([10, 0, 2, 9])],
        );
        let t = build(V4, big.into_iter()).unwrap();
        assert!(t.entries.contains(&trie::leaf(70_000)), "a leaf word");
        // Host bits set in the input are ignored.
        let t = build(V4, [(v4([10, 1, 2, 3]), 8, 1)].into_iter()).unwrap();
        assert_eq!(
            lookup_entry(V4, &t.entries, v4([10, 200, 0, 0])),
            trie::leaf(1)
        );
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
        // A /16 and shorter never create nodes: the array is the direct array alone.
        let t = build(V4, [(0x0a00_0000, 8, 1), (0xc0a8_0000, 16, 2)].into_iter()).unwrap();
        assert_eq!((t.nodes, t.used), (0, 0));
        assert_eq!(t.entries.len(), DIRECT_ENTRIES as usize);
        assert_eq!(t.entries[0x0a00], trie::leaf(1));
        // A /32 takes exactly 3 nodes, one per level, and its block starts past the direct
        // array.
        let t = build(V4, [(0x0a00_0001, 32, 1)].into_iter()).unwrap();
        assert_eq!(t.nodes, 3);
        assert_eq!(t.entries[0x0a00], CHILD | FIRST_NODE);
        // A /128 takes 19.
        let t = build(V6, [(1, 128, 1)].into_iter()).unwrap();
        assert_eq!(t.nodes, trie::V6_MAX_LEVELS);
    }

    #[test]
    fn most_specific_wins_through_the_table_api() {
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
        let t6 = build_v6(&[("2001:db8::/32".parse().unwrap(), 4)]).unwrap();
        assert_eq!(lookup_v6(&t6, "2001:db8::1".parse().unwrap()), Some(4));
        assert_eq!(lookup_v6(&t6, "2001:db9::1".parse().unwrap()), None);
        // Input order does not matter.
        let mut r = p.clone();
        r.reverse();
        assert_eq!(build_v4(&r).unwrap(), t);
    }

    #[test]
    fn a_subtree_placed_anywhere_answers_the_same() {
        let (p, addrs) = random_set(V4, 42, 200);
        let t = build(V4, p.iter().copied()).unwrap();
        // Rebuild every subtree at another node: the same answers.
        let mut moved = t.entries[..DIRECT_ENTRIES as usize].to_vec();
        let mut items: Vec<Item> = p.iter().map(|&(a, l, g)| Item::new(V4, a, l, g)).collect();
        items.sort_unstable();
        let mut at = FIRST_NODE + 1000;
        moved.resize((at * NODE_WORDS) as usize, 0xdead_beef);
        for d in 0..DIRECT_ENTRIES {
            if moved[d as usize] & CHILD == 0 {
                continue;
            }
            let under: Vec<Item> = items
                .iter()
                .filter(|i| i.len > DIRECT_BITS && i.direct() == d)
                .copied()
                .collect();
            let default = items
                .iter()
                .filter(|i| {
                    i.len <= DIRECT_BITS
                        && (i.len == 0 || i.direct() >> (16 - i.len) == d >> (16 - i.len))
                })
                .map(|i| i.value)
                .next_back()
                .unwrap_or(EMPTY);
            let sub = subtree(&under, default);
            moved.extend(sub.words(at));
            moved[d as usize] = CHILD | at;
            at += sub.block_nodes();
        }
        // Whole chunks, as the kernel map holds them.
        moved.resize(moved.len().next_multiple_of(LANES as usize), 0);
        for a in addrs {
            assert_eq!(
                lookup_entry(V4, &moved, a),
                lookup_entry(V4, &t.entries, a),
                "{a:#x}"
            );
        }
    }
}
