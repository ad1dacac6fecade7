//! Kernels against the plain reference: properties over random shapes,
//! strides, scales and zero points, plus named regression cases.

use super::reference::{self, RefLayer, RefQuant, RefTensor};
use super::*;
use proptest::prelude::*;
use seaclr_shared::blob::write::{OwnedLayer, OwnedRequant};
use std::vec::Vec;

/// The blob form of a reference layer (`inputs` = input features for linear).
pub(crate) fn to_owned(layer: &RefLayer, in_channels: usize) -> OwnedLayer {
    let rq = |q: &RefQuant, output_scale: f32| OwnedRequant {
        input_zero_point: q.input_zero_point as i8,
        output_zero_point: q.output_zero_point as i8,
        activation_min: q.activation_min as i8,
        activation_max: q.activation_max as i8,
        multipliers: q.multipliers.clone(),
        shifts: q.shifts.iter().map(|&s| s as i8).collect(),
        output_scale,
    };
    let w8 = |w: &[i32]| w.iter().map(|&v| v as i8).collect::<Vec<i8>>();
    match layer {
        RefLayer::Conv3x3 {
            in_channels,
            out_channels,
            stride,
            weights,
            bias,
            quant,
        } => OwnedLayer::conv3x3(
            *in_channels as u16,
            *out_channels as u16,
            *stride as u8,
            &w8(weights),
            bias,
            rq(quant, 0.5),
        ),
        RefLayer::GlobalAvgPool { quant } => {
            OwnedLayer::global_avg_pool(in_channels as u16, rq(quant, 0.25))
        }
        RefLayer::Linear {
            out_features,
            weights,
            bias,
            quant,
        } => OwnedLayer::linear(
            in_channels as u16,
            *out_features as u16,
            &w8(weights),
            bias,
            rq(quant, 0.125),
        ),
    }
}

/// Random quantization parameters: multipliers anywhere in Q31 (plus the
/// edge cases 0 and 2^31 - 1), shifts over the whole accepted range.
pub(crate) fn arb_quant(channels: usize, input_zero_point: i32) -> impl Strategy<Value = RefQuant> {
    let multiplier = prop_oneof![
        3 => (1i32 << 30)..=i32::MAX,
        1 => Just(i32::MAX),
        1 => Just(0),
        1 => 0..=i32::MAX,
    ];
    let shift = prop_oneof![4 => -12i32..=0, 1 => -31i32..=30];
    (
        proptest::collection::vec(multiplier, channels),
        proptest::collection::vec(shift, channels),
        -128i32..=127,
        prop_oneof![Just(true), Just(false)],
    )
        .prop_map(
            move |(multipliers, shifts, output_zero_point, relu)| RefQuant {
                input_zero_point,
                output_zero_point,
                activation_min: if relu { output_zero_point } else { -128 },
                activation_max: 127,
                multipliers,
                shifts,
            },
        )
}

pub(crate) fn arb_tensor(
    height: usize,
    width: usize,
    channels: usize,
) -> impl Strategy<Value = RefTensor> {
    proptest::collection::vec(-128i32..=127, height * width * channels).prop_map(move |values| {
        RefTensor {
            height,
            width,
            channels,
            values,
        }
    })
}

fn arb_conv(in_channels: usize, input_zero_point: i32) -> impl Strategy<Value = RefLayer> {
    arb_conv_with(in_channels, input_zero_point, 1usize..=9, 1usize..=2)
}

/// A conv layer with output channels and strides from the given strategies
/// and everything else random (weights in the blob's `[-127, 127]`; the
/// extreme cases add -128).
pub(crate) fn arb_conv_with(
    in_channels: usize,
    input_zero_point: i32,
    out_channels: impl Strategy<Value = usize>,
    strides: impl Strategy<Value = usize>,
) -> impl Strategy<Value = RefLayer> {
    (out_channels, strides).prop_flat_map(move |(out_channels, stride)| {
        (
            proptest::collection::vec(-127i32..=127, out_channels * in_channels * 9),
            proptest::collection::vec(-200_000i32..=200_000, out_channels),
            arb_quant(out_channels, input_zero_point),
        )
            .prop_map(move |(weights, bias, quant)| RefLayer::Conv3x3 {
                in_channels,
                out_channels,
                stride,
                weights,
                bias,
                quant,
            })
    })
}

