//! The int8 model as an [`Embedder`]: every image runs through the edge
//! engine exactly as on the device, then the embedding is dequantized.

use std::path::Path;

use anyhow::{Context, Result, anyhow, ensure};
use rayon::prelude::*;
use seaclr_edge::engine::Engine;
use seaclr_edge::knn::centre_embedding;

use crate::embedder::Embedder;

/// A `.seaclr` blob run by `seaclr_edge::engine::Engine`.
pub struct Int8Embedder {
    name: String,
    blob: Vec<u8>,
    input_size: usize,
}

impl Int8Embedder {
    /// Checks the blob (all of `Engine::new`'s checks) and keeps it.
    pub fn from_bytes(name: impl Into<String>, blob: Vec<u8>) -> Result<Int8Embedder> {
        let name = name.into();
        let input_size = Engine::new(&blob)
            .map_err(|e| anyhow!("{name}: {e}"))?
            .input_size();
        Ok(Int8Embedder {
            name,
            blob,
            input_size,
        })
    }

    /// Reads and checks a blob file.
    pub fn open(path: &Path) -> Result<Int8Embedder> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Int8Embedder::from_bytes(path.display().to_string(), bytes)
    }

    /// The blob bytes.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Raw int8 embeddings (what the device stores), one per image.
    pub fn embed_int8(&self, images: &[&[u8]]) -> Result<Vec<Vec<i8>>> {
        let engine = Engine::new(&self.blob).map_err(|e| anyhow!("{}: {e}", self.name))?;
        images
            .par_iter()
            .enumerate()
            .map_init(
                || vec![0u8; engine.arena_bytes()],
                |arena, (i, im)| {
                    let mut out = vec![0i8; engine.embedding_dim()];
                    engine
                        .encode(im, arena, &mut out)
                        .map_err(|e| anyhow!("{}: image {i}: {e}", self.name))?;
                    Ok(out)
                },
            )
            .collect()
    }
}

impl Int8Embedder {
    /// Int8 embeddings centred on the engine's output zero point: what the
    /// device's kNN head stores and compares (see `seaclr_edge::knn`).
    pub fn embed_centred(&self, images: &[&[u8]]) -> Result<Vec<Vec<i8>>> {
        let engine = Engine::new(&self.blob).map_err(|e| anyhow!("{}: {e}", self.name))?;
        let zero_point = engine.header().output_zero_point;
        self.embed_int8(images)?
            .into_iter()
            .map(|raw| {
                let mut out = vec![0i8; raw.len()];
                centre_embedding(&raw, zero_point, &mut out)
                    .map_err(|e| anyhow!("{}: {e}", self.name))?;
                Ok(out)
            })
            .collect()
    }
}

impl Embedder for Int8Embedder {
    fn name(&self) -> String {
        format!("int8 {}", self.name)
    }
    fn input_size(&self) -> usize {
        self.input_size
    }
    fn embed(&self, images: &[&[u8]]) -> Result<Vec<Vec<f32>>> {
        for (i, im) in images.iter().enumerate() {
            ensure!(
                im.len() == self.input_size * self.input_size,
                "image {i}: {} bytes, expected {}",
                im.len(),
                self.input_size * self.input_size
            );
        }
        let engine = Engine::new(&self.blob).map_err(|e| anyhow!("{}: {e}", self.name))?;
        let (zp, scale) = (
            engine.header().output_zero_point as i32,
            engine.header().output_scale,
        );
        Ok(self
            .embed_int8(images)?
            .into_iter()
            .map(|q| {
                q.into_iter()
                    .map(|v| (v as i32 - zp) as f32 * scale)
                    .collect()
            })
            .collect())
    }
}
