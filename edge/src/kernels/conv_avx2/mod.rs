//! x86-64 AVX2 3x3 convolution as a small GEMM, for host runs of the
//! engine (evaluation, verification, the onnxruntime comparison). The
//! microcontroller never compiles this module.
//!
//! Layout per layer, all on the stack (the arena stays as the blob header
//! states it, which is what the device needs):
//! - the input, centred (`q - zp`) and widened to `i16` once, in HWC with a
//!   one-pixel ring of zeros, so every output pixel reads its three kernel
//!   rows as three contiguous runs of `3 * cin` values and no tap needs a
//!   border check (padding is the zero point, i.e. 0 after centring). The
//!   first layer (`cin = 1`) stores at each position the pair (pixel, right
//!   neighbour) instead, so a kernel row is two pairs, at columns `x` and
//!   `x + 2`, the second with a zero weight on its upper half;
//! - per block of [`OC_BLOCK`] output channels, the weights widened and
//!   transposed so each pair of inputs `(k, k + 1)` has one vector of 16
//!   `i16` per 8 channels: `(w[c][k], w[c][k + 1])` for `c` in the block.
//!
//! The micro-kernel then keeps [`PIXELS`] pixels x 16 channels of `i32`
//! sums in 12 registers; one step broadcasts a pixel's input pair and
//! `vpmaddwd`s it with the two weight vectors, so the output comes out in
//! HWC order with no horizontal sums, and requantization runs on 8
//! channels at once with per-channel constants loaded once per block.
//!
//! Exactness is the argument of [`super::simd`]: `|x - zp| <= 255`,
//! `|w| <= 128`, a `vpmaddwd` pair sum never overflows and a whole dot
//! product of `9 * cin` products stays far below `2^31`, so the lane sums
//! equal the i32 reference in any order; padding contributes exact zeros.
//!
//! Stride-1 layers with whole 2 x 2 output tiles and `cin` a multiple of 16
//! (three quarters of seaclr-s's MACs) go on from the widened input and the
//! packed weights to [`winograd`], which needs 2.25x fewer multiplies and
//! is exact too.
//!
//! AVX2 is detected at run time (`cpuid`, cached), so the default x86-64
//! build, CI's tests included, runs this path on any AVX2 machine. Layers it
//! does not cover (an odd `cin` above 1, `cout` not a multiple of 16, inputs
//! larger than the stack buffers) go to the blocked kernel.
//!
//! The stack buffers (about 100 KiB here, 130 KiB more in [`winograd`]) are
//! not zeroed: every element is written before it is read (the `unsafe` at
//! the end of [`widen`], [`pack_weights`] and the Winograd transforms says
//! why), which spares a memset of each per layer.
#![allow(unsafe_code)]

use super::simd::{OutQuant, Requant8};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};
use seaclr_shared::blob::{Conv3x3, Shape};

mod winograd;

/// Output channels per block: two vectors of 8 `i32` lanes.
pub(super) const OC_BLOCK: usize = 16;
/// Output pixels per micro-kernel pass: 12 accumulator registers, plus two
/// weight vectors and a broadcast input pair, fills the 16 AVX2 registers.
const PIXELS: usize = 6;
/// Widened padded input, in `i16` pairs: 64 KiB, e.g. 32 x 32 x 16 (34 x 34
/// with the ring, 18.5 K pairs) fits three times over.
const WIDE_PAIRS: usize = 16 * 1024;
/// Input pairs of one output value (`9 * cin / 2`) the packed-weight buffer
/// holds: `cin <= 128`, 36 KiB.
const MAX_PATCH_PAIRS: usize = 9 * 128 / 2;

/// One input pair's weights for a block: 8 channels per vector.
type PackedPair = [[i32; 8]; 2];

/// Whether this CPU runs AVX2 (and the OS saves its registers).
pub(super) fn available() -> bool {
    features().avx2
}

