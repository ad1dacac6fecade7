//! Runs every analysis for every embedder and writes `metrics.json` (every
//! number) and `report.html` (self-contained: SVG charts inline, image grids
//! as base64 PNG), headline first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use serde::Serialize;

use super::curves::{TrainingCurves, read_run};
use super::dataset::EvalSet;
use super::distances::{DistanceMatrix, class_distances};
use super::gram::{Gram, PoolKernels, l2_normalized};
use super::images::{ClassPicks, grid_png, pick_images};
use super::map2d::{Map2d, map_2d};
use super::plots::{Series, heatmap, line_chart, scatter};
use super::protocol::{Settings, TransferResult, run as run_transfer};
use crate::embedder::Embedder;

/// Labelled images per class quoted in the headline (or the largest run size below it).
pub const HEADLINE_SHOTS: usize = 10;
/// Points per 2-D map (the seed mapped 2,500 per split).
pub const MAP_POINTS: usize = 2500;

/// What to evaluate.
pub struct EvalInputs {
    /// Classes the encoder never saw (the transfer protocol runs on these).
    pub unseen: EvalSet,
    /// Classes the encoder trained on, when a split says so.
    pub seen: Option<EvalSet>,
    /// Model first, then baselines.
    pub embedders: Vec<Box<dyn Embedder>>,
    /// Protocol settings.
    pub settings: Settings,
    /// Training run folder for the curves.
    pub run_dir: Option<PathBuf>,
    /// Data description for the report.
    pub data: String,
    /// Split manifest, if any.
    pub split: Option<String>,
    /// Images per class cap that was applied.
    pub max_per_class: Option<usize>,
}

/// Results on one group (seen or unseen classes) for one embedder.
#[derive(Serialize)]
pub struct GroupResult {
    /// "unseen" or "seen".
    pub group: String,
    /// Images evaluated.
    pub images: usize,
    /// Class names.
    pub classes: Vec<String>,
    /// Images per class (after the cap).
    pub class_counts: Vec<usize>,
    /// Few-shot transfer (unseen classes only).
    pub transfer: Option<TransferResult>,
    /// Mean cosine distances.
    pub distances: DistanceMatrix,
    /// 2-D map (of at most [`MAP_POINTS`] images; `map_indices` says which).
    pub map: Map2d,
    /// Pool indices of the mapped images.
    pub map_indices: Vec<usize>,
    /// Closest, furthest and closest-other images per class.
    pub picks: Vec<ClassPicks>,
}

/// All results for one embedder.
#[derive(Serialize)]
pub struct EmbedderResult {
    /// Embedder name.
    pub name: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Per group.
    pub groups: Vec<GroupResult>,
}

/// One row of the headline table.
#[derive(Serialize)]
pub struct HeadlineRow {
    /// Embedder name.
    pub embedder: String,
    /// Labelled images per class.
    pub n_per_class: usize,
    /// kNN mean, std.
    pub knn: (f64, f64),
    /// Logistic mean, std.
    pub logistic: (f64, f64),
    /// SVC mean, std.
    pub svc: (f64, f64),
}

/// Everything in `metrics.json`.
#[derive(Serialize)]
pub struct Metrics {
    /// Data evaluated.
    pub data: String,
    /// Split manifest.
    pub split: Option<String>,
    /// Images-per-class cap.
    pub max_per_class: Option<usize>,
    /// Protocol settings.
    pub settings: Settings,
    /// Headline: balanced accuracy at [`HEADLINE_SHOTS`] labels per class.
    pub headline: Vec<HeadlineRow>,
    /// Per embedder.
    pub embedders: Vec<EmbedderResult>,
    /// Training curves, when a run folder was given.
    pub training: Option<TrainingCurves>,
    /// Caveats a reader must know (capped sizes, fallbacks).
    pub notes: Vec<String>,
}

fn subsample(n: usize, cap: usize) -> Vec<usize> {
    if n <= cap {
        return (0..n).collect();
    }
    (0..cap).map(|i| i * n / cap).collect()
}

