//! The stride trie both sides share: its layout, its entry encoding and its lookup walk.
//!
//! Each address family has one flat array of `u32` entries, stored in an mmap-able BPF array
//! map whose values are [`Chunk`]s of [`LANES`] entries: the kernel pads every array value to
//! 8 bytes, so 4-byte values would waste half the map and break the flat `mmap` layout; 64-byte
//! chunks have no padding, are one cache line, and hold exactly one IPv4 node.
//!
//! ```text
//! [ root: 2^ROOT_BITS entries ][ node 0: 2^STRIDE entries ][ node 1 ] ...
//! ```
//!
//! The root is indexed directly by the address's top `ROOT_BITS` bits (DIR-24-8 style); each
//! node by the next `STRIDE` bits. Prefixes are expanded to the stride grid and pushed to the
//! leaves, so a lookup stops at the first entry that is not a child pointer and that entry is
//! the most specific match. A lookup costs one array load per level: 1 to 3 for IPv4 and
//! 1 to [`V6_MAX_LEVELS`] + 1 for IPv6, with no hashing and no branches on prefix length.
//!
//! Entry encoding (host byte order):
//! * `0`: no prefix covers this address;
//! * bit 31 set: a child node, its number in the low 31 bits;
//! * otherwise: evidence group index + 1 (the agent's group table, `EMB_GROUPS`, maps the group to
//!   its entity; a table built for a test may hold entity indices instead).
//!
//! Addresses are looked up as numbers: the big-endian (network order) bytes read as `u32` (IPv4)
//! or as two `u64` halves (IPv6, `hi` = bytes 0..8).
//!
//! An IPv6 address that carries an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`) is the IPv4 host: both programs look it up in the IPv4 trie first, then in the
//! IPv6 trie ([`lookup_v6_or_v4`]), and the agent's `why` answers the same way.

/// Entries per map value.
pub const LANES: u32 = 16;
/// One map value: [`LANES`] consecutive entries.
pub type Chunk = [u32; LANES as usize];
const _: () = assert!(size_of::<Chunk>() == 64);

/// Reads entry `index` from a map of [`Chunk`]s through `get_chunk` (a map lookup in the
/// kernel); `None` past the end.
#[inline(always)]
pub fn read_entry<'a>(index: u32, get_chunk: impl Fn(u32) -> Option<&'a Chunk>) -> Option<u32> {
    get_chunk(index / LANES).map(|c| c[(index % LANES) as usize])
}

/// Entry value meaning "no match".
pub const EMPTY: u32 = 0;
/// Bit marking an entry as a child pointer.
pub const CHILD: u32 = 1 << 31;
/// Mask of a child's node number, or of a group index + 1.
pub const PAYLOAD: u32 = !CHILD;
/// Largest group index an entry can carry.
pub const MAX_GROUP: u32 = PAYLOAD - 1;

/// IPv4: the root covers /24 (16 Mi entries, 64 MiB); nodes of 16 entries (one 64-byte chunk).
pub const V4_ROOT_BITS: u32 = 24;
pub const V4_STRIDE: u32 = 4;
pub const V4_MAX_LEVELS: u32 = (32 - V4_ROOT_BITS) / V4_STRIDE;

/// IPv6: the root covers /24 (64 MiB); nodes of 256 entries (1 KiB). Typical /32../48 routes
/// resolve in 1 to 3 loads; a /128 in 14.
pub const V6_ROOT_BITS: u32 = 24;
pub const V6_STRIDE: u32 = 8;
pub const V6_MAX_LEVELS: u32 = (128 - V6_ROOT_BITS) / V6_STRIDE;

const _: () = assert!((32 - V4_ROOT_BITS).is_multiple_of(V4_STRIDE));
// Roots and nodes start on chunk boundaries.
const _: () =
    assert!((1u32 << V4_STRIDE).is_multiple_of(LANES) || LANES.is_multiple_of(1 << V4_STRIDE));
const _: () = assert!((128 - V6_ROOT_BITS).is_multiple_of(V6_STRIDE));
// A node index never straddles the two u64 halves of an IPv6 address.
const _: () = assert!((64 - V6_ROOT_BITS).is_multiple_of(V6_STRIDE));

/// Entry value for group index `group`.
#[inline(always)]
pub const fn leaf(group: u32) -> u32 {
    group + 1
}

/// Entry value for child node number `node`.
#[inline(always)]
pub const fn child(node: u32) -> u32 {
    node | CHILD
}

/// The group index of a leaf entry, `None` for [`EMPTY`]. Must not be called on a child.
#[inline(always)]
pub const fn group_of(entry: u32) -> Option<u32> {
    entity_of(entry)
}

