//! What the encoder sees: one gray image, padded to a white square and
//! resampled to `size x size`.
//!
//! The host (trainer) and the device (edge) both call [`preprocess_gray`], so
//! a model sees byte-identical inputs wherever it runs. The algorithm uses
//! integer arithmetic only (no floats, no heap), so its output does not
//! depend on the FPU, the compiler or the target.
//!
//! # Algorithm ([`PREPROCESS_ID`] = 1)
//! 1. Pad the `width x height` gray image to a square of side
//!    `side = max(width, height)` with white (255), centred. When the
//!    difference is odd the extra white column (row) goes right (bottom):
//!    the image starts at `((side - width) / 2, (side - height) / 2)`.
//!    Padding keeps the aspect ratio, so the object's size stays visible.
//! 2. Resample the square to `size x size` by exact area averaging. All
//!    coordinates are scaled by `size` (source pixel `i` spans
//!    `[i * size, (i + 1) * size)`) and by `side` (output pixel `o` spans
//!    `[o * side, (o + 1) * side)`), so every output pixel is the weighted
//!    mean of exactly its footprint with integer weights summing to
//!    `side * side`. Sums are `u64`; the mean is rounded half up.
//!
//! The same rule downsamples (box filter) and upsamples (nearest, with
//! exact averaging where an output pixel straddles two source pixels).

/// The default output side in pixels (64 x 64).
pub const DEFAULT_SIZE: usize = 64;

/// Identifies this preprocessing algorithm (stored in the model blob header),
/// so a device refuses a model trained on different inputs.
///
/// 1 = gray, centred white padding to a square, exact integer area average,
/// round half up.
pub const PREPROCESS_ID: u16 = 1;

/// Largest accepted input width, height or output size. Keeps every
/// intermediate sum far inside `u64` (`255 * side^2 < 2^49`) and rejects
/// nonsense dimensions before any work is done.
pub const MAX_SIDE: usize = 1 << 20;

/// White: the value used to pad (plankton images are dark on white).
pub const WHITE: u8 = 255;

/// The image's size before preprocessing: later stages may use it (object
/// size matters to taxonomists, and resampling hides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OriginalSize {
    /// Width of the source image in pixels.
    pub width: u32,
    /// Height of the source image in pixels.
    pub height: u32,
}

/// Why an image could not be preprocessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreprocessError {
    /// The source image has no pixels (width or height is 0).
    EmptyImage {
        /// Source width.
        width: usize,
        /// Source height.
        height: usize,
    },
    /// The requested output size is 0.
    ZeroOutputSize,
    /// Width, height or output size is larger than [`MAX_SIDE`].
    TooLarge {
        /// The offending dimension.
        dimension: usize,
    },
    /// `src.len()` is not `width * height`.
    SourceLength {
        /// `width * height`.
        expected: usize,
        /// `src.len()`.
        actual: usize,
    },
    /// `out.len()` is not `size * size`.
    OutputLength {
        /// `size * size`.
        expected: usize,
        /// `out.len()`.
        actual: usize,
    },
}

impl core::fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::EmptyImage { width, height } => {
                write!(f, "empty image ({width}x{height})")
            }
            Self::ZeroOutputSize => write!(f, "output size is 0"),
            Self::TooLarge { dimension } => {
                write!(f, "dimension {dimension} exceeds the maximum {MAX_SIDE}")
            }
            Self::SourceLength { expected, actual } => write!(
                f,
                "source buffer has {actual} bytes, width*height is {expected}"
            ),
            Self::OutputLength { expected, actual } => write!(
                f,
                "output buffer has {actual} bytes, size*size is {expected}"
            ),
        }
    }
}

impl core::error::Error for PreprocessError {}

