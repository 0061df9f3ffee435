//! In-place updates of a loaded trie, entry by entry, so a reload never opens a gap.
//!
//! The kernel reads the trie while we change it. Every change is a single aligned `u32` store,
//! and the order of stores keeps each address's answer either the old one or the new one:
//! * a region is recomputed from the new prefix set and only entries whose value changes are
//!   written, each straight from its old to its new value;
//! * a new child node is filled completely while it is unreachable, then linked with one store;
//! * a node that is unlinked keeps its content and is only reused at the next update (by then
//!   no XDP program run that could have read the old link is still going: runs last
//!   microseconds, reloads are seconds apart).
//!
//! So an address blocked before and after an update is blocked throughout, and one allowed
//! before and after is never dropped. Work is proportional to the changed prefixes' regions,
//! not to the size of the table. Node capacity is checked before anything is written: an
//! update that might not fit is refused whole ([`NeedsRebuild`]) and the caller loads a new
//! generation instead.

use std::collections::BTreeMap;

use embargo_abi::trie;

use crate::dataplane::trie::build::Shape;

/// Where trie entries live: the kernel map through `mmap`, or a vector in tests.
pub trait Store {
    fn get(&self, index: usize) -> u32;
    /// One atomic store.
    fn set(&mut self, index: usize, value: u32);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for Vec<u32> {
    fn get(&self, index: usize) -> u32 {
        self[index]
    }
    fn set(&mut self, index: usize, value: u32) {
        self[index] = value;
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

/// The update would need more nodes than the map holds, or a root it does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{family} trie: {reason}")]
pub struct NeedsRebuild {
    pub family: &'static str,
    pub reason: String,
}

/// One prefix change: `entity` `None` removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The network address, right-aligned in the family's width.
    pub addr: u128,
    pub len: u8,
    pub entity: Option<u32>,
}

/// What an update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    pub entries_written: u64,
    pub nodes_allocated: u64,
    pub nodes_released: u64,
}

/// A trie being kept up to date: the prefix set it encodes and its node bookkeeping. The
/// entries themselves are in a [`Store`].
#[derive(Debug)]
pub struct LiveTrie {
    shape: &'static Shape,
    /// (network, length) -> entity index.
    prefixes: BTreeMap<(u128, u8), u32>,
    /// Node numbers free to reuse now.
    free: Vec<u32>,
    /// Node numbers unlinked by the last update: free from the next one on.
    quarantine: Vec<u32>,
    /// Nodes below this were handed out at some point.
    next_node: u32,
    /// Nodes the store has room for.
    capacity: u32,
    /// Whether the store holds the root at all (an empty family is loaded without one).
    has_root: bool,
    /// The prefix set's edits since [`LiveTrie::take_log`] last looked; `None` before it
    /// first looks (nothing is recorded then).
    log: Option<Vec<PrefixEdit>>,
}

/// One edit of a prefix set: `(network, length)` maps to `Some(entity)`, or is removed (`None`).
pub type PrefixEdit = ((u128, u8), Option<u32>);

/// What a [`LiveTrie`]'s prefix set became since [`LiveTrie::take_log`] last looked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixLog {
    /// The whole set (the first look).
    All(BTreeMap<(u128, u8), u32>),
    /// The edits made since, in order.
    Edits(Vec<PrefixEdit>),
}

impl PrefixLog {
    /// Brings `set` (what the previous look described) up to date; `All` replaces it.
    pub fn apply_to(self, set: &mut BTreeMap<(u128, u8), u32>) {
        match self {
            Self::All(all) => *set = all,
            Self::Edits(edits) => {
                for (key, entity) in edits {
                    match entity {
                        Some(e) => set.insert(key, e),
                        None => set.remove(&key),
                    };
                }
            }
        }
    }
}

/// A [`LiveTrie`]'s node bookkeeping, persisted beside the pinned maps so a restarted agent
/// can go on updating the same trie (see [`crate::dataplane::state`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bookkeeping {
    pub free: Vec<u32>,
    pub quarantine: Vec<u32>,
    pub next_node: u32,
    pub capacity: u32,
    pub has_root: bool,
}

