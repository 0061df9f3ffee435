//! In-place updates of a loaded compact trie, subtree by subtree, so a reload never opens a
//! gap and costs the change, not the policy.
//!
//! The kernel reads the trie while we change it. A change of prefixes touches some direct
//! entries (one for a prefix longer than /16, `2^(16 - len)` for a shorter one); for each:
//! * its subtree (if prefixes longer than /16 lie under it) is rebuilt from the prefix set
//!   into free space ([`super::space`]), while nothing points at it;
//! * then its direct entry is switched with **one aligned `u32` store**: an address under it
//!   reads the old subtree (or leaf) before the store and the new one after, never a mix;
//! * the old block is quarantined: it keeps its content and is only reused at the next update
//!   (by then no XDP program run that could have read the old entry is still going: runs last
//!   microseconds, under RCU, and reloads are at least milliseconds apart).
//!
//! So an address blocked before and after an update is blocked throughout, and one allowed
//! before and after is never dropped. Work is proportional to the touched subtrees. Space is
//! found for every new block before anything is written ([`LiveTrie::prepare`]): an update
//! that does not fit is refused whole ([`NeedsRebuild`]) and the caller loads a new generation
//! instead.

use std::collections::{BTreeMap, BTreeSet};

use embargo_abi::trie::{CHILD, DIRECT_BITS, EMPTY, FIRST_NODE, NODE_WORDS, PAYLOAD, popcount};

use super::{
    build::{self, Family, Item, Subtree},
    space::Space,
};

/// Where trie words live: the kernel map through `mmap`, or a vector in tests.
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

/// The update would need more room than the map has.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{family} trie: {reason}")]
pub struct NeedsRebuild {
    pub family: &'static str,
    pub reason: String,
}

/// One prefix change: `group` `None` removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The network address, right-aligned in the family's width.
    pub addr: u128,
    pub len: u8,
    pub group: Option<u32>,
}

/// What an update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Words stored (new blocks and direct entries).
    pub entries_written: u64,
    /// Subtrees rebuilt.
    pub subtrees_rebuilt: u64,
    /// Nodes' worth of array taken by new blocks and given up by old ones.
    pub nodes_allocated: u64,
    pub nodes_released: u64,
}

/// One edit of a prefix set: `(network, length)` maps to `Some(group)`, or is removed (`None`).
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
                for (key, group) in edits {
                    match group {
                        Some(g) => set.insert(key, g),
                        None => set.remove(&key),
                    };
                }
            }
        }
    }
}

/// A [`LiveTrie`]'s space bookkeeping, persisted beside the pinned maps so a restarted agent
/// can go on updating the same trie (see [`crate::dataplane::state`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bookkeeping {
    /// Free extents `(first node, nodes)`.
    pub free: Vec<(u32, u32)>,
    /// Extents the last update gave up: free from the next one on.
    pub quarantine: Vec<(u32, u32)>,
    /// Nodes the array holds (the direct array counts as [`FIRST_NODE`] of them).
    pub capacity: u32,
    /// Trie nodes in use.
    pub nodes: u32,
}

/// A trie being kept up to date: the prefix set it encodes and its space. The words themselves
/// are in a [`Store`].
#[derive(Debug)]
pub struct LiveTrie {
    family: Family,
    /// (network, length) -> group index.
    prefixes: BTreeMap<(u128, u8), u32>,
    space: Space,
    /// Extents given up by the last update: free from the next one on.
    quarantine: Vec<(u32, u32)>,
    /// Nodes the array holds.
    capacity: u32,
    /// Trie nodes in use.
    nodes: u32,
    /// The prefix set's edits since [`LiveTrie::take_log`] last looked; `None` before it
    /// first looks (nothing is recorded then).
    log: Option<Vec<PrefixEdit>>,
}