/// Preprocesses a `width x height` gray image (row-major, one byte per
/// pixel) into `out` (`size x size`, row-major): centred white padding to a
/// square, then exact integer area resampling (see the module docs).
///
/// Returns the original size on success. Never panics; every bad argument
/// is a [`PreprocessError`].
pub fn preprocess_gray(
    src: &[u8],
    width: usize,
    height: usize,
    size: usize,
    out: &mut [u8],
) -> Result<OriginalSize, PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    if size == 0 {
        return Err(PreprocessError::ZeroOutputSize);
    }
    for dimension in [width, height, size] {
        if dimension > MAX_SIDE {
            return Err(PreprocessError::TooLarge { dimension });
        }
    }
    // Checked: on a 32-bit target width * height can overflow usize.
    let expected_src = width.checked_mul(height).ok_or(PreprocessError::TooLarge {
        dimension: width.max(height),
    })?;
    if src.len() != expected_src {
        return Err(PreprocessError::SourceLength {
            expected: expected_src,
            actual: src.len(),
        });
    }
    let expected_out = size
        .checked_mul(size)
        .ok_or(PreprocessError::TooLarge { dimension: size })?;
    if out.len() != expected_out {
        return Err(PreprocessError::OutputLength {
            expected: expected_out,
            actual: out.len(),
        });
    }

    let side = width.max(height) as u64;
    let n = size as u64;
    let left = (side - width as u64) / 2;
    let top = (side - height as u64) / 2;
    let (w, h) = (width as u64, height as u64);
    let total_weight = side * side;

    for oy in 0..n {
        let (y_first, y_end) = footprint(oy, side, n);
        for ox in 0..n {
            let (x_first, x_end) = footprint(ox, side, n);
            let mut acc: u64 = 0;
            for y in y_first..y_end {
                let wy = overlap(oy, y, side, n);
                let row_sum = if y < top || y >= top + h {
                    // Whole padded row: the x weights sum to the x footprint.
                    u64::from(WHITE) * span_weight(ox, x_first, x_end, side, n)
                } else {
                    let row_start = ((y - top) * w) as usize;
                    let mut s: u64 = 0;
                    for x in x_first..x_end {
                        let wx = overlap(ox, x, side, n);
                        let p = if x < left || x >= left + w {
                            WHITE
                        } else {
                            src[row_start + (x - left) as usize]
                        };
                        s += wx * u64::from(p);
                    }
                    s
                };
                acc += wy * row_sum;
            }
            // Round half up: floor(acc / total + 1/2).
            let value = (2 * acc + total_weight) / (2 * total_weight);
            out[(oy * n + ox) as usize] = value as u8;
        }
    }

    Ok(OriginalSize {
        width: width as u32,
        height: height as u32,
    })
}

/// Source pixel range `[first, end)` that output pixel `o` overlaps, along
/// one axis of a square of side `side` resampled to `n`.
fn footprint(o: u64, side: u64, n: u64) -> (u64, u64) {
    let first = (o * side) / n;
    let end = ((o + 1) * side).div_ceil(n);
    (first, end.min(side))
}

/// Overlap, in units scaled by `side * n`, of output pixel `o`
/// (`[o*side, (o+1)*side)`) and source pixel `i` (`[i*n, (i+1)*n)`).
fn overlap(o: u64, i: u64, side: u64, n: u64) -> u64 {
    let lo = (o * side).max(i * n);
    let hi = ((o + 1) * side).min((i + 1) * n);
    hi.saturating_sub(lo)
}

