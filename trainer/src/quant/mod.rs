//! int8 post-training quantization: a BN-folded [`FloatEncoder`] plus
//! calibration images become a model blob (`seaclr_shared::blob`) that the
//! edge engine runs bit-exactly.
//!
//! Conventions (TFLite Micro / CMSIS-NN): weights int8 symmetric per output
//! channel in [-127, 127]; bias int32 at `input_scale * weight_scale[c]`;
//! activations int8 per tensor, affine, range from calibration (min/max or a
//! percentile); requantization with a Q31 multiplier and shift from frexp.
//! The embedding (last tensor) is symmetric (zero point 0) so the device can
//! use int8 dot products on it directly.

pub mod cli;
mod embedder;
pub mod inspect;
#[cfg(test)]
mod tests;

pub use embedder::Int8Embedder;

use anyhow::{Context, Result, bail, ensure};
use rayon::prelude::*;
use seaclr_shared::blob::write::{ModelInfo, OwnedLayer, OwnedRequant, write_owned};
use seaclr_shared::blob::{INPUT_ZERO_POINT, PREPROCESS_ID};

use crate::float_encoder::{FloatEncoder, FloatLayer, pixel_to_input};

/// How activation ranges are taken from the calibration set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeMethod {
    /// Smallest and largest value seen.
    MinMax,
    /// The given percentile (e.g. 99.99) of the values, and its mirror for the
    /// low end: clips rare outliers to spend the 256 levels on the bulk.
    Percentile(f64),
}

/// Quantization options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantOptions {
    /// Activation range method.
    pub range: RangeMethod,
    /// Fewest calibration images accepted.
    pub min_calibration_images: usize,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            range: RangeMethod::MinMax,
            min_calibration_images: 512,
        }
    }
}

/// The real range of one activation tensor over the calibration set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRange {
    /// Low end (at most 0).
    pub min: f32,
    /// High end (at least 0).
    pub max: f32,
}

/// Affine int8 quantization of a tensor: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActQuant {
    /// Real value of one step.
    pub scale: f64,
    /// The int8 value that means real 0.
    pub zero_point: i8,
}

impl ActQuant {
    /// Asymmetric quantization covering `range` (which always contains 0, so
    /// 0 is exactly representable: padding and ReLU need that).
    pub fn affine(range: TensorRange) -> ActQuant {
        let (lo, hi) = (range.min.min(0.0) as f64, range.max.max(0.0) as f64);
        if hi - lo <= f64::EPSILON {
            return ActQuant {
                scale: 1.0 / 255.0,
                zero_point: -128,
            };
        }
        let scale = (hi - lo) / 255.0;
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
        ActQuant { scale, zero_point }
    }

    /// Symmetric quantization (zero point 0) covering `range`.
    pub fn symmetric(range: TensorRange) -> ActQuant {
        let m = (range.min.abs().max(range.max.abs())) as f64;
        ActQuant {
            scale: if m > 0.0 { m / 127.0 } else { 1.0 / 127.0 },
            zero_point: 0,
        }
    }

    /// The input encoding: `q = 127 - p`, real `(255 - p) / 255`.
    pub fn input() -> ActQuant {
        ActQuant {
            scale: 1.0 / 255.0,
            zero_point: INPUT_ZERO_POINT,
        }
    }
}

