//! CMSDK APB TIMER0 (0x4000_0000) as an instruction counter.
//!
//! The timer counts down at the board's 25 MHz peripheral clock. QEMU runs
//! with `-icount shift=0`: each guest instruction advances virtual time by
//! exactly 1 ns, so one tick is [`INSTRUCTIONS_PER_TICK`] = 40 instructions
//! and a count depends only on the code executed, never on the host. The
//! resolution is 40 instructions; the 32-bit counter wraps after 171.8 G
//! instructions (differences are taken modulo 2^32, so any span shorter
//! than that is exact). Semihosting calls stop the guest without advancing
//! virtual time, so they cost only the instructions around the `bkpt`.

use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x4000_0000;
const CTRL: usize = BASE;
const VALUE: usize = BASE + 0x04;
const RELOAD: usize = BASE + 0x08;
const CTRL_ENABLE: u32 = 1;

/// Guest instructions per timer tick (1 GHz virtual CPU / 25 MHz timer).
pub const INSTRUCTIONS_PER_TICK: u64 = 40;

/// A point in time, in timer ticks.
#[derive(Clone, Copy, Debug)]
pub struct Stamp(u32);

/// TIMER0, free-running from 0xFFFF_FFFF down.
#[derive(Clone, Copy)]
pub struct Timer0;

impl Timer0 {
    /// Starts the timer free-running (no interrupt).
    pub fn start() -> Self {
        // SAFETY: CTRL/RELOAD/VALUE are TIMER0's registers (memory-mapped,
        // always present); nothing else uses TIMER0.
        unsafe {
            write_volatile(CTRL as *mut u32, 0);
            write_volatile(RELOAD as *mut u32, u32::MAX);
            write_volatile(VALUE as *mut u32, u32::MAX);
            write_volatile(CTRL as *mut u32, CTRL_ENABLE);
        }
        Timer0
    }

    /// Now.
    pub fn now(self) -> Stamp {
        // SAFETY: reading TIMER0's VALUE register has no side effect.
        Stamp(unsafe { read_volatile(VALUE as *const u32) })
    }
}

impl Stamp {
    /// Instructions from `self` to `later`.
    pub fn instructions_to(self, later: Stamp) -> u64 {
        self.0.wrapping_sub(later.0) as u64 * INSTRUCTIONS_PER_TICK
    }
}
