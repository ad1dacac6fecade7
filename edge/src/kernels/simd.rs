//! x86-64 inner block of the blocked 3x3 convolution (the fallback where
//! neither `conv_vnni` nor `conv_avx2` runs: no AVX2, or a layer they do
//! not cover): `C` output channels times `P` output pixels per pass, so
//! each widened input vector feeds `C` multiplies and each widened weight
//! vector `P` (LLVM does not find this form from the portable kernel). SSE2 (`pmaddwd`, 8 products) is baseline on x86-64 and
//! always compiled in; builds with AVX2 enabled (`-C target-cpu=native` on
//! this host) use `vpmaddwd` (16 products) instead. No runtime detection:
//! the choice is made at compile time from `cfg(target_feature)`.
//!
//! Loads go through `bytemuck::cast` of `[i8; 16]` array chunks (safe, no
//! pointers); the intrinsics themselves are safe inside a
//! `#[target_feature]` function. The only `unsafe` is the call into those
//! functions, which requires the features to be present.
//!
//! Exactness: `|x - zp| <= 255` and `|w| <= 128`, so one product is at most
//! `32_640` in magnitude; a `pmaddwd` pair sum (`65_280`) never hits its
//! single overflow case (both pairs `-32768 * -32768`), and a whole dot
//! product of `9 * cin` products stays below `9 * 4096 * 32_640 =
//! 1_203_240_960 < 2^31` for every `cin <= MAX_CHANNELS` (4096; seaclr-s has
//! `cin <= 128`: `37_601_280`). So the i32 lane sums never wrap and equal
//! the exact dot product in any summation order, bit for bit the plain
//! reference.
//!
//! It also holds the vector requantization all x86-64 kernels share:
//! [`Requant8`] (AVX2, 8 lanes) and [`Requant16`] (AVX-512, 16 lanes, for
//! `conv_vnni`), both exactly `kernels::requantize`.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

/// One kernel row of a pixel block: per pixel the contiguous in-image input
/// run (`len` values, HWC), and the offset of the matching weights in each
/// `[ky][kx][in]` weight row.
pub(super) type Segment<'a, const P: usize> = ([&'a [i8]; P], usize);

