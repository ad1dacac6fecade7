//! Image files to gray pixels, with the limits of [`crate::walk`]: the one
//! decoder the host tools and the buoy simulator share (feature `image`).
//!
//! The format is detected from the content (not the extension); the
//! header's size is checked with [`check_image_size`] before the decoder
//! allocates, and the decoder gets the same limits, so a small file with a
//! huge header (a decompression bomb) is refused cheaply. Gray conversion is
//! the `image` crate's `to_luma8` (Rec. 709 weights on the stored values).

use crate::walk::{MAX_DECODE_ALLOC, MAX_IMAGE_SIDE, check_image_size};
use image::{GrayImage, ImageReader, Limits};
use std::format;
use std::io::Cursor;
use std::string::{String, ToString};

/// Decodes an encoded image (JPEG, PNG, TIFF, BMP) to 8-bit gray. The error
/// is a short human-readable reason.
pub fn decode_gray(bytes: &[u8]) -> Result<GrayImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read: {e}"))
    };
    let mut decoder = reader()?;
    if decoder.format().is_none() {
        return Err("not a recognised image format (content is not JPEG/PNG/TIFF/BMP)".into());
    }
    // The header's size first: a 20000 x 20000 image is refused with the
    // shared reason before the decoder allocates anything.
    if let Ok((width, height)) =
        reader().and_then(|r| r.into_dimensions().map_err(|e| e.to_string()))
    {
        check_image_size(width, height).map_err(|e| e.to_string())?;
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    decoder.limits(limits);
    let image = decoder
        .decode()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let gray = image.to_luma8();
    check_image_size(gray.width(), gray.height()).map_err(|e| e.to_string())?;
    Ok(gray)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        GrayImage::from_pixel(width, height, image::Luma([9]))
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn images_decode_and_bad_ones_say_why() {
        assert_eq!(decode_gray(&png(5, 4)).unwrap().dimensions(), (5, 4));
        assert!(decode_gray(&[]).unwrap_err().contains("empty"));
        assert!(decode_gray(b"not an image").unwrap_err().contains("format"));
        assert!(decode_gray(&png(1, 1)).unwrap_err().contains("too small"));
        let mut header = png(2, 2);
        // A PNG header claiming 20000 x 20000 (IHDR width/height at 16..24):
        // refused from the header, before any allocation.
        header[16..20].copy_from_slice(&20000u32.to_be_bytes());
        header[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let crc = crate::blob::crc32(&header[12..29]);
        header[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(decode_gray(&header).unwrap_err().contains("too large"));
    }
}
