//! `seaclr model inspect` and `seaclr model verify`: what a blob holds, whether it fits
//! the device budgets, and how closely it agrees with its float model.

use anyhow::{Result, anyhow};
use seaclr_shared::blob::{Layer, Shape};
use serde::Serialize;

use crate::float_encoder::FloatEncoder;

/// Device budgets from the project brief (seaclr-s, 64 x 64 input).
pub const BLOB_BUDGET_BYTES: usize = 256 * 1024;
/// RAM the encoder may use for activations and scratch.
pub const ARENA_BUDGET_BYTES: usize = 96 * 1024;
/// Multiply-accumulates per image.
pub const MACS_BUDGET: u64 = 20_000_000;

/// One layer as `inspect` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerInfo {
    /// "conv3x3", "global_avg_pool" or "linear".
    pub kind: &'static str,
    /// Input shape `[h, w, c]`.
    pub input: [usize; 3],
    /// Output shape `[h, w, c]`.
    pub output: [usize; 3],
    /// Stride (1 for non-conv layers).
    pub stride: u8,
    /// Bytes of weights, bias, multipliers, shifts.
    pub param_bytes: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Real value of one output step.
    pub output_scale: f32,
    /// Output zero point.
    pub output_zero_point: i8,
}

/// Everything `inspect` reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InspectReport {
    /// Bytes of the whole blob (header + payload).
    pub blob_bytes: usize,
    /// Working memory `encode` needs.
    pub arena_bytes: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Blob format version.
    pub format_version: u16,
    /// Parameter bytes.
    pub param_bytes: usize,
    /// CRC-32 of the payload.
    pub payload_crc32: String,
    /// Side of the square input.
    pub input_size: usize,
    /// Preprocessing id.
    pub preprocess_id: u16,
    /// Embedding length.
    pub embedding_dim: usize,
    /// Embedding zero point and scale.
    pub output_zero_point: i8,
    /// Real value of one embedding step.
    pub output_scale: f32,
    /// Layers in order.
    pub layers: Vec<LayerInfo>,
    /// Budget checks: (name, value, budget, within).
    pub budgets: Vec<(String, u64, u64, bool)>,
}

/// Parses a blob (all checks) and describes it.
pub fn inspect(bytes: &[u8]) -> Result<InspectReport> {
    // The engine's own checks (the blob's, and a preprocessing this build
    // implements): a model the device would refuse is refused here too.
    let blob = *seaclr_edge::engine::Engine::new(bytes)
        .map_err(|e| anyhow!("{e}"))?
        .blob();
    let h = *blob.header();
    let size = h.input_size as usize;
    let mut shape = Shape {
        height: size,
        width: size,
        channels: 1,
    };
    let mut layers = Vec::new();
    for (i, layer) in blob.layers().enumerate() {
        let mut plan = Default::default();
        let out = seaclr_shared::blob::check_layer(i, &layer, shape, &mut plan)
            .map_err(|e| anyhow!("{e}"))?;
        let (kind, stride, rq) = match &layer {
            Layer::Conv3x3(c) => ("conv3x3", c.stride, c.requant),
            Layer::GlobalAvgPool(p) => ("global_avg_pool", 1, p.requant),
            Layer::Linear(l) => ("linear", 1, l.requant),
        };
        let plan: seaclr_shared::blob::Plan = plan;
        layers.push(LayerInfo {
            kind,
            input: [shape.height, shape.width, shape.channels],
            output: [out.height, out.width, out.channels],
            stride,
            param_bytes: plan.param_bytes as usize,
            macs: plan.macs,
            output_scale: rq.output_scale,
            output_zero_point: rq.output_zero_point,
        });
        shape = out;
    }
    let total = h.total_len();
    let budgets = vec![
        (
            "blob_bytes".to_string(),
            total as u64,
            BLOB_BUDGET_BYTES as u64,
            total <= BLOB_BUDGET_BYTES,
        ),
        (
            "arena_bytes".to_string(),
            h.arena_bytes as u64,
            ARENA_BUDGET_BYTES as u64,
            h.arena_bytes as usize <= ARENA_BUDGET_BYTES,
        ),
        (
            "macs".to_string(),
            h.macs as u64,
            MACS_BUDGET,
            h.macs as u64 <= MACS_BUDGET,
        ),
    ];
    Ok(InspectReport {
        blob_bytes: total,
        arena_bytes: h.arena_bytes as usize,
        macs: h.macs as u64,
        format_version: h.format_version,
        param_bytes: h.param_bytes as usize,
        payload_crc32: format!("{:08x}", h.payload_crc32),
        input_size: size,
        preprocess_id: h.preprocess_id,
        embedding_dim: h.embedding_dim as usize,
        output_zero_point: h.output_zero_point,
        output_scale: h.output_scale,
        layers,
        budgets,
    })
}