/// `out[p][c] = sum over segments of sum_j (x[p][j] - zp) * w[c][off + j]`
/// over the first `len` values of each segment (shorter slices contribute
/// fewer products, never a read out of bounds).
#[inline(always)]
pub(super) fn dots<const C: usize, const P: usize>(
    segments: &[Segment<'_, P>],
    len: usize,
    weights: [&[u8]; C],
    zp: i16,
) -> [[i32; C]; P] {
    #[cfg(target_feature = "avx2")]
    {
        // SAFETY: `dots_avx2` only needs AVX2, which this build enables for
        // every function (`cfg(target_feature = "avx2")` above).
        unsafe { dots_avx2(segments, len, weights, zp) }
    }
    #[cfg(not(target_feature = "avx2"))]
    {
        // SAFETY: `dots_sse2` only needs SSE2, part of the x86-64 baseline
        // that every x86_64 target enables.
        unsafe { dots_sse2(segments, len, weights, zp) }
    }
}

/// The segment's input runs and weight runs cut to a common length, as
/// 16-value chunks plus the rest.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn split<'a, const C: usize, const P: usize>(
    (xs, off): &Segment<'a, P>,
    len: usize,
    weights: &[&'a [u8]; C],
) -> (
    [&'a [[i8; 16]]; P],
    [&'a [i8]; P],
    [&'a [[u8; 16]]; C],
    [&'a [u8]; C],
) {
    let mut n = len;
    for x in xs {
        n = n.min(x.len());
    }
    let ws = weights.map(|w| w.get(*off..).unwrap_or(&[]));
    for w in &ws {
        n = n.min(w.len());
    }
    let xs = xs.map(|x| x.get(..n).unwrap_or(&[]).as_chunks::<16>());
    let ws = ws.map(|w| w.get(..n).unwrap_or(&[]).as_chunks::<16>());
    (
        xs.map(|(c, _)| c),
        xs.map(|(_, t)| t),
        ws.map(|(c, _)| c),
        ws.map(|(_, t)| t),
    )
}

/// Adds the products of the runs shorter than one vector step.
#[inline(always)]
fn scalar_tail<const C: usize, const P: usize>(
    acc: &mut [[i32; C]; P],
    xt: &[&[i8]; P],
    wt: &[&[u8]; C],
    zp: i16,
) {
    for (acc, x) in acc.iter_mut().zip(xt) {
        for (a, w) in acc.iter_mut().zip(wt) {
            for (&x, &w) in x.iter().zip(*w) {
                *a = a.wrapping_add((x as i16 - zp) as i32 * (w as i8) as i32);
            }
        }
    }
}

/// Horizontal sums of `C` vectors of 4 lanes, added to `out`.
#[inline]
#[target_feature(enable = "sse2")]
fn hsum_add<const C: usize>(acc: &[__m128i; C], out: &mut [i32; C]) {
    if C == 4 {
        // 4x4 transpose-and-add: lane c of the result is the sum of acc[c].
        let s01 = _mm_add_epi32(
            _mm_unpacklo_epi32(acc[0], acc[1]),
            _mm_unpackhi_epi32(acc[0], acc[1]),
        );
        let s23 = _mm_add_epi32(
            _mm_unpacklo_epi32(acc[2], acc[3]),
            _mm_unpackhi_epi32(acc[2], acc[3]),
        );
        let r = _mm_add_epi32(_mm_unpacklo_epi64(s01, s23), _mm_unpackhi_epi64(s01, s23));
        let r: [i32; 4] = bytemuck::cast(r);
        for (o, r) in out.iter_mut().zip(r) {
            *o = o.wrapping_add(r);
        }
    } else {
        for (o, &a) in out.iter_mut().zip(acc) {
            let a: [i32; 4] = bytemuck::cast(a);
            *o = a.iter().fold(*o, |s, &v| s.wrapping_add(v));
        }
    }
}

/// 16 `i8` as 16 `i16` in two vectors (SSE2 has no `pmovsxbw`: duplicate
/// each byte into a word, then shift the copy out arithmetically).
#[inline]
#[target_feature(enable = "sse2")]
fn widen_sse2(v: __m128i) -> [__m128i; 2] {
    [
        _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)),
        _mm_srai_epi16::<8>(_mm_unpackhi_epi8(v, v)),
    ]
}

#[cfg_attr(target_feature = "avx2", allow(dead_code))]
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn dots_sse2<const C: usize, const P: usize>(
    segments: &[Segment<'_, P>],
    len: usize,
    weights: [&[u8]; C],
    zp: i16,
) -> [[i32; C]; P] {
    let zpv = _mm_set1_epi16(zp);
    let mut acc = [[_mm_setzero_si128(); C]; P];
    let mut out = [[0i32; C]; P];
    for segment in segments {
        let (xc, xt, wc, wt) = split(segment, len, &weights);
        let n = xc.first().map_or(0, |x| x.len());
        let xc = xc.map(|x| &x[..n]);
        let wc = wc.map(|w| &w[..n]);
        for i in 0..n {
            let x = xc.map(|x| {
                let [lo, hi] = widen_sse2(bytemuck::cast(x[i]));
                [_mm_sub_epi16(lo, zpv), _mm_sub_epi16(hi, zpv)]
            });
            for (c, w) in wc.iter().enumerate() {
                let w = widen_sse2(bytemuck::cast(w[i]));
                for (acc, x) in acc.iter_mut().zip(&x) {
                    let m = _mm_add_epi32(_mm_madd_epi16(x[0], w[0]), _mm_madd_epi16(x[1], w[1]));
                    acc[c] = _mm_add_epi32(acc[c], m);
                }
            }
        }
        if xt.iter().any(|t| !t.is_empty()) {
            scalar_tail(&mut out, &xt, &wt, zp);
        }
    }
    for (acc, out) in acc.iter().zip(&mut out) {
        hsum_add(acc, out);
    }
    out
}

#[cfg(target_feature = "avx2")]
#[inline]
#[target_feature(enable = "avx2")]
fn dots_avx2<const C: usize, const P: usize>(
    segments: &[Segment<'_, P>],
    len: usize,
    weights: [&[u8]; C],
    zp: i16,
) -> [[i32; C]; P] {
    let zpv = _mm256_set1_epi16(zp);
    let mut acc = [[_mm256_setzero_si256(); C]; P];
    let mut out = [[0i32; C]; P];
    for segment in segments {
        let (xc, xt, wc, wt) = split(segment, len, &weights);
        let n = xc.first().map_or(0, |x| x.len());
        let xc = xc.map(|x| &x[..n]);
        let wc = wc.map(|w| &w[..n]);
        for i in 0..n {
            let x = xc.map(|x| _mm256_sub_epi16(_mm256_cvtepi8_epi16(bytemuck::cast(x[i])), zpv));
            for (c, w) in wc.iter().enumerate() {
                let w = _mm256_cvtepi8_epi16(bytemuck::cast(w[i]));
                for (acc, x) in acc.iter_mut().zip(&x) {
                    acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(*x, w));
                }
            }
        }
        if xt.iter().any(|t| !t.is_empty()) {
            scalar_tail(&mut out, &xt, &wt, zp);
        }
    }
    for (acc, out) in acc.iter().zip(&mut out) {
        let acc =
            acc.map(|a| _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a)));
        hsum_add(&acc, out);
    }
    out
}

/// Per-layer output quantization constants for [`requantize4`].
#[derive(Clone, Copy)]
pub(super) struct OutQuant {
    /// Added after the rescale.
    pub zero_point: i32,
    /// Lower clamp.
    pub min: i32,
    /// Upper clamp.
    pub max: i32,
}

impl OutQuant {
    /// The output zero point and clamp of a layer's requantization.
    pub(super) fn of(rq: &seaclr_shared::blob::Requant<'_>) -> OutQuant {
        OutQuant {
            zero_point: rq.output_zero_point as i32,
            min: rq.activation_min as i32,
            max: rq.activation_max as i32,
        }
    }
}

/// Bias, rescale and clamp of 4 channels x `P` pixels of dot products:
/// exactly `kernels::requantize` of `bias[c].wrapping_add(d[p][c])`.
#[inline(always)]
pub(super) fn requantize4<const P: usize>(
    d: [[i32; 4]; P],
    bias: [i32; 4],
    multiplier: [i32; 4],
    shift: [i32; 4],
    q: OutQuant,
) -> [[i8; 4]; P] {
    #[cfg(target_feature = "avx2")]
    if P <= 2 {
        let mut lanes = [0i32; 8];
        for (l, d) in lanes.chunks_exact_mut(4).zip(&d) {
            l.copy_from_slice(d);
        }
        let twice = |v: [i32; 4]| [v[0], v[1], v[2], v[3], v[0], v[1], v[2], v[3]];
        // SAFETY: `Requant8` only needs AVX2, which this build enables for
        // every function (`cfg(target_feature = "avx2")` above).
        let r: [i32; 8] = unsafe {
            let rq = Requant8::new(twice(bias), twice(multiplier), twice(shift), q);
            bytemuck::cast(rq.apply(bytemuck::cast(lanes)))
        };
        return core::array::from_fn(|p| core::array::from_fn(|c| r[(4 * p + c) % 8] as i8));
    }
    core::array::from_fn(|p| {
        core::array::from_fn(|c| requantize_one(d[p][c], bias[c], multiplier[c], shift[c], q))
    })
}

/// One value of [`requantize4`] / [`requantize8`] without SIMD.
#[inline(always)]
fn requantize_one(d: i32, bias: i32, multiplier: i32, shift: i32, q: OutQuant) -> i8 {
    let v = super::multiply_by_quantized_multiplier(bias.wrapping_add(d), multiplier, shift)
        .saturating_add(q.zero_point);
    v.clamp(q.min, q.max) as i8
}

/// Bias, rescale and clamp of 8 channels of one pixel: exactly
/// `kernels::requantize` of `bias[c].wrapping_add(d[c])`.
#[inline(always)]
pub(super) fn requantize8(
    d: [i32; 8],
    bias: [i32; 8],
    multiplier: [i32; 8],
    shift: [i32; 8],
    q: OutQuant,
) -> [i8; 8] {
    #[cfg(target_feature = "avx2")]
    {
        // SAFETY: `Requant8` only needs AVX2, which this build enables for
        // every function (`cfg(target_feature = "avx2")` above).
        let r: [i32; 8] = unsafe {
            bytemuck::cast(Requant8::new(bias, multiplier, shift, q).apply(bytemuck::cast(d)))
        };
        r.map(|v| v as i8)
    }
    #[cfg(not(target_feature = "avx2"))]
    {
        core::array::from_fn(|c| requantize_one(d[c], bias[c], multiplier[c], shift[c], q))
    }
}

/// [`super::multiply_by_quantized_multiplier`] (gemmlowp / TFLite), then
/// zero point and clamp, in 8 lanes: per-lane bias, multiplier and shift
/// turned into vector constants once ([`Requant8::new`]), so a kernel that
/// applies them to many accumulators pays only [`Requant8::apply`].
/// Products are formed in 64-bit lanes (even and odd lanes separately).
#[derive(Clone, Copy)]
pub(super) struct Requant8 {
    bias: __m256i,
    multiplier: __m256i,
    /// The multipliers of the odd lanes moved to the even ones (where
    /// `vpmuldq` reads its operands).
    multiplier_odd: __m256i,
    /// Whether any lane shifts left (else that step is skipped).
    any_left: bool,
    /// Whether any multiplier is `i32::MIN`, the only one that can hit
    /// the high multiply's overflow case (else that check is skipped).
    any_min_multiplier: bool,
    left: __m256i,
    right: __m256i,
    /// `(1 << right) - 1`.
    mask: __m256i,
    /// `mask >> 1`.
    half_mask: __m256i,
    /// `min - zero_point` and `max - zero_point`.
    min: __m256i,
    max: __m256i,
    zero_point: __m256i,
}

impl Requant8 {
    /// The constants for these lanes' bias, multiplier and shift.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn new(
        bias: [i32; 8],
        multiplier: [i32; 8],
        shift: [i32; 8],
        q: OutQuant,
    ) -> Requant8 {
        let zero = _mm256_setzero_si256();
        let one = _mm256_set1_epi32(1);
        let m: __m256i = bytemuck::cast(multiplier);
        let shift: __m256i = bytemuck::cast(shift);
        let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
        let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
        let min_multiplier = _mm256_cmpeq_epi32(m, _mm256_set1_epi32(i32::MIN));
        Requant8 {
            bias: bytemuck::cast(bias),
            multiplier: m,
            multiplier_odd: _mm256_srli_epi64::<32>(m),
            any_left: _mm256_movemask_epi8(_mm256_cmpgt_epi32(shift, zero)) != 0,
            any_min_multiplier: _mm256_movemask_epi8(min_multiplier) != 0,
            left: _mm256_max_epi32(shift, zero),
            right,
            mask,
            half_mask: _mm256_srai_epi32::<1>(mask),
            min: _mm256_set1_epi32(q.min - q.zero_point),
            max: _mm256_set1_epi32(q.max - q.zero_point),
            zero_point: _mm256_set1_epi32(q.zero_point),
        }
    }

    /// `kernels::requantize` of `bias + acc` in every lane (wrapping add).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn apply(&self, acc: __m256i) -> __m256i {
        let one = _mm256_set1_epi32(1);
        let x = _mm256_add_epi32(acc, self.bias);
        let (m, left, right) = (self.multiplier, self.left, self.right);
        let x = if self.any_left {
            // x.saturating_mul(1 << left): exact iff shifting back restores x.
            let shifted = _mm256_sllv_epi32(x, left);
            let exact = _mm256_cmpeq_epi32(_mm256_srav_epi32(shifted, left), x);
            let saturated =
                _mm256_xor_si256(_mm256_set1_epi32(i32::MAX), _mm256_srai_epi32::<31>(x));
            _mm256_blendv_epi8(saturated, shifted, exact)
        } else {
            x
        };
        // saturating_rounding_doubling_high_mul(x, m), in 64-bit lanes.
        let even = rounded_high_half(_mm256_mul_epi32(x, m));
        let odd = rounded_high_half(_mm256_mul_epi32(
            _mm256_srli_epi64::<32>(x),
            self.multiplier_odd,
        ));
        let h = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let h = if self.any_min_multiplier {
            let min = _mm256_set1_epi32(i32::MIN);
            let overflow = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
            _mm256_blendv_epi8(h, _mm256_set1_epi32(i32::MAX), overflow)
        } else {
            h
        };
        // rounding_divide_by_pot(h, right).
        let remainder = _mm256_and_si256(h, self.mask);
        let threshold = _mm256_add_epi32(
            self.half_mask,
            _mm256_and_si256(_mm256_srai_epi32::<31>(h), one),
        );
        let r = _mm256_add_epi32(
            _mm256_srav_epi32(h, right),
            _mm256_and_si256(_mm256_cmpgt_epi32(remainder, threshold), one),
        );
        // saturating_add(zp).clamp(min, max) == clamp(min - zp, max - zp) + zp.
        let r = _mm256_max_epi32(_mm256_min_epi32(r, self.max), self.min);
        _mm256_add_epi32(r, self.zero_point)
    }
}