/// A real multiplier as a Q31 integer and a power-of-two shift (frexp), the
/// form the device's `multiply_by_quantized_multiplier` applies (the blob
/// writer's own, shared with the buoy simulator's random model).
pub fn quantize_multiplier(real: f64) -> Result<(i32, i8)> {
    seaclr_shared::blob::write::quantize_multiplier(real).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Float activations of every layer output for one image, plus shapes.
struct Trace {
    /// Output of each layer, CHW as the float reference computes it.
    outputs: Vec<Vec<f32>>,
}

/// Runs the float reference layer by layer (reusing `FloatEncoder::forward_input`
/// on one-layer encoders), keeping every intermediate output.
fn trace(single_layers: &[FloatEncoder], image: &[u8], size: usize) -> Trace {
    let mut x: Vec<f32> = image.iter().map(|&p| pixel_to_input(p)).collect();
    let (mut c, mut h, mut w) = (1, size, size);
    let mut outputs = Vec::with_capacity(single_layers.len());
    for enc in single_layers {
        let y = enc.forward_input(&x, c, h, w);
        (c, h, w) = match &enc.layers[0] {
            FloatLayer::Conv3x3 {
                out_channels,
                stride,
                ..
            } => (*out_channels, (h - 1) / stride + 1, (w - 1) / stride + 1),
            FloatLayer::GlobalAvgPool => (c, 1, 1),
            FloatLayer::Linear { out_features, .. } => (*out_features, 1, 1),
        };
        outputs.push(y.clone());
        x = y;
    }
    Trace { outputs }
}

/// Streaming statistics of one tensor: min/max and a deterministic
/// subsample for percentiles.
#[derive(Clone, Debug, Default)]
struct RangeStats {
    min: f32,
    max: f32,
    sample: Vec<f32>,
}

/// Most values kept per tensor for percentiles.
const SAMPLE_LIMIT: usize = 1 << 20;

/// Per-tensor activation ranges of every layer output over `images`.
pub fn calibrate(
    encoder: &FloatEncoder,
    images: &[&[u8]],
    method: RangeMethod,
) -> Result<Vec<TensorRange>> {
    let size = encoder.input_size;
    for (i, im) in images.iter().enumerate() {
        ensure!(
            im.len() == size * size,
            "calibration image {i} has {} bytes, expected {}",
            im.len(),
            size * size
        );
    }
    let singles: Vec<FloatEncoder> = encoder
        .layers
        .iter()
        .map(|l| FloatEncoder {
            input_size: size,
            layers: vec![l.clone()],
        })
        .collect();
    let traces: Vec<Vec<(f32, f32, Vec<f32>)>> = images
        .par_iter()
        .map(|im| {
            let t = trace(&singles, im, size);
            t.outputs
                .into_iter()
                .map(|y| {
                    let min = y.iter().copied().fold(f32::INFINITY, f32::min);
                    let max = y.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sample = if matches!(method, RangeMethod::Percentile(_)) {
                        let step = (y.len() * images.len()).div_ceil(SAMPLE_LIMIT).max(1);
                        y.iter().step_by(step).copied().collect()
                    } else {
                        Vec::new()
                    };
                    (min, max, sample)
                })
                .collect()
        })
        .collect();
    let mut stats = vec![
        RangeStats {
            min: 0.0,
            max: 0.0,
            sample: Vec::new()
        };
        encoder.layers.len()
    ];
    for per_image in traces {
        for (s, (min, max, sample)) in stats.iter_mut().zip(per_image) {
            s.min = s.min.min(min);
            s.max = s.max.max(max);
            s.sample.extend(sample);
        }
    }
    stats
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            ensure!(
                s.min.is_finite() && s.max.is_finite(),
                "layer {i}: activations are not finite"
            );
            Ok(match method {
                RangeMethod::MinMax => TensorRange {
                    min: s.min,
                    max: s.max,
                },
                RangeMethod::Percentile(p) => {
                    ensure!(
                        (50.0..=100.0).contains(&p),
                        "percentile {p} is outside 50..100"
                    );
                    s.sample.sort_by(f32::total_cmp);
                    let at = |q: f64| {
                        s.sample[((q / 100.0) * (s.sample.len() - 1) as f64).round() as usize]
                    };
                    TensorRange {
                        min: at(100.0 - p).min(0.0),
                        max: at(p).max(0.0),
                    }
                }
            })
        })
        .collect()
}

