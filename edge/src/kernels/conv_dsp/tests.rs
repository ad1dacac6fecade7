//! The DSP kernel, run on the host through the portable model of its
//! instructions, against the i32 reference: the instruction models against
//! hand-worked Arm results, named shapes and extreme values, scratch sizes
//! from one group per chunk to whole patches (and a scratch that does not
//! start on a word), then properties.

use super::ops::{smlad, ssub16, sxtb16, sxtb16_ror8};
use super::{CHANNEL_BLOCK, PIXELS};
use crate::kernels::reference::{self, RefLayer, RefTensor};
use crate::kernels::tests::{
    ConvFn, EXTREMES, arb_conv_with, arb_tensor, extreme_case, for_seeded_cases, seeded_case,
    to_owned,
};
use crate::kernels::{conv3x3_output_shape, conv3x3_portable};
use proptest::prelude::*;
use seaclr_shared::blob::{Conv3x3, Layer, Shape};
use std::vec::Vec;

// ---- the instruction models ----

#[test]
fn sxtb16_takes_bytes_0_and_2_or_1_and_3_sign_extended() {
    assert_eq!(sxtb16(0x80_7f_01_ff), 0x007f_ffff);
    assert_eq!(sxtb16_ror8(0x80_7f_01_ff), 0xff80_0001);
    assert_eq!(sxtb16(0x0000_0080), 0x0000_ff80);
    assert_eq!(sxtb16_ror8(0x1234_5678), 0x0012_0056);
    assert_eq!(sxtb16(0xffff_ffff), 0xffff_ffff);
}

#[test]
fn ssub16_wraps_each_halfword() {
    // (-1 - 127, 127 - (-128)): lane results -128 and 255.
    assert_eq!(ssub16(0x007f_ffff, 0xff80_007f), 0x00ff_ff80);
    // 0x8000 - 1 wraps to 0x7fff in its lane only.
    assert_eq!(ssub16(0x8000_8000, 0x0001_0000), 0x7fff_8000);
}

#[test]
fn smlad_adds_both_products_modulo_2_pow_32() {
    // 3 * -2 + -4 * 5 + 100 = 74.
    assert_eq!(smlad(0xfffc_0003, 0x0005_fffe, 100), 74);
    // (-32768)^2 * 2 = 2^31: wraps (the instruction sets Q and writes this).
    assert_eq!(smlad(0x8000_8000, 0x8000_8000, 0), i32::MIN);
    assert_eq!(smlad(0x8000_8000, 0x8000_8000, i32::MIN), 0);
    assert_eq!(smlad(0x0001_0001, 0x0001_0001, i32::MAX), i32::MIN + 1);
    // The largest conv products: 255 * -128 twice.
    assert_eq!(smlad(0x00ff_00ff, 0xff80_ff80, -1), -65_281);
}

proptest! {
    #[test]
    fn instruction_models_match_their_definitions(x in any::<u32>(), y in any::<u32>(), a in any::<i32>()) {
        let lanes = |v: u32| [v as u16 as i16 as i64, (v >> 16) as u16 as i16 as i64];
        let bytes = x.to_le_bytes().map(|b| b as i8 as i16 as u16 as u32);
        prop_assert_eq!(sxtb16(x), bytes[0] | (bytes[2] << 16));
        prop_assert_eq!(sxtb16_ror8(x), bytes[1] | (bytes[3] << 16));
        let (xs, ys) = (lanes(x), lanes(y));
        let d = ssub16(x, y);
        prop_assert_eq!(lanes(d).map(|v| v as i16), [(xs[0] - ys[0]) as i16, (xs[1] - ys[1]) as i16]);
        let exact = xs[0] * ys[0] + xs[1] * ys[1] + a as i64;
        prop_assert_eq!(smlad(x, y, a) as i64, exact.rem_euclid(1 << 32) - if exact.rem_euclid(1 << 32) >= 1 << 31 { 1 << 32 } else { 0 });
    }
}

// ---- the kernel, with several scratch sizes ----

