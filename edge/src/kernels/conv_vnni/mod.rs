//! x86-64 3x3 convolution on `vpdpbusd`, for host runs of the engine on
//! CPUs with VNNI: AVX-512 VNNI (Intel Xeon since Cascade Lake, AMD since
//! Zen 4) or AVX-VNNI (Intel Core since Alder Lake). The instruction
//! multiplies 4 unsigned bytes by 4 signed bytes and adds the four products
//! to each `i32` lane: 64 multiply-adds per 512-bit instruction, 32 per
//! 256-bit one, against `vpmaddwd`'s 16 in `conv_avx2`. Where it runs it
//! takes every layer it covers, the stride-1 ones too (direct, it needs
//! fewer multiply instructions than `conv_avx2`'s Winograd path). The
//! microcontroller never compiles this module.
//!
//! **The unsigned operand.** Activations are `i8` with a zero point `zp`.
//! With `a = q + 128` as a byte (`q ^ 0x80`),
//!
//! ```text
//! sum (q - zp) * w  =  sum a * w  -  (zp + 128) * sum w
//! ```
//!
//! and padding taps hold `a = zp + 128` (real 0.0, as everywhere), which the
//! same identity makes contribute nothing. The second term depends only on
//! the output channel, so it is folded into the bias once per layer; the
//! weight sums come from the packed weights.
//!
//! **Exactness.** A product is at most `255 * 128 = 32_640` in magnitude,
//! four of them `130_560`, so `vpdpbusd`'s intermediate sum never
//! overflows, and the non-saturating form adds it to the lane modulo 2^32.
//! Everything after that (lane sums, `(zp + 128) * sum w`, the bias) is
//! wrapping `i32` arithmetic, equal to `bias + sum (q - zp) * w` modulo
//! 2^32 for any number of input channels; the reference reduces that sum to
//! `i32` the same way (`as i32`), so the results are bit for bit the same
//! with no bound on `cin`.
//!
//! Layout per layer, on the stack (the arena stays as the blob header
//! states it):
//! - the input as bytes `q ^ 0x80`, HWC, in a one-pixel ring of `zp ^ 0x80`,
//!   so each output pixel reads its three kernel rows as three runs of
//!   `3 * cin` bytes, `3 * cin / 4` groups of 4, with no border checks. The
//!   first layer (`cin = 1`) reads each kernel row as one group, the 4 bytes
//!   from its first tap, the fourth with a zero weight;
//! - per 16 output channels, the weights transposed so that group `j` (the
//!   4 weights `4j..4j + 4` of each channel) is 64 bytes, one 512-bit
//!   vector or two 256-bit ones.
//!
//! One micro-kernel ([`block`]) serves both flavours through [`Dpbusd`]: it
//! keeps `P` pixels x 16 `V` channels of sums in registers (24 of the 32
//! with AVX-512, 12 of the 16 with AVX-VNNI); a step broadcasts a pixel's 4
//! input bytes and `vpdpbusd`s them with the weights, so the sums come out
//! per channel in HWC order and are requantized 16 channels at a time
//! (`simd::Requant16` with AVX-512; two `simd::Requant8`, as in
//! `conv_avx2`, with AVX-VNNI).
#![allow(unsafe_code)]

use super::conv_avx2::{self, BlockQuant, Geometry, OC_BLOCK};
use super::simd::{OutQuant, Requant16};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use seaclr_shared::blob::{Conv3x3, Shape};

#[cfg(test)]
mod tests;

/// Padded input bytes (64 KiB: e.g. 32 x 32 x 16 with its ring is 18.1
/// KiB, 64 x 64 x 1 4.3 KiB).
const INPUT_BYTES: usize = 64 * 1024;
/// Bytes after the padded input that a first-layer kernel row may read (its
/// group is 4 bytes for 3 taps); they hold the padding value.
const SLACK: usize = 4;
/// Most input channels this path takes (the packed-weight buffers: 18 KiB
/// per 16 channels).
const MAX_CHANNELS: usize = 128;
/// Groups of 4 weights per output channel the packed buffers hold.
const MAX_GROUPS: usize = 9 * MAX_CHANNELS / 4;

