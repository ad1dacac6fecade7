//! Float embeddings from a training checkpoint, for evaluation: the burn
//! model in eval mode (BatchNorm running statistics), embedding `h` (not
//! the projection `z`), computed in batches.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;

use super::checkpoint;
use super::model::{SimClrModel, images_to_tensor};
use crate::embedder::Embedder;

/// Images per forward pass (bounds memory on large evaluation sets).
const EMBED_BATCH: usize = 256;

/// A trained float encoder behind the [`Embedder`] trait.
pub struct FloatModelEmbedder {
    model: SimClrModel,
    device: Device,
    input_size: usize,
    name: String,
}

impl FloatModelEmbedder {
    /// Loads a checkpoint folder, run folder or model folder (see
    /// [`checkpoint::resolve`]) onto the flex CPU device.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::load_on(path, Device::flex())
    }

    /// Loads onto a chosen device.
    pub fn load_on(path: &Path, device: Device) -> anyhow::Result<Self> {
        let loaded = checkpoint::load_model(path, &device)?;
        let name = format!(
            "float {} (step {})",
            loaded.dir.display(),
            loaded.state.step
        );
        Ok(Self::from_model(
            loaded.model,
            loaded.config.model.input_size,
            device,
            name,
        ))
    }

    /// Wraps an in-memory model (put in eval mode here).
    pub fn from_model(model: SimClrModel, input_size: usize, device: Device, name: String) -> Self {
        let model = model.valid().to_device(&device);
        FloatModelEmbedder {
            model,
            device,
            input_size,
            name,
        }
    }
}

impl Embedder for FloatModelEmbedder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn input_size(&self) -> usize {
        self.input_size
    }

    fn embed(&self, images: &[&[u8]]) -> anyhow::Result<Vec<Vec<f32>>> {
        let n = self.input_size * self.input_size;
        if let Some((i, im)) = images.iter().enumerate().find(|(_, im)| im.len() != n) {
            anyhow::bail!(
                "image {i} has {} pixels, the model expects {} x {}",
                im.len(),
                self.input_size,
                self.input_size
            );
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(EMBED_BATCH) {
            let h = self
                .model
                .embed(images_to_tensor(chunk, self.input_size, &self.device));
            let [rows, dim] = h.dims();
            let flat = h
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            out.extend((0..rows).map(|r| flat[r * dim..(r + 1) * dim].to_vec()));
        }
        Ok(out)
    }
}
