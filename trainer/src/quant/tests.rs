//! Quantizer tests on a random-weight seaclr-s and synthetic plankton-like images.

use super::inspect::{self, ARENA_BUDGET_BYTES, BLOB_BUDGET_BYTES, MACS_BUDGET};
use super::*;
use crate::embedder::Embedder;
use crate::simclr::model::ModelConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller: rand_distr is not a dependency.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// seaclr-s ([`ModelConfig::seaclr_s`]) with He-initialised weights and small
/// random biases: its 3x3 convs with ReLU, then global average pooling.
pub(crate) fn random_seaclr_s(seed: u64, size: usize) -> FloatEncoder {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers: Vec<FloatLayer> = ModelConfig::seaclr_s()
        .conv_shapes()
        .into_iter()
        .map(|(cin, cout, stride)| {
            let std = (2.0 / (cin * 9) as f32).sqrt();
            let weights = (0..cout * cin * 9)
                .map(|_| normal(&mut rng) * std)
                .collect();
            let bias = (0..cout).map(|_| normal(&mut rng) * 0.05).collect();
            FloatLayer::Conv3x3 {
                in_channels: cin,
                out_channels: cout,
                stride,
                weights,
                bias,
                relu: true,
            }
        })
        .collect();
    layers.push(FloatLayer::GlobalAvgPool);
    FloatEncoder {
        input_size: size,
        layers,
    }
}

/// White images with a few dark ellipses and strokes, like plankton on a
/// FlowCam background.
pub(crate) fn synthetic_images(n: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut im = vec![255u8; size * size];
            for _ in 0..rng.random_range(1..4) {
                let (cx, cy) = (
                    rng.random_range(0.2..0.8) * size as f32,
                    rng.random_range(0.2..0.8) * size as f32,
                );
                let (rx, ry) = (
                    rng.random_range(0.05..0.35) * size as f32,
                    rng.random_range(0.05..0.35) * size as f32,
                );
                let angle: f32 = rng.random_range(0.0..std::f32::consts::PI);
                let darkness: f32 = rng.random_range(60.0..230.0);
                let (s, c) = angle.sin_cos();
                for y in 0..size {
                    for x in 0..size {
                        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                        let (u, v) = ((dx * c + dy * s) / rx, (-dx * s + dy * c) / ry);
                        let d = u * u + v * v;
                        if d < 1.0 {
                            let shade = darkness * (1.0 - 0.5 * d) + rng.random_range(-10.0..10.0);
                            let p = &mut im[y * size + x];
                            *p = (*p as f32 - shade).clamp(0.0, 255.0) as u8;
                        }
                    }
                }
            }
            im
        })
        .collect()
}

fn refs(images: &[Vec<u8>]) -> Vec<&[u8]> {
    images.iter().map(Vec::as_slice).collect()
}

#[test]
fn multiplier_and_shift_reproduce_the_real_value() {
    for real in [
        1e-9,
        3.7e-5,
        0.001,
        0.25,
        0.5,
        0.7,
        0.999_999_999_9,
        1.0,
        1.5,
        1234.5,
    ] {
        let (m, s) = quantize_multiplier(real).unwrap();
        assert!(
            (1 << 30..=i32::MAX).contains(&m),
            "{real}: multiplier {m} not normalised"
        );
        let back = m as f64 / (1u64 << 31) as f64 * 2f64.powi(s as i32);
        assert!(
            (back - real).abs() <= real * 1e-9,
            "{real} -> ({m}, {s}) -> {back}"
        );
    }
    assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
    assert_eq!(quantize_multiplier(1e-30).unwrap(), (0, 0));
    assert!(quantize_multiplier(-1.0).is_err());
    assert!(quantize_multiplier(f64::NAN).is_err());
}

#[test]
fn affine_quantization_represents_zero_exactly() {
    let q = ActQuant::affine(TensorRange { min: 0.0, max: 6.0 });
    assert_eq!(q.zero_point, -128);
    assert!((q.scale - 6.0 / 255.0).abs() < 1e-12);
    let q = ActQuant::affine(TensorRange {
        min: -1.0,
        max: 3.0,
    });
    assert_eq!(q.zero_point, (-128.0f64 + 255.0 / 4.0).round() as i8);
    let q = ActQuant::symmetric(TensorRange {
        min: 0.0,
        max: 2.54,
    });
    assert_eq!(q.zero_point, 0);
    assert!((q.scale - 0.02).abs() < 1e-9);
}