impl LiveTrie {
    /// Takes over a trie built by [`crate::dataplane::trie::build`] from `prefixes` with `nodes` nodes, in a store
    /// of `store_len` entries.
    pub fn new(
        shape: &'static Shape,
        prefixes: impl IntoIterator<Item = (u128, u8, u32)>,
        nodes: u32,
        store_len: usize,
    ) -> Self {
        let root = 1usize << shape.root_bits;
        let node_len = 1usize << shape.stride;
        let has_root = store_len >= root;
        let capacity = if has_root {
            ((store_len - root) / node_len) as u32
        } else {
            0
        };
        Self {
            shape,
            prefixes: prefixes.into_iter().map(|(a, l, e)| ((a, l), e)).collect(),
            free: Vec::new(),
            quarantine: Vec::new(),
            next_node: nodes,
            capacity,
            has_root,
            log: None,
        }
    }

    /// The node bookkeeping, to persist.
    pub fn bookkeeping(&self) -> Bookkeeping {
        Bookkeeping {
            free: self.free.clone(),
            quarantine: self.quarantine.clone(),
            next_node: self.next_node,
            capacity: self.capacity,
            has_root: self.has_root,
        }
    }

    /// Takes over a trie a previous agent kept up to date: its prefix set and bookkeeping, in a
    /// store of `store_len` entries. `None` if the bookkeeping does not fit that store (node
    /// numbers past the capacity, a capacity the store does not have).
    pub fn restore(
        shape: &'static Shape,
        prefixes: impl IntoIterator<Item = (u128, u8, u32)>,
        b: Bookkeeping,
        store_len: usize,
    ) -> Option<Self> {
        let fresh = Self::new(shape, [], 0, store_len);
        let nodes_ok = b.free.iter().chain(&b.quarantine).all(|n| *n < b.next_node);
        if fresh.capacity != b.capacity
            || fresh.has_root != b.has_root
            || b.next_node > b.capacity
            || !nodes_ok
            || (b.free.len() + b.quarantine.len()) as u32 > b.next_node
        {
            return None;
        }
        Some(Self {
            shape,
            prefixes: prefixes.into_iter().map(|(a, l, e)| ((a, l), e)).collect(),
            free: b.free,
            quarantine: b.quarantine,
            next_node: b.next_node,
            capacity: b.capacity,
            has_root: b.has_root,
            log: None,
        })
    }

    /// What the prefix set became since the last call: the whole set the first time (a copy,
    /// proportional to the set), then only the edits made since (proportional to the change).
    /// Edits are recorded only once this has been called.
    pub fn take_log(&mut self) -> PrefixLog {
        match self.log.replace(Vec::new()) {
            None => PrefixLog::All(self.prefixes.clone()),
            Some(edits) => PrefixLog::Edits(edits),
        }
    }

    /// Nodes in use (handed out and not free).
    pub fn nodes_in_use(&self) -> u32 {
        self.next_node - self.free.len() as u32 - self.quarantine.len() as u32
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn prefixes(&self) -> &BTreeMap<(u128, u8), u32> {
        &self.prefixes
    }

    fn bits(&self) -> u32 {
        self.shape.addr_bits
    }

    fn mask(&self, addr: u128, len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            let host = self.bits() - len;
            if host >= 128 {
                0
            } else {
                addr & !((1u128 << host) - 1)
            }
        }
    }

    fn slot_bits(&self, addr: u128, from: u32, width: u32) -> usize {
        ((addr >> (self.bits() - from - width)) & ((1u128 << width) - 1)) as usize
    }

    /// The best (longest) entry value among prefixes of lengths `lo..=hi` covering `addr`,
    /// starting from `best`.
    fn best(&self, mut best: u32, addr: u128, lo: u32, hi: u32) -> u32 {
        for l in lo..=hi {
            if let Some(e) = self.prefixes.get(&(self.mask(addr, l), l as u8)) {
                best = trie::leaf(*e);
            }
        }
        best
    }

    /// Whether a prefix longer than `depth` lies inside `(start, depth)`.
    fn any_inside(&self, start: u128, depth: u32) -> bool {
        let span = self.bits() - depth;
        let end = if span >= 128 {
            u128::MAX
        } else {
            start | ((1u128 << span) - 1)
        };
        self.prefixes
            .range((start, (depth + 1) as u8)..=(end, u8::MAX))
            .next()
            .is_some()
    }

