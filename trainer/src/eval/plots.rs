//! Charts for the report. Line charts are drawn with plotters' SVG backend,
//! which measures text with the DejaVu Sans font embedded in the binary
//! (`trainer/assets/`, Bitstream Vera licence beside it), so no system font
//! is needed. Heatmaps and maps are written as SVG here, with `<title>`
//! elements the browser shows on hover (full class names, values).

use std::fmt::Write as _;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core).
pub static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font as plotters' "sans-serif".
pub fn ensure_font() -> anyhow::Result<()> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the embedded chart font did not load".to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// `k` distinct colours as `#rrggbb`: tab20 for up to 20 classes, beyond
/// that hues a golden angle apart at three lightness levels.
pub fn class_colours(k: usize) -> Vec<String> {
    (0..k)
        .map(|i| {
            if k <= 20 {
                let RGBColor(r, g, b) = palette(i);
                format!("#{r:02x}{g:02x}{b:02x}")
            } else {
                let h = (i as f64 * 137.507_764) % 360.0;
                let l = [45.0, 62.0, 32.0][i % 3];
                let s = [70.0, 85.0, 60.0][(i / 3) % 3];
                let (r, g, b) = hsl(h, s / 100.0, l / 100.0);
                format!("#{r:02x}{g:02x}{b:02x}")
            }
        })
        .collect()
}

fn hsl(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let q = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (q(r), q(g), q(b))
}

/// Viridis at `t` in [0, 1] (piecewise linear between 9 stops).
pub fn viridis(t: f64) -> String {
    const S: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (S.len() - 1) as f64;
    let i = (x.floor() as usize).min(S.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (S[i], S[i + 1]);
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// XML-escapes text for SVG.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal colour bar from `lo` to `hi` (viridis) with a label.
pub fn colour_bar(label: &str, lo: f64, hi: f64) -> String {
    let (w, bar) = (360.0, 300.0);
    let mut s = format!(
        "<svg class=\"colourbar\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"46\" viewBox=\"0 0 {w} 46\" font-family=\"sans-serif\" font-size=\"11\"><text x=\"0\" y=\"11\">{}</text>",
        xml(label)
    );
    let steps = 60;
    for i in 0..steps {
        let t = i as f64 / (steps - 1) as f64;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"15\" width=\"{:.1}\" height=\"12\" fill=\"{}\"/>",
            10.0 + i as f64 * bar / steps as f64,
            bar / steps as f64 + 0.5,
            viridis(t)
        );
    }
    for i in 0..=4 {
        let t = i as f64 / 4.0;
        let x = 10.0 + t * bar;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"27\" y2=\"31\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"42\" text-anchor=\"middle\">{}</text>",
            tick_text(lo + t * (hi - lo))
        );
    }
    s.push_str("</svg>");
    s
}

