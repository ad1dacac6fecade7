//! The SimCLR network: a small all-3x3 CNN encoder made for the edge
//! (`seaclr-s`) plus the seed's 3-layer projection head.
//!
//! The encoder uses only what the int8 edge engine implements: 3x3
//! convolutions (stride 1 or 2, padding 1), BatchNorm (folded into the
//! convolution on export), ReLU, global average pooling. Convolutions have
//! no bias because the BatchNorm after each one has its own shift.

use anyhow::bail;
use burn::config::Config;
use burn::module::{Module, ParamId, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::fused;
use crate::float_encoder::{FloatEncoder, FloatLayer};

/// Fixed parameter ids start above this (see [`SimClrModel::with_fixed_ids`]).
const PARAM_ID_BASE: u64 = 0x5eac_0000_0000_0000;
/// Fixed ids of the BatchNorm running statistics start here.
const RUNNING_ID_BASE: u64 = 0x5eac_1000_0000_0000;

/// Largest `input_size` a config may ask for: bounds the memory a typo can
/// request (an input of 100,000 pixels a side would need terabytes).
pub const MAX_INPUT_SIZE: usize = 512;

/// Architecture knobs. `ModelConfig::new()` is the plain 16-32-64-128 stack;
/// [`ModelConfig::seaclr_s`] is the default encoder, which narrows stage 4's
/// entry conv so the int8 blob fits the 256 KiB flash budget.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Side of the square gray input.
    #[config(default = 64)]
    pub input_size: usize,
    /// Output channels of each stage; each stage starts with a stride-2 conv.
    #[config(default = "vec![16, 32, 64, 128]")]
    pub stage_channels: Vec<usize>,
    /// Output channels of each stage's stride-2 entry conv (a bottleneck
    /// before the stage's stride-1 convs); empty means `stage_channels`.
    /// Stage 4 holds most weights: narrowing only its entry conv to 96
    /// channels shrinks the blob from 290 KiB to about 236 KiB while the
    /// embedding stays 128-d.
    #[config(default = "Vec::new()")]
    pub entry_channels: Vec<usize>,
    /// Stride-1 3x3 convs after the stride-2 conv of each stage.
    #[config(default = 1)]
    pub extra_convs_per_stage: usize,
    /// Width of the projection head's hidden layers.
    #[config(default = 128)]
    pub head_hidden: usize,
    /// Dimension of the projection `z`.
    #[config(default = 128)]
    pub projection_dim: usize,
    /// Hidden (Linear + ReLU) layers of the head before its output layer.
    #[config(default = 2)]
    pub head_hidden_layers: usize,
    /// BatchNorm epsilon (also used when folding).
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// BatchNorm running-statistics momentum.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl ModelConfig {
    /// `seaclr-s`, the default encoder: stages 16, 32, 64, 128, with stage
    /// 4's stride-2 conv narrowed to 96 channels (236 K conv weights).
    pub fn seaclr_s() -> Self {
        Self::new().with_entry_channels(vec![16, 32, 64, 96])
    }

    /// Output channels of stage `i`'s stride-2 entry conv.
    fn entry_width(&self, i: usize) -> usize {
        if self.extra_convs_per_stage == 0 {
            return self.stage_channels[i];
        }
        self.entry_channels
            .get(i)
            .copied()
            .unwrap_or(self.stage_channels[i])
    }

    /// `(in_channels, out_channels, stride)` of every 3x3 conv in order: per
    /// stage a stride-2 entry conv, then `extra_convs_per_stage` stride-1 convs.
    pub fn conv_shapes(&self) -> Vec<(usize, usize, usize)> {
        let mut shapes = Vec::new();
        let mut in_channels = 1;
        for (stage, &out) in self.stage_channels.iter().enumerate() {
            let entry = self.entry_width(stage);
            shapes.push((in_channels, entry, 2));
            in_channels = entry;
            for _ in 0..self.extra_convs_per_stage {
                shapes.push((in_channels, out, 1));
                in_channels = out;
            }
        }
        shapes
    }

    /// Dimension of the embedding `h` (channels of the last stage).
    pub fn embedding_dim(&self) -> usize {
        *self.stage_channels.last().unwrap_or(&1)
    }

    /// Rejects shapes the network cannot be built with.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.stage_channels.is_empty() || self.stage_channels.contains(&0) {
            bail!(
                "model.stage_channels must be non-empty and positive, got {:?}",
                self.stage_channels
            );
        }
        if !self.entry_channels.is_empty()
            && (self.entry_channels.len() != self.stage_channels.len()
                || self.entry_channels.contains(&0))
        {
            bail!(
                "model.entry_channels must be empty or give one positive width per stage \
                 ({} stages), got {:?}",
                self.stage_channels.len(),
                self.entry_channels
            );
        }
        if self.extra_convs_per_stage == 0
            && !self.entry_channels.is_empty()
            && self.entry_channels != self.stage_channels
        {
            bail!(
                "model.entry_channels needs extra_convs_per_stage >= 1 \
                 (a stage's stride-1 convs widen it back to stage_channels)"
            );
        }
        if self.input_size > MAX_INPUT_SIZE {
            bail!(
                "model.input_size {} is above {MAX_INPUT_SIZE} (plankton ROIs are resampled \
                 to tens of pixels; the default model takes 64)",
                self.input_size
            );
        }
        if self.input_size < 1 << self.stage_channels.len() {
            bail!(
                "model.input_size {} is too small for {} stride-2 stages",
                self.input_size,
                self.stage_channels.len()
            );
        }
        if self.head_hidden == 0 || self.projection_dim == 0 {
            bail!("model head sizes must be positive");
        }
        if !(self.bn_epsilon.is_finite() && self.bn_epsilon > 0.0) {
            bail!(
                "model.bn_epsilon must be a finite number above 0, got {}",
                self.bn_epsilon
            );
        }
        if !(0.0..=1.0).contains(&self.bn_momentum) {
            bail!(
                "model.bn_momentum must be a number in [0, 1], got {}",
                self.bn_momentum
            );
        }
        Ok(())
    }

    /// Builds the network with weights drawn from `seed`, reproducibly.
    ///
    /// burn draws initial weights from one process-wide generator, lazily on
    /// first use: this seeds it and forces every parameter under a lock, so
    /// no other thread's draws interleave with ours.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> SimClrModel {
        static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let model = self.init(device);
        let record = model.clone().into_record();
        self.init(device).load_record(record).with_fixed_ids()
    }

    /// Builds the network with fresh weights on `device`.
    pub fn init(&self, device: &Device) -> SimClrModel {
        let blocks = self
            .conv_shapes()
            .into_iter()
            .map(|(in_channels, out_channels, stride)| ConvBnRelu {
                conv: Conv2dConfig::new([in_channels, out_channels], [3, 3])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false)
                    .init(device),
                bn: BatchNormConfig::new(out_channels)
                    .with_epsilon(self.bn_epsilon)
                    .with_momentum(self.bn_momentum)
                    .init(device),
            })
            .collect();
        let mut head = Vec::new();
        let mut width = self.embedding_dim();
        for _ in 0..self.head_hidden_layers {
            head.push(LinearConfig::new(width, self.head_hidden).init(device));
            width = self.head_hidden;
        }
        head.push(LinearConfig::new(width, self.projection_dim).init(device));
        SimClrModel { blocks, head }
    }
}

