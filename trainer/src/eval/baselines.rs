//! The encoder-shaped baseline: the seaclr-s architecture with random
//! He-initialised weights. Beating it shows that training, not the
//! architecture's inductive bias alone, makes the embedding useful.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::embedder::Embedder;
use crate::float_encoder::{FloatEncoder, FloatLayer};
use crate::simclr::model::ModelConfig;

/// One standard normal sample (Box-Muller), so no extra distribution crate is needed.
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// seaclr-s ([`ModelConfig::seaclr_s`]) with random weights: its 3x3
/// convolutions with ReLU, weights drawn from N(0, 2 / fan_in) (He), zero
/// biases, then global average pooling. Deterministic for a given seed.
pub fn random_seaclr_s(input_size: usize, seed: u64) -> FloatEncoder {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers: Vec<FloatLayer> = ModelConfig::seaclr_s()
        .conv_shapes()
        .into_iter()
        .map(|(in_channels, out_channels, stride)| {
            let fan_in = in_channels * 9;
            let std = (2.0 / fan_in as f32).sqrt();
            let weights = (0..out_channels * fan_in)
                .map(|_| std * standard_normal(&mut rng))
                .collect();
            FloatLayer::Conv3x3 {
                in_channels,
                out_channels,
                stride,
                weights,
                bias: vec![0.0; out_channels],
                relu: true,
            }
        })
        .collect();
    layers.push(FloatLayer::GlobalAvgPool);
    FloatEncoder { input_size, layers }
}

/// Any [`FloatEncoder`] as an [`Embedder`], images embedded in parallel with
/// the reference forward pass.
pub struct FloatEncoderEmbedder {
    /// Name shown in reports.
    pub name: String,
    /// The encoder.
    pub encoder: FloatEncoder,
}

impl Embedder for FloatEncoderEmbedder {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn input_size(&self) -> usize {
        self.encoder.input_size
    }
    fn embed(&self, images: &[&[u8]]) -> anyhow::Result<Vec<Vec<f32>>> {
        let expected = self.encoder.input_size * self.encoder.input_size;
        if let Some(bad) = images.iter().position(|im| im.len() != expected) {
            anyhow::bail!(
                "{}: image {bad} has {} pixels, expected {expected}",
                self.name,
                images[bad].len()
            );
        }
        Ok(images
            .par_iter()
            .map(|im| self.encoder.forward(im))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_encoder_has_seaclr_s_shape_and_is_seeded() {
        let a = random_seaclr_s(16, 7);
        assert_eq!(a.layers.len(), 9);
        assert_eq!(a.embedding_dim(), 128);
        assert_eq!(a, random_seaclr_s(16, 7));
        assert_ne!(a, random_seaclr_s(16, 8));
        // He initialisation: sample variance of the first layer near 2 / 9.
        let FloatLayer::Conv3x3 { weights, .. } = &a.layers[2] else {
            panic!("conv")
        };
        let var = weights.iter().map(|w| w * w).sum::<f32>() / weights.len() as f32;
        assert!((var - 2.0 / 144.0).abs() < 0.2 * 2.0 / 144.0, "{var}");
    }

    #[test]
    fn embedder_embeds_and_rejects_wrong_sizes() {
        let e = FloatEncoderEmbedder {
            name: "random".into(),
            encoder: random_seaclr_s(16, 1),
        };
        let dark = vec![0u8; 256];
        let mut half = vec![255u8; 256];
        half[..128].fill(0);
        let out = e.embed(&[&dark, &half]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 128);
        assert_ne!(out[0], out[1]);
        let err = e.embed(&[&dark[..10]]).unwrap_err().to_string();
        assert!(err.contains("10 pixels"), "{err}");
    }
}
