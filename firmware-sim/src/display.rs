//! The host board's screen: the device application draws on any
//! `DrawTarget<Color = Rgb565>` (`seaclr_device::screen`); here the target
//! is [`Framebuffer`], written out as PNG (headless, no SDL).
//!
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
pub use seaclr_device::screen::{HEIGHT, WIDTH};
use std::convert::Infallible;
use std::path::Path;

/// An in-memory RGB565 frame buffer, as a display controller's GRAM.
pub struct Framebuffer {
    width: u32,
    height: u32,
    pixels: Vec<Rgb565>,
}

impl Framebuffer {
    /// A black buffer of the given size.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![Rgb565::BLACK; (width * height) as usize],
        }
    }

    /// The colour at `(x, y)`, or `None` outside the buffer.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb565> {
        (x < self.width && y < self.height).then(|| self.pixels[(y * self.width + x) as usize])
    }

    /// Converts to 8-bit RGB (bit replication, as a panel would show it).
    pub fn to_rgb_image(&self) -> image::RgbImage {
        image::RgbImage::from_fn(self.width, self.height, |x, y| {
            let c = self.pixels[(y * self.width + x) as usize];
            let (r, g, b) = (c.r(), c.g(), c.b());
            image::Rgb([
                (r << 3) | (r >> 2),
                (g << 2) | (g >> 4),
                (b << 3) | (b >> 2),
            ])
        })
    }

    /// Writes the buffer as a PNG file.
    pub fn save_png(&self, path: &Path) -> anyhow::Result<()> {
        self.to_rgb_image()
            .save(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot write PNG: {e}", path.display()))
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.pixels[(p.y as u32 * self.width + p.x as u32) as usize] = c;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seaclr_device::screen::{Screen, draw_screen};

    #[test]
    fn the_device_screen_round_trips_through_png() {
        let thumb: Vec<u8> = (0..64 * 64)
            .map(|i| if i % 64 < 32 { 0 } else { 255 })
            .collect();
        let hist = [("Tripos", 5), ("unk", 2)];
        let screen = Screen {
            frame_number: 12,
            frame_id: "a/b/img.jpg",
            thumbnail: &thumb,
            thumb_side: 64,
            class: Some("Tripos"),
            confidence: 0.8,
            unknown: true,
            histogram: &hist,
            highlight: Some(0),
            fps: 2.0,
            model_id: Some(1),
            labelled: 3,
            threshold: 0.5,
            alert: None,
        };
        let mut fb = Framebuffer::new(WIDTH, HEIGHT);
        draw_screen(&mut fb, &screen).unwrap();
        assert_eq!(fb.pixel(147, 59), Some(Rgb565::RED));
        let p = std::env::temp_dir().join(format!("seaclr-screen-{}.png", std::process::id()));
        fb.save_png(&p).unwrap();
        let png = image::open(&p).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), (WIDTH, HEIGHT));
        assert_eq!(png.get_pixel(147, 59).0, [255, 0, 0]);
        assert_eq!(png.get_pixel(8 + 100, 30).0, [255, 255, 255]);
    }
}