/// gemmlowp's rounding of `p / 2^31` in each 64-bit lane: `(p + nudge) /
/// 2^31` toward zero with nudge `2^30` (or `1 - 2^30` for negative `p`).
/// Both cases are `floor((p + 2^30) / 2^31)`: for `p < 0`, `t = p + 1 -
/// 2^30` is negative and truncating it is `floor((t + 2^31 - 1) / 2^31)`.
/// Only the low 32 bits of each lane are used, which a logical shift gives
/// as exactly as an arithmetic one (`|p| <= 2^62`, so nothing overflows).
#[inline]
#[target_feature(enable = "avx2")]
fn rounded_high_half(p: __m256i) -> __m256i {
    _mm256_srli_epi64::<31>(_mm256_add_epi64(p, _mm256_set1_epi64x(1 << 30)))
}

/// [`Requant8`] on 16 lanes with AVX-512 F, for `conv_vnni`, whose sums are
/// 16-lane vectors: the same steps, with mask registers for the compares
/// and blends, so one 512-bit pass costs about what one 256-bit pass of
/// [`Requant8`] does.
#[derive(Clone, Copy)]
pub(super) struct Requant16 {
    bias: __m512i,
    multiplier: __m512i,
    /// The multipliers of the odd lanes moved to the even ones.
    multiplier_odd: __m512i,
    /// Whether any lane shifts left (else that step is skipped).
    any_left: bool,
    /// Whether any multiplier is `i32::MIN` (else that check is skipped).
    any_min_multiplier: bool,
    left: __m512i,
    right: __m512i,
    /// `(1 << right) - 1`.
    mask: __m512i,
    /// `mask >> 1`.
    half_mask: __m512i,
    /// `min - zero_point` and `max - zero_point`.
    min: __m512i,
    max: __m512i,
    zero_point: __m512i,
}

