//! Stride-1 layers as Winograd F(2x2, 3x3) in exact integer arithmetic:
//! 16 multiplies per 2 x 2 output tile and channel pair instead of 36, so
//! these layers (three quarters of seaclr-s's MACs) need 2.25x fewer
//! `vpmaddwd`s, with results bit for bit those of the direct convolution.
//!
//! For each 4 x 4 input tile `d` (centred, padding 0) and 3 x 3 kernel `g`,
//! `Y = A^T [(G g G^T) . (B^T d B)] A / 4` with Lavin & Gray's matrices
//! and `G` doubled so every entry is an integer (`2G` has 0, 1, -1, 2):
//!
//! ```text
//! B^T = | 1  0 -1  0 |   2G = | 2  0  0 |   A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |        | 1  1  1 |         | 0  1 -1 -1 |
//!       | 0 -1  1  0 |        | 1 -1  1 |
//!       | 0  1  0 -1 |        | 0  0  2 |
//! ```
//!
//! Why it is exact: `|B^T d B| <= 4 * 255 = 1020` and `|2G g 2G^T| <= 9 *
//! 128 = 1152` fit `i16`, so `vpmaddwd` forms exact pair sums (at most
//! 2,350,080); the sum over channels and the output transform then run in
//! wrapping `i32`, which is exact modulo 2^32, and the true result `4 *
//! dot` has `|4 * dot| <= 4 * 9 * cin * 32_640 < 2^31` for `cin <=`
//! [`MAX_CHANNELS`] (it would hold to 1,827), so the modular value is the
//! value and `>> 2` divides it exactly.
//!
//! Per block of 16 output channels the weights are transformed once (from
//! the direct kernel's packed pairs, with 16-bit adds on 8 channels x 2
//! inputs per vector); per block of tiles the input tiles are transformed
//! 16 channels per vector, then each of the 16 positions is one small GEMM
//! (the direct kernel's micro-kernel shape), then the output transform, the
//! bias and the requantization.

use super::{BlockQuant, OC_BLOCK, PackedPair, madd_step};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use seaclr_shared::blob::{Conv3x3, Shape};

/// Most input channels this path takes (the transformed-weight buffer, 64
/// KiB, and far inside the exactness bound of 1,827).
const MAX_CHANNELS: usize = 128;
/// Winograd positions per tile (4 x 4).
const POSITIONS: usize = 16;
/// Tiles per micro-kernel pass (12 accumulators, as the direct kernel).
const TILES: usize = 6;
/// Transformed-input buffer, in vectors of 8 pairs (64 KiB): a whole
/// layer's tiles when they fit (32 x 32 x 16 is the one seaclr-s layer that
/// does not), so they are transformed once, not once per channel block.
const V_VECTORS: usize = 2048;

/// Whether this path takes the layer: stride 1, even output sides (whole
/// 2 x 2 tiles), and input channels in whole 16-channel vectors.
pub(super) fn covers(layer: &Conv3x3<'_>, shape: Shape) -> bool {
    let cin = shape.channels;
    layer.stride == 1
        && shape.height.is_multiple_of(2)
        && shape.width.is_multiple_of(2)
        && cin.is_multiple_of(16)
        && (16..=MAX_CHANNELS).contains(&cin)
}