/// 3x3 convolution, BatchNorm, ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// Bias-free 3x3 convolution, padding 1.
    pub conv: Conv2d,
    /// Normalisation (folded into `conv` on export).
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    /// Inference (and frozen-BatchNorm) forward on NCHW input.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }

    /// Training forward on channels-last input `[n, h, w, c]`: one fused
    /// operation on the CPU backend (`fused`), burn's operations elsewhere.
    /// Folds the batch statistics into the running ones as burn's
    /// `BatchNorm` does (biased variance, `momentum` weight on the new value).
    fn forward_train(&self, x: Tensor<4>) -> Tensor<4> {
        let result = fused::block_train(
            x,
            fused::BlockParams {
                weight: self.conv.weight.val(),
                gamma: self.bn.gamma.val(),
                beta: self.bn.beta.val(),
                stride: self.conv.stride[0],
                epsilon: self.bn.epsilon,
            },
        );
        let momentum = self.bn.momentum;
        let device = result.output.device();
        let blend = |running: Tensor<1>, batch: Tensor<1>| {
            running
                .to_device(&device)
                .mul_scalar(1.0 - momentum)
                .add(batch.detach().mul_scalar(momentum))
                .detach()
        };
        self.bn
            .running_mean
            .update(blend(self.bn.running_mean.value_sync(), result.mean));
        self.bn
            .running_var
            .update(blend(self.bn.running_var.value_sync(), result.variance));
        result.output
    }

    /// Whether `x` takes the training path (as burn's `BatchNorm` decides).
    fn trains_on(&self, x: &Tensor<4>) -> bool {
        x.device().is_autodiff() && self.bn.training.is_enabled()
    }
}