/// The x86-64 features the host kernels use.
#[derive(Clone, Copy)]
pub(super) struct Features {
    /// AVX2, with YMM state saved by the OS: this module.
    pub avx2: bool,
    /// AVX-512 F, BW, VL and VNNI, with ZMM and mask state saved by the OS:
    /// `super::conv_vnni` on 512-bit vectors.
    pub avx512_vnni: bool,
    /// AVX-VNNI (with AVX2): `super::conv_vnni` on 256-bit vectors.
    pub avx_vnni: bool,
}

/// [`Features`] from `cpuid` / `xgetbv`, detected once and cached.
pub(super) fn features() -> Features {
    const KNOWN: u8 = 1;
    const AVX2: u8 = 2;
    const AVX512_VNNI: u8 = 4;
    const AVX_VNNI: u8 = 8;
    static STATE: AtomicU8 = AtomicU8::new(0);
    let mut state = STATE.load(Ordering::Relaxed);
    if state & KNOWN == 0 {
        let f = detect();
        let bit = |yes: bool, bit: u8| if yes { bit } else { 0 };
        state =
            KNOWN | bit(f.avx2, AVX2) | bit(f.avx512_vnni, AVX512_VNNI) | bit(f.avx_vnni, AVX_VNNI);
        STATE.store(state, Ordering::Relaxed);
    }
    Features {
        avx2: state & AVX2 != 0,
        avx512_vnni: state & AVX512_VNNI != 0,
        avx_vnni: state & AVX_VNNI != 0,
    }
}