/// One group of 4 weights for 16 output channels: 64 bytes.
type Group = [i32; OC_BLOCK];
/// A placeholder group (never multiplied).
const NO_GROUP: Group = [0; OC_BLOCK];

/// The `vpdpbusd` flavours this kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flavour {
    /// AVX-512 VNNI, with AVX-512 F, BW and VL: 512-bit vectors, 32
    /// registers.
    Avx512,
    /// AVX-VNNI: the same instruction on 256-bit vectors, 16 registers.
    AvxVnni,
}

impl Flavour {
    /// The widest flavour this CPU runs, if any (`cpuid` / `xgetbv`,
    /// detected once).
    pub(super) fn detected() -> Option<Flavour> {
        [Flavour::Avx512, Flavour::AvxVnni]
            .into_iter()
            .find(|f| f.available())
    }

    /// Whether this CPU runs this flavour (and the OS saves its registers).
    pub(super) fn available(self) -> bool {
        let f = conv_avx2::features();
        match self {
            Flavour::Avx512 => f.avx512_vnni,
            Flavour::AvxVnni => f.avx_vnni,
        }
    }
}

/// Whether [`conv3x3`] covers this layer on this input.
pub(super) fn covers(layer: &Conv3x3<'_>, shape: Shape) -> bool {
    let (cin, cout) = (layer.in_channels as usize, layer.out_channels as usize);
    cin == shape.channels
        && shape.height > 0
        && shape.width > 0
        && (cin == 1 || cin.is_multiple_of(4))
        && cin <= MAX_CHANNELS
        && cout > 0
        && cout.is_multiple_of(OC_BLOCK)
        && padded_len(shape) <= INPUT_BYTES
        && (layer.stride == 1 || layer.stride == 2)
}

/// Bytes of the padded input, ring and slack included.
fn padded_len(shape: Shape) -> usize {
    (shape.height + 2) * (shape.width + 2) * shape.channels + SLACK
}

/// Groups of 4 bytes in one kernel row's run: `3 * cin / 4`, or one (three
/// taps and a zero weight) for `cin = 1`.
fn row_groups(cin: usize) -> usize {
    if cin == 1 { 1 } else { 3 * cin / 4 }
}

/// Runs the layer on the widest flavour this CPU has if [`covers`] holds
/// and the slices fit the shapes; otherwise leaves `output` untouched and
/// returns `false`.
pub(super) fn conv3x3(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) -> bool {
    Flavour::detected()
        .is_some_and(|flavour| conv3x3_as(flavour, layer, input, shape, out_shape, output))
}

/// [`conv3x3`] on one flavour; `false` (nothing written) also where this
/// CPU does not run it.
pub(super) fn conv3x3_as(
    flavour: Flavour,
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) -> bool {
    let fits = conv_avx2::slices_fit(layer, input, shape, out_shape, output);
    if !(fits && covers(layer, shape) && flavour.available()) {
        return false;
    }
    match flavour {
        // SAFETY: AVX-512 F, BW, VL and VNNI were detected at run time
        // (`available` above).
        Flavour::Avx512 => unsafe { conv3x3_avx512(layer, input, shape, out_shape, output) },
        // SAFETY: AVX2 and AVX-VNNI were detected at run time (`available`
        // above).
        Flavour::AvxVnni => unsafe { conv3x3_avx_vnni(layer, input, shape, out_shape, output) },
    }
    true
}