fn evaluate_group(
    embedder: &dyn Embedder,
    set: &EvalSet,
    group: &str,
    settings: &Settings,
) -> anyhow::Result<(GroupResult, usize)> {
    let refs: Vec<&[u8]> = set.pixels.iter().map(Vec::as_slice).collect();
    let embeddings = embedder
        .embed(&refs)
        .with_context(|| format!("embedding the {group} images with {}", embedder.name()))?;
    anyhow::ensure!(
        embeddings.len() == set.len(),
        "{} returned {} embeddings for {} images",
        embedder.name(),
        embeddings.len(),
        set.len()
    );
    let dim = embeddings.first().map_or(0, Vec::len);
    anyhow::ensure!(
        dim > 0 && embeddings.iter().all(|e| e.len() == dim),
        "{}: embeddings have inconsistent or zero length",
        embedder.name()
    );
    anyhow::ensure!(
        embeddings.iter().flatten().all(|v| v.is_finite()),
        "{}: embeddings contain NaN or infinity",
        embedder.name()
    );
    let kernels = PoolKernels::new(&embeddings);
    let transfer = if group == "unseen" {
        Some(run_transfer(
            &kernels,
            &set.labels,
            set.class_names.len(),
            settings,
        )?)
    } else {
        None
    };
    let distances = class_distances(&kernels.cosine, &set.labels, &set.class_names);
    let map_indices = subsample(set.len(), MAP_POINTS);
    let map_rows: Vec<Vec<f32>> = map_indices.iter().map(|&i| embeddings[i].clone()).collect();
    let map_cos = if map_indices.len() == set.len() {
        kernels.cosine.clone()
    } else {
        Gram::from_rows(&l2_normalized(&map_rows))
    };
    let map = map_2d(&map_rows, &map_cos);
    let picks = pick_images(&kernels.cosine, &set.labels, &set.ids, &set.class_names);
    Ok((
        GroupResult {
            group: group.into(),
            images: set.len(),
            classes: set.class_names.clone(),
            class_counts: set.class_counts(),
            transfer,
            distances,
            map,
            map_indices,
            picks,
        },
        dim,
    ))
}

