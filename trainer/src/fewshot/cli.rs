//! `seaclr fewshot build|inspect` and `seaclr calibrate-threshold`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rayon::prelude::*;
use seaclr_edge::engine::Engine;
use seaclr_edge::knn::centre_embedding;

use super::{
    LabelledEmbedding, build_image, calibrate_threshold, describe, read_image, set_image_threshold,
};

/// Few-shot label store images for the device.
#[derive(Subcommand)]
pub enum FewshotCommand {
    /// Embed labelled images with the int8 model and write the initial label
    /// store image (raw flash region) the device boots with.
    Build(BuildArgs),
    /// List the classes, example counts and threshold of a store image.
    Inspect {
        /// The image (`labels.bin`).
        image: PathBuf,
    },
}

/// Arguments of `seaclr fewshot build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The int8 model blob (`.seaclr`).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled images: one folder per class (`DIR/<class>/*.jpg|png|...`).
    #[arg(long)]
    pub data: PathBuf,
    /// Examples stored per class (the first N files of each class by name).
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Where to write the image.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `seaclr calibrate-threshold`.
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
}

/// Runs a `fewshot` subcommand.
pub fn run(cmd: FewshotCommand) -> anyhow::Result<()> {
    match cmd {
        FewshotCommand::Build(args) => {
            let examples = embed_labelled(&args.model, &args.data)?;
            let (image, summary) = build_image(&examples, args.per_class)?;
            std::fs::write(&args.out, &image)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} ({} bytes): {} classes, {} examples, {} bytes of the live half used, {} evictions",
                args.out.display(),
                image.len(),
                summary.classes.len(),
                summary.classes.iter().map(|(_, n)| n).sum::<usize>(),
                summary.used_bytes,
                summary.evictions
            );
            Ok(())
        }
        FewshotCommand::Inspect { image } => {
            let (_, mounted) = read_image(&image)?;
            print!("{}", describe(&mounted));
            Ok(())
        }
    }
}

/// Runs `calibrate-threshold`.
pub fn run_calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
    let (mut bytes, mounted) = read_image(&args.store)?;
    let labelled = embed_labelled(&args.model, &args.data)?;
    let cal = calibrate_threshold(&mounted.head, &labelled, args.target_false_unknown)?;
    set_image_threshold(&mut bytes, &args.store, cal.threshold_q15)?;
    std::fs::write(&args.store, &bytes)
        .with_context(|| format!("writing {}", args.store.display()))?;
    println!(
        "threshold {:.4} (q15 {}) from {} labelled images ({} skipped): {:.1}% below it; stored in {}",
        cal.threshold_q15 as f64 / 32768.0,
        cal.threshold_q15,
        cal.used,
        cal.skipped,
        100.0 * cal.false_unknown,
        args.store.display()
    );
    Ok(())
}

const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp"];

/// Labelled image files of a class-folder tree, sorted by class then path.
fn labelled_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut files = Vec::new();
    for class_dir in classes {
        let label = class_dir
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: class folder name is not UTF-8", class_dir.display()))?
            .to_string();
        let mut images: Vec<PathBuf> = std::fs::read_dir(&class_dir)
            .with_context(|| format!("reading {}", class_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        images.sort();
        files.extend(images.into_iter().map(|p| (label.clone(), p)));
    }
    if files.is_empty() {
        bail!(
            "{}: no labelled images (expected one folder per class holding image files)",
            dir.display()
        );
    }
    Ok(files)
}

/// Embeds every labelled image under `data` with the int8 engine of
/// `model`, centred on the engine's output zero point. Unreadable images are
/// skipped with a warning naming the file.
pub fn embed_labelled(model: &Path, data: &Path) -> anyhow::Result<Vec<LabelledEmbedding>> {
    let blob = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let engine = Engine::new(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let size = engine.input_size();
    let zero_point = engine.header().output_zero_point;
    let files = labelled_files(data)?;
    let results: Vec<anyhow::Result<LabelledEmbedding>> = files
        .par_iter()
        .map_init(
            || vec![0u8; engine.arena_bytes() + 4],
            |arena, (label, path)| {
                let img = image::open(path)
                    .with_context(|| format!("{}: cannot decode image", path.display()))?
                    .into_luma8();
                let mut pixels = vec![0u8; size * size];
                seaclr_shared::preprocess::preprocess_gray(
                    img.as_raw(),
                    img.width() as usize,
                    img.height() as usize,
                    size,
                    &mut pixels,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let mut raw = vec![0i8; engine.embedding_dim()];
                engine
                    .encode(&pixels, arena, &mut raw)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let mut out = vec![0i8; raw.len()];
                centre_embedding(&raw, zero_point, &mut out)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok(LabelledEmbedding {
                    id: path.display().to_string(),
                    label: label.clone(),
                    embedding: out,
                })
            },
        )
        .collect();
    let mut embeddings = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(e) => embeddings.push(e),
            Err(e) => eprintln!("warning: skipped {e:#}"),
        }
    }
    if embeddings.is_empty() {
        bail!("{}: no image could be embedded", data.display());
    }
    Ok(embeddings)
}
