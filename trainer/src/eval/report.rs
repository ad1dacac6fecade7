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
use super::distances::{DistanceMatrix, class_distances, cluster_order};
use super::gram::{Gram, PoolKernels, l2_normalized};
use super::images::{ClassPicks, grid_png, pick_images, thumbnail};
use super::map2d::{Map2d, map_2d};
use super::plots::{Series, class_colours, colour_bar, line_chart, map_svg, matrix_svg};
use super::protocol::{Settings, TransferResult, run as run_transfer};
use super::provenance::{ModelProvenance, RunProvenance};
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
    /// Where each embedder came from (same order as `embedders`; missing
    /// entries are filled from the embedder's name).
    pub models: Vec<ModelProvenance>,
    /// Tool version, commit, date, command line.
    pub run: RunProvenance,
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
    /// Class order of the figures: average-linkage clustering of the first
    /// embedder's class distances in this group (the same for every embedder).
    pub class_order: Vec<usize>,
}

/// All results for one embedder.
#[derive(Serialize)]
pub struct EmbedderResult {
    /// Embedder name.
    pub name: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Where it came from.
    pub provenance: ModelProvenance,
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
    /// Tool version, git commit, date, command line.
    pub provenance: RunProvenance,
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
    let embeddings = super::cli::embed_with_progress(embedder, &refs, "embedding")
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
    tracing::debug!("{}: 2-D map of {} points", embedder.name(), map_rows.len());
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
            class_order: Vec::new(),
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
    let bar = crate::ui::progress(inputs.embedders.len(), "models");
    for (i, e) in inputs.embedders.iter().enumerate() {
        let mut provenance = inputs.models.get(i).cloned().unwrap_or_default();
        if provenance.name.is_empty() {
            provenance.name = e.name();
        }
        let name = provenance.name.clone();
        let mut groups = Vec::new();
        let mut dim = 0;
        for (group, set) in [
            ("unseen", Some(&inputs.unseen)),
            ("seen", inputs.seen.as_ref()),
        ] {
            let Some(set) = set.filter(|s| !s.is_empty()) else {
                continue;
            };
            tracing::info!(
                "{name}: {group} classes ({} images, {} classes)",
                set.len(),
                set.class_names.len()
            );
            let (g, d) = evaluate_group(e.as_ref(), set, group, &inputs.settings)?;
            if let Some(note) = &g.map.note {
                notes.push(format!("{name} ({group}): 2-D map by PCA because {note}"));
            }
            dim = d;
            groups.push(g);
        }
        embedders.push(EmbedderResult {
            name,
            dim,
            provenance,
            groups,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    // One class order per group, from the first embedder's distances.
    let orders: Vec<Vec<usize>> = embedders
        .first()
        .map(|e| {
            e.groups
                .iter()
                .map(|g| cluster_order(&g.distances.mean))
                .collect()
        })
        .unwrap_or_default();
    for e in &mut embedders {
        for (g, order) in e.groups.iter_mut().zip(&orders) {
            g.class_order = order.clone();
        }
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
        provenance: inputs.run.clone(),
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

/// Side of the thumbnails in the image tables.
pub const THUMB: usize = 40;

/// Section ids of the page, in order, with their headings (the table of
/// contents and the browser test read them).
pub const SECTIONS: [(&str, &str); 10] = [
    ("provenance", "Provenance"),
    ("headline", "Headline: few-shot transfer to unseen classes"),
    (
        "per-class",
        "Per class: confusion matrices, precision, recall, F1",
    ),
    ("few-shot", "Few-shot transfer by labelled images per class"),
    ("seed-curve", "The seed's curve: n labelled images in total"),
    (
        "distances",
        "Mean cosine distance within and between classes",
    ),
    ("maps", "2-D maps"),
    ("images", "Images in the embedding space"),
    ("training", "Training curves"),
    ("method", "Method"),
];

const STYLE: &str = "body{font-family:sans-serif;max-width:1250px;margin:auto;padding:1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}\
th{background:#eee}td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}\
.note{background:#fff6d5;padding:.5em}h2{border-bottom:2px solid #ccc}.scroll{overflow-x:auto;max-width:100%}\
table.pics{table-layout:fixed;width:100%}table.pics td{text-align:left;vertical-align:top;padding:2px 4px}\
table.pics td:first-child{width:11em;overflow-wrap:anywhere;font-size:90%}table.pics img{display:block;max-width:100%}\
.cap{font-size:75%;color:#555;display:flex;gap:2px}.cap span{width:42px;overflow-wrap:anywhere}\
.legend{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:80%;max-width:1200px}.legend span{cursor:default}\
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:3px}\
svg.map g.dim{opacity:.08}nav ol{columns:2}code{overflow-wrap:anywhere}";

/// Catches script errors into `#js-errors` (the browser test reads it) and
/// highlights a class on a map when its legend entry is hovered.
const SCRIPT: &str = "window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message));var d=document.getElementById('js-errors');if(d){d.textContent=window.__errors.join('\\n');}});\
document.addEventListener('DOMContentLoaded',function(){\
document.querySelectorAll('[data-map]').forEach(function(box){\
var svg=box.querySelector('svg.map');if(!svg){return;}\
box.querySelectorAll('[data-c]').forEach(function(k){if(k.closest('g.cls')===k){return;}\
k.addEventListener('mouseenter',function(){var c=k.getAttribute('data-c');svg.querySelectorAll('g.cls').forEach(function(g){g.classList.toggle('dim',g.getAttribute('data-c')!==c);});});\
k.addEventListener('mouseleave',function(){svg.querySelectorAll('g.cls').forEach(function(g){g.classList.remove('dim');});});});});\
var s=document.getElementById('self-check');if(s){s.setAttribute('data-svg',document.querySelectorAll('svg').length);s.setAttribute('data-img',document.querySelectorAll('img').length);s.textContent='ok';}});";

fn section(h: &mut String, id: &str) -> std::fmt::Result {
    let title = SECTIONS.iter().find(|s| s.0 == id).map_or(id, |s| s.1);
    writeln!(h, "<h2 id=\"{id}\">{}</h2>", esc(title))
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn classifier_title(name: &str) -> &'static str {
    match name {
        "knn" => "kNN (cosine)",
        "logistic" => "logistic regression",
        _ => "RBF SVC",
    }
}

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
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>SeaCLR evaluation</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
    )?;
    writeln!(
        h,
        "<h1>SeaCLR evaluation</h1><p>Data: <code>{}</code>{}</p><div id=\"js-errors\" class=\"note\" hidden></div><div id=\"self-check\" hidden></div>",
        esc(&m.data),
        m.split
            .as_deref()
            .map(|s| format!(", split <code>{}</code>", esc(s)))
            .unwrap_or_default()
    )?;
    writeln!(h, "<nav><b>Contents</b><ol>")?;
    for (id, title) in SECTIONS {
        if id == "training" && m.training.is_none() {
            continue;
        }
        writeln!(h, "<li><a href=\"#{id}\">{}</a></li>", esc(title))?;
    }
    writeln!(h, "</ol></nav>")?;

    // Provenance.
    section(&mut h, "provenance")?;
    let p = &m.provenance;
    writeln!(
        h,
        "<p>seaclr {} {}, written {}.<br>Command: <code>{}</code></p>",
        esc(&p.tool_version),
        p.git_commit
            .as_deref()
            .map(|c| format!("(git commit <code>{}</code>)", esc(c)))
            .unwrap_or_else(|| "(git commit unknown)".into()),
        esc(&p.date),
        esc(&p.command_line)
    )?;
    writeln!(
        h,
        "<table><tr><th>model</th><th>kind</th><th>CRC-32</th><th>bytes</th><th>steps (this run / in all)</th><th>lineage</th></tr>"
    )?;
    for e in &m.embedders {
        let q = &e.provenance;
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            esc(&e.name),
            esc(&q.kind),
            q.crc32
                .as_deref()
                .map(|c| format!(
                    "<code>{c}</code> <small>({})</small>",
                    esc(q.crc32_of.as_deref().unwrap_or(""))
                ))
                .unwrap_or_else(|| "–".into()),
            q.bytes.map_or("–".into(), |b| b.to_string()),
            match (q.run_steps, q.cumulative_steps) {
                (Some(r), Some(c)) => format!("{r} / {c}"),
                (Some(r), None) => r.to_string(),
                _ => "–".into(),
            },
            q.lineage
                .iter()
                .map(|l| esc(l))
                .collect::<Vec<_>>()
                .join("<br>")
        )?;
    }
    writeln!(h, "</table>")?;

    // Headline.
    section(&mut h, "headline")?;
    if let Some(first) = m.headline.first() {
        writeln!(
            h,
            "<p>Balanced accuracy (mean ± std over {} seeded draws) with <b>{} labelled images per class</b> of {} classes the encoder never saw ({} images); the rest of each class is the test set. Chance is {:.3}.</p>",
            m.settings.draws,
            first.n_per_class,
            unseen.class_names.len(),
            unseen.len(),
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

    // Per class.
    section(&mut h, "per-class")?;
    if let Some((e, g, conf)) = m.embedders.first().and_then(|e| {
        let g = e.groups.first()?;
        Some((e, g, g.transfer.as_ref()?.confusion.as_ref()?))
    }) {
        writeln!(
            h,
            "<p>{} with <b>{} labelled images per class</b>: test images of each true class (rows) by the class each classifier gave them (columns), summed over {} draws and shown as a share of the row (the diagonal is the recall). One colour scale for the three; classes ordered by clustering their distances. Hover a cell for the counts. Every embedder's matrices are in <code>metrics.json</code>.</p>",
            esc(&e.name),
            conf.n_per_class,
            conf.draws
        )?;
        writeln!(
            h,
            "{}<div class=\"charts scroll\">",
            colour_bar("share of the true class's test images", 0.0, 1.0)
        )?;
        let classes = &g.classes;
        for c in &conf.classifiers {
            let rows: Vec<f64> = c
                .counts
                .iter()
                .map(|r| r.iter().sum::<usize>().max(1) as f64)
                .collect();
            let share: Vec<Vec<f64>> = c
                .counts
                .iter()
                .zip(&rows)
                .map(|(r, t)| r.iter().map(|&v| v as f64 / t).collect())
                .collect();
            h.push_str(&matrix_svg(
                &format!(
                    "{} (macro F1 {:.3})",
                    classifier_title(&c.classifier),
                    c.macro_f1
                ),
                classes,
                &share,
                &g.class_order,
                (0.0, 1.0),
                &|_, _, v| {
                    if v >= 0.005 {
                        format!("{:.0}", 100.0 * v)
                    } else {
                        String::new()
                    }
                },
                &|a, b, v| {
                    format!(
                        "true {} -> given {}: {} of {} ({:.1} %)",
                        classes[a],
                        classes[b],
                        c.counts[a][b],
                        rows[a],
                        100.0 * v
                    )
                },
            ));
        }
        writeln!(h, "</div>")?;
        writeln!(
            h,
            "<div class=scroll><table><tr><th rowspan=2>class (clustered order)</th><th rowspan=2>test images</th><th colspan=3>kNN</th><th colspan=3>logistic</th><th colspan=3>SVC</th></tr><tr>{}</tr>",
            "<th>precision</th><th>recall</th><th>F1</th>".repeat(3)
        )?;
        for &a in &g.class_order {
            let tests: usize = conf.classifiers[0].counts[a].iter().sum();
            write!(h, "<tr><td>{}</td><td>{tests}</td>", esc(&classes[a]))?;
            for c in &conf.classifiers {
                write!(
                    h,
                    "<td>{}</td><td>{}</td><td>{}</td>",
                    fmt_opt(c.precision[a]),
                    fmt_opt(c.recall[a]),
                    fmt_opt(c.f1[a])
                )?;
            }
            writeln!(h, "</tr>")?;
        }
        writeln!(h, "</table></div>")?;
    } else {
        writeln!(
            h,
            "<p class=note>No few-shot size could be run, so there is no confusion matrix.</p>"
        )?;
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
    section(&mut h, "few-shot")?;
    writeln!(h, "<div class=charts>")?;
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
    section(&mut h, "seed-curve")?;
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
    section(&mut h, "distances")?;
    let dmax = m
        .embedders
        .iter()
        .flat_map(|e| &e.groups)
        .flat_map(|g| g.distances.mean.iter().flatten())
        .copied()
        .fold(1e-9f64, f64::max);
    writeln!(
        h,
        "<p>Diagonal: within a class (small is good); off-diagonal: between classes (large is good). All matrices share one colour scale (0 to {dmax:.3}, the largest value of any), so a matrix that looks uniform really is; classes in the order of an average-linkage clustering of the first model's distances; hover a cell for the class names and value.</p>"
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
    h.push_str(&colour_bar("mean cosine distance (1 - cos)", 0.0, dmax));
    for e in &m.embedders {
        writeln!(h, "<div class=\"charts scroll\">")?;
        for g in &e.groups {
            let classes = &g.distances.classes;
            h.push_str(&matrix_svg(
                &format!("{}: {} classes", e.name, g.group),
                classes,
                &g.distances.mean,
                &g.class_order,
                (0.0, dmax),
                &|_, _, v| format!("{v:.2}"),
                &|a, b, v| format!("{} / {}: {v:.3}", classes[a], classes[b]),
            ));
        }
        writeln!(h, "</div>")?;
    }

    // Maps.
    section(&mut h, "maps")?;
    writeln!(
        h,
        "<p>Each map's title says how it was made. Hover a point for its class; hover a legend entry to pick out its class. \"kept\" is the share of each image's 10 nearest neighbours (cosine) that stay among its 10 nearest on the map.</p>"
    )?;
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
            // Colours follow the clustered order, so neighbouring classes
            // in the dendrogram differ in hue.
            let base = class_colours(g.classes.len());
            let mut colours = vec![String::new(); g.classes.len()];
            for (pos, &c) in g.class_order.iter().enumerate() {
                colours[c] = base[pos].clone();
            }
            if g.class_order.len() != g.classes.len() {
                colours = base;
            }
            let method = if g.map.method == "umap" {
                format!(
                    "UMAP, kept {:.2} (PCA {:.2})",
                    g.map.neighbour_preservation, g.map.pca_neighbour_preservation
                )
            } else {
                format!("PCA, kept {:.2}", g.map.neighbour_preservation)
            };
            writeln!(h, "<div data-map>")?;
            h.push_str(&map_svg(
                &format!("{} ({}): {}", e.name, g.group, method),
                &g.map.points,
                &labels,
                &g.classes,
                &colours,
            ));
            if g.classes.len() > 24 {
                write!(
                    h,
                    "<details><summary>legend ({} classes)</summary><div class=legend>",
                    g.classes.len()
                )?;
                for &c in &g.class_order {
                    write!(
                        h,
                        "<span data-c=\"{c}\"><i style=\"background:{}\"></i>{}</span>",
                        colours[c],
                        esc(&g.classes[c])
                    )?;
                }
                write!(h, "</div></details>")?;
            }
            writeln!(h, "</div>")?;
        }
    }

    // Images, for the first embedder (the model).
    section(&mut h, "images")?;
    if let Some(e) = m.embedders.first() {
        writeln!(
            h,
            "<p>In the embedding space of <b>{}</b>, per class: the 5 images closest to the class centre (cosine), the 5 furthest, and the 5 images of other classes closest to it (their class under each). {THUMB} px thumbnails; hover for path and similarity.</p>",
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
                "<h3>{} classes</h3><table class=pics><tr><th>class</th><th>closest to centre</th><th>furthest from centre</th><th>other classes closest</th></tr>",
                g.group
            )?;
            let picks_in_order: Vec<&ClassPicks> = if g.class_order.len() == g.picks.len() {
                g.class_order.iter().map(|&c| &g.picks[c]).collect()
            } else {
                g.picks.iter().collect()
            };
            for p in picks_in_order {
                write!(h, "<tr><td>{}</td>", esc(&p.class))?;
                for (col, list) in [&p.closest, &p.furthest, &p.closest_other]
                    .into_iter()
                    .enumerate()
                {
                    let thumbs: Vec<Vec<u8>> = list
                        .iter()
                        .map(|q| thumbnail(&set.pixels[q.index], image_size, THUMB))
                        .collect::<anyhow::Result<_>>()?;
                    let pix: Vec<&[u8]> = thumbs.iter().map(Vec::as_slice).collect();
                    let title: Vec<String> = list
                        .iter()
                        .map(|q| format!("{} [{}] cos {:.3}", q.id, q.class, q.similarity))
                        .collect();
                    write!(
                        h,
                        "<td>{}",
                        png_img(&grid_png(&pix, THUMB)?, &title.join("\n"))
                    )?;
                    if col == 2 {
                        write!(h, "<div class=cap>")?;
                        for q in list {
                            write!(h, "<span>{}</span>", esc(&q.class))?;
                        }
                        write!(h, "</div>")?;
                    }
                    write!(h, "</td>")?;
                }
                writeln!(h, "</tr>")?;
            }
            writeln!(h, "</table>")?;
        }
    }

    // Training curves.
    if let Some(t) = &m.training {
        section(&mut h, "training")?;
        writeln!(h, "<div class=charts>")?;
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

    // Method, from what ran.
    section(&mut h, "method")?;
    let t0 = transfers.first().map(|(_, t)| *t);
    let sizes: Vec<String> = t0
        .map(|t| {
            t.few_shot
                .iter()
                .map(|s| s.n_per_class.to_string())
                .collect()
        })
        .unwrap_or_default();
    writeln!(h, "<ul>")?;
    writeln!(
        h,
        "<li>Images: {} of {} unseen classes{}{}.</li>",
        unseen.len(),
        unseen.class_names.len(),
        m.max_per_class
            .map(|c| format!(" (at most {c} per class, seeded choice)"))
            .unwrap_or_default(),
        seen.map(|s| format!(
            "; {} test images of {} seen classes for distances, maps and images",
            s.len(),
            s.class_names.len()
        ))
        .unwrap_or_default()
    )?;
    writeln!(
        h,
        "<li>Few-shot: n = {} labelled images per class, {} seeded draws each; per class the first n of a shuffle are labelled, all others are the test set; sizes where a class would keep no test image are skipped. Confusion matrices and per-class scores sum the draws of n = {}.</li>",
        sizes.join(", "),
        m.settings.draws,
        t0.and_then(|t| t.confusion.as_ref())
            .map_or("–".into(), |c| c.n_per_class.to_string())
    )?;
    writeln!(
        h,
        "<li>kNN: cosine similarity, k = min({}, n), majority vote (ties: larger summed similarity, then the nearest neighbour's class).</li>\
<li>Logistic regression: multinomial, L2 with C = 1 and a bias, solved in its dual form by accelerated gradient descent (300 steps), on features standardised over the evaluated images (no labels used).</li>\
<li>RBF SVC: one binary smartcore <code>SVC</code> (LaSVM solver, C = 1) per pair of classes on a precomputed RBF kernel table with gamma = 1 / dim of the same standardised features, one-vs-one voting as libsvm does (ties: larger summed margin, then the lower class index); not smartcore's <code>MultiClassSVC</code>, whose tie-break varies between runs.</li>",
        m.settings.k
    )?;
    writeln!(
        h,
        "<li>The seed's curve: one shuffle, {:.0}/{:.0} split, first n of the train pool (n = 30..90 step 10, 100..900 step 100, 1000..3000 step 200, up to the pool).</li>\
<li>Balanced accuracy is the mean recall over classes; precision, recall and F1 per class are from the summed confusion matrix. Baselines: raw pixels (the preprocessed image as a vector) and the same encoder with random He-initialised weights.</li>\
<li>Distances: mean 1 - cos over all pairs of images. Class order: average-linkage clustering of the first model's class distance matrix. Images: cosine to the class centre in the embedding space.</li>",
        100.0 * m.settings.curve_train_fraction,
        100.0 * (1.0 - m.settings.curve_train_fraction)
    )?;
    write!(
        h,
        "<li>Maps (at most {MAP_POINTS} images each): UMAP implemented in seaclr (15 exact cosine neighbours, fuzzy union, PCA start, 500 epochs of seeded SGD, min_dist 0.1), kept when it keeps at least as many 10-nearest neighbourhoods as PCA. What ran: "
    )?;
    let mut runs = Vec::new();
    for e in &m.embedders {
        for g in &e.groups {
            runs.push(format!(
                "{} ({}, {} points): {}",
                esc(&e.name),
                g.group,
                g.map.points.len(),
                if g.map.method == "umap" {
                    "UMAP".to_string()
                } else {
                    format!("PCA ({})", esc(g.map.note.as_deref().unwrap_or("")))
                }
            ));
        }
    }
    writeln!(h, "{}.</li></ul>", runs.join("; "))?;
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
    let writing = crate::ui::spinner("writing report.html");
    let html = render_html(&metrics, &inputs.unseen, inputs.seen.as_ref(), image_size)?;
    writing.finish_and_clear();
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
            models: vec![],
            run: RunProvenance::default(),
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