    /// Whether `changes` fit: checked before anything is written, for every family, so an
    /// update is applied whole or not at all.
    pub fn check(&self, changes: &[Change]) -> Result<(), NeedsRebuild> {
        let refuse = |reason: String| NeedsRebuild {
            family: self.shape.family,
            reason,
        };
        let adds = changes.iter().filter(|c| c.entity.is_some()).count();
        if adds > 0 && !self.has_root {
            return Err(refuse(
                "the map was loaded without a root (no prefixes of this family)".into(),
            ));
        }
        // Worst case: every added prefix longer than the root needs a node per level.
        let needed: u64 = changes
            .iter()
            .filter(|c| c.entity.is_some() && u32::from(c.len) > self.shape.root_bits)
            .map(|c| {
                u64::from((u32::from(c.len) - self.shape.root_bits).div_ceil(self.shape.stride))
            })
            .sum();
        // Quarantined nodes become free when the update starts.
        let available = (self.free.len() + self.quarantine.len()) as u64
            + u64::from(self.capacity - self.next_node);
        if needed > available {
            return Err(refuse(format!(
                "the update may need {needed} new nodes, {available} are free"
            )));
        }
        Ok(())
    }

    /// Applies `changes` to the prefix set and rewrites the affected regions of `store`.
    pub fn apply(
        &mut self,
        store: &mut impl Store,
        changes: &[Change],
    ) -> Result<UpdateStats, NeedsRebuild> {
        self.check(changes)?;
        // Nodes freed by the previous update are safe to reuse now.
        self.free.append(&mut self.quarantine);
        for c in changes {
            let key = (self.mask(c.addr, u32::from(c.len)), c.len);
            match c.entity {
                Some(e) => self.prefixes.insert(key, e),
                None => self.prefixes.remove(&key),
            };
            if let Some(log) = &mut self.log {
                log.push((key, c.entity));
            }
        }
        let mut stats = UpdateStats::default();
        for c in changes {
            self.rewrite_region(
                store,
                self.mask(c.addr, u32::from(c.len)),
                u32::from(c.len),
                &mut stats,
            );
        }
        Ok(stats)
    }

    /// Recomputes every entry under prefix `(start, len)` from the prefix set.
    fn rewrite_region(
        &mut self,
        store: &mut impl Store,
        start: u128,
        len: u32,
        stats: &mut UpdateStats,
    ) {
        if !self.has_root {
            return;
        }
        let root = self.shape.root_bits;
        if len <= root {
            let first = if root == 0 {
                0
            } else {
                self.slot_bits(start, 0, root)
            };
            let count = 1usize << (root - len);
            let base = self.best(trie::EMPTY, start, 0, len.saturating_sub(1).min(len));
            let base = if len == 0 { trie::EMPTY } else { base };
            for i in 0..count {
                let slot_start = start + ((i as u128) << (self.bits() - root));
                let b = self.best(base, slot_start, len, root);
                self.fill_slot(store, first + i, slot_start, root, b, stats);
            }
            return;
        }
        // Walk down to the node whose slots hold the region.
        let mut index = self.slot_bits(start, 0, root);
        let mut depth = root;
        let mut b = self.best(trie::EMPTY, start, 0, root);
        loop {
            let entry = store.get(index);
            if entry & trie::CHILD == 0 {
                // A leaf covers the region: rebuild this slot's subtree.
                let slot_start = self.mask(start, depth);
                self.fill_slot(store, index, slot_start, depth, b, stats);
                return;
            }
            let slot_start = self.mask(start, depth);
            if !self.any_inside(slot_start, depth) {
                // Nothing below this slot any more: collapse it to a leaf, releasing the nodes.
                self.fill_slot(store, index, slot_start, depth, b, stats);
                return;
            }
            let node = entry & trie::PAYLOAD;
            let next = depth + self.shape.stride;
            if len <= next {
                let first = self.slot_bits(start, depth, self.shape.stride);
                let count = 1usize << (next - len);
                for i in 0..count {
                    let slot_start = start + ((i as u128) << (self.bits() - next));
                    let sb = self.best(b, slot_start, depth + 1, next);
                    let at =
                        trie::node_slot(root, self.shape.stride, node, (first + i) as u32) as usize;
                    self.fill_slot(store, at, slot_start, next, sb, stats);
                }
                return;
            }
            b = self.best(b, start, depth + 1, next);
            index = trie::node_slot(
                root,
                self.shape.stride,
                node,
                self.slot_bits(start, depth, self.shape.stride) as u32,
            ) as usize;
            depth = next;
        }
    }

