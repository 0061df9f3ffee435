//! The compact trie both sides share: its layout, its entry encoding and its lookup walk.
//!
//! A compressed multibit trie in the family of Poptrie (Asai and Ohara, SIGCOMM 2015), sized by
//! the policy instead of by the address space. Each address family has **one** flat array of
//! `u32` words, stored in an mmap-able BPF array map whose values are [`Chunk`]s of [`LANES`]
//! words (the kernel pads every array value to 8 bytes, so 4-byte values would waste half the
//! map and break the flat `mmap` layout; 64-byte chunks have no padding and are one cache line):
//!
//! ```text
//! [ direct: 2^16 words ][ subtree ][ subtree ] ... [ free ] ...
//!   node 0 .. 8191       one block of nodes then leaves, at a node boundary
//! ```
//!
//! * the **direct** array: the first [`DIRECT_ENTRIES`] words, indexed by the address's top
//!   [`DIRECT_BITS`] bits (256 KiB per family);
//! * **nodes** of 6-bit strides ([`STRIDE`]): 8 words ([`NODE_WORDS`], 32 bytes, two per
//!   chunk) anywhere past the direct array; node `n` is words `8n .. 8n + 8` (so node numbers
//!   start at [`FIRST_NODE`]). A node ([`Node`]) holds a 64-bit `vector` (bit `i`: slot `i` is
//!   an internal node), a 64-bit `leafvec` (bit `i`: a new run of equal leaves starts at slot
//!   `i`, counting only the slots that are leaves), `base1` (the node number of its first
//!   child) and `base0` (the word index of its first leaf). A node's children are consecutive
//!   nodes, its leaves consecutive words, so a slot's child or leaf is found by counting set
//!   bits below it ([`popcount`]);
//! * **leaves**: one word each, [`EMPTY`] or evidence group index + 1. A node with at most four
//!   leaf runs whose values fit 16 bits keeps them **inline**, in its last two words
//!   ([`Node::inline`], `base0` = 0): no leaf words, and the lookup ends without another read.
//!   Most nodes of a host route or a /24 are such nodes.
//!
//! The agent lays each direct entry's subtree out as one block (its nodes, then their leaves,
//! rounded up to a node boundary), so a changed subtree is rebuilt in free space and switched
//! in with one store of its direct entry.
//!
//! Longest match is resolved when the trie is built (every slot carries the most specific
//! prefix covering it, or an internal node), so a lookup walks straight down and stops at the
//! first leaf: no backtracking. The walk is bounded: 16 + 6 x 3 = 34 bits cover IPv4
//! ([`V4_MAX_LEVELS`]), 16 + 6 x 19 = 130 bits IPv6 ([`V6_MAX_LEVELS`]); the bits past an
//! address's end read as zero. A lookup reads the direct word, then one node per level, then one
//! leaf: IPv4 in 1 to 5 reads, all in one map.
//!
//! Addresses are looked up as numbers: the big-endian (network order) bytes read as `u32` (IPv4)
//! or as two `u64` halves (IPv6, `hi` = bytes 0..8), walked as a left-aligned 128-bit key (IPv4
//! `hi` = `addr << 32`). Because 64 - 16 is a multiple of 6, no stride straddles the halves.
//!
//! Word encoding of the direct array (host byte order):
//! * `0` ([`EMPTY`]): no prefix covers this address;
//! * bit 31 set ([`CHILD`]): the root node of this /16's subtree, its number in the low 31 bits;
//! * otherwise: evidence group index + 1 (the agent's group table, `EMB_GROUPS`, maps the group
//!   to its entity; a table built for a test may hold entity indices instead).
//!
//! BPF has no popcount instruction: [`popcount`] is the SWAR one (shifts, masks and one
//! multiply, no loads).
//!
//! An IPv6 address that carries an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`) is the IPv4 host: both programs look it up in the IPv4 trie first, then in the
//! IPv6 trie ([`lookup_v6_or_v4`]), and the agent's `why` answers the same way.

