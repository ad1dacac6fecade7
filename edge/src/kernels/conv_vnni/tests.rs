//! The VNNI kernel, both flavours (AVX-512 VNNI and AVX-VNNI), against the
//! i32 reference: named shapes and extreme values, then properties. A
//! flavour this CPU does not run is skipped with a note on stderr; the
//! dispatcher (which then takes another kernel) is checked against the
//! reference either way.

use super::{Flavour, conv3x3_as};
use crate::kernels::reference::{self, RefLayer, RefQuant, RefTensor};
use crate::kernels::simd::{OutQuant, Requant16};
use crate::kernels::tests::{
    ConvFn, EXTREMES, arb_conv_with, arb_tensor, extreme_case, for_seeded_cases, kernel_run_with,
    seeded_case, to_owned,
};
use crate::kernels::{conv3x3 as dispatch, conv3x3_output_shape, multiply_by_quantized_multiplier};
use proptest::prelude::*;
use seaclr_shared::blob::{Conv3x3, Layer, Shape};
use std::vec::Vec;

/// One flavour of the kernel alone (`WIDE`: AVX-512, else AVX-VNNI), with
/// the dispatcher's signature; fails the test if the kernel declined the
/// layer.
fn flavour_only<const WIDE: bool>(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    _patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let flavour = if WIDE {
        Flavour::Avx512
    } else {
        Flavour::AvxVnni
    };
    let out_shape = conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize);
    assert!(
        conv3x3_as(flavour, layer, input, shape, out_shape, output),
        "the {flavour:?} kernel declined cin {} cout {} stride {} on {shape:?}",
        layer.in_channels,
        layer.out_channels,
        layer.stride
    );
    out_shape
}

/// The flavours this CPU runs, each with its kernel; says which it skips.
fn flavours_here() -> Vec<(Flavour, ConvFn)> {
    let all: [(Flavour, ConvFn); 2] = [
        (Flavour::Avx512, flavour_only::<true>),
        (Flavour::AvxVnni, flavour_only::<false>),
    ];
    all.into_iter()
        .filter(|(flavour, _)| {
            let yes = flavour.available();
            if !yes {
                std::eprintln!("no {flavour:?} on this CPU: that flavour is not exercised");
            }
            yes
        })
        .collect()
}

/// Every flavour this CPU runs, and the dispatcher, against the reference.
fn vnni_matches_reference(layer: &RefLayer, x: &RefTensor) {
    let want = reference::run_layer(layer, x).values;
    for (flavour, kernel) in flavours_here() {
        assert_eq!(kernel_run_with(layer, x, kernel), want, "{flavour:?}");
    }
    assert_eq!(
        kernel_run_with(layer, x, dispatch as ConvFn),
        want,
        "dispatch"
    );
}

#[test]
fn vnni_regression_shapes_match_reference() {
    // cin: the first layer's 1 (one 4-byte group per kernel row, the last
    // reading the slack after the padded input), multiples of 4 below and
    // above one 32-byte transpose chunk and ones leaving single groups
    // (9 * cin / 4 not a multiple of 8), seaclr-s's 16 to 96, and the most
    // the path takes (128). Sizes: 1 x 1, single rows and columns, odd and
    // even sides, pixel counts leaving 12-, 24-, 4- and 1-pixel tails.
    // cout: 16 (one 16-channel vector per pass), 32 and 64 (two), 48 and
    // 96 (two, then one; 96 on one pixel, as the test output holds at most
    // 64 channels per pixel).
    let shapes = [
        (1, 1, 16, 1),
        (1, 1, 32, 2),
        (1, 9, 16, 1),
        (7, 1, 48, 2),
        (5, 7, 32, 1),
        (6, 6, 16, 2),
        (8, 8, 64, 1),
        (9, 5, 48, 2),
        (1, 1, 96, 1),
        (3, 13, 32, 2),
        (7, 9, 16, 1),
    ];
    for_seeded_cases(
        &[1, 4, 8, 12, 16, 20, 32, 36, 64, 96, 128],
        &shapes,
        vnni_matches_reference,
    );
}

/// Input zero point, input value and weight that are extreme for the
/// unsigned form: `a = q + 128` at 255 and 0 against weights of -128 and
/// 127 (the largest `vpdpbusd` intermediate, `4 * 255 * -128`), and the
/// largest bias offsets `(zp + 128) * sum w` (zp 127: 255 times the sum).
const UNSIGNED_EXTREMES: [(i32, i32, i32); 4] = [
    (-128, 127, -128),
    (127, 127, -128),
    (127, -128, 127),
    (-128, -128, -128),
];

#[test]
fn vnni_extreme_values_match_reference() {
    // The shared extreme cases (every product at its largest, |q - zp| =
    // 255, saturating biases, every multiplier and shift edge) and the
    // unsigned form's own, for the first layer, one group, the widest
    // input; 48 output channels take both the two-vector and the
    // one-vector pass.
    for cin in [1usize, 4, 128] {
        for extreme in EXTREMES.into_iter().chain(UNSIGNED_EXTREMES) {
            let (layer, x) = extreme_case(cin, 48, extreme);
            vnni_matches_reference(&layer, &x);
        }
    }
}

