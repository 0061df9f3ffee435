//! The compact trie (issue 13) both sides share: its layout, its entry encoding and its lookup
//! walk. **The next data plane, not yet used**: the XDP and TC programs and the agent's load
//! path still walk the stride trie of [`crate::trie`]; this module and the agent's builder
//! (`agent/src/dataplane/trie/poptrie.rs`) are tested against a longest-match oracle but not
//! wired in yet.
//!
//! A compressed multibit trie in the family of Poptrie (Asai and Ohara, SIGCOMM 2015), sized by
//! the policy instead of by the address space:
//!
//! * a **direct** array of 2^[`DIRECT_BITS`] `u32` entries per family (256 KiB), indexed by the
//!   address's top 16 bits;
//! * **nodes** of 6-bit strides ([`STRIDE`]), each a [`Node`]: a 64-bit `vector` (bit `i`: slot
//!   `i` is an internal node), a 64-bit `leafvec` (bit `i`: a new run of equal leaves starts at
//!   slot `i`, counting only the slots that are leaves), `base1` (the node's first child) and
//!   `base0` (its first leaf). A node's children are consecutive in the node array, its leaves
//!   consecutive in the leaf array, so a slot's child or leaf is found by counting set bits
//!   below it ([`popcount`]);
//! * **leaves**: `u32` entries (entity + 1, or [`EMPTY`]).
//!
//! Longest match is resolved when the trie is built (every slot carries the most specific
//! prefix covering it, or an internal node), so a lookup walks straight down and stops at the
//! first leaf: no backtracking. The walk is bounded: 16 + 6 x 3 = 34 bits cover IPv4
//! ([`V4_MAX_LEVELS`]), 16 + 6 x 19 = 130 bits IPv6 ([`V6_MAX_LEVELS`]); the bits past an
//! address's end read as zero.
//!
//! Addresses are looked up as two `u64` halves of a left-aligned 128-bit key: an IPv6 address
//! as it is (`hi` = bytes 0..8), an IPv4 address as `hi` = `addr << 32`, `lo` = 0. Because
//! 64 - 16 is a multiple of 6, no stride straddles the two halves.
//!
//! Entry encoding of the direct array (host byte order), as in [`crate::trie`]:
//! * `0` ([`EMPTY`]): no prefix covers this address;
//! * bit 31 set ([`CHILD`]): the root node of this /16's subtree, its index in the low 31 bits;
//! * otherwise: entity index + 1.
//!
//! BPF has no popcount instruction: [`popcount`] is the SWAR one (shifts, masks and one
//! multiply, no loads).

pub use crate::trie::{CHILD, EMPTY, PAYLOAD, entity_of, leaf};

/// Bits of the address that index the direct array.
pub const DIRECT_BITS: u32 = 16;
/// Entries in each family's direct array.
pub const DIRECT_ENTRIES: u32 = 1 << DIRECT_BITS;
/// Bits of the address each node level consumes.
pub const STRIDE: u32 = 6;
/// Slots per node.
pub const SLOTS: u32 = 1 << STRIDE;
/// Node levels under the direct array that cover IPv4 (16 + 18 >= 32).
pub const V4_MAX_LEVELS: u32 = (32 - DIRECT_BITS).div_ceil(STRIDE);
/// Node levels under the direct array that cover IPv6 (16 + 114 >= 128).
pub const V6_MAX_LEVELS: u32 = (128 - DIRECT_BITS).div_ceil(STRIDE);

// No stride straddles the two u64 halves of a key.
const _: () = assert!((64 - DIRECT_BITS).is_multiple_of(STRIDE));
const _: () = assert!(V4_MAX_LEVELS == 3 && V6_MAX_LEVELS == 19);

