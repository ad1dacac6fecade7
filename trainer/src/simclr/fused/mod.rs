//! One encoder block in training mode — 3x3 conv, BatchNorm on the batch's
//! statistics, ReLU — as one burn operation with its own backward pass.
//!
//! burn's generic path runs the block as three operations on NCHW tensors,
//! and on the CPU backend most of a training step then goes to moving data
//! between layouts (BENCHMARKS.md, "Where the time goes"). Through burn's
//! backend-extension mechanism, the CPU backend (`Flex`, and `Autodiff<Flex>`
//! with a handwritten backward) runs the block as the channels-last kernels
//! of [`cpu`]; every other backend runs [`block_train_generic`], burn's own
//! operations, and differentiates it as usual. Activations between blocks
//! are channels-last (`[batch, height, width, channels]`) on both paths.

pub mod cpu;
#[cfg(feature = "flex")]
mod flex;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// What a block returns in training mode.
#[derive(Debug, Clone)]
pub struct BlockTrainOutput {
    /// Output after ReLU, channels-last `[batch, out_h, out_w, out]`.
    pub output: Tensor<4>,
    /// Per-channel batch mean of the convolution output (for the running mean).
    pub mean: Tensor<1>,
    /// Per-channel biased batch variance (for the running variance).
    pub variance: Tensor<1>,
}

/// The block's parameters, as burn's `Conv2d` and `BatchNorm` hold them.
#[derive(Debug, Clone)]
pub struct BlockParams {
    /// Conv weight `[out, in, 3, 3]`.
    pub weight: Tensor<4>,
    /// BatchNorm scale `[out]`.
    pub gamma: Tensor<1>,
    /// BatchNorm shift `[out]`.
    pub beta: Tensor<1>,
    /// Conv stride (padding is 1).
    pub stride: usize,
    /// BatchNorm epsilon.
    pub epsilon: f64,
}

/// Set by [`use_generic_blocks`].
static GENERIC_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes [`block_train`] run burn's generic operations on every device, so
/// `seaclr bench train --block generic` measures the fused kernels against
/// burn's own path in one binary.
pub fn use_generic_blocks(generic: bool) {
    GENERIC_ONLY.store(generic, Ordering::Relaxed);
}

/// Whether [`use_generic_blocks`] is in force.
pub fn generic_only() -> bool {
    GENERIC_ONLY.load(Ordering::Relaxed)
}

/// Runs the block on `input` (channels-last): the fused kernels where the
/// device has them (the CPU backend), burn's generic operations elsewhere.
pub fn block_train(input: Tensor<4>, params: BlockParams) -> BlockTrainOutput {
    if runs_fused(&input.device()) {
        #[cfg(feature = "flex")]
        return flex::block_train_fused(input, params);
    }
    block_train_generic(input, params)
}

/// Whether [`block_train`] runs the fused kernels on `device` now.
pub fn runs_fused(device: &Device) -> bool {
    !generic_only() && has_fused_kernels(device)
}

/// Whether the backend of `device` has the fused kernels.
pub fn has_fused_kernels(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        matches!(
            device.clone().inner().as_dispatch(),
            burn::backend::DispatchDevice::Flex(_)
        )
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// The block out of burn's own operations (permute to NCHW, `conv2d`,
/// `batch_norm_train`, `relu`, permute back): what every backend without
/// fused kernels runs, and the reference the fused kernels are tested
/// against.
pub fn block_train_generic(input: Tensor<4>, params: BlockParams) -> BlockTrainOutput {
    let nchw = input.permute([0, 3, 1, 2]);
    let stride = params.stride;
    let conv = conv2d(
        nchw,
        params.weight,
        None,
        ConvOptions::new([stride, stride], [1, 1], [1, 1], 1),
    );
    let normalised = batch_norm_train(conv, params.gamma, params.beta, params.epsilon);
    BlockTrainOutput {
        output: relu(normalised.output).permute([0, 2, 3, 1]),
        mean: normalised.mean,
        variance: normalised.variance,
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