/// The layer over `wide` (the widened padded input of `super::widen`),
/// given the direct kernel's packed-weight scratch (`9 * cin / 2` entries)
/// for each block's 3 x 3 weights.
#[target_feature(enable = "avx2")]
pub(super) fn conv3x3(
    layer: &Conv3x3<'_>,
    wide: &[i32],
    shape: Shape,
    packed: &mut [MaybeUninit<PackedPair>],
    output: &mut [i8],
) {
    let (cin, cout) = (shape.channels, layer.out_channels as usize);
    let half = cin / 2;
    let mut transformed = [const { MaybeUninit::<[i32; 8]>::uninit() }; POSITIONS * MAX_CHANNELS];
    let transformed = &mut transformed[..2 * POSITIONS * half];
    let mut v = [const { MaybeUninit::<[i32; 8]>::uninit() }; V_VECTORS];
    let tiles = Tiles {
        across: shape.width / 2,
        count: shape.height / 2 * (shape.width / 2),
        half,
        width: shape.width,
        cout,
    };
    // A whole layer's transformed tiles when they fit, else per block.
    let mut inputs = if POSITIONS * tiles.count * half / 8 <= V_VECTORS {
        match transform_inputs(wide, &tiles, 0, tiles.count, &mut v) {
            Some(all) => Inputs::Whole(all),
            None => return,
        }
    } else {
        Inputs::PerBlock(&mut v)
    };
    for c0 in (0..cout).step_by(OC_BLOCK) {
        let direct = super::pack_weights(layer.weights.0, cin, c0, packed);
        let u = transform_weights(direct, half, transformed);
        let rq = BlockQuant::new(layer, c0);
        let mut t = 0;
        while t < tiles.count {
            let n = match tiles.count - t {
                left if left >= TILES => TILES,
                left if left >= 4 => 4,
                _ => 1,
            };
            let block = match &mut inputs {
                Inputs::Whole(all) => *all,
                Inputs::PerBlock(buffer) => match transform_inputs(wide, &tiles, t, n, buffer) {
                    Some(block) => block,
                    None => return,
                },
            };
            match n {
                TILES => tile_block::<TILES>(&block, &tiles, t, u, &rq, output, c0),
                4 => tile_block::<4>(&block, &tiles, t, u, &rq, output, c0),
                _ => tile_block::<1>(&block, &tiles, t, u, &rq, output, c0),
            }
            t += n;
        }
    }
}

/// Where a layer's transformed input tiles come from.
enum Inputs<'v> {
    /// All of them, transformed once.
    Whole(Transformed<'v>),
    /// Transformed per tile block into this buffer (once per channel block).
    PerBlock(&'v mut [MaybeUninit<[i32; 8]>]),
}

/// Transformed input tiles `first..first + count`, laid out `[xi][tile][icp]`.
#[derive(Clone, Copy)]
struct Transformed<'v> {
    v: &'v [i32],
    first: usize,
    count: usize,
}

impl<'v> Transformed<'v> {
    /// The `half` pairs of tile `t` at position `xi`.
    #[inline(always)]
    fn run(&self, xi: usize, t: usize, half: usize) -> Option<&'v [i32]> {
        let at = (xi * self.count + t.checked_sub(self.first)?) * half;
        self.v.get(at..at + half)
    }
}

/// The 2 x 2 output tiles of a layer, row-major.
struct Tiles {
    /// Tiles per row.
    across: usize,
    /// Tiles in all.
    count: usize,
    /// `i16` pairs per position (`cin / 2`).
    half: usize,
    /// Output (= input) width.
    width: usize,
    /// Output channels.
    cout: usize,
}

impl Tiles {
    /// Padded (row, column) of tile `t`'s top-left input: the output tile
    /// at (`2 ty`, `2 tx`) reads input rows `2 ty - 1 ..= 2 ty + 2`.
    fn origin(&self, t: usize) -> (usize, usize) {
        (2 * (t / self.across), 2 * (t % self.across))
    }

    /// Positions per padded input row (the input with its ring).
    fn padded_width(&self) -> usize {
        self.width + 2
    }
}

/// `(2G) g (2G)^T` for every input pair and both 8-channel groups:
/// `direct[tap * half + icp]` (taps `ky * 3 + kx`) to entry `icp * 16 +
/// xi` of the result (positions `xi = 4 i + j`; one input pair's 16
/// positions are contiguous, so the stores are sequential), written group
/// by group into `u` (two vectors per entry). 16-bit lanes: both inputs of
/// a pair and all 8 channels transform independently; `|u| <= 1152` never
/// wraps.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // indices are matrix positions
fn transform_weights<'u>(
    direct: &[PackedPair],
    half: usize,
    u: &'u mut [MaybeUninit<[i32; 8]>],
) -> &'u [PackedPair] {
    let entries = POSITIONS * half;
    if direct.len() < 9 * half || u.len() < 2 * entries {
        return &[];
    }
    let u = &mut u[..2 * entries];
    for icp in 0..half {
        for g in 0..2 {
            let mut taps = [_mm256_setzero_si256(); 9];
            for (tap, v) in taps.iter_mut().enumerate() {
                // SAFETY: `tap * half + icp < 9 * half <= direct.len()`.
                *v = bytemuck::cast(unsafe { direct.get_unchecked(tap * half + icp) }[g]);
            }
            // Along kx (index j), then along ky (index i).
            let mut rows = [[_mm256_setzero_si256(); 4]; 3];
            for (ky, row) in rows.iter_mut().enumerate() {
                *row = times_2g(taps[3 * ky], taps[3 * ky + 1], taps[3 * ky + 2]);
            }
            for j in 0..4 {
                let column = times_2g(rows[0][j], rows[1][j], rows[2][j]);
                for (i, value) in column.iter().enumerate() {
                    let at = 2 * (icp * POSITIONS + 4 * i + j) + g;
                    // SAFETY: `at < 2 * 16 * half = u.len()` (cut above).
                    unsafe { u.get_unchecked_mut(at) }.write(bytemuck::cast(*value));
                }
            }
        }
    }
    // SAFETY: the loops above wrote `u[2 * (icp * 16 + xi) + g]` for every
    // `xi < 16`, `icp < half` and `g < 2`, i.e. all of `u` (cut to `2 *
    // entries` above); `MaybeUninit<T>` has `T`'s layout.
    let u: &[[i32; 8]] = unsafe { &*(u as *const [MaybeUninit<[i32; 8]>] as *const [[i32; 8]]) };
    bytemuck::cast_slice(u)
}

