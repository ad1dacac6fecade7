//! The ways out to the tools plankton scientists already use:
//!
//! - [`ecotaxa`]: EcoTaxa TSV in (validated labels -> a label store for the
//!   device and/or a manifest CSV) and out (predictions of the device's kNN
//!   head or of the evaluation's classifiers, embeddings as
//!   `object_feature_NNN` columns);
//! - [`npy`]: embeddings as NumPy `.npy` (float32 or int8, shape `(n, D)`)
//!   with an ids sidecar CSV;
//! - [`onnx`]: the int8 blob as an ONNX QDQ model and the float checkpoint
//!   as a float ONNX model, for other runtimes.
//!
//! The pipelines here ([`import_ecotaxa`], [`export_ecotaxa`],
//! [`export_onnx`], [`embed_npy`]) are what the `cli` commands run.

pub mod cli;
pub mod ecotaxa;
pub mod npy;
pub mod onnx;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use seaclr_shared::blob::Blob;
use seaclr_shared::walk::escape_path;

use crate::data::{Catalog, Item, ItemSource, Loaded};
use crate::embedder::Embedder as _;
use crate::fewshot::{BuildSummary, LabelledEmbedding, build_image};
use crate::quant::Int8Embedder;

/// Embeddings of a set of images by an int8 blob: the engine's raw output
/// and its quantization.
pub struct Int8Embeddings {
    /// Raw int8 output per image (`q`).
    pub raw: Vec<Vec<i8>>,
    /// Output zero point.
    pub zero_point: i8,
    /// Output scale.
    pub scale: f32,
}

impl Int8Embeddings {
    /// Runs `blob` on preprocessed images.
    pub fn compute(embedder: &Int8Embedder, pixels: &[&[u8]]) -> Result<Int8Embeddings> {
        let blob = Blob::parse(embedder.blob()).map_err(|e| anyhow!("{e}"))?;
        let h = blob.header();
        Ok(Int8Embeddings {
            raw: crate::ui::in_chunks(pixels.len(), crate::ui::EMBED_CHUNK, "embedding", |r| {
                embedder.embed_int8(&pixels[r])
            })?,
            zero_point: h.output_zero_point,
            scale: h.output_scale,
        })
    }
    /// Centred on the zero point (saturated to int8): what the kNN head stores.
    pub fn centred(&self) -> Vec<Vec<i8>> {
        self.raw
            .iter()
            .map(|q| {
                q.iter()
                    .map(|&v| (v as i16 - self.zero_point as i16).clamp(-128, 127) as i8)
                    .collect()
            })
            .collect()
    }
    /// Dequantized: `scale * (q - zero_point)`.
    pub fn dequantized(&self) -> Vec<Vec<f32>> {
        self.raw
            .iter()
            .map(|q| {
                q.iter()
                    .map(|&v| (v as i32 - self.zero_point as i32) as f32 * self.scale)
                    .collect()
            })
            .collect()
    }
}

/// Loads image files as a catalog (ids are the item ids given).
fn load_items(items: Vec<Item>, size: usize) -> Result<Loaded> {
    Catalog {
        items,
        skipped: Vec::new(),
    }
    .load(size)
}

fn warn_skipped(loaded: &Loaded) {
    for s in &loaded.skipped {
        tracing::warn!("skipped {}: {}", s.path, s.reason);
    }
}

// ----- EcoTaxa import -----

/// What `seaclr ecotaxa import` should write.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The EcoTaxa TSV.
    pub tsv: PathBuf,
    /// Which statuses are labels.
    pub status: ecotaxa::StatusFilter,
    /// Manifest CSV to write (`path,label`).
    pub manifest: Option<PathBuf>,
    /// Label store image to write, with the int8 model that embeds.
    pub store: Option<(PathBuf, PathBuf)>,
    /// Examples per class in the store.
    pub per_class: usize,
}

/// What an import did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    /// Rows taken as labels.
    pub labelled: usize,
    /// Rows without a category.
    pub unlabelled: usize,
    /// Rows refused by the status filter.
    pub filtered: usize,
    /// Labelled images that could not be read.
    pub unreadable: usize,
    /// Classes and examples stored (store only).
    pub stored: Vec<(String, usize)>,
    /// Bytes of the store's live half in use.
    pub store_used_bytes: usize,
    /// Manifest written.
    pub manifest: Option<String>,
    /// Store written.
    pub store: Option<String>,
}