fn detect() -> Features {
    let none = Features {
        avx2: false,
        avx512_vnni: false,
        avx_vnni: false,
    };
    // SAFETY: `cpuid` exists on every x86-64 CPU.
    #[allow(unused_unsafe)]
    let (max_leaf, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let avx = leaf1.ecx & (1 << 28) != 0;
    if max_leaf < 7 || !osxsave || !avx {
        return none;
    }
    // SAFETY: OSXSAVE (checked above) means `xgetbv` is enabled.
    let xcr0 = unsafe { _xgetbv(0) };
    // SAFETY: leaf 7 exists (max_leaf checked above).
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { __cpuid_count(7, 0) };
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    // XMM and YMM state saved by the OS, and the AVX2 bit.
    let avx2 = xcr0 & 0b110 == 0b110 && bit(leaf7.ebx, 5);
    // Also opmask, ZMM0-15 upper halves and ZMM16-31 saved; AVX512F (ebx
    // 16), AVX512BW (30), AVX512VL (31), AVX512_VNNI (ecx 11).
    let avx512_vnni = avx2
        && xcr0 & 0b1110_0000 == 0b1110_0000
        && [16, 30, 31].iter().all(|&n| bit(leaf7.ebx, n))
        && bit(leaf7.ecx, 11);
    // AVX-VNNI: leaf 7 sub-leaf 1, eax bit 4 (sub-leaf 0's eax is the last
    // sub-leaf).
    let avx_vnni = avx2 && leaf7.eax >= 1 && {
        // SAFETY: leaf 7 exists and has sub-leaf 1 (checked just before).
        #[allow(unused_unsafe)]
        let sub1 = unsafe { __cpuid_count(7, 1) };
        bit(sub1.eax, 4)
    };
    Features {
        avx2,
        avx512_vnni,
        avx_vnni,
    }
}

/// Whether [`conv3x3`] covers this layer on this input.
pub(super) fn covers(layer: &Conv3x3<'_>, shape: Shape) -> bool {
    let (cin, cout) = (layer.in_channels as usize, layer.out_channels as usize);
    cin == shape.channels
        && shape.height > 0
        && shape.width > 0
        && (cin == 1 || cin % 2 == 0)
        && cout > 0
        && cout % OC_BLOCK == 0
        && patch_pairs(cin) <= MAX_PATCH_PAIRS
        && (shape.height + 2) * (shape.width + 2) * pixel_pairs(cin) <= WIDE_PAIRS
        && (layer.stride == 1 || layer.stride == 2)
}

/// `i16` pairs stored per input position in the widened input.
fn pixel_pairs(cin: usize) -> usize {
    cin.div_ceil(2)
}

/// Pairs per kernel row: `3 * cin / 2`, or two for `cin = 1`.
fn row_pairs(cin: usize) -> usize {
    if cin == 1 { 2 } else { 3 * cin / 2 }
}

/// Pairs per output value (three kernel rows).
fn patch_pairs(cin: usize) -> usize {
    3 * row_pairs(cin)
}

/// Whether the input, output and weight slices are as long as the shapes
/// say (the x86 kernels index them without further checks).
pub(super) fn slices_fit(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &[i8],
) -> bool {
    input.len() >= shape.len()
        && output.len() >= out_shape.len()
        && layer.weights.0.len() >= layer.out_channels as usize * 9 * shape.channels
}

/// Runs the layer if AVX2 is present, [`covers`] holds and the slices fit
/// the shapes; otherwise leaves `output` untouched and returns `false`.
pub(super) fn conv3x3(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) -> bool {
    if !(slices_fit(layer, input, shape, out_shape, output) && covers(layer, shape) && available())
    {
        return false;
    }
    // SAFETY: AVX2 support was detected at run time just above.
    unsafe { conv3x3_avx2(layer, input, shape, out_shape, output) };
    true
}

#[target_feature(enable = "avx2")]
fn conv3x3_avx2(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) {
    let (cin, cout) = (shape.channels, layer.out_channels as usize);
    let stride = layer.stride as usize;
    let per_pixel = pixel_pairs(cin);
    let padded_width = shape.width + 2;
    let mut wide = [const { MaybeUninit::<i32>::uninit() }; WIDE_PAIRS];
    let wide = widen(
        input,
        shape,
        layer.requant.input_zero_point,
        &mut wide[..(shape.height + 2) * padded_width * per_pixel],
    );

    let mut packed = [const { MaybeUninit::<PackedPair>::uninit() }; MAX_PATCH_PAIRS];
    let packed = &mut packed[..patch_pairs(cin)];
    if winograd::covers(layer, shape) {
        winograd::conv3x3(layer, wide, shape, packed, output);
        return;
    }
    let g = Geometry {
        out_width: out_shape.width,
        row_step: stride * padded_width * per_pixel,
        kernel_row: padded_width * per_pixel,
        column_step: stride * per_pixel,
        row_steps: row_pairs(cin),
    };
    let pixels = out_shape.height * out_shape.width;
    let output = &mut output[..pixels * cout];
    for c0 in (0..cout).step_by(OC_BLOCK) {
        let packed = pack_weights(layer.weights.0, cin, c0, packed);
        let rq = BlockQuant::new(layer, c0);
        if cin == 1 {
            blocks::<2>(wide, &g, pixels, packed, &rq, output, cout, c0);
        } else {
            blocks::<1>(wide, &g, pixels, packed, &rq, output, cout, c0);
        }
    }
}

/// All output pixels (in row-major order, blocks may span rows) of one
/// channel block, [`PIXELS`] at a time, then 4, then one by one. `STEP`
/// is the distance between a kernel row's pairs in `wide`: 1 in HWC, 2 for
/// the first layer's (pixel, neighbour) pairs.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn blocks<const STEP: usize>(
    wide: &[i32],
    g: &Geometry,
    pixels: usize,
    packed: &[PackedPair],
    rq: &BlockQuant,
    output: &mut [i8],
    cout: usize,
    c0: usize,
) {
    let mut starts = g.starts();
    let mut q = 0;
    while q + PIXELS <= pixels {
        block::<PIXELS, STEP>(wide, g, q, starts.take(), packed, rq, output, cout, c0);
        q += PIXELS;
    }
    // Square outputs of even side leave 4 (32 x 32 = 170 x 6 + 4, and so
    // do 16 x 16, 8 x 8 and 4 x 4).
    while q + 4 <= pixels {
        block::<4, STEP>(wide, g, q, starts.take(), packed, rq, output, cout, c0);
        q += 4;
    }
    while q < pixels {
        block::<1, STEP>(wide, g, q, starts.take(), packed, rq, output, cout, c0);
        q += 1;
    }
}

