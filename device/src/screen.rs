//! The buoy's 320x240 RGB565 screen, drawn with embedded-graphics on any
//! `DrawTarget<Color = Rgb565>`: a panel driver on a board, a frame buffer
//! written out as PNG on the host.
//!
//! Screen layout:
//! ```text
//! +------------------------------------------------------+
//! | SeaCLR buoy   frame #123                 (title bar) |
//! | +--------+  Tripos                                    |
//! | |  ROI   |  [#######.....] 0.73                       |
//! | | 128x128|  [UNKNOWN]                                 |
//! | +--------+  frame id                                  |
//! | recent counts                                         |
//! | ▆ ▂ █ ▁ ▃   (one bar per class, + unknown)            |
//! | Act Bac Cil ...                                       |
//! | 3.1 fps | model v3 | 12 labels | thr 0.50  (status)  |
//! +------------------------------------------------------+
//! ```

use core::fmt::Write;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_5X8, FONT_6X10, FONT_9X15};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, PrimitiveStyleBuilder, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// Screen width in pixels.
pub const WIDTH: u32 = 320;
/// Screen height in pixels.
pub const HEIGHT: u32 = 240;
/// Bars in the histogram: every class plus "unknown".
pub const MAX_BARS: usize = seaclr_shared::labels::MAX_CLASSES + 1;

/// Gray u8 to the nearest RGB565 gray.
pub fn gray565(v: u8) -> Rgb565 {
    Rgb565::new(v >> 3, v >> 2, v >> 3)
}

/// Draws a square gray image (`side` x `side`) scaled by an integer factor.
pub fn draw_thumbnail<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    top_left: Point,
    pixels: &[u8],
    side: usize,
    scale: u32,
) -> Result<(), D::Error> {
    if side == 0 || pixels.len() != side * side {
        return Ok(());
    }
    let area = Rectangle::new(
        top_left,
        Size::new(side as u32 * scale, side as u32 * scale),
    );
    let s = scale as usize;
    let colors = (0..side * s)
        .flat_map(|y| (0..side * s).map(move |x| gray565(pixels[(y / s) * side + x / s])));
    target.fill_contiguous(&area, colors)
}

/// A horizontal bar: white outline, green fill for `fraction` (0..1) of the
/// inside, black for the rest.
pub fn draw_confidence_bar<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: Rectangle,
    fraction: f32,
) -> Result<(), D::Error> {
    area.into_styled(PrimitiveStyle::with_stroke(Rgb565::WHITE, 1))
        .draw(target)?;
    let inner = area.offset(-1);
    // Rounded to the nearest pixel (the product is never negative).
    let filled = ((inner.size.width as f32) * fraction.clamp(0.0, 1.0) + 0.5) as u32;
    Rectangle::new(inner.top_left, Size::new(filled, inner.size.height))
        .into_styled(PrimitiveStyle::with_fill(Rgb565::GREEN))
        .draw(target)?;
    Rectangle::new(
        inner.top_left + Point::new(filled as i32, 0),
        Size::new(inner.size.width - filled, inner.size.height),
    )
    .into_styled(PrimitiveStyle::with_fill(Rgb565::BLACK))
    .draw(target)
}

/// Bars for `counts` side by side in `area`, heights relative to the largest
/// (any non-zero count gets at least one pixel). Bar `highlight` is yellow,
/// the others cyan, the background black.
pub fn draw_histogram<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: Rectangle,
    counts: &[u32],
    highlight: Option<usize>,
) -> Result<(), D::Error> {
    area.into_styled(PrimitiveStyle::with_fill(Rgb565::BLACK))
        .draw(target)?;
    if counts.is_empty() {
        return Ok(());
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as u64;
    let bar_w = (area.size.width / counts.len() as u32).max(1);
    let h = area.size.height as u64;
    for (i, &c) in counts.iter().enumerate() {
        let bar_h = ((c as u64 * h).div_ceil(max)) as u32;
        if bar_h == 0 {
            continue;
        }
        let color = if highlight == Some(i) {
            Rgb565::YELLOW
        } else {
            Rgb565::CYAN
        };
        let x = area.top_left.x + (i as u32 * bar_w) as i32;
        let y = area.top_left.y + (area.size.height - bar_h) as i32;
        // Leave a one-pixel gap between wide bars so they read as separate.
        let w = if bar_w > 3 { bar_w - 1 } else { bar_w };
        Rectangle::new(Point::new(x, y), Size::new(w, bar_h))
            .into_styled(PrimitiveStyle::with_fill(color))
            .draw(target)?;
    }
    Ok(())
}

/// The red "UNKNOWN" flag.
pub fn draw_unknown_flag<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    top_left: Point,
) -> Result<(), D::Error> {
    let style = PrimitiveStyleBuilder::new().fill_color(Rgb565::RED).build();
    Rectangle::new(top_left, Size::new(84, 19))
        .into_styled(style)
        .draw(target)?;
    Text::with_baseline(
        "UNKNOWN",
        top_left + Point::new(6, 2),
        MonoTextStyle::new(&FONT_9X15, Rgb565::WHITE),
        Baseline::Top,
    )
    .draw(target)?;
    Ok(())
}

