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
//!
//! The conv kernels, all bit-exact: `conv3x3_portable` (every target);
//! on Cortex-M cores with the DSP extension, `conv_dsp` (`sxtb16` /
//! `smlad`, chosen at compile time); on x86-64, `conv_avx2` (AVX2 found at
//! run time: a GEMM-shaped direct kernel, and Winograd F(2x2, 3x3) in exact
//! integer arithmetic for stride-1 layers) and, where that does not apply,
//! the SSE2/AVX2 blocked kernel over `simd`.

use seaclr_shared::blob::{Conv3x3, GlobalAvgPool, Linear, Requant, Shape};

#[cfg(target_arch = "x86_64")]
mod conv_avx2;
#[cfg(any(test, seaclr_dsp))]
mod conv_dsp;
#[cfg(target_arch = "x86_64")]
mod conv_vnni;
#[cfg(any(test, feature = "std"))]
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod simd;
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

/// Output shape of a 3x3 conv with padding 1.
pub fn conv3x3_output_shape(input: Shape, stride: usize, out_channels: usize) -> Shape {
    Shape {
        height: (input.height - 1) / stride + 1,
        width: (input.width - 1) / stride + 1,
        channels: out_channels,
    }
}

/// Writes the `9 * cin` patch of output pixel (`oy`, `ox`) as `q - zp` in
/// `i16` (padding: 0), in weight order `[ky][kx][in]`. Where a whole kernel
/// row lies inside the image its `3 * cin` inputs are contiguous in HWC, so
/// the interior needs no per-tap border checks.
#[inline(always)]
fn fill_patch(
    patch: &mut [i16],
    input: &[i8],
    shape: Shape,
    stride: usize,
    (oy, ox): (usize, usize),
    zp: i16,
) {
    let cin = shape.channels;
    let convert = |dst: &mut [i16], src: Option<&[i8]>| match src {
        Some(src) if src.len() == dst.len() => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, &x)| *d = x as i16 - zp),
        _ => dst.fill(0),
    };
    let (x0, y0) = (ox * stride, oy * stride); // input column / row + 1 of tap 0
    for (ky, dst_row) in patch.chunks_exact_mut(3 * cin).take(3).enumerate() {
        let iy = y0 + ky;
        if iy == 0 || iy > shape.height {
            dst_row.fill(0);
            continue;
        }
        let row_at = (iy - 1) * shape.width;
        if x0 >= 1 && x0 + 1 < shape.width {
            let at = (row_at + x0 - 1) * cin;
            convert(dst_row, input.get(at..at + 3 * cin));
        } else {
            for (kx, dst) in dst_row.chunks_exact_mut(cin).enumerate() {
                let ix = x0 + kx;
                let src = if ix == 0 || ix > shape.width {
                    None
                } else {
                    let at = (row_at + ix - 1) * cin;
                    input.get(at..at + cin)
                };
                convert(dst, src);
            }
        }
    }
}

/// Sum of `N` products, fully unrolled: LLVM's SLP vectorizer turns it into
/// full-width `pmaddwd` (16 products per AVX2 instruction) plus one
/// horizontal add.
#[inline(always)]
fn dot_n<const N: usize>(x: &[i16; N], w: &[u8; N]) -> i32 {
    let mut t = 0i32;
    for j in 0..N {
        t = t.wrapping_add(x[j] as i32 * (w[j] as i8) as i32);
    }
    t
}

