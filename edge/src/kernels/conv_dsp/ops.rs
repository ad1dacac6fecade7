//! The Armv7E-M DSP instructions the kernel is written in, each with the
//! architecture's exact semantics (Arm ARM, DDI 0403E, A7.7):
//!
//! - `sxtb16(x)`: bytes 0 and 2 of `x`, sign-extended to the two halfwords;
//!   `sxtb16_ror8(x)`: the same of `x` rotated right by 8 (bytes 1 and 3);
//! - `ssub16(x, y)`: halfword-wise `x - y`, each lane modulo 2^16;
//! - `smlad(x, y, a)`: `x.lo * y.lo + x.hi * y.hi + a` on signed halfwords,
//!   the sum modulo 2^32 (the instruction sets the sticky Q flag when it
//!   overflows and writes the low 32 bits, nothing else; nothing reads Q);
//!
//! and the kernel's inner loop built from them, [`mac_blocks`].
//!
//! With the DSP extension (`cfg(seaclr_dsp)`, set by `build.rs` for
//! `thumbv7em` targets) each instruction is one inline `asm!` and the loop
//! one `asm!` block (`ldm` for the columns); anywhere else (the host
//! tests) they are the plain Rust below, the loop being [`step`] per group,
//! so the same kernel code runs, and is tested against the i32 reference,
//! on both. The firmware's self-check runs the real instructions.

use super::{GROUP_WORDS, PIXELS};

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
pub(super) use self::dsp::{mac_blocks, smlad, ssub16, sxtb16, sxtb16_ror8};

/// Groups of 4 patch values per block of [`mac_blocks`].
pub(crate) const BLOCK_GROUPS: usize = 4;

/// One group: 4 weights (the bytes of `w`) times 4 patch values of each of
/// the [`PIXELS`] pixels, added to their sums: `x[p]` holds patch values
/// `(k, k + 2)` of pixel `p`, `x[PIXELS + p]` values `(k + 1, k + 3)`,
/// matching the pairs `sxtb16` and `sxtb16 ror #8` make of the weights.
#[inline(always)]
pub(crate) fn step(acc: &mut [i32; PIXELS], x: &[u32; GROUP_WORDS], w: u32) {
    let (even, odd) = (sxtb16(w), sxtb16_ror8(w));
    for (a, &x) in acc.iter_mut().zip(&x[..PIXELS]) {
        *a = smlad(x, even, *a);
    }
    for (a, &x) in acc.iter_mut().zip(&x[PIXELS..]) {
        *a = smlad(x, odd, *a);
    }
}

/// [`step`] over whole blocks of [`BLOCK_GROUPS`] groups: `cols[b][g]`
/// with the weight word `w[b][4 * g..4 * g + 4]`, for `min(cols.len(),
/// w.len())` blocks. On the target one `asm!` loop (see `dsp::mac_blocks`).
#[cfg(not(seaclr_dsp))]
#[inline(always)]
pub(crate) fn mac_blocks(
    acc: &mut [i32; PIXELS],
    cols: &[[[u32; GROUP_WORDS]; BLOCK_GROUPS]],
    w: &[[u8; 4 * BLOCK_GROUPS]],
) {
    for (x, w) in cols.iter().zip(w) {
        for (g, x) in x.iter().enumerate() {
            let b = [w[4 * g], w[4 * g + 1], w[4 * g + 2], w[4 * g + 3]];
            step(acc, x, u32::from_le_bytes(b));
        }
    }
}

/// The real instructions. Each `asm!` block reads only its input registers
/// and writes only its output register: no memory, no stack. `sxtb16`
/// leaves the flags alone; `ssub16` (GE) and `smlad` (Q) write flags that
/// no code reads, so they do not claim `preserves_flags`.
#[cfg(seaclr_dsp)]
#[allow(unsafe_code)]
mod dsp {
    use super::super::{GROUP_WORDS, PIXELS};
    use super::BLOCK_GROUPS;
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