/// An update worked out and given room, not yet written ([`LiveTrie::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    /// What to put back into the prefix set if the update is abandoned.
    undo: Vec<PrefixEdit>,
    /// The edits, for the log.
    edits: Vec<PrefixEdit>,
    /// The space once the new blocks are taken (and the quarantine freed).
    space: Space,
    /// New blocks: first node, words.
    blocks: Vec<(u32, Vec<u32>)>,
    /// Direct entries to switch: index, new value.
    direct: Vec<(u32, u32)>,
    /// Old blocks to quarantine.
    released: Vec<(u32, u32)>,
    nodes_added: u32,
    nodes_removed: u32,
}

impl LiveTrie {
    /// Takes over a trie [`build::build`] built from `prefixes` (`table.used` nodes past the
    /// direct array, `table.nodes` trie nodes), in a store of `store_len` words.
    pub fn new(
        family: Family,
        prefixes: impl IntoIterator<Item = (u128, u8, u32)>,
        table: &build::Table,
        store_len: usize,
    ) -> Self {
        let capacity = (store_len / NODE_WORDS as usize) as u32;
        let first_free = FIRST_NODE + table.used;
        let space = if capacity > first_free {
            Space::from_extents([(first_free, capacity - first_free)]).expect("one extent")
        } else {
            Space::default()
        };
        Self {
            family,
            prefixes: prefixes.into_iter().map(|(a, l, g)| ((a, l), g)).collect(),
            space,
            quarantine: Vec::new(),
            capacity,
            nodes: table.nodes,
            log: None,
        }
    }

    /// The space bookkeeping, to persist.
    pub fn bookkeeping(&self) -> Bookkeeping {
        Bookkeeping {
            free: self.space.extents(),
            quarantine: self.quarantine.clone(),
            capacity: self.capacity,
            nodes: self.nodes,
        }
    }

