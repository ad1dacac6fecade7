//! 3x3 convolution for Cortex-M cores with the DSP extension (Armv7E-M:
//! Cortex-M4, M7), chosen at compile time (`cfg(seaclr_dsp)`), in the shape
//! of CMSIS-NN's int8 kernels: two multiply-adds per `smlad` on 16-bit
//! pairs, several outputs per pass so each load serves several of them.
//!
//! **Layout.** For a pass of [`PIXELS`] output pixels the patches (the
//! `9 * cin` inputs of each, as `q - zp` in `i16`, padding 0) are written
//! into the arena's patch scratch as *columns*: per group of 4 patch
//! values `k..k + 4`, first the word `(x[k], x[k + 2])` of every pixel, then
//! the word `(x[k + 1], x[k + 3])` of every pixel. That is the order in
//! which `sxtb16` and `sxtb16 ror #8` split 4 weight bytes into two pairs,
//! so a weight word is loaded straight from the blob (no copy, no
//! reordering) and one group of 4 weights times 4 pixels is
//!
//! ```text
//! ldr w; sxtb16 a, w; sxtb16 b, w, ror #8
//! ldm 4 words; 4 smlad with a; ldm 4 words; 4 smlad with b
//! ```
//!
//! 13 instructions for 16 multiply-adds (`ops::mac_blocks`, one `asm!`
//! loop on the target, 4 groups per iteration). One output channel runs
//! its whole weight row against the columns with its 4 sums in registers,
//! then the next channel reuses the same columns, so the widening of the
//! inputs is paid once per pixel for all output channels. The first layer
//! (one input channel, 9 values per patch) has its own pass loop
//! ([`first_layer`]).
//!
//! **Scratch.** The engine's scratch holds `9 * cin_max` values; where the
//! columns of 4 whole patches do not fit (the wide layers), the patch
//! range is split into chunks that do, and the sums of up to
//! [`CHANNEL_BLOCK`] channels wait on the stack between chunks (1 KiB).
//!
//! **Exactness.** Every product is `(q - zp) * w` with `|q - zp| <= 255`,
//! `|w| <= 128`, computed exactly in `smlad`; sums wrap modulo 2^32 like
//! the reference's `i32` result (its `i64` sum cast with `as i32`), for any
//! channel count. Requantization is the other kernels'
//! [`multiply_by_quantized_multiplier`], then the same zero point and
//! clamp as `requantize`. The instructions come from [`ops`]: inline
//! `asm!` on the target, the same arithmetic in plain Rust on the host,
//! where the tests run this code against the reference.

use super::{conv3x3_output_shape, multiply_by_quantized_multiplier};
use ops::{BLOCK_GROUPS, mac_blocks, ssub16, step, sxtb16, sxtb16_ror8};
use seaclr_shared::blob::{Conv3x3, Requant, Shape};

pub(crate) mod ops;
#[cfg(test)]
mod tests;

/// Output pixels per pass (consecutive in HWC order, across rows).
pub(crate) const PIXELS: usize = 4;
/// Words of one group of 4 patch values for all pixels of a pass.
const GROUP_WORDS: usize = 2 * PIXELS;
/// Output channels whose sums are kept on the stack across patch chunks.
pub(crate) const CHANNEL_BLOCK: usize = 64;

/// The pixels of one pass: output `(row, column)`, `None` past the end.
type Pass = [Option<(usize, usize)>; PIXELS];