/// Embeds labelled EcoTaxa objects with the int8 engine (the device's own
/// code) and builds a label store image with `per_class` examples per class.
pub fn build_store_from_objects(
    model: &Path,
    labelled: &[ecotaxa::Object],
    per_class: usize,
) -> Result<(Vec<u8>, BuildSummary, usize)> {
    let embedder = Int8Embedder::open(model)?;
    let items = labelled
        .iter()
        .enumerate()
        .map(|(i, o)| Item {
            id: i.to_string(),
            label: o.category.clone(),
            source: ItemSource::File(o.image.clone()),
        })
        .collect();
    let loaded = load_items(items, embedder.input_size())?;
    warn_skipped(&loaded);
    ensure!(
        !loaded.records.is_empty(),
        "no labelled image could be read"
    );
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let embeddings = embedder.embed_centred(&pixels)?;
    let examples: Vec<LabelledEmbedding> = loaded
        .records
        .iter()
        .zip(embeddings)
        .map(|(r, embedding)| {
            let o = &labelled[r.id.parse::<usize>().expect("index id")];
            LabelledEmbedding {
                id: format!("{} ({})", o.object_id, escape_path(&o.image)),
                label: o.category.clone().unwrap_or_default(),
                embedding,
            }
        })
        .collect();
    let (image, summary) = build_image(&examples, per_class)?;
    Ok((image, summary, loaded.skipped.len()))
}

/// `seaclr ecotaxa import`.
pub fn import_ecotaxa(opts: &ImportOptions) -> Result<ImportReport> {
    let labels = ecotaxa::read_labels(&opts.tsv, &opts.status)?;
    if labels.labelled.is_empty() {
        bail!(
            "{}: no labelled object ({} without a category, {} refused by the status filter)",
            opts.tsv.display(),
            labels.unlabelled,
            labels.filtered
        );
    }
    let mut report = ImportReport {
        labelled: labels.labelled.len(),
        unlabelled: labels.unlabelled,
        filtered: labels.filtered,
        unreadable: 0,
        stored: Vec::new(),
        store_used_bytes: 0,
        manifest: None,
        store: None,
    };
    if let Some(path) = &opts.manifest {
        let base = path.parent().unwrap_or(Path::new(""));
        let rows = ecotaxa::manifest_rows(&labels.labelled, base);
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(["path", "label"])?;
        for r in &rows {
            w.write_record([r.path.as_str(), r.label.as_deref().unwrap_or("")])?;
        }
        let bytes = w.into_inner().context("cannot finish CSV")?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        report.manifest = Some(escape_path(path));
    }
    if let Some((model, out)) = &opts.store {
        let (image, summary, unreadable) =
            build_store_from_objects(model, &labels.labelled, opts.per_class)?;
        std::fs::write(out, &image).with_context(|| format!("writing {}", out.display()))?;
        report.unreadable = unreadable;
        report.stored = summary.classes;
        report.store_used_bytes = summary.used_bytes;
        report.store = Some(escape_path(out));
    }
    Ok(report)
}

// ----- EcoTaxa export -----

/// The classifier behind exported predictions.
#[derive(Clone, Debug)]
pub enum Predictor {
    /// No predictions (embeddings only).
    None,
    /// The device's kNN head from a label store image, with its `k`
    /// (`None`: the head's default, as on the device).
    Store(PathBuf, Option<usize>),
    /// An evaluation classifier trained on labelled images.
    Eval {
        /// Labelled images (class folders, manifest or EcoTaxa TSV).
        train: PathBuf,
        /// Which classifier.
        classifier: EvalClassifier,
        /// Statuses taken as labels when `train` is an EcoTaxa TSV.
        status: ecotaxa::StatusFilter,
    },
}

/// The evaluation's few-shot classifiers (see `eval::classifiers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalClassifier {
    /// kNN on cosine similarity, k = 10 (clipped to the labelled count).
    Knn,
    /// Multinomial logistic regression on standardised embeddings.
    Logistic,
    /// RBF support vector classifier, one-vs-one.
    Svc,
}