fn tick_text(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Matrices with more classes than this draw their cells as one PNG
/// (no per-cell hover; `metrics.json` has every value).
pub const RASTER_ABOVE: usize = 40;

/// Text of one matrix cell, and its hover title, from (row class, column class, value).
pub type CellText<'a> = &'a dyn Fn(usize, usize, f64) -> String;

/// A square class-by-class matrix as SVG: rows and columns in `order`, one
/// shared colour scale `lo..hi` (viridis; pair it with [`colour_bar`]),
/// full class names on both axes (never cut), and per cell a `<title>`
/// with both names and the value. Cells large enough to read get
/// `cell_text`.
pub fn matrix_svg(
    title: &str,
    classes: &[String],
    values: &[Vec<f64>],
    order: &[usize],
    (lo, hi): (f64, f64),
    cell_text: CellText<'_>,
    hover: CellText<'_>,
) -> String {
    let k = order.len();
    let cell = (620.0 / k.max(1) as f64).clamp(9.0, 40.0);
    let font = (cell * 0.75).clamp(7.0, 12.0);
    let longest = order
        .iter()
        .map(|&c| classes[c].chars().count())
        .max()
        .unwrap_or(1) as f64;
    let label = (longest * font * 0.6 + 8.0).ceil();
    let top = 24.0 + label;
    let (w, h) = (label + cell * k as f64 + 10.0, top + cell * k as f64 + 6.0);
    let mut s = format!(
        "<svg class=\"matrix\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"{font:.1}\"><text x=\"4\" y=\"15\" font-size=\"14\">{}</text>",
        xml(title)
    );
    let span = (hi - lo).max(1e-12);
    // Large matrices: the cells as one pixel-per-cell PNG scaled up (a few
    // kB instead of a megabyte of rectangles); names keep their titles.
    let raster = k > RASTER_ABOVE;
    if raster {
        let mut img = image::RgbImage::new(k as u32, k as u32);
        for (r, &a) in order.iter().enumerate() {
            for (c, &b) in order.iter().enumerate() {
                let hex = viridis((values[a][b] - lo) / span);
                let ch = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
                img.put_pixel(c as u32, r as u32, image::Rgb([ch(1), ch(3), ch(5)]));
            }
        }
        let mut png = Vec::new();
        if img
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .is_ok()
        {
            use base64::Engine as _;
            let _ = write!(
                s,
                "<image x=\"{label:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>",
                cell * k as f64,
                cell * k as f64,
                base64::engine::general_purpose::STANDARD.encode(&png)
            );
        }
    }
    for (r, &a) in order.iter().enumerate() {
        let y = top + r as f64 * cell;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label - 4.0,
            y + cell / 2.0 + font * 0.35,
            xml(&classes[a]),
            xml(&classes[a])
        );
        for (c, &b) in order.iter().enumerate() {
            if raster {
                break;
            }
            let v = values[a][b];
            let t = (v - lo) / span;
            let x = label + c as f64 * cell;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell:.1}\" height=\"{cell:.1}\" fill=\"{}\"><title>{}</title></rect>",
                viridis(t),
                xml(&hover(a, b, v))
            );
            if cell >= 26.0 {
                let text = cell_text(a, b, v);
                if !text.is_empty() {
                    let colour = if t > 0.6 { "#000" } else { "#fff" };
                    let _ = write!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{colour}\" pointer-events=\"none\">{}</text>",
                        x + cell / 2.0,
                        y + cell / 2.0 + font * 0.35,
                        xml(&text)
                    );
                }
            }
        }
    }
    for (c, &b) in order.iter().enumerate() {
        let x = label + c as f64 * cell + cell / 2.0 + font * 0.35;
        let y = top - 4.0;
        let _ = write!(
            s,
            "<text transform=\"translate({x:.1},{y:.1}) rotate(-90)\"><title>{}</title>{}</text>",
            xml(&classes[b]),
            xml(&classes[b])
        );
    }
    s.push_str("</svg>");
    s
}

