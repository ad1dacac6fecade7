//! SimCLR training on burn: model, augmentations, NT-Xent loss, training loop,
//! checkpoints, benchmark and a float embedder for evaluation.

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod fused;
pub mod infer;
pub mod loss;
pub mod model;
pub mod train;

pub use infer::FloatModelEmbedder;

use std::path::Path;

use crate::float_encoder::FloatEncoder;

/// Loads a float checkpoint and exports it with BatchNorm folded, ready for
/// quantization and for the plain-Rust reference forward pass.
///
/// `path` is a checkpoint folder, a run folder (its best, else latest
/// checkpoint) or a model folder such as `models/seaclr-s`.
pub fn load_float_encoder(path: &Path) -> anyhow::Result<FloatEncoder> {
    let device = burn::tensor::Device::flex();
    let loaded = checkpoint::load_model(path, &device)?;
    loaded
        .model
        .export_float_encoder(loaded.config.model.input_size)
}