/// What `seaclr ecotaxa export` should do.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Model: int8 `.seaclr` blob or float checkpoint (the kNN head needs the blob).
    pub model: PathBuf,
    /// Images: an EcoTaxa TSV (its object ids and images) or anything `seaclr data` reads.
    pub data: PathBuf,
    /// Output TSV.
    pub out: PathBuf,
    /// Where predictions come from.
    pub predictor: Predictor,
    /// Whether to write the embedding columns.
    pub embeddings: bool,
}

/// What an export wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportReport {
    /// Output file.
    pub out: String,
    /// Objects written.
    pub objects: usize,
    /// Inputs that could not be read.
    pub unreadable: usize,
    /// Objects with a predicted class.
    pub predicted: usize,
    /// Objects the kNN head called "unknown".
    pub unknown: usize,
    /// Embedding columns written.
    pub features: usize,
    /// Predicted class counts, by name.
    pub counts: Vec<(String, usize)>,
}

/// An image to export: object id, image path.
struct Source {
    object_id: String,
    image: PathBuf,
}

fn export_sources(data: &Path) -> Result<(Vec<Source>, Vec<crate::data::Skipped>)> {
    if data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv") || e.eq_ignore_ascii_case("txt"))
    {
        let table = ecotaxa::read(data)?;
        let base = data.parent().unwrap_or(Path::new(""));
        let objects = ecotaxa::objects(&table, base).with_context(|| data.display().to_string())?;
        return Ok((
            objects
                .into_iter()
                .map(|o| Source {
                    object_id: o.object_id,
                    image: o.image,
                })
                .collect(),
            Vec::new(),
        ));
    }
    let catalog = crate::data::scan(data)?;
    let root = if data.is_dir() {
        data.to_path_buf()
    } else {
        data.parent().unwrap_or(Path::new("")).to_path_buf()
    };
    let mut sources = Vec::new();
    for item in catalog.items {
        match item.source {
            ItemSource::File(path) => sources.push(Source {
                object_id: ecotaxa::object_id_for(&root, &path),
                image: path,
            }),
            ItemSource::Roi(_) => bail!(
                "{}: IFCB ROIs are not image files; EcoTaxa needs one image file per object \
                 (write the ROIs out as images first)",
                data.display()
            ),
        }
    }
    Ok((sources, catalog.skipped))
}

/// Embeddings of labelled images for the evaluation classifiers: class
/// folders, manifests, or an EcoTaxa TSV.
fn labelled_float_embeddings(
    model: &dyn crate::embedder::Embedder,
    train: &Path,
    status: &ecotaxa::StatusFilter,
) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    let size = model.input_size();
    let loaded = if train
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        let labels = ecotaxa::read_labels(train, status)?;
        load_items(
            labels
                .labelled
                .into_iter()
                .map(|o| Item {
                    id: o.object_id,
                    label: o.category,
                    source: ItemSource::File(o.image),
                })
                .collect(),
            size,
        )?
    } else {
        crate::data::load(train, size)?
    };
    warn_skipped(&loaded);
    let mut labels = Vec::new();
    for r in &loaded.records {
        let Some(l) = &r.label else {
            bail!("{}: {} has no class label", train.display(), r.id);
        };
        labels.push(l.clone());
    }
    ensure!(!labels.is_empty(), "{}: no labelled image", train.display());
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    Ok((model.embed(&pixels)?, labels))
}

/// Predicts classes of `test` from labelled `train` embeddings with one of
/// the evaluation's classifiers; returns class indices into `names`.
pub fn eval_predict(
    train: &[Vec<f32>],
    train_labels: &[String],
    test: &[Vec<f32>],
    classifier: EvalClassifier,
) -> Result<(Vec<String>, Vec<usize>)> {
    use crate::eval::classifiers::{LogisticParams, SvcParams, Task, knn, logistic, svc_rbf};
    let mut names: Vec<String> = train_labels.to_vec();
    names.sort();
    names.dedup();
    let label_ids: Vec<usize> = train_labels
        .iter()
        .map(|l| names.binary_search(l).expect("label listed"))
        .collect();
    let pool: Vec<Vec<f32>> = train.iter().chain(test).cloned().collect();
    let kernels = crate::eval::gram::PoolKernels::new(&pool);
    let train_idx: Vec<usize> = (0..train.len()).collect();
    let test_idx: Vec<usize> = (train.len()..pool.len()).collect();
    let task = Task {
        train: &train_idx,
        train_labels: &label_ids,
        test: &test_idx,
        classes: names.len(),
    };
    let predicted = match classifier {
        EvalClassifier::Knn => knn(&kernels.cosine, task, 10),
        EvalClassifier::Logistic => {
            logistic(&kernels.standardized, task, LogisticParams::default())
        }
        EvalClassifier::Svc => svc_rbf(
            &kernels.standardized,
            task,
            SvcParams {
                c: 1.0,
                gamma: 1.0 / kernels.dim.max(1) as f64,
                seed: 0,
            },
        )?,
    };
    Ok((names, predicted))
}