/// A conv kernel with [`conv3x3`]'s signature.
pub(crate) type ConvFn = fn(&Conv3x3<'_>, &[i8], Shape, &mut [i16], &mut [i8]) -> Shape;

fn kernel_run(layer: &RefLayer, x: &RefTensor) -> Vec<i32> {
    kernel_run_with(layer, x, conv3x3)
}

pub(crate) fn kernel_run_with(layer: &RefLayer, x: &RefTensor, conv: ConvFn) -> Vec<i32> {
    let owned = to_owned(
        layer,
        if matches!(layer, RefLayer::Linear { .. }) {
            x.values.len()
        } else {
            x.channels
        },
    );
    let input: Vec<i8> = x.values.iter().map(|&v| v as i8).collect();
    let shape = Shape {
        height: x.height,
        width: x.width,
        channels: x.channels,
    };
    let mut patch = std::vec![0i16; 9 * x.channels];
    let mut out = std::vec![0i8; x.height * x.width * 64 + 64];
    let out_shape = match owned.layer() {
        seaclr_shared::blob::Layer::Conv3x3(c) => conv(&c, &input, shape, &mut patch, &mut out),
        seaclr_shared::blob::Layer::GlobalAvgPool(p) => {
            global_avg_pool(&p, &input, shape, &mut out)
        }
        seaclr_shared::blob::Layer::Linear(l) => linear(&l, &input, &mut out),
    };
    out[..out_shape.len()].iter().map(|&v| v as i32).collect()
}

#[allow(clippy::too_many_arguments)]
fn conv_case(
    h: usize,
    w: usize,
    cin: usize,
    stride: usize,
    zp: i32,
    wv: i32,
    bias: i32,
    m: i32,
    shift: i32,
) {
    let layer = RefLayer::Conv3x3 {
        in_channels: cin,
        out_channels: 2,
        stride,
        weights: std::vec![wv; 2 * cin * 9],
        bias: std::vec![bias; 2],
        quant: RefQuant {
            input_zero_point: zp,
            output_zero_point: -128,
            activation_min: -128,
            activation_max: 127,
            multipliers: std::vec![m; 2],
            shifts: std::vec![shift; 2],
        },
    };
    let x = RefTensor {
        height: h,
        width: w,
        channels: cin,
        values: (0..h * w * cin)
            .map(|i| (i as i32 * 37) % 256 - 128)
            .collect(),
    };
    assert_eq!(
        kernel_run(&layer, &x),
        reference::run_layer(&layer, &x).values
    );
}

// ---- requantization primitives ----

#[test]
fn requantize_known_values() {
    // 0.5 * 2^31 = 2^30: multiply by one half.
    assert_eq!(multiply_by_quantized_multiplier(10, 1 << 30, 0), 5);
    assert_eq!(multiply_by_quantized_multiplier(3, 1 << 30, 0), 2); // 1.5 -> 2 (half up)
    assert_eq!(multiply_by_quantized_multiplier(-3, 1 << 30, 0), -1); // -1.5 -> -1 (half up)
    assert_eq!(multiply_by_quantized_multiplier(-3, 1 << 30, -1), -1); // -1 / 2 -> away from zero
    assert_eq!(multiply_by_quantized_multiplier(6, 1 << 30, -1), 2); // 3 / 2 = 1.5 -> 2
    assert_eq!(
        multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
        i32::MAX
    ); // the saturating case
    // Saturating left shift (x4 clips at i32::MAX), then x0.5 rounds up to 2^30.
    assert_eq!(
        multiply_by_quantized_multiplier(i32::MAX, 1 << 30, 2),
        1 << 30
    );
    assert_eq!(rounding_divide_by_pot(-5, 1), -3);
    assert_eq!(rounding_divide_by_pot(5, 1), 3);
    assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
}

#[test]
fn isqrt_is_floor_sqrt() {
    for n in (0u32..5000).chain([
        u32::MAX,
        u32::MAX - 1,
        1 << 30,
        65535 * 65535,
        65536 * 65535,
    ]) {
        let r = isqrt(n) as u64;
        assert!(
            r * r <= n as u64 && (r + 1) * (r + 1) > n as u64,
            "isqrt({n}) = {r}"
        );
    }
}

proptest! {
    #[test]
    fn requantize_matches_reference(acc in any::<i32>(), m in any::<i32>(), shift in -31i32..=30) {
        prop_assert_eq!(multiply_by_quantized_multiplier(acc, m, shift), reference::requantize(acc, m, shift));
    }
}

// ---- named regression cases (next to the properties below) ----

#[test]
fn conv_1x1_image_is_all_padding_but_the_centre() {
    conv_case(1, 1, 1, 1, -128, 127, 0, 1 << 30, -6);
}

#[test]
fn conv_stride2_odd_size_keeps_the_last_row() {
    // 5x5 stride 2 -> 3x3: the last output row and column read padding on one side.
    conv_case(5, 5, 3, 2, -128, -127, 1000, 1_500_000_000, -8);
}

#[test]
fn conv_with_input_zero_point_127_and_saturating_output() {
    conv_case(4, 3, 2, 1, 127, 127, 2_000_000, i32::MAX, 0);
}

#[test]
fn conv_rows_longer_than_the_unrolled_dot_steps() {
    // 9 * 16 = 144 = 4 steps of 32 + one of 16; 9 * 21 = 189 adds a scalar tail.
    conv_case(7, 6, 16, 1, -3, 101, -5000, 1_300_000_000, -9);
    conv_case(5, 8, 21, 2, 90, -77, 123_456, 1_900_000_000, -11);
}

#[test]
fn conv_padding_equals_zero_point_so_background_stays_background() {
    // An all-background image (q = zp) yields bias only, everywhere, including borders.
    let zp = -128;
    let layer = RefLayer::Conv3x3 {
        in_channels: 1,
        out_channels: 1,
        stride: 2,
        weights: std::vec![100; 9],
        bias: std::vec![64],
        quant: RefQuant {
            input_zero_point: zp,
            output_zero_point: -128,
            activation_min: -128,
            activation_max: 127,
            multipliers: std::vec![1 << 30],
            shifts: std::vec![0],
        },
    };
    let x = RefTensor {
        height: 6,
        width: 6,
        channels: 1,
        values: std::vec![zp; 36],
    };
    let got = kernel_run(&layer, &x);
    assert_eq!(got, std::vec![-128 + 32; 9]);
    assert_eq!(got, reference::run_layer(&layer, &x).values);
}

#[test]
fn pool_rounds_the_mean_half_up() {
    // Sum of (q - zp) over 4 positions is 6; multiplier 1/4 -> 1.5 -> 2.
    let layer = RefLayer::GlobalAvgPool {
        quant: RefQuant {
            input_zero_point: -1,
            output_zero_point: 0,
            activation_min: -128,
            activation_max: 127,
            multipliers: std::vec![1 << 30],
            shifts: std::vec![-1],
        },
    };
    let x = RefTensor {
        height: 2,
        width: 2,
        channels: 1,
        values: std::vec![0, 0, 1, 1],
    };
    assert_eq!(kernel_run(&layer, &x), std::vec![2]);
    assert_eq!(reference::run_layer(&layer, &x).values, std::vec![2]);
}

#[test]
fn linear_with_extreme_inputs() {
    let layer = RefLayer::Linear {
        out_features: 3,
        weights: std::vec![127, -127, 1, -1, 0, 127, -127, 127, -127, 127, 0, 0],
        bias: std::vec![i32::MAX - 10, i32::MIN + 10, 0],
        quant: RefQuant {
            input_zero_point: -128,
            output_zero_point: 5,
            activation_min: -128,
            activation_max: 127,
            multipliers: std::vec![i32::MAX, 1, 1 << 30],
            shifts: std::vec![-31, 30, -3],
        },
    };
    let x = RefTensor {
        height: 1,
        width: 1,
        channels: 4,
        values: std::vec![127, -128, 127, 0],
    };
    assert_eq!(
        kernel_run(&layer, &x),
        reference::run_layer(&layer, &x).values
    );
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn conv3x3_matches_reference(
        (x, layer) in (1usize..=9, 1usize..=9, 1usize..=6, -128i32..=127).prop_flat_map(|(h, w, c, zp)| {
            (arb_tensor(h, w, c), arb_conv(c, zp))
        })
    ) {
        prop_assert_eq!(kernel_run(&layer, &x), reference::run_layer(&layer, &x).values);
    }

    #[test]
    fn global_avg_pool_matches_reference(
        (x, quant) in (1usize..=12, 1usize..=12, 1usize..=8, -128i32..=127).prop_flat_map(|(h, w, c, zp)| {
            (arb_tensor(h, w, c), arb_quant(1, zp))
        })
    ) {
        let layer = RefLayer::GlobalAvgPool { quant };
        prop_assert_eq!(kernel_run(&layer, &x), reference::run_layer(&layer, &x).values);
    }

    #[test]
    fn linear_matches_reference(
        (x, layer) in (1usize..=40, 1usize..=12, -128i32..=127).prop_flat_map(|(n, out, zp)| {
            (
                arb_tensor(1, 1, n),
                (
                    proptest::collection::vec(-127i32..=127, out * n),
                    proptest::collection::vec(any::<i32>(), out),
                    arb_quant(out, zp),
                ).prop_map(move |(weights, bias, quant)| RefLayer::Linear { out_features: out, weights, bias, quant }),
            )
        })
    ) {
        prop_assert_eq!(kernel_run(&layer, &x), reference::run_layer(&layer, &x).values);
    }
}

// ---- x86-64 SIMD kernel vs the portable one and the reference ----

/// Every kernel this host can run, so the portable fallback (the only one
/// on the microcontroller) stays tested on x86-64 too.
fn conv_kernels() -> Vec<(&'static str, ConvFn)> {
    let mut kernels: Vec<(&'static str, ConvFn)> = std::vec![
        ("dispatch", conv3x3 as ConvFn),
        ("portable", conv3x3_portable as ConvFn),
    ];
    #[cfg(target_arch = "x86_64")]
    kernels.push(("blocked", conv3x3_blocked as ConvFn));
    kernels
}

fn all_kernels_match_reference(layer: &RefLayer, x: &RefTensor) {
    let want = reference::run_layer(layer, x).values;
    for (name, conv) in conv_kernels() {
        assert_eq!(kernel_run_with(layer, x, conv), want, "{name} kernel");
    }
}

/// Random conv case from a seed (xorshift), for fixed shapes.
pub(crate) fn seeded_case(
    (h, w, cin, cout, stride): (usize, usize, usize, usize, usize),
    zp: i32,
    seed: u64,
) -> (RefLayer, RefTensor) {
    let mut rng = seaclr_shared::testing::XorShift64(seed | 1);
    let mut next = move |lo: i32, hi: i32| rng.range(lo.into(), hi.into()) as i32;
    let layer = RefLayer::Conv3x3 {
        in_channels: cin,
        out_channels: cout,
        stride,
        weights: (0..cout * cin * 9).map(|_| next(-127, 127)).collect(),
        bias: (0..cout).map(|_| next(-200_000, 200_000)).collect(),
        quant: RefQuant {
            input_zero_point: zp,
            output_zero_point: next(-128, 127),
            activation_min: -128,
            activation_max: 127,
            multipliers: (0..cout).map(|_| next(1 << 30, i32::MAX)).collect(),
            shifts: (0..cout).map(|_| next(-14, 1)).collect(),
        },
    };
    let x = RefTensor {
        height: h,
        width: w,
        channels: cin,
        values: (0..h * w * cin).map(|_| next(-128, 127)).collect(),
    };
    (layer, x)
}

/// Every input-channel count against every `(h, w, cout, stride)` shape,
/// with seeded random values and zero points cycling through `-128, 0,
/// 127, -3, 5`.
pub(crate) fn for_seeded_cases(
    cins: &[usize],
    shapes: &[(usize, usize, usize, usize)],
    check: impl Fn(&RefLayer, &RefTensor),
) {
    for (i, &cin) in cins.iter().enumerate() {
        for (j, &(h, w, cout, stride)) in shapes.iter().enumerate() {
            let zp = [-128, 0, 127, -3, 5][(i + j) % 5];
            let (layer, x) = seeded_case((h, w, cin, cout, stride), zp, (i * 97 + j) as u64);
            check(&layer, &x);
        }
    }
}

#[test]
fn simd_remainder_paths_match_reference() {
    // cin: below one vector, not a multiple of 8 / 16, exact multiples, and
    // rows of several vectors plus a tail; cout: blocks of 4 plus 1..3
    // single channels; odd and even widths (border pixels unpaired); both
    // strides; 1-pixel-wide images.
    for_seeded_cases(
        &[1, 3, 5, 8, 11, 16, 17, 24, 31, 32, 40],
        &[
            (5, 7, 4, 1),
            (6, 6, 7, 2),
            (4, 5, 9, 2),
            (3, 1, 6, 1),
            (1, 4, 5, 2),
            (7, 3, 8, 1),
        ],
        all_kernels_match_reference,
    );
}

/// A conv with every product at its largest (`|x - zp| = 255`, `|w| =
/// 128`, all of one sign), saturating biases, every multiplier edge (0, 1,
/// 2^31 - 1, and i32::MIN, which only a hand-made layer can hold) and
/// shifts from 30 left to 31 right, cycling over the output channels.
pub(crate) fn extreme_case(
    cin: usize,
    cout: usize,
    (zp, xv, wv): (i32, i32, i32),
) -> (RefLayer, RefTensor) {
    let bias = [i32::MAX - 5, i32::MIN + 5, 0, 1, -1, 7, 1 << 30, -(1 << 30)];
    let m = [
        i32::MAX,
        1 << 30,
        0,
        1,
        i32::MIN,
        1_500_000_000,
        i32::MAX,
        7,
    ];
    let sh = [30, -31, 0, 5, 30, -12, -1, 2];
    let layer = RefLayer::Conv3x3 {
        in_channels: cin,
        out_channels: cout,
        stride: 1,
        weights: std::vec![wv; cout * cin * 9],
        bias: (0..cout).map(|c| bias[c % 8]).collect(),
        quant: RefQuant {
            input_zero_point: zp,
            output_zero_point: 3,
            activation_min: 3,
            activation_max: 127,
            multipliers: (0..cout).map(|c| m[c % 8]).collect(),
            shifts: (0..cout).map(|c| sh[(c + c / 8) % 8]).collect(),
        },
    };
    let x = RefTensor {
        height: 4,
        width: 5,
        channels: cin,
        values: std::vec![xv; 4 * 5 * cin],
    };
    (layer, x)
}

/// Input zero point, input value and weight of the extreme cases.
pub(crate) const EXTREMES: [(i32, i32, i32); 3] =
    [(127, -128, 127), (-128, 127, -127), (127, -128, -128)];

#[test]
fn simd_extreme_values_match_reference() {
    for extreme in EXTREMES {
        let (layer, x) = extreme_case(37, 6, extreme);
        all_kernels_match_reference(&layer, &x);
    }
}

#[cfg(target_arch = "x86_64")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn simd_requantize_matches_scalar(
        d in proptest::array::uniform2(proptest::array::uniform4(any::<i32>())),
        bias in proptest::array::uniform4(any::<i32>()),
        multiplier in proptest::array::uniform4(prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX), Just(0)]),
        shift in proptest::array::uniform4(-31i32..=30),
        (zero_point, a, b) in (-128i32..=127, -128i32..=127, -128i32..=127),
    ) {
        let q = simd::OutQuant { zero_point, min: a.min(b), max: a.max(b) };
        let got = simd::requantize4(d, bias, multiplier, shift, q);
        for p in 0..2 {
            for c in 0..4 {
                let want = multiply_by_quantized_multiplier(bias[c].wrapping_add(d[p][c]), multiplier[c], shift[c])
                    .saturating_add(zero_point)
                    .clamp(q.min, q.max) as i8;
                prop_assert_eq!(got[p][c], want, "p {} c {}", p, c);
            }
        }
        let got1 = simd::requantize4([d[0]], bias, multiplier, shift, q);
        prop_assert_eq!(got1[0], got[0]);
    }

    #[test]
    fn simd_conv_matches_portable_and_reference(
        (x, layer) in (1usize..=7, 1usize..=7, 1usize..=40, -128i32..=127).prop_flat_map(|(h, w, c, zp)| {
            (arb_tensor(h, w, c), arb_conv(c, zp))
        })
    ) {
        let want = reference::run_layer(&layer, &x).values;
        prop_assert_eq!(kernel_run_with(&layer, &x, conv3x3_blocked), want.clone());
        prop_assert_eq!(kernel_run_with(&layer, &x, conv3x3_portable), want);
    }
}