/// Per-output-channel symmetric int8 weights: returns (q, scales).
fn quantize_weights(weights: &[f32], out: usize) -> (Vec<i8>, Vec<f64>) {
    let per = weights.len() / out;
    let mut q = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(out);
    for row in weights.chunks_exact(per) {
        let m = row.iter().fold(0f32, |a, &w| a.max(w.abs())) as f64;
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        q.extend(
            row.iter()
                .map(|&w| (w as f64 / s).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(s);
    }
    (q, scales)
}

fn requant(
    input: ActQuant,
    output: ActQuant,
    weight_scales: &[f64],
    extra: f64,
    relu: bool,
) -> Result<OwnedRequant> {
    let mut multipliers = Vec::with_capacity(weight_scales.len());
    let mut shifts = Vec::with_capacity(weight_scales.len());
    for &ws in weight_scales {
        let (m, s) = quantize_multiplier(input.scale * ws * extra / output.scale)?;
        multipliers.push(m);
        shifts.push(s);
    }
    Ok(OwnedRequant {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        activation_min: if relu { output.zero_point } else { -128 },
        activation_max: 127,
        multipliers,
        shifts,
        output_scale: output.scale as f32,
    })
}

fn quantize_bias(bias: &[f32], input_scale: f64, weight_scales: &[f64]) -> Vec<i32> {
    bias.iter()
        .zip(weight_scales)
        .map(|(&b, &ws)| {
            (b as f64 / (input_scale * ws))
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

/// A quantized model: its blob bytes and the quantization of each tensor.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The model blob.
    pub blob: Vec<u8>,
    /// Quantization of each layer's output, in order.
    pub activations: Vec<ActQuant>,
    /// The calibrated ranges they came from.
    pub ranges: Vec<TensorRange>,
}

/// Quantizes `encoder` with activation ranges from `images` (preprocessed
/// `input_size^2` gray bytes).
pub fn quantize(
    encoder: &FloatEncoder,
    images: &[&[u8]],
    options: QuantOptions,
) -> Result<Quantized> {
    ensure!(
        images.len() >= options.min_calibration_images,
        "{} calibration images, at least {} needed",
        images.len(),
        options.min_calibration_images
    );
    ensure!(!encoder.layers.is_empty(), "the encoder has no layers");
    let ranges = calibrate(encoder, images, options.range)?;
    let last = encoder.layers.len() - 1;
    let activations: Vec<ActQuant> = ranges
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            if i == last {
                ActQuant::symmetric(r)
            } else {
                ActQuant::affine(r)
            }
        })
        .collect();
    let blob = quantize_with(encoder, &activations)?;
    Ok(Quantized {
        blob,
        activations,
        ranges,
    })
}

/// Builds the blob from given output quantizations (one per layer).
pub fn quantize_with(encoder: &FloatEncoder, activations: &[ActQuant]) -> Result<Vec<u8>> {
    ensure!(
        activations.len() == encoder.layers.len(),
        "one activation quantization per layer"
    );
    let size = encoder.input_size;
    ensure!(
        (1..=u16::MAX as usize).contains(&size),
        "input size {size} out of range"
    );
    let mut input = ActQuant::input();
    let (mut c, mut h, mut w) = (1usize, size, size);
    let mut layers = Vec::with_capacity(encoder.layers.len());
    for (i, (layer, &output)) in encoder.layers.iter().zip(activations).enumerate() {
        let owned = match layer {
            FloatLayer::Conv3x3 {
                in_channels,
                out_channels,
                stride,
                weights,
                bias,
                relu,
            } => {
                ensure!(
                    *in_channels == c,
                    "layer {i}: conv expects {in_channels} channels, gets {c}"
                );
                ensure!(
                    weights.len() == out_channels * in_channels * 9,
                    "layer {i}: weight count"
                );
                ensure!(bias.len() == *out_channels, "layer {i}: bias count");
                // [out][in][ky][kx] -> [out][ky][kx][in]
                let mut reordered = vec![0f32; weights.len()];
                for o in 0..*out_channels {
                    for ci in 0..*in_channels {
                        for k in 0..9 {
                            reordered[(o * 9 + k) * in_channels + ci] =
                                weights[(o * in_channels + ci) * 9 + k];
                        }
                    }
                }
                let (qw, ws) = quantize_weights(&reordered, *out_channels);
                let qb = quantize_bias(bias, input.scale, &ws);
                let rq = requant(input, output, &ws, 1.0, *relu)
                    .with_context(|| format!("layer {i}"))?;
                (h, w, c) = ((h - 1) / stride + 1, (w - 1) / stride + 1, *out_channels);
                OwnedLayer::conv3x3(
                    *in_channels as u16,
                    *out_channels as u16,
                    *stride as u8,
                    &qw,
                    &qb,
                    rq,
                )
            }
            FloatLayer::GlobalAvgPool => {
                let rq = requant(input, output, &[1.0], 1.0 / (h * w) as f64, false)
                    .with_context(|| format!("layer {i}"))?;
                (h, w) = (1, 1);
                OwnedLayer::global_avg_pool(c as u16, rq)
            }
            FloatLayer::Linear {
                in_features,
                out_features,
                weights,
                bias,
                relu,
            } => {
                ensure!(
                    *in_features == c * h * w,
                    "layer {i}: linear expects {in_features} inputs, gets {}",
                    c * h * w
                );
                ensure!(
                    weights.len() == out_features * in_features,
                    "layer {i}: weight count"
                );
                // Float inputs are CHW-flattened, the device's are HWC.
                let mut reordered = vec![0f32; weights.len()];
                for o in 0..*out_features {
                    for ci in 0..c {
                        for p in 0..h * w {
                            reordered[o * in_features + p * c + ci] =
                                weights[o * in_features + ci * h * w + p];
                        }
                    }
                }
                let (qw, ws) = quantize_weights(&reordered, *out_features);
                let qb = quantize_bias(bias, input.scale, &ws);
                let rq = requant(input, output, &ws, 1.0, *relu)
                    .with_context(|| format!("layer {i}"))?;
                (h, w, c) = (1, 1, *out_features);
                OwnedLayer::linear(*in_features as u16, *out_features as u16, &qw, &qb, rq)
            }
        };
        layers.push(owned);
        input = output;
    }
    let info = ModelInfo {
        input_size: size as u16,
        preprocess_id: PREPROCESS_ID,
    };
    match write_owned(info, &layers) {
        Ok(bytes) => Ok(bytes),
        Err(e) => bail!("the quantized model does not fit the blob format: {e}"),
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}