/// Where output pixels' kernel rows start in the padded input, in the
/// buffer's units (`i16` pairs here, bytes in `super::conv_vnni`).
pub(super) struct Geometry {
    /// Output columns per row.
    pub out_width: usize,
    /// From one output row to the next (`stride` padded input rows).
    pub row_step: usize,
    /// From one kernel row to the next (one padded input row).
    pub kernel_row: usize,
    /// From one output column to the next (`stride` input pixels).
    pub column_step: usize,
    /// Micro-kernel steps in one kernel row's run: input pairs here (`3 *
    /// cin / 2`, or 2 for `cin = 1`), groups of 4 bytes in `conv_vnni`.
    pub row_steps: usize,
}

impl Geometry {
    /// Start of kernel row 0 of each output pixel in row-major order.
    pub(super) fn starts(&self) -> Starts<'_> {
        Starts {
            g: self,
            row: 0,
            column: 0,
        }
    }
}

/// Walks the output pixels in row-major order, yielding where each one's
/// top-left tap sits in the widened input: input (`oy * stride - 1`,
/// `ox * stride - 1`), i.e. padded (`oy * stride`, `ox * stride`).
pub(super) struct Starts<'g> {
    g: &'g Geometry,
    row: usize,
    column: usize,
}

impl Starts<'_> {
    #[inline(always)]
    fn next_start(&mut self) -> usize {
        let start = self.row * self.g.row_step + self.column * self.g.column_step;
        self.column += 1;
        if self.column == self.g.out_width {
            self.column = 0;
            self.row += 1;
        }
        start
    }

    /// The next `P` starts.
    #[inline(always)]
    pub(super) fn take<const P: usize>(&mut self) -> [usize; P] {
        let mut starts = [0; P];
        for s in &mut starts {
            *s = self.next_start();
        }
        starts
    }
}

/// `P` output pixels from pixel `q0` (row-major; `start` from
/// [`Geometry::starts`]) times the 16 channels from `c0`: sums over the
/// three kernel rows, requantized into `output` (HWC).
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn block<const P: usize, const STEP: usize>(
    wide: &[i32],
    g: &Geometry,
    q0: usize,
    start: [usize; P],
    packed: &[PackedPair],
    rq: &BlockQuant,
    output: &mut [i8],
    cout: usize,
    c0: usize,
) {
    let n = g.row_steps;
    // Pairs one pixel reads: three kernel rows, the last one `n` pairs
    // `STEP` apart.
    let reach = 2 * g.kernel_row + (n - 1) * STEP + 1;
    let Some(weights) = packed.get(..3 * n) else {
        return;
    };
    // Plain loops, not `array::map`: its closure would not inherit AVX2
    // and stays an out-of-line call.
    let mut xs: [&[i32]; P] = [&[]; P];
    for (x, &s) in xs.iter_mut().zip(&start) {
        match wide.get(s..s + reach) {
            Some(run) => *x = run,
            None => return, // the geometry keeps every pixel's taps in `wide`
        }
    }
    let mut acc = [[_mm256_setzero_si256(); 2]; P];
    for (ky, weights) in weights.chunks_exact(n).enumerate() {
        let row = ky * g.kernel_row;
        for (j, w) in weights.iter().enumerate() {
            let mut x = [0; P];
            for (x, run) in x.iter_mut().zip(&xs) {
                // SAFETY: `ky <= 2` and `j < n`, so `row + j * STEP <= 2 *
                // kernel_row + (n - 1) * STEP < reach`, the length of every
                // run. (LLVM keeps the bounds check otherwise, a sixth of
                // the loop.)
                *x = unsafe { *run.get_unchecked(row + j * STEP) };
            }
            madd_step(&mut acc, x, w);
        }
    }
    for (p, acc) in acc.iter().enumerate() {
        let at = (q0 + p) * cout + c0;
        let q = rq.apply(acc);
        if let Some(out) = output.get_mut(at..at + OC_BLOCK) {
            out.copy_from_slice(&bytemuck::cast::<__m128i, [i8; 16]>(q));
        }
    }
}