/// `seaclr ecotaxa export`.
pub fn export_ecotaxa(opts: &ExportOptions) -> Result<ExportReport> {
    if matches!(opts.predictor, Predictor::None) && !opts.embeddings {
        bail!("nothing to export: give --store, --train or --embeddings");
    }
    let is_blob = crate::ui::model_kind(&opts.model)? == crate::ui::ModelKind::Int8;
    if matches!(opts.predictor, Predictor::Store(..)) && !is_blob {
        bail!(
            "--store needs the int8 model blob (.seaclr) the store was built with, not {}",
            opts.model.display()
        );
    }
    let model = crate::embedder::load_embedder(&opts.model)?;
    let size = model.input_size();
    let (sources, mut skipped) = export_sources(&opts.data)?;
    let items: Vec<Item> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| Item {
            id: i.to_string(),
            label: None,
            source: ItemSource::File(s.image.clone()),
        })
        .collect();
    let loaded = load_items(items, size)?;
    skipped.extend(loaded.skipped.iter().cloned());
    for s in &skipped {
        tracing::warn!("skipped {}: {}", s.path, s.reason);
    }
    ensure!(
        !loaded.records.is_empty(),
        "{}: no image could be read",
        opts.data.display()
    );
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let (floats, centred) = if is_blob {
        let embedder = Int8Embedder::open(&opts.model)?;
        let e = Int8Embeddings::compute(&embedder, &pixels)?;
        (e.dequantized(), Some(e.centred()))
    } else {
        (model.embed(&pixels)?, None)
    };
    let n = floats.len();
    let mut category: Vec<Option<String>> = vec![None; n];
    let mut confidence: Vec<Option<f32>> = vec![None; n];
    let mut similarity: Vec<Option<f32>> = vec![None; n];
    let mut process = vec![
        ("id".to_string(), "seaclr".to_string()),
        (
            "seaclr_model".to_string(),
            model_description(&opts.model, model.as_ref()),
        ),
    ];
    let (mut has_conf, mut has_sim) = (false, false);
    let mut unknown = 0;
    match &opts.predictor {
        Predictor::None => {}
        Predictor::Store(store, k) => {
            let (_, mut mounted) = crate::fewshot::read_image(store)?;
            if let Some(k) = k {
                mounted
                    .head
                    .set_k(*k)
                    .map_err(|e| anyhow!("--k {k}: {e:?} (1 to {})", seaclr_edge::knn::MAX_K))?;
            }
            let head = &mounted.head;
            for (i, q) in centred.as_ref().expect("int8 model").iter().enumerate() {
                let c = head
                    .classify(q)
                    .map_err(|e| anyhow!("classifying object {i}: {e:?}"))?;
                match c.class {
                    Some(class) => {
                        category[i] = head.class_name(class).map(str::to_string);
                        confidence[i] = Some(c.confidence_q15 as f32 / 32768.0);
                    }
                    None => unknown += 1,
                }
                similarity[i] = Some(c.best_similarity_q15 as f32 / 32768.0);
            }
            (has_conf, has_sim) = (true, true);
            process.push((
                "seaclr_classifier".into(),
                format!("device kNN head, k = {} ({})", head.k(), escape_path(store)),
            ));
        }
        Predictor::Eval {
            train,
            classifier,
            status,
        } => {
            let (train_emb, train_labels) =
                labelled_float_embeddings(model.as_ref(), train, status)?;
            let (names, predicted) = eval_predict(&train_emb, &train_labels, &floats, *classifier)?;
            for (i, p) in predicted.into_iter().enumerate() {
                category[i] = Some(names[p].clone());
            }
            process.push((
                "seaclr_classifier".into(),
                format!(
                    "{} trained on {} labelled images ({})",
                    serde_json::to_value(classifier)?.as_str().unwrap_or("?"),
                    train_labels.len(),
                    escape_path(train)
                ),
            ));
        }
    }
    let out_dir = opts.out.parent().unwrap_or(Path::new(""));
    let features = if opts.embeddings {
        floats.first().map_or(0, Vec::len)
    } else {
        0
    };
    let rows: Vec<ecotaxa::ExportRow> = loaded
        .records
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let s = &sources[r.id.parse::<usize>().expect("index id")];
            ecotaxa::ExportRow {
                object_id: s.object_id.clone(),
                img_file_name: escape_path(&ecotaxa::relative_path(out_dir, &s.image)),
                category: category[k].clone(),
                confidence: confidence[k],
                similarity: similarity[k],
                embedding: if opts.embeddings {
                    floats[k].clone()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let layout = ecotaxa::ExportLayout {
        predictions: !matches!(opts.predictor, Predictor::None),
        confidence: has_conf,
        similarity: has_sim,
        features,
        process,
    };
    let bytes = ecotaxa::export_tsv(&layout, &rows)?;
    std::fs::write(&opts.out, bytes).with_context(|| format!("writing {}", opts.out.display()))?;
    if ecotaxa::has_non_ascii(&rows) {
        eprintln!(
            "warning: {}: some ids, paths or class names are not plain ASCII; the file is UTF-8 \
             but EcoTaxa's importer reads Latin-1",
            opts.out.display()
        );
    }
    if !opts
        .out
        .file_name()
        .is_some_and(|f| f.to_string_lossy().to_lowercase().starts_with("ecotaxa"))
    {
        eprintln!(
            "note: EcoTaxa imports only files named ecotaxa*.tsv; rename {} before uploading",
            opts.out.display()
        );
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in category.iter().flatten() {
        match counts.iter_mut().find(|(n, _)| n == c) {
            Some((_, k)) => *k += 1,
            None => counts.push((c.clone(), 1)),
        }
    }
    counts.sort();
    Ok(ExportReport {
        out: escape_path(&opts.out),
        objects: rows.len(),
        unreadable: skipped.len(),
        predicted: category.iter().flatten().count(),
        unknown,
        features,
        counts,
    })
}

fn model_description(path: &Path, model: &dyn crate::embedder::Embedder) -> String {
    match std::fs::read(path)
        .ok()
        .and_then(|b| Blob::parse(&b).ok().map(|blob| blob.header().payload_crc32))
    {
        Some(crc) => format!("{} (payload CRC-32 {crc:08x})", escape_path(path)),
        None => format!("{} ({})", escape_path(path), model.name()),
    }
}

// ----- .npy embeddings -----

/// Element type of a `.npy` embedding export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NpyDtype {
    /// float32: the embedding (dequantized for an int8 blob).
    F32,
    /// int8 (blob only): the engine's output minus its zero point, what the
    /// device's kNN head stores; times `output_scale` gives the float32 values.
    I8,
}

/// What an `.npy` export wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NpyReport {
    /// Always `npy` (`seaclr embed --json` names its format).
    pub format: &'static str,
    /// Rows written (one per image).
    pub rows: usize,
    /// The array file (`--out`).
    pub npy: String,
    /// The ids sidecar.
    pub ids: String,
    /// Shape written.
    pub shape: [usize; 2],
    /// `<f4` or `|i1`.
    pub dtype: &'static str,
    /// Inputs that could not be read.
    pub unreadable: usize,
    /// The int8 output scale (int8 blobs).
    pub output_scale: Option<f32>,
}

