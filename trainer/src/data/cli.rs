//! `seaclr data ...` subcommands: stats, preview, split.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::split::{SplitOptions, UnseenChoice, make_split};
use crate::ui;

const SOURCES: &str = "PATH may be a folder of class folders (root/<class>/*.jpg, labelled by \
folder name), a flat folder of images (unlabelled), a folder of IFCB bins (.hdr/.adc/.roi), one \
bin's .adc/.roi/.hdr file, a manifest CSV (path,label[,group,subset]; paths relative to the CSV) \
or a single image. Images: jpg, jpeg, png, tif, tiff, bmp (format detected from content).";

/// Data subcommands.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Counts images and classes, size distributions and unreadable files.
    #[command(long_about = format!(
        "Decodes every image (in parallel, streaming) and reports: number of images, classes, \
         images per class, width/height distribution (min/median/max and a power-of-two \
         histogram of the ORIGINAL sizes) and every unreadable input with its reason.\n\n{SOURCES}"
    ))]
    Stats {
        /// Dataset to inspect.
        #[arg(long, required_unless_present = "path")]
        data: Option<PathBuf>,
        /// Old spelling of --data.
        #[arg(hide = true, conflicts_with = "data")]
        path: Option<PathBuf>,
        /// Print one JSON object (images, classes, per_class, unlabelled, width, height,
        /// errors) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Writes a contact sheet of preprocessed images, one row per class.
    #[command(long_about = format!(
        "Renders what the encoder sees: each tile is an image after preprocessing (gray, \
         centred white padding to a square, exact area resample to SIZE x SIZE). One row per \
         class (sorted), the first N readable images of each class (sorted paths); unlabelled \
         data fills rows in listing order. Row names are printed to stdout.\n\n{SOURCES}"
    ))]
    Preview {
        /// Dataset to preview.
        #[arg(long, required_unless_present = "path")]
        data: Option<PathBuf>,
        /// Old spelling of --data.
        #[arg(hide = true, conflicts_with = "data")]
        path: Option<PathBuf>,
        /// Output image (PNG recommended: keeps the exact bytes).
        #[arg(long)]
        out: PathBuf,
        /// Images per row.
        #[arg(long, default_value_t = 12)]
        per_class: usize,
        /// Most rows to draw.
        #[arg(long, default_value_t = 200)]
        max_rows: usize,
        /// Tile side (the preprocessing output size).
        #[arg(long, default_value_t = seaclr_shared::preprocess::DEFAULT_SIZE)]
        size: usize,
        /// Print one JSON object (out, width, height, rows with name and
        /// tiles, skipped) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Writes a reproducible seen/unseen class split with train/val/test subsets.
    #[command(
        long_about = "Splits a labelled dataset into seen classes (the encoder trains on \
        them) and unseen classes (held out to judge few-shot transfer), then each class into \
        train/val/test. Output: CSV `path,label,group,subset`, paths relative to --root \
        (default: --data), rows sorted by path. File names keep their bytes: a byte that is not \
        UTF-8 is written \\xHH and a backslash \\\\ (the loaders read them back).\n\nDeterministic: the listing is sorted and every \
        draw comes from a ChaCha8 RNG seeded with --seed, so the same data and arguments give \
        a byte-identical file. The split uses the file listing only (no decoding); unreadable \
        files are reported when the split is loaded."
    )]
    Split {
        /// Labelled dataset (class folders or a labelled manifest).
        #[arg(long, required_unless_present = "path")]
        data: Option<PathBuf>,
        /// Old spelling of --data.
        #[arg(hide = true, conflicts_with = "data")]
        path: Option<PathBuf>,
        /// Unseen classes: a number N (drawn at random among classes with at least
        /// --min-unseen-images images that match no --exclude-unseen pattern) or a
        /// comma-separated list of class names.
        #[arg(long)]
        unseen: UnseenChoice,
        /// RNG seed.
        #[arg(long)]
        seed: u64,
        /// Minimum images for a class to be drawn as unseen (ignored for named classes).
        #[arg(long, default_value_t = 100)]
        min_unseen_images: usize,
        /// Class-name pattern never drawn as unseen (`*` wildcard), e.g. '*_other'. Repeatable.
        #[arg(long)]
        exclude_unseen: Vec<String>,
        /// Fraction of each class for validation.
        #[arg(long, default_value_t = 0.1)]
        val: f64,
        /// Fraction of each class for test.
        #[arg(long, default_value_t = 0.2)]
        test: f64,
        /// Folder the CSV paths are relative to (the data root given to loaders later;
        /// default: --data, or the manifest's folder).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object (out, images, seen, unseen, unseen_classes with
        /// their image counts) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a data subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Stats { data, path, json } => {
            let path = ui::flag_or_positional(data, path, "seaclr data stats", "--data")?;
            let start = Instant::now();
            let bar = ui::progress(0, "decoding");
            let stats = super::stats::compute_with_progress(&path, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            let stats = stats?;
            if json {
                ui::print_json(&stats.to_json())?;
            } else {
                print!("{}", stats.to_text());
            }
            tracing::debug!("{}: {:.2} s", path.display(), start.elapsed().as_secs_f64());
            Ok(())
        }
        DataCommand::Preview {
            data,
            path,
            out,
            per_class,
            max_rows,
            size,
            json,
        } => {
            let path = ui::flag_or_positional(data, path, "seaclr data preview", "--data")?;
            let catalog = super::scan(&path)?;
            let rendering = ui::spinner("rendering");
            let preview = super::preview::render(&catalog, size, per_class, max_rows);
            rendering.finish_and_clear();
            let preview = preview?;
            super::preview::save(&preview, &out)?;
            for skip in &preview.skipped {
                tracing::warn!("skipped {skip}");
            }
            if json {
                let rows: Vec<serde_json::Value> = preview
                    .rows
                    .iter()
                    .map(|(name, tiles)| serde_json::json!({"name": name, "tiles": tiles}))
                    .collect();
                let skipped: Vec<serde_json::Value> = preview
                    .skipped
                    .iter()
                    .map(|s| serde_json::json!({"path": s.path, "reason": s.reason}))
                    .collect();
                return ui::print_json(&serde_json::json!({
                    "out": out.display().to_string(),
                    "width": preview.image.width(),
                    "height": preview.image.height(),
                    "rows": rows,
                    "skipped": skipped,
                }));
            }
            println!(
                "{}: {} rows, {}x{} px",
                out.display(),
                preview.rows.len(),
                preview.image.width(),
                preview.image.height()
            );
            for (i, (name, tiles)) in preview.rows.iter().enumerate() {
                println!("row {i:>3}: {name} ({tiles})");
            }
            Ok(())
        }
        DataCommand::Split {
            data,
            path,
            unseen,
            seed,
            min_unseen_images,
            exclude_unseen,
            val,
            test,
            root,
            out,
            json,
        } => {
            let path = ui::flag_or_positional(data, path, "seaclr data split", "--data")?;
            let catalog = super::scan(&path)?;
            let root = root.unwrap_or_else(|| {
                if path.is_file() {
                    path.parent().map(PathBuf::from).unwrap_or_default()
                } else {
                    path.clone()
                }
            });
            let options = SplitOptions {
                unseen,
                seed,
                min_unseen_images,
                exclude_unseen,
                val,
                test,
            };
            let split = make_split(&catalog, &root, &options)?;
            std::fs::write(&out, split.to_csv()?)
                .with_context(|| format!("{}: cannot write split", out.display()))?;
            let count = |g: super::Group| split.rows.iter().filter(|r| r.group == Some(g)).count();
            let per_unseen: Vec<(&String, usize)> = split
                .unseen
                .iter()
                .map(|class| {
                    let n = split
                        .rows
                        .iter()
                        .filter(|r| r.label.as_ref() == Some(class))
                        .count();
                    (class, n)
                })
                .collect();
            if json {
                let classes: Vec<serde_json::Value> = per_unseen
                    .iter()
                    .map(|(name, n)| serde_json::json!({"name": name, "images": n}))
                    .collect();
                return ui::print_json(&serde_json::json!({
                    "out": out.display().to_string(),
                    "images": split.rows.len(),
                    "seen": count(super::Group::Seen),
                    "unseen": count(super::Group::Unseen),
                    "unseen_classes": classes,
                }));
            }
            println!(
                "{}: {} images ({} seen, {} unseen), unseen classes ({}):",
                out.display(),
                split.rows.len(),
                count(super::Group::Seen),
                count(super::Group::Unseen),
                split.unseen.len()
            );
            for (class, n) in per_unseen {
                println!("  {class} ({n})");
            }
            Ok(())
        }
    }
}