    /// Takes over a trie a previous agent kept up to date: its prefix set and bookkeeping, in a
    /// store of `store_len` words. `None` if the bookkeeping does not fit that store (a
    /// capacity the store does not have, extents past it, over the direct array or
    /// overlapping).
    pub fn restore(
        family: Family,
        prefixes: impl IntoIterator<Item = (u128, u8, u32)>,
        b: Bookkeeping,
        store_len: usize,
    ) -> Option<Self> {
        let capacity = (store_len / NODE_WORDS as usize) as u32;
        let inside = |&(a, l): &(u32, u32)| {
            a >= FIRST_NODE && a.checked_add(l).is_some_and(|end| end <= capacity)
        };
        if b.capacity != capacity || !b.free.iter().chain(&b.quarantine).all(inside) {
            return None;
        }
        // Free and quarantined extents must not overlap either.
        Space::from_extents(b.free.iter().chain(&b.quarantine).copied())?;
        let space = Space::from_extents(b.free.iter().copied())?;
        Some(Self {
            family,
            prefixes: prefixes.into_iter().map(|(a, l, g)| ((a, l), g)).collect(),
            space,
            quarantine: b.quarantine,
            capacity,
            nodes: b.nodes,
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

    /// Trie nodes in use.
    pub fn nodes_in_use(&self) -> u32 {
        self.nodes
    }

    /// Words in use: the direct array and every block not free or quarantined.
    pub fn words_in_use(&self) -> u64 {
        let quarantined: u64 = self.quarantine.iter().map(|(_, l)| u64::from(*l)).sum();
        (u64::from(self.capacity) - self.space.total() - quarantined) * u64::from(NODE_WORDS)
    }

    /// Nodes the array holds.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn prefixes(&self) -> &BTreeMap<(u128, u8), u32> {
        &self.prefixes
    }

    /// The best (longest) value among prefixes of /0 to /16 covering direct entry `d`.
    fn shallow_value(&self, d: u32) -> u32 {
        let bits = self.family.addr_bits;
        let start = u128::from(d) << (bits - DIRECT_BITS);
        (0..=DIRECT_BITS)
            .rev()
            .find_map(|len| {
                let net = if len == 0 {
                    0
                } else {
                    start & (u128::MAX >> (128 - bits) << (bits - len))
                };
                self.prefixes.get(&(net, len as u8))
            })
            .map_or(EMPTY, |g| embargo_abi::trie::leaf(*g))
    }

    /// The prefixes longer than /16 under direct entry `d`, shortest first.
    fn deep_items(&self, d: u32) -> Vec<Item> {
        let bits = self.family.addr_bits;
        let span = bits - DIRECT_BITS;
        let first = u128::from(d) << span;
        let last = first | (u128::MAX >> (128 - span));
        let mut items: Vec<Item> = self
            .prefixes
            .range((first, DIRECT_BITS as u8 + 1)..=(last, u8::MAX))
            .filter(|((_, l), _)| u32::from(*l) > DIRECT_BITS)
            .map(|(&(a, l), &g)| Item::new(self.family, a, u32::from(l), g))
            .collect();
        items.sort_unstable();
        items
    }

    /// The block of the subtree rooted at node `root`, read back from `store`: its first node,
    /// length in nodes and trie nodes.
    fn block_of(store: &impl Store, root: u32) -> (u32, u32, u32) {
        let word = |n: u32, i: u32| store.get((n * NODE_WORDS + i) as usize);
        let (mut nodes, mut leaves) = (0u32, 0u32);
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            nodes += 1;
            let vector = u64::from(word(n, 0)) | (u64::from(word(n, 1)) << 32);
            let leafvec = u64::from(word(n, 2)) | (u64::from(word(n, 3)) << 32);
            // Inline leaves (base0 = 0) take no leaf words.
            if word(n, 5) != 0 {
                leaves += popcount(leafvec);
            }
            let base1 = word(n, 4);
            stack.extend((0..popcount(vector)).map(|k| base1 + k));
        }
        (root, Subtree::block_size(nodes, leaves), nodes)
    }

    /// Works `changes` out: applies them to the prefix set, rebuilds the subtree of every
    /// touched direct entry and finds room for each, without writing `store`. Nothing is
    /// changed on error. [`LiveTrie::commit`] writes the result, [`LiveTrie::abort`] drops it.
    pub fn prepare(
        &mut self,
        store: &impl Store,
        changes: &[Change],
    ) -> Result<Prepared, NeedsRebuild> {
        let mut space = self.space.clone();
        for &(a, l) in &self.quarantine {
            space.free(a, l);
        }
        let mut p = Prepared {
            undo: Vec::new(),
            edits: Vec::new(),
            space: Space::default(),
            blocks: Vec::new(),
            direct: Vec::new(),
            released: Vec::new(),
            nodes_added: 0,
            nodes_removed: 0,
        };
        let mut touched = BTreeSet::new();
        for c in changes {
            let it = Item::new(self.family, c.addr, u32::from(c.len), 0);
            let net = it.key >> (128 - self.family.addr_bits);
            let key = (net, c.len);
            let old = match c.group {
                Some(g) => self.prefixes.insert(key, g),
                None => self.prefixes.remove(&key),
            };
            p.undo.push((key, old));
            p.edits.push((key, c.group));
            let d = it.direct();
            if it.len <= DIRECT_BITS {
                touched.extend(d..d + (1 << (DIRECT_BITS - it.len)));
            } else {
                touched.insert(d);
            }
        }
        for d in touched {
            let default = self.shallow_value(d);
            let items = self.deep_items(d);
            let old = store.get(d as usize);
            if old & CHILD != 0 {
                let (at, len, nodes) = Self::block_of(store, old & PAYLOAD);
                p.released.push((at, len));
                p.nodes_removed += nodes;
            }
            let new = if items.is_empty() {
                default
            } else {
                let sub = build::subtree(&items, default);
                let Some(at) = space.alloc(sub.block_nodes()) else {
                    let reason = format!(
                        "no room for a subtree of {} nodes ({} free in all)",
                        sub.block_nodes(),
                        space.total()
                    );
                    self.abort(p);
                    return Err(NeedsRebuild {
                        family: self.family.name,
                        reason,
                    });
                };
                p.nodes_added += sub.nodes.len() as u32;
                p.blocks.push((at, sub.words(at)));
                CHILD | at
            };
            if new != old {
                p.direct.push((d, new));
            }
        }
        p.space = space;
        Ok(p)
    }

    /// Puts the prefix set back as it was before [`LiveTrie::prepare`].
    pub fn abort(&mut self, p: Prepared) {
        for (key, old) in p.undo.into_iter().rev() {
            match old {
                Some(g) => self.prefixes.insert(key, g),
                None => self.prefixes.remove(&key),
            };
        }
    }

    /// Writes a prepared update: every new block while unreachable, then each direct entry
    /// with one store; the old blocks go to quarantine.
    pub fn commit(&mut self, store: &mut impl Store, p: Prepared) -> UpdateStats {
        let mut stats = UpdateStats {
            subtrees_rebuilt: p.blocks.len() as u64,
            ..UpdateStats::default()
        };
        for (at, words) in &p.blocks {
            let base = (at * NODE_WORDS) as usize;
            for (i, w) in words.iter().enumerate() {
                if store.get(base + i) != *w {
                    store.set(base + i, *w);
                    stats.entries_written += 1;
                }
            }
            stats.nodes_allocated += (words.len() / NODE_WORDS as usize) as u64;
        }
        for &(d, value) in &p.direct {
            store.set(d as usize, value);
            stats.entries_written += 1;
        }
        stats.nodes_released = p.released.iter().map(|(_, l)| u64::from(*l)).sum();
        self.space = p.space;
        self.quarantine = p.released;
        self.nodes = self.nodes + p.nodes_added - p.nodes_removed;
        if let Some(log) = &mut self.log {
            log.extend(p.edits);
        }
        stats
    }

    /// [`LiveTrie::prepare`] then [`LiveTrie::commit`].
    pub fn apply(
        &mut self,
        store: &mut impl Store,
        changes: &[Change],
    ) -> Result<UpdateStats, NeedsRebuild> {
        let p = self.prepare(store, changes)?;
        Ok(self.commit(store, p))
    }
}

/// A node read back from a store.
#[cfg(test)]
fn node_at(store: &impl Store, n: u32) -> embargo_abi::trie::Node {
    let w: Vec<u32> = (0..NODE_WORDS)
        .map(|i| store.get((n * NODE_WORDS + i) as usize))
        .collect();
    let mut c = [0u32; 16];
    c[..8].copy_from_slice(&w);
    embargo_abi::trie::Node::read(&c, 0)
}

#[cfg(test)]
mod tests {
    use embargo_abi::trie::{self, DIRECT_ENTRIES};
    use proptest::prelude::*;