/// The least scratch the kernel runs with, in `i16` values: the two
/// words of each pixel for one group of 4 patch values, and the slack.
const MIN_SCRATCH: usize = 2 * (2 * PIXELS + PIXELS);

/// Runs the DSP kernel with a scratch of `len` values starting `offset`
/// values into a fresh buffer (1: not on a word boundary); fails the test
/// if the kernel declined.
fn run_with_scratch(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    output: &mut [i8],
    (offset, len): (usize, usize),
) -> Shape {
    let mut scratch = std::vec![0x5a5ai16; offset + len];
    assert!(
        super::conv3x3(layer, input, shape, &mut scratch[offset..], output),
        "the DSP kernel declined cin {} cout {} on {shape:?} with {len} scratch values",
        layer.in_channels,
        layer.out_channels
    );
    conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize)
}

/// Room for the columns of one pass of whole patches (no chunks), as the
/// engine's scratch gives the narrower layers.
fn dsp_whole_patches(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    _patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let k = (9 * shape.channels).div_ceil(4) * 4;
    run_with_scratch(layer, input, shape, output, (0, PIXELS * k + 2 * PIXELS))
}

/// Exactly one group of 4 patch values per chunk (the most chunks), in a
/// scratch that starts off a word boundary.
fn dsp_one_group_chunks(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    _patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    let len = (9 * shape.channels).max(MIN_SCRATCH + 1);
    run_with_scratch(layer, input, shape, output, (1, len))
}

/// The scratch the tests' harness gives every kernel (`9 * cin` values, as
/// for the engine's widest layer): chunks of about a quarter patch. Too
/// small for one group when `cin` is 1; then the portable kernel runs, as
/// the dispatcher would.
fn dsp_patch_scratch(
    layer: &Conv3x3<'_>,
    input: &[i8],
    shape: Shape,
    patch: &mut [i16],
    output: &mut [i8],
) -> Shape {
    if super::conv3x3(layer, input, shape, patch, output) {
        conv3x3_output_shape(shape, layer.stride as usize, layer.out_channels as usize)
    } else {
        assert!(
            patch.len() < MIN_SCRATCH,
            "declined with {} scratch values",
            patch.len()
        );
        conv3x3_portable(layer, input, shape, patch, output)
    }
}

const SCRATCH_VARIANTS: [(&str, ConvFn); 3] = [
    ("whole patches", dsp_whole_patches),
    ("one group per chunk", dsp_one_group_chunks),
    ("9 * cin scratch", dsp_patch_scratch),
];

/// The shared harness's `kernel_run_with` for conv layers, with an output buffer as long as
/// the output (the shared harness's holds 64 channels per pixel).
fn conv_run(layer: &RefLayer, x: &RefTensor, conv: ConvFn) -> Vec<i32> {
    let owned = to_owned(layer, x.channels);
    let Layer::Conv3x3(c) = owned.layer() else {
        panic!("not a conv layer")
    };
    let input: Vec<i8> = x.values.iter().map(|&v| v as i8).collect();
    let shape = Shape {
        height: x.height,
        width: x.width,
        channels: x.channels,
    };
    let out_shape = conv3x3_output_shape(shape, c.stride as usize, c.out_channels as usize);
    let mut patch = std::vec![0i16; 9 * x.channels];
    let mut out = std::vec![0i8; out_shape.len()];
    assert_eq!(conv(&c, &input, shape, &mut patch, &mut out), out_shape);
    out.iter().map(|&v| v as i32).collect()
}

fn dsp_matches_reference(layer: &RefLayer, x: &RefTensor) {
    let want = reference::run_layer(layer, x).values;
    for (name, conv) in SCRATCH_VARIANTS {
        assert_eq!(conv_run(layer, x, conv), want, "DSP kernel, {name}");
    }
}

