//! The host reference: the same int8 network computed as plainly as
//! possible in `i32`/`i64`, from typed values (not blob bytes), with the
//! rounding rules written as arithmetic instead of gemmlowp's bit tricks.
//! The edge kernels must match it bit for bit.

use std::vec::Vec;

/// Quantization of one layer's output, as plain numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct RefQuant {
    /// Subtracted from every input value.
    pub input_zero_point: i32,
    /// Added after requantization.
    pub output_zero_point: i32,
    /// Lower clamp.
    pub activation_min: i32,
    /// Upper clamp.
    pub activation_max: i32,
    /// Q31 multipliers per output channel.
    pub multipliers: Vec<i32>,
    /// Shifts per output channel (positive: left).
    pub shifts: Vec<i32>,
}

/// One layer of the reference network.
#[derive(Clone, Debug, PartialEq)]
pub enum RefLayer {
    /// 3x3 conv, padding 1; `weights[o][ky][kx][i]`.
    Conv3x3 {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// 1 or 2.
        stride: usize,
        /// Flattened `[o][ky][kx][i]`.
        weights: Vec<i32>,
        /// Per output channel.
        bias: Vec<i32>,
        /// Output quantization.
        quant: RefQuant,
    },
    /// Mean over positions; `quant` has one multiplier.
    GlobalAvgPool {
        /// Output quantization.
        quant: RefQuant,
    },
    /// Fully connected, `weights[o][i]` over HWC-flattened inputs.
    Linear {
        /// Output features.
        out_features: usize,
        /// Flattened `[o][i]`.
        weights: Vec<i32>,
        /// Per output feature.
        bias: Vec<i32>,
        /// Output quantization.
        quant: RefQuant,
    },
}

/// An activation tensor: `values[(y * width + x) * channels + c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RefTensor {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// int8 values held in i32.
    pub values: Vec<i32>,
}

impl RefTensor {
    fn at(&self, y: usize, x: usize, c: usize) -> i32 {
        self.values[(y * self.width + x) * self.channels + c]
    }
}

/// `x / 2^e` rounded to nearest, ties away from zero.
fn divide_by_power_of_two_rounding_away(x: i64, e: u32) -> i64 {
    if e == 0 {
        return x;
    }
    let half = 1i64 << (e - 1);
    if x >= 0 {
        (x + half) >> e
    } else {
        -((-x + half) >> e)
    }
}

/// `acc * multiplier * 2^shift / 2^31`, as TFLite defines it: saturating left
/// shift, high product rounded half up, then rounding right shift.
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let x = if shift > 0 {
        ((acc as i64) << shift).clamp(i32::MIN as i64, i32::MAX as i64)
    } else {
        acc as i64
    };
    let high = if x == i32::MIN as i64 && multiplier == i32::MIN {
        i32::MAX as i64
    } else {
        // floor(x * m / 2^31 + 1/2)
        (x * multiplier as i64 + (1i64 << 30)) >> 31
    };
    let right = if shift < 0 { (-shift) as u32 } else { 0 };
    divide_by_power_of_two_rounding_away(high, right) as i32
}

fn finish(acc: i32, q: &RefQuant, c: usize) -> i32 {
    let v = requantize(acc, q.multipliers[c], q.shifts[c]) as i64 + q.output_zero_point as i64;
    v.max(q.activation_min as i64).min(q.activation_max as i64) as i32
}

/// Runs one layer.
pub fn run_layer(layer: &RefLayer, x: &RefTensor) -> RefTensor {
    match layer {
        RefLayer::Conv3x3 {
            in_channels,
            out_channels,
            stride,
            weights,
            bias,
            quant,
        } => {
            let oh = (x.height - 1) / stride + 1;
            let ow = (x.width - 1) / stride + 1;
            let mut values = Vec::new();
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..*out_channels {
                        let mut acc = bias[o] as i64;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (oy * stride + ky) as i64 - 1;
                                let ix = (ox * stride + kx) as i64 - 1;
                                let inside = iy >= 0
                                    && ix >= 0
                                    && iy < x.height as i64
                                    && ix < x.width as i64;
                                for i in 0..*in_channels {
                                    // Padding holds the zero point: contributes nothing.
                                    let v = if inside {
                                        x.at(iy as usize, ix as usize, i)
                                    } else {
                                        quant.input_zero_point
                                    };
                                    let w = weights[((o * 3 + ky) * 3 + kx) * in_channels + i];
                                    acc += w as i64 * (v - quant.input_zero_point) as i64;
                                }
                            }
                        }
                        values.push(finish(acc as i32, quant, o));
                    }
                }
            }
            RefTensor {
                height: oh,
                width: ow,
                channels: *out_channels,
                values,
            }
        }
        RefLayer::GlobalAvgPool { quant } => {
            let values = (0..x.channels)
                .map(|c| {
                    let mut sum = 0i64;
                    for y in 0..x.height {
                        for xx in 0..x.width {
                            sum += (x.at(y, xx, c) - quant.input_zero_point) as i64;
                        }
                    }
                    finish(sum as i32, quant, 0)
                })
                .collect();
            RefTensor {
                height: 1,
                width: 1,
                channels: x.channels,
                values,
            }
        }
        RefLayer::Linear {
            out_features,
            weights,
            bias,
            quant,
        } => {
            let n = x.values.len();
            let values = (0..*out_features)
                .map(|o| {
                    let mut acc = bias[o] as i64;
                    for i in 0..n {
                        acc += weights[o * n + i] as i64
                            * (x.values[i] - quant.input_zero_point) as i64;
                    }
                    finish(acc as i32, quant, o)
                })
                .collect();
            RefTensor {
                height: 1,
                width: 1,
                channels: *out_features,
                values,
            }
        }
    }
}

/// Runs a whole network on a preprocessed image (`q = 127 - p`).
pub fn run(layers: &[RefLayer], size: usize, image: &[u8]) -> Vec<i32> {
    let mut x = RefTensor {
        height: size,
        width: size,
        channels: 1,
        values: image.iter().map(|&p| 127 - p as i32).collect(),
    };
    for layer in layers {
        x = run_layer(layer, &x);
    }
    x.values
}