/// One step of the micro-kernel (also [`winograd`]'s): each pixel's input
/// pair `x[p]`, broadcast, times the pair's two 8-channel weight vectors,
/// added to that pixel's 16 sums.
#[inline]
#[target_feature(enable = "avx2")]
fn madd_step<const P: usize>(acc: &mut [[__m256i; 2]; P], x: [i32; P], w: &PackedPair) {
    let wa: __m256i = bytemuck::cast(w[0]);
    let wb: __m256i = bytemuck::cast(w[1]);
    for (acc, &x) in acc.iter_mut().zip(&x) {
        let x = _mm256_set1_epi32(x);
        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(x, wa));
        acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(x, wb));
    }
}

/// Writes every element of `wide` (`(h + 2) x (w + 2)` positions of
/// [`pixel_pairs`]): the input centred on `zp` as `i16` pairs, HWC, inside a
/// ring of zeros one pixel wide; for `cin = 1` each position holds (pixel,
/// right neighbour). Returns it initialized.
#[inline]
#[target_feature(enable = "avx2")]
fn widen<'w>(input: &[i8], shape: Shape, zp: i8, wide: &'w mut [MaybeUninit<i32>]) -> &'w [i32] {
    let (height, width, cin) = (shape.height, shape.width, shape.channels);
    let per_pixel = pixel_pairs(cin);
    let padded_row = (width + 2) * per_pixel;
    let centred = |v: i8| v as i16 - zp as i16;
    let zpv = _mm256_set1_epi16(zp as i16);
    for (r, dst) in wide.chunks_exact_mut(padded_row).enumerate() {
        let src = match r.checked_sub(1) {
            Some(y) if y < height => &input[y * width * cin..(y + 1) * width * cin],
            _ => {
                dst.iter_mut().for_each(|d| _ = d.write(0)); // top or bottom ring
                continue;
            }
        };
        let (left, rest) = dst.split_at_mut(per_pixel);
        let (interior, right) = rest.split_at_mut(width * per_pixel);
        left.iter_mut().chain(right).for_each(|d| _ = d.write(0));
        if cin == 1 {
            // Position x holds padded pixels (x, x + 1): the left ring pairs
            // with the first pixel, the last pixel with the right ring.
            let first = src.first().map_or(0, |&v| centred(v));
            left.iter_mut().for_each(|d| _ = d.write(pair(0, first)));
            if let Some((end, body)) = interior.split_last_mut() {
                end.write(pair(src.last().map_or(0, |&v| centred(v)), 0));
                for (d, w) in body.iter_mut().zip(src.windows(2)) {
                    d.write(pair(centred(w[0]), centred(w[1])));
                }
            }
            continue;
        }
        let (src_chunks, src_tail) = src.as_chunks::<16>();
        let (dst_chunks, dst_tail) = interior.as_chunks_mut::<8>();
        for (d, s) in dst_chunks.iter_mut().zip(src_chunks) {
            let v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(bytemuck::cast(*s)), zpv);
            *d = bytemuck::cast::<__m256i, [i32; 8]>(v).map(MaybeUninit::new);
        }
        for (d, s) in dst_tail.iter_mut().zip(src_tail.as_chunks::<2>().0) {
            d.write(pair(centred(s[0]), centred(s[1])));
        }
    }
    // SAFETY: `wide` is whole rows of `padded_row` (the caller sizes it so);
    // each row was written above: ring rows whole, interior rows as left
    // ring + `width * per_pixel` interior + right ring, where the interior
    // gets `width * cin / 16` vectors of 8 plus `(width * cin % 16) / 2`
    // single pairs (`cin` even), i.e. all `width * cin / 2`, or one pair per
    // pixel for `cin = 1`. `MaybeUninit<i32>` has `i32`'s layout.
    unsafe { &*(wide as *const [MaybeUninit<i32>] as *const [i32]) }
}

