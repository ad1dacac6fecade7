//! Big buffers in static RAM (no heap): each handed out once as
//! `&'static mut`, so the borrow checker guards them from then on.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};
use seaclr_edge::knn::KnnHead;

/// A static slot for one `T`, taken at most once.
pub struct Slot<T> {
    taken: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is reachable only through the one `&mut` that `take`
// hands out (guarded by the atomic flag), so sharing the slot itself
// between contexts cannot alias it.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    /// An empty slot (placed in `.bss`, costs no flash).
    pub const fn new() -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Writes `init()` in place and returns it; `None` if already taken.
    // The `&mut` comes from the slot's `UnsafeCell`, handed out once.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self, init: impl FnOnce(*mut T)) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let ptr = self.value.get().cast::<T>();
        init(ptr);
        // SAFETY: `init` initialised the value (callers write it completely);
        // the flag makes this the only reference ever created to it.
        Some(unsafe { &mut *ptr })
    }

    /// Takes a zero-filled byte-like buffer.
    #[allow(clippy::mut_from_ref)]
    pub fn take_zeroed(&'static self) -> Option<&'static mut T>
    where
        T: Zeroable,
    {
        self.take(|p| {
            // SAFETY: `p` points at this slot's storage, valid for one `T`;
            // `Zeroable` types are valid when all bytes are 0.
            unsafe { p.write_bytes(0, 1) }
        })
    }
}

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for plain integer arrays.
pub unsafe trait Zeroable {}
// SAFETY: integers are valid for every bit pattern, 0 included.
unsafe impl<const N: usize> Zeroable for [u8; N] {}
// SAFETY: as above.
unsafe impl<const N: usize> Zeroable for [i8; N] {}

static HEAD: Slot<KnnHead> = Slot::new();

/// The kNN head (139 KB of static RAM; one per run, whichever program
/// uses it). Built in place, so the value never passes through the stack.
pub fn knn_head() -> Option<&'static mut KnnHead> {
    HEAD.take(|p| {
        // SAFETY: `p` points at the slot's storage for one KnnHead; writing
        // a complete value initialises it.
        unsafe { p.write(KnnHead::new()) }
    })
}
