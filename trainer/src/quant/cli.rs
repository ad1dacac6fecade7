//! `seaclr model quantize|inspect|verify` (old spellings: `seaclr quantize`,
//! `seaclr inspect`, `seaclr verify`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Args;

use super::{QuantOptions, RangeMethod, inspect};
use crate::float_encoder::FloatEncoder;
use crate::ui;

/// `seaclr model quantize`: float checkpoint + calibration images -> int8 blob.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The float model to quantize: a checkpoint folder, a run folder (its
    /// best, else newest checkpoint) or a FloatEncoder `.json`.
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration images (any layout `seaclr data` reads).
    #[arg(long, alias = "calib")]
    pub data: PathBuf,
    /// Split manifest: calibrate on its seen/train images only, so the
    /// classes held out for evaluation play no part in the int8 model.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Calibration images to use (a seeded sample over all classes, or over
    /// the seen/train images with --split; at least 512).
    #[arg(long, alias = "calib-count", default_value_t = 512)]
    pub count: usize,
    /// Activation ranges from this percentile (e.g. 99.99) instead of min/max.
    #[arg(long)]
    pub percentile: Option<f64>,
    /// Output blob path (`.seaclr`).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the new blob's description as one JSON object (as `model
    /// inspect --json`, plus `out` and `calibration_images`).
    #[arg(long)]
    pub json: bool,
}

/// `seaclr model inspect`: describe a blob.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The int8 model blob (`.seaclr`).
    #[arg(long, required_unless_present = "blob")]
    pub model: Option<PathBuf>,
    /// Old spelling of --model.
    #[arg(hide = true, conflicts_with = "model")]
    pub blob: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `seaclr model verify`: float vs int8 agreement on a data set.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The int8 model blob (`.seaclr`) to check.
    #[arg(long)]
    pub model: PathBuf,
    /// The float model it was quantized from: a checkpoint folder, a run
    /// folder or a FloatEncoder `.json`.
    #[arg(long)]
    pub float: PathBuf,
    /// Images to compare on.
    #[arg(long)]
    pub data: PathBuf,
    /// Images to use (a seeded sample of N over all classes).
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Loads a float model: a serde `.json` FloatEncoder directly, anything else
/// as a training checkpoint through `simclr::load_float_encoder`.
pub fn load_float(path: &Path) -> Result<FloatEncoder> {
    if path.extension().is_some_and(|e| e == "json") {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a FloatEncoder JSON", path.display()))
    } else {
        crate::simclr::load_float_encoder(path)
    }
}

/// Loads up to `count` preprocessed images (with a progress bar).
pub fn load_images(path: &Path, size: usize, count: usize) -> Result<Vec<Vec<u8>>> {
    sample_images(ui::load(path, size)?, count)
}

/// [`load_images`] restricted to the seen/train images of a split manifest.
pub fn load_seen_train_images(
    path: &Path,
    split: &Path,
    size: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>> {
    use crate::data::{Group, Subset};
    let loaded = ui::load_split(path, split, Group::Seen, Some(Subset::Train), size)?;
    sample_images(loaded, count)
}

/// Reports skipped files, then a seeded sample of `count` images.
fn sample_images(loaded: crate::data::Loaded, count: usize) -> Result<Vec<Vec<u8>>> {
    use rand::{SeedableRng, seq::SliceRandom};
    for s in &loaded.skipped {
        tracing::warn!("skipped {}: {}", s.path, s.reason);
    }
    let mut pixels: Vec<Vec<u8>> = loaded.records.into_iter().map(|r| r.pixels).collect();
    // A seeded sample over all classes, not the first classes in folder order.
    pixels.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x5eac1));
    pixels.truncate(count);
    Ok(pixels)
}

/// Runs `seaclr model quantize`.
pub fn run_quantize(args: QuantizeArgs) -> Result<()> {
    ui::require_float(&args.model, "--model of `seaclr model quantize`")?;
    let float = load_float(&args.model)?;
    let images = match &args.split {
        Some(split) => load_seen_train_images(&args.data, split, float.input_size, args.count)?,
        None => load_images(&args.data, float.input_size, args.count)?,
    };
    ensure!(
        images.len() >= 512 && images.len() >= args.count.min(512),
        "{}: {} usable calibration images, at least 512 needed",
        args.data.display(),
        images.len()
    );
    let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let range = match args.percentile {
        Some(p) => RangeMethod::Percentile(p),
        None => RangeMethod::MinMax,
    };
    let calibrating = ui::spinner(&format!("calibrating on {} images", images.len()));
    let q = super::quantize(
        &float,
        &refs,
        QuantOptions {
            range,
            min_calibration_images: 512,
        },
    );
    calibrating.finish_and_clear();
    let q = q?;
    std::fs::write(&args.out, &q.blob)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let report = inspect::inspect(&q.blob)?;
    tracing::info!("calibrated on {} images ({range:?})", images.len());
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("out".into(), args.out.display().to_string().into());
            obj.insert("calibration_images".into(), images.len().into());
        }
        ui::print_json(&value)?;
    } else {
        print!("{report}");
        println!("wrote {}", args.out.display());
    }
    Ok(())
}