    use super::*;
    use crate::dataplane::trie::build::{
        V4, V6, lookup_entry,
        tests::{check_words, random_set},
    };

    fn naive(set: &BTreeMap<(u128, u8), u32>, family: Family, addr: u128) -> Option<u32> {
        let bits = family.addr_bits;
        set.iter()
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
            .map(|(_, g)| *g)
    }

    /// A store that checks, after every single write, that sampled addresses whose answer is
    /// the same before and after the update never see anything else in between.
    struct Witness {
        words: Vec<u32>,
        family: Family,
        /// (address, whether it is blocked before and after)
        stable: Vec<(u128, bool)>,
        violations: Vec<String>,
    }

    impl Store for Witness {
        fn get(&self, i: usize) -> u32 {
            self.words[i]
        }
        fn set(&mut self, i: usize, v: u32) {
            self.words[i] = v;
            for (addr, blocked) in &self.stable {
                let got = lookup_entry(self.family, &self.words, *addr) != EMPTY;
                if got != *blocked {
                    self.violations.push(format!(
                        "addr {addr:#x}: blocked {blocked} became {got} mid-update"
                    ));
                }
            }
        }
        fn len(&self) -> usize {
            self.words.len()
        }
    }

    fn loaded(family: Family, set: &BTreeMap<(u128, u8), u32>, spare: u32) -> (LiveTrie, Vec<u32>) {
        let t = build::build(
            family,
            set.iter().map(|((a, l), g)| (*a, u32::from(*l), *g)),
        )
        .unwrap();
        let mut words = t.entries.clone();
        words.resize(words.len() + (spare * NODE_WORDS) as usize, 0);
        let live = LiveTrie::new(
            family,
            set.iter().map(|((a, l), g)| (*a, *l, *g)),
            &t,
            words.len(),
        );
        (live, words)
    }