/// The payload of a leaf entry, `None` for [`EMPTY`]: what [`group_of`] returns, for tables a
/// test built with entity indices as their payload. Must not be called on a child.
#[inline(always)]
pub const fn entity_of(entry: u32) -> Option<u32> {
    if entry == EMPTY {
        None
    } else {
        Some(entry - 1)
    }
}

/// Array index of slot `slot` in child node `node`.
#[inline(always)]
pub const fn node_slot(root_bits: u32, stride: u32, node: u32, slot: u32) -> u32 {
    (1 << root_bits) + (node << stride) + slot
}

/// Looks `addr` up in an IPv4 trie. `fetch` reads one array entry (a map lookup in the kernel,
/// a slice index in user space); a failed read ends the walk with no match.
#[inline(always)]
pub fn lookup_v4(addr: u32, fetch: impl Fn(u32) -> Option<u32>) -> u32 {
    let mut entry = match fetch(addr >> (32 - V4_ROOT_BITS)) {
        Some(e) => e,
        None => return EMPTY,
    };
    let mut shift = 32 - V4_ROOT_BITS;
    let mut level = 0;
    while level < V4_MAX_LEVELS {
        if entry & CHILD == 0 {
            return entry;
        }
        shift -= V4_STRIDE;
        let slot = (addr >> shift) & ((1 << V4_STRIDE) - 1);
        entry = match fetch(node_slot(V4_ROOT_BITS, V4_STRIDE, entry & PAYLOAD, slot)) {
            Some(e) => e,
            None => return EMPTY,
        };
        level += 1;
    }
    if entry & CHILD == 0 { entry } else { EMPTY }
}

/// Looks an IPv6 address (`hi`, `lo` halves) up in an IPv6 trie; see [`lookup_v4`].
#[inline(always)]
pub fn lookup_v6(hi: u64, lo: u64, fetch: impl Fn(u32) -> Option<u32>) -> u32 {
    let mut entry = match fetch((hi >> (64 - V6_ROOT_BITS)) as u32) {
        Some(e) => e,
        None => return EMPTY,
    };
    let mut pos = V6_ROOT_BITS;
    let mut level = 0;
    while level < V6_MAX_LEVELS {
        if entry & CHILD == 0 {
            return entry;
        }
        let slot = if pos < 64 {
            (hi >> (64 - V6_STRIDE - pos)) as u32
        } else {
            (lo >> (128 - V6_STRIDE - pos)) as u32
        } & ((1 << V6_STRIDE) - 1);
        entry = match fetch(node_slot(V6_ROOT_BITS, V6_STRIDE, entry & PAYLOAD, slot)) {
            Some(e) => e,
            None => return EMPTY,
        };
        pos += V6_STRIDE;
        level += 1;
    }
    if entry & CHILD == 0 { entry } else { EMPTY }
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
/// ([`embedded_v4`]) in the IPv4 trie (`fetch_v4`) first, and, if that finds nothing (or it
/// carries none), in the IPv6 trie (`fetch_v6`), so a policy listing `::ffff:0:0/96` prefixes
/// in IPv6 form still matches. The entry found, [`EMPTY`] for none.
#[inline(always)]
pub fn lookup_v6_or_v4(
    hi: u64,
    lo: u64,
    fetch_v4: impl Fn(u32) -> Option<u32>,
    fetch_v6: impl Fn(u32) -> Option<u32>,
) -> u32 {
    if let Some(v4) = embedded_v4(hi, lo) {
        let entry = lookup_v4(v4, fetch_v4);
        if entry != EMPTY {
            return entry;
        }
    }
    lookup_v6(hi, lo, fetch_v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(a: u128) -> (u64, u64) {
        ((a >> 64) as u64, a as u64)
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
        // Fetchers standing in for tries: every IPv4 root slot holds entity 1, every IPv6 one
        // entity 2, or nothing.
        let v4_hit = |_: u32| Some(leaf(1));
        let v6_hit = |_: u32| Some(leaf(2));
        let none = |_: u32| Some(EMPTY);
        let (hi, lo) = halves(0xffff_0a01_0203);
        assert_eq!(lookup_v6_or_v4(hi, lo, v4_hit, v6_hit), leaf(1));
        assert_eq!(lookup_v6_or_v4(hi, lo, none, v6_hit), leaf(2));
        assert_eq!(lookup_v6_or_v4(hi, lo, none, none), EMPTY);
        let (hi, lo) = halves(1);
        assert_eq!(lookup_v6_or_v4(hi, lo, v4_hit, none), EMPTY, "::1 is IPv6");
        let (hi, lo) = halves(0x2001_0db8 << 96);
        assert_eq!(lookup_v6_or_v4(hi, lo, v4_hit, v6_hit), leaf(2));
    }
}