/// Words per map value.
pub const LANES: u32 = 16;
/// One map value: [`LANES`] consecutive words.
pub type Chunk = [u32; LANES as usize];
const _: () = assert!(size_of::<Chunk>() == 64);

/// Entry value meaning "no match".
pub const EMPTY: u32 = 0;
/// Bit marking a direct entry as a subtree's root node.
pub const CHILD: u32 = 1 << 31;
/// Mask of a node number, or of a group index + 1.
pub const PAYLOAD: u32 = !CHILD;
/// Largest group index an entry can carry.
pub const MAX_GROUP: u32 = PAYLOAD - 1;

/// Bits of the address that index the direct array.
pub const DIRECT_BITS: u32 = 16;
/// Words of each family's direct array.
pub const DIRECT_ENTRIES: u32 = 1 << DIRECT_BITS;
/// Bits of the address each node level consumes.
pub const STRIDE: u32 = 6;
/// Slots per node.
pub const SLOTS: u32 = 1 << STRIDE;
/// Words per node.
pub const NODE_WORDS: u32 = 8;
/// The first node number past the direct array.
pub const FIRST_NODE: u32 = DIRECT_ENTRIES / NODE_WORDS;
/// Node levels under the direct array that cover IPv4 (16 + 18 >= 32).
pub const V4_MAX_LEVELS: u32 = (32 - DIRECT_BITS).div_ceil(STRIDE);
/// Node levels under the direct array that cover IPv6 (16 + 114 >= 128).
pub const V6_MAX_LEVELS: u32 = (128 - DIRECT_BITS).div_ceil(STRIDE);

// No stride straddles the two u64 halves of a key; nodes never straddle a chunk.
const _: () = assert!((64 - DIRECT_BITS).is_multiple_of(STRIDE));
const _: () = assert!(V4_MAX_LEVELS == 3 && V6_MAX_LEVELS == 19);
const _: () = assert!(LANES.is_multiple_of(NODE_WORDS));

/// One trie node, as read from its [`NODE_WORDS`] words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Bit `i`: slot `i` is an internal node, the `popcount(vector & ((2 << i) - 1))`-th child
    /// from `base1`.
    pub vector: u64,
    /// Bit `i`: slot `i` is a leaf that starts a new run of leaves (slots that are internal
    /// nodes are skipped); slot `i`'s leaf is the `popcount(leafvec & ((2 << i) - 1))`-th word
    /// from `base0`.
    pub leafvec: u64,
    /// Node number of the first child.
    pub base1: u32,
    /// Word index of the first leaf; 0 (the direct array's first word, never a leaf): the
    /// leaves are [`Node::inline`].
    pub base0: u32,
    /// With `base0` = 0: up to four leaf values of 16 bits, the `k`-th run's in bits
    /// `16k .. 16k + 16`.
    pub inline: u64,
}

impl Node {
    /// The node's words: `vector` (low, high), `leafvec` (low, high), `base1`, `base0`, 0, 0.
    pub const fn to_words(&self) -> [u32; NODE_WORDS as usize] {
        [
            self.vector as u32,
            (self.vector >> 32) as u32,
            self.leafvec as u32,
            (self.leafvec >> 32) as u32,
            self.base1,
            self.base0,
            self.inline as u32,
            (self.inline >> 32) as u32,
        ]
    }

    /// Node `n` from the chunk that holds it (chunk `n / 2`), with three 64-bit loads: a BPF
    /// array's values are 8-byte aligned and the target is little-endian, so the low word of
    /// each pair is its first.
    #[cfg(target_arch = "bpf")]
    #[inline(always)]
    pub fn read(chunk: &Chunk, n: u32) -> Self {
        let p = chunk.as_ptr().cast::<u64>();
        let h = ((n & 1) * 4) as usize;
        // SAFETY: `h + 3 < 8`, within the 64-byte chunk; the kernel aligns map values to 8.
        let (vector, leafvec, bases, inline) =
            unsafe { (*p.add(h), *p.add(h + 1), *p.add(h + 2), *p.add(h + 3)) };
        Self {
            vector,
            leafvec,
            base1: bases as u32,
            base0: (bases >> 32) as u32,
            inline,
        }
    }