#[test]
fn dsp_regression_shapes_match_reference() {
    // cin: the first layer's 1, counts leaving 1..3 values of a group
    // (9 * cin % 4 == cin % 4), multiples of 4 and the model's widths; sizes:
    // 1 x 1, single rows and columns, pixel counts leaving 1..3 pixels of a
    // pass, both strides, odd and even sides; cout: one channel, several,
    // more than one stack block of sums.
    let shapes = [
        (1, 1, 1, 1),
        (1, 5, 3, 2),
        (7, 1, 2, 1),
        (5, 7, 5, 1),
        (6, 6, 4, 2),
        (3, 3, 9, 1),
        (4, 6, CHANNEL_BLOCK + 3, 2),
        (2, 3, 2 * CHANNEL_BLOCK + 1, 2),
    ];
    for_seeded_cases(
        &[1, 2, 3, 4, 5, 7, 8, 16, 17, 32, 33, 64],
        &shapes,
        dsp_matches_reference,
    );
}

#[test]
fn dsp_model_shapes_match_reference() {
    // The committed model's layers (first layer 64 x 64 x 1 stride 2, then
    // 16 -> 16 s1, 16 -> 32 s2, ..., 96 -> 128 s1), at their real sizes.
    let layers = [
        (64, 64, 1, 16, 2),
        (32, 32, 16, 16, 1),
        (32, 32, 16, 32, 2),
        (16, 16, 32, 32, 1),
        (16, 16, 32, 64, 2),
        (8, 8, 64, 64, 1),
        (8, 8, 64, 96, 2),
        (4, 4, 96, 128, 1),
    ];
    for (i, &(h, w, cin, cout, stride)) in layers.iter().enumerate() {
        let (layer, x) = seeded_case(
            (h, w, cin, cout, stride),
            [-128, 0, 127, -3][i % 4],
            i as u64,
        );
        dsp_matches_reference(&layer, &x);
    }
}

#[test]
fn dsp_extreme_values_match_reference() {
    // Largest products of one sign (|q - zp| = 255, w = 127, -127, -128),
    // saturating biases, every multiplier and shift edge, cycling over the
    // channels; the first layer's single channel, a partial last group, a
    // multiple of 4 and a patch longer than a stack block of channels.
    for cin in [1usize, 3, 16, 37, 96] {
        for extreme in EXTREMES {
            let (layer, x) = extreme_case(cin, CHANNEL_BLOCK + 3, extreme);
            dsp_matches_reference(&layer, &x);
        }
    }
}

#[test]
fn dsp_declines_what_it_cannot_hold() {
    let (layer, x) = seeded_case((4, 4, 3, 5, 1), 0, 11);
    let owned = to_owned(&layer, 3);
    let Layer::Conv3x3(conv) = owned.layer() else {
        unreachable!()
    };
    let shape = Shape {
        height: 4,
        width: 4,
        channels: 3,
    };
    let input: Vec<i8> = x.values.iter().map(|&v| v as i8).collect();
    let mut out = std::vec![0i8; 16 * 5];
    // Scratch below one group of columns, or below the patch length the
    // contract asks for; an input or output shorter than the shapes.
    assert!(!super::conv3x3(
        &conv,
        &input,
        shape,
        &mut [0; MIN_SCRATCH - 1],
        &mut out
    ));
    assert!(!super::conv3x3(
        &conv,
        &input,
        shape,
        &mut [0; 26],
        &mut out
    ));
    assert!(!super::conv3x3(
        &conv,
        &input[1..],
        shape,
        &mut [0; 64],
        &mut out
    ));
    assert!(!super::conv3x3(
        &conv,
        &input,
        shape,
        &mut [0; 64],
        &mut out[1..]
    ));
    assert!(out.iter().all(|&v| v == 0), "declined, so nothing written");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn dsp_conv_matches_reference(
        (x, layer) in (1usize..=9, 1usize..=9, 1usize..=40, -128i32..=127).prop_flat_map(|(h, w, c, zp)| {
            (arb_tensor(h, w, c), arb_conv_with(c, zp, 1usize..=12, 1usize..=2))
        })
    ) {
        let want = reference::run_layer(&layer, &x).values;
        for (name, conv) in SCRATCH_VARIANTS {
            prop_assert_eq!(conv_run(&layer, &x, conv), want.clone(), "{}", name);
        }
    }
}
