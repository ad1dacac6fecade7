//! Helpers for tests, examples and simulated faults across the workspace
//! (not part of the contract).

/// xorshift64 (shifts 13, 7, 17): a tiny deterministic generator, so one
/// seed describes a whole random case without a dependency. The state must
/// not be zero (it would stay zero).
#[derive(Clone, Debug)]
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// Advances the state and returns it.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `lo + next_u64() % (hi - lo + 1)`: a value in `lo..=hi` (slightly
    /// biased; fine for tests).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift64;

    #[test]
    fn known_sequence() {
        let mut rng = XorShift64(1);
        assert_eq!(rng.next_u64(), 1082269761);
        assert_eq!(rng.next_u64(), 1152992998833853505);
        let mut rng = XorShift64(7);
        for _ in 0..1000 {
            assert!((-3..=5).contains(&rng.range(-3, 5)));
        }
    }
}
