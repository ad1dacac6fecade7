//! `seaclr model export`, `seaclr ecotaxa import|export` and the `.npy`
//! output of `seaclr embed`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::ecotaxa::StatusFilter;
use super::{
    EvalClassifier, ExportOptions, ImportOptions, NpyDtype, Predictor, embed_npy, export_ecotaxa,
    export_onnx, float_onnx_path, import_ecotaxa,
};

/// Arguments of `seaclr model export`.
#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Writes the model as ONNX. An int8 blob (.seaclr) becomes a QDQ graph \
    (QuantizeLinear/DequantizeLinear around float Conv, per-channel int8 weights, int32 \
    bias); a float checkpoint becomes a float graph \
    (BatchNorm folded). Input `x`: float [N, 1, S, S] = (255 - p) / 255 of the \
    preprocessed gray image p; output `embedding`: float [N, D]."
)]
pub struct ModelExportArgs {
    /// The model: an int8 blob (`.seaclr`, QDQ export) or a float checkpoint (float export).
    #[arg(long)]
    pub model: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also export this float checkpoint as a float ONNX model.
    #[arg(long)]
    pub float: Option<PathBuf>,
    /// Where the float ONNX model goes (default: `--out` with `.float.onnx`).
    #[arg(long, requires = "float")]
    pub float_out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `seaclr ecotaxa ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum EcotaxaCommand {
    /// Labels from an EcoTaxa TSV: a label store for the device (images
    /// embedded by the int8 engine) and/or a manifest CSV for the host tools.
    Import(EcotaxaImportArgs),
    /// Predictions and/or embeddings of images as an EcoTaxa TSV.
    Export(EcotaxaExportArgs),
}

/// Arguments of `seaclr ecotaxa import`.
#[derive(Args, Debug, Clone)]
pub struct EcotaxaImportArgs {
    /// The EcoTaxa TSV (`img_file_name` relative to its folder,
    /// `object_annotation_category`, `object_annotation_status`).
    #[arg(long)]
    pub tsv: PathBuf,
    /// Annotation statuses taken as labels: `any` or a list such as
    /// `validated,dubious` (a file without a status column: every row with a category).
    #[arg(long, default_value = "validated")]
    pub status: String,
    /// The int8 model blob (`.seaclr`) that embeds the images for the store.
    #[arg(long, requires = "out")]
    pub model: Option<PathBuf>,
    /// Label store image to write (the same as `seaclr fewshot build`).
    #[arg(long, requires = "model")]
    pub out: Option<PathBuf>,
    /// Examples stored per class (the first N rows of each class).
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Manifest CSV to write (`path,label`, paths relative to its folder).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `seaclr ecotaxa export`.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Columns: object_id, img_file_name (relative to the output's folder), \
    object_annotation_category and object_annotation_status (`predicted`; both empty for \
    \"unknown\"), object_seaclr_confidence and object_seaclr_similarity (kNN head), \
    object_feature_000... (--embeddings), process_id and process_seaclr_* (provenance). \
    EcoTaxa imports files named ecotaxa*.tsv."
)]
pub struct EcotaxaExportArgs {
    /// Model: the int8 blob (`.seaclr`; needed with --store) or a float checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// Images: an EcoTaxa TSV (keeps its object ids) or a folder, manifest, ... as `seaclr data` reads.
    #[arg(long)]
    pub data: PathBuf,
    /// The TSV to write (name it `ecotaxa_*.tsv` for EcoTaxa).
    #[arg(long)]
    pub out: PathBuf,
    /// Predict with the device's kNN head from this label store image.
    #[arg(long, conflicts_with = "train")]
    pub store: Option<PathBuf>,
    /// Neighbours in the kNN head's vote (default: the head's, 10, as on the device).
    #[arg(long, requires = "store")]
    pub k: Option<usize>,
    /// Predict with an evaluation classifier trained on these labelled images
    /// (class folders, a manifest or an EcoTaxa TSV).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// The evaluation classifier used with --train.
    #[arg(long, value_enum, default_value = "logistic")]
    pub classifier: EvalClassifier,
    /// Annotation statuses taken as labels when --train is an EcoTaxa TSV.
    #[arg(long, default_value = "validated")]
    pub status: String,
    /// Write the embeddings as `object_feature_NNN` float columns.
    #[arg(long)]
    pub embeddings: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output format of `seaclr embed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbedFormat {
    /// CSV: `path,label,e0,...`.
    Csv,
    /// NumPy `.npy` (shape `(n, D)`) plus `OUT` with `.ids.csv` (`path,label` per row).
    Npy,
}

/// The `.npy` options of `seaclr embed`.
#[derive(Args, Debug, Clone)]
pub struct EmbedFormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: EmbedFormat,
    /// Element type of `--format npy`: f32, or i8 (int8 blob only: its
    /// output minus the zero point, as the device stores it).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: NpyDtype,
    /// Print one JSON object on stdout instead of text: format, rows, the
    /// output file (`out` for CSV; `npy` and `ids` for NumPy), dimension or
    /// shape, unreadable inputs.
    #[arg(long)]
    pub json: bool,
}