/// 3x3 convolution with [`super::conv3x3`]'s contract. Returns `false`,
/// having written nothing, where the slices are too short for the shapes
/// or the scratch cannot hold one group of columns (the caller then runs
/// the portable kernel).
pub(crate) fn conv3x3(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    patch: &mut [i16],
    output: &mut [i8],
) -> bool {
    let (cin, cout) = (layer.in_channels as usize, layer.out_channels as usize);
    let stride = layer.stride as usize;
    let out_shape = conv3x3_output_shape(shape, stride, cout);
    let k = 9 * cin;
    let weights = layer.weights.0;
    if cin == 0
        || cin != shape.channels
        || patch.len() < k
        || input.len() < shape.len()
        || output.len() < out_shape.len()
        || weights.len() < cout * k
    {
        return false;
    }
    let (_, words, _) = bytemuck::pod_align_to_mut::<i16, u32>(patch);
    let groups = k.div_ceil(4);
    // PIXELS words of slack after the last group let every pixel's column
    // be walked in whole `GROUP_WORDS` steps from its own offset.
    let mut chunk = (words.len().saturating_sub(PIXELS) / GROUP_WORDS).min(groups);
    if chunk < groups && chunk >= BLOCK_GROUPS {
        chunk -= chunk % BLOCK_GROUPS; // whole blocks of the inner loop
    }
    if chunk == 0 {
        return false;
    }
    let columns = &mut words[..chunk * GROUP_WORDS + PIXELS];
    let zp = layer.requant.input_zero_point as i32;
    let (ow, npix) = (out_shape.width, out_shape.height * out_shape.width);
    if cin == 1 && chunk == groups {
        first_layer(layer, input, shape, out_shape, columns, output);
        return true;
    }
    let mut sums = [[0i32; PIXELS]; CHANNEL_BLOCK];
    for n0 in (0..npix).step_by(PIXELS) {
        let np = PIXELS.min(npix - n0);
        let pass: Pass = core::array::from_fn(|p| (p < np).then(|| ((n0 + p) / ow, (n0 + p) % ow)));
        let out = &mut output[n0 * cout..(n0 + np) * cout];
        for c0 in (0..cout).step_by(CHANNEL_BLOCK) {
            let sums = &mut sums[..CHANNEL_BLOCK.min(cout - c0)];
            let rows = weights[c0 * k..(c0 + sums.len()) * k].chunks_exact(k);
            for g0 in (0..groups).step_by(chunk) {
                let (ka, kb) = (4 * g0, k.min(4 * (g0 + chunk)));
                let cols = &mut columns[..(kb - ka).div_ceil(4) * GROUP_WORDS + PIXELS];
                fill(cols, input, shape, stride, &pass, (ka, kb), zp);
                let cols = cols.as_chunks::<GROUP_WORDS>().0;
                for ((s, row), c) in sums.iter_mut().zip(rows.clone()).zip(c0..) {
                    let start = if g0 == 0 {
                        [layer.bias.get(c).unwrap_or(0); PIXELS]
                    } else {
                        *s
                    };
                    *s = dot(start, cols, &row[ka..kb]);
                }
            }
            for (s, c) in sums.iter().zip(c0..) {
                let q = requantize_pass(s, &layer.requant, c);
                for (p, q) in q.into_iter().enumerate().take(np) {
                    if let Some(o) = out.get_mut(p * cout + c) {
                        *o = q;
                    }
                }
            }
        }
    }
    true
}

/// [`requantize`] of the sums of one channel for all pixels of a pass,
/// with the channel's multiplier and shift read once and the left-shift
/// case split off, so that the shared
/// [`multiply_by_quantized_multiplier`] inlines without its left-shift
/// multiply where the shift is a right shift (the committed model's case).
#[inline(always)]
fn requantize_pass(acc: &[i32; PIXELS], rq: &Requant<'_>, c: usize) -> [i8; PIXELS] {
    let multiplier = rq.multipliers.get(c).unwrap_or(0);
    let shift = rq.shifts.get(c).unwrap_or(0) as i32;
    let finish = |acc: i32, shift: i32| {
        multiply_by_quantized_multiplier(acc, multiplier, shift)
            .saturating_add(rq.output_zero_point as i32)
            .clamp(rq.activation_min as i32, rq.activation_max as i32) as i8
    };
    if shift > 0 {
        acc.map(|a| finish(a, shift))
    } else {
        acc.map(|a| finish(a, shift.min(0)))
    }
}

/// Adds the products of one weight row range with the columns to the
/// [`PIXELS`] sums `acc`. A last group of fewer than 4 weights is padded
/// with zeros.
#[inline(always)]
fn dot(mut acc: [i32; PIXELS], cols: &[[u32; GROUP_WORDS]], w: &[u8]) -> [i32; PIXELS] {
    let (quads, tail) = w.as_chunks::<4>();
    // Whole blocks in the loop of `mac_blocks`, then single groups.
    let n = quads.len().min(cols.len()) / BLOCK_GROUPS * BLOCK_GROUPS;
    mac_blocks(&mut acc, cols[..n].as_chunks().0, w[..4 * n].as_chunks().0);
    for (x, w) in cols[n..].iter().zip(&quads[n..]) {
        step(&mut acc, x, u32::from_le_bytes(*w));
    }
    if let Some(x) = cols.get(quads.len())
        && !tail.is_empty()
    {
        let w = tail
            .iter()
            .rev()
            .fold(0u32, |word, &b| (word << 8) | b as u32);
        step(&mut acc, x, w);
    }
    acc
}