/// Dot product of an `i16` patch with an `i8` weight row stored as bytes,
/// in unrolled steps of [`DOT_CHUNK`], then 16, then scalar. Measured
/// (callgrind) against a plain zip loop, the old 4-row loop and per-lane
/// `[i32; 8]` accumulators: LLVM only emits full-width `pmaddwd` for a fixed
/// size reduction like [`dot_n`]; the loop forms got half-empty `pmaddwd`
/// or `pmulld`, the lane form scalar code.
#[inline(always)]
fn dot(x: &[i16], w: &[u8]) -> i32 {
    let (xc, xt) = x.as_chunks::<DOT_CHUNK>();
    let (wc, wt) = w.as_chunks::<DOT_CHUNK>();
    let mut s = 0i32;
    for (x, w) in xc.iter().zip(wc) {
        s = s.wrapping_add(dot_n(x, w));
    }
    let (xc, xt) = xt.as_chunks::<16>();
    let (wc, wt) = wt.as_chunks::<16>();
    for (x, w) in xc.iter().zip(wc) {
        s = s.wrapping_add(dot_n(x, w));
    }
    xt.iter()
        .zip(wt)
        .fold(s, |a, (&x, &w)| a.wrapping_add(x as i32 * (w as i8) as i32))
}
/// Products per unrolled step of [`dot`] (16 and 64 measured slower).
const DOT_CHUNK: usize = 32;

/// 3x3 convolution, padding 1 (with the input zero point), stride 1 or 2.
///
/// `patch` is scratch of at least `9 * in_channels` values; `output` holds
/// at least the output shape's length. The layer was checked by
/// `Blob::parse`; slices too short for the shapes make the kernel write
/// fewer values, never read out of bounds.
///
/// On x86-64 with AVX-512 VNNI (detected at run time) this runs the
/// `vpdpbusd` kernel of `conv_vnni` where it covers the layer; else, with
/// AVX2, the GEMM-style kernel of `conv_avx2` where it covers the layer;
/// else the blocked SIMD kernel (`conv3x3_blocked`); none touches the patch
/// (the scratch stays as the header states, unused). On Cortex-M cores
/// with the DSP extension (`thumbv7em`, `cfg(seaclr_dsp)` from
/// `build.rs`) it runs the `smlad` kernel of `conv_dsp`, which widens the
/// patches of 4 pixels into the scratch. Every other target runs the
/// portable `conv3x3_portable`. All are bit-exact.
pub fn conv3x3(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    #[cfg(target_arch = "x86_64")]
    {
        let out_shape =
            conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize);
        if patch.len() >= 9 * shape.channels
            && (conv_vnni::conv3x3(layer, input, shape, out_shape, output)
                || conv_avx2::conv3x3(layer, input, shape, out_shape, output))
        {
            return out_shape;
        }
        conv3x3_blocked(layer, input, shape, patch, output)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        #[cfg(seaclr_dsp)]
        if conv_dsp::conv3x3(layer, input, shape, patch, output) {
            return conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize);
        }
        conv3x3_portable(layer, input, shape, patch, output)
    }
}

/// The portable 3x3 convolution: one `i16` patch per output pixel, then one
/// dot product per output channel. Same contract as [`conv3x3`].
pub(crate) fn conv3x3_portable(
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
    if cin != shape.channels || row == 0 {
        return out_shape;
    }
    let mut out_pixels = output.chunks_exact_mut(cout);
    for oy in 0..out_shape.height {
        for ox in 0..out_shape.width {
            let Some(out) = out_pixels.next() else {
                return out_shape;
            };
            fill_patch(patch, input, shape, stride, (oy, ox), zp);
            let rows = layer.weights.0.chunks_exact(row);
            for (c, (o, w)) in out.iter_mut().zip(rows).enumerate() {
                let acc = layer.bias.get(c).unwrap_or(0).wrapping_add(dot(patch, w));
                *o = requantize(acc, &layer.requant, c);
            }
        }
    }
    out_shape
}

/// In-image kernel taps along one axis for output index `o`: the first and
/// last tap (`0..=2`) whose input index `o * stride + k - 1` lies in
/// `0..size`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn taps(o: usize, stride: usize, size: usize) -> (usize, usize) {
    let first = o * stride; // input index + 1 of tap 0
    (usize::from(first == 0), 2.min(size - first))
}

/// Output channels per SIMD pass (each widened input vector is reused this
/// many times).
#[cfg(target_arch = "x86_64")]
const BLOCK_CHANNELS: usize = 4;

