//! A trained encoder as plain f32 arrays with BatchNorm already folded into
//! the convolutions: the hand-off from the burn model to quantization, and a
//! slow but obvious reference forward pass to check both against.
//!
//! Input convention (shared with the device, see `seaclr_shared::preprocess`):
//! a preprocessed `S x S` gray image `p` becomes `x = (255 - p) / 255`, so the
//! white background is 0 (matching zero padding) and dark plankton is near 1.

use serde::{Deserialize, Serialize};

/// One layer of the encoder, in execution order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FloatLayer {
    /// 3x3 convolution, padding 1, optional fused ReLU.
    /// `weights` is `[out][in][3][3]` row-major, `bias` is `[out]`.
    Conv3x3 {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// 1 or 2.
        stride: usize,
        /// `[out][in][3][3]`.
        weights: Vec<f32>,
        /// `[out]`.
        bias: Vec<f32>,
        /// Whether a ReLU follows.
        relu: bool,
    },
    /// Mean over all spatial positions of each channel: `C x H x W -> C`.
    GlobalAvgPool,
    /// Fully connected layer, `weights` is `[out][in]`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// `[out][in]`.
        weights: Vec<f32>,
        /// `[out]`.
        bias: Vec<f32>,
        /// Whether a ReLU follows.
        relu: bool,
    },
}

/// A folded float encoder: input `1 x input_size x input_size`, output the embedding `h`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatEncoder {
    /// Side of the square gray input image.
    pub input_size: usize,
    /// Layers in execution order.
    pub layers: Vec<FloatLayer>,
}

/// Converts a preprocessed gray pixel into the encoder's float input.
pub fn pixel_to_input(p: u8) -> f32 {
    (255 - p) as f32 / 255.0
}

impl FloatEncoder {
    /// Embedding dimension (channels after the last layer).
    pub fn embedding_dim(&self) -> usize {
        let mut c = 1;
        for layer in &self.layers {
            match layer {
                FloatLayer::Conv3x3 { out_channels, .. } => c = *out_channels,
                FloatLayer::Linear { out_features, .. } => c = *out_features,
                FloatLayer::GlobalAvgPool => {}
            }
        }
        c
    }

    /// Reference forward pass on one preprocessed image (`input_size^2` gray pixels).
    /// Returns the un-normalised embedding.
    pub fn forward(&self, pixels: &[u8]) -> Vec<f32> {
        assert_eq!(
            pixels.len(),
            self.input_size * self.input_size,
            "image size"
        );
        let x: Vec<f32> = pixels.iter().map(|&p| pixel_to_input(p)).collect();
        self.forward_input(&x, 1, self.input_size, self.input_size)
    }

    /// Reference forward pass from a float tensor `c x h x w`.
    pub fn forward_input(&self, x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
        let (mut x, mut c, mut h, mut w) = (x.to_vec(), c, h, w);
        for layer in &self.layers {
            match layer {
                FloatLayer::Conv3x3 {
                    in_channels,
                    out_channels,
                    stride,
                    weights,
                    bias,
                    relu,
                } => {
                    assert_eq!(*in_channels, c, "conv input channels");
                    let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
                    let mut y = vec![0.0f32; out_channels * oh * ow];
                    for o in 0..*out_channels {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut acc = bias[o];
                                for i in 0..c {
                                    for ky in 0..3 {
                                        let iy = (oy * stride + ky) as isize - 1;
                                        if iy < 0 || iy >= h as isize {
                                            continue;
                                        }
                                        for kx in 0..3 {
                                            let ix = (ox * stride + kx) as isize - 1;
                                            if ix < 0 || ix >= w as isize {
                                                continue;
                                            }
                                            acc += weights[((o * c + i) * 3 + ky) * 3 + kx]
                                                * x[(i * h + iy as usize) * w + ix as usize];
                                        }
                                    }
                                }
                                y[(o * oh + oy) * ow + ox] = if *relu { acc.max(0.0) } else { acc };
                            }
                        }
                    }
                    (x, c, h, w) = (y, *out_channels, oh, ow);
                }
                FloatLayer::GlobalAvgPool => {
                    let n = (h * w) as f32;
                    x = (0..c)
                        .map(|i| x[i * h * w..(i + 1) * h * w].iter().sum::<f32>() / n)
                        .collect();
                    (h, w) = (1, 1);
                }
                FloatLayer::Linear {
                    in_features,
                    out_features,
                    weights,
                    bias,
                    relu,
                } => {
                    assert_eq!(*in_features, c * h * w, "linear input features");
                    x = (0..*out_features)
                        .map(|o| {
                            let acc = bias[o]
                                + weights[o * in_features..(o + 1) * in_features]
                                    .iter()
                                    .zip(&x)
                                    .map(|(a, b)| a * b)
                                    .sum::<f32>();
                            if *relu { acc.max(0.0) } else { acc }
                        })
                        .collect();
                    (c, h, w) = (*out_features, 1, 1);
                }
            }
        }
        x
    }
}