/// The AVX-512 layer: channel blocks of 32 (12 pixels per pass), a last
/// one of 16 (24 pixels per pass).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn conv3x3_avx512(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) {
    let mut buffer = [const { MaybeUninit::<u8>::uninit() }; INPUT_BYTES];
    let (wide, g) = prepare(layer, input, shape, out_shape, &mut buffer);
    let (cin, cout) = (shape.channels, layer.out_channels as usize);
    let pixels = out_shape.height * out_shape.width;
    let output = &mut output[..pixels * cout];
    let q = OutQuant::of(&layer.requant);
    let mut first = [const { MaybeUninit::<Group>::uninit() }; MAX_GROUPS];
    let mut second = [const { MaybeUninit::<Group>::uninit() }; MAX_GROUPS];
    let mut c0 = 0;
    while c0 < cout {
        let a = pack_weights(layer.weights.0, cin, c0, &mut first);
        // SAFETY: this function enables the features `Avx512` needs.
        let la = lanes(layer, c0, unsafe { Avx512::weight_sums(a) });
        if c0 + 2 * OC_BLOCK <= cout {
            let b = pack_weights(layer.weights.0, cin, c0 + OC_BLOCK, &mut second);
            // SAFETY: as above.
            let lb = lanes(layer, c0 + OC_BLOCK, unsafe { Avx512::weight_sums(b) });
            let rq = [
                Requant16::new(la.bias, la.multiplier, la.shift, q),
                Requant16::new(lb.bias, lb.multiplier, lb.shift, q),
            ];
            // SAFETY: this function enables the AVX-512 features `Avx512`
            // needs.
            unsafe { blocks::<12, 2, Avx512>(wide, &g, pixels, [a, b], &rq, output, cout, c0) };
            c0 += 2 * OC_BLOCK;
        } else {
            let rq = [Requant16::new(la.bias, la.multiplier, la.shift, q)];
            // SAFETY: as above.
            unsafe { blocks::<24, 1, Avx512>(wide, &g, pixels, [a], &rq, output, cout, c0) };
            c0 += OC_BLOCK;
        }
    }
}

/// The AVX-VNNI layer: channel blocks of 16, 6 pixels per pass (12 of the
/// 16 registers hold sums, as in `conv_avx2`).
#[target_feature(enable = "avx2,avxvnni")]
fn conv3x3_avx_vnni(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    output: &mut [i8],
) {
    let mut buffer = [const { MaybeUninit::<u8>::uninit() }; INPUT_BYTES];
    let (wide, g) = prepare(layer, input, shape, out_shape, &mut buffer);
    let (cin, cout) = (shape.channels, layer.out_channels as usize);
    let pixels = out_shape.height * out_shape.width;
    let output = &mut output[..pixels * cout];
    let q = OutQuant::of(&layer.requant);
    let mut packed = [const { MaybeUninit::<Group>::uninit() }; MAX_GROUPS];
    for c0 in (0..cout).step_by(OC_BLOCK) {
        let a = pack_weights(layer.weights.0, cin, c0, &mut packed);
        // SAFETY: this function enables the features `AvxVnni` needs.
        let l = lanes(layer, c0, unsafe { AvxVnni::weight_sums(a) });
        let rq = BlockQuant::from_lanes(l.bias, l.multiplier, l.shift, q);
        // SAFETY: this function enables the AVX2 and AVX-VNNI features
        // `AvxVnni` needs.
        unsafe { blocks::<6, 1, AvxVnni>(wide, &g, pixels, [a], &[rq], output, cout, c0) };
    }
}

/// The layer's input as the micro-kernel reads it ([`offset_input`] into
/// `buffer`) and where each output pixel's kernel rows start in it.
#[inline]
#[target_feature(enable = "avx2")]
fn prepare<'w>(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    out_shape: Shape,
    buffer: &'w mut [MaybeUninit<u8>; INPUT_BYTES],
) -> (&'w [u8], Geometry) {
    let cin = shape.channels;
    let stride = layer.stride as usize;
    let padded_width = shape.width + 2;
    let wide = offset_input(
        input,
        shape,
        layer.requant.input_zero_point,
        &mut buffer[..padded_len(shape)],
    );
    let g = Geometry {
        out_width: out_shape.width,
        row_step: stride * padded_width * cin,
        kernel_row: padded_width * cin,
        column_step: stride * cin,
        row_steps: row_groups(cin),
    };
    (wide, g)
}