/// Embeds `data` with `model` (a `.seaclr` blob, a float checkpoint, `raw`
/// or `random`) and writes `out` (`.npy`) plus `out` with `.ids.csv`.
pub fn embed_npy(
    model: &str,
    data: &Path,
    out: &Path,
    size: usize,
    dtype: NpyDtype,
) -> Result<NpyReport> {
    let is_blob = !matches!(model, "raw" | "random")
        && crate::ui::model_kind(Path::new(model))? == crate::ui::ModelKind::Int8;
    if dtype == NpyDtype::I8 && !is_blob {
        bail!("--dtype i8 needs an int8 model blob (.seaclr), not {model}");
    }
    let embedder = crate::eval::cli::open_model(model, size)?;
    ensure!(
        embedder.input_size() == size,
        "{} expects {}x{} inputs, --size is {size}",
        embedder.name(),
        embedder.input_size(),
        embedder.input_size()
    );
    let loaded = crate::ui::load(data, size)?;
    warn_skipped(&loaded);
    ensure!(
        !loaded.records.is_empty(),
        "{}: no images found",
        data.display()
    );
    let pixels: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let (bytes, dim, scale) = if is_blob {
        let e = Int8Embeddings::compute(&Int8Embedder::open(Path::new(model))?, &pixels)?;
        let dim = e.raw.first().map_or(0, Vec::len);
        let n = e.raw.len();
        let bytes = match dtype {
            NpyDtype::I8 => npy::encode_i8(&[n, dim], &e.centred().concat())?,
            NpyDtype::F32 => npy::encode_f32(&[n, dim], &e.dequantized().concat())?,
        };
        (bytes, dim, Some(e.scale))
    } else {
        let f = crate::eval::cli::embed_with_progress(embedder.as_ref(), &pixels, "embedding")?;
        let dim = f.first().map_or(0, Vec::len);
        (npy::encode_f32(&[f.len(), dim], &f.concat())?, dim, None)
    };
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    let ids_path = npy::ids_path(out);
    let ids: Vec<(String, Option<String>)> = loaded
        .records
        .iter()
        .map(|r| (r.id.clone(), r.label.clone()))
        .collect();
    npy::write_ids(&ids_path, &ids)?;
    Ok(NpyReport {
        format: "npy",
        rows: ids.len(),
        npy: escape_path(out),
        ids: escape_path(&ids_path),
        shape: [ids.len(), dim],
        dtype: match (is_blob, dtype) {
            (true, NpyDtype::I8) => npy::Dtype::I8.descr(),
            _ => npy::Dtype::F32.descr(),
        },
        unreadable: loaded.skipped.len(),
        output_scale: scale,
    })
}