/// x86-64 3x3 convolution: per output row, pixels in pairs with the same
/// in-image taps (a single pixel at a border), [`BLOCK_CHANNELS`] output
/// channels per [`simd::dots`] pass (then one at a time), reading the int8
/// input directly: padding taps are skipped, which is exact because padding
/// is the zero point (contributes 0). Same contract and results as
/// [`conv3x3_portable`], which it defers to for slices too short for the
/// shapes (the portable kernel's exact partial behaviour).
#[cfg(target_arch = "x86_64")]
pub(crate) fn conv3x3_blocked(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let (cin, cout) = (layer.in_channels as usize, layer.out_channels as usize);
    let stride = layer.stride as usize;
    let out_shape = conv3x3_output_shape(shape, stride, cout);
    let row = 9 * cin;
    if patch.len() < row || cin != shape.channels || row == 0 {
        return out_shape;
    }
    let weights = layer.weights.0;
    if input.len() < shape.len() || output.len() < out_shape.len() || weights.len() < cout * row {
        return conv3x3_portable(layer, input, shape, patch, output);
    }
    if cin == 1 {
        conv3x3_one_input_channel(layer, input, shape, out_shape, output);
        return out_shape;
    }
    let zp = layer.requant.input_zero_point as i16;
    let (width, ow) = (shape.width, out_shape.width);
    for (oy, out_row) in output
        .chunks_exact_mut(ow * cout)
        .take(out_shape.height)
        .enumerate()
    {
        let (ky0, ky1) = taps(oy, stride, shape.height);
        let iy0 = oy * stride + ky0 - 1; // input row of tap ky0
        let mut ox = 0;
        while ox < ow {
            let (kx0, kx1) = taps(ox, stride, width);
            let pair = ox + 1 < ow && taps(ox + 1, stride, width) == (kx0, kx1);
            let len = (kx1 - kx0 + 1) * cin;
            // Input offset of tap (ky0, kx0) of pixel `ox + p`.
            let at = |p: usize| ((iy0 * width) + (ox + p) * stride + kx0 - 1) * cin;
            let seg = |p: usize, k: usize| {
                let a = at(p) + k * width * cin;
                &input[a..a + len]
            };
            let out = &mut out_row[ox * cout..];
            if pair {
                let mut segs = [([&input[..0]; 2], 0); 3];
                for (k, s) in segs.iter_mut().enumerate().take(ky1 - ky0 + 1) {
                    *s = ([seg(0, k), seg(1, k)], ((ky0 + k) * 3 + kx0) * cin);
                }
                let (a, b) = out.split_at_mut(cout);
                block(layer, &segs[..=ky1 - ky0], len, zp, [a, &mut b[..cout]]);
                ox += 2;
            } else {
                let mut segs = [([&input[..0]; 1], 0); 3];
                for (k, s) in segs.iter_mut().enumerate().take(ky1 - ky0 + 1) {
                    *s = ([seg(0, k)], ((ky0 + k) * 3 + kx0) * cin);
                }
                block(layer, &segs[..=ky1 - ky0], len, zp, [&mut out[..cout]]);
                ox += 1;
            }
        }
    }
    out_shape
}