/// Encoder + projection head.
#[derive(Module, Debug)]
pub struct SimClrModel {
    /// Encoder blocks in order.
    pub blocks: Vec<ConvBnRelu>,
    /// Projection head; ReLU after every layer but the last.
    pub head: Vec<Linear>,
}

impl SimClrModel {
    /// Gives every parameter and BatchNorm statistic a fixed id (burn draws
    /// them at random, and they are saved in the checkpoint and key the
    /// optimiser state): with them, two runs with the same config and data
    /// write byte-identical checkpoints.
    pub fn with_fixed_ids(self) -> Self {
        struct Renumber(u64);
        impl burn::module::ModuleMapper for Renumber {
            fn map_float<const D: usize>(
                &mut self,
                param: burn::module::Param<Tensor<D>>,
            ) -> burn::module::Param<Tensor<D>> {
                let (_, value, mapper) = param.consume();
                self.0 += 1;
                burn::module::Param::from_mapped_value(
                    ParamId::from(PARAM_ID_BASE + self.0),
                    value,
                    mapper,
                )
            }
        }
        // (The mapper also meets the running statistics, whose ids it
        // cannot change: they are set below.)
        self.map(&mut Renumber(0)).with_fixed_running_ids()
    }

    /// Gives the BatchNorm running statistics fixed ids ([`Self::with_fixed_ids`]
    /// for the parameters too). Loading a record keeps the parameters' saved
    /// ids but not these, so loaded models need it.
    pub fn with_fixed_running_ids(mut self) -> Self {
        self.sync_running_stats();
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let id = |k: usize| ParamId::from(RUNNING_ID_BASE + (2 * i + k) as u64);
            let mean = block.bn.running_mean.value();
            let var = block.bn.running_var.value();
            block.bn.running_mean = RunningState::with_id(id(0), mean);
            block.bn.running_var = RunningState::with_id(id(1), var);
        }
        self
    }

    /// Settles the BatchNorm running statistics: burn keeps each forward's
    /// update pending (per thread) until the next forward folds it in, and
    /// its records read the settled value only, one update behind. Call this
    /// before a model is saved or compared, or a checkpoint misses the last
    /// step's statistics and a resumed run drifts from a straight one. The
    /// next forward then finds nothing pending, so training is unchanged.
    pub fn sync_running_stats(&self) {
        for block in &self.blocks {
            // `valid` folds the pending updates into the shared state (the
            // copy it returns is dropped).
            let _ = block.bn.running_mean.valid();
            let _ = block.bn.running_var.valid();
        }
    }

    /// Embedding `h` of a batch `[n, 1, S, S]` of encoder inputs: `[n, C]`.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        if self.blocks.first().is_some_and(|b| b.trains_on(&x)) {
            // Training: the blocks run channels-last (see `fused`).
            let mut x = x.permute([0, 2, 3, 1]);
            for block in &self.blocks {
                x = block.forward_train(x);
            }
            let [n, _, _, c] = x.dims();
            return x.mean_dim(2).mean_dim(1).reshape([n, c]);
        }
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// Projection `z` of embeddings `h`.
    pub fn project(&self, h: Tensor<2>) -> Tensor<2> {
        let last = self.head.len() - 1;
        let mut z = h;
        for (i, layer) in self.head.iter().enumerate() {
            z = layer.forward(z);
            if i < last {
                z = relu(z);
            }
        }
        z
    }

    /// `(h, z)` for a batch of encoder inputs.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let h = self.embed(x);
        let z = self.project(h.clone());
        (h, z)
    }

    /// Folds each BatchNorm (running statistics, i.e. eval mode) into the
    /// convolution before it and returns the encoder as plain f32 arrays.
    pub fn export_float_encoder(&self, input_size: usize) -> anyhow::Result<FloatEncoder> {
        let mut layers = Vec::new();
        for (index, block) in self.blocks.iter().enumerate() {
            let w = block.conv.weight.val();
            let [out_channels, in_channels, kh, kw] = w.dims();
            if [kh, kw] != [3, 3] {
                bail!("block {index}: only 3x3 convolutions can be exported, got {kh}x{kw}");
            }
            let mut weights = to_vec(w.into_data())?;
            let conv_bias = match &block.conv.bias {
                Some(b) => to_vec(b.val().into_data())?,
                None => vec![0.0; out_channels],
            };
            let gamma = to_vec(block.bn.gamma.val().into_data())?;
            let beta = to_vec(block.bn.beta.val().into_data())?;
            let mean = to_vec(block.bn.running_mean.value().into_data())?;
            let var = to_vec(block.bn.running_var.value().into_data())?;
            let eps = block.bn.epsilon;
            let per_out = in_channels * 9;
            let mut bias = vec![0.0f32; out_channels];
            for o in 0..out_channels {
                let scale = (gamma[o] as f64 / (var[o] as f64 + eps).sqrt()) as f32;
                weights[o * per_out..(o + 1) * per_out]
                    .iter_mut()
                    .for_each(|v| *v *= scale);
                bias[o] = ((conv_bias[o] - mean[o]) as f64 * scale as f64 + beta[o] as f64) as f32;
            }
            layers.push(FloatLayer::Conv3x3 {
                in_channels,
                out_channels,
                stride: block.conv.stride[0],
                weights,
                bias,
                relu: true,
            });
        }
        layers.push(FloatLayer::GlobalAvgPool);
        Ok(FloatEncoder { input_size, layers })
    }
}