/// Runs `seaclr model inspect`.
pub fn run_inspect(args: InspectArgs) -> Result<()> {
    let path = ui::flag_or_positional(args.model, args.blob, "seaclr model inspect", "--model")?;
    ui::require_int8(&path)?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let report = inspect::inspect(&bytes).with_context(|| format!("{}", path.display()))?;
    if args.json {
        ui::print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Runs `seaclr model verify`.
pub fn run_verify(args: VerifyArgs) -> Result<()> {
    if ui::model_kind(&args.model)? == ui::ModelKind::Float
        && ui::model_kind(&args.float)? == ui::ModelKind::Int8
    {
        anyhow::bail!(
            "--model {} is a float model and --float {} an int8 blob: swap them",
            args.model.display(),
            args.float.display()
        );
    }
    ui::require_int8(&args.model)?;
    ui::require_float(&args.float, "--float")?;
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let float = load_float(&args.float)?;
    let images = load_images(&args.data, float.input_size, args.count)?;
    ensure!(!images.is_empty(), "{}: no images", args.data.display());
    let report = verify_with_progress(&bytes, &float, &images)
        .with_context(|| format!("{}", args.model.display()))?;
    if args.json {
        ui::print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(())
}

/// [`inspect::verify`] in chunks, with a progress bar.
fn verify_with_progress(
    blob: &[u8],
    float: &FloatEncoder,
    images: &[Vec<u8>],
) -> Result<inspect::VerifyReport> {
    use crate::embedder::Embedder as _;
    use rayon::prelude::*;
    let int8 = super::Int8Embedder::from_bytes("model", blob.to_vec())?;
    ensure!(
        int8.input_size() == float.input_size,
        "blob input {} differs from float model input {}",
        int8.input_size(),
        float.input_size
    );
    let pairs = ui::in_chunks(images.len(), ui::EMBED_CHUNK, "verifying", |range| {
        let chunk: Vec<&[u8]> = images[range].iter().map(Vec::as_slice).collect();
        let q = int8.embed(&chunk)?;
        let f: Vec<Vec<f32>> = chunk.par_iter().map(|im| float.forward(im)).collect();
        Ok(f.into_iter().zip(q).collect::<Vec<_>>())
    })?;
    let (f, q): (Vec<Vec<f32>>, Vec<Vec<f32>>) = pairs.into_iter().unzip();
    Ok(inspect::agreement(&f, &q))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class `dark` is seen (train, val), class `light` unseen: the split's
    /// calibration sample holds only dark seen/train images.
    #[test]
    fn split_calibration_uses_only_seen_train_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("path,label,group,subset\n");
        for (class, shade, group) in [("dark", 20u8, "seen"), ("light", 230, "unseen")] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            for i in 0..6 {
                let name = format!("{class}/{i}.png");
                image::GrayImage::from_pixel(16, 16, image::Luma([shade]))
                    .save(dir.path().join(&name))
                    .unwrap();
                let subset = if i < 4 { "train" } else { "val" };
                csv.push_str(&format!("{name},{class},{group},{subset}\n"));
            }
        }
        let split = dir.path().join("split.csv");
        std::fs::write(&split, csv).unwrap();

        let all = load_images(dir.path(), 8, 100).unwrap();
        assert_eq!(all.len(), 12);
        let seen = load_seen_train_images(dir.path(), &split, 8, 100).unwrap();
        assert_eq!(seen.len(), 4);
        let centre = |img: &Vec<u8>| img[4 * 8 + 4];
        assert!(
            seen.iter().all(|img| centre(img) < 128),
            "a light (unseen) image was used"
        );
        assert!(all.iter().any(|img| centre(img) > 128));
        let capped = load_seen_train_images(dir.path(), &split, 8, 3).unwrap();
        assert_eq!(capped.len(), 3);
    }
}