// ----- ONNX -----

/// What an ONNX export wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxReport {
    /// Files written: (path, kind, nodes, bytes).
    pub files: Vec<OnnxFile>,
}

/// One ONNX file written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnnxFile {
    /// Path.
    pub path: String,
    /// `int8-qdq` or `float`.
    pub kind: String,
    /// Graph nodes.
    pub nodes: usize,
    /// File size.
    pub bytes: usize,
    /// Input side.
    pub input_size: usize,
    /// Embedding length.
    pub embedding_dim: usize,
}

fn write_onnx(model: &onnx::Model, path: &Path, kind: &str) -> Result<OnnxFile> {
    let bytes = model.to_bytes();
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(OnnxFile {
        path: escape_path(path),
        kind: kind.into(),
        nodes: model.nodes.len(),
        bytes: bytes.len(),
        input_size: model.input_size,
        embedding_dim: model.embedding_dim,
    })
}

/// The default path of the float model next to `out`: `M.onnx` -> `M.float.onnx`.
pub fn float_onnx_path(out: &Path) -> PathBuf {
    out.with_extension("float.onnx")
}

/// `seaclr model export`: `model` is an int8 blob (QDQ ONNX to `out`) or a
/// float checkpoint (float ONNX to `out`); `float` adds the float ONNX of a
/// checkpoint at `float_out`.
pub fn export_onnx(model: &Path, out: &Path, float: Option<(&Path, &Path)>) -> Result<OnnxReport> {
    if let Some((ckpt, _)) = float {
        crate::ui::require_float(ckpt, "--float")?;
    }
    let mut files = Vec::new();
    if crate::ui::model_kind(model)? == crate::ui::ModelKind::Int8 {
        let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
        let m = onnx::int8_model(&bytes).with_context(|| model.display().to_string())?;
        files.push(write_onnx(&m, out, "int8-qdq")?);
    } else {
        let enc = crate::quant::cli::load_float(model)?;
        files.push(write_onnx(&onnx::float_model(&enc)?, out, "float")?);
    }
    if let Some((ckpt, path)) = float {
        let enc = crate::quant::cli::load_float(ckpt)?;
        files.push(write_onnx(&onnx::float_model(&enc)?, path, "float")?);
    }
    Ok(OnnxReport { files })
}

#[cfg(test)]
mod tests;