    /// One group of the loop below: the weight word, its two pairs, then
    /// 8 `smlad` on two `ldm`s of 4 column words (r0-r3).
    macro_rules! group {
        () => {
            concat!(
                "ldr {w}, [{pw}], #4\n",
                "ldm {pc}!, {{r0, r1, r2, r3}}\n",
                "sxtb16 {od}, {w}, ror #8\n",
                "sxtb16 {w}, {w}\n",
                "smlad {a0}, r0, {w}, {a0}\n",
                "smlad {a1}, r1, {w}, {a1}\n",
                "smlad {a2}, r2, {w}, {a2}\n",
                "smlad {a3}, r3, {w}, {a3}\n",
                "ldm {pc}!, {{r0, r1, r2, r3}}\n",
                "smlad {a0}, r0, {od}, {a0}\n",
                "smlad {a1}, r1, {od}, {a1}\n",
                "smlad {a2}, r2, {od}, {a2}\n",
                "smlad {a3}, r3, {od}, {a3}\n",
            )
        };
    }

    /// The kernel's inner loop in one block, 13 instructions per group of
    /// 16 multiply-adds (53 per block of 4 with the loop test). Written
    /// out because LLVM, given the same operations as single-instruction
    /// `asm!`s, neither merges the column loads into `ldm` nor keeps the
    /// 12 live values in registers (44 instructions per 2 groups, with
    /// spills). The 4 sums, 2 pointers and 2 weight words take the 8
    /// allocatable registers outside r0-r3; the end of the columns waits
    /// on the stack.
    #[inline(always)]
    pub(crate) fn mac_blocks(
        acc: &mut [i32; PIXELS],
        cols: &[[[u32; GROUP_WORDS]; BLOCK_GROUPS]],
        w: &[[u8; 4 * BLOCK_GROUPS]],
    ) {
        let n = cols.len().min(w.len());
        if n == 0 {
            return;
        }
        let cols = cols.as_ptr();
        // SAFETY: `cols` points to `n` blocks of 128 aligned bytes, and
        // `end` one past the last (inside or one past the same slice); `w`
        // to at least `n` blocks of 16 bytes (`ldr` may be unaligned on
        // Armv7-M, which the Rust target assumes: it emits unaligned word
        // loads itself). The loop reads exactly those bytes, 32 + 4 per
        // group, and stops when the column pointer reaches `end` (n >= 1,
        // so at least one pass). It writes only its declared registers and
        // the stack slot it takes below `sp` (8 bytes, keeping `sp` 8-byte
        // aligned) and gives back before returning.
        unsafe {
            let end = cols.add(n);
            asm!(
                "str {w}, [sp, #-8]!",
                "2:",
                group!(),
                group!(),
                group!(),
                group!(),
                "ldr {w}, [sp]",
                "cmp {pc}, {w}",
                "bne 2b",
                "add sp, sp, #8",
                a0 = inout(reg) acc[0],
                a1 = inout(reg) acc[1],
                a2 = inout(reg) acc[2],
                a3 = inout(reg) acc[3],
                pc = inout(reg) cols => _,
                pw = inout(reg) w.as_ptr() => _,
                w = inout(reg) end => _,
                od = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
            );
        }
    }

    /// `SMLAD Rd, Rn, Rm, Ra`.
    #[inline(always)]
    pub(crate) fn smlad(x: u32, y: u32, a: i32) -> i32 {
        let mut a = a;
        // SAFETY: register-to-register; it may set the sticky Q flag,
        // which the block declares by not claiming `preserves_flags`. The
        // sum is written over the addend, so a chain of `smlad`s keeps its
        // accumulator in one register (no moves in the loop).
        unsafe {
            asm!("smlad {a}, {x}, {y}, {a}", a = inout(reg) a, x = in(reg) x, y = in(reg) y,
                options(pure, nomem, nostack));
        }
        a
    }
}