/// One trie node. 24 bytes of content padded to 32, so two share a cache line and the kernel's
/// array map (which pads values to 8 bytes) stores them back to back for `mmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Bit `i`: slot `i` is an internal node, the `popcount(vector & ((2 << i) - 1))`-th child
    /// from `base1`.
    pub vector: u64,
    /// Bit `i`: slot `i` is a leaf that starts a new run of leaves (slots that are internal
    /// nodes are skipped); slot `i`'s leaf is the `popcount(leafvec & ((2 << i) - 1))`-th from
    /// `base0`.
    pub leafvec: u64,
    /// Index of the first child node in the node array.
    pub base1: u32,
    /// Index of the first leaf in the leaf array.
    pub base0: u32,
    pub pad: u64,
}
const _: () = assert!(size_of::<Node>() == 32);

#[cfg(feature = "user")]
// SAFETY: plain old data, `repr(C)`, every bit pattern valid, explicit padding.
unsafe impl aya::Pod for Node {}

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
    /// Stop: the entry is in the leaf array at this index.
    Leaf(u32),
}

/// Where `node`'s slot `s` leads. On a malformed node (a leaf slot with no run started at or
/// below it) the index wraps to `u32::MAX`, which no map holds: the read fails, no match.
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
        Step::Leaf(
            node.base0
                .wrapping_add(popcount(node.leafvec & mask))
                .wrapping_sub(1),
        )
    }
}

/// Looks a key (`hi`, `lo`) up, walking at most `max_levels` nodes. `direct` reads a direct
/// entry, `node` a node, `leaf` a leaf entry (map lookups in the kernel, slice indexing in
/// user space); a failed read ends the walk with no match. Returns the entry found: [`EMPTY`]
/// or entity + 1.
#[inline(always)]
pub fn lookup<'a>(
    hi: u64,
    lo: u64,
    max_levels: u32,
    direct: impl Fn(u32) -> Option<u32>,
    node: impl Fn(u32) -> Option<&'a Node>,
    leaf: impl Fn(u32) -> Option<u32>,
) -> u32 {
    let entry = match direct((hi >> (64 - DIRECT_BITS)) as u32) {
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
        let n = match node(index) {
            Some(n) => n,
            None => return EMPTY,
        };
        match step(n, slot(hi, lo, off)) {
            Step::Node(i) => index = i,
            Step::Leaf(i) => {
                return match leaf(i) {
                    Some(e) => e,
                    None => EMPTY,
                };
            }
        }
        off += STRIDE;
        level += 1;
    }
    EMPTY
}

/// Looks an IPv4 address (as a number, network order read big-endian) up.
#[inline(always)]
pub fn lookup_v4<'a>(
    addr: u32,
    direct: impl Fn(u32) -> Option<u32>,
    node: impl Fn(u32) -> Option<&'a Node>,
    leaf: impl Fn(u32) -> Option<u32>,
) -> u32 {
    lookup(u64::from(addr) << 32, 0, V4_MAX_LEVELS, direct, node, leaf)
}

/// Looks an IPv6 address (`hi`, `lo` halves) up.
#[inline(always)]
pub fn lookup_v6<'a>(
    hi: u64,
    lo: u64,
    direct: impl Fn(u32) -> Option<u32>,
    node: impl Fn(u32) -> Option<&'a Node>,
    leaf: impl Fn(u32) -> Option<u32>,
) -> u32 {
    lookup(hi, lo, V6_MAX_LEVELS, direct, node, leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            pad: 0,
        };
        assert_eq!(step(&n, 0), Step::Leaf(10));
        assert_eq!(step(&n, 1), Step::Leaf(10));
        assert_eq!(step(&n, 2), Step::Leaf(11));
        assert_eq!(step(&n, 4), Step::Leaf(11));
        assert_eq!(step(&n, 5), Step::Node(100));
        assert_eq!(step(&n, 6), Step::Leaf(12));
        assert_eq!(step(&n, 7), Step::Node(101));
        assert_eq!(step(&n, 63), Step::Leaf(12));
    }
}