    /// Sets slot `index`, covering `(start, depth)`, whose best covering value is `b`.
    fn fill_slot(
        &mut self,
        store: &mut impl Store,
        index: usize,
        start: u128,
        depth: u32,
        b: u32,
        stats: &mut UpdateStats,
    ) {
        let old = store.get(index);
        if !self.any_inside(start, depth) {
            if old != b {
                store.set(index, b);
                stats.entries_written += 1;
            }
            if old & trie::CHILD != 0 {
                self.release(store, old & trie::PAYLOAD, stats);
            }
            return;
        }
        let stride = self.shape.stride;
        let (node, fresh) = if old & trie::CHILD != 0 {
            (old & trie::PAYLOAD, false)
        } else {
            let node = self.free.pop().unwrap_or_else(|| {
                self.next_node += 1;
                self.next_node - 1
            });
            debug_assert!(node < self.capacity, "capacity was checked before writing");
            stats.nodes_allocated += 1;
            // Unreachable until linked below: clear it so no stale child pointer is read.
            for j in 0..1u32 << stride {
                store.set(
                    trie::node_slot(self.shape.root_bits, stride, node, j) as usize,
                    trie::EMPTY,
                );
            }
            (node, true)
        };
        for j in 0..1u32 << stride {
            let child_start = start + (u128::from(j) << (self.bits() - depth - stride));
            let cb = self.best(b, child_start, depth + 1, depth + stride);
            let at = trie::node_slot(self.shape.root_bits, stride, node, j) as usize;
            self.fill_slot(store, at, child_start, depth + stride, cb, stats);
        }
        if fresh {
            store.set(index, trie::child(node));
            stats.entries_written += 1;
        }
    }

