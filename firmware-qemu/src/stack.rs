//! Stack high-water mark. cortex-m-rt's `paint-stack` feature fills the
//! whole stack (`_stack_end` .. `_stack_start`) with `0xCCCC_CCCC` before
//! `main`; the deepest word that no longer holds the pattern marks the most
//! stack ever used. (A function that wrote exactly the pattern would hide
//! one word; that cannot matter at this resolution.)

use cortex_m_rt::STACK_PAINT_VALUE;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// `(used, size)` of the stack in bytes, from the paint left untouched.
pub fn high_water() -> (usize, usize) {
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut p = bottom;
    while p < top {
        // SAFETY: `p` is a word inside the stack region (`_stack_end` and
        // `_stack_start` are the linker's bounds, both 4-aligned); reading a
        // word there is always valid.
        if unsafe { core::ptr::read_volatile(p as *const u32) } != STACK_PAINT_VALUE {
            break;
        }
        p += 4;
    }
    (top - p, top - bottom)
}