impl std::fmt::Display for InspectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "SeaCLR model blob, format version {}",
            self.format_version
        )?;
        writeln!(
            f,
            "  blob bytes      {:>10} ({:.1} KiB)",
            self.blob_bytes,
            self.blob_bytes as f64 / 1024.0
        )?;
        writeln!(f, "  parameter bytes {:>10}", self.param_bytes)?;
        writeln!(
            f,
            "  arena bytes     {:>10} ({:.1} KiB)",
            self.arena_bytes,
            self.arena_bytes as f64 / 1024.0
        )?;
        writeln!(f, "  MACs per image  {:>10}", self.macs)?;
        writeln!(f, "  payload CRC-32  {:>10}", self.payload_crc32)?;
        writeln!(
            f,
            "  input           {0} x {0} gray, preprocess id {1}",
            self.input_size, self.preprocess_id
        )?;
        writeln!(
            f,
            "  embedding       {} x int8, zero point {}, scale {:.6e}",
            self.embedding_dim, self.output_zero_point, self.output_scale
        )?;
        writeln!(
            f,
            "  #  layer            input -> output          stride  params      MACs   out scale  zp"
        )?;
        for (i, l) in self.layers.iter().enumerate() {
            writeln!(
                f,
                "  {i:<2} {:<16} {:>3}x{:<3}x{:<4} -> {:>3}x{:<3}x{:<4}  {:>4}  {:>7}  {:>9}  {:.3e}  {}",
                l.kind,
                l.input[0],
                l.input[1],
                l.input[2],
                l.output[0],
                l.output[1],
                l.output[2],
                l.stride,
                l.param_bytes,
                l.macs,
                l.output_scale,
                l.output_zero_point
            )?;
        }
        for (name, value, budget, ok) in &self.budgets {
            writeln!(
                f,
                "  budget {name:<12} {value:>10} / {budget:<10} {}",
                if *ok { "ok" } else { "OVER" }
            )?;
        }
        Ok(())
    }
}

/// Agreement between float and int8 embeddings of the same images.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VerifyReport {
    /// Images compared.
    pub images: usize,
    /// Mean cosine similarity float vs int8.
    pub mean_cosine: f64,
    /// Smallest cosine similarity.
    pub min_cosine: f64,
    /// 5th percentile of the cosine similarity.
    pub p05_cosine: f64,
    /// Fraction of images whose nearest neighbour (cosine, among the same
    /// images) is the same image in float and in int8.
    pub nearest_neighbour_agreement: f64,
}

/// Compares embeddings image by image (`float[i]` and `int8[i]` of image i).
pub fn agreement(float: &[Vec<f32>], int8: &[Vec<f32>]) -> VerifyReport {
    let mut cos: Vec<f64> = float
        .iter()
        .zip(int8)
        .map(|(a, b)| super::cosine(a, b))
        .collect();
    let nn = |set: &[Vec<f32>]| -> Vec<usize> {
        let normed: Vec<Vec<f32>> = set
            .iter()
            .map(|v| {
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter().map(|x| x / n).collect()
            })
            .collect();
        (0..normed.len())
            .map(|i| {
                (0..normed.len())
                    .filter(|&j| j != i)
                    .map(|j| {
                        (
                            j,
                            normed[i]
                                .iter()
                                .zip(&normed[j])
                                .map(|(a, b)| a * b)
                                .sum::<f32>(),
                        )
                    })
                    .fold((usize::MAX, f32::NEG_INFINITY), |best, (j, s)| {
                        if s > best.1 { (j, s) } else { best }
                    })
                    .0
            })
            .collect()
    };
    let (nf, nq) = (nn(float), nn(int8));
    let same = nf.iter().zip(&nq).filter(|(a, b)| a == b).count();
    let n = cos.len();
    let mean = cos.iter().sum::<f64>() / n.max(1) as f64;
    cos.sort_by(f64::total_cmp);
    VerifyReport {
        images: n,
        mean_cosine: mean,
        min_cosine: cos.first().copied().unwrap_or(0.0),
        p05_cosine: cos.get(n / 20).copied().unwrap_or(0.0),
        nearest_neighbour_agreement: same as f64 / n.max(1) as f64,
    }
}

/// Embeds `images` with the float reference and the int8 blob and compares.
pub fn verify(blob: &[u8], float: &FloatEncoder, images: &[&[u8]]) -> Result<VerifyReport> {
    use crate::embedder::Embedder;
    use rayon::prelude::*;
    let int8 = super::Int8Embedder::from_bytes("model", blob.to_vec())?;
    anyhow::ensure!(
        int8.input_size() == float.input_size,
        "blob input {} differs from float model input {}",
        int8.input_size(),
        float.input_size
    );
    let q = int8.embed(images)?;
    let f: Vec<Vec<f32>> = images.par_iter().map(|im| float.forward(im)).collect();
    Ok(agreement(&f, &q))
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "float vs int8 over {} images", self.images)?;
        writeln!(f, "  mean cosine                 {:.5}", self.mean_cosine)?;
        writeln!(f, "  min cosine                  {:.5}", self.min_cosine)?;
        writeln!(f, "  5th percentile cosine       {:.5}", self.p05_cosine)?;
        writeln!(
            f,
            "  nearest-neighbour agreement {:.4}",
            self.nearest_neighbour_agreement
        )
    }
}
