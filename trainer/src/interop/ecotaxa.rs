//! EcoTaxa TSV files: labels in, predictions and embeddings out.
//!
//! # The format (as EcoTaxa's importer reads it)
//!
//! - Tab-separated text, one object per row. The first row names the
//!   columns, the second row gives each column's type: `[t]` text or `[f]`
//!   float (numbers). EcoTaxa's own "general export" may leave the type row
//!   out; this reader takes both (a second row whose every cell is `[t]` or
//!   `[f]` is the type row). Lines starting with `#` are skipped. Fields may
//!   be quoted with `"` (the writer quotes a field only when it holds a tab,
//!   a quote or a line break).
//! - Column names are `<prefix>_<name>` with prefix `object`, `img`,
//!   `sample`, `acq` or `process`; EcoTaxa trims and lower-cases them (so
//!   does this reader). A table with any `<prefix>_` column must have
//!   `<prefix>_id`. Custom `object_*` columns of type `[f]` become numeric
//!   fields of the project (`object_feature_000` ... here).
//! - `object_id`: the object's unique id. `img_file_name`: the image,
//!   relative to the TSV's own folder (a subfolder is allowed).
//!   `object_annotation_category`: the taxon name (EcoTaxa matches it to its
//!   taxonomy and asks at import time how to map names it does not know).
//!   `object_annotation_status`: `predicted`, `validated` or `dubious`
//!   (newer EcoTaxa also exports `discarded`); empty means unclassified.
//! - EcoTaxa imports only files named `ecotaxa*.tsv` (or `ecotaxa*.txt`)
//!   in the uploaded folder or zip, and reads them as Latin-1 (skipping a
//!   UTF-8 byte order mark). This reader takes UTF-8 (with or without the
//!   mark) and falls back to Latin-1 for bytes that are not UTF-8; the
//!   writer writes UTF-8 and warns when a field is not plain ASCII.
//!
//! # What SeaCLR reads and writes
//!
//! Import reads `object_id`, `img_file_name`, `object_annotation_category`
//! and `object_annotation_status`; by default only `validated` rows are
//! taken as labels (predicted ones are a classifier's guesses), rows
//! without a category are skipped. Export writes [`EXPORT_TEXT_COLUMNS`],
//! the prediction (`object_annotation_status` = `predicted`, empty category
//! and status when the kNN head answers "unknown"), its confidence and,
//! when asked, the embedding as `object_feature_NNN` `[f]` columns.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use seaclr_shared::walk::{escape_path, unescape_path};

/// The column types of EcoTaxa's second header row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `[t]`.
    Text,
    /// `[f]`.
    Float,
}

impl ColumnType {
    /// The type code.
    pub fn code(self) -> &'static str {
        match self {
            ColumnType::Text => "[t]",
            ColumnType::Float => "[f]",
        }
    }
}

/// A parsed TSV: normalized column names, the type row when there is one,
/// and the data rows (each as long as `columns`), with their line numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names, trimmed and lower-cased.
    pub columns: Vec<String>,
    /// The type row, if the file has one.
    pub types: Option<Vec<ColumnType>>,
    /// Data rows: (line number in the file, fields).
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // Latin-1: every byte is the code point of the same value.
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// Parses TSV bytes (see the module docs).
pub fn parse(bytes: &[u8]) -> Result<Table> {
    let text = decode_text(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut columns: Option<Vec<String>> = None;
    let mut types = None;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.context("not a valid TSV")?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let Some(cols) = &columns else {
            let names: Vec<String> = record.iter().map(|f| f.trim().to_lowercase()).collect();
            let mut seen = std::collections::HashSet::new();
            for n in &names {
                if !seen.insert(n) {
                    bail!("line {line}: column {n:?} appears twice");
                }
            }
            columns = Some(names);
            continue;
        };
        if record.len() != cols.len() {
            bail!(
                "line {line}: {} fields, the header has {}",
                record.len(),
                cols.len()
            );
        }
        if types.is_none() && rows.is_empty() {
            let codes: Option<Vec<ColumnType>> = record
                .iter()
                .map(|f| match f.trim().to_ascii_lowercase().as_str() {
                    "[t]" => Some(ColumnType::Text),
                    "[f]" => Some(ColumnType::Float),
                    _ => None,
                })
                .collect();
            if let Some(codes) = codes {
                types = Some(codes);
                continue;
            }
        }
        rows.push((line, record.iter().map(str::to_string).collect()));
    }
    let Some(columns) = columns else {
        bail!("empty TSV: no header row");
    };
    Ok(Table {
        columns,
        types,
        rows,
    })
}

/// Reads and parses a TSV file.
pub fn read(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| path.display().to_string())
}