/// A 2-D map as SVG: one `<g>` per class (hovering a point shows its
/// class), `colours` per class (see [`class_colours`]); a legend beside the
/// points for up to 24 classes (the caller adds an HTML legend for more).
pub fn map_svg(
    title: &str,
    points: &[[f32; 2]],
    labels: &[usize],
    classes: &[String],
    colours: &[String],
) -> String {
    let legend = classes.len() <= 24;
    let longest = classes.iter().map(|c| c.chars().count()).max().unwrap_or(1) as f64;
    let legend_w = if legend { longest * 6.4 + 34.0 } else { 0.0 };
    let (pw, ph) = (440.0, 400.0);
    let (w, h) = (pw + 20.0 + legend_w, ph + 34.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in points {
        (x0, x1, y0, y1) = (x0.min(p[0]), x1.max(p[0]), y0.min(p[1]), y1.max(p[1]));
    }
    if points.is_empty() || x1 <= x0 || y1 <= y0 {
        (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
    }
    let sx = |v: f32| 16.0 + (v - x0) as f64 / (x1 - x0) as f64 * (pw - 12.0);
    let sy = |v: f32| 34.0 + (y1 - v) as f64 / (y1 - y0) as f64 * (ph - 12.0);
    let r = if points.len() > 1500 { 1.8 } else { 2.6 };
    let mut s = format!(
        "<svg class=\"map\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"11\"><text x=\"4\" y=\"16\" font-size=\"14\">{}</text><rect x=\"10\" y=\"28\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>",
        xml(title)
    );
    for (c, name) in classes.iter().enumerate() {
        let _ = write!(
            s,
            "<g class=\"cls\" data-c=\"{c}\" fill=\"{}\" fill-opacity=\"0.8\"><title>{}</title>",
            colours[c],
            xml(name)
        );
        for (p, _) in points.iter().zip(labels).filter(|(_, l)| **l == c) {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\"/>",
                sx(p[0]),
                sy(p[1])
            );
        }
        s.push_str("</g>");
    }
    if legend {
        for (c, name) in classes.iter().enumerate() {
            let y = 34.0 + c as f64 * 15.0;
            let _ = write!(
                s,
                "<g class=\"key\" data-c=\"{c}\"><circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                pw + 24.0,
                colours[c],
                pw + 33.0,
                y + 4.0,
                xml(name)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A categorical colour (tab10 then tab20's light half), cycling.
pub fn palette(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// One line of a line chart: `(x, y, optional spread)` points.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Colour index into [`palette`].
    pub color: usize,
    /// Points, with an optional +- spread drawn as a bar.
    pub points: Vec<(f64, f64, Option<f64>)>,
}

/// Series longer than this are drawn without dot markers.
pub const MAX_MARKED_POINTS: usize = 60;

/// An axis label: integers without a decimal point (1, 10, 100, 1300),
/// other values with at most 3 significant decimals.
pub fn axis_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 * v.abs().max(1.0) {
        format!("{}", v.round() as i64)
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A line chart as an SVG string; `log_x` uses a logarithmic x axis.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    y_range: Option<(f64, f64)>,
) -> anyhow::Result<String> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let all: Vec<&(f64, f64, Option<f64>)> = series.iter().flat_map(|s| &s.points).collect();
        let (mut x0, mut x1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        if all.is_empty() {
            (x0, x1) = (1.0, 10.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let (y0, y1) = y_range.unwrap_or_else(|| {
            let (a, b) = all
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            if all.is_empty() || a >= b {
                (0.0, 1.0)
            } else {
                (a - 0.05 * (b - a), b + 0.05 * (b - a))
            }
        });
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .x_label_formatter(&|x| axis_number(*x))
                    .draw()
                    .map_err(err)?;
                for s in series {
                    let color = palette(s.color);
                    chart
                        .draw_series(LineSeries::new(
                            s.points.iter().map(|p| (p.0, p.1)),
                            color.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(s.name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                    // Dots only where they mark measured sizes, not on
                    // a curve of a thousand steps.
                    if s.points.len() <= MAX_MARKED_POINTS {
                        chart
                            .draw_series(
                                s.points
                                    .iter()
                                    .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                            )
                            .map_err(err)?;
                    }
                    chart
                        .draw_series(s.points.iter().filter_map(|p| {
                            p.2.map(|sd| {
                                PathElement::new(
                                    vec![(p.0, p.1 - sd), (p.0, p.1 + sd)],
                                    color.stroke_width(1),
                                )
                            })
                        }))
                        .map_err(err)?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(err)?;
            }};
        }
        if log_x {
            draw!(
                builder
                    .build_cartesian_2d((x0.max(1e-9) * 0.8..x1 * 1.25).log_scale(), y0..y1)
                    .map_err(err)?
            );
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_text() {
        let s = vec![Series {
            name: "model kNN".into(),
            color: 0,
            points: vec![(1.0, 0.5, Some(0.1)), (10.0, 0.8, None), (100.0, 0.9, None)],
        }];
        let svg = line_chart(
            "Few-shot",
            "labels per class",
            "balanced accuracy",
            &s,
            true,
            Some((0.0, 1.0)),
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("model kNN") && svg.contains("Few-shot"));
        // Integer ticks on the log axis, no "10.0".
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"10") && texts.contains(&"100"), "{svg}");
        assert!(!texts.contains(&"10.0"));
        assert_eq!(svg.matches("<circle").count(), 3);
        let long = vec![Series {
            name: "loss".into(),
            color: 0,
            points: (1..=1300)
                .map(|i| (i as f64, 1.0 / i as f64, None))
                .collect(),
        }];
        let svg = line_chart("loss", "step", "loss", &long, false, None).unwrap();
        assert_eq!(svg.matches("<circle").count(), 0);
        let names = vec![
            "diatom".to_string(),
            "a_very_long_class_name_kept_whole".to_string(),
        ];
        let h = matrix_svg(
            "Distances",
            &names,
            &[vec![0.1, 0.5], vec![0.5, 0.2]],
            &[1, 0],
            (0.0, 1.0),
            &|_, _, v| format!("{v:.2}"),
            &|a, b, v| format!("{} / {}: {v:.3}", names[a], names[b]),
        );
        assert!(h.contains("a_very_long_class_name_kept_whole</text>") && h.contains("0.50"));
        assert!(h.contains("<title>diatom / a_very_long_class_name_kept_whole: 0.500</title>"));
        let sc = map_svg(
            "Map",
            &[[0.0, 0.0], [1.0, 1.0]],
            &[0, 1],
            &names,
            &class_colours(2),
        );
        assert!(sc.contains("<title>diatom</title>") && sc.matches("<circle").count() >= 2);
        let many = class_colours(100);
        let distinct: std::collections::HashSet<&String> = many.iter().collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(axis_number(1300.0), "1300");
        assert_eq!(axis_number(0.25), "0.25");
        assert!(colour_bar("d", 0.0, 1.0).contains(">0.50<"));
    }
}
