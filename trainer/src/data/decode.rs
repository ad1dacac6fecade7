//! Host side of preprocessing: decode any supported image file to one gray
//! channel, then call the SAME no_std [`preprocess_gray`] the device runs.
//!
//! Gray conversion is the `image` crate's `to_luma8`: for colour images
//! `Y = 0.2126 R + 0.7152 G + 0.0722 B` in the crate's fixed-point
//! arithmetic (Rec. 709 weights applied to the stored sRGB values, no
//! linearisation); alpha is ignored;
//! gray images pass through unchanged; 16-bit samples are scaled to 8 bits.
//!
//! Decoding is guarded: the format is detected from the file content (not the
//! extension), images larger than [`MAX_IMAGE_SIDE`] in either direction,
//! above [`MAX_IMAGE_PIXELS`] or needing more than [`MAX_DECODE_ALLOC`]
//! bytes are refused before the decoder allocates (decompression bombs), and
//! images smaller than [`MIN_IMAGE_SIDE`] are refused as carrying no shape.
//! The limits are [`seaclr_shared::walk`]'s, shared with the buoy.

use image::GrayImage;
use seaclr_shared::preprocess::{OriginalSize, preprocess_gray};

pub use seaclr_shared::walk::{
    MAX_DECODE_ALLOC, MAX_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE,
};

/// Decodes an encoded image (any enabled format: JPEG, PNG, TIFF, BMP) to an
/// 8-bit gray image, with the shared limits: the decoder the buoy simulator
/// uses too ([`seaclr_shared::decode::decode_gray`]). The error is a short
/// human-readable reason.
pub fn decode_luma(bytes: &[u8]) -> Result<GrayImage, String> {
    seaclr_shared::decode::decode_gray(bytes)
}

/// Checks the size rules that apply to every source (files and IFCB ROIs,
/// on the host and the buoy): [`seaclr_shared::walk::check_image_size`].
pub fn check_dimensions(width: u32, height: u32) -> Result<(), String> {
    seaclr_shared::walk::check_image_size(width, height).map_err(|e| e.to_string())
}

/// Preprocesses a decoded gray image to `size x size` with the shared
/// no_std function.
pub fn preprocess_luma(gray: &GrayImage, size: usize) -> Result<(Vec<u8>, OriginalSize), String> {
    preprocess_raw(gray.as_raw(), gray.width(), gray.height(), size)
}

/// Preprocesses a raw gray buffer (e.g. an IFCB ROI) to `size x size`.
pub fn preprocess_raw(
    pixels: &[u8],
    width: u32,
    height: u32,
    size: usize,
) -> Result<(Vec<u8>, OriginalSize), String> {
    check_dimensions(width, height)?;
    let mut out = vec![0u8; size * size];
    let original = preprocess_gray(pixels, width as usize, height as usize, size, &mut out)
        .map_err(|e| format!("cannot preprocess: {e}"))?;
    Ok((out, original))
}

/// Decodes and preprocesses an encoded image file's bytes.
pub fn preprocess_encoded(bytes: &[u8], size: usize) -> Result<(Vec<u8>, OriginalSize), String> {
    let gray = decode_luma(bytes)?;
    preprocess_luma(&gray, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    #[test]
    fn png_roundtrip_gray_is_exact() {
        let gray = GrayImage::from_fn(7, 5, |x, y| image::Luma([(x * 30 + y) as u8]));
        let bytes = encode(
            &image::DynamicImage::ImageLuma8(gray.clone()),
            image::ImageFormat::Png,
        );
        assert_eq!(decode_luma(&bytes).unwrap(), gray);
    }

    #[test]
    fn rgb_uses_rec709_luma() {
        let rgb = image::RgbImage::from_pixel(3, 3, image::Rgb([200, 100, 50]));
        let bytes = encode(
            &image::DynamicImage::ImageRgb8(rgb),
            image::ImageFormat::Png,
        );
        // 0.2126 R + 0.7152 G + 0.0722 B = 117.65; the crate's fixed-point
        // path may round either way.
        let got = decode_luma(&bytes).unwrap();
        assert!(
            got.pixels().all(|p| p.0[0] == 117 || p.0[0] == 118),
            "{:?}",
            got.get_pixel(0, 0)
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(decode_luma(&[]).unwrap_err().contains("empty"));
        assert!(
            decode_luma(b"hello, I am text")
                .unwrap_err()
                .contains("not a recognised")
        );
        assert!(check_dimensions(1, 1).is_err());
        assert!(check_dimensions(20000, 20000).is_err());
        assert!(check_dimensions(2, 2).is_ok());
    }
}