/// Writes a TSV: header, type row, rows (`\n` line ends, UTF-8).
pub fn write(columns: &[(String, ColumnType)], rows: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b'\t')
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    w.write_record(columns.iter().map(|(n, _)| n.as_str()))?;
    w.write_record(columns.iter().map(|(_, t)| t.code()))?;
    for (i, row) in rows.iter().enumerate() {
        if row.len() != columns.len() {
            bail!(
                "row {i}: {} fields for {} columns",
                row.len(),
                columns.len()
            );
        }
        w.write_record(row)?;
    }
    w.into_inner().context("cannot finish the TSV")
}

/// One object of an EcoTaxa TSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Line in the file.
    pub line: usize,
    /// `object_id` (the image name when the column is missing).
    pub object_id: String,
    /// `img_file_name` as written (relative to the TSV's folder).
    pub img_file_name: String,
    /// The image path resolved against the TSV's folder.
    pub image: PathBuf,
    /// `object_annotation_category`, `None` when empty.
    pub category: Option<String>,
    /// `object_annotation_status`, lower-cased, `None` when empty.
    pub status: Option<String>,
}

/// The objects of a table; `base` is the TSV's folder (images are
/// relative to it, as in EcoTaxa).
pub fn objects(table: &Table, base: &Path) -> Result<Vec<Object>> {
    let Some(img) = table.column("img_file_name") else {
        bail!(
            "no img_file_name column (columns: {})",
            table.columns.join(", ")
        );
    };
    let id = table.column("object_id");
    let cat = table.column("object_annotation_category");
    let status = table.column("object_annotation_status");
    let nonempty = |row: &[String], c: Option<usize>| {
        c.map(|c| row[c].trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut out = Vec::with_capacity(table.rows.len());
    for (line, row) in &table.rows {
        let img_file_name = row[img].trim().to_string();
        if img_file_name.is_empty() {
            bail!("line {line}: empty img_file_name");
        }
        out.push(Object {
            line: *line,
            object_id: nonempty(row, id).unwrap_or_else(|| img_file_name.clone()),
            image: base.join(unescape_path(&img_file_name)),
            img_file_name,
            category: nonempty(row, cat),
            status: nonempty(row, status).map(|s| s.to_lowercase()),
        });
    }
    Ok(out)
}

/// Which annotation statuses count as labels on import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Any row with a category.
    Any,
    /// Rows whose status is one of these (lower case); a file without a
    /// status column passes every row with a category.
    Only(Vec<String>),
}

impl StatusFilter {
    /// Parses `any` or a comma-separated list such as `validated,dubious`.
    pub fn parse(s: &str) -> Result<StatusFilter> {
        if s.eq_ignore_ascii_case("any") {
            return Ok(StatusFilter::Any);
        }
        let list: Vec<String> = s
            .split(',')
            .map(|x| x.trim().to_lowercase())
            .filter(|x| !x.is_empty())
            .collect();
        for x in &list {
            if !["validated", "predicted", "dubious", "discarded"].contains(&x.as_str()) {
                bail!(
                    "unknown annotation status {x:?} (validated, predicted, dubious, discarded or any)"
                );
            }
        }
        if list.is_empty() {
            bail!("empty status list");
        }
        Ok(StatusFilter::Only(list))
    }

    /// Whether a row with this status is a label.
    pub fn accepts(&self, status: Option<&str>, has_status_column: bool) -> bool {
        match self {
            StatusFilter::Any => true,
            StatusFilter::Only(list) => {
                !has_status_column || status.is_some_and(|s| list.iter().any(|x| x == s))
            }
        }
    }
}

/// The labelled objects of an EcoTaxa TSV.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// Objects taken as labels, in file order.
    pub labelled: Vec<Object>,
    /// Rows without a category.
    pub unlabelled: usize,
    /// Rows whose status the filter refused.
    pub filtered: usize,
}

/// Reads the labels of an EcoTaxa TSV file.
pub fn read_labels(tsv: &Path, filter: &StatusFilter) -> Result<Labels> {
    let table = read(tsv)?;
    let base = tsv.parent().unwrap_or(Path::new("."));
    let has_status = table.column("object_annotation_status").is_some();
    let mut labels = Labels::default();
    for o in objects(&table, base).with_context(|| tsv.display().to_string())? {
        if o.category.is_none() {
            labels.unlabelled += 1;
        } else if !filter.accepts(o.status.as_deref(), has_status) {
            labels.filtered += 1;
        } else {
            labels.labelled.push(o);
        }
    }
    Ok(labels)
}