/// Writes patch values `ka..kb` (`ka` a multiple of 4) of every pixel of
/// the pass into `cols` (their groups, from 0): `q - zp` for taps inside
/// the image, 0 for padding and for pixels past the end. Values of a last
/// partial group past `kb` are set to 0.
fn fill(
    cols: &mut [u32],
    input: &[i8],
    shape: Shape,
    stride: usize,
    pass: &Pass,
    (ka, kb): (usize, usize),
    zp: i32,
) {
    let cin = shape.channels;
    let zz = (zp as u16 as u32) * 0x0001_0001;
    if kb % 4 != 0
        && let Some(last) = cols.chunks_exact_mut(GROUP_WORDS).last()
    {
        last.fill(0);
    }
    for (p, pixel) in pass.iter().enumerate() {
        let mut col = Column {
            cols: cols.get_mut(p..).unwrap_or_default(),
            ka,
            zz,
        };
        let Some((oy, ox)) = *pixel else {
            col.zeros(ka, kb);
            continue;
        };
        let (y0, x0) = (oy * stride, ox * stride); // input row / column + 1 of tap 0
        for ky in 0..3 {
            let k0 = 3 * ky * cin;
            let (lo, hi) = (k0.max(ka), (k0 + 3 * cin).min(kb));
            if lo >= hi {
                continue;
            }
            let iy = y0 + ky;
            if iy == 0 || iy > shape.height {
                col.zeros(lo, hi);
                continue;
            }
            let row = (iy - 1) * shape.width;
            if x0 >= 1 && x0 + 1 < shape.width {
                // The whole kernel row is inside: 3 * cin contiguous inputs.
                let at = (row + x0 - 1) * cin; // input of patch value k0
                col.copy(lo, input.get(at + lo - k0..at + hi - k0).unwrap_or(&[]));
                continue;
            }
            for kx in 0..3 {
                let t0 = k0 + kx * cin;
                let (lo, hi) = (t0.max(ka), (t0 + cin).min(kb));
                if lo >= hi {
                    continue;
                }
                let ix = x0 + kx;
                if ix == 0 || ix > shape.width {
                    col.zeros(lo, hi);
                } else {
                    let at = (row + ix - 1) * cin; // input of patch value t0
                    col.copy(lo, input.get(at + lo - t0..at + hi - t0).unwrap_or(&[]));
                }
            }
        }
    }
}

/// The first layer (one input channel): each pass's 4 patches of 9 values
/// in 3 groups, then per output channel 3 [`step`]s straight from the
/// channel's 9 weight bytes (the ninth alone in its word) and the
/// requantization. Kept out of line so that its registers do not disturb
/// the general loop's. The caller checked the slices and that `columns`
/// holds the 3 groups.
#[inline(never)]
fn first_layer(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    columns: &mut [u32],
    output: &mut [i8],
) {
    let cout = out_shape.channels;
    let zp = layer.requant.input_zero_point as i32;
    let (ow, npix) = (out_shape.width, out_shape.height * out_shape.width);
    let weights = layer.weights.0.chunks_exact(9).take(cout);
    for n0 in (0..npix).step_by(PIXELS) {
        let np = PIXELS.min(npix - n0);
        let pass: Pass = core::array::from_fn(|p| (p < np).then(|| ((n0 + p) / ow, (n0 + p) % ow)));
        fill_one_channel(columns, input, shape, layer.stride as usize, &pass, zp);
        let [x0, x1, x2, ..] = columns.as_chunks::<GROUP_WORDS>().0 else {
            return;
        };
        let out = &mut output[n0 * cout..(n0 + np) * cout];
        for (c, w) in weights.clone().enumerate() {
            let mut acc = [layer.bias.get(c).unwrap_or(0); PIXELS];
            step(&mut acc, x0, u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            step(&mut acc, x1, u32::from_le_bytes([w[4], w[5], w[6], w[7]]));
            step(&mut acc, x2, w[8] as u32);
            let q = requantize_pass(&acc, &layer.requant, c);
            for (p, q) in q.into_iter().enumerate().take(np) {
                if let Some(o) = out.get_mut(p * cout + c) {
                    *o = q;
                }
            }
        }
    }
}

/// [`fill`] for the first layer (one input channel, the whole 9-value
/// patch in 3 groups): the 9 values of a pixel (0 for padding and past the
/// pass's end), then its 6 words. The generic path would write them one
/// halfword at a time.
fn fill_one_channel(
    cols: &mut [u32],
    input: &[i8],
    shape: Shape,
    stride: usize,
    pass: &Pass,
    zp: i32,
) {
    let (h, w) = (shape.height, shape.width);
    for (p, pixel) in pass.iter().enumerate() {
        let mut v = [0i32; 12];
        if let Some((oy, ox)) = *pixel {
            let (y0, x0) = (oy * stride, ox * stride); // input row / column + 1 of tap 0
            for (ky, v) in v.chunks_exact_mut(3).take(3).enumerate() {
                let iy = y0 + ky;
                if iy == 0 || iy > h {
                    continue;
                }
                let row = &input[(iy - 1) * w..iy * w];
                if x0 >= 1 && x0 + 1 < w {
                    let x = &row[x0 - 1..x0 + 2];
                    v[0] = x[0] as i32 - zp;
                    v[1] = x[1] as i32 - zp;
                    v[2] = x[2] as i32 - zp;
                } else {
                    for (kx, v) in v.iter_mut().enumerate() {
                        let ix = x0 + kx;
                        if ix >= 1 && ix <= w {
                            *v = row[ix - 1] as i32 - zp;
                        }
                    }
                }
            }
        }
        let pack = |lo: i32, hi: i32| (lo as u16 as u32) | ((hi as u16 as u32) << 16);
        for (g, words) in cols[p..]
            .as_chunks_mut::<GROUP_WORDS>()
            .0
            .iter_mut()
            .take(3)
            .enumerate()
        {
            words[0] = pack(v[4 * g], v[4 * g + 2]);
            words[PIXELS] = pack(v[4 * g + 1], v[4 * g + 3]);
        }
    }
}

/// One pixel's column in a chunk: `cols` starts at the pixel's word of
/// the chunk's first group, so patch value `k` (`ka <= k`) lives in word
/// `(k - ka) / 4 * GROUP_WORDS + (k & 1) * PIXELS`, halfword `(k >> 1) & 1`.
/// The columns' slack makes every group from there a whole
/// `[u32; GROUP_WORDS]`.
struct Column<'c> {
    cols: &'c mut [u32],
    ka: usize,
    /// The input zero point in both halfwords.
    zz: u32,
}