/// `2G (a, b, c)^T` in 16-bit lanes: `(2a, a + b + c, a - b + c, 2c)`.
#[inline]
#[target_feature(enable = "avx2")]
fn times_2g(a: __m256i, b: __m256i, c: __m256i) -> [__m256i; 4] {
    let ac = _mm256_add_epi16(a, c);
    [
        _mm256_add_epi16(a, a),
        _mm256_add_epi16(ac, b),
        _mm256_sub_epi16(ac, b),
        _mm256_add_epi16(c, c),
    ]
}

/// `B^T (d0, d1, d2, d3)^T` in 16-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn times_bt(d: [__m256i; 4]) -> [__m256i; 4] {
    [
        _mm256_sub_epi16(d[0], d[2]),
        _mm256_add_epi16(d[1], d[2]),
        _mm256_sub_epi16(d[2], d[1]),
        _mm256_sub_epi16(d[1], d[3]),
    ]
}

/// `A^T (m0, m1, m2, m3)^T` in 32-bit lanes (wrapping).
#[inline]
#[target_feature(enable = "avx2")]
fn times_at(m: [__m256i; 4]) -> [__m256i; 2] {
    [
        _mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), m[2]),
        _mm256_sub_epi32(_mm256_sub_epi32(m[1], m[2]), m[3]),
    ]
}

/// `P` tiles from tile `t0` times the 16 channels from `c0`: one GEMM per
/// position over the transformed inputs, output transform, bias,
/// requantization, stores (HWC).
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // indices are matrix positions
fn tile_block<const P: usize>(
    transformed: &Transformed<'_>,
    tiles: &Tiles,
    t0: usize,
    u: &[PackedPair],
    rq: &BlockQuant,
    output: &mut [i8],
    c0: usize,
) {
    let half = tiles.half;
    if u.len() < POSITIONS * half {
        return;
    }
    // One GEMM per position; its sums are only stored (not zeroed first).
    let mut m = [const { MaybeUninit::<[[__m256i; 2]; P]>::uninit() }; POSITIONS];
    for (xi, m) in m.iter_mut().enumerate() {
        let mut xs: [&[i32]; P] = [&[]; P];
        for (p, x) in xs.iter_mut().enumerate() {
            match transformed.run(xi, t0 + p, half) {
                Some(run) => *x = run,
                None => return,
            }
        }
        let mut sums = [[_mm256_setzero_si256(); 2]; P];
        for j in 0..half {
            // SAFETY: `j * 16 + xi < 16 * half <= u.len()` (checked above).
            let w = unsafe { u.get_unchecked(j * POSITIONS + xi) };
            let mut x = [0; P];
            for (x, run) in x.iter_mut().zip(&xs) {
                // SAFETY: `j < half`, the length of every run.
                *x = unsafe { *run.get_unchecked(j) };
            }
            madd_step(&mut sums, x, w);
        }
        m.write(sums);
    }
    // SAFETY: the loop above wrote every one of the 16 positions.
    let m = |xi: usize| unsafe { m[xi].assume_init_ref() };
    for p in 0..P {
        // Y' = A^T M A per 8-channel group, then Y = Y' / 4 (exact).
        let mut y = [[[_mm256_setzero_si256(); 2]; 2]; 2]; // [r][c][group]
        for g in 0..2 {
            let mut rows = [[_mm256_setzero_si256(); 4]; 2]; // (A^T M)[r][j]
            for j in 0..4 {
                let [r0, r1] =
                    times_at([m(j)[p][g], m(4 + j)[p][g], m(8 + j)[p][g], m(12 + j)[p][g]]);
                rows[0][j] = r0;
                rows[1][j] = r1;
            }
            for (r, row) in rows.iter().enumerate() {
                let [y0, y1] = times_at(*row);
                y[r][0][g] = _mm256_srai_epi32::<2>(y0);
                y[r][1][g] = _mm256_srai_epi32::<2>(y1);
            }
        }
        let (oy, ox) = tiles.origin(t0 + p);
        for (r, y) in y.iter().enumerate() {
            for (c, y) in y.iter().enumerate() {
                let at = ((oy + r) * tiles.width + ox + c) * tiles.cout + c0;
                let q = rq.apply(y);
                if let Some(out) = output.get_mut(at..at + OC_BLOCK) {
                    out.copy_from_slice(&bytemuck::cast::<__m128i, [i8; 16]>(q));
                }
            }
        }
    }
}

