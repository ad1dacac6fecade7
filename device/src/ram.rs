//! Every byte of RAM the application uses, in one statically sized struct.
//!
//! There is no heap: a board places one [`DeviceRam`] in a `static` (the
//! Cortex-M board) or a `Box` (the host simulator), so the linker's figure
//! and [`RamPlan`] are the same numbers, not an estimate.

use core::fmt;
use seaclr_edge::knn::KnnHead;
use seaclr_shared::labels::EMBEDDING_DIM;

/// Activation arena capacity; a model asking for more is refused at boot.
pub const ARENA_CAPACITY: usize = 96 * 1024;
/// Largest ROI side the camera buffer holds (bigger ROIs are binned 2x2 by
/// the camera before they reach RAM).
pub const MAX_ROI_SIDE: usize = 320;
/// Largest model input side (the default model takes 64 x 64).
pub const MAX_INPUT_SIDE: usize = 96;
/// Recent frames the console can label.
pub const RECENT_FRAMES: usize = 256;
/// Bytes of a frame id kept (its tail: the file name or ROI number).
pub const FRAME_ID_LEN: usize = 96;
/// Stack reserved for the deepest call path (encode, console, flash
/// driver, screen): the Cortex-M7 board's painted-stack high-water mark for
/// a whole buoy run is 18.0 KiB (BENCHMARKS.md), so 24 KiB leaves a margin.
pub const STACK_RESERVE: usize = 24 * 1024;

/// A frame id: the last [`FRAME_ID_LEN`] bytes of a path or ROI id.
pub type FrameId = heapless::String<FRAME_ID_LEN>;

/// The tail of `id` that fits a [`FrameId`]: whole path components when
/// it has to be cut (else a character boundary).
pub fn frame_id(id: &str) -> FrameId {
    let mut start = id.len().saturating_sub(FRAME_ID_LEN);
    if start > 0
        && let Some(slash) = id[start..].find('/')
    {
        start += slash + 1;
    }
    while !id.is_char_boundary(start) {
        start += 1;
    }
    let mut out = FrameId::new();
    // Cannot fail: at most FRAME_ID_LEN bytes remain.
    let _ = out.push_str(&id[start..]);
    out
}

/// A classified frame the console may still label.
pub struct Recent {
    /// Frame number since boot.
    pub number: u64,
    /// Frame id.
    pub id: FrameId,
    /// Its centred int8 embedding.
    pub embedding: [i8; EMBEDDING_DIM],
}

/// The application's RAM, all of it.
pub struct DeviceRam {
    /// The kNN head (examples, classes, threshold).
    pub head: KnnHead,
    /// The engine's activation arena.
    pub arena: [u8; ARENA_CAPACITY],
    /// The camera's ROI buffer (gray, row-major).
    pub roi: [u8; MAX_ROI_SIDE * MAX_ROI_SIDE],
    /// The preprocessed model input.
    pub input: [u8; MAX_INPUT_SIDE * MAX_INPUT_SIDE],
    /// Recent frames, for `label`.
    pub recent: heapless::Deque<Recent, RECENT_FRAMES>,
}

impl Default for DeviceRam {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceRam {
    /// Zeroed RAM; `const` so a board can put it in a `static`.
    pub const fn new() -> Self {
        Self {
            head: KnnHead::new(),
            arena: [0; ARENA_CAPACITY],
            roi: [0; MAX_ROI_SIDE * MAX_ROI_SIDE],
            input: [0; MAX_INPUT_SIDE * MAX_INPUT_SIDE],
            recent: heapless::Deque::new(),
        }
    }

    /// This struct's sizes, against `budget` (see [`RamPlan::check`]).
    pub fn plan(budget: usize) -> RamPlan {
        use core::mem::size_of;
        RamPlan {
            arena: ARENA_CAPACITY,
            knn: size_of::<KnnHead>(),
            frame_buffers: MAX_ROI_SIDE * MAX_ROI_SIDE + MAX_INPUT_SIDE * MAX_INPUT_SIDE,
            recent_frames: size_of::<heapless::Deque<Recent, RECENT_FRAMES>>(),
            app_state: size_of::<DeviceRam>()
                - ARENA_CAPACITY
                - size_of::<KnnHead>()
                - MAX_ROI_SIDE * MAX_ROI_SIDE
                - MAX_INPUT_SIDE * MAX_INPUT_SIDE
                - size_of::<heapless::Deque<Recent, RECENT_FRAMES>>(),
            stack: STACK_RESERVE,
            budget,
        }
    }
}

/// RAM use by component, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamPlan {
    /// Engine activation arena (its capacity).
    pub arena: usize,
    /// kNN head: examples, norms, ids, classes.
    pub knn: usize,
    /// ROI buffer + preprocessed input.
    pub frame_buffers: usize,
    /// Recent frames kept so the console can label them.
    pub recent_frames: usize,
    /// Padding and small fields of [`DeviceRam`].
    pub app_state: usize,
    /// Stack reserve.
    pub stack: usize,
    /// The budget.
    pub budget: usize,
}

impl RamPlan {
    /// Total of all components.
    pub fn total(&self) -> usize {
        self.arena
            + self.knn
            + self.frame_buffers
            + self.recent_frames
            + self.app_state
            + self.stack
    }

    /// `Err` when the plan exceeds the budget.
    pub fn check(&self) -> Result<(), RamPlan> {
        if self.total() > self.budget {
            Err(*self)
        } else {
            Ok(())
        }
    }
}

/// Bytes as KiB with one decimal.
#[derive(Debug, Clone, Copy)]
pub struct Kib(pub usize);

impl fmt::Display for Kib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integer arithmetic: tenths of a KiB, rounded half up.
        let tenths = (self.0 * 10 + 512) / 1024;
        write!(f, "{}.{} KiB", tenths / 10, tenths % 10)
    }
}

impl fmt::Display for RamPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arena {} + kNN {} + frame buffers {} + recent frames {} + state {} + stack {} = {} of {}",
            Kib(self.arena),
            Kib(self.knn),
            Kib(self.frame_buffers),
            Kib(self.recent_frames),
            Kib(self.app_state),
            Kib(self.stack),
            Kib(self.total()),
            Kib(self.budget)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn the_plan_adds_up_to_the_struct_and_the_stack() {
        let plan = DeviceRam::plan(512 * 1024);
        assert_eq!(
            plan.total(),
            core::mem::size_of::<DeviceRam>() + STACK_RESERVE
        );
        assert!(plan.check().is_ok(), "{plan}");
        assert!(DeviceRam::plan(64 * 1024).check().is_err());
    }

    #[test]
    fn kib_rounds_to_tenths_and_ids_keep_their_tail() {
        assert_eq!(Kib(1536).to_string(), "1.5 KiB");
        assert_eq!(Kib(0).to_string(), "0.0 KiB");
        let long = "d/".repeat(100) + "é.jpg";
        let id = frame_id(&long);
        assert!(id.len() <= FRAME_ID_LEN && long.ends_with(id.as_str()));
        assert!(id.ends_with("é.jpg") && !id.starts_with('/'));
        let path = std::format!("{}/Noctilucales/{}.jpg", "x".repeat(40), "y".repeat(60));
        assert!(
            frame_id(&path).starts_with("Noctilucales/"),
            "{}",
            frame_id(&path)
        );
    }
}