/// Everything one screen shows.
pub struct Screen<'a> {
    /// Frame number since boot.
    pub frame_number: u64,
    /// Frame id (file or ROI).
    pub frame_id: &'a str,
    /// The preprocessed ROI (`thumb_side` squared pixels).
    pub thumbnail: &'a [u8],
    /// Side of the preprocessed ROI.
    pub thumb_side: usize,
    /// Best class, if any labelled examples exist.
    pub class: Option<&'a str>,
    /// Its confidence 0..1.
    pub confidence: f32,
    /// Below the threshold (or no labels): flagged unknown.
    pub unknown: bool,
    /// (short name, count) of recent frames per class; last may be "unk".
    pub histogram: &'a [(&'a str, u32)],
    /// Index in `histogram` of this frame's class.
    pub highlight: Option<usize>,
    /// Frames per second.
    pub fps: f32,
    /// Model id (the blob payload CRC-32), or `None` when no model is usable.
    pub model_id: Option<u32>,
    /// Labelled examples in the store.
    pub labelled: usize,
    /// Unknown threshold.
    pub threshold: f32,
    /// A message in place of the class (e.g. why classification is off).
    pub alert: Option<&'a str>,
}

/// The first `n` characters of `s`.
fn clip(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(end, _)| &s[..end])
}

/// Formats into a fixed buffer (a too-long text is cut, never an error).
fn text<const N: usize>(args: core::fmt::Arguments<'_>) -> heapless::String<N> {
    let mut s = heapless::String::new();
    let _ = s.write_fmt(args);
    s
}

