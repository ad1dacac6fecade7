//! Charts for the report, drawn with plotters' SVG backend (the browser
//! renders the text; plotters still measures it, hence [`ensure_font`]).

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where [`ensure_font`] looks for a TrueType font (after `$SEACLR_FONT`).
pub const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a system font as plotters' "sans-serif" (plotters' ab_glyph
/// text backend measures text with it). Debian: `apt-get install fonts-dejavu-core`.
pub fn ensure_font() -> anyhow::Result<()> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let env = std::env::var("SEACLR_FONT").ok();
            let candidates = env.iter().map(String::as_str).chain(FONT_CANDIDATES);
            for path in candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err(format!(
                "no TrueType font found for the charts (tried $SEACLR_FONT and {}); install one, e.g. `apt-get install fonts-dejavu-core`, or set SEACLR_FONT",
                FONT_CANDIDATES.join(", ")
            ))
        })
        .clone()
        .map_err(anyhow::Error::msg)
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
                    chart
                        .draw_series(
                            s.points
                                .iter()
                                .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                        )
                        .map_err(err)?;
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
                    .build_cartesian_2d((x0 * 0.9..x1 * 1.1).log_scale(), y0..y1)
                    .map_err(err)?
            );
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?);
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A heatmap of a square class-by-class matrix, values printed in the cells.
pub fn heatmap(title: &str, classes: &[String], values: &[Vec<f64>]) -> anyhow::Result<String> {
    ensure_font()?;
    let k = classes.len().max(1);
    let cell = (480 / k).clamp(14, 48) as i32;
    let label_w = 170;
    let (w, h) = (
        label_w + cell * k as i32 + 20,
        40 + cell * k as i32 + label_w,
    );
    let max = values.iter().flatten().copied().fold(1e-9f64, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(title.to_string(), (10, 10), ("sans-serif", 16)))
            .map_err(err)?;
        let font_size = (cell as f64 * 0.45).clamp(8.0, 12.0);
        for (a, row) in values.iter().enumerate() {
            for (b, &v) in row.iter().enumerate() {
                let t = (v / max).clamp(0.0, 1.0);
                // White (small distance) to dark blue (large).
                let color = RGBColor(
                    (255.0 - 220.0 * t) as u8,
                    (255.0 - 180.0 * t) as u8,
                    (255.0 - 90.0 * t) as u8,
                );
                let (x, y) = (label_w + b as i32 * cell, 40 + a as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))
                .map_err(err)?;
                if cell >= 24 {
                    let text_color = if t > 0.6 { WHITE } else { BLACK };
                    let style =
                        TextStyle::from(("sans-serif", font_size).into_font()).color(&text_color);
                    root.draw(&Text::new(
                        format!("{v:.2}"),
                        (x + 3, y + cell / 2 - 5),
                        style,
                    ))
                    .map_err(err)?;
                }
            }
        }
        for (a, name) in classes.iter().enumerate() {
            let short: String = name.chars().take(24).collect();
            let y = 40 + a as i32 * cell + cell / 2 - 5;
            root.draw(&Text::new(short.clone(), (5, y), ("sans-serif", font_size)))
                .map_err(err)?;
            let x = label_w + a as i32 * cell + cell / 2 - 5;
            let style = ("sans-serif", font_size)
                .into_font()
                .transform(FontTransform::Rotate90);
            root.draw(&Text::new(short, (x + 10, 45 + cell * k as i32), style))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A scatter of 2-D points coloured by class, with a legend.
pub fn scatter(
    title: &str,
    points: &[[f32; 2]],
    labels: &[usize],
    classes: &[String],
) -> anyhow::Result<String> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (620, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in points {
            (x0, x1, y0, y1) = (x0.min(p[0]), x1.max(p[0]), y0.min(p[1]), y1.max(p[1]));
        }
        if points.is_empty() || x1 <= x0 || y1 <= y0 {
            (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
        }
        let (px, py) = (0.05 * (x1 - x0), 0.05 * (y1 - y0));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(20)
            .y_label_area_size(30)
            .right_y_label_area_size(0)
            .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
            .map_err(err)?;
        chart.configure_mesh().disable_mesh().draw().map_err(err)?;
        for (c, name) in classes.iter().enumerate() {
            let color = palette(c);
            chart
                .draw_series(
                    points
                        .iter()
                        .zip(labels)
                        .filter(|(_, l)| **l == c)
                        .map(|(p, _)| Circle::new((p[0], p[1]), 3, color.mix(0.8).filled())),
                )
                .map_err(err)?
                .label(name.chars().take(28).collect::<String>())
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 11))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
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
            points: vec![(1.0, 0.5, Some(0.1)), (10.0, 0.8, None)],
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
        let names = vec!["diatom".to_string(), "ciliate".to_string()];
        let h = heatmap("Distances", &names, &[vec![0.1, 0.5], vec![0.5, 0.2]]).unwrap();
        assert!(h.contains("diatom") && h.contains("0.50"));
        let sc = scatter("Map", &[[0.0, 0.0], [1.0, 1.0]], &[0, 1], &names).unwrap();
        assert!(sc.contains("ciliate") && sc.matches("<circle").count() >= 2);
    }
}
