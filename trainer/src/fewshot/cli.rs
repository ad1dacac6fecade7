//! `seaclr fewshot build|inspect|check|calibrate-threshold` (old spelling
//! of the last: `seaclr calibrate-threshold`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use seaclr_edge::knn::Q15_ONE;

use crate::embedder::Embedder as _;
use crate::quant::Int8Embedder;
use crate::ui;

use super::check::{CheckArgs, run_check};
use super::{
    LabelledEmbedding, Mounted, REGION_SIZE, build_image, calibrate_threshold, describe,
    read_image, set_image_threshold,
};

/// Few-shot label store images for the device.
#[derive(Subcommand)]
pub enum FewshotCommand {
    /// Embed labelled images with the int8 model and write the initial label
    /// store image (raw flash region) the device boots with.
    Build(BuildArgs),
    /// List the classes, example counts and threshold of a store image.
    Inspect(InspectArgs),
    /// Teach the device's kNN head `--per-class` examples per class one by
    /// one (`add_example`) and compare its balanced accuracy with the
    /// evaluation's host kNN on the same int8 embeddings and draws.
    Check(CheckArgs),
    /// Pick the open-set "unknown" threshold from labelled data and store it
    /// in a store image.
    CalibrateThreshold(CalibrateArgs),
}

/// Arguments of `seaclr fewshot build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The int8 model blob (`.seaclr`).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled images: one folder per class (`DIR/<class>/*.jpg|png|...`)
    /// or a labelled manifest.
    #[arg(long)]
    pub data: PathBuf,
    /// Examples stored per class (the first N files of each class by name).
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Where to write the image.
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object (out, bytes, classes with their examples,
    /// used_bytes, evictions) instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `seaclr fewshot inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The store image (`labels.bin`).
    #[arg(long, required_unless_present = "image")]
    pub store: Option<PathBuf>,
    /// Old spelling of --store.
    #[arg(hide = true, conflicts_with = "store")]
    pub image: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `seaclr fewshot calibrate-threshold`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// The int8 model blob (`.seaclr`) the store was built with.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled images (one folder per class) of classes in the store.
    #[arg(long)]
    pub data: PathBuf,
    /// Largest acceptable share of known-class images called "unknown".
    #[arg(long, default_value_t = 0.05)]
    pub target_false_unknown: f64,
    /// The store image to update in place.
    #[arg(long)]
    pub store: PathBuf,
    /// Print one JSON object (threshold, threshold_q15, used, skipped,
    /// false_unknown, store) instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `fewshot` subcommand.
pub fn run(cmd: FewshotCommand) -> anyhow::Result<()> {
    match cmd {
        FewshotCommand::Build(args) => {
            let examples = embed_labelled(&args.model, &args.data)?;
            let (image, summary) = build_image(&examples, args.per_class)?;
            std::fs::write(&args.out, &image)
                .with_context(|| format!("writing {}", args.out.display()))?;
            let examples: usize = summary.classes.iter().map(|(_, n)| n).sum();
            if args.json {
                let classes: Vec<serde_json::Value> = summary
                    .classes
                    .iter()
                    .map(|(name, n)| serde_json::json!({"name": name, "examples": n}))
                    .collect();
                ui::print_json(&serde_json::json!({
                    "out": args.out.display().to_string(),
                    "bytes": image.len(),
                    "classes": classes,
                    "examples": examples,
                    "used_bytes": summary.used_bytes,
                    "evictions": summary.evictions,
                }))?;
            } else {
                println!(
                    "wrote {} ({} bytes): {} classes, {} examples, {} bytes of the live half used, {} evictions",
                    args.out.display(),
                    image.len(),
                    summary.classes.len(),
                    examples,
                    summary.used_bytes,
                    summary.evictions
                );
            }
            Ok(())
        }
        FewshotCommand::Inspect(args) => {
            let path = ui::flag_or_positional(
                args.store,
                args.image,
                "seaclr fewshot inspect",
                "--store",
            )?;
            let (_, mounted) = read_image(&path)?;
            if args.json {
                ui::print_json(&describe_json(&mounted))?;
            } else {
                print!("{}", describe(&mounted));
            }
            Ok(())
        }
        FewshotCommand::Check(args) => run_check(args),
        FewshotCommand::CalibrateThreshold(args) => run_calibrate(args),
    }
}

/// `seaclr fewshot inspect --json`: what [`describe`] says, as one object.
fn describe_json(m: &Mounted) -> serde_json::Value {
    let h = &m.head;
    let t = h.threshold_q15();
    let classes: Vec<serde_json::Value> = h
        .classes()
        .map(|c| {
            serde_json::json!({
                "id": c.0,
                "name": h.class_name(c).unwrap_or(""),
                "examples": h.class_count(c),
            })
        })
        .collect();
    serde_json::json!({
        "generation": m.report.generation,
        "half": m.report.half,
        "used_bytes": m.used_bytes,
        "half_bytes": REGION_SIZE / 2,
        "records": m.report.records,
        "dirty_tail": m.report.dirty_tail,
        "fell_back": m.report.fell_back,
        // null: disabled (every image gets a class).
        "threshold": (t > -Q15_ONE).then(|| t as f64 / Q15_ONE as f64),
        "threshold_q15": t,
        "examples": h.len(),
        "capacity": h.capacity(),
        "classes": classes,
    })
}

/// Runs `seaclr fewshot calibrate-threshold`.
pub fn run_calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
    let (mut bytes, mounted) = read_image(&args.store)?;
    let labelled = embed_labelled(&args.model, &args.data)?;
    let cal = calibrate_threshold(&mounted.head, &labelled, args.target_false_unknown)?;
    set_image_threshold(&mut bytes, &args.store, cal.threshold_q15)?;
    std::fs::write(&args.store, &bytes)
        .with_context(|| format!("writing {}", args.store.display()))?;
    if args.json {
        ui::print_json(&serde_json::json!({
            "threshold": cal.threshold_q15 as f64 / 32768.0,
            "threshold_q15": cal.threshold_q15,
            "used": cal.used,
            "skipped": cal.skipped,
            "false_unknown": cal.false_unknown,
            "store": args.store.display().to_string(),
        }))?;
    } else {
        println!(
            "threshold {:.4} (q15 {}) from {} labelled images ({} skipped): {:.1}% below it; stored in {}",
            cal.threshold_q15 as f64 / 32768.0,
            cal.threshold_q15,
            cal.used,
            cal.skipped,
            100.0 * cal.false_unknown,
            args.store.display()
        );
    }
    Ok(())
}

