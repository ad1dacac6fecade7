//! Integer-only int8 kernels (no heap, no floating point): 3x3 convolution
//! with stride 1 or 2 and padding 1, global average pooling and a linear
//! layer, with the TFLite Micro / CMSIS-NN requantization.
//!
//! Tensors are HWC (channels last) `i8` slices. Conv weights are
//! `[out][ky][kx][in]` so one output value is a single dot product of a
//! `9 * in` patch with one contiguous weight row. Padding uses the input
//! zero point, i.e. real 0.0 (the white background with our input encoding).
//!
//! `reference` (host only) recomputes everything in the most obvious way;
//! the tests demand bit-for-bit equality.

use seaclr_shared::blob::{Conv3x3, GlobalAvgPool, Linear, Requant, Shape};

#[cfg(any(test, feature = "std"))]
pub mod reference;
#[cfg(test)]
pub(crate) mod tests;

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)`,
/// ties toward +infinity, saturating the single overflow case.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded half away from
/// zero, for `exponent` in `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier`: `x * multiplier * 2^shift / 2^31`
/// with a positive shift applied as a (saturating) left shift before the
/// high multiply and a negative one as a rounding right shift after it.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.saturating_mul(1 << left), multiplier),
        right,
    )
}

/// Requantizes one accumulator of output channel `c` to int8.
#[inline(always)]
fn requantize(acc: i32, rq: &Requant<'_>, c: usize) -> i8 {
    let multiplier = rq.multipliers.get(c).unwrap_or(0);
    let shift = rq.shifts.get(c).unwrap_or(0) as i32;
    let v = multiply_by_quantized_multiplier(acc, multiplier, shift)
        .saturating_add(rq.output_zero_point as i32);
    v.clamp(rq.activation_min as i32, rq.activation_max as i32) as i8
}

/// Dot product of an `i16` patch with an `i8` weight row stored as bytes.
/// Written as a plain zip so the compiler vectorizes it (pmaddwd / SMLAD).
#[inline(always)]
fn dot(patch: &[i16], weights: &[u8]) -> i32 {
    patch
        .iter()
        .zip(weights)
        .map(|(&x, &w)| x as i32 * (w as i8) as i32)
        .sum()
}

/// Four dot products of one patch with four weight rows at once: the patch
/// is loaded once per four output channels (register blocking), which the
/// compiler turns into four vector accumulators.
#[inline(always)]
fn dot4(patch: &[i16], w: [&[u8]; 4]) -> [i32; 4] {
    let n = patch.len();
    let (Some(w0), Some(w1), Some(w2), Some(w3)) =
        (w[0].get(..n), w[1].get(..n), w[2].get(..n), w[3].get(..n))
    else {
        return [
            dot(patch, w[0]),
            dot(patch, w[1]),
            dot(patch, w[2]),
            dot(patch, w[3]),
        ];
    };
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    for k in 0..n {
        let x = patch[k] as i32;
        a0 += x * (w0[k] as i8) as i32;
        a1 += x * (w1[k] as i8) as i32;
        a2 += x * (w2[k] as i8) as i32;
        a3 += x * (w3[k] as i8) as i32;
    }
    [a0, a1, a2, a3]
}

/// Output shape of a 3x3 conv with padding 1.
pub fn conv3x3_output_shape(input: Shape, stride: usize, out_channels: usize) -> Shape {
    Shape {
        height: (input.height - 1) / stride + 1,
        width: (input.width - 1) / stride + 1,
        channels: out_channels,
    }
}

/// 3x3 convolution, padding 1 (with the input zero point), stride 1 or 2.
///
/// `patch` is scratch of at least `9 * in_channels` values; `output` holds
/// at least the output shape's length. The layer was checked by
/// `Blob::parse`; slices too short for the shapes make the kernel write
/// fewer values, never read out of bounds.
pub fn conv3x3(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let (cin, cout) = (layer.in_channels as usize, layer.out_channels as usize);
    let stride = layer.stride as usize;
    let out_shape = conv3x3_output_shape(shape, stride, cout);
    let zp = layer.requant.input_zero_point as i16;
    let row = 9 * cin;
    let Some(patch) = patch.get_mut(..row) else {
        return out_shape;
    };
    let weights = layer.weights.0;
    let (h, w) = (shape.height as isize, shape.width as isize);
    let mut out_pixels = output.chunks_exact_mut(cout);
    for oy in 0..out_shape.height {
        for ox in 0..out_shape.width {
            for (tap, dst) in patch.chunks_exact_mut(cin).enumerate() {
                let iy = (oy * stride + tap / 3) as isize - 1;
                let ix = (ox * stride + tap % 3) as isize - 1;
                let src = if iy >= 0 && iy < h && ix >= 0 && ix < w {
                    let at = (iy as usize * shape.width + ix as usize) * cin;
                    input.get(at..at + cin)
                } else {
                    None
                };
                match src {
                    Some(src) => dst
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, &x)| *d = x as i16 - zp),
                    None => dst.fill(0),
                }
            }
            let Some(out) = out_pixels.next() else {
                return out_shape;
            };
            let mut rows = weights.chunks_exact(row);
            let mut c = 0;
            for o4 in out.chunks_exact_mut(4) {
                let (Some(w0), Some(w1), Some(w2), Some(w3)) =
                    (rows.next(), rows.next(), rows.next(), rows.next())
                else {
                    return out_shape;
                };
                let accs = dot4(patch, [w0, w1, w2, w3]);
                for (o, acc) in o4.iter_mut().zip(accs) {
                    *o = requantize(
                        layer.bias.get(c).unwrap_or(0).wrapping_add(acc),
                        &layer.requant,
                        c,
                    );
                    c += 1;
                }
            }
            for (o, w_row) in out.iter_mut().skip(c).zip(rows) {
                *o = requantize(
                    layer
                        .bias
                        .get(c)
                        .unwrap_or(0)
                        .wrapping_add(dot(patch, w_row)),
                    &layer.requant,
                    c,
                );
                c += 1;
            }
        }
    }
    out_shape
}

/// Global average pool: per channel, `sum(q - zp_in)` requantized with the
/// layer's single multiplier (which contains `1 / (H * W)`).
pub fn global_avg_pool(
    layer: &GlobalAvgPool<'_>,
    input: &[i8],
    shape: Shape,
    output: &mut [i8],
) -> Shape {
    let channels = shape.channels;
    let zp = layer.requant.input_zero_point as i32;
    let input = &input[..shape.len().min(input.len())];
    for (c, o) in output.iter_mut().take(channels).enumerate() {
        let sum: i32 = input
            .iter()
            .skip(c)
            .step_by(channels)
            .map(|&x| x as i32 - zp)
            .sum();
        *o = requantize(sum, &layer.requant, 0);
    }
    Shape {
        height: 1,
        width: 1,
        channels,
    }
}

/// Fully connected layer over the HWC-flattened input.
pub fn linear(layer: &Linear<'_>, input: &[i8], output: &mut [i8]) -> Shape {
    let (fin, fout) = (layer.in_features as usize, layer.out_features as usize);
    let zp = layer.requant.input_zero_point as i32;
    let input = &input[..fin.min(input.len())];
    for (c, (o, w_row)) in output
        .iter_mut()
        .zip(layer.weights.0.chunks_exact(fin.max(1)))
        .take(fout)
        .enumerate()
    {
        let dot: i32 = input
            .iter()
            .zip(w_row)
            .map(|(&x, &w)| (x as i32 - zp) * (w as i8) as i32)
            .sum();
        *o = requantize(
            layer.bias.get(c).unwrap_or(0).wrapping_add(dot),
            &layer.requant,
            c,
        );
    }
    Shape {
        height: 1,
        width: 1,
        channels: fout,
    }
}

/// Integer square root (floor), for the embedding norm without floats.
pub fn isqrt(n: u32) -> u32 {
    if n < 2 {
        return n;
    }
    // Newton's method from an upper bound, in u64 so nothing overflows.
    let n = n as u64;
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x as u32
}
