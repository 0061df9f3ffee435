//! The one deterministic random generator of the tests and benches: splitmix64, seeded, small
//! and fast. Good enough to scatter prefixes and pick addresses; not for anything secret. A
//! given seed gives the same sequence on every machine, so a failing case can be replayed.
//!
//! The agent's unit tests include this file too (its `test_rng` module, by path, test builds
//! only), so it depends on nothing.

/// splitmix64 with its state; `Rng(seed)` starts a sequence.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// 128 random bits (two draws, the first the high half).
    pub fn u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// Uniform enough in `lo..=hi` for a spot check.
    pub fn between(&mut self, lo: u128, hi: u128) -> u128 {
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.u128() % span,
            None => self.u128(),
        }
    }

    /// Picks from `(value, weight)` pairs, each with probability weight / sum of weights.
    pub fn weighted<T: Copy>(&mut self, table: &[(T, u64)]) -> T {
        let total: u64 = table.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (v, w) in table {
            if x < *w {
                return *v;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}