/// `B^T d B` of the `count` tiles from `first`, 16 channels per vector,
/// into `v` laid out `[xi][tile][icp]` (in vectors of 8 pairs); `None` if
/// `v` is too short or a tile would read outside `wide` (never, for a layer
/// [`covers`] admits).
#[inline]
#[target_feature(enable = "avx2")]
fn transform_inputs<'v>(
    wide: &[i32],
    tiles: &Tiles,
    first: usize,
    count: usize,
    v: &'v mut [MaybeUninit<[i32; 8]>],
) -> Option<Transformed<'v>> {
    // Every position starts a whole vector: `half` is a multiple of 8.
    let vectors = tiles.half / 8;
    let v = v.get_mut(..POSITIONS * count * vectors)?;
    let wide = wide.as_chunks::<8>().0;
    let row = tiles.padded_width() * vectors; // vectors per padded row
    let reach = 3 * row + 4 * vectors; // vectors from a tile's first to its end
    for p in 0..count {
        let (oy, ox) = tiles.origin(first + p);
        // The tile's 4 x 4 input positions, `vectors` each.
        let start = (oy * tiles.padded_width() + ox) * vectors;
        let tile = wide.get(start..start + reach)?;
        for cv in 0..vectors {
            let mut d = [[_mm256_setzero_si256(); 4]; 4];
            for (r, d) in d.iter_mut().enumerate() {
                for (c, d) in d.iter_mut().enumerate() {
                    // SAFETY: `r, c <= 3` and `cv < vectors`, so the index
                    // is below `3 * row + 4 * vectors = tile.len()`.
                    *d = bytemuck::cast(*unsafe { tile.get_unchecked(r * row + c * vectors + cv) });
                }
            }
            // Along rows (index i), then along columns (index j).
            let mut e = [[_mm256_setzero_si256(); 4]; 4]; // e[i][c]
            for c in 0..4 {
                let column = times_bt([d[0][c], d[1][c], d[2][c], d[3][c]]);
                for (i, value) in column.iter().enumerate() {
                    e[i][c] = *value;
                }
            }
            for (i, e) in e.iter().enumerate() {
                for (j, value) in times_bt(*e).iter().enumerate() {
                    let at = ((4 * i + j) * count + p) * vectors + cv;
                    // SAFETY: `at < 16 * count * vectors = v.len()`.
                    unsafe { v.get_unchecked_mut(at) }.write(bytemuck::cast(*value));
                }
            }
        }
    }
    // SAFETY: the loops wrote `v[(xi * count + p) * vectors + cv]` for every
    // position `xi < 16`, tile `p < count` and `cv < vectors`: all of `v`
    // (cut to `16 * count * vectors` above).
    let v: &[[i32; 8]] = unsafe { &*(v as *const [MaybeUninit<[i32; 8]>] as *const [[i32; 8]]) };
    Some(Transformed {
        v: v.as_flattened(),
        first,
        count,
    })
}