/// The first layer (one gray input channel, `9` products per output): the
/// blocked kernel's 16-value steps would all fall into its scalar tail, so
/// this path vectorizes across output channels instead, 8 at a time: per
/// pixel the 9 centred taps, each times a column of 8 weights (LLVM emits
/// `vpmulld` / `pmulld`), then [`simd::requantize8`]. Slices were checked
/// by the caller; exact for the same reasons as [`simd::dots`].
#[cfg(target_arch = "x86_64")]
fn conv3x3_one_input_channel(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) {
    const GROUP: usize = 8;
    let cout = layer.out_channels as usize;
    let stride = layer.stride as usize;
    let rq = &layer.requant;
    let zp = rq.input_zero_point as i32;
    let oq = simd::OutQuant {
        zero_point: rq.output_zero_point as i32,
        min: rq.activation_min as i32,
        max: rq.activation_max as i32,
    };
    let (height, width) = (shape.height, shape.width);
    for c0 in (0..cout).step_by(GROUP) {
        let n = GROUP.min(cout - c0);
        // Channels past `cout` get zero weights and are not stored.
        let mut columns = [[0i32; GROUP]; 9];
        for (j, c) in (c0..c0 + n).enumerate() {
            for (t, column) in columns.iter_mut().enumerate() {
                column[j] = layer
                    .weights
                    .0
                    .get(9 * c + t)
                    .map_or(0, |&w| (w as i8) as i32);
            }
        }
        let per_channel = |f: &dyn Fn(usize) -> i32| -> [i32; GROUP] {
            core::array::from_fn(|j| if j < n { f(c0 + j) } else { 0 })
        };
        let bias = per_channel(&|c| layer.bias.get(c).unwrap_or(0));
        let multiplier = per_channel(&|c| rq.multipliers.get(c).unwrap_or(0));
        let shift = per_channel(&|c| rq.shifts.get(c).unwrap_or(0) as i32);
        for oy in 0..out_shape.height {
            for ox in 0..out_shape.width {
                // Input (row, column) + 1 of tap 0; padding taps are 0.
                let (y0, x0) = (oy * stride, ox * stride);
                let mut acc = [0i32; GROUP];
                for (t, column) in columns.iter().enumerate() {
                    let (iy, ix) = (y0 + t / 3, x0 + t % 3);
                    if iy == 0 || iy > height || ix == 0 || ix > width {
                        continue;
                    }
                    let x = input[(iy - 1) * width + ix - 1] as i32 - zp;
                    for (a, &w) in acc.iter_mut().zip(column) {
                        *a += x * w;
                    }
                }
                let q = simd::requantize8(acc, bias, multiplier, shift, oq);
                let at = (oy * out_shape.width + ox) * cout + c0;
                output[at..at + n].copy_from_slice(&q[..n]);
            }
        }
    }
}

/// All output channels of `P` pixels: [`simd::dots`] over the segments,
/// then bias and requantization into `out[p][c]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block<const P: usize>(
    layer: &Conv3x3<'_>,
    segs: &[simd::Segment<'_, P>],
    len: usize,
    zp: i16,
    out: [&mut [i8]; P],
) {
    let row = 9 * layer.in_channels as usize;
    let cout = layer.out_channels as usize;
    let w = |c: usize| layer.weights.0.get(c * row..(c + 1) * row).unwrap_or(&[]);
    let rq = &layer.requant;
    let store = |out: &mut [&mut [i8]; P], c: usize, d: [i32; P]| {
        let bias = layer.bias.get(c).unwrap_or(0);
        let multiplier = rq.multipliers.get(c).unwrap_or(0);
        let shift = rq.shifts.get(c).unwrap_or(0) as i32;
        for (o, d) in out.iter_mut().zip(d) {
            let v = multiply_by_quantized_multiplier(bias.wrapping_add(d), multiplier, shift)
                .saturating_add(rq.output_zero_point as i32);
            if let Some(o) = o.get_mut(c) {
                *o = v.clamp(rq.activation_min as i32, rq.activation_max as i32) as i8;
            }
        }
    };
    let oq = simd::OutQuant {
        zero_point: rq.output_zero_point as i32,
        min: rq.activation_min as i32,
        max: rq.activation_max as i32,
    };
    let mut out = out;
    let mut c = 0;
    while c + BLOCK_CHANNELS <= cout {
        let d = simd::dots::<BLOCK_CHANNELS, P>(segs, len, core::array::from_fn(|j| w(c + j)), zp);
        let r = simd::requantize4(
            d,
            core::array::from_fn(|j| layer.bias.get(c + j).unwrap_or(0)),
            core::array::from_fn(|j| rq.multipliers.get(c + j).unwrap_or(0)),
            core::array::from_fn(|j| rq.shifts.get(c + j).unwrap_or(0) as i32),
            oq,
        );
        for (o, r) in out.iter_mut().zip(r) {
            if let Some(o) = o.get_mut(c..c + BLOCK_CHANNELS) {
                o.copy_from_slice(&r);
            }
        }
        c += BLOCK_CHANNELS;
    }
    while c < cout {
        let d = simd::dots::<1, P>(segs, len, [w(c)], zp);
        store(&mut out, c, d.map(|d| d[0]));
        c += 1;
    }
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
