//! CPU kernels of one encoder block in training mode: 3x3 convolution
//! (padding 1, no bias) -> BatchNorm with the batch's statistics -> ReLU,
//! forward and backward, on channels-last (NHWC) `f32` slices.
//!
//! Why channels-last: the 3x3 patch of an output pixel is nine contiguous
//! runs of `in_channels` values, so the im2col buffer is built with slice
//! copies, the per-channel BatchNorm reductions run along rows without a
//! transpose, and the convolution output of a chunk of images is one
//! row-major `[rows, out_channels]` gemm result. The batch is cut into
//! chunks of whole images that run on rayon's threads; each chunk's im2col
//! buffer is reused for the weight gradient (`cols^T x dconv`, one gemm) and
//! the input gradient (`dconv x W^T`, one gemm, then col2im), so nothing is
//! transposed or materialised beyond one chunk.

use rayon::prelude::*;

/// Sizes of one block's input and convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Convolution stride (1 or 2).
    pub stride: usize,
}

impl BlockShape {
    /// Output height (3x3 kernel, padding 1).
    pub fn out_height(&self) -> usize {
        (self.height - 1) / self.stride + 1
    }

    /// Output width (3x3 kernel, padding 1).
    pub fn out_width(&self) -> usize {
        (self.width - 1) / self.stride + 1
    }

    /// Length of one im2col row: the 3x3 patch of every input channel.
    pub fn patch(&self) -> usize {
        9 * self.in_channels
    }