fn to_vec(data: burn::tensor::TensorData) -> anyhow::Result<Vec<f32>> {
    data.try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading tensor: {e:?}"))
}

/// Turns preprocessed images (`S*S` bytes each) into the encoder input tensor.
pub fn images_to_tensor(images: &[&[u8]], size: usize, device: &Device) -> Tensor<4> {
    let mut buf = Vec::with_capacity(images.len() * size * size);
    for im in images {
        buf.extend(im.iter().map(|&p| crate::float_encoder::pixel_to_input(p)));
    }
    Tensor::from_data(
        burn::tensor::TensorData::new(buf, [images.len(), 1, size, size]),
        device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_images(n: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..size * size).map(|_| rng.random()).collect())
            .collect()
    }

    #[test]
    fn seaclr_s_shapes_and_size() {
        let device = Device::flex();
        let config = ModelConfig::seaclr_s();
        config.validate().unwrap();
        let model = config.init(&device);
        // 4 stages x 2 convs, stage 4 entering at 96 channels.
        let shapes = [
            (1, 16),
            (16, 16),
            (16, 32),
            (32, 32),
            (32, 64),
            (64, 64),
            (64, 96),
            (96, 128),
        ];
        let conv_weights: usize = shapes.iter().map(|(i, o)| i * o * 9).sum();
        // What the int8 blob stores: must leave room for header, biases and
        // scales inside the 256 KiB budget.
        assert_eq!(conv_weights, 237_456);
        // Conv weights + BN gamma/beta + BN running stats (num_params counts them).
        let convs: usize = shapes.iter().map(|(i, o)| i * o * 9 + 4 * o).sum();
        let head = 3 * (128 * 128 + 128);
        let running = 0;
        assert_eq!(model.num_params(), convs + head + running);
        let ims = random_images(3, 64, 1);
        let refs: Vec<&[u8]> = ims.iter().map(|v| v.as_slice()).collect();
        let (h, z) = model.forward(images_to_tensor(&refs, 64, &device));
        assert_eq!(h.dims(), [3, 128]);
        assert_eq!(z.dims(), [3, 128]);
    }

    #[test]
    fn an_input_size_beyond_the_limit_is_refused_not_allocated() {
        let huge = ModelConfig::seaclr_s().with_input_size(100_000);
        let e = huge.validate().unwrap_err().to_string();
        assert!(e.contains("model.input_size 100000 is above 512"), "{e}");
        assert!(
            ModelConfig::seaclr_s()
                .with_input_size(512)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn entry_channels_must_match_the_stages() {
        let short = ModelConfig::seaclr_s().with_entry_channels(vec![16, 32]);
        assert!(
            format!("{:#}", short.validate().unwrap_err()).contains("one positive width per stage")
        );
        let no_widening = ModelConfig::seaclr_s().with_extra_convs_per_stage(0);
        assert!(no_widening.validate().is_err());
        // Empty means the plain stack.
        let plain = ModelConfig::new();
        plain.validate().unwrap();
        assert_eq!(plain.conv_shapes()[6], (64, 128, 2));
        assert_eq!(
            ModelConfig::seaclr_s().conv_shapes()[6..],
            [(64, 96, 2), (96, 128, 1)]
        );
    }

    #[test]
    fn folded_export_matches_burn_eval_forward() {
        let device = Device::flex().autodiff();
        let config = ModelConfig::new()
            .with_input_size(32)
            .with_stage_channels(vec![8, 16, 24]);
        let mut model = config.init(&device);
        // Train-mode forwards move the running statistics away from (0, 1), and
        // random gamma/beta make the fold non-trivial.
        let ims = random_images(8, 32, 2);
        let refs: Vec<&[u8]> = ims.iter().map(|v| v.as_slice()).collect();
        for _ in 0..3 {
            let _ = model.forward(images_to_tensor(&refs, 32, &device));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for block in &mut model.blocks {
            let [c] = block.bn.gamma.val().dims();
            let g: Vec<f32> = (0..c).map(|_| rng.random_range(0.5..1.5)).collect();
            let b: Vec<f32> = (0..c).map(|_| rng.random_range(-0.2..0.2)).collect();
            block.bn.gamma =
                burn::module::Param::from_tensor(Tensor::from_floats(g.as_slice(), &device));
            block.bn.beta =
                burn::module::Param::from_tensor(Tensor::from_floats(b.as_slice(), &device));
        }
        let eval = model.valid();
        let exported = eval.export_float_encoder(32).unwrap();
        assert_eq!(exported.embedding_dim(), 24);
        let test = random_images(4, 32, 4);
        let refs: Vec<&[u8]> = test.iter().map(|v| v.as_slice()).collect();
        let h = eval.embed(images_to_tensor(&refs, 32, &Device::flex()));
        let h = h.into_data().try_into_vec_as::<f32>().unwrap();
        let mut max_diff = 0.0f32;
        for (i, im) in test.iter().enumerate() {
            let r = exported.forward(im);
            for (a, b) in r.iter().zip(&h[i * 24..(i + 1) * 24]) {
                max_diff = max_diff.max((a - b).abs());
            }
        }
        assert!(max_diff < 1e-4, "max abs diff {max_diff}");
        // And the statistics really were used: a fold with (0,1) stats would differ.
        let mean = eval.blocks[0]
            .bn
            .running_mean
            .value()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!(mean.iter().any(|m| m.abs() > 1e-3));
    }
}
