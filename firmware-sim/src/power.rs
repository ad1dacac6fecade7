//! Simulated power supply: decides when the power fails.
//!
//! A buoy loses power in the middle of whatever it is doing; the dangerous
//! moments are flash operations. The simulator therefore cuts power at a
//! chosen flash operation: after exactly N completed program/erase
//! operations (`--cut-after-writes N`), or at a random operation drawn from a
//! seed (`--random-cut SEED`), which tests use to explore many cut points.
//! The operation that is interrupted is left half done, as on real NOR flash
//! (see `flash_file`).

/// When the power fails, counted in flash program/erase operations.
#[derive(Debug, Clone, Default)]
pub struct PowerSupply {
    cut_after: Option<u64>,
    /// Whether erases count towards `cut_after` (random cuts) or only writes.
    count_erases: bool,
    operations: u64,
    cut: bool,
}

/// A flash operation about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Programming words.
    Write,
    /// Erasing one sector.
    Erase,
}

impl PowerSupply {
    /// Power that never fails.
    pub fn steady() -> Self {
        Self::default()
    }

    /// Power that fails during write number `n + 1`: `n` writes complete
    /// (erases before it complete too).
    pub fn cut_after(n: u64) -> Self {
        Self {
            cut_after: Some(n),
            ..Self::default()
        }
    }

    /// Power that fails at an operation (write or erase) drawn from `seed`,
    /// uniformly in `0..max_operations` (a small xorshift generator:
    /// reproducible).
    pub fn random_cut(seed: u64, max_operations: u64) -> Self {
        let mut rng = seaclr_shared::testing::XorShift64(seed ^ 0x9E37_79B9_7F4A_7C15);
        let x = (0..3).fold(0, |_, _| rng.next_u64());
        Self {
            cut_after: Some(x % max_operations.max(1)),
            count_erases: true,
            ..Self::default()
        }
    }

    /// Called before each flash operation: `true` if it may run to completion,
    /// `false` if power fails during it (and stays off).
    pub fn begin_operation(&mut self, op: Operation) -> bool {
        if self.cut {
            return false;
        }
        if op == Operation::Erase && !self.count_erases {
            return true;
        }
        if self.cut_after.is_some_and(|n| self.operations >= n) {
            self.cut = true;
            return false;
        }
        self.operations += 1;
        true
    }

    /// Whether the power has failed.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// Counted flash operations completed so far.
    pub fn operations(&self) -> u64 {
        self.operations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_power_never_fails() {
        let mut p = PowerSupply::steady();
        assert!((0..10_000).all(|_| p.begin_operation(Operation::Write)));
        assert!(!p.is_cut());
        assert_eq!(p.operations(), 10_000);
    }

    #[test]
    fn cut_after_n_lets_exactly_n_complete_then_stays_off() {
        let mut p = PowerSupply::cut_after(3);
        assert!(
            p.begin_operation(Operation::Write)
                && p.begin_operation(Operation::Write)
                && p.begin_operation(Operation::Write)
        );
        assert!(!p.begin_operation(Operation::Write));
        assert!(p.is_cut());
        assert!(!p.begin_operation(Operation::Write));
        assert_eq!(p.operations(), 3);
    }

    #[test]
    fn cut_after_writes_lets_erases_through_but_random_cuts_count_them() {
        let mut p = PowerSupply::cut_after(1);
        assert!(p.begin_operation(Operation::Erase) && p.begin_operation(Operation::Erase));
        assert!(p.begin_operation(Operation::Write));
        assert!(
            p.begin_operation(Operation::Erase),
            "erases are not counted"
        );
        assert!(
            !p.begin_operation(Operation::Write),
            "the second write is cut"
        );
        assert!(!p.begin_operation(Operation::Erase), "dead after the cut");
        let mut r = PowerSupply::random_cut(0, 1);
        assert!(!r.begin_operation(Operation::Erase));
    }

    #[test]
    fn random_cut_is_reproducible_and_in_range() {
        let points: Vec<u64> = (0..50)
            .map(|s| {
                let mut p = PowerSupply::random_cut(s, 20);
                let mut n = 0;
                while p.begin_operation(Operation::Write) {
                    n += 1;
                }
                n
            })
            .collect();
        assert!(points.iter().all(|&n| n < 20));
        let again: Vec<u64> = (0..50)
            .map(|s| PowerSupply::random_cut(s, 20).cut_after.unwrap())
            .collect();
        assert_eq!(points, again);
        // Different seeds explore different cut points.
        let distinct: std::collections::BTreeSet<_> = points.iter().collect();
        assert!(distinct.len() > 5);
    }
}
