//! Whole-network checks: random models through blob + engine against the
//! reference, and the caller-error paths.

use super::*;
use crate::kernels::reference::{self, RefLayer};
use crate::kernels::tests::{arb_conv_with, arb_quant, to_owned};
use proptest::prelude::*;
use seaclr_shared::blob::write::{ModelInfo, write_owned};
use seaclr_shared::testing::XorShift64;
use std::vec::Vec;

fn conv_out(layer: &RefLayer) -> (usize, i32) {
    match layer {
        RefLayer::Conv3x3 {
            out_channels,
            quant,
            ..
        } => (*out_channels, quant.output_zero_point),
        _ => (0, 0),
    }
}

/// Two random convs (the second reads the first's zero point), then a pool.
fn arb_model() -> impl Strategy<Value = (usize, Vec<RefLayer>)> {
    arb_model_with(1usize..=9, 1usize..=9)
}

/// [`arb_model`] with the convs' output channels drawn from the given
/// strategies (16 and 32 put both layers on the x86-64 GEMM and Winograd
/// paths).
fn arb_model_with(
    first: impl Strategy<Value = usize> + Clone + 'static,
    second: impl Strategy<Value = usize> + Clone + 'static,
) -> impl Strategy<Value = (usize, Vec<RefLayer>)> {
    (1usize..=10, arb_conv_with(1, -128, first, 1usize..=2))
        .prop_flat_map(move |(size, l1)| {
            let (c1, zp) = conv_out(&l1);
            (
                Just(size),
                Just(l1),
                arb_conv_with(c1, zp, second.clone(), 1usize..=2),
            )
        })
        .prop_flat_map(|(size, l1, l2)| {
            let zp = conv_out(&l2).1;
            (Just(size), Just(l1), Just(l2), arb_quant(1, zp))
        })
        .prop_map(|(size, l1, l2, quant)| {
            (size, std::vec![l1, l2, RefLayer::GlobalAvgPool { quant }])
        })
}

fn blob_of(size: usize, layers: &[RefLayer]) -> Vec<u8> {
    let mut channels = 1;
    let owned: Vec<_> = layers
        .iter()
        .map(|l| {
            let o = to_owned(l, channels);
            if let RefLayer::Conv3x3 { out_channels, .. } = l {
                channels = *out_channels;
            }
            o
        })
        .collect();
    write_owned(
        ModelInfo {
            input_size: size as u16,
            preprocess_id: PREPROCESS_ID,
        },
        &owned,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn engine_matches_reference((size, layers) in arb_model(), seed in any::<u64>(), offset in 0usize..4) {
        engine_runs_like_reference(size, &layers, seed, offset)?;
    }

    #[test]
    fn engine_with_16_channel_blocks_matches_reference(
        (size, layers) in arb_model_with(Just(16usize), prop_oneof![Just(16usize), Just(32)]),
        seed in any::<u64>(),
        offset in 0usize..4,
    ) {
        engine_runs_like_reference(size, &layers, seed, offset)?;
    }
}

/// Blob, engine and reference on one random image; the arena starts
/// `offset` bytes into its buffer.
fn engine_runs_like_reference(
    size: usize,
    layers: &[RefLayer],
    seed: u64,
    offset: usize,
) -> Result<(), TestCaseError> {
    let blob = blob_of(size, layers);
    let engine = Engine::new(&blob).unwrap();
    let mut rng = XorShift64(seed | 1);
    let image: Vec<u8> = (0..size * size).map(|_| rng.next_u64() as u8).collect();
    // The arena may start anywhere: exercise misaligned starts.
    let mut arena = std::vec![0xAAu8; engine.arena_bytes() + offset];
    let mut out = std::vec![0i8; engine.embedding_dim()];
    let encoded = engine
        .encode(&image, &mut arena[offset..], &mut out)
        .unwrap();
    let expected = reference::run(layers, size, &image);
    prop_assert_eq!(
        out.iter().map(|&v| v as i32).collect::<Vec<_>>(),
        expected.clone()
    );
    let zp = engine.header().output_zero_point as i32;
    let sq: i64 = expected.iter().map(|&v| ((v - zp) * (v - zp)) as i64).sum();
    prop_assert_eq!(encoded.norm_squared as i64, sq);
    Ok(())
}

fn small_blob() -> Vec<u8> {
    let q = |c| reference::RefQuant {
        input_zero_point: -128,
        output_zero_point: -128,
        activation_min: -128,
        activation_max: 127,
        multipliers: std::vec![1 << 30; c],
        shifts: std::vec![-4; c],
    };
    let conv = RefLayer::Conv3x3 {
        in_channels: 1,
        out_channels: 3,
        stride: 2,
        weights: std::vec![5; 27],
        bias: std::vec![7; 3],
        quant: q(3),
    };
    blob_of(8, &[conv, RefLayer::GlobalAvgPool { quant: q(1) }])
}

#[test]
fn figures_come_from_the_header() {
    let blob = small_blob();
    let engine = Engine::new(&blob).unwrap();
    assert_eq!(engine.input_size(), 8);
    assert_eq!(engine.embedding_dim(), 3);
    assert_eq!(engine.macs(), 16 * 3 * 9);
    // 3 alignment + scratch 9*1*2 = 18 -> 20, two buffers of max(64 input, 48 conv).
    assert_eq!(engine.arena_bytes(), 3 + 20 + 2 * 64);
}

#[test]
fn caller_errors_are_reported_not_panicked() {
    let blob = small_blob();
    let engine = Engine::new(&blob).unwrap();
    let image = [255u8; 64];
    let mut arena = std::vec![0u8; engine.arena_bytes()];
    let mut out = [0i8; 3];
    assert_eq!(
        engine.encode(&image, &mut arena[..10], &mut out),
        Err(EngineError::ArenaTooSmall {
            needed: engine.arena_bytes(),
            given: 10
        })
    );
    assert_eq!(
        engine.encode(&image[..63], &mut arena, &mut out),
        Err(EngineError::ImageSize {
            expected: 64,
            found: 63
        })
    );
    assert_eq!(
        engine.encode(&image, &mut arena, &mut out[..2]),
        Err(EngineError::OutputSize {
            expected: 3,
            found: 2
        })
    );
}

#[test]
fn white_image_gives_the_bias_only_embedding() {
    let blob = small_blob();
    let engine = Engine::new(&blob).unwrap();
    let mut arena = std::vec![0u8; engine.arena_bytes()];
    let mut out = [0i8; 3];
    let encoded = engine.encode(&[255u8; 64], &mut arena, &mut out).unwrap();
    // conv: bias 7 * 0.5 / 16 = 0.22 -> 0, + zp -128; pool of zeros -> -128.
    assert_eq!(out, [-128; 3]);
    assert_eq!(
        encoded,
        Encoded {
            norm_squared: 0,
            norm: 0
        }
    );
}

#[test]
fn foreign_preprocessing_is_refused() {
    let layers = [RefLayer::GlobalAvgPool {
        quant: reference::RefQuant {
            input_zero_point: -128,
            output_zero_point: 0,
            activation_min: -128,
            activation_max: 127,
            multipliers: std::vec![1 << 30],
            shifts: std::vec![0],
        },
    }];
    let owned = std::vec![to_owned(&layers[0], 1)];
    let blob = write_owned(
        ModelInfo {
            input_size: 4,
            preprocess_id: PREPROCESS_ID + 1,
        },
        &owned,
    )
    .unwrap();
    assert_eq!(
        Engine::new(&blob).unwrap_err(),
        BlobError::PreprocessMismatch {
            found: PREPROCESS_ID + 1,
            expected: PREPROCESS_ID
        }
    );
}

/// A checked blob's layers in the reference's form.
fn reference_layers(blob: &Blob<'_>) -> Vec<RefLayer> {
    let quant = |rq: &seaclr_shared::blob::Requant<'_>| reference::RefQuant {
        input_zero_point: rq.input_zero_point as i32,
        output_zero_point: rq.output_zero_point as i32,
        activation_min: rq.activation_min as i32,
        activation_max: rq.activation_max as i32,
        multipliers: rq.multipliers.iter().collect(),
        shifts: rq.shifts.iter().map(i32::from).collect(),
    };
    let weights = |w: &[u8]| w.iter().map(|&v| v as i8 as i32).collect();
    blob.layers()
        .map(|layer| match layer {
            Layer::Conv3x3(c) => RefLayer::Conv3x3 {
                in_channels: c.in_channels as usize,
                out_channels: c.out_channels as usize,
                stride: c.stride as usize,
                weights: weights(c.weights.0),
                bias: c.bias.iter().collect(),
                quant: quant(&c.requant),
            },
            Layer::GlobalAvgPool(p) => RefLayer::GlobalAvgPool {
                quant: quant(&p.requant),
            },
            Layer::Linear(l) => RefLayer::Linear {
                out_features: l.out_features as usize,
                weights: weights(l.weights.0),
                bias: l.bias.iter().collect(),
                quant: quant(&l.requant),
            },
        })
        .collect()
}