/// One `vpdpbusd` flavour's vectors for the shared micro-kernel [`block`].
///
/// # Safety
///
/// Every method needs the flavour's CPU features; only the entry points
/// that enable them call [`blocks`] with it.
trait Dpbusd {
    /// The sums of 16 channels of one pixel.
    type Sums: Copy;
    /// Requantization constants of 16 channels.
    type Quant;

    /// All-zero sums.
    unsafe fn zero() -> Self::Sums;
    /// One step of the micro-kernel: for each pixel `p`, the 4 unsigned
    /// bytes of `x[p]` times each channel's 4 signed weights in `groups[v]`,
    /// added to that channel's sum in `sums[p][v]`.
    unsafe fn step<const P: usize, const V: usize>(
        sums: &mut [[Self::Sums; V]; P],
        x: [i32; P],
        groups: &[&Group; V],
    );
    /// Each channel's weight sum over `packed` (each group's 4 bytes times
    /// bytes of 1, in four independent sums so the adds overlap).
    unsafe fn weight_sums(packed: &[Group]) -> [i32; OC_BLOCK];
    /// `kernels::requantize` of 16 channels' sums, as int8 in channel order.
    unsafe fn requantize(sums: &Self::Sums, quant: &Self::Quant) -> __m128i;
}

/// [`Dpbusd`] on AVX-512 VNNI: 16 channels per 512-bit vector.
struct Avx512;

impl Dpbusd for Avx512 {
    type Sums = __m512i;
    type Quant = Requant16;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: the caller runs with AVX-512 F (this trait's contract).
        unsafe { _mm512_setzero_si512() }
    }