/// Embeds `images` with the device's engine, centred on its output zero
/// point, with a progress bar.
pub fn embed_centred_with_progress(
    embedder: &Int8Embedder,
    images: &[&[u8]],
) -> anyhow::Result<Vec<Vec<i8>>> {
    ui::in_chunks(images.len(), ui::EMBED_CHUNK, "embedding", |range| {
        embedder.embed_centred(&images[range])
    })
}

/// Embeds every labelled image under `data` (class folders, a manifest, ...:
/// anything `seaclr data` reads) with the int8 engine of `model`, centred on
/// the engine's output zero point, in catalog order (sorted paths).
/// Unreadable images are skipped with a warning naming the file.
pub fn embed_labelled(model: &Path, data: &Path) -> anyhow::Result<Vec<LabelledEmbedding>> {
    ui::require_int8(model)?;
    let embedder = Int8Embedder::open(model)?;
    let loaded = ui::load(data, embedder.input_size())?;
    for s in &loaded.skipped {
        tracing::warn!("skipped {}: {}", s.path, s.reason);
    }
    if loaded.records.is_empty() {
        bail!("{}: no image could be read", data.display());
    }
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let embeddings = embed_centred_with_progress(&embedder, &pixels)?;
    loaded
        .records
        .into_iter()
        .zip(embeddings)
        .map(|(r, embedding)| {
            let Some(label) = r.label else {
                bail!(
                    "{}: image {} has no class label (expected one folder per class, or a manifest with labels)",
                    data.display(),
                    r.id
                );
            };
            Ok(LabelledEmbedding {
                id: r.id,
                label,
                embedding,
            })
        })
        .collect()
}