    /// Puts `node` and its descendants in quarantine; their entries stay as they were.
    fn release(&mut self, store: &impl Store, node: u32, stats: &mut UpdateStats) {
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            self.quarantine.push(n);
            stats.nodes_released += 1;
            for j in 0..1u32 << self.shape.stride {
                let e = store
                    .get(trie::node_slot(self.shape.root_bits, self.shape.stride, n, j) as usize);
                if e & trie::CHILD != 0 {
                    stack.push(e & trie::PAYLOAD);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipnetwork::{Ipv4Network, Ipv6Network};
    use proptest::prelude::*;

    use super::*;
    use crate::dataplane::trie::build::{self, V4, V6};

    fn naive(prefixes: &BTreeMap<(u128, u8), u32>, addr: u128, bits: u32) -> Option<u32> {
        prefixes
            .iter()
            .filter(|((a, l), _)| {
                let host = bits - u32::from(*l);
                let mask = if host >= 128 {
                    0
                } else {
                    !((1u128 << host) - 1)
                };
                (addr & mask) == *a
            })
            .max_by_key(|((_, l), _)| *l)
            .map(|(_, e)| *e)
    }

    fn lookup4(store: &[u32], addr: u32) -> Option<u32> {
        trie::entity_of(trie::lookup_v4(addr, |i| store.get(i as usize).copied()))
    }

    fn lookup6(store: &[u32], addr: u128) -> Option<u32> {
        trie::entity_of(trie::lookup_v6((addr >> 64) as u64, addr as u64, |i| {
            store.get(i as usize).copied()
        }))
    }

    /// A store that checks, after every single write, that sampled addresses whose answer is
    /// the same before and after the update never see anything else in between.
    struct Witness {
        entries: Vec<u32>,
        v6: bool,
        /// (address, the answer before and after)
        stable: Vec<(u128, Option<u32>)>,
        violations: Vec<String>,
    }

    impl Store for Witness {
        fn get(&self, i: usize) -> u32 {
            self.entries[i]
        }
        fn set(&mut self, i: usize, v: u32) {
            self.entries[i] = v;
            for (addr, want) in &self.stable {
                let got = if self.v6 {
                    lookup6(&self.entries, *addr)
                } else {
                    lookup4(&self.entries, *addr as u32)
                };
                // Blocked stays blocked (by any entity); allowed stays allowed.
                if got.is_some() != want.is_some() {
                    self.violations.push(format!(
                        "addr {addr:#x}: {want:?} became {got:?} mid-update"
                    ));
                }
            }
        }
        fn len(&self) -> usize {
            self.entries.len()
        }
    }

    fn v4_prefix() -> impl Strategy<Value = (u128, u8, u32)> {
        (
            0u32..(1 << 20),
            prop::sample::select(vec![8u8, 12, 16, 20, 22, 24, 25, 28, 30, 32]),
            0u32..4,
        )
            .prop_map(|(bits, len, e)| {
                let n = Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 | bits << 4), len).unwrap();
                (embargo_abi::addr::v4(n.network()), len, e)
            })
    }

    fn v6_prefix() -> impl Strategy<Value = (u128, u8, u32)> {
        (
            0u128..(1 << 20),
            prop::sample::select(vec![16u8, 24, 29, 32, 40, 44, 48, 56, 64, 128]),
            0u32..4,
        )
            .prop_map(|(bits, len, e)| {
                let n =
                    Ipv6Network::new(Ipv6Addr::from((0x2001_0db8u128 << 96) | (bits << 88)), len)
                        .unwrap();
                (embargo_abi::addr::v6(n.network()), len, e)
            })
    }

    fn build(v6: bool, set: &BTreeMap<(u128, u8), u32>) -> build::Table {
        if v6 {
            let p: Vec<(Ipv6Network, u32)> = set
                .iter()
                .map(|((a, l), e)| (Ipv6Network::new(Ipv6Addr::from(*a), *l).unwrap(), *e))
                .collect();
            build::build_v6(&p).unwrap()
        } else {
            let p: Vec<(Ipv4Network, u32)> = set
                .iter()
                .map(|((a, l), e)| (Ipv4Network::new(Ipv4Addr::from(*a as u32), *l).unwrap(), *e))
                .collect();
            build::build_v4(&p).unwrap()
        }
    }

    /// Runs `rounds` random updates; after each, every probe agrees with the naive matcher, and
    /// no stable probe changed its answer between any two writes.
    fn run(
        v6: bool,
        initial: Vec<(u128, u8, u32)>,
        rounds: Vec<Vec<(u128, u8, u32, bool)>>,
        probes: Vec<u128>,
    ) -> Result<(), TestCaseError> {
        let shape: &'static Shape = if v6 { &V6 } else { &V4 };
        let bits = shape.addr_bits;
        let mut set: BTreeMap<(u128, u8), u32> =
            initial.iter().map(|(a, l, e)| ((*a, *l), *e)).collect();
        let t = build(v6, &set);
        let headroom = 4096usize << shape.stride;
        let mut entries = t.entries.clone();
        entries.resize(
            entries.len().max(1 << shape.root_bits) + headroom,
            trie::EMPTY,
        );
        let store_len = entries.len();
        let mut live = LiveTrie::new(
            shape,
            set.iter().map(|((a, l), e)| (*a, *l, *e)),
            t.nodes,
            store_len,
        );
        // What the state file's writer keeps: the whole set once, then the edits.
        let mut mirror = BTreeMap::new();
        let first = live.take_log();
        prop_assert!(matches!(first, PrefixLog::All(_)));
        first.apply_to(&mut mirror);
        let mut w = Witness {
            entries,
            v6,
            stable: Vec::new(),
            violations: Vec::new(),
        };
        let base = if v6 {
            0x2001_0db8u128 << 96
        } else {
            0x0a00_0000
        };
        let probes: Vec<u128> = probes
            .into_iter()
            .map(|p| {
                if v6 {
                    base | (p << 80) | 0x1234
                } else {
                    base | (p & 0xff_ffff)
                }
            })
            .collect();
        for (n, round) in rounds.into_iter().enumerate() {
            let mut next = set.clone();
            let mut changes = Vec::new();
            for (a, l, e, remove) in round {
                if remove {
                    if let Some((&k, _)) = next.iter().nth((a % 7) as usize) {
                        next.remove(&k);
                        changes.push(Change {
                            addr: k.0,
                            len: k.1,
                            entity: None,
                        });
                    }
                } else {
                    next.insert((a, l), e);
                    changes.push(Change {
                        addr: a,
                        len: l,
                        entity: Some(e),
                    });
                }
            }
            w.stable = probes
                .iter()
                .filter_map(|&p| {
                    let before = naive(&set, p, bits);
                    let after = naive(&next, p, bits);
                    (before.is_some() == after.is_some()).then_some((p, after))
                })
                .collect();
            live.apply(&mut w, &changes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(
                w.violations.is_empty(),
                "{:?}",
                &w.violations[..w.violations.len().min(3)]
            );
            set = next;
            prop_assert_eq!(live.prefixes(), &set);
            // Every other round, so edits also pile up over two updates.
            if n % 2 == 1 {
                let log = live.take_log();
                prop_assert!(matches!(log, PrefixLog::Edits(_)));
                log.apply_to(&mut mirror);
                prop_assert_eq!(&mirror, &set);
            }
            for &p in &probes {
                let got = if v6 {
                    lookup6(&w.entries, p)
                } else {
                    lookup4(&w.entries, p as u32)
                };
                prop_assert_eq!(got, naive(&set, p, bits), "addr {:#x}", p);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn v4_updates_are_exact_and_hitless(
            initial in prop::collection::vec(v4_prefix(), 0..30),
            rounds in prop::collection::vec(prop::collection::vec((v4_prefix(), prop::bool::weighted(0.4)).prop_map(|((a, l, e), r)| (a, l, e, r)), 1..8), 1..6),
            probes in prop::collection::vec(0u128..(1 << 24), 64),
        ) {
            run(false, initial, rounds, probes)?;
        }

        #[test]
        fn v6_updates_are_exact_and_hitless(
            initial in prop::collection::vec(v6_prefix(), 1..20),
            rounds in prop::collection::vec(prop::collection::vec((v6_prefix(), prop::bool::weighted(0.4)).prop_map(|((a, l, e), r)| (a, l, e, r)), 1..6), 1..4),
            probes in prop::collection::vec(0u128..(1 << 20), 48),
        ) {
            run(true, initial, rounds, probes)?;
        }
    }

    #[test]
    fn capacity_is_checked_before_any_write() {
        let t = build::build_v4(&[("10.0.0.0/8".parse().unwrap(), 0)]).unwrap();
        let mut entries = t.entries.clone();
        let mut live = LiveTrie::new(&V4, [(0x0a00_0000u128, 8u8, 0u32)], t.nodes, entries.len());
        let before = entries.clone();
        let err = live
            .apply(
                &mut entries,
                &[Change {
                    addr: 0x0a01_0203,
                    len: 32,
                    entity: Some(1),
                }],
            )
            .unwrap_err();
        assert!(err.reason.contains("new nodes"), "{err}");
        assert_eq!(entries, before, "nothing written");
        assert_eq!(live.prefixes().len(), 1, "prefix set unchanged");
    }

    #[test]
    fn freed_nodes_are_reused_only_after_the_next_update() {
        let mut entries = vec![trie::EMPTY; (1 << 24) + 16 * 8];
        let mut live = LiveTrie::new(&V4, [], 0, entries.len());
        let host = Change {
            addr: 0x0a01_0203,
            len: 32,
            entity: Some(1),
        };
        let s = live.apply(&mut entries, &[host]).unwrap();
        assert_eq!(s.nodes_allocated, 2);
        let s = live
            .apply(
                &mut entries,
                &[Change {
                    entity: None,
                    ..host
                }],
            )
            .unwrap();
        assert_eq!(s.nodes_released, 2);
        assert_eq!(live.nodes_in_use(), 0);
        // The released nodes keep their content until reused.
        assert_ne!(entries[(1 << 24)..(1 << 24) + 32], [0u32; 32][..]);
        assert_eq!(lookup4(&entries, 0x0a01_0203), None);
    }

    #[test]
    fn a_restored_trie_goes_on_where_the_first_left_off() {
        let mut entries = vec![trie::EMPTY; (1 << 24) + 16 * 8];
        let mut live = LiveTrie::new(&V4, [], 0, entries.len());
        let host = Change {
            addr: 0x0a01_0203,
            len: 32,
            entity: Some(1),
        };
        live.apply(&mut entries, &[host]).unwrap();
        live.apply(
            &mut entries,
            &[Change {
                entity: None,
                ..host
            }],
        )
        .unwrap();
        let kept = live.bookkeeping();
        assert_eq!((kept.next_node, kept.quarantine.len()), (2, 2));
        let prefixes: Vec<(u128, u8, u32)> = live
            .prefixes()
            .iter()
            .map(|((a, l), e)| (*a, *l, *e))
            .collect();
        let mut restored =
            LiveTrie::restore(&V4, prefixes.clone(), kept.clone(), entries.len()).unwrap();
        assert_eq!(restored.bookkeeping(), kept);
        // The quarantined nodes are reused, as the first trie would have: no new node.
        let other = Change {
            addr: 0x0a09_0807,
            len: 32,
            entity: Some(2),
        };
        let s = restored.apply(&mut entries, &[other]).unwrap();
        assert_eq!(s.nodes_allocated, 2);
        assert_eq!(restored.bookkeeping().next_node, 2);
        assert_eq!(lookup4(&entries, 0x0a09_0807), Some(2));
        assert_eq!(lookup4(&entries, 0x0a01_0203), None);
        // Bookkeeping that does not fit the store is refused.
        let past = Bookkeeping {
            next_node: 9,
            ..kept.clone()
        };
        assert!(LiveTrie::restore(&V4, prefixes.clone(), past, entries.len()).is_none());
        assert!(LiveTrie::restore(&V4, prefixes, kept, entries.len() - 16).is_none());
    }
}
