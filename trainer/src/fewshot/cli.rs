//! `seaclr fewshot build|inspect|check` and `seaclr calibrate-threshold`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::embedder::Embedder as _;
use crate::quant::Int8Embedder;

use super::check::{CheckArgs, run_check};
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
    /// Teach the device's kNN head `--per-class` examples per class one by
    /// one (`add_example`) and compare its balanced accuracy with the
    /// evaluation's host kNN on the same int8 embeddings and draws.
    Check(CheckArgs),
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
        FewshotCommand::Check(args) => run_check(args),
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

/// Embeds every labelled image under `data` (class folders, a manifest, ...:
/// anything `seaclr data` reads) with the int8 engine of `model`, centred on
/// the engine's output zero point, in catalog order (sorted paths).
/// Unreadable images are skipped with a warning naming the file.
pub fn embed_labelled(model: &Path, data: &Path) -> anyhow::Result<Vec<LabelledEmbedding>> {
    let embedder = Int8Embedder::open(model)?;
    let loaded = crate::data::load(data, embedder.input_size())?;
    for s in &loaded.skipped {
        eprintln!("warning: skipped {}: {}", s.path, s.reason);
    }
    if loaded.records.is_empty() {
        bail!("{}: no image could be read", data.display());
    }
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let embeddings = embedder.embed_centred(&pixels)?;
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