#[test]
fn committed_model_matches_reference() {
    // The default blob at its real shapes (64 x 64 in, 16 to 128 channels):
    // on x86-64 with AVX2 its stride-1 layers take the Winograd path (the
    // 32 x 32 x 16 one block by block, the others whole), its stride-2
    // layers and first layer the GEMM kernel, with 6-, 4- and 1-pixel
    // blocks; everywhere else the portable kernel.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/seaclr-s.seaclr");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let engine = Engine::new(&bytes).unwrap();
    let layers = reference_layers(engine.blob());
    let n = engine.input_size();
    let mut arena = std::vec![0u8; engine.arena_bytes()];
    let mut out = std::vec![0i8; engine.embedding_dim()];
    let mut rng = XorShift64(0x5eac1e55);
    for image in 0..3 {
        // White, a dark ellipse on white, and noise.
        let pixels: Vec<u8> = (0..n * n)
            .map(|i| {
                let s = rng.next_u64();
                let (y, x) = ((i / n) as i64 - n as i64 / 2, (i % n) as i64 - n as i64 / 2);
                match image {
                    0 => 255,
                    1 if y * y + 2 * x * x < (n * n / 8) as i64 => (s % 120) as u8,
                    1 => 255,
                    _ => s as u8,
                }
            })
            .collect();
        engine.encode(&pixels, &mut arena, &mut out).unwrap();
        let got: Vec<i32> = out.iter().map(|&v| v as i32).collect();
        assert_eq!(got, reference::run(&layers, n, &pixels), "image {image}");
    }
}

#[test]
fn observed_encode_reports_each_layer_once_and_equals_encode() {
    let blob = small_blob();
    let engine = Engine::new(&blob).unwrap();
    let image: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let mut arena = std::vec![0u8; engine.arena_bytes()];
    let (mut plain, mut observed) = ([0i8; 3], [0i8; 3]);
    let a = engine.encode(&image, &mut arena, &mut plain).unwrap();
    let mut seen = Vec::new();
    let b = engine
        .encode_observed(&image, &mut arena, &mut observed, |i| seen.push(i))
        .unwrap();
    assert_eq!((a, plain), (b, observed));
    assert_eq!(seen, [0, 1]);
}
