//! The fused block on burn's CPU backend: a backend extension implemented
//! for `Flex` (forward only) and for `Autodiff<Flex>` (forward that keeps
//! what [`cpu::backward`] needs, and that backward registered as the
//! operation's gradient step).

use std::borrow::Cow;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, ExtensionType, Flex, TensorMetadata,
    backend_extension,
};
use burn::tensor::{Tensor, TensorData};

use super::cpu::{self, BackwardInputs, BlockShape};
use super::{BlockParams, BlockTrainOutput};

/// The operation's outputs at the backend level.
#[derive(ExtensionType)]
pub struct BlockTrainPrimitives<B: Backend> {
    /// Output after ReLU, channels-last.
    pub output: FloatTensor<B>,
    /// Per-channel batch mean.
    pub mean: FloatTensor<B>,
    /// Per-channel biased batch variance.
    pub variance: FloatTensor<B>,
}

/// The extension: one training-mode block as one backend operation.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBlockBackend: Backend {
    /// Conv 3x3 (padding 1) -> BatchNorm (batch statistics) -> ReLU on a
    /// channels-last input.
    fn conv_bn_relu_train(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stride: usize,
        epsilon: f64,
    ) -> BlockTrainPrimitives<Self>;
}

/// [`super::block_train`] on the CPU backend.
pub fn block_train_fused(input: Tensor<4>, params: BlockParams) -> BlockTrainOutput {
    let out = <Dispatch as FusedBlockBackend>::conv_bn_relu_train(
        input.into_dispatch(),
        params.weight.into_dispatch(),
        params.gamma.into_dispatch(),
        params.beta.into_dispatch(),
        params.stride,
        params.epsilon,
    );
    BlockTrainOutput {
        output: Tensor::from_dispatch(out.output),
        mean: Tensor::from_dispatch(out.mean),
        variance: Tensor::from_dispatch(out.variance),
    }
}

/// The values of a float tensor, borrowed when it is contiguous `f32`.
fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(
            tensor
                .clone()
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("a float tensor converts to f32"),
        ),
    }
}

fn tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// The block's sizes from its input `[n, h, w, in]` and weight `[out, in, 3, 3]`.
fn block_shape(input: &FlexTensor, weight: &FlexTensor, stride: usize) -> BlockShape {
    let x = input.shape();
    let w = weight.shape();
    assert_eq!(x.num_dims(), 4, "block input must be [n, h, w, c]");
    assert_eq!(
        (w[1], w[2], w[3]),
        (x[3], 3, 3),
        "block weight must be [out, {}, 3, 3]",
        x[3]
    );
    assert!(stride >= 1, "stride must be at least 1");
    BlockShape {
        batch: x[0],
        height: x[1],
        width: x[2],
        in_channels: x[3],
        out_channels: w[0],
        stride,
    }
}

/// Runs the forward kernels; returns the shape too.
fn forward(
    input: &FlexTensor,
    weight: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stride: usize,
    epsilon: f64,
) -> (BlockShape, cpu::BlockForward) {
    let shape = block_shape(input, weight, stride);
    let result = cpu::forward(
        &shape,
        &values(input),
        &values(weight),
        &values(gamma),
        &values(beta),
        epsilon,
    );
    (shape, result)
}

fn output_shape(shape: &BlockShape) -> [usize; 4] {
    [
        shape.batch,
        shape.out_height(),
        shape.out_width(),
        shape.out_channels,
    ]
}

impl FusedBlockBackend for Flex {
    fn conv_bn_relu_train(
        input: FlexTensor,
        weight: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stride: usize,
        epsilon: f64,
    ) -> BlockTrainPrimitives<Self> {
        let (shape, result) = forward(&input, &weight, &gamma, &beta, stride, epsilon);
        let channels = shape.out_channels;
        BlockTrainPrimitives {
            output: tensor(result.output, output_shape(&shape)),
            mean: tensor(result.mean, [channels]),
            variance: tensor(result.variance, [channels]),
        }
    }
}

/// What the backward step keeps from the forward pass.
#[derive(Debug, Clone)]
struct SavedBlock {
    shape: BlockShape,
    input: FlexTensor,
    conv: FlexTensor,
    weight: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
}

#[derive(Debug)]
struct BlockBackward;

impl Backward<Flex, 4> for BlockBackward {
    type State = SavedBlock;

    fn backward(self, ops: Ops<SavedBlock, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_input, node_weight, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let saved = ops.state;
        let (input, conv, weight) = (
            values(&saved.input),
            values(&saved.conv),
            values(&saved.weight),
        );
        let (gamma, beta, mean, variance) = (
            values(&saved.gamma),
            values(&saved.beta),
            values(&saved.mean),
            values(&saved.variance),
        );
        let result = cpu::backward(
            &saved.shape,
            BackwardInputs {
                input: &input,
                conv: &conv,
                weight: &weight,
                gamma: &gamma,
                beta: &beta,
                mean: &mean,
                variance: &variance,
                epsilon: saved.epsilon,
            },
            &values(&grad),
            node_input.is_some(),
        );
        let shape = saved.shape;
        if let (Some(node), Some(input_grad)) = (node_input, result.input) {
            let dims = [shape.batch, shape.height, shape.width, shape.in_channels];
            grads.register::<Flex>(node.id, tensor(input_grad, dims));
        }
        if let Some(node) = node_weight {
            let dims = [shape.out_channels, shape.in_channels, 3, 3];
            grads.register::<Flex>(node.id, tensor(result.weight, dims));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(result.gamma, [shape.out_channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(result.beta, [shape.out_channels]));
        }
    }
}

impl<C: CheckpointStrategy> FusedBlockBackend for Autodiff<Flex, C> {
    fn conv_bn_relu_train(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stride: usize,
        epsilon: f64,
    ) -> BlockTrainPrimitives<Self> {
        let kind = BlockBackward
            .prepare::<C>([input.node(), weight.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (shape, result) = forward(
            input.primitive(),
            weight.primitive(),
            gamma.primitive(),
            beta.primitive(),
            stride,
            epsilon,
        );
        let channels = shape.out_channels;
        let out = tensor(result.output, output_shape(&shape));
        let mean = tensor(result.mean, [channels]);
        let variance = tensor(result.variance, [channels]);
        let output = match kind {
            OpsKind::Tracked(prep) => {
                let saved = SavedBlock {
                    shape,
                    input: input.into_primitive(),
                    conv: tensor(result.conv, output_shape(&shape)),
                    weight: weight.into_primitive(),
                    gamma: gamma.into_primitive(),
                    beta: beta.into_primitive(),
                    mean: mean.clone(),
                    variance: variance.clone(),
                    epsilon,
                };
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        BlockTrainPrimitives {
            output,
            mean: Self::from_inner(mean),
            variance: Self::from_inner(variance),
        }
    }
}