#[test]
fn too_few_calibration_images_is_an_error() {
    let enc = random_seaclr_s(1, 16);
    let images = synthetic_images(10, 16, 1);
    let err = quantize(&enc, &refs(&images), QuantOptions::default()).unwrap_err();
    assert!(err.to_string().contains("at least 512"), "{err}");
}

/// The acceptance test of the quantizer: random seaclr-s, 64 x 64 synthetic
/// images, int8 (through the edge engine) vs float reference.
#[test]
fn int8_seaclr_s_agrees_with_float() {
    let enc = random_seaclr_s(7, 64);
    let calib = synthetic_images(160, 64, 11);
    let eval = synthetic_images(80, 64, 12);
    let q = quantize(
        &enc,
        &refs(&calib),
        QuantOptions {
            range: RangeMethod::MinMax,
            min_calibration_images: 160,
        },
    )
    .unwrap();
    let report = inspect::verify(&q.blob, &enc, &refs(&eval)).unwrap();
    eprintln!("{report}");
    assert!(report.mean_cosine >= 0.98, "{report}");
    assert!(report.min_cosine >= 0.9, "{report}");
    // The embedding is symmetric so the device can dot int8 values directly.
    assert_eq!(inspect::inspect(&q.blob).unwrap().output_zero_point, 0);
}

#[test]
fn percentile_ranges_are_inside_min_max() {
    let enc = random_seaclr_s(3, 32);
    let calib = synthetic_images(48, 32, 5);
    let mm = calibrate(&enc, &refs(&calib), RangeMethod::MinMax).unwrap();
    let pc = calibrate(&enc, &refs(&calib), RangeMethod::Percentile(99.0)).unwrap();
    assert_eq!(mm.len(), enc.layers.len());
    for (a, b) in mm.iter().zip(&pc) {
        assert!(b.max <= a.max && b.min >= a.min, "{a:?} vs {b:?}");
    }
    // ReLU outputs: 99th percentile strictly below the maximum somewhere.
    assert!(mm.iter().zip(&pc).any(|(a, b)| b.max < a.max));
}

#[test]
fn int8_embedder_dequantizes_the_engine_output() {
    let enc = random_seaclr_s(5, 32);
    let calib = synthetic_images(32, 32, 6);
    let q = quantize(
        &enc,
        &refs(&calib),
        QuantOptions {
            range: RangeMethod::MinMax,
            min_calibration_images: 32,
        },
    )
    .unwrap();
    let emb = Int8Embedder::from_bytes("test", q.blob.clone()).unwrap();
    assert_eq!(emb.input_size(), 32);
    let images = refs(&calib[..4]);
    let raw = emb.embed_int8(&images).unwrap();
    let deq = emb.embed(&images).unwrap();
    let scale = q.activations.last().unwrap().scale as f32;
    for (r, d) in raw.iter().zip(&deq) {
        assert_eq!(r.len(), 128);
        for (&a, &b) in r.iter().zip(d) {
            assert_eq!(a as f32 * scale, b);
        }
    }
    assert!(emb.embed(&[&[0u8; 10][..]]).is_err());
    assert!(Int8Embedder::from_bytes("broken", q.blob[..100].to_vec()).is_err());
}