#[test]
fn vnni_sums_wrap_like_the_reference() {
    // The widest input, every product at its largest and of one sign,
    // biases a few steps from i32::MAX and i32::MIN: the true `bias + dot`
    // leaves i32 and the kernel's wrapping sums (and its folded bias
    // `bias - (zp + 128) * sum w`) must land where the reference's
    // truncation does; stride 2 as well, so padding taps (a = zp + 128)
    // are in most outputs.
    for (zp, xv, wv) in [(127, -128, -128), (-128, 127, -128), (-128, 127, 127)] {
        for stride in [1usize, 2] {
            let cin = 128;
            let cout = 32;
            let layer = RefLayer::Conv3x3 {
                in_channels: cin,
                out_channels: cout,
                stride,
                weights: std::vec![wv; cout * cin * 9],
                bias: (0..cout as i32)
                    .map(|c| {
                        if c % 2 == 0 {
                            i32::MAX - c
                        } else {
                            i32::MIN + c
                        }
                    })
                    .collect(),
                quant: RefQuant {
                    input_zero_point: zp,
                    output_zero_point: -1,
                    activation_min: -128,
                    activation_max: 127,
                    multipliers: std::vec![1 << 30; cout],
                    shifts: (0..cout as i32).map(|c| -(c % 24)).collect(),
                },
            };
            let x = RefTensor {
                height: 5,
                width: 6,
                channels: cin,
                values: std::vec![xv; 5 * 6 * cin],
            };
            vnni_matches_reference(&layer, &x);
        }
    }
}

#[test]
fn vnni_declines_what_it_does_not_cover() {
    // cin neither 1 nor a multiple of 4, cin above 128, cout not a multiple
    // of 16: left to the other kernels, output untouched.
    for (cin, cout) in [(2usize, 16usize), (6, 16), (132, 16), (16, 8), (16, 20)] {
        let (layer, x) = seeded_case((4, 4, cin, cout, 1), 0, 11);
        let owned = to_owned(&layer, cin);
        let Layer::Conv3x3(conv) = owned.layer() else {
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
        for flavour in [Flavour::Avx512, Flavour::AvxVnni] {
            assert!(!conv3x3_as(
                flavour, &conv, &input, shape, out_shape, &mut out
            ));
        }
        assert!(out.iter().all(|&v| v == 0), "declined, so nothing written");
        // The dispatcher still gets it right through another kernel.
        assert_eq!(
            kernel_run_with(&layer, &x, dispatch as ConvFn),
            reference::run_layer(&layer, &x).values
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn vnni_conv_matches_reference(
        (x, layer) in (
            1usize..=9,
            1usize..=9,
            prop_oneof![Just(1usize), (1usize..=12).prop_map(|c| 4 * c)],
            -128i32..=127,
        )
            .prop_flat_map(|(h, w, c, zp)| {
                (
                    arb_tensor(h, w, c),
                    arb_conv_with(c, zp, prop_oneof![Just(16usize), Just(32), Just(48)], 1usize..=2),
                )
            })
    ) {
        let want = reference::run_layer(&layer, &x).values;
        for (flavour, kernel) in flavours_here() {
            prop_assert_eq!(kernel_run_with(&layer, &x, kernel), want.clone(), "{:?}", flavour);
        }
        prop_assert_eq!(kernel_run_with(&layer, &x, dispatch as ConvFn), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn requant16_matches_scalar(
        d in proptest::array::uniform16(any::<i32>()),
        bias in proptest::array::uniform16(any::<i32>()),
        multiplier in proptest::array::uniform16(prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX), Just(0)]),
        shift in proptest::array::uniform16(prop_oneof![-31i32..=30, Just(0), Just(30), Just(-31)]),
        (zero_point, a, b) in (-128i32..=127, -128i32..=127, -128i32..=127),
    ) {
        if !Flavour::Avx512.available() {
            std::eprintln!("no AVX-512 VNNI on this CPU: Requant16 is not exercised");
            return Ok(());
        }
        let q = OutQuant { zero_point, min: a.min(b), max: a.max(b) };
        // SAFETY: AVX-512 F is part of what `available` detected.
        let got: [i8; 16] = unsafe {
            bytemuck::cast(Requant16::new(bias, multiplier, shift, q).apply(bytemuck::cast(d)))
        };
        for c in 0..16 {
            let want = multiply_by_quantized_multiplier(bias[c].wrapping_add(d[c]), multiplier[c], shift[c])
                .saturating_add(zero_point)
                .clamp(q.min, q.max) as i8;
            prop_assert_eq!(got[c], want, "lane {}", c);
        }
    }
}