/// Two `i16` in one `i32` lane, `lo` first in memory (what `vpmaddwd`
/// multiplies with the matching halves of the other operand).
#[inline(always)]
fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | ((hi as u16 as u32) << 16)) as i32
}

/// Widens and transposes the weight rows of channels `c0..c0 + 16` (each
/// `9 * cin` values, `[ky][kx][in]`) into `packed[j] = [(w[c][2j], w[c][2j +
/// 1]) for c in each 8-channel group]`, 8 pairs of 8 rows at a time through
/// an 8 x 8 transpose of 32-bit lanes, the rest one pair at a time. For
/// `cin = 1` a kernel row `(a, b, c)` is the pairs `(a, b)` and `(c, 0)`.
/// Writes all [`patch_pairs`] entries and returns them initialized.
#[inline]
#[target_feature(enable = "avx2")]
fn pack_weights<'p>(
    weights: &[u8],
    cin: usize,
    c0: usize,
    packed: &'p mut [MaybeUninit<PackedPair>],
) -> &'p [PackedPair] {
    let k = 9 * cin;
    let Some(block) = weights.get(c0 * k..(c0 + OC_BLOCK) * k) else {
        return &[];
    };
    // Plain loops rather than closures, which would not inherit AVX2 and
    // stay out-of-line calls around every intrinsic.
    // Even `cin`: 8 pairs of 8 rows per transpose, per 8-channel group.
    let full = if cin == 1 { 0 } else { k / 16 };
    let mut chunks: [&[[u8; 16]]; OC_BLOCK] = [&[]; OC_BLOCK];
    for (o, c) in chunks.iter_mut().enumerate() {
        *c = &block[o * k..(o + 1) * k].as_chunks::<16>().0[..full];
    }
    let mut columns = [[_mm256_setzero_si256(); 8]; 2];
    for t in 0..full {
        for (g, columns) in columns.iter_mut().enumerate() {
            let mut r = [_mm256_setzero_si256(); 8];
            for (o, r) in r.iter_mut().enumerate() {
                // SAFETY: every `chunks[..]` holds `full` chunks and `t < full`.
                let chunk = unsafe { *chunks[8 * g + o].get_unchecked(t) };
                *r = _mm256_cvtepi8_epi16(bytemuck::cast(chunk));
            }
            *columns = transpose8x8(r);
        }
        for (j, pp) in packed[8 * t..8 * t + 8].iter_mut().enumerate() {
            pp.write([bytemuck::cast(columns[0][j]), bytemuck::cast(columns[1][j])]);
        }
    }
    for (j, pp) in packed.iter_mut().enumerate().skip(8 * full) {
        let mut lanes = [[0i32; 8]; 2];
        for (o, lane) in lanes.iter_mut().flatten().enumerate() {
            let row = &block[o * k..(o + 1) * k];
            let w = |i: usize| row[i] as i8 as i16;
            *lane = match (cin, j % 2) {
                (1, 0) => pair(w(3 * (j / 2)), w(3 * (j / 2) + 1)),
                (1, _) => pair(w(3 * (j / 2) + 2), 0),
                _ => pair(w(2 * j), w(2 * j + 1)),
            };
        }
        pp.write(lanes);
    }
    // SAFETY: entries `0..8 * full` were written by the transposes, all the
    // others by the scalar loop; `MaybeUninit<T>` has `T`'s layout.
    unsafe { &*(packed as *const [MaybeUninit<PackedPair>] as *const [PackedPair]) }
}