    /// Node `n` from the chunk that holds it (chunk `n / 2`).
    #[cfg(not(target_arch = "bpf"))]
    #[inline(always)]
    pub fn read(chunk: &Chunk, n: u32) -> Self {
        let h = ((n & 1) * NODE_WORDS) as usize;
        Self {
            vector: u64::from(chunk[h]) | (u64::from(chunk[h + 1]) << 32),
            leafvec: u64::from(chunk[h + 2]) | (u64::from(chunk[h + 3]) << 32),
            base1: chunk[h + 4],
            base0: chunk[h + 5],
            inline: u64::from(chunk[h + 6]) | (u64::from(chunk[h + 7]) << 32),
        }
    }
}

/// Reads word `index` through `get_chunk` (a map lookup in the kernel); `None` past the end.
#[inline(always)]
pub fn read_entry<'a>(index: u32, get_chunk: impl Fn(u32) -> Option<&'a Chunk>) -> Option<u32> {
    get_chunk(index / LANES).map(|c| c[(index % LANES) as usize])
}

/// Chunk `c` of a flat word array (user space): `None` past the end.
#[inline(always)]
pub fn chunk_of(words: &[u32], c: u32) -> Option<&Chunk> {
    let start = (c as usize).checked_mul(LANES as usize)?;
    words.get(start..start + LANES as usize)?.try_into().ok()
}

/// Entry value for group index `group`.
#[inline(always)]
pub const fn leaf(group: u32) -> u32 {
    group + 1
}

/// Direct entry value for the subtree whose root is node `node`.
#[inline(always)]
pub const fn child(node: u32) -> u32 {
    node | CHILD
}

/// The group index of a leaf entry, `None` for [`EMPTY`]. Must not be called on a child.
#[inline(always)]
pub const fn group_of(entry: u32) -> Option<u32> {
    if entry == EMPTY {
        None
    } else {
        Some(entry - 1)
    }
}