// ---- the AVX2 GEMM kernel (16-channel blocks) vs the reference ----

/// The GEMM kernel alone, with [`conv3x3`]'s signature; fails the test if
/// the kernel declined the layer.
#[cfg(target_arch = "x86_64")]
fn gemm_only(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    _patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let out_shape = conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize);
    assert!(
        conv_avx2::conv3x3(layer, input, shape, out_shape, output),
        "the GEMM kernel declined cin {} cout {} on {shape:?}",
        layer.in_channels,
        layer.out_channels
    );
    out_shape
}

/// Whether this machine can run the GEMM kernel (CI's can); where it
/// cannot, the GEMM tests say so and check the dispatcher only.
#[cfg(target_arch = "x86_64")]
fn gemm_runs_here() -> bool {
    let yes = conv_avx2::available();
    if !yes {
        std::eprintln!("no AVX2 on this CPU: the GEMM kernel is not exercised");
    }
    yes
}

#[cfg(target_arch = "x86_64")]
fn gemm_matches_reference(layer: &RefLayer, x: &RefTensor) {
    let want = reference::run_layer(layer, x).values;
    if gemm_runs_here() {
        assert_eq!(kernel_run_with(layer, x, gemm_only), want, "GEMM kernel");
    }
    assert_eq!(kernel_run_with(layer, x, conv3x3), want, "dispatch");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gemm_regression_shapes_match_reference() {
    // cin: the first layer's 1, even counts below and above one 16-value
    // transpose chunk, and ones leaving a scalar rest of pairs (9 * cin / 2
    // not a multiple of 8); sizes: 1 x 1, single rows and columns, odd and
    // even sides, pixel counts that leave 6-, 4- and 1-pixel tails; cout:
    // one and several 16-channel blocks.
    let shapes = [
        (1, 1, 16, 1),
        (1, 1, 32, 2),
        (1, 9, 16, 1),
        (7, 1, 16, 2),
        (5, 7, 32, 1),
        (6, 6, 16, 2),
        (8, 8, 48, 1),
        (9, 5, 16, 2),
        (4, 4, 32, 1),
    ];
    for_seeded_cases(
        &[1, 2, 4, 6, 10, 16, 18, 32, 34],
        &shapes,
        gemm_matches_reference,
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gemm_extreme_values_match_reference() {
    // The first layer's single input channel and an even count (36 is not
    // a multiple of 16, so it stays in the direct kernel), 16 channels.
    for cin in [1usize, 36] {
        for extreme in EXTREMES {
            let (layer, x) = extreme_case(cin, 16, extreme);
            gemm_matches_reference(&layer, &x);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn gemm_declines_what_it_does_not_cover() {
    // Odd cin above 1 and cout not a multiple of 16 go to the blocked
    // kernel (the dispatcher's results are checked by the tests above).
    for (cin, cout) in [(3usize, 16usize), (16, 8), (16, 20)] {
        let (layer, x) = seeded_case((4, 4, cin, cout, 1), 0, 7);
        let owned = to_owned(&layer, cin);
        let seaclr_shared::blob::Layer::Conv3x3(conv) = owned.layer() else {
            unreachable!()
        };
        let shape = Shape {
            height: 4,
            width: 4,
            channels: cin,
        };
        let input: Vec<i8> = x.values.iter().map(|&v| v as i8).collect();
        let mut out = std::vec![0i8; 16 * cout];
        let out_shape = conv3x3_output_shape(shape, 1, cout);
        assert!(!conv_avx2::conv3x3(
            &conv, &input, shape, out_shape, &mut out
        ));
        assert!(out.iter().all(|&v| v == 0), "declined, so nothing written");
    }
}

#[cfg(target_arch = "x86_64")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn gemm_conv_matches_reference(
        (x, layer) in (1usize..=9, 1usize..=9, prop_oneof![Just(1usize), (1usize..=20).prop_map(|c| 2 * c)], -128i32..=127)
            .prop_flat_map(|(h, w, c, zp)| {
                (arb_tensor(h, w, c), arb_conv_with(c, zp, prop_oneof![Just(16usize), Just(32)], 1usize..=2))
            })
    ) {
        gemm_and_dispatch_match_reference(&layer, &x)?;
    }
}

/// [`gemm_matches_reference`] for proptest: the GEMM kernel alone (where
/// this CPU runs it) and the dispatcher.
#[cfg(target_arch = "x86_64")]
fn gemm_and_dispatch_match_reference(layer: &RefLayer, x: &RefTensor) -> Result<(), TestCaseError> {
    let want = reference::run_layer(layer, x).values;
    if conv_avx2::available() {
        prop_assert_eq!(kernel_run_with(layer, x, gemm_only), want.clone());
    }
    prop_assert_eq!(kernel_run_with(layer, x, conv3x3), want);
    Ok(())
}

// ---- the Winograd F(2x2, 3x3) path (stride 1, even sides, cin % 16 == 0) ----

#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_shapes_match_reference() {
    // The GEMM kernel sends these to Winograd: 2 x 2 (one tile, all
    // padding around), long thin images, tile counts leaving 6-, 4- and
    // 1-tile tails, the widest input the path takes (128), several
    // 16-channel output blocks; 12 x 12 x 128 is too many transformed
    // tiles to keep for the whole layer, so they go block by block.
    let shapes = [
        (12, 12, 16),
        (2, 2, 16),
        (2, 16, 32),
        (10, 2, 16),
        (4, 4, 32),
        (6, 6, 48),
        (8, 8, 16),
        (2, 14, 16),
    ];
    let shapes = shapes.map(|(h, w, cout)| (h, w, cout, 1));
    for_seeded_cases(&[16, 32, 48, 128], &shapes, gemm_matches_reference);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_largest_sums_stay_exact() {
    // Every product at its largest, all of one sign, at the widest input
    // the path takes: |4 * dot| = 4 * 9 * 128 * 32_640, the bound the
    // exactness argument rests on; plus alternating signs, where the
    // transformed values (|B^T d B| up to 1020) are largest.
    for (zp, xv, wv) in [(127, -128, -128), (-128, 127, 127), (127, -128, 127)] {
        for alternate in [false, true] {
            let cin = 128;
            let layer = RefLayer::Conv3x3 {
                in_channels: cin,
                out_channels: 16,
                stride: 1,
                weights: (0..16 * cin * 9)
                    .map(|i| {
                        if alternate && (i / cin) % 2 == 1 {
                            -wv.max(-127)
                        } else {
                            wv
                        }
                    })
                    .collect(),
                bias: (0..16).map(|c| c * 1000 - 8000).collect(),
                quant: RefQuant {
                    input_zero_point: zp,
                    output_zero_point: 0,
                    activation_min: -128,
                    activation_max: 127,
                    multipliers: std::vec![1 << 30; 16],
                    shifts: (0..16).map(|c: i32| -c).collect(),
                },
            };
            let x = RefTensor {
                height: 4,
                width: 6,
                channels: cin,
                values: (0..4 * 6 * cin)
                    .map(|i| {
                        if alternate && (i / cin) % 2 == 1 {
                            zp
                        } else {
                            xv
                        }
                    })
                    .collect(),
            };
            gemm_matches_reference(&layer, &x);
        }
    }
}

#[cfg(target_arch = "x86_64")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn winograd_conv_matches_reference(
        (x, layer) in (1usize..=5, 1usize..=5, 1usize..=3, -128i32..=127)
            .prop_flat_map(|(th, tw, c16, zp)| {
                let c = 16 * c16;
                (arb_tensor(2 * th, 2 * tw, c), arb_conv_with(c, zp, prop_oneof![Just(16usize), Just(32)], Just(1usize)))
            })
    ) {
        gemm_and_dispatch_match_reference(&layer, &x)?;
    }
}