impl Requant16 {
    /// The constants for these lanes' bias, multiplier and shift.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn new(
        bias: [i32; 16],
        multiplier: [i32; 16],
        shift: [i32; 16],
        q: OutQuant,
    ) -> Requant16 {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi32(1);
        let m: __m512i = bytemuck::cast(multiplier);
        let shift: __m512i = bytemuck::cast(shift);
        let right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
        Requant16 {
            bias: bytemuck::cast(bias),
            multiplier: m,
            multiplier_odd: _mm512_srli_epi64::<32>(m),
            any_left: _mm512_cmpgt_epi32_mask(shift, zero) != 0,
            any_min_multiplier: _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(i32::MIN)) != 0,
            left: _mm512_max_epi32(shift, zero),
            right,
            mask,
            half_mask: _mm512_srai_epi32::<1>(mask),
            min: _mm512_set1_epi32(q.min - q.zero_point),
            max: _mm512_set1_epi32(q.max - q.zero_point),
            zero_point: _mm512_set1_epi32(q.zero_point),
        }
    }

    /// `kernels::requantize` of `bias + acc` in every lane (wrapping add),
    /// narrowed to 16 int8 in lane order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn apply(&self, acc: __m512i) -> __m128i {
        let one = _mm512_set1_epi32(1);
        let x = _mm512_add_epi32(acc, self.bias);
        let (m, left, right) = (self.multiplier, self.left, self.right);
        let x = if self.any_left {
            // x.saturating_mul(1 << left): exact iff shifting back restores x.
            let shifted = _mm512_sllv_epi32(x, left);
            let exact = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(shifted, left), x);
            let saturated =
                _mm512_xor_si512(_mm512_set1_epi32(i32::MAX), _mm512_srai_epi32::<31>(x));
            _mm512_mask_blend_epi32(exact, saturated, shifted)
        } else {
            x
        };
        // saturating_rounding_doubling_high_mul(x, m), in 64-bit lanes
        // (rounded as in `rounded_high_half`).
        let nudge = _mm512_set1_epi64(1 << 30);
        let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge));
        let odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), self.multiplier_odd);
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(odd, nudge)); // high half at bit 32
        let h = _mm512_mask_blend_epi32(0b1010_1010_1010_1010, even, odd);
        let h = if self.any_min_multiplier {
            let min = _mm512_set1_epi32(i32::MIN);
            let overflow = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(m, min);
            _mm512_mask_mov_epi32(h, overflow, _mm512_set1_epi32(i32::MAX))
        } else {
            h
        };
        // rounding_divide_by_pot(h, right).
        let negative = _mm512_cmplt_epi32_mask(h, _mm512_setzero_si512());
        let threshold = _mm512_mask_add_epi32(self.half_mask, negative, self.half_mask, one);
        let up = _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, self.mask), threshold);
        let shifted = _mm512_srav_epi32(h, right);
        let r = _mm512_mask_add_epi32(shifted, up, shifted, one);
        // saturating_add(zp).clamp(min, max) == clamp(min - zp, max - zp) + zp;
        // then already in the int8 range, so the saturating narrowing is exact.
        let r = _mm512_max_epi32(_mm512_min_epi32(r, self.max), self.min);
        _mm512_cvtsepi32_epi8(_mm512_add_epi32(r, self.zero_point))
    }
}
