//! A random-weights int8 encoder blob, for tests and demos when no trained
//! model is at hand. It is a real blob (same format, same engine), only its
//! weights are random: a small CNN (three stride-2 3x3 convolutions with
//! ReLU, global average pool, linear to 128 values). Random convolutional
//! features still carry size, shape and texture, so a kNN head on them does
//! better than chance, which is all the simulator's own tests need; the
//! trained model (`models/seaclr-s.seaclr`) is what a deployment uses.
//!
//! The linear layer is calibrated on the given images: its per-output bias
//! centres the embedding and its per-output multiplier spreads it over about
//! +-40 int8 steps, so quantization keeps the differences between images.

use seaclr_edge::engine::Engine;
use seaclr_shared::blob::write::{self, ModelInfo, OwnedLayer, OwnedRequant, write_owned};
use seaclr_shared::blob::{BlobError, PREPROCESS_ID};
use seaclr_shared::labels::EMBEDDING_DIM;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn weight(&mut self) -> i8 {
        ((self.next() % 255) as i32 - 127) as i8
    }
}

/// `m` as a Q31 multiplier and shift; this model's multipliers are all
/// small and positive, so the rare refusal becomes a zero multiplier.
fn quantize_multiplier(m: f64) -> (i32, i8) {
    write::quantize_multiplier(m).unwrap_or((0, 0))
}

fn requant(input_zp: i8, output_zp: i8, min: i8, multipliers: &[f64]) -> OwnedRequant {
    let (m, s): (Vec<i32>, Vec<i8>) = multipliers.iter().map(|&m| quantize_multiplier(m)).unzip();
    OwnedRequant {
        input_zero_point: input_zp,
        output_zero_point: output_zp,
        activation_min: min,
        activation_max: 127,
        multipliers: m,
        shifts: s,
        output_scale: 1.0 / 64.0,
    }
}

fn layers(seed: u64, size: usize, linear_mult: &[f64], linear_bias: &[i32]) -> Vec<OwnedLayer> {
    let mut rng = SplitMix(seed);
    let channels = [1usize, 8, 16, 32];
    let guesses = [0.003, 0.002, 0.0015];
    let mut out = Vec::new();
    for l in 0..3 {
        let (cin, cout) = (channels[l], channels[l + 1]);
        let w: Vec<i8> = (0..cout * 9 * cin).map(|_| rng.weight()).collect();
        out.push(OwnedLayer::conv3x3(
            cin as u16,
            cout as u16,
            2,
            &w,
            &vec![0; cout],
            requant(-128, -128, -128, &vec![guesses[l]; cout]),
        ));
    }
    let side = size.div_ceil(8);
    out.push(OwnedLayer::global_avg_pool(
        32,
        requant(-128, -128, -128, &[1.0 / (side * side) as f64]),
    ));
    let w: Vec<i8> = (0..EMBEDDING_DIM * 32).map(|_| rng.weight()).collect();
    out.push(OwnedLayer::linear(
        32,
        EMBEDDING_DIM as u16,
        &w,
        linear_bias,
        requant(-128, 0, -128, linear_mult),
    ));
    out
}

/// Builds a random-weights blob for `size` x `size` inputs, calibrating the
/// last layer on `calibration` (preprocessed images; may be empty).
pub fn random_blob(seed: u64, size: usize, calibration: &[Vec<u8>]) -> Result<Vec<u8>, BlobError> {
    let info = ModelInfo {
        input_size: size as u16,
        preprocess_id: PREPROCESS_ID,
    };
    let first_mult = vec![0.0018; EMBEDDING_DIM];
    let blob = write_owned(info, &layers(seed, size, &first_mult, &[0; EMBEDDING_DIM]))?;
    if calibration.is_empty() {
        return Ok(blob);
    }
    let engine = Engine::new(&blob)?;
    let mut arena = vec![0u8; engine.arena_bytes()];
    let mut out = vec![0i8; EMBEDDING_DIM];
    let mut sum = vec![0f64; EMBEDDING_DIM];
    let mut sq = vec![0f64; EMBEDDING_DIM];
    let mut n = 0f64;
    for img in calibration.iter().filter(|i| i.len() == size * size) {
        if engine.encode(img, &mut arena, &mut out).is_ok() {
            for (i, &v) in out.iter().enumerate() {
                sum[i] += v as f64;
                sq[i] += (v as f64).powi(2);
            }
            n += 1.0;
        }
    }
    if n < 2.0 {
        return Ok(blob);
    }
    let mut mult = Vec::with_capacity(EMBEDDING_DIM);
    let mut bias = Vec::with_capacity(EMBEDDING_DIM);
    for i in 0..EMBEDDING_DIM {
        let mean = sum[i] / n;
        let std = (sq[i] / n - mean * mean).max(0.0).sqrt().max(0.5);
        // Output steps = M * acc: centre with bias = -mean/M, spread to ~40 steps.
        bias.push((-mean / first_mult[i]).round() as i32);
        mult.push(first_mult[i] * 40.0 / std);
    }
    write_owned(info, &layers(seed, size, &mult, &bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_round_trips() {
        for m in [0.0018, 0.5, 0.9999, 1.0 / 64.0, 3.0] {
            let (q, s) = quantize_multiplier(m);
            let back = q as f64 / (1u64 << 31) as f64 * 2f64.powi(s as i32);
            assert!((back - m).abs() / m < 1e-6, "{m} -> {back}");
        }
    }

    #[test]
    fn random_blob_runs_on_the_engine_and_separates_images() {
        let dark: Vec<u8> = (0..64 * 64)
            .map(|i| if (i / 64) % 16 < 8 { 30 } else { 255 })
            .collect();
        let ring: Vec<u8> = (0..64 * 64)
            .map(|i| {
                let (x, y) = (i % 64 - 32, i / 64 - 32);
                if (200..400).contains(&(x * x + y * y)) {
                    60
                } else {
                    255
                }
            })
            .collect();
        let blob = random_blob(7, 64, &[dark.clone(), ring.clone(), vec![255; 64 * 64]]).unwrap();
        let engine = Engine::new(&blob).unwrap();
        assert_eq!(
            (engine.input_size(), engine.embedding_dim()),
            (64, EMBEDDING_DIM)
        );
        let mut arena = vec![0u8; engine.arena_bytes()];
        let mut a = vec![0i8; EMBEDDING_DIM];
        let mut b = vec![0i8; EMBEDDING_DIM];
        engine.encode(&dark, &mut arena, &mut a).unwrap();
        engine.encode(&ring, &mut arena, &mut b).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().any(|&v| v != 0));
    }
}