impl Column<'_> {
    /// Stores `v` as patch value `k`.
    #[inline(always)]
    fn set(&mut self, k: usize, v: i32) {
        let at = (k - self.ka) / 4 * GROUP_WORDS + (k & 1) * PIXELS;
        if let Some(w) = self.cols.get_mut(at) {
            let shift = 16 * ((k >> 1) & 1);
            *w = (*w & !(0xffff << shift)) | ((v as u16 as u32) << shift);
        }
    }

    /// The groups from the one holding patch value `k` on, each seen from
    /// this pixel's word (`[0]`: values `k, k + 2`; `[PIXELS]`: `k + 1, k + 3`).
    #[inline(always)]
    fn groups(&mut self, k: usize) -> &mut [[u32; GROUP_WORDS]] {
        let at = (k - self.ka) / 4 * GROUP_WORDS;
        self.cols
            .get_mut(at..)
            .unwrap_or_default()
            .as_chunks_mut()
            .0
    }

    /// Patch values `lo..hi` are padding.
    fn zeros(&mut self, lo: usize, hi: usize) {
        let head = ((4 - lo % 4) % 4).min(hi - lo);
        let (mut k, quads) = (lo + head, (hi - lo - head) / 4);
        for k in lo..k {
            self.set(k, 0);
        }
        for g in self.groups(k).iter_mut().take(quads) {
            g[0] = 0;
            g[PIXELS] = 0;
        }
        k += 4 * quads;
        for k in k..hi {
            self.set(k, 0);
        }
    }

    /// Patch values `lo..lo + src.len()` are `src - zp`: single values up
    /// to a group boundary, then 4 at a time (one unaligned word load, two
    /// `sxtb16`, two `ssub16`, two stores).
    fn copy(&mut self, lo: usize, src: &[i8]) {
        let head = ((4 - lo % 4) % 4).min(src.len());
        let (head, body) = src.split_at(head);
        let zp = (self.zz & 0xffff) as u16 as i16 as i32;
        let mut k = lo;
        for &q in head {
            self.set(k, q as i32 - zp);
            k += 1;
        }
        let (quads, tail) = body.as_chunks::<4>();
        let zz = self.zz;
        for (q, g) in quads.iter().zip(self.groups(k)) {
            let v = u32::from_le_bytes(q.map(|b| b as u8));
            g[0] = ssub16(sxtb16(v), zz);
            g[PIXELS] = ssub16(sxtb16_ror8(v), zz);
        }
        k += 4 * quads.len();
        for &q in tail {
            self.set(k, q as i32 - zp);
            k += 1;
        }
    }
}
