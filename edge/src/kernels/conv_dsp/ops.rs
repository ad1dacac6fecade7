//! The four Armv7E-M DSP instructions the kernel is written in, each with
//! the architecture's exact semantics (Arm ARM, DDI 0403E, A7.7):
//!
//! - `sxtb16(x)`: bytes 0 and 2 of `x`, sign-extended to the two halfwords;
//!   `sxtb16_ror8(x)`: the same of `x` rotated right by 8 (bytes 1 and 3);
//! - `ssub16(x, y)`: halfword-wise `x - y`, each lane modulo 2^16;
//! - `smlad(x, y, a)`: `x.lo * y.lo + x.hi * y.hi + a` on signed halfwords,
//!   the sum modulo 2^32 (the instruction sets the sticky Q flag when it
//!   overflows and writes the low 32 bits, nothing else; nothing reads Q).
//!
//! With the DSP extension (`cfg(seaclr_dsp)`, set by `build.rs` for
//! `thumbv7em` targets) each is one instruction in inline `asm!`; anywhere
//! else (the host tests) it is the plain Rust below, so the same kernel code
//! runs, and is tested against the i32 reference, on both.

/// `x` as two signed halfwords (low, high).
#[cfg(not(seaclr_dsp))]
#[inline(always)]
fn halves(x: u32) -> (i32, i32) {
    (x as u16 as i16 as i32, (x >> 16) as u16 as i16 as i32)
}

/// Two signed halfwords packed into a word, each taken modulo 2^16.
#[cfg(not(seaclr_dsp))]
#[inline(always)]
fn pack(lo: i32, hi: i32) -> u32 {
    (lo as u16 as u32) | ((hi as u16 as u32) << 16)
}

/// Portable `SXTB16 Rd, Rm`.
#[cfg(not(seaclr_dsp))]
#[inline(always)]
pub(crate) fn sxtb16(x: u32) -> u32 {
    pack(x as u8 as i8 as i32, (x >> 16) as u8 as i8 as i32)
}

/// Portable `SXTB16 Rd, Rm, ROR #8`.
#[cfg(not(seaclr_dsp))]
#[inline(always)]
pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
    sxtb16(x.rotate_right(8))
}

/// Portable `SSUB16 Rd, Rn, Rm` (the GE flags it also sets are never read).
#[cfg(not(seaclr_dsp))]
#[inline(always)]
pub(crate) fn ssub16(x: u32, y: u32) -> u32 {
    let ((xl, xh), (yl, yh)) = (halves(x), halves(y));
    pack(xl - yl, xh - yh)
}

/// Portable `SMLAD Rd, Rn, Rm, Ra`: the exact sum, then its low 32 bits.
#[cfg(not(seaclr_dsp))]
#[inline(always)]
pub(crate) fn smlad(x: u32, y: u32, a: i32) -> i32 {
    let ((xl, xh), (yl, yh)) = (halves(x), halves(y));
    (xl as i64 * yl as i64 + xh as i64 * yh as i64 + a as i64) as i32
}

#[cfg(seaclr_dsp)]
pub(super) use self::dsp::{smlad, ssub16, sxtb16, sxtb16_ror8};

/// The real instructions. Each `asm!` block reads only its input registers
/// and writes only its output register: no memory, no stack. `sxtb16`
/// leaves the flags alone; `ssub16` (GE) and `smlad` (Q) write flags that
/// no code reads, so they do not claim `preserves_flags`.
#[cfg(seaclr_dsp)]
#[allow(unsafe_code)]
mod dsp {
    use core::arch::asm;

    /// `SXTB16 Rd, Rm`.
    #[inline(always)]
    pub(crate) fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-to-register DSP instruction of every Armv7E-M
        // core (this module only builds for those); no memory, stack or
        // flags are touched.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SXTB16 Rd, Rm, ROR #8`.
    #[inline(always)]
    pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: as in `sxtb16`.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }

    /// `SSUB16 Rd, Rn, Rm`.
    #[inline(always)]
    pub(crate) fn ssub16(x: u32, y: u32) -> u32 {
        let r: u32;
        // SAFETY: register-to-register; it also sets the GE flags, which
        // the block declares by not claiming `preserves_flags`.
        unsafe {
            asm!("ssub16 {r}, {x}, {y}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y,
                options(pure, nomem, nostack));
        }
        r
    }

    /// `SMLAD Rd, Rn, Rm, Ra`.
    #[inline(always)]
    pub(crate) fn smlad(x: u32, y: u32, a: i32) -> i32 {
        let r: i32;
        // SAFETY: register-to-register; it may set the sticky Q flag,
        // which the block declares by not claiming `preserves_flags`.
        unsafe {
            asm!("smlad {r}, {x}, {y}, {a}", r = lateout(reg) r, x = in(reg) x, y = in(reg) y,
                a = in(reg) a, options(pure, nomem, nostack));
        }
        r
    }
}