/// 8 x 8 transpose of 32-bit lanes: `out[j][o] = r[o][j]`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn transpose8x8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t = [
        _mm256_unpacklo_epi32(r[0], r[1]),
        _mm256_unpackhi_epi32(r[0], r[1]),
        _mm256_unpacklo_epi32(r[2], r[3]),
        _mm256_unpackhi_epi32(r[2], r[3]),
        _mm256_unpacklo_epi32(r[4], r[5]),
        _mm256_unpackhi_epi32(r[4], r[5]),
        _mm256_unpacklo_epi32(r[6], r[7]),
        _mm256_unpackhi_epi32(r[6], r[7]),
    ];
    // t[0] = (r0, r1) lanes 0, 1 | 4, 5; t[1] = lanes 2, 3 | 6, 7; ...
    let u = [
        _mm256_unpacklo_epi64(t[0], t[2]), // rows 0-3, lane 0 | 4
        _mm256_unpackhi_epi64(t[0], t[2]), // lane 1 | 5
        _mm256_unpacklo_epi64(t[1], t[3]), // lane 2 | 6
        _mm256_unpackhi_epi64(t[1], t[3]), // lane 3 | 7
        _mm256_unpacklo_epi64(t[4], t[6]), // rows 4-7
        _mm256_unpackhi_epi64(t[4], t[6]),
        _mm256_unpacklo_epi64(t[5], t[7]),
        _mm256_unpackhi_epi64(t[5], t[7]),
    ];
    [
        _mm256_permute2x128_si256::<0x20>(u[0], u[4]),
        _mm256_permute2x128_si256::<0x20>(u[1], u[5]),
        _mm256_permute2x128_si256::<0x20>(u[2], u[6]),
        _mm256_permute2x128_si256::<0x20>(u[3], u[7]),
        _mm256_permute2x128_si256::<0x31>(u[0], u[4]),
        _mm256_permute2x128_si256::<0x31>(u[1], u[5]),
        _mm256_permute2x128_si256::<0x31>(u[2], u[6]),
        _mm256_permute2x128_si256::<0x31>(u[3], u[7]),
    ]
}

/// Bias and requantization constants of one 16-channel block, one
/// [`Requant8`] per group of 8 channels.
pub(super) struct BlockQuant([Requant8; 2]);

impl BlockQuant {
    /// The constants of the layer's channels `c0..c0 + 16`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(layer: &Conv3x3<'_>, c0: usize) -> BlockQuant {
        let rq = &layer.requant;
        let q = OutQuant::of(rq);
        let lanes = |g: usize, f: &dyn Fn(usize) -> i32| -> [i32; 8] {
            core::array::from_fn(|j| f(c0 + 8 * g + j))
        };
        let bias = |c: usize| layer.bias.get(c).unwrap_or(0);
        let multiplier = |c: usize| rq.multipliers.get(c).unwrap_or(0);
        let shift = |c: usize| rq.shifts.get(c).unwrap_or(0) as i32;
        BlockQuant([
            Requant8::new(lanes(0, &bias), lanes(0, &multiplier), lanes(0, &shift), q),
            Requant8::new(lanes(1, &bias), lanes(1, &multiplier), lanes(1, &shift), q),
        ])
    }

    /// The constants of 16 channels from their bias, multiplier and shift
    /// (`super::conv_vnni` folds an offset into the bias).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn from_lanes(
        bias: [i32; OC_BLOCK],
        multiplier: [i32; OC_BLOCK],
        shift: [i32; OC_BLOCK],
        q: OutQuant,
    ) -> BlockQuant {
        let half =
            |v: [i32; OC_BLOCK], h: usize| -> [i32; 8] { core::array::from_fn(|j| v[8 * h + j]) };
        BlockQuant([
            Requant8::new(half(bias, 0), half(multiplier, 0), half(shift, 0), q),
            Requant8::new(half(bias, 1), half(multiplier, 1), half(shift, 1), q),
        ])
    }

    /// 16 accumulators (two groups of 8 channels) to 16 int8 outputs in
    /// channel order: `kernels::requantize` of `bias + acc` per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn apply(&self, acc: &[__m256i; 2]) -> __m128i {
        let q = [self.0[0].apply(acc[0]), self.0[1].apply(acc[1])];
        // packs_epi32 interleaves 128-bit halves: [a0-3 b0-3 | a4-7 b4-7].
        let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[0], q[1]));
        // Values are already clamped to i8, so the saturating packs are exact.
        let bytes = _mm256_packs_epi16(words, words); // [a0-7 a0-7 | b0-7 b0-7]
        _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b11_01_10_00>(bytes))
    }
}