    /// Runs `rounds` of random changes from a random set; after each, every probe agrees with
    /// the oracle, and no stable probe changed its answer between any two writes.
    fn run(family: Family, seed: u64, rounds: usize) -> Result<(), TestCaseError> {
        let (initial, probes) = random_set(family, seed, 120);
        let (pool, _) = random_set(family, seed ^ 0x5555, 200);
        let mut rng = crate::test_rng::Rng(seed);
        let mut set: BTreeMap<(u128, u8), u32> =
            initial.iter().map(|&(a, l, g)| ((a, l as u8), g)).collect();
        let (mut live, words) = loaded(family, &set, 4096);
        let mut mirror = BTreeMap::new();
        let first = live.take_log();
        prop_assert!(matches!(first, PrefixLog::All(_)));
        first.apply_to(&mut mirror);
        let mut w = Witness {
            words,
            family,
            stable: Vec::new(),
            violations: Vec::new(),
        };
        let probes: Vec<u128> = probes.into_iter().take(300).collect();
        for n in 0..rounds {
            let mut next = set.clone();
            let mut changes = Vec::new();
            for _ in 0..1 + rng.below(6) {
                if rng.chance(400) && !next.is_empty() {
                    let k = *next
                        .keys()
                        .nth(rng.below(next.len() as u64) as usize)
                        .unwrap();
                    next.remove(&k);
                    changes.push(Change {
                        addr: k.0,
                        len: k.1,
                        group: None,
                    });
                } else {
                    let (a, l, _) = pool[rng.below(pool.len() as u64) as usize];
                    let g = rng.below(8) as u32;
                    next.insert((a, l as u8), g);
                    changes.push(Change {
                        addr: a,
                        len: l as u8,
                        group: Some(g),
                    });
                }
            }
            w.stable = probes
                .iter()
                .filter_map(|&p| {
                    let before = naive(&set, family, p).is_some();
                    let after = naive(&next, family, p).is_some();
                    (before == after).then_some((p, after))
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
            let flat: Vec<(u128, u32, u32)> = set
                .iter()
                .map(|((a, l), g)| (*a, u32::from(*l), *g))
                .collect();
            check_words(family, &w.words, &flat, &probes);
            // The space accounts for exactly what a fresh build of the set needs, at least.
            let fresh = build::build(family, flat.iter().copied()).unwrap();
            prop_assert_eq!(live.nodes_in_use(), fresh.nodes);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn v4_updates_are_exact_and_hitless(seed in any::<u64>()) {
            run(V4, seed, 12)?;
        }

        #[test]
        fn v6_updates_are_exact_and_hitless(seed in any::<u64>()) {
            run(V6, seed, 8)?;
        }
    }

    #[test]
    fn room_is_found_before_any_write() {
        let set = BTreeMap::from([((0x0a00_0000u128, 8u8), 0u32)]);
        let (mut live, mut words) = loaded(V4, &set, 2);
        let before = words.clone();
        // A /32 needs 3 nodes and their leaves: more than 2 nodes' worth.
        let err = live
            .apply(
                &mut words,
                &[Change {
                    addr: 0x0a01_0203,
                    len: 32,
                    group: Some(1),
                }],
            )
            .unwrap_err();
        assert!(err.reason.contains("no room"), "{err}");
        assert_eq!(words, before, "nothing written");
        assert_eq!(live.prefixes(), &set, "prefix set unchanged");
        // A short prefix needs no room.
        live.apply(
            &mut words,
            &[Change {
                addr: 0x0b00_0000,
                len: 8,
                group: Some(2),
            }],
        )
        .unwrap();
        assert_eq!(lookup_entry(V4, &words, 0x0b01_0101), trie::leaf(2));
    }

    #[test]
    fn old_blocks_are_reused_only_after_the_next_update() {
        let (mut live, mut words) = loaded(V4, &BTreeMap::new(), 64);
        let host = Change {
            addr: 0x0a01_0203,
            len: 32,
            group: Some(1),
        };
        let s = live.apply(&mut words, &[host]).unwrap();
        assert_eq!(s.subtrees_rebuilt, 1);
        let first = words[0x0a01] & PAYLOAD;
        assert_eq!(first, FIRST_NODE);
        assert_eq!(live.nodes_in_use(), 3);
        // The same host for another group: a new block of the same size; the old one is
        // quarantined, intact.
        let other = Change {
            group: Some(2),
            ..host
        };
        live.apply(&mut words, &[other]).unwrap();
        let second = words[0x0a01] & PAYLOAD;
        assert_ne!(second, first);
        assert_eq!(
            node_at(&words, first).base1,
            first + 1,
            "old block untouched"
        );
        assert_eq!(live.bookkeeping().quarantine.len(), 1);
        // The next update may reuse the first block (the smallest free extent that fits).
        let third = Change {
            group: Some(3),
            ..host
        };
        live.apply(&mut words, &[third]).unwrap();
        assert_eq!(words[0x0a01] & PAYLOAD, first);
        assert_eq!(lookup_entry(V4, &words, 0x0a01_0203), trie::leaf(3));
        // Removing every host frees the subtree: the direct entry is a leaf again.
        live.apply(
            &mut words,
            &[Change {
                group: None,
                ..host
            }],
        )
        .unwrap();
        assert_eq!(words[0x0a01], EMPTY);
        assert_eq!(live.nodes_in_use(), 0);
        assert_eq!(live.words_in_use(), u64::from(DIRECT_ENTRIES));
    }

    #[test]
    fn a_restored_trie_goes_on_where_the_first_left_off() {
        let (mut live, mut words) = loaded(V4, &BTreeMap::new(), 64);
        let host = Change {
            addr: 0x0a01_0203,
            len: 32,
            group: Some(1),
        };
        live.apply(&mut words, &[host]).unwrap();
        live.apply(
            &mut words,
            &[Change {
                group: None,
                ..host
            }],
        )
        .unwrap();
        let kept = live.bookkeeping();
        assert_eq!(kept.quarantine.len(), 1);
        let prefixes: Vec<(u128, u8, u32)> = live
            .prefixes()
            .iter()
            .map(|((a, l), g)| (*a, *l, *g))
            .collect();
        let mut restored =
            LiveTrie::restore(V4, prefixes.clone(), kept.clone(), words.len()).unwrap();
        assert_eq!(restored.bookkeeping(), kept);
        // The quarantined block is reused, as the first trie would have.
        let other = Change {
            addr: 0x0a09_0807,
            len: 32,
            group: Some(2),
        };
        restored.apply(&mut words, &[other]).unwrap();
        assert_eq!(words[0x0a09] & PAYLOAD, FIRST_NODE);
        assert_eq!(lookup_entry(V4, &words, 0x0a09_0807), trie::leaf(2));
        assert_eq!(lookup_entry(V4, &words, 0x0a01_0203), EMPTY);
        // Bookkeeping that does not fit the store is refused.
        let past = Bookkeeping {
            free: vec![(FIRST_NODE, kept.capacity)],
            ..kept.clone()
        };
        assert!(LiveTrie::restore(V4, prefixes.clone(), past, words.len()).is_none());
        let over_direct = Bookkeeping {
            free: vec![(0, 4)],
            ..kept.clone()
        };
        assert!(LiveTrie::restore(V4, prefixes.clone(), over_direct, words.len()).is_none());
        let overlapping = Bookkeeping {
            quarantine: kept.free.clone(),
            ..kept.clone()
        };
        assert!(LiveTrie::restore(V4, prefixes.clone(), overlapping, words.len()).is_none());
        assert!(LiveTrie::restore(V4, prefixes, kept, words.len() - 16).is_none());
    }
}
