//! A NOR flash in RAM that can lose power mid-operation and flip bits, for
//! power-cut tests, fuzzing, and building store images on the host.
//!
//! Semantics follow `embedded-storage`: erased bytes are `0xFF`; a word may
//! be written once after an erase (writing a word that is not erased is an
//! error here, so a store that rewrites a word fails its tests). Power
//! loss is scripted by a budget of *units*: one unit per byte written and
//! one per page erased. With a budget of `n`, the first `n` units complete
//! and unit `n + 1` is in progress when power fails:
//! - inside a write, the words before it hold their data, the word in
//!   progress becomes undefined (old bits AND random: programming only
//!   clears bits) and the words after it stay untouched;
//! - inside an erase, the page in progress becomes undefined (old bits OR
//!   random: erasing only sets bits); earlier pages are erased.
//!
//! After a cut every operation fails with `PowerCut` until `restore_power`
//! (the reboot).

use seaclr_shared::testing::XorShift64;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of the mock flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockFlashError {
    /// Offset or length not aligned to the read/write/erase size.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// Power was cut (scripted); the flash is dead until `restore_power`.
    PowerCut,
    /// A write targeted a word that is not erased.
    WriteNotErased,
}

impl NorFlashError for MockFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::PowerCut | Self::WriteNotErased => NorFlashErrorKind::Other,
        }
    }
}

/// A RAM-backed NOR flash with `WRITE`-byte words and `ERASE`-byte pages.
pub struct MockFlash<'a, const WRITE: usize = 4, const ERASE: usize = 256> {
    memory: &'a mut [u8],
    budget: Option<usize>,
    consumed: usize,
    dead: bool,
    rng: XorShift64,
}

impl<'a, const WRITE: usize, const ERASE: usize> MockFlash<'a, WRITE, ERASE> {
    /// A flash over `memory` (its contents are the flash contents; the
    /// length must be a multiple of `ERASE`).
    pub fn new(memory: &'a mut [u8]) -> Self {
        Self {
            memory,
            budget: None,
            consumed: 0,
            dead: false,
            rng: XorShift64(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Cuts power once `units` more units have completed; `seed` drives the
    /// undefined contents left by the cut.
    pub fn cut_power_after(&mut self, units: usize, seed: u64) {
        self.budget = Some(units);
        self.rng = XorShift64(seed | 1);
    }

    /// Power back on (a reboot): no cut scheduled, operations work again.
    pub fn restore_power(&mut self) {
        self.budget = None;
        self.dead = false;
    }

    /// True after a scripted power cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Units (bytes written + pages erased) completed so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Flips one bit (`bit` counts from bit 0 of byte 0).
    pub fn flip_bit(&mut self, bit: usize) {
        if let Some(b) = self.memory.get_mut(bit / 8) {
            *b ^= 1 << (bit % 8);
        }
    }

    /// The flash contents.
    pub fn memory(&self) -> &[u8] {
        self.memory
    }

    fn next_random(&mut self) -> u8 {
        // xorshift64: deterministic per seed.
        (self.rng.next_u64() >> 24) as u8
    }

    /// Takes up to `units` from the budget; returns how many complete
    /// before power fails.
    fn spend(&mut self, units: usize) -> usize {
        match self.budget {
            None => units,
            Some(left) => {
                let done = left.min(units);
                self.budget = Some(left - done);
                done
            }
        }
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, MockFlashError> {
        if self.dead {
            return Err(MockFlashError::PowerCut);
        }
        let offset = offset as usize;
        if !offset.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MockFlashError::NotAligned);
        }
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.memory.len())
        {
            return Err(MockFlashError::OutOfBounds);
        }
        Ok(offset)
    }
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for MockFlash<'_, WRITE, ERASE> {
    type Error = MockFlashError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for MockFlash<'_, WRITE, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let offset = self.check(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.memory[offset..offset + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.memory.len()
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for MockFlash<'_, WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if to < from {
            return Err(MockFlashError::OutOfBounds);
        }
        let from = self.check(from, (to - from) as usize, ERASE)?;
        for page in (from..to as usize).step_by(ERASE) {
            if self.spend(1) == 0 {
                for i in page..page + ERASE {
                    let r = self.next_random();
                    self.memory[i] |= r;
                }
                self.dead = true;
                return Err(MockFlashError::PowerCut);
            }
            self.memory[page..page + ERASE].fill(0xFF);
            self.consumed += 1;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let offset = self.check(offset, bytes.len(), WRITE)?;
        let target = &self.memory[offset..offset + bytes.len()];
        if target.iter().any(|&b| b != 0xFF) {
            return Err(MockFlashError::WriteNotErased);
        }
        let done = self.spend(bytes.len());
        let whole_words = done / WRITE * WRITE;
        self.memory[offset..offset + whole_words].copy_from_slice(&bytes[..whole_words]);
        self.consumed += done;
        if done < bytes.len() {
            for i in offset + whole_words..offset + whole_words + WRITE {
                let r = self.next_random();
                self.memory[i] &= r;
            }
            self.dead = true;
            return Err(MockFlashError::PowerCut);
        }
        Ok(())
    }
}