/// Budgets for the seaclr-s shape at 64 x 64: the figures are computed from
/// the blob the quantizer writes, and asserted exactly.
#[test]
fn seaclr_s_budget_figures() {
    let enc = random_seaclr_s(9, 64);
    let calib = synthetic_images(8, 64, 9);
    let acts = calibrate(&enc, &refs(&calib), RangeMethod::MinMax).unwrap();
    let n = acts.len();
    let acts: Vec<ActQuant> = acts
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            if i + 1 == n {
                ActQuant::symmetric(r)
            } else {
                ActQuant::affine(r)
            }
        })
        .collect();
    let blob = quantize_with(&enc, &acts).unwrap();
    let r = inspect::inspect(&blob).unwrap();
    // MACs: per conv out_h * out_w * out_c * in_c * 9; stage 4 enters at 96.
    let convs = [
        (32, 1, 16),
        (32, 16, 16),
        (16, 16, 32),
        (16, 32, 32),
        (8, 32, 64),
        (8, 64, 64),
        (4, 64, 96),
        (4, 96, 128),
    ];
    let macs: u64 = convs
        .iter()
        .map(|&(s, cin, cout)| (s * s * cout * cin * 9) as u64)
        .sum();
    assert_eq!(r.macs, macs);
    assert_eq!(r.macs, 12_238_848);
    // Arena: 3 alignment + i16 patch of 9 * 96 inputs (the widest conv
    // input) + 2 x the largest activation (32 x 32 x 16 after the first conv).
    assert_eq!(r.arena_bytes, 3 + 9 * 96 * 2 + 2 * 32 * 32 * 16);
    assert!(r.arena_bytes <= ARENA_BUDGET_BYTES);
    assert!(r.macs <= MACS_BUDGET);
    let weights: usize = convs.iter().map(|&(_, cin, cout)| cin * cout * 9).sum();
    assert_eq!(weights, 237_456);
    // Per output channel: i32 bias, i32 multiplier, i8 shift.
    let out_channels: usize = convs.iter().map(|&(_, _, cout)| cout).sum();
    assert_eq!(r.param_bytes, weights + out_channels * 9 + 5);
    assert!(
        r.blob_bytes > r.param_bytes && r.blob_bytes < r.param_bytes + 2048,
        "{}",
        r.blob_bytes
    );
    assert!(r.blob_bytes <= BLOB_BUDGET_BYTES, "{} bytes", r.blob_bytes);
    eprintln!(
        "seaclr-s: blob {} B, arena {} B, {} MACs",
        r.blob_bytes, r.arena_bytes, r.macs
    );
}

#[test]
fn inspect_json_has_the_promised_fields() {
    let enc = random_seaclr_s(2, 16);
    let calib = synthetic_images(8, 16, 2);
    let q = quantize(
        &enc,
        &refs(&calib),
        QuantOptions {
            range: RangeMethod::MinMax,
            min_calibration_images: 8,
        },
    )
    .unwrap();
    let json = serde_json::to_value(inspect::inspect(&q.blob).unwrap()).unwrap();
    for key in [
        "blob_bytes",
        "arena_bytes",
        "macs",
        "format_version",
        "param_bytes",
        "layers",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["blob_bytes"], q.blob.len());
    assert_eq!(json["layers"].as_array().unwrap().len(), 9);
    let mut corrupt = q.blob.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(
        inspect::inspect(&corrupt)
            .unwrap_err()
            .to_string()
            .contains("CRC")
    );
}

#[test]
fn inspect_refuses_a_blob_for_another_preprocessing() {
    // The committed model with its preprocess id (header bytes 22..24) set
    // to 99 and the header CRC (60..64 over 0..60) recomputed: the device
    // refuses it, so inspect must not call it fine.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/seaclr-s.seaclr");
    let mut blob = std::fs::read(path).unwrap();
    blob[22..24].copy_from_slice(&99u16.to_le_bytes());
    let crc = seaclr_shared::blob::crc32(&blob[..60]);
    blob[60..64].copy_from_slice(&crc.to_le_bytes());
    let e = inspect::inspect(&blob).unwrap_err().to_string();
    assert!(e.contains("preprocess"), "{e}");
}

#[test]
fn linear_after_conv_uses_hwc_order() {
    // conv (2 channels, 4x4 after stride 2) -> linear over 32 HWC features.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let conv_w = (0..2 * 9).map(|_| normal(&mut rng) * 0.5).collect();
    let lin_w = (0..3 * 32).map(|_| normal(&mut rng) * 0.3).collect();
    let enc = FloatEncoder {
        input_size: 8,
        layers: vec![
            FloatLayer::Conv3x3 {
                in_channels: 1,
                out_channels: 2,
                stride: 2,
                weights: conv_w,
                bias: vec![0.1, -0.1],
                relu: true,
            },
            FloatLayer::Linear {
                in_features: 32,
                out_features: 3,
                weights: lin_w,
                bias: vec![0.0; 3],
                relu: false,
            },
        ],
    };
    let calib = synthetic_images(64, 8, 8);
    let q = quantize(
        &enc,
        &refs(&calib),
        QuantOptions {
            range: RangeMethod::MinMax,
            min_calibration_images: 64,
        },
    )
    .unwrap();
    let report = inspect::verify(&q.blob, &enc, &refs(&calib)).unwrap();
    assert!(report.mean_cosine > 0.99, "{report}");
}