/// Set bits in `x`, SWAR style (no table, no popcount instruction).
#[inline(always)]
pub const fn popcount(x: u64) -> u32 {
    let x = x - ((x >> 1) & 0x5555_5555_5555_5555);
    let x = (x & 0x3333_3333_3333_3333) + ((x >> 2) & 0x3333_3333_3333_3333);
    let x = (x + (x >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (x.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// Mask of bits `0..=i` (`(2 << i) - 1` without overflow at 63).
#[inline(always)]
pub const fn upto(i: u32) -> u64 {
    ((1u64 << i) << 1).wrapping_sub(1)
}

/// The 6-bit slot of a key at bit offset `off` (16, 22, ...; counted from the top of `hi`).
#[inline(always)]
pub const fn slot(hi: u64, lo: u64, off: u32) -> u32 {
    let (half, o) = if off < 64 { (hi, off) } else { (lo, off - 64) };
    let v = if o <= 64 - STRIDE {
        half >> (64 - STRIDE - o)
    } else {
        half << (o - (64 - STRIDE))
    };
    (v & (SLOTS as u64 - 1)) as u32
}

/// What one node says about one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Go on to this node.
    Node(u32),
    /// Stop: the entry is the word at this index.
    Leaf(u32),
    /// Stop: the entry is this (an inline leaf).
    Value(u32),
}

/// Where `node`'s slot `s` leads. On a malformed node (a leaf slot with no run started at or
/// below it) the index wraps to `u32::MAX`, which no map holds: the read fails, no match (an
/// inline node past its fourth run answers [`EMPTY`]).
#[inline(always)]
pub const fn step(node: &Node, s: u32) -> Step {
    let bit = 1u64 << s;
    let mask = upto(s);
    if node.vector & bit != 0 {
        Step::Node(
            node.base1
                .wrapping_add(popcount(node.vector & mask))
                .wrapping_sub(1),
        )
    } else {
        let k = popcount(node.leafvec & mask).wrapping_sub(1);
        if node.base0 != 0 {
            Step::Leaf(node.base0.wrapping_add(k))
        } else if k < 4 {
            Step::Value(((node.inline >> (k * 16)) & 0xffff) as u32)
        } else {
            Step::Value(EMPTY)
        }
    }
}

/// Looks a key (`hi`, `lo`) up, walking at most `max_levels` nodes. `chunk` reads one chunk of
/// the family's array (a map lookup in the kernel, [`chunk_of`] in user space); a failed read
/// ends the walk with no match. Returns the entry found: [`EMPTY`] or group index + 1.
#[inline(always)]
pub fn lookup<'a>(
    hi: u64,
    lo: u64,
    max_levels: u32,
    chunk: impl Fn(u32) -> Option<&'a Chunk>,
) -> u32 {
    let entry = match read_entry((hi >> (64 - DIRECT_BITS)) as u32, &chunk) {
        Some(e) => e,
        None => return EMPTY,
    };
    if entry & CHILD == 0 {
        return entry;
    }
    let mut index = entry & PAYLOAD;
    let mut off = DIRECT_BITS;
    let mut level = 0;
    while level < max_levels {
        let n = match chunk(index / 2) {
            Some(c) => Node::read(c, index),
            None => return EMPTY,
        };
        match step(&n, slot(hi, lo, off)) {
            Step::Node(i) => index = i,
            Step::Leaf(i) => {
                return match read_entry(i, &chunk) {
                    Some(e) => e,
                    None => EMPTY,
                };
            }
            Step::Value(v) => return v,
        }
        off += STRIDE;
        level += 1;
    }
    EMPTY
}

/// Looks an IPv4 address (as a number, network order read big-endian) up; see [`lookup`].
#[inline(always)]
pub fn lookup_v4<'a>(addr: u32, chunk: impl Fn(u32) -> Option<&'a Chunk>) -> u32 {
    lookup(u64::from(addr) << 32, 0, V4_MAX_LEVELS, chunk)
}

/// Looks an IPv6 address (`hi`, `lo` halves) up; see [`lookup`].
#[inline(always)]
pub fn lookup_v6<'a>(hi: u64, lo: u64, chunk: impl Fn(u32) -> Option<&'a Chunk>) -> u32 {
    lookup(hi, lo, V6_MAX_LEVELS, chunk)
}

/// The IPv4 address an IPv6 address (`hi`, `lo` halves) carries: IPv4-mapped
/// (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2) or IPv4-compatible (`::a.b.c.d`, the deprecated form of
/// RFC 4291 2.5.5.1), except `::` (unspecified) and `::1` (loopback), which are IPv6's own.
#[inline(always)]
pub const fn embedded_v4(hi: u64, lo: u64) -> Option<u32> {
    if hi != 0 {
        return None;
    }
    let top = lo >> 32;
    if top == 0xffff || (top == 0 && lo > 1) {
        Some(lo as u32)
    } else {
        None
    }
}