/// Draws the whole screen.
pub fn draw_screen<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    s: &Screen<'_>,
) -> Result<(), D::Error> {
    target.clear(Rgb565::BLACK)?;
    let small = MonoTextStyle::new(&FONT_6X10, Rgb565::WHITE);
    let big = MonoTextStyle::new(&FONT_9X15, Rgb565::WHITE);
    let tiny = MonoTextStyle::new(&FONT_5X8, Rgb565::WHITE);
    // Title bar.
    Rectangle::new(Point::zero(), Size::new(WIDTH, 14))
        .into_styled(PrimitiveStyle::with_fill(Rgb565::BLUE))
        .draw(target)?;
    Text::with_baseline(
        &text::<40>(format_args!("SeaCLR buoy   frame #{}", s.frame_number)),
        Point::new(4, 2),
        small,
        Baseline::Top,
    )
    .draw(target)?;
    // ROI thumbnail, scaled to about 128 px.
    let scale = if s.thumb_side > 0 {
        (128 / s.thumb_side as u32).max(1)
    } else {
        1
    };
    Rectangle::new(
        Point::new(7, 19),
        Size::new(
            s.thumb_side as u32 * scale + 2,
            s.thumb_side as u32 * scale + 2,
        ),
    )
    .into_styled(PrimitiveStyle::with_stroke(Rgb565::WHITE, 1))
    .draw(target)?;
    draw_thumbnail(target, Point::new(8, 20), s.thumbnail, s.thumb_side, scale)?;
    // Right panel: class, confidence, unknown flag, frame id.
    let x = 146;
    if let Some(alert) = s.alert {
        let red = MonoTextStyle::new(&FONT_6X10, Rgb565::RED);
        for (i, line) in alert.as_bytes().chunks(27).take(5).enumerate() {
            let line = core::str::from_utf8(line).unwrap_or("?");
            Text::with_baseline(line, Point::new(x, 22 + 12 * i as i32), red, Baseline::Top)
                .draw(target)?;
        }
    } else {
        let name = s.class.unwrap_or("(no labels yet)");
        Text::with_baseline(clip(name, 18), Point::new(x, 20), big, Baseline::Top).draw(target)?;
        draw_confidence_bar(
            target,
            Rectangle::new(Point::new(x, 40), Size::new(130, 12)),
            s.confidence,
        )?;
        Text::with_baseline(
            &text::<8>(format_args!("{:.2}", s.confidence)),
            Point::new(x + 136, 41),
            small,
            Baseline::Top,
        )
        .draw(target)?;
        if s.unknown {
            draw_unknown_flag(target, Point::new(x, 58))?;
        }
    }
    let id = s.frame_id.rsplit('/').next().unwrap_or(s.frame_id);
    Text::with_baseline(clip(id, 33), Point::new(x, 84), tiny, Baseline::Top).draw(target)?;
    // Histogram of recent counts with short class names under the bars.
    Text::with_baseline("recent counts", Point::new(8, 154), small, Baseline::Top).draw(target)?;
    let mut all = [0u32; MAX_BARS];
    let bars = s.histogram.len().min(MAX_BARS);
    for (slot, (_, c)) in all.iter_mut().zip(s.histogram) {
        *slot = *c;
    }
    let counts = &all[..bars];
    let area = Rectangle::new(Point::new(8, 166), Size::new(304, 44));
    draw_histogram(target, area, counts, s.highlight)?;
    if !counts.is_empty() {
        let bar_w = (304 / counts.len() as u32).max(1);
        let chars = ((bar_w / 5) as usize).clamp(1, 6);
        if bar_w >= 5 {
            for (i, (name, _)) in s.histogram.iter().enumerate() {
                let p = Point::new(8 + (i as u32 * bar_w) as i32, 212);
                Text::with_baseline(clip(name, chars), p, tiny, Baseline::Top).draw(target)?;
            }
        }
    }
    // Status line.
    Rectangle::new(Point::new(0, 226), Size::new(WIDTH, 14))
        .into_styled(PrimitiveStyle::with_fill(Rgb565::new(4, 8, 4)))
        .draw(target)?;
    let model: heapless::String<16> = match s.model_id {
        Some(v) => text(format_args!("model {v:08x}")),
        None => text(format_args!("NO MODEL")),
    };
    let status = text::<64>(format_args!(
        "{:.1} fps | {model} | {} labels | thr {}",
        s.fps,
        s.labelled,
        crate::buoy::Threshold(s.threshold)
    ));
    Text::with_baseline(&status, Point::new(4, 228), small, Baseline::Top).draw(target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::mock_display::MockDisplay;
    use std::{vec, vec::Vec};

    /// A plain frame buffer for whole-screen checks (MockDisplay is 64x64).
    struct Framebuffer {
        pixels: Vec<Rgb565>,
    }

    impl Framebuffer {
        fn new(width: u32, height: u32) -> Self {
            Self {
                pixels: vec![Rgb565::BLACK; (width * height) as usize],
            }
        }
        fn pixel(&self, x: u32, y: u32) -> Option<Rgb565> {
            (x < WIDTH && y < HEIGHT).then(|| self.pixels[(y * WIDTH + x) as usize])
        }
    }

    impl OriginDimensions for Framebuffer {
        fn size(&self) -> Size {
            Size::new(WIDTH, HEIGHT)
        }
    }

    impl DrawTarget for Framebuffer {
        type Color = Rgb565;
        type Error = core::convert::Infallible;
        fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
            &mut self,
            pixels: I,
        ) -> Result<(), Self::Error> {
            for Pixel(p, c) in pixels {
                if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                    && x < WIDTH
                    && y < HEIGHT
                {
                    self.pixels[(y * WIDTH + x) as usize] = c;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn confidence_bar_fills_its_fraction() {
        let mut d = MockDisplay::<Rgb565>::new();
        draw_confidence_bar(&mut d, Rectangle::new(Point::zero(), Size::new(10, 3)), 0.5).unwrap();
        d.assert_pattern(&["WWWWWWWWWW", "WGGGGKKKKW", "WWWWWWWWWW"]);
        let mut full = MockDisplay::<Rgb565>::new();
        draw_confidence_bar(
            &mut full,
            Rectangle::new(Point::zero(), Size::new(6, 3)),
            7.0,
        )
        .unwrap();
        full.assert_pattern(&["WWWWWW", "WGGGGW", "WWWWWW"]);
    }

    #[test]
    fn histogram_bars_are_proportional_and_highlighted() {
        let mut d = MockDisplay::<Rgb565>::new();
        d.set_allow_overdraw(true);
        draw_histogram(
            &mut d,
            Rectangle::new(Point::zero(), Size::new(6, 4)),
            &[1, 2, 4],
            Some(1),
        )
        .unwrap();
        d.assert_pattern(&["KKKKCC", "KKKKCC", "KKYYCC", "CCYYCC"]);
        let mut zero = MockDisplay::<Rgb565>::new();
        zero.set_allow_overdraw(true);
        draw_histogram(
            &mut zero,
            Rectangle::new(Point::zero(), Size::new(4, 2)),
            &[0, 3],
            None,
        )
        .unwrap();
        zero.assert_pattern(&["KKCC", "KKCC"]);
    }

    #[test]
    fn thumbnail_scales_pixels() {
        let mut d = MockDisplay::<Rgb565>::new();
        draw_thumbnail(&mut d, Point::zero(), &[0, 255, 255, 0], 2, 2).unwrap();
        d.assert_pattern(&["KKWW", "KKWW", "WWKK", "WWKK"]);
    }

    fn screen<'a>(
        thumb: &'a [u8],
        hist: &'a [(&'a str, u32)],
        unknown: bool,
        alert: Option<&'a str>,
    ) -> Screen<'a> {
        Screen {
            frame_number: 12,
            frame_id: "a/b/img.jpg",
            thumbnail: thumb,
            thumb_side: 64,
            class: Some("Tripos"),
            confidence: 0.8,
            unknown,
            histogram: hist,
            highlight: Some(0),
            fps: 2.0,
            model_id: Some(1),
            labelled: 3,
            threshold: 0.5,
            alert,
        }
    }

    #[test]
    fn full_screen_shows_thumbnail_flag_and_histogram() {
        let thumb: Vec<u8> = (0..64 * 64)
            .map(|i| if i % 64 < 32 { 0 } else { 255 })
            .collect();
        let hist = [("Tripos", 5), ("unk", 2)];
        let mut fb = Framebuffer::new(WIDTH, HEIGHT);
        draw_screen(&mut fb, &screen(&thumb, &hist, true, None)).unwrap();
        // Thumbnail at (8,20), scale 2: left half black, right half white.
        assert_eq!(fb.pixel(8 + 10, 20 + 10), Some(Rgb565::BLACK));
        assert_eq!(fb.pixel(8 + 100, 20 + 10), Some(Rgb565::WHITE));
        // Unknown flag is red at its corner; first histogram bar highlighted yellow at its base.
        assert_eq!(fb.pixel(147, 59), Some(Rgb565::RED));
        assert_eq!(fb.pixel(9, 209), Some(Rgb565::YELLOW));
        assert_eq!(fb.pixel(160, 209), Some(Rgb565::CYAN));
        // Confidence 0.8 of 128 inner pixels: green at 100, black at 120.
        assert_eq!(fb.pixel(146 + 1 + 100, 45), Some(Rgb565::GREEN));
        assert_eq!(fb.pixel(146 + 1 + 120, 45), Some(Rgb565::BLACK));
        // Without the flag the same spot is not red.
        let mut known = Framebuffer::new(WIDTH, HEIGHT);
        draw_screen(&mut known, &screen(&thumb, &hist, false, None)).unwrap();
        assert_ne!(known.pixel(147, 59), Some(Rgb565::RED));
    }

    #[test]
    fn alert_replaces_the_class_panel() {
        let thumb = vec![255u8; 64 * 64];
        let mut fb = Framebuffer::new(WIDTH, HEIGHT);
        draw_screen(
            &mut fb,
            &screen(
                &thumb,
                &[],
                false,
                Some("MODEL CORRUPT: refusing to classify"),
            ),
        )
        .unwrap();
        let red_pixels = (146..320)
            .flat_map(|x| (20..60).map(move |y| (x, y)))
            .filter(|&(x, y)| fb.pixel(x, y) == Some(Rgb565::RED))
            .count();
        assert!(red_pixels > 50);
        // No confidence bar outline where it would be.
        assert_ne!(fb.pixel(146, 40), Some(Rgb565::WHITE));
    }
}