/// Sum of [`overlap`] over source pixels `first..end` (equals `side` when the
/// range is the whole footprint; computed, not assumed).
fn span_weight(o: u64, first: u64, end: u64, side: u64, n: u64) -> u64 {
    (first..end).map(|i| overlap(o, i, side, n)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn run(src: &[u8], w: usize, h: usize, size: usize) -> Vec<u8> {
        let mut out = vec![0u8; size * size];
        preprocess_gray(src, w, h, size, &mut out).unwrap();
        out
    }

    #[test]
    fn two_by_one_pads_below_and_keeps_columns() {
        // 2x1 -> side 2, image on row 0 (top = 0, extra white row below).
        assert_eq!(run(&[10, 20], 2, 1, 2), vec![10, 20, 255, 255]);
        // Down to 1x1: (10 + 20 + 255 + 255) / 4 = 135.
        assert_eq!(run(&[10, 20], 2, 1, 1), vec![135]);
    }

    #[test]
    fn one_by_two_pads_right() {
        assert_eq!(run(&[10, 20], 1, 2, 2), vec![10, 255, 20, 255]);
    }

    #[test]
    fn one_by_three_is_centred() {
        // side 3, left = 1: white | pixel | white.
        assert_eq!(
            run(&[0, 0, 0], 1, 3, 3),
            vec![255, 0, 255, 255, 0, 255, 255, 0, 255]
        );
    }

    #[test]
    fn identity_when_square_at_size() {
        let src: Vec<u8> = (0..16).map(|v| (v * 17) as u8).collect();
        assert_eq!(run(&src, 4, 4, 4), src);
    }

    #[test]
    fn upscaling_replicates_pixels() {
        // 2x2 -> 4x4: each source pixel becomes a 2x2 block.
        let out = run(&[0, 100, 200, 50], 2, 2, 4);
        assert_eq!(
            out,
            vec![
                0, 0, 100, 100, //
                0, 0, 100, 100, //
                200, 200, 50, 50, //
                200, 200, 50, 50,
            ]
        );
    }

    #[test]
    fn upscaling_non_integer_factor_averages_straddling_pixels() {
        // 2x2 -> 3x3: the middle output column straddles both source
        // columns half and half. Row 0: 0, (0+100)/2 = 50, 100.
        let out = run(&[0, 100, 0, 100], 2, 2, 3);
        assert_eq!(out, vec![0, 50, 100, 0, 50, 100, 0, 50, 100]);
    }

    #[test]
    fn downscaling_non_integer_factor_uses_exact_weights() {
        // 3x3 row 0 = [0, 90, 180] -> 2x2. Scaled by n=2: source pixels
        // span [0,2),[2,4),[4,6); output pixels span [0,3),[3,6).
        // Left output: (2*0 + 1*90) / 3 = 30; right: (1*90 + 2*180)/3 = 150.
        let src = [0, 90, 180, 0, 90, 180, 0, 90, 180];
        assert_eq!(run(&src, 3, 3, 2), vec![30, 150, 30, 150]);
    }

    #[test]
    fn rounds_half_up() {
        // (0 + 1) / 2 = 0.5 -> 1; (2 + 3) / 2 = 2.5 -> 3.
        assert_eq!(run(&[0, 1, 0, 1], 2, 2, 1), vec![1]);
        assert_eq!(run(&[2, 3, 2, 3], 2, 2, 1), vec![3]);
        // 254.5 -> 255 (never overflows).
        assert_eq!(run(&[254, 255, 254, 255], 2, 2, 1), vec![255]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut out = [0u8; 4];
        assert_eq!(
            preprocess_gray(&[], 0, 3, 2, &mut out),
            Err(PreprocessError::EmptyImage {
                width: 0,
                height: 3
            })
        );
        assert_eq!(
            preprocess_gray(&[1], 1, 1, 0, &mut []),
            Err(PreprocessError::ZeroOutputSize)
        );
        assert_eq!(
            preprocess_gray(&[1, 2, 3], 2, 2, 2, &mut out),
            Err(PreprocessError::SourceLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            preprocess_gray(&[1], 1, 1, 3, &mut out),
            Err(PreprocessError::OutputLength {
                expected: 9,
                actual: 4
            })
        );
        assert_eq!(
            preprocess_gray(&[1], MAX_SIDE + 1, 1, 2, &mut out),
            Err(PreprocessError::TooLarge {
                dimension: MAX_SIDE + 1
            })
        );
    }

    #[test]
    fn reports_original_size() {
        let mut out = [0u8; 64];
        let size = preprocess_gray(&[7; 15], 5, 3, 8, &mut out).unwrap();
        assert_eq!(
            size,
            OriginalSize {
                width: 5,
                height: 3
            }
        );
    }

    /// Exact rational reference: the mean over the footprint computed in
    /// the padded image upsampled by `n` (each source pixel an n x n block,
    /// each output pixel a side x side block). Only for tiny images.
    fn reference(src: &[u8], w: usize, h: usize, n: usize) -> Vec<u8> {
        let side = w.max(h);
        let (left, top) = ((side - w) / 2, (side - h) / 2);
        let pixel = |x: usize, y: usize| -> u64 {
            if x < left || x >= left + w || y < top || y >= top + h {
                255
            } else {
                u64::from(src[(y - top) * w + (x - left)])
            }
        };
        let mut out = vec![0u8; n * n];
        for oy in 0..n {
            for ox in 0..n {
                let mut acc = 0u64;
                for sy in oy * side..(oy + 1) * side {
                    for sx in ox * side..(ox + 1) * side {
                        acc += pixel(sx / n, sy / n);
                    }
                }
                let t = (side * side) as u64;
                out[oy * n + ox] = ((2 * acc + t) / (2 * t)) as u8;
            }
        }
        out
    }

    fn image_strategy(max: usize) -> impl Strategy<Value = (usize, usize, Vec<u8>)> {
        (1..=max, 1..=max).prop_flat_map(|(w, h)| {
            (
                Just(w),
                Just(h),
                proptest::collection::vec(any::<u8>(), w * h),
            )
        })
    }

    proptest! {
        #[test]
        fn matches_brute_force_reference((w, h, src) in image_strategy(9), n in 1usize..12) {
            prop_assert_eq!(run(&src, w, h, n), reference(&src, w, h, n));
        }

        #[test]
        fn never_panics_on_any_arguments(
            src in proptest::collection::vec(any::<u8>(), 0..300),
            w in 0usize..40, h in 0usize..40, n in 0usize..40, out_len in 0usize..1700,
        ) {
            let mut out = vec![0u8; out_len];
            let _ = preprocess_gray(&src, w, h, n, &mut out);
        }

        #[test]
        fn constant_input_gives_constant_output(
            w in 1usize..60, h in 1usize..60, n in 1usize..40, v in any::<u8>(),
        ) {
            // Square input: no padding, so every output pixel is exactly v.
            let side = w.max(h);
            let src = vec![v; side * side];
            prop_assert!(run(&src, side, side, n).iter().all(|&p| p == v));
            // White input with padding stays white.
            let white = vec![255u8; w * h];
            prop_assert!(run(&white, w, h, n).iter().all(|&p| p == 255));
        }

        #[test]
        fn padding_is_white(w in 1usize..40, h in 1usize..40) {
            // Black image, output at the padded side: pixels outside the
            // centred rectangle are exactly white, inside exactly black.
            let side = w.max(h);
            let out = run(&vec![0u8; w * h], w, h, side);
            let (left, top) = ((side - w) / 2, (side - h) / 2);
            for y in 0..side {
                for x in 0..side {
                    let inside = x >= left && x < left + w && y >= top && y < top + h;
                    prop_assert_eq!(out[y * side + x], if inside { 0 } else { 255 });
                }
            }
        }
    }
}