/// A manifest CSV (`path,label`) of labelled objects, paths relative to the
/// manifest's folder `base` where they can be (absolute otherwise).
pub fn manifest_rows(labelled: &[Object], base: &Path) -> Vec<crate::data::manifest::ManifestRow> {
    labelled
        .iter()
        .map(|o| crate::data::manifest::ManifestRow {
            path: escape_path(&relative_path(base, &o.image)),
            label: o.category.clone(),
            group: None,
            subset: None,
        })
        .collect()
}

/// `target` relative to the folder `base` (with `..` where needed) when
/// both resolve on disk, else `target` absolute (or as given).
pub fn relative_path(base: &Path, target: &Path) -> PathBuf {
    let (Ok(b), Ok(t)) = (
        std::fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        }),
        std::fs::canonicalize(target),
    ) else {
        return std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    };
    let bc: Vec<_> = b.components().collect();
    let tc: Vec<_> = t.components().collect();
    let common = bc.iter().zip(&tc).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return t;
    }
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &tc[common..] {
        out.push(c);
    }
    out
}

/// Columns every export has, before the prediction and feature columns.
pub const EXPORT_TEXT_COLUMNS: [&str; 4] = [
    "object_id",
    "img_file_name",
    "object_annotation_category",
    "object_annotation_status",
];

/// The name of embedding feature `i` (`object_feature_000`, ...).
pub fn feature_column(i: usize) -> String {
    format!("object_feature_{i:03}")
}

/// One exported object.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRow {
    /// `object_id`.
    pub object_id: String,
    /// `img_file_name` relative to the output TSV's folder.
    pub img_file_name: String,
    /// Predicted class (`None`: unknown or no prediction).
    pub category: Option<String>,
    /// Confidence of the prediction in `[0, 1]`, when the classifier has one.
    pub confidence: Option<f32>,
    /// Cosine similarity of the nearest stored example (kNN head only).
    pub similarity: Option<f32>,
    /// Embedding (empty when not exported).
    pub embedding: Vec<f32>,
}

/// What an export holds besides the object columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportLayout {
    /// Whether there are predictions (category and status columns filled).
    pub predictions: bool,
    /// Whether `object_seaclr_confidence` is written.
    pub confidence: bool,
    /// Whether `object_seaclr_similarity` is written.
    pub similarity: bool,
    /// Embedding length written as features (0: none).
    pub features: usize,
    /// `process_id` and `process_*` text columns (key without prefix, value).
    pub process: Vec<(String, String)>,
}

/// Writes export rows as an EcoTaxa TSV.
pub fn export_tsv(layout: &ExportLayout, rows: &[ExportRow]) -> Result<Vec<u8>> {
    let mut columns: Vec<(String, ColumnType)> = EXPORT_TEXT_COLUMNS
        .iter()
        .map(|c| (c.to_string(), ColumnType::Text))
        .collect();
    if layout.confidence {
        columns.push(("object_seaclr_confidence".into(), ColumnType::Float));
    }
    if layout.similarity {
        columns.push(("object_seaclr_similarity".into(), ColumnType::Float));
    }
    for i in 0..layout.features {
        columns.push((feature_column(i), ColumnType::Float));
    }
    for (k, _) in &layout.process {
        columns.push((format!("process_{k}"), ColumnType::Text));
    }
    let opt = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if r.embedding.len() != layout.features {
            bail!(
                "{}: embedding of {} values, the layout has {}",
                r.object_id,
                r.embedding.len(),
                layout.features
            );
        }
        let (cat, status) = match (&r.category, layout.predictions) {
            (Some(c), true) => (c.clone(), "predicted".to_string()),
            _ => (String::new(), String::new()),
        };
        let mut row = vec![r.object_id.clone(), r.img_file_name.clone(), cat, status];
        if layout.confidence {
            row.push(opt(r.confidence));
        }
        if layout.similarity {
            row.push(opt(r.similarity));
        }
        row.extend(r.embedding.iter().map(|v| v.to_string()));
        row.extend(layout.process.iter().map(|(_, v)| v.clone()));
        out.push(row);
    }
    write(&columns, &out)
}

/// Whether any text of the rows is not plain ASCII (EcoTaxa reads Latin-1).
pub fn has_non_ascii(rows: &[ExportRow]) -> bool {
    rows.iter().any(|r| {
        !r.object_id.is_ascii()
            || !r.img_file_name.is_ascii()
            || r.category.as_deref().is_some_and(|c| !c.is_ascii())
    })
}

/// An `object_id` for an image path: its path below `root` without the
/// extension, `/` written `_` (EcoTaxa ids are free text, but one per object).
pub fn object_id_for(root: &Path, image: &Path) -> String {
    let rel = image.strip_prefix(root).unwrap_or(image);
    let rel = rel.with_extension("");
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(escape_path(Path::new(s))),
            _ => None,
        })
        .collect();
    parts.join("_")
}