    #[inline(always)]
    unsafe fn step<const P: usize, const V: usize>(
        sums: &mut [[__m512i; V]; P],
        x: [i32; P],
        groups: &[&Group; V],
    ) {
        // SAFETY: the caller runs with AVX-512 F and VNNI (this trait's
        // contract).
        unsafe {
            let mut w = [_mm512_setzero_si512(); V];
            for (w, &&group) in w.iter_mut().zip(groups) {
                *w = bytemuck::cast(group);
            }
            for (sums, &x) in sums.iter_mut().zip(&x) {
                let x = _mm512_set1_epi32(x);
                for (sum, w) in sums.iter_mut().zip(&w) {
                    *sum = _mm512_dpbusd_epi32(*sum, x, *w);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn weight_sums(packed: &[Group]) -> [i32; OC_BLOCK] {
        // SAFETY: the caller runs with AVX-512 F and VNNI (this trait's
        // contract).
        unsafe {
            let ones = _mm512_set1_epi8(1);
            let mut sums = [_mm512_setzero_si512(); 4];
            let (quads, rest) = packed.as_chunks::<4>();
            for quad in quads {
                for (sum, &w) in sums.iter_mut().zip(quad) {
                    *sum = _mm512_dpbusd_epi32(*sum, ones, bytemuck::cast(w));
                }
            }
            for (sum, &w) in sums.iter_mut().zip(rest) {
                *sum = _mm512_dpbusd_epi32(*sum, ones, bytemuck::cast(w));
            }
            let total = _mm512_add_epi32(
                _mm512_add_epi32(sums[0], sums[1]),
                _mm512_add_epi32(sums[2], sums[3]),
            );
            bytemuck::cast(total)
        }
    }

    #[inline(always)]
    unsafe fn requantize(sums: &__m512i, quant: &Requant16) -> __m128i {
        // SAFETY: the caller runs with AVX-512 F (this trait's contract).
        unsafe { quant.apply(*sums) }
    }
}

/// [`Dpbusd`] on AVX-VNNI: 16 channels in two 256-bit vectors.
struct AvxVnni;

impl Dpbusd for AvxVnni {
    type Sums = [__m256i; 2];
    type Quant = BlockQuant;

    #[inline(always)]
    unsafe fn zero() -> [__m256i; 2] {
        // SAFETY: the caller runs with AVX2 (this trait's contract).
        unsafe { [_mm256_setzero_si256(); 2] }
    }

    #[inline(always)]
    unsafe fn step<const P: usize, const V: usize>(
        sums: &mut [[[__m256i; 2]; V]; P],
        x: [i32; P],
        groups: &[&Group; V],
    ) {
        // SAFETY: the caller runs with AVX2 and AVX-VNNI (this trait's
        // contract).
        unsafe {
            let mut w = [[_mm256_setzero_si256(); 2]; V];
            for (w, &&group) in w.iter_mut().zip(groups) {
                *w = bytemuck::cast(group);
            }
            for (sums, &x) in sums.iter_mut().zip(&x) {
                let x = _mm256_set1_epi32(x);
                for (sums, w) in sums.iter_mut().zip(&w) {
                    for (sum, w) in sums.iter_mut().zip(w) {
                        *sum = _mm256_dpbusd_avx_epi32(*sum, x, *w);
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn weight_sums(packed: &[Group]) -> [i32; OC_BLOCK] {
        // SAFETY: the caller runs with AVX2 and AVX-VNNI (this trait's
        // contract).
        unsafe {
            let ones = _mm256_set1_epi8(1);
            let mut sums = [[_mm256_setzero_si256(); 2]; 2];
            let (pairs, rest) = packed.as_chunks::<2>();
            for pair in pairs {
                for (sums, &w) in sums.iter_mut().zip(pair) {
                    let w: [__m256i; 2] = bytemuck::cast(w);
                    for (sum, w) in sums.iter_mut().zip(w) {
                        *sum = _mm256_dpbusd_avx_epi32(*sum, ones, w);
                    }
                }
            }
            for (sums, &w) in sums.iter_mut().zip(rest) {
                let w: [__m256i; 2] = bytemuck::cast(w);
                for (sum, w) in sums.iter_mut().zip(w) {
                    *sum = _mm256_dpbusd_avx_epi32(*sum, ones, w);
                }
            }
            let total = [
                _mm256_add_epi32(sums[0][0], sums[1][0]),
                _mm256_add_epi32(sums[0][1], sums[1][1]),
            ];
            bytemuck::cast(total)
        }
    }

    #[inline(always)]
    unsafe fn requantize(sums: &[__m256i; 2], quant: &BlockQuant) -> __m128i {
        // SAFETY: the caller runs with AVX2 (this trait's contract).
        unsafe { quant.apply(sums) }
    }
}

/// All output pixels (row-major, blocks may span rows) of `16 V` channels
/// from `c0`, `P` at a time, then 4, then one by one.
///
/// # Safety
///
/// The CPU must run `D`'s features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks<const P: usize, const V: usize, D: Dpbusd>(
    wide: &[u8],
    g: &Geometry,
    pixels: usize,
    packed: [&[Group]; V],
    rq: &[D::Quant; V],
    output: &mut [i8],
    cout: usize,
    c0: usize,
) {
    let mut starts = g.starts();
    let mut q = 0;
    while q + P <= pixels {
        // SAFETY: the CPU runs `D`'s features (this function's contract).
        unsafe { block::<P, V, D>(wide, g, q, starts.take(), packed, rq, output, cout, c0) };
        q += P;
    }
    while q + 4 <= pixels {
        // SAFETY: as above.
        unsafe { block::<4, V, D>(wide, g, q, starts.take(), packed, rq, output, cout, c0) };
        q += 4;
    }
    while q < pixels {
        // SAFETY: as above.
        unsafe { block::<1, V, D>(wide, g, q, starts.take(), packed, rq, output, cout, c0) };
        q += 1;
    }
}

/// `P` output pixels from pixel `q0` (`start` from [`Geometry::starts`],
/// in bytes) times the `16 V` channels from `c0`: sums over the three
/// kernel rows, requantized into `output` (HWC).
///
/// # Safety
///
/// The CPU must run `D`'s features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const P: usize, const V: usize, D: Dpbusd>(
    wide: &[u8],
    g: &Geometry,
    q0: usize,
    start: [usize; P],
    packed: [&[Group]; V],
    rq: &[D::Quant; V],
    output: &mut [i8],
    cout: usize,
    c0: usize,
) {
    let n = g.row_steps;
    // Bytes one pixel reads: three kernel rows, the last one `n` groups.
    let reach = 2 * g.kernel_row + 4 * n;
    if packed.iter().any(|w| w.len() < 3 * n) {
        return;
    }
    let mut xs: [&[u8]; P] = [&[]; P];
    for (x, &s) in xs.iter_mut().zip(&start) {
        match wide.get(s..s + reach) {
            Some(run) => *x = run,
            None => return, // the geometry keeps every pixel's taps in `wide`
        }
    }
    // SAFETY: the CPU runs `D`'s features (this function's contract), as
    // for every `D` call below.
    let mut sums = [[unsafe { D::zero() }; V]; P];
    for ky in 0..3 {
        for j in 0..n {
            let mut groups = [&NO_GROUP; V];
            for (group, packed) in groups.iter_mut().zip(&packed) {
                // SAFETY: `ky * n + j < 3 * n <= packed.len()` (checked
                // above).
                *group = unsafe { packed.get_unchecked(ky * n + j) };
            }
            let at = ky * g.kernel_row + 4 * j;
            let mut x = [0i32; P];
            for (x, run) in x.iter_mut().zip(&xs) {
                // SAFETY: `ky <= 2` and `j < n`, so `at + 4 <= 2 *
                // kernel_row + 4 * n = reach`, the length of every run; an
                // unaligned read of 4 initialized bytes.
                *x = unsafe { run.as_ptr().add(at).cast::<i32>().read_unaligned() };
            }
            // SAFETY: `D`'s features (this function's contract).
            unsafe { D::step(&mut sums, x, &groups) };
        }
    }
    for (p, sums) in sums.iter().enumerate() {
        for (v, (sums, rq)) in sums.iter().zip(rq).enumerate() {
            // SAFETY: `D`'s features (this function's contract).
            let q = unsafe { D::requantize(sums, rq) };
            let at = (q0 + p) * cout + c0 + v * OC_BLOCK;
            if let Some(out) = output.get_mut(at..at + OC_BLOCK) {
                out.copy_from_slice(&bytemuck::cast::<__m128i, [i8; 16]>(q));
            }
        }
    }
}

/// Writes every byte of `wide` ([`padded_len`]): the input as `q ^ 0x80`
/// (`q + 128` as `u8`), HWC, inside a ring one pixel wide, and the slack
/// after it, of `zp ^ 0x80`. Returns it initialized.
#[inline]
#[target_feature(enable = "avx2")]
fn offset_input<'w>(
    input: &[i8],
    shape: Shape,
    zp: i8,
    wide: &'w mut [MaybeUninit<u8>],
) -> &'w [u8] {
    wide.fill(MaybeUninit::new(zp as u8 ^ 0x80));
    let row = shape.width * shape.channels;
    let padded_row = row + 2 * shape.channels;
    for (y, src) in input.chunks_exact(row).take(shape.height).enumerate() {
        let at = (y + 1) * padded_row + shape.channels;
        if let Some(dst) = wide.get_mut(at..at + row) {
            for (d, &s) in dst.iter_mut().zip(src) {
                d.write(s as u8 ^ 0x80);
            }
        }
    }
    // SAFETY: the fill above wrote every byte; `MaybeUninit<u8>` has `u8`'s
    // layout.
    unsafe { &*(wide as *const [MaybeUninit<u8>] as *const [u8]) }
}

/// Per-channel requantization inputs of 16 channels, the bias with the
/// unsigned inputs' offset folded in.
struct Lanes {
    bias: [i32; OC_BLOCK],
    multiplier: [i32; OC_BLOCK],
    shift: [i32; OC_BLOCK],
}

/// The requantization inputs of channels `c0..c0 + 16`, the bias with the
/// unsigned inputs' offset folded in: `bias - (zp + 128) * sum w`
/// (wrapping), from the channels' weight sums.
fn lanes(layer: &Conv3x3<'_>, c0: usize, weight_sums: [i32; OC_BLOCK]) -> Lanes {
    let rq = &layer.requant;
    let offset = rq.input_zero_point as i32 + 128;
    let mut lanes = Lanes {
        bias: [0; OC_BLOCK],
        multiplier: [0; OC_BLOCK],
        shift: [0; OC_BLOCK],
    };
    for (j, sum) in weight_sums.into_iter().enumerate() {
        let c = c0 + j;
        let bias = layer.bias.get(c).unwrap_or(0);
        lanes.bias[j] = bias.wrapping_sub(offset.wrapping_mul(sum));
        lanes.multiplier[j] = rq.multipliers.get(c).unwrap_or(0);
        lanes.shift[j] = rq.shifts.get(c).unwrap_or(0) as i32;
    }
    lanes
}

/// Packs the weight rows of channels `c0..c0 + 16` (`9 * cin` bytes
/// each, `[ky][kx][in]`) into `packed[j]`, lane `c` = bytes `4j..4j + 4` of
/// channel `c0 + c` (for `cin = 1`, kernel row `j`'s three taps and a 0):
/// 8 groups of 8 channels at a time through `conv_avx2`'s 8 x 8 transpose
/// of 32-bit lanes, the rest one group at a time. Writes the first `3 *`
/// [`row_groups`] entries of `buffer` and returns them initialized.
#[inline]
#[target_feature(enable = "avx2")]
fn pack_weights<'p>(
    weights: &[u8],
    cin: usize,
    c0: usize,
    buffer: &'p mut [MaybeUninit<Group>; MAX_GROUPS],
) -> &'p [Group] {
    let packed = &mut buffer[..3 * row_groups(cin)];
    let k = 9 * cin;
    let Some(block) = weights.get(c0 * k..(c0 + OC_BLOCK) * k) else {
        return &[];
    };
    // Plain loops rather than closures around the intrinsics, which would
    // not inherit the target features and stay out-of-line calls.
    let full = if cin == 1 { 0 } else { k / 32 };
    let mut chunks: [&[[u8; 32]]; OC_BLOCK] = [&[]; OC_BLOCK];
    for (o, c) in chunks.iter_mut().enumerate() {
        *c = &block[o * k..(o + 1) * k].as_chunks::<32>().0[..full];
    }
    for t in 0..full {
        let mut columns = [[_mm256_setzero_si256(); 8]; 2];
        for (h, columns) in columns.iter_mut().enumerate() {
            let mut r = [_mm256_setzero_si256(); 8];
            for (o, r) in r.iter_mut().enumerate() {
                // SAFETY: every `chunks[..]` holds `full` chunks and `t < full`.
                *r = bytemuck::cast(*unsafe { chunks[8 * h + o].get_unchecked(t) });
            }
            *columns = conv_avx2::transpose8x8(r);
        }
        for (j, group) in packed[8 * t..8 * t + 8].iter_mut().enumerate() {
            let halves: [[i32; 8]; 2] =
                [bytemuck::cast(columns[0][j]), bytemuck::cast(columns[1][j])];
            group.write(bytemuck::cast(halves));
        }
    }
    for (j, group) in packed.iter_mut().enumerate().skip(8 * full) {
        let mut lanes = [0i32; OC_BLOCK];
        for (o, lane) in lanes.iter_mut().enumerate() {
            let row = &block[o * k..(o + 1) * k];
            let bytes = if cin == 1 {
                [row[3 * j], row[3 * j + 1], row[3 * j + 2], 0]
            } else {
                [row[4 * j], row[4 * j + 1], row[4 * j + 2], row[4 * j + 3]]
            };
            *lane = i32::from_le_bytes(bytes);
        }
        group.write(lanes);
    }
    // SAFETY: entries `0..8 * full` were written by the transposes, all the
    // others by the loop after them; `MaybeUninit<T>` has `T`'s layout.
    unsafe { &*(packed as *const [MaybeUninit<Group>] as *const [Group]) }
}
