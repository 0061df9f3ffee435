//! The free space of a trie array, in whole nodes: where a rebuilt subtree's block goes.
//!
//! Free space is a set of extents (first node, length), kept twice: by start, so a freed
//! extent merges with its free neighbours, and by length, so an allocation takes the smallest
//! extent that fits (best fit, which keeps the large extents for large subtrees). Both
//! operations cost a few tree lookups.

use std::collections::{BTreeMap, BTreeSet};

/// Free extents of a trie array.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// start -> length
    by_start: BTreeMap<u32, u32>,
    /// (length, start)
    by_len: BTreeSet<(u32, u32)>,
    /// Nodes free in all.
    total: u64,
}

impl Space {
    /// Free space made of `extents`; `None` if any is empty or two overlap.
    pub fn from_extents(extents: impl IntoIterator<Item = (u32, u32)>) -> Option<Self> {
        let mut s = Self::default();
        for (start, len) in extents {
            if len == 0 || start.checked_add(len).is_none() {
                return None;
            }
            let overlaps = s
                .by_start
                .range(..start + len)
                .next_back()
                .is_some_and(|(&a, &l)| a + l > start);
            if overlaps {
                return None;
            }
            s.free(start, len);
        }
        Some(s)
    }

    /// The free extents, in address order.
    pub fn extents(&self) -> Vec<(u32, u32)> {
        self.by_start.iter().map(|(&a, &l)| (a, l)).collect()
    }

    /// Nodes free in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Takes `len` nodes (`len` > 0) from the smallest extent that holds them; `None` if none
    /// does.
    pub fn alloc(&mut self, len: u32) -> Option<u32> {
        let &(have, start) = self.by_len.range((len, 0)..).next()?;
        self.by_len.remove(&(have, start));
        self.by_start.remove(&start);
        if have > len {
            self.insert(start + len, have - len);
        }
        self.total -= u64::from(len);
        Some(start)
    }

    /// Gives `len` nodes from `start` back, merged with free neighbours. The caller frees only
    /// what it allocated, once.
    pub fn free(&mut self, mut start: u32, mut len: u32) {
        if len == 0 {
            return;
        }
        self.total += u64::from(len);
        if let Some((&a, &l)) = self.by_start.range(..start).next_back()
            && a + l == start
        {
            self.remove(a, l);
            start = a;
            len += l;
        }
        if let Some(&l) = self.by_start.get(&(start + len)) {
            self.remove(start + len, l);
            len += l;
        }
        self.insert(start, len);
    }

    fn insert(&mut self, start: u32, len: u32) {
        self.by_start.insert(start, len);
        self.by_len.insert((len, start));
    }

    fn remove(&mut self, start: u32, len: u32) {
        self.by_start.remove(&start);
        self.by_len.remove(&(len, start));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_and_merging() {
        let mut s = Space::from_extents([(100, 10), (200, 3), (300, 50)]).unwrap();
        assert_eq!(s.total(), 63);
        assert_eq!(s.alloc(3), Some(200), "the exact fit");
        assert_eq!(s.alloc(4), Some(100), "the smallest that holds it");
        assert_eq!(s.extents(), vec![(104, 6), (300, 50)]);
        assert_eq!(s.alloc(51), None);
        // Freed blocks merge with both neighbours.
        s.free(100, 4);
        assert_eq!(s.extents(), vec![(100, 10), (300, 50)]);
        s.free(110, 190);
        assert_eq!(s.extents(), vec![(100, 250)]);
        assert_eq!(s.total(), 250);
        assert_eq!(s.alloc(250), Some(100));
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn overlapping_or_empty_extents_are_refused() {
        assert!(Space::from_extents([(10, 5), (12, 5)]).is_none());
        assert!(Space::from_extents([(12, 5), (10, 5)]).is_none());
        assert!(Space::from_extents([(10, 0)]).is_none());
        assert!(Space::from_extents([(u32::MAX, 2)]).is_none());
        // Adjacent extents are fine (and merge).
        let s = Space::from_extents([(10, 5), (15, 5)]).unwrap();
        assert_eq!(s.extents(), vec![(10, 10)]);
    }

    #[test]
    fn random_alloc_and_free_never_hand_out_a_node_twice() {
        let mut rng = crate::test_rng::Rng(7);
        let mut s = Space::from_extents([(0, 10_000)]).unwrap();
        let mut owned = vec![false; 10_000];
        let mut held: Vec<(u32, u32)> = Vec::new();
        for _ in 0..5000 {
            if rng.chance(500) || held.is_empty() {
                let len = 1 + (rng.next_u64() % 40) as u32;
                if let Some(at) = s.alloc(len) {
                    for n in at..at + len {
                        assert!(!owned[n as usize], "node {n} handed out twice");
                        owned[n as usize] = true;
                    }
                    held.push((at, len));
                }
            } else {
                let (at, len) = held.swap_remove((rng.next_u64() % held.len() as u64) as usize);
                for n in at..at + len {
                    owned[n as usize] = false;
                }
                s.free(at, len);
            }
            let free = owned.iter().filter(|o| !**o).count() as u64;
            assert_eq!(s.total(), free);
        }
    }
}