/// Looks an IPv6 address up the way both programs do: an address carrying an IPv4 one
/// ([`embedded_v4`]) in the IPv4 trie (`chunk_v4`) first, and, if that finds nothing (or it
/// carries none), in the IPv6 trie (`chunk_v6`), so a policy listing `::ffff:0:0/96` prefixes
/// in IPv6 form still matches. The entry found, [`EMPTY`] for none.
#[inline(always)]
pub fn lookup_v6_or_v4<'a, 'b>(
    hi: u64,
    lo: u64,
    chunk_v4: impl Fn(u32) -> Option<&'a Chunk>,
    chunk_v6: impl Fn(u32) -> Option<&'b Chunk>,
) -> u32 {
    if let Some(v4) = embedded_v4(hi, lo) {
        let entry = lookup_v4(v4, chunk_v4);
        if entry != EMPTY {
            return entry;
        }
    }
    lookup_v6(hi, lo, chunk_v6)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;

    fn halves(a: u128) -> (u64, u64) {
        ((a >> 64) as u64, a as u64)
    }

    #[test]
    fn swar_popcount_matches_the_instruction() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            assert_eq!(popcount(x), x.count_ones());
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        for x in [0, 1, u64::MAX, 1 << 63, u64::MAX >> 1] {
            assert_eq!(popcount(x), x.count_ones());
        }
    }

    #[test]
    fn upto_covers_bits_through_i() {
        assert_eq!(upto(0), 1);
        assert_eq!(upto(5), 0b11_1111);
        assert_eq!(upto(63), u64::MAX);
    }

    #[test]
    fn slots_cover_the_key_left_to_right_and_pad_with_zeros() {
        let hi = 0x0123_4567_89ab_cdefu64;
        let lo = 0xfedc_ba98_7654_3210u64;
        let key = (u128::from(hi) << 64) | u128::from(lo);
        let mut off = DIRECT_BITS;
        while off < 128 {
            // Bits off..off+6 of the key extended with zeros past bit 128.
            let want = if off + STRIDE <= 128 {
                (key >> (128 - STRIDE - off)) as u32 & (SLOTS - 1)
            } else {
                ((key << (off + STRIDE - 128)) as u32) & (SLOTS - 1)
            };
            assert_eq!(slot(hi, lo, off), want, "offset {off}");
            off += STRIDE;
        }
        // IPv4: the last level reads 4 address bits and 2 zero bits.
        let a = 0xc000_020fu32;
        assert_eq!(slot(u64::from(a) << 32, 0, 28), 0b11_1100);
    }

    #[test]
    fn steps_count_children_and_leaf_runs_below_the_slot() {
        let n = Node {
            vector: 0b1010_0000,
            leafvec: 0b0100_0101, // runs start at 0, 2 and 6 (5 and 7 are children)
            base1: 100,
            base0: 10,
            inline: 0,
        };
        assert_eq!(step(&n, 0), Step::Leaf(10));
        assert_eq!(step(&n, 1), Step::Leaf(10));
        assert_eq!(step(&n, 2), Step::Leaf(11));
        assert_eq!(step(&n, 4), Step::Leaf(11));
        assert_eq!(step(&n, 5), Step::Node(100));
        assert_eq!(step(&n, 6), Step::Leaf(12));
        assert_eq!(step(&n, 7), Step::Node(101));
        assert_eq!(step(&n, 63), Step::Leaf(12));
        // The same runs inline: values 7, 8 and 9.
        let i = Node {
            base0: 0,
            inline: 7 | (8 << 16) | (9 << 32),
            ..n
        };
        assert_eq!(step(&i, 1), Step::Value(7));
        assert_eq!(step(&i, 4), Step::Value(8));
        assert_eq!(step(&i, 5), Step::Node(100));
        assert_eq!(step(&i, 63), Step::Value(9));
        // A malformed inline node (a fifth run) answers no match.
        let bad = Node {
            leafvec: 0b1_1111,
            vector: 0,
            ..i
        };
        assert_eq!(step(&bad, 3), Step::Value(0));
        assert_eq!(step(&bad, 4), Step::Value(EMPTY));
    }

    #[test]
    fn nodes_read_back_from_either_half_of_a_chunk() {
        let n = Node {
            vector: 0x8000_0000_0000_0001,
            leafvec: 0x1234_5678_9abc_def0,
            base1: 70_000,
            base0: 600_000,
            inline: 0xfedc_ba98_7654_3210,
        };
        let mut c: Chunk = [0; LANES as usize];
        c[8..].copy_from_slice(&n.to_words());
        assert_eq!(Node::read(&c, 9), n);
        assert_eq!(Node::read(&c, 8), Node::default());
        let words: [u32; 32] = core::array::from_fn(|i| i as u32);
        assert_eq!(chunk_of(&words, 1).map(|c| c[0]), Some(16));
        assert_eq!(chunk_of(&words, 2), None);
    }

    #[test]
    fn a_walk_through_one_hand_built_subtree() {
        // 10.0.0.0/16 -> node 8192 (first past the direct array): slot 0 (10.0.0.0/22) goes to
        // a child, every other slot is one run of leaf "group 4"; the child answers group 7.
        let mut w = vec![0u32; (DIRECT_ENTRIES + 48) as usize];
        w[0x0a00] = child(FIRST_NODE);
        let root = Node {
            vector: 1,
            leafvec: 1 << 1,
            base1: FIRST_NODE + 1,
            base0: DIRECT_ENTRIES + 16,
            inline: 0,
        };
        let kid = Node {
            vector: 0,
            leafvec: 1,
            base1: 0,
            base0: DIRECT_ENTRIES + 17,
            inline: 0,
        };
        w[DIRECT_ENTRIES as usize..][..8].copy_from_slice(&root.to_words());
        w[DIRECT_ENTRIES as usize + 8..][..8].copy_from_slice(&kid.to_words());
        w[(DIRECT_ENTRIES + 16) as usize] = leaf(4);
        w[(DIRECT_ENTRIES + 17) as usize] = leaf(7);
        let get = |c| chunk_of(&w, c);
        assert_eq!(lookup_v4(0x0a00_0001, get), leaf(7));
        assert_eq!(lookup_v4(0x0a00_0401, get), leaf(4));
        assert_eq!(lookup_v4(0x0a01_0000, get), EMPTY);
        // IPv4-mapped IPv6 addresses are looked up in the IPv4 array.
        let (hi, lo) = halves(0xffff_0a00_0001);
        assert_eq!(lookup_v6_or_v4(hi, lo, get, |_| None), leaf(7));
    }

    #[test]
    fn embedded_v4_addresses() {
        let v4 = 0x0a01_0203u128; // 10.1.2.3
        let cases = [
            (0xffff_0000_0000 | v4, Some(0x0a01_0203)), // ::ffff:10.1.2.3
            (v4, Some(0x0a01_0203)),                    // ::10.1.2.3
            (0xffff_0000_0000, Some(0)),                // ::ffff:0.0.0.0
            (2, Some(2)),                               // ::0.0.0.2
            (0, None),                                  // ::
            (1, None),                                  // ::1
            (0xfffe_0000_0000 | v4, None),              // ::fffe:10.1.2.3
            (0x1_0000_0000 | v4, None),                 // ::1:10.1.2.3
            (0xffff_0000_0000_0000 | v4, None),         // ::ffff:0:10.1.2.3 (SIIT, not mapped)
            ((0x2001_0db8u128 << 96) | v4, None),
            ((1u128 << 64) | 0xffff_0000_0000 | v4, None),
        ];
        for (addr, want) in cases {
            let (hi, lo) = halves(addr);
            assert_eq!(embedded_v4(hi, lo), want, "{addr:#x}");
        }
    }

    #[test]
    fn embedded_addresses_try_the_v4_trie_first_then_the_v6_trie() {
        // Arrays standing in for tries: every direct word holds group 1 (IPv4), 2 (IPv6), or
        // nothing.
        let v4_hit = vec![leaf(1); DIRECT_ENTRIES as usize];
        let v6_hit = vec![leaf(2); DIRECT_ENTRIES as usize];
        let none = vec![EMPTY; DIRECT_ENTRIES as usize];
        fn f<'a>(w: &'a [u32]) -> impl Fn(u32) -> Option<&'a Chunk> {
            move |c| chunk_of(w, c)
        }
        let (hi, lo) = halves(0xffff_0a01_0203);
        assert_eq!(lookup_v6_or_v4(hi, lo, f(&v4_hit), f(&v6_hit)), leaf(1));
        assert_eq!(lookup_v6_or_v4(hi, lo, f(&none), f(&v6_hit)), leaf(2));
        assert_eq!(lookup_v6_or_v4(hi, lo, f(&none), f(&none)), EMPTY);
        let (hi, lo) = halves(1);
        assert_eq!(
            lookup_v6_or_v4(hi, lo, f(&v4_hit), f(&none)),
            EMPTY,
            "::1 is IPv6"
        );
        let (hi, lo) = halves(0x2001_0db8 << 96);
        assert_eq!(lookup_v6_or_v4(hi, lo, f(&v4_hit), f(&v6_hit)), leaf(2));
    }
}
