//! What the firmware would cost on a microcontroller: RAM (enforced at
//! boot against a budget), flash, and compute per frame.
//!
//! RAM is static on the device (no heap), so the budget is the sum of the
//! fixed buffers: the engine's activation arena, the kNN head's example
//! table, the frame buffers (the largest ROI the camera may deliver plus the
//! preprocessed image and the embedding), the recent-frames ring the console
//! labels from, and a stack estimate. If the sum exceeds the budget the buoy
//! refuses to boot, as a linker would refuse to place the sections.

use std::fmt;

/// Default RAM budget: 512 KiB (e.g. an STM32H7's AXI SRAM, an nRF5340 app core).
pub const DEFAULT_RAM_BUDGET: usize = 512 * 1024;
/// Stack estimate: the deepest call path (engine kernels + console + flash
/// driver) with margin; a real build would measure it with stack painting.
pub const STACK_ESTIMATE: usize = 16 * 1024;
/// Clock of the reference MCU (Cortex-M4F class) used for time estimates.
pub const REFERENCE_CLOCK_HZ: u64 = 168_000_000;
/// Cycles per int8 MAC of the edge crate's portable conv kernel (the one
/// an MCU build runs) on that single-issue core: its thumbv7em release
/// inner loop is one `ldrsb`, one `ldrsh` and one `smlabb` per MAC,
/// unrolled 32 times, about 3.2 instructions per MAC with the loop
/// (BENCHMARKS.md). A CMSIS-NN-style kernel (`smlad`, two MACs per
/// instruction) would bring this near 1.
pub const CYCLES_PER_MAC: f64 = 3.2;

/// RAM use by component, bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamPlan {
    /// Engine activation arena.
    pub arena: usize,
    /// kNN head: examples x (embedding + class id).
    pub knn: usize,
    /// Largest raw ROI + preprocessed image + embedding.
    pub frame_buffers: usize,
    /// Recent frames kept so the console can label them (embeddings).
    pub recent_frames: usize,
    /// Stack estimate.
    pub stack: usize,
    /// The budget.
    pub budget: usize,
}

impl RamPlan {
    /// Total of all components.
    pub fn total(&self) -> usize {
        self.arena + self.knn + self.frame_buffers + self.recent_frames + self.stack
    }

    /// `Err` with a readable breakdown when the plan exceeds the budget.
    pub fn check(&self) -> Result<(), String> {
        if self.total() > self.budget {
            return Err(format!(
                "RAM budget exceeded: need {} but the budget is {} ({self}); lower --max-examples or --max-roi, or raise --ram-kib",
                kib(self.total()),
                kib(self.budget)
            ));
        }
        Ok(())
    }
}

impl fmt::Display for RamPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arena {} + kNN {} + frame buffers {} + recent frames {} + stack {} = {} of {}",
            kib(self.arena),
            kib(self.knn),
            kib(self.frame_buffers),
            kib(self.recent_frames),
            kib(self.stack),
            kib(self.total()),
            kib(self.budget)
        )
    }
}

/// Bytes as KiB with one decimal.
pub fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// Inputs of a RAM plan.
#[derive(Debug, Clone, Copy)]
pub struct RamInputs {
    /// Engine arena bytes.
    pub arena: usize,
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// Preprocessed side (e.g. 64).
    pub input_size: usize,
    /// Largest ROI side accepted from the camera.
    pub max_roi_side: usize,
    /// kNN capacity in examples.
    pub max_examples: usize,
    /// Recent frames kept for labelling.
    pub recent_frames: usize,
    /// Budget.
    pub budget: usize,
}

/// The RAM plan for the given sizes.
pub fn plan_ram(i: RamInputs) -> RamPlan {
    RamPlan {
        arena: i.arena,
        // Each example: int8 embedding + u16 class + u32 record id.
        knn: i.max_examples * (i.embedding_dim + 2 + 4),
        frame_buffers: i.max_roi_side * i.max_roi_side
            + i.input_size * i.input_size
            + i.embedding_dim,
        // Each recent frame: embedding + u64 frame number.
        recent_frames: i.recent_frames * (i.embedding_dim + 8),
        stack: STACK_ESTIMATE,
        budget: i.budget,
    }
}

/// Estimated MCU time per frame for `macs` multiply-accumulates.
pub fn mcu_ms_per_frame(macs: u64) -> f64 {
    macs as f64 * CYCLES_PER_MAC / REFERENCE_CLOCK_HZ as f64 * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> RamInputs {
        RamInputs {
            arena: 100_000,
            embedding_dim: 64,
            input_size: 64,
            max_roi_side: 512,
            max_examples: 512,
            recent_frames: 256,
            budget: DEFAULT_RAM_BUDGET,
        }
    }

    #[test]
    fn plan_adds_up_and_fits_the_default_budget() {
        let p = plan_ram(inputs());
        assert_eq!(p.knn, 512 * 70);
        assert_eq!(p.frame_buffers, 512 * 512 + 64 * 64 + 64);
        assert_eq!(
            p.total(),
            p.arena + p.knn + p.frame_buffers + p.recent_frames + p.stack
        );
        assert!(p.check().is_ok(), "{p}");
    }

    #[test]
    fn over_budget_is_refused_with_a_breakdown() {
        let p = plan_ram(RamInputs {
            arena: 300_000,
            ..inputs()
        });
        let e = p.check().unwrap_err();
        assert!(
            e.contains("RAM budget exceeded") && e.contains("arena 293.0 KiB"),
            "{e}"
        );
        // Exactly at the budget is fine, one byte over is not.
        let exact = RamPlan {
            budget: p.total(),
            ..p.clone()
        };
        assert!(exact.check().is_ok());
        let over = RamPlan {
            budget: p.total() - 1,
            ..p
        };
        assert!(over.check().is_err());
    }

    #[test]
    fn time_estimate_scales_with_macs() {
        // 52.5 M MACs x 3.2 cycles = 168 M cycles = one second at 168 MHz.
        assert!((mcu_ms_per_frame(52_500_000) - 1000.0).abs() < 1e-6);
        assert!((mcu_ms_per_frame(5_250_000) - 100.0).abs() < 1e-6);
    }
}
