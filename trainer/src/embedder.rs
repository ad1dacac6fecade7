//! Anything that turns preprocessed images into embedding vectors, so float,
//! int8 and baseline encoders are judged by the same evaluation code.

use std::path::Path;

/// Turns preprocessed `S x S` gray images into embedding vectors.
pub trait Embedder: Send + Sync {
    /// A short name for reports ("seaclr-s float", "raw pixels", ...).
    fn name(&self) -> String;
    /// Side of the square input the embedder expects.
    fn input_size(&self) -> usize;
    /// Embeds a batch of preprocessed images (each `input_size^2` bytes).
    fn embed(&self, images: &[&[u8]]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// The baseline every encoder must beat: the preprocessed image itself as a
/// vector (darkness in 0..1, so the white background is 0).
pub struct RawPixels {
    /// Side of the square input.
    pub size: usize,
}

impl Embedder for RawPixels {
    fn name(&self) -> String {
        "raw pixels".into()
    }
    fn input_size(&self) -> usize {
        self.size
    }
    fn embed(&self, images: &[&[u8]]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(images
            .iter()
            .map(|im| {
                im.iter()
                    .map(|&p| crate::float_encoder::pixel_to_input(p))
                    .collect()
            })
            .collect())
    }
}

/// Opens a model by path, its kind read from the content
/// ([`crate::ui::model_kind`]): an int8 blob runs through the edge crate,
/// anything else is treated as a float checkpoint.
pub fn load_embedder(path: &Path) -> anyhow::Result<Box<dyn Embedder>> {
    match crate::ui::model_kind(path)? {
        crate::ui::ModelKind::Int8 => Ok(Box::new(crate::quant::Int8Embedder::open(path)?)),
        crate::ui::ModelKind::Float => Ok(Box::new(crate::simclr::FloatModelEmbedder::load(path)?)),
    }
}