/// Runs every analysis.
pub fn evaluate(inputs: &EvalInputs) -> anyhow::Result<Metrics> {
    anyhow::ensure!(
        inputs.unseen.class_names.len() >= 2,
        "{}: evaluation needs at least two classes, found {}",
        inputs.data,
        inputs.unseen.class_names.len()
    );
    let mut embedders = Vec::new();
    let mut notes = Vec::new();
    for e in &inputs.embedders {
        let mut groups = Vec::new();
        let mut dim = 0;
        for (group, set) in [
            ("unseen", Some(&inputs.unseen)),
            ("seen", inputs.seen.as_ref()),
        ] {
            let Some(set) = set.filter(|s| !s.is_empty()) else {
                continue;
            };
            let (g, d) = evaluate_group(e.as_ref(), set, group, &inputs.settings)?;
            if let Some(note) = &g.map.note {
                notes.push(format!(
                    "{} ({group}): 2-D map by PCA because {note}",
                    e.name()
                ));
            }
            dim = d;
            groups.push(g);
        }
        embedders.push(EmbedderResult {
            name: e.name(),
            dim,
            groups,
        });
    }
    let mut headline = Vec::new();
    for e in &embedders {
        let Some(t) = e.groups.first().and_then(|g| g.transfer.as_ref()) else {
            continue;
        };
        let Some(s) = t
            .few_shot
            .iter()
            .rev()
            .find(|s| s.n_per_class <= HEADLINE_SHOTS)
            .or(t.few_shot.first())
        else {
            continue;
        };
        headline.push(HeadlineRow {
            embedder: e.name.clone(),
            n_per_class: s.n_per_class,
            knn: (s.knn.mean, s.knn.std),
            logistic: (s.logistic.mean, s.logistic.std),
            svc: (s.svc.mean, s.svc.std),
        });
    }
    if let Some(t) = embedders
        .first()
        .and_then(|e| e.groups.first())
        .and_then(|g| g.transfer.as_ref())
    {
        notes.extend(
            t.skipped_shots
                .iter()
                .map(|s| format!("few-shot size skipped: {s}")),
        );
        if t.curve.is_empty() {
            notes.push(format!(
                "the seed's curve needs at least 30 images in its train pool; this one has {}",
                t.curve_train_pool
            ));
        }
    }
    if let Some(cap) = inputs.max_per_class {
        let capped: Vec<String> = inputs
            .unseen
            .class_names
            .iter()
            .zip(&inputs.unseen.class_counts_before_cap)
            .filter(|(_, n)| **n > cap)
            .map(|(c, n)| format!("{c} ({n})"))
            .collect();
        if !capped.is_empty() {
            notes.push(format!(
                "unseen classes capped at {cap} images (seeded choice): {}",
                capped.join(", ")
            ));
        }
    }
    let training = inputs.run_dir.as_deref().map(read_run).transpose()?;
    Ok(Metrics {
        data: inputs.data.clone(),
        split: inputs.split.clone(),
        max_per_class: inputs.max_per_class,
        settings: inputs.settings.clone(),
        headline,
        embedders,
        training,
        notes,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pm(v: (f64, f64)) -> String {
    format!("{:.3} ± {:.3}", v.0, v.1)
}

fn png_img(png: &[u8], title: &str) -> String {
    format!(
        "<img alt=\"{}\" title=\"{}\" src=\"data:image/png;base64,{}\">",
        esc(title),
        esc(title),
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1250px;margin:auto;padding:1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
th{background:#eee}td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:8px}\
.note{background:#fff6d5;padding:.5em}img{image-rendering:pixelated;height:64px}h2{border-bottom:2px solid #ccc}";

/// Renders the HTML report. `unseen`/`seen` supply the pixels for the image grids.
pub fn render_html(
    m: &Metrics,
    unseen: &EvalSet,
    seen: Option<&EvalSet>,
    image_size: usize,
) -> anyhow::Result<String> {
    let mut h = String::new();
    writeln!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>SeaCLR evaluation</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(
        h,
        "<h1>SeaCLR evaluation</h1><p>Data: <code>{}</code>{}</p>",
        esc(&m.data),
        m.split
            .as_deref()
            .map(|s| format!(", split <code>{}</code>", esc(s)))
            .unwrap_or_default()
    )?;

    // Headline.
    writeln!(h, "<h2>Headline: few-shot transfer to unseen classes</h2>")?;
    if let Some(first) = m.headline.first() {
        writeln!(
            h,
            "<p>Balanced accuracy (mean ± std over {} seeded draws) with <b>{} labelled images per class</b> of classes the encoder never saw; the rest of each class is the test set. Chance is {:.3}.</p>",
            m.settings.draws,
            first.n_per_class,
            1.0 / unseen.class_names.len() as f64
        )?;
        writeln!(
            h,
            "<table><tr><th>embedder</th><th>kNN (cosine)</th><th>logistic regression</th><th>RBF SVC</th></tr>"
        )?;
        for r in &m.headline {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.embedder),
                pm(r.knn),
                pm(r.logistic),
                pm(r.svc)
            )?;
        }
        writeln!(h, "</table>")?;
        if m.headline.len() > 1 {
            let model = &m.headline[0];
            let raw = m
                .headline
                .iter()
                .find(|r| r.embedder == "raw pixels")
                .unwrap_or(&m.headline[1]);
            writeln!(
                h,
                "<p><b>{}</b> kNN is {:+.1} points against {} (target: at least +20).</p>",
                esc(&model.embedder),
                100.0 * (model.knn.0 - raw.knn.0),
                esc(&raw.embedder)
            )?;
            // Models compared beside the first (e.g. its int8 blob).
            for r in m.headline[1..]
                .iter()
                .filter(|r| r.embedder != "raw pixels" && !r.embedder.starts_with("random weights"))
            {
                writeln!(
                    h,
                    "<p><b>{}</b> against {}: kNN {:+.1}, logistic {:+.1}, SVC {:+.1} points.</p>",
                    esc(&r.embedder),
                    esc(&model.embedder),
                    100.0 * (r.knn.0 - model.knn.0),
                    100.0 * (r.logistic.0 - model.logistic.0),
                    100.0 * (r.svc.0 - model.svc.0)
                )?;
            }
        }
    } else {
        writeln!(
            h,
            "<p class=note>No few-shot size could be run (see notes).</p>"
        )?;
    }
    if !m.notes.is_empty() {
        writeln!(h, "<div class=note><b>Notes</b><ul>")?;
        for n in &m.notes {
            writeln!(h, "<li>{}</li>", esc(n))?;
        }
        writeln!(h, "</ul></div>")?;
    }

    // Few-shot curves.
    let transfers: Vec<(&str, &TransferResult)> = m
        .embedders
        .iter()
        .filter_map(|e| {
            e.groups
                .first()
                .and_then(|g| g.transfer.as_ref())
                .map(|t| (e.name.as_str(), t))
        })
        .collect();
    writeln!(
        h,
        "<h2>Few-shot transfer by labelled images per class</h2><div class=charts>"
    )?;
    for (title, pick) in [
        ("kNN (cosine)", 0usize),
        ("logistic regression", 1),
        ("RBF SVC", 2),
    ] {
        let series: Vec<Series> = transfers
            .iter()
            .enumerate()
            .map(|(i, (name, t))| Series {
                name: name.to_string(),
                color: i,
                points: t
                    .few_shot
                    .iter()
                    .map(|s| {
                        let st = [&s.knn, &s.logistic, &s.svc][pick];
                        (s.n_per_class as f64, st.mean, Some(st.std))
                    })
                    .collect(),
            })
            .collect();
        h.push_str(&line_chart(
            title,
            "labelled images per class (log)",
            "balanced accuracy",
            &series,
            true,
            Some((0.0, 1.0)),
        )?);
    }
    writeln!(h, "</div>")?;
    writeln!(
        h,
        "<table><tr><th>embedder</th><th>n/class</th><th>k</th><th>kNN</th><th>logistic</th><th>SVC</th></tr>"
    )?;
    for (name, t) in &transfers {
        for s in &t.few_shot {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                s.n_per_class,
                s.knn_k,
                pm((s.knn.mean, s.knn.std)),
                pm((s.logistic.mean, s.logistic.std)),
                pm((s.svc.mean, s.svc.std))
            )?;
        }
    }
    writeln!(h, "</table>")?;

    // Seed curve.
    writeln!(h, "<h2>The seed's curve: n labelled images in total</h2>")?;
    if let Some((_, t)) = transfers.first().filter(|(_, t)| !t.curve.is_empty()) {
        writeln!(
            h,
            "<p>One seeded shuffle, {} images in the train pool, {} in the test set; classifiers trained on the first n (not stratified).</p><div class=charts>",
            t.curve_train_pool, t.curve_test
        )?;
        for (title, pick) in [
            ("kNN (cosine)", 0usize),
            ("logistic regression", 1),
            ("RBF SVC", 2),
        ] {
            let series: Vec<Series> = transfers
                .iter()
                .enumerate()
                .map(|(i, (name, t))| Series {
                    name: name.to_string(),
                    color: i,
                    points: t
                        .curve
                        .iter()
                        .map(|p| (p.n_train as f64, [p.knn, p.logistic, p.svc][pick], None))
                        .collect(),
                })
                .collect();
            h.push_str(&line_chart(
                title,
                "labelled images (log)",
                "balanced accuracy",
                &series,
                true,
                Some((0.0, 1.0)),
            )?);
        }
        writeln!(h, "</div>")?;
    } else {
        writeln!(
            h,
            "<p class=note>Not enough images for the curve (it starts at 30 training images).</p>"
        )?;
    }

    // Distances.
    writeln!(
        h,
        "<h2>Mean cosine distance within and between classes</h2><p>Diagonal: within a class (small is good); off-diagonal: between classes (large is good).</p>"
    )?;
    writeln!(
        h,
        "<table><tr><th>embedder</th><th>group</th><th>mean within</th><th>mean between</th><th>between / within</th></tr>"
    )?;
    for e in &m.embedders {
        for g in &e.groups {
            let d = &g.distances;
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td></tr>",
                esc(&e.name),
                g.group,
                d.mean_within,
                d.mean_between,
                d.mean_between / d.mean_within.max(1e-12)
            )?;
        }
    }
    writeln!(h, "</table>")?;
    for e in &m.embedders {
        writeln!(h, "<div class=charts>")?;
        for g in &e.groups {
            h.push_str(&heatmap(
                &format!("{}: {} classes", e.name, g.group),
                &g.distances.classes,
                &g.distances.mean,
            )?);
        }
        writeln!(h, "</div>")?;
    }

    // Maps.
    writeln!(h, "<h2>2-D maps</h2><div class=charts>")?;
    for e in &m.embedders {
        for g in &e.groups {
            let labels: Vec<usize> = g
                .map_indices
                .iter()
                .map(|&i| {
                    if g.group == "unseen" {
                        unseen.labels[i]
                    } else {
                        seen.map_or(0, |s| s.labels[i])
                    }
                })
                .collect();
            h.push_str(&scatter(
                &format!("{} ({}), {}", e.name, g.group, g.map.method.to_uppercase()),
                &g.map.points,
                &labels,
                &g.classes,
            )?);
        }
    }
    writeln!(h, "</div>")?;

    // Images, for the first embedder (the model).
    if let Some(e) = m.embedders.first() {
        writeln!(
            h,
            "<h2>Images in the embedding space of {}</h2><p>Per class: the 5 images closest to the class centre (cosine), the 5 furthest, and the 5 images of other classes closest to it. Hover for path and similarity.</p>",
            esc(&e.name)
        )?;
        for g in &e.groups {
            let set = if g.group == "unseen" {
                unseen
            } else if let Some(s) = seen {
                s
            } else {
                continue;
            };
            writeln!(
                h,
                "<h3>{} classes</h3><table><tr><th>class</th><th>closest to centre</th><th>furthest from centre</th><th>other classes closest</th></tr>",
                g.group
            )?;
            for p in &g.picks {
                write!(h, "<tr><td>{}</td>", esc(&p.class))?;
                for list in [&p.closest, &p.furthest, &p.closest_other] {
                    let pix: Vec<&[u8]> = list
                        .iter()
                        .map(|q| set.pixels[q.index].as_slice())
                        .collect();
                    let title: Vec<String> = list
                        .iter()
                        .map(|q| format!("{} [{}] cos {:.3}", q.id, q.class, q.similarity))
                        .collect();
                    write!(
                        h,
                        "<td>{}</td>",
                        png_img(&grid_png(&pix, image_size)?, &title.join("\n"))
                    )?;
                }
                writeln!(h, "</tr>")?;
            }
            writeln!(h, "</table>")?;
        }
    }

    // Training curves.
    if let Some(t) = &m.training {
        writeln!(h, "<h2>Training curves</h2><div class=charts>")?;
        if !t.step_loss.is_empty() {
            let s = [Series {
                name: "loss".into(),
                color: 0,
                points: t.step_loss.iter().map(|p| (p.0, p.1, None)).collect(),
            }];
            h.push_str(&line_chart(
                "NT-Xent loss per step",
                "step",
                "loss",
                &s,
                false,
                None,
            )?);
            let s = [Series {
                name: "learning rate".into(),
                color: 2,
                points: t.step_lr.iter().map(|p| (p.0, p.1, None)).collect(),
            }];
            h.push_str(&line_chart("learning rate", "step", "lr", &s, false, None)?);
        }
        if !t.epochs.is_empty() {
            let mut s = vec![Series {
                name: "train".into(),
                color: 0,
                points: t.epochs.iter().map(|p| (p.0, p.1, None)).collect(),
            }];
            let val: Vec<(f64, f64, Option<f64>)> = t
                .epochs
                .iter()
                .filter_map(|p| p.2.map(|v| (p.0, v, None)))
                .collect();
            if !val.is_empty() {
                s.push(Series {
                    name: "validation".into(),
                    color: 1,
                    points: val,
                });
            }
            h.push_str(&line_chart(
                "loss per epoch",
                "epoch",
                "loss",
                &s,
                false,
                None,
            )?);
        }
        writeln!(h, "</div>")?;
        for f in &t.missing {
            writeln!(h, "<p class=note>Not found: <code>{}</code></p>", esc(f))?;
        }
    }

    // Method.
    writeln!(
        h,
        "<h2>Method</h2><ul>\
<li>Few-shot: for each n, {} seeded draws; per class the first n of a shuffle are labelled, all others are the test set; sizes where a class would keep no test image are skipped. kNN uses cosine similarity and k = min({}, n).</li>\
<li>Logistic regression: multinomial, L2 with C = 1, on features standardised over the evaluated images (no labels used). RBF SVC: smartcore's one-vs-one MultiClassSVC, C = 1, gamma = 1 / dim on the same standardised features.</li>\
<li>The seed's curve: one shuffle, 65/35 split, first n of the train pool (n = 30..90 step 10, 100..900 step 100, 1000..3000 step 200).</li>\
<li>Balanced accuracy is the mean recall over classes. Baselines: raw pixels (the preprocessed image as a vector) and the same encoder with random He-initialised weights.</li>\
<li>Distances: mean 1 - cos over all pairs. Maps: UMAP (umap-rs) on cosine neighbours with a PCA start, at most {MAP_POINTS} images. Images: cosine to the class centre in the embedding space.</li></ul>",
        m.settings.draws, m.settings.k
    )?;
    writeln!(
        h,
        "<p>Every number is in <code>metrics.json</code> beside this file.</p></body></html>"
    )?;
    Ok(h)
}

/// Evaluates and writes `metrics.json` and `report.html` into `out_dir`.
pub fn write_report(
    inputs: &EvalInputs,
    out_dir: &Path,
    image_size: usize,
) -> anyhow::Result<Metrics> {
    let metrics = evaluate(inputs)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create the report folder", out_dir.display()))?;
    let json = serde_json::to_string_pretty(&metrics)?;
    let json_path = out_dir.join("metrics.json");
    std::fs::write(&json_path, json)
        .with_context(|| format!("{}: cannot write", json_path.display()))?;
    let html = render_html(&metrics, &inputs.unseen, inputs.seen.as_ref(), image_size)?;
    let html_path = out_dir.join("report.html");
    std::fs::write(&html_path, html)
        .with_context(|| format!("{}: cannot write", html_path.display()))?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedder::RawPixels;

    /// 3 classes of 16x16 images: a dark block at a class-specific place.
    fn synthetic(per_class: usize) -> EvalSet {
        let mut items = Vec::new();
        for (c, name) in ["left", "right", "bottom"].iter().enumerate() {
            for i in 0..per_class {
                let mut px = vec![255u8; 256];
                for y in 0..16 {
                    for x in 0..16 {
                        let inside = match c {
                            0 => x < 6 && (4..12).contains(&y),
                            1 => x >= 10 && (4..12).contains(&y),
                            _ => y >= 10 && (4..12).contains(&x),
                        };
                        if inside {
                            px[y * 16 + x] = (20 + (i * 13 + x * 7 + y) % 60) as u8;
                        }
                    }
                }
                items.push((format!("{name}/{i}.png"), Some(name.to_string()), px));
            }
        }
        EvalSet::from_labelled("synthetic", items, None, 0).unwrap()
    }

    #[test]
    fn report_on_synthetic_classes_has_every_section_and_number() {
        let inputs = EvalInputs {
            unseen: synthetic(24),
            seen: Some(synthetic(8)),
            embedders: vec![Box::new(RawPixels { size: 16 })],
            settings: Settings {
                shots: vec![1, 5, 30],
                draws: 3,
                ..Settings::default()
            },
            run_dir: None,
            data: "synthetic".into(),
            split: None,
            max_per_class: Some(400),
        };
        let m = evaluate(&inputs).unwrap();
        assert_eq!(m.headline.len(), 1);
        assert_eq!(m.headline[0].n_per_class, 5);
        // The classes differ by where the dark block is: raw pixels separate them.
        assert_eq!(m.headline[0].knn.0, 1.0);
        let g = &m.embedders[0].groups;
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].distances.mean.len(), 3);
        assert!(g[0].distances.mean_between > g[0].distances.mean_within);
        assert_eq!(g[0].picks.len(), 3);
        assert_eq!(g[0].map.points.len(), 72);
        let t = g[0].transfer.as_ref().unwrap();
        assert_eq!(
            t.curve.iter().map(|p| p.n_train).collect::<Vec<_>>(),
            vec![30, 40]
        );
        assert!(
            m.notes.iter().any(|n| n.contains("n = 30")),
            "{:?}",
            m.notes
        );
        let html = render_html(&m, &inputs.unseen, inputs.seen.as_ref(), 16).unwrap();
        for needle in [
            "Headline",
            "<svg",
            "data:image/png;base64,",
            "bottom",
            "seen classes",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
    }
}