    /// Output pixels of one image.
    fn out_pixels(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Input values of one image.
    fn in_values(&self) -> usize {
        self.height * self.width * self.in_channels
    }

    /// Output rows (pixels) of the whole batch: the BatchNorm sample count.
    pub fn rows(&self) -> usize {
        self.batch * self.out_pixels()
    }

    /// Images per parallel chunk: about 256 K im2col values (1 MiB, so a
    /// chunk's buffers stay in the L2/L3 caches), at least one image, and at
    /// least 8 chunks a batch where it has 8 images. Not the thread count:
    /// the chunks fix the order of every sum, so results do not depend on
    /// the machine (a resumed run writes the same bytes as a straight one).
    fn images_per_chunk(&self) -> usize {
        let per_image = self.out_pixels() * self.patch();
        let by_size = ((1 << 18) / per_image.max(1)).max(1);
        by_size.min(self.batch.div_ceil(8)).max(1)
    }
}

/// `dst[m x n]` (row-major) `= a[m x k] * b[k x n]`, or `+=` when
/// `accumulate`; `a` and `b` are read through `(row, column)` strides so a
/// transposed operand costs nothing.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "gemm destination too short");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "gemm lhs too short"
    );
    assert!(
        (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "gemm rhs too short"
    );
    // SAFETY: the asserts above keep every index gemm reads or writes inside
    // the three slices; `dst` is borrowed mutably, so nothing aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Unfolds the 3x3 patches of `images` (NHWC, whole images) into `cols`,
/// one row of `9 * in_channels` values per output pixel, zeros for padding.
fn im2col(shape: &BlockShape, images: &[f32], cols: &mut [f32]) {
    let (h, w, c, s) = (shape.height, shape.width, shape.in_channels, shape.stride);
    let (oh, ow, k) = (shape.out_height(), shape.out_width(), shape.patch());
    for (image, cols) in images
        .chunks_exact(shape.in_values())
        .zip(cols.chunks_exact_mut(shape.out_pixels() * k))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut cols[(oy * ow + ox) * k..][..k];
                for ky in 0..3 {
                    let iy = (oy * s + ky).wrapping_sub(1);
                    for kx in 0..3 {
                        let ix = (ox * s + kx).wrapping_sub(1);
                        let dst = &mut row[(ky * 3 + kx) * c..][..c];
                        if iy < h && ix < w {
                            dst.copy_from_slice(&image[(iy * w + ix) * c..][..c]);
                        } else {
                            dst.fill(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// Adds every im2col row of `cols` back onto the input positions it was
/// read from (the adjoint of [`im2col`]); `images` must start zeroed.
fn col2im(shape: &BlockShape, cols: &[f32], images: &mut [f32]) {
    let (h, w, c, s) = (shape.height, shape.width, shape.in_channels, shape.stride);
    let (oh, ow, k) = (shape.out_height(), shape.out_width(), shape.patch());
    for (image, cols) in images
        .chunks_exact_mut(shape.in_values())
        .zip(cols.chunks_exact(shape.out_pixels() * k))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &cols[(oy * ow + ox) * k..][..k];
                for ky in 0..3 {
                    let iy = (oy * s + ky).wrapping_sub(1);
                    if iy >= h {
                        continue;
                    }
                    for kx in 0..3 {
                        let ix = (ox * s + kx).wrapping_sub(1);
                        if ix >= w {
                            continue;
                        }
                        let src = &row[(ky * 3 + kx) * c..][..c];
                        let dst = &mut image[(iy * w + ix) * c..][..c];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

/// burn's conv weight `[out, in, 3, 3]` as the gemm operand `[9 * in, out]`
/// (row index `(ky * 3 + kx) * in + i`, the im2col column order).
pub fn pack_weight(shape: &BlockShape, weight: &[f32]) -> Vec<f32> {
    let (ci, co) = (shape.in_channels, shape.out_channels);
    assert_eq!(weight.len(), co * ci * 9, "conv weight size");
    let mut packed = vec![0.0; weight.len()];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..9 {
                packed[(t * ci + i) * co + o] = weight[(o * ci + i) * 9 + t];
            }
        }
    }
    packed
}

/// The inverse of [`pack_weight`]: a `[9 * in, out]` gradient in burn's layout.
fn unpack_weight(shape: &BlockShape, packed: &[f32]) -> Vec<f32> {
    let (ci, co) = (shape.in_channels, shape.out_channels);
    let mut weight = vec![0.0; packed.len()];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..9 {
                weight[(o * ci + i) * 9 + t] = packed[(t * ci + i) * co + o];
            }
        }
    }
    weight
}

/// What the forward pass returns and the backward pass needs.
#[derive(Debug, Clone)]
pub struct BlockForward {
    /// Block output after ReLU, NHWC `[batch, out_h, out_w, out]`.
    pub output: Vec<f32>,
    /// Convolution output before BatchNorm, same layout.
    pub conv: Vec<f32>,
    /// Per-channel batch mean of `conv`.
    pub mean: Vec<f32>,
    /// Per-channel biased batch variance of `conv` (what running statistics take).
    pub variance: Vec<f32>,
}

/// Per-channel affine map of the normalisation: `gamma * (c - mean) /
/// sqrt(var + eps) + beta = c * scale + shift`; also returns `1 / sqrt(var + eps)`.
fn bn_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let scale: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift, inv_std)
}

/// Adds `f(channel, a[i], b[i])` per channel to `total`, where `a` and `b`
/// are `[rows, channels]`. Sums run in f32 over blocks of 64 rows (so they
/// vectorise) and are carried in f64 across blocks (10^5+ samples).
fn channel_sum(
    a: &[f32],
    b: &[f32],
    channels: usize,
    f: impl Fn(usize, f32, f32) -> f32,
    total: &mut [f64],
) {
    const BLOCK: usize = 64;
    let mut block_sum = vec![0.0f32; channels];
    for (a, b) in a.chunks(BLOCK * channels).zip(b.chunks(BLOCK * channels)) {
        block_sum.fill(0.0);
        for (a, b) in a.chunks_exact(channels).zip(b.chunks_exact(channels)) {
            for (ch, ((acc, &x), &y)) in block_sum.iter_mut().zip(a).zip(b).enumerate() {
                *acc += f(ch, x, y);
            }
        }
        total
            .iter_mut()
            .zip(&block_sum)
            .for_each(|(t, v)| *t += *v as f64);
    }
}

/// Per-channel count, mean and sum of squared deviations of some rows,
/// mergeable across chunks (Chan et al.), so the variance never comes from
/// the cancellation-prone `E[x^2] - E[x]^2`.
#[derive(Debug, Clone)]
struct Moments {
    count: f64,
    mean: Vec<f64>,
    squares: Vec<f64>,
}

impl Moments {
    fn empty(channels: usize) -> Self {
        Moments {
            count: 0.0,
            mean: vec![0.0; channels],
            squares: vec![0.0; channels],
        }
    }

    /// Two passes over `values` (`[rows, channels]`, small enough to stay in cache).
    fn of(values: &[f32], channels: usize) -> Self {
        let count = (values.len() / channels) as f64;
        let mut mean = vec![0.0f64; channels];
        channel_sum(values, values, channels, |_, v, _| v, &mut mean);
        mean.iter_mut().for_each(|m| *m /= count.max(1.0));
        let centre: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let mut squares = vec![0.0f64; channels];
        channel_sum(
            values,
            values,
            channels,
            |ch, v, _| {
                let d = v - centre[ch];
                d * d
            },
            &mut squares,
        );
        // The f32 centre is off the f64 mean by e, and sum (v - c)^2 =
        // sum (v - mean)^2 + count * e^2.
        for ((q, m), c) in squares.iter_mut().zip(&mean).zip(&centre) {
            let e = *m - *c as f64;
            *q -= count * e * e;
        }
        Moments {
            count,
            mean,
            squares,
        }
    }

    fn merge(self, other: Self) -> Self {
        if self.count == 0.0 {
            return other;
        }
        if other.count == 0.0 {
            return self;
        }
        let count = self.count + other.count;
        let weight = self.count * other.count / count;
        let mut mean = self.mean;
        let mut squares = self.squares;
        for (((m, q), om), oq) in mean
            .iter_mut()
            .zip(squares.iter_mut())
            .zip(&other.mean)
            .zip(&other.squares)
        {
            let delta = om - *m;
            *m += delta * other.count / count;
            *q += oq + delta * delta * weight;
        }
        Moments {
            count,
            mean,
            squares,
        }
    }
}

/// `total += part`, element by element.
fn add_into<T: Copy + std::ops::AddAssign>(total: &mut [T], part: &[T]) {
    total.iter_mut().zip(part).for_each(|(t, p)| *t += *p);
}

/// `out = grad` where the block's pre-ReLU value `conv * scale + shift` is
/// positive, else 0 (rows of `channels` values).
fn relu_backward(conv: &[f32], grad: &[f32], scale: &[f32], shift: &[f32], out: &mut [f32]) {
    let channels = scale.len();
    for ((o_row, c_row), g_row) in out
        .chunks_exact_mut(channels)
        .zip(conv.chunks_exact(channels))
        .zip(grad.chunks_exact(channels))
    {
        let terms = o_row.iter_mut().zip(c_row).zip(g_row).zip(scale).zip(shift);
        for ((((o, &v), &g), s), t) in terms {
            *o = if v * s + t > 0.0 { g } else { 0.0 };
        }
    }
}

/// Forward pass of the block on `input` (NHWC) with burn-layout `weight`.
pub fn forward(
    shape: &BlockShape,
    input: &[f32],
    weight: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> BlockForward {
    assert_eq!(input.len(), shape.batch * shape.in_values(), "input size");
    let co = shape.out_channels;
    let k = shape.patch();
    let packed = pack_weight(shape, weight);
    let images = shape.images_per_chunk();
    let rows_per_chunk = images * shape.out_pixels();
    let mut conv = vec![0.0f32; shape.rows() * co];
    // Convolution, chunk by chunk, with the per-channel sums of the chunk
    // taken while its output is still in cache (f64: 10^5+ samples).
    // (Per-chunk results are collected in chunk order and merged in that
    // order, so the sums do not depend on how rayon splits the work.)
    let moments = conv
        .par_chunks_mut(rows_per_chunk * co)
        .zip(input.par_chunks(images * shape.in_values()))
        .map_init(Vec::new, |cols, (out, x)| {
            let rows = out.len() / co;
            cols.resize(rows * k, 0.0);
            im2col(shape, x, cols);
            matmul(out, false, (rows, co, k), cols, (k, 1), &packed, (co, 1));
            Moments::of(out, co)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Moments::empty(co), Moments::merge);
    let n = moments.count.max(1.0);
    let mean: Vec<f32> = moments.mean.iter().map(|&m| m as f32).collect();
    let variance: Vec<f32> = moments
        .squares
        .iter()
        .map(|q| (q / n).max(0.0) as f32)
        .collect();
    let (scale, shift, _) = bn_affine(gamma, beta, &mean, &variance, epsilon);
    let mut output = vec![0.0f32; conv.len()];
    output
        .par_chunks_mut(rows_per_chunk * co)
        .zip(conv.par_chunks(rows_per_chunk * co))
        .for_each(|(out, c)| {
            for (out_row, c_row) in out.chunks_exact_mut(co).zip(c.chunks_exact(co)) {
                for (((o, &v), s), t) in out_row.iter_mut().zip(c_row).zip(&scale).zip(&shift) {
                    *o = (v * s + t).max(0.0);
                }
            }
        });
    BlockForward {
        output,
        conv,
        mean,
        variance,
    }
}

/// Gradients of one block.
#[derive(Debug, Clone)]
pub struct BlockGradients {
    /// Gradient of the input, NHWC; `None` when it was not asked for.
    pub input: Option<Vec<f32>>,
    /// Gradient of the weight, burn's `[out, in, 3, 3]` layout.
    pub weight: Vec<f32>,
    /// Gradient of BatchNorm's scale.
    pub gamma: Vec<f32>,
    /// Gradient of BatchNorm's shift.
    pub beta: Vec<f32>,
}

/// What the backward pass reads from the forward pass.
#[derive(Debug, Clone, Copy)]
pub struct BackwardInputs<'a> {
    /// The block's input, NHWC.
    pub input: &'a [f32],
    /// The convolution output before BatchNorm ([`BlockForward::conv`]).
    pub conv: &'a [f32],
    /// Conv weight, burn layout.
    pub weight: &'a [f32],
    /// BatchNorm scale.
    pub gamma: &'a [f32],
    /// BatchNorm shift.
    pub beta: &'a [f32],
    /// Batch mean the forward pass used.
    pub mean: &'a [f32],
    /// Batch variance the forward pass used.
    pub variance: &'a [f32],
    /// BatchNorm epsilon.
    pub epsilon: f64,
}

/// Backward pass: the gradients of the block's input (when `need_input`),
/// weight, gamma and beta given the gradient `grad` of its output.
pub fn backward(
    shape: &BlockShape,
    saved: BackwardInputs<'_>,
    grad: &[f32],
    need_input: bool,
) -> BlockGradients {
    let co = shape.out_channels;
    let k = shape.patch();
    assert_eq!(grad.len(), shape.rows() * co, "output gradient size");
    assert_eq!(saved.conv.len(), grad.len(), "saved conv size");
    let (scale, shift, inv_std) = bn_affine(
        saved.gamma,
        saved.beta,
        saved.mean,
        saved.variance,
        saved.epsilon,
    );
    // xhat = c * inv_std + centre
    let centre: Vec<f32> = saved
        .mean
        .iter()
        .zip(&inv_std)
        .map(|(m, a)| -m * a)
        .collect();
    let images = shape.images_per_chunk();
    let rows_per_chunk = images * shape.out_pixels();
    // Pass 1: gradient through the ReLU (its mask recomputed from `conv`),
    // summed per channel, plain and times the normalised input.
    let partial_sums = saved
        .conv
        .par_chunks(rows_per_chunk * co)
        .zip(grad.par_chunks(rows_per_chunk * co))
        .map_init(Vec::new, |masked, (c, g)| {
            masked.resize(c.len(), 0.0);
            relu_backward(c, g, &scale, &shift, masked);
            // sum of g, and of g * xhat = g * (c - mean) * inv_std
            let (mut sg, mut sgx) = (vec![0.0f64; co], vec![0.0f64; co]);
            channel_sum(masked, c, co, |_, gv, _| gv, &mut sg);
            channel_sum(
                masked,
                c,
                co,
                |ch, gv, v| gv * (v * inv_std[ch] + centre[ch]),
                &mut sgx,
            );
            (sg, sgx)
        })
        .collect::<Vec<_>>();
    let (mut sum_g, mut sum_gx) = (vec![0.0f64; co], vec![0.0f64; co]);
    for (sg, sgx) in &partial_sums {
        add_into(&mut sum_g, sg);
        add_into(&mut sum_gx, sgx);
    }
    let n = shape.rows() as f64;
    let mean_g: Vec<f32> = sum_g.iter().map(|s| (s / n) as f32).collect();
    let mean_gx: Vec<f32> = sum_gx.iter().map(|s| (s / n) as f32).collect();
    let packed = pack_weight(shape, saved.weight);

    // Pass 2, per chunk of images: the conv output's gradient, then the
    // chunk's weight gradient (summed over chunks in order below) and its
    // input gradient.
    let mut input_grad = if need_input {
        vec![0.0f32; saved.input.len()]
    } else {
        Vec::new()
    };
    let chunk_count = shape.batch.div_ceil(images);
    let input_parts: Vec<Option<&mut [f32]>> = if need_input {
        input_grad
            .chunks_mut(images * shape.in_values())
            .map(Some)
            .collect()
    } else {
        (0..chunk_count).map(|_| None).collect()
    };
    let weight_partials = input_parts
        .into_par_iter()
        .zip(saved.input.par_chunks(images * shape.in_values()))
        .zip(saved.conv.par_chunks(rows_per_chunk * co))
        .zip(grad.par_chunks(rows_per_chunk * co))
        .map_init(
            || (Vec::new(), Vec::new()),
            |(cols, dconv), (((dx, x), c), g)| {
                let rows = c.len() / co;
                dconv.resize(rows * co, 0.0);
                relu_backward(c, g, &scale, &shift, dconv);
                // dconv = scale * (g - mean(g) - xhat * mean(g * xhat))
                for (d_row, c_row) in dconv.chunks_exact_mut(co).zip(c.chunks_exact(co)) {
                    let terms = d_row
                        .iter_mut()
                        .zip(c_row)
                        .zip(&scale)
                        .zip(&inv_std)
                        .zip(&centre)
                        .zip(&mean_g)
                        .zip(&mean_gx);
                    for ((((((d, &v), s), a), b), mg), mgx) in terms {
                        *d = s * (*d - mg - (v * a + b) * mgx);
                    }
                }
                cols.resize(rows * k, 0.0);
                im2col(shape, x, cols);
                // dW[k x co] = cols^T[k x rows] * dconv[rows x co]
                let mut dw = vec![0.0f32; k * co];
                matmul(&mut dw, false, (k, co, rows), cols, (1, k), dconv, (co, 1));
                if let Some(dx) = dx {
                    // dcols[rows x k] = dconv[rows x co] * W^T[co x k], into `cols`.
                    matmul(cols, false, (rows, k, co), dconv, (co, 1), &packed, (1, co));
                    col2im(shape, cols, dx);
                }
                dw
            },
        )
        .collect::<Vec<_>>();
    let mut weight_packed = vec![0.0f32; k * co];
    for dw in &weight_partials {
        add_into(&mut weight_packed, dw);
    }
    BlockGradients {
        input: need_input.then_some(input_grad),
        weight: unpack_weight(shape, &weight_packed),
        gamma: sum_gx.iter().map(|&v| v as f32).collect(),
        beta: sum_g.iter().map(|&v| v as f32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Direct 3x3 convolution, NHWC, burn-layout weight: the reference.
    fn conv_reference(shape: &BlockShape, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (h, wd, ci, co, s) = (
            shape.height,
            shape.width,
            shape.in_channels,
            shape.out_channels,
            shape.stride,
        );
        let (oh, ow) = (shape.out_height(), shape.out_width());
        let mut out = vec![0.0f32; shape.batch * oh * ow * co];
        for b in 0..shape.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..co {
                        let mut acc = 0.0f64;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (oy * s + ky) as isize - 1;
                                let ix = (ox * s + kx) as isize - 1;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                for i in 0..ci {
                                    let xv = x[((b * h + iy as usize) * wd + ix as usize) * ci + i];
                                    acc += (xv * w[((o * ci + i) * 3 + ky) * 3 + kx]) as f64;
                                }
                            }
                        }
                        out[((b * oh + oy) * ow + ox) * co + o] = acc as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv_output_matches_a_direct_convolution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (h, w, ci, co, s) in [(5, 7, 3, 4, 1), (6, 5, 2, 3, 2), (4, 4, 1, 16, 2)] {
            let shape = BlockShape {
                batch: 3,
                height: h,
                width: w,
                in_channels: ci,
                out_channels: co,
                stride: s,
            };
            let x: Vec<f32> = (0..3 * h * w * ci)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect();
            let wt: Vec<f32> = (0..co * ci * 9)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect();
            let ones = vec![1.0; co];
            let zeros = vec![0.0; co];
            let f = forward(&shape, &x, &wt, &ones, &zeros, 1e-5);
            let r = conv_reference(&shape, &x, &wt);
            for (a, b) in f.conv.iter().zip(&r) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b} for {shape:?}");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for any x, y.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let shape = BlockShape {
            batch: 2,
            height: 5,
            width: 6,
            in_channels: 3,
            out_channels: 1,
            stride: 2,
        };
        let x: Vec<f32> = (0..2 * 5 * 6 * 3).map(|_| rng.random::<f32>()).collect();
        let y: Vec<f32> = (0..shape.rows() * shape.patch())
            .map(|_| rng.random::<f32>())
            .collect();
        let mut cols = vec![0.0; y.len()];
        im2col(&shape, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im(&shape, &y, &mut back);
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Resumed runs must write the same bytes as straight ones on any
        // machine: every sum runs in chunk order, whatever rayon's split.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let shape = BlockShape {
            batch: 24,
            height: 9,
            width: 9,
            in_channels: 4,
            out_channels: 6,
            stride: 1,
        };
        let x: Vec<f32> = (0..24 * 81 * 4)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let w: Vec<f32> = (0..6 * 4 * 9).map(|_| rng.random::<f32>() - 0.5).collect();
        let g: Vec<f32> = (0..shape.rows() * 6)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let (gamma, beta) = (vec![1.2; 6], vec![0.1; 6]);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let f = forward(&shape, &x, &w, &gamma, &beta, 1e-5);
                let saved = BackwardInputs {
                    input: &x,
                    conv: &f.conv,
                    weight: &w,
                    gamma: &gamma,
                    beta: &beta,
                    mean: &f.mean,
                    variance: &f.variance,
                    epsilon: 1e-5,
                };
                let b = backward(&shape, saved, &g, true);
                (
                    f.output, f.mean, f.variance, b.input, b.weight, b.gamma, b.beta,
                )
            })
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert!(run(threads) == one, "{threads} threads differ from 1");
        }
    }

    #[test]
    fn weight_packing_round_trips() {
        let shape = BlockShape {
            batch: 1,
            height: 3,
            width: 3,
            in_channels: 5,
            out_channels: 7,
            stride: 1,
        };
        let w: Vec<f32> = (0..7 * 5 * 9).map(|i| i as f32).collect();
        assert_eq!(unpack_weight(&shape, &pack_weight(&shape, &w)), w);
    }
}