/// `seaclr model export`.
pub fn run_model_export(args: ModelExportArgs) -> Result<()> {
    let float_out = args
        .float_out
        .clone()
        .unwrap_or_else(|| float_onnx_path(&args.out));
    let report = export_onnx(
        &args.model,
        &args.out,
        args.float.as_deref().map(|f| (f, float_out.as_path())),
    )?;
    if args.json {
        crate::ui::print_json(&report)?;
    } else {
        for f in &report.files {
            println!(
                "wrote {} ({} ONNX, opset {}, {} nodes, {} bytes): x [N, 1, {s}, {s}] -> embedding [N, {}]",
                f.path,
                f.kind,
                super::onnx::OPSET,
                f.nodes,
                f.bytes,
                f.embedding_dim,
                s = f.input_size
            );
        }
    }
    Ok(())
}

/// Runs an `ecotaxa` subcommand.
pub fn run_ecotaxa(cmd: EcotaxaCommand) -> Result<()> {
    match cmd {
        EcotaxaCommand::Import(a) => {
            if a.out.is_none() && a.manifest.is_none() {
                bail!("nothing to write: give --model and --out (a label store) and/or --manifest");
            }
            let report = import_ecotaxa(&ImportOptions {
                tsv: a.tsv.clone(),
                status: StatusFilter::parse(&a.status)?,
                manifest: a.manifest.clone(),
                store: a.model.clone().zip(a.out.clone()),
                per_class: a.per_class,
            })?;
            if a.json {
                crate::ui::print_json(&report)?;
                return Ok(());
            }
            println!(
                "{}: {} labelled objects ({} without a category, {} refused by --status {})",
                a.tsv.display(),
                report.labelled,
                report.unlabelled,
                report.filtered,
                a.status
            );
            if let Some(m) = &report.manifest {
                println!("wrote {m}");
            }
            if let Some(s) = &report.store {
                println!(
                    "wrote {s}: {} classes, {} examples, {} bytes of the live half used{}",
                    report.stored.len(),
                    report.stored.iter().map(|(_, n)| n).sum::<usize>(),
                    report.store_used_bytes,
                    if report.unreadable > 0 {
                        format!(", {} unreadable images skipped", report.unreadable)
                    } else {
                        String::new()
                    }
                );
                for (name, n) in &report.stored {
                    println!("  {name:<32} {n}");
                }
            }
            Ok(())
        }
        EcotaxaCommand::Export(a) => {
            let predictor = match (&a.store, &a.train) {
                (Some(s), _) => Predictor::Store(s.clone(), a.k),
                (None, Some(t)) => Predictor::Eval {
                    train: t.clone(),
                    classifier: a.classifier,
                    status: StatusFilter::parse(&a.status)?,
                },
                (None, None) => Predictor::None,
            };
            let report = export_ecotaxa(&ExportOptions {
                model: a.model.clone(),
                data: a.data.clone(),
                out: a.out.clone(),
                predictor,
                embeddings: a.embeddings,
            })?;
            if a.json {
                crate::ui::print_json(&report)?;
                return Ok(());
            }
            println!(
                "wrote {}: {} objects, {} predicted, {} unknown, {} embedding columns{}",
                report.out,
                report.objects,
                report.predicted,
                report.unknown,
                report.features,
                if report.unreadable > 0 {
                    format!(", {} unreadable inputs skipped", report.unreadable)
                } else {
                    String::new()
                }
            );
            for (name, n) in &report.counts {
                println!("  {name:<32} {n}");
            }
            Ok(())
        }
    }
}

/// `seaclr embed`: the evaluation's CSV, or `.npy` with `--format npy`.
pub fn run_embed(embed: crate::eval::cli::EmbedArgs, fmt: EmbedFormatArgs) -> Result<()> {
    match fmt.format {
        EmbedFormat::Csv => {
            if fmt.dtype != NpyDtype::F32 {
                bail!("--dtype goes with --format npy");
            }
            let report = crate::eval::cli::run_embed(embed)?;
            if fmt.json {
                crate::ui::print_json(&report)?;
            } else {
                println!(
                    "{}: {} embeddings of dimension {} from {}",
                    report.out, report.rows, report.dim, report.model
                );
            }
            Ok(())
        }
        EmbedFormat::Npy => run_embed_npy(&embed.model, &embed.data, &embed.out, embed.size, &fmt),
    }
}

/// The `.npy` branch of `seaclr embed` (`model` as `seaclr embed --model` takes it).
pub fn run_embed_npy(
    model: &str,
    data: &std::path::Path,
    out: &std::path::Path,
    size: usize,
    fmt: &EmbedFormatArgs,
) -> Result<()> {
    let report = embed_npy(model, data, out, size, fmt.dtype)?;
    if fmt.json {
        crate::ui::print_json(&report)?;
    } else {
        println!(
            "{}: {} x {} {} embeddings ({}), ids in {}",
            report.npy, report.shape[0], report.shape[1], report.dtype, model, report.ids
        );
    }
    Ok(())
}
